"""Figures for weight quantisation (matplotlib only; the numbers come from the course's bit-width sweep,
``course.experiments.sweep``, or any records of the same shape)."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

__all__ = ["sweep_figure"]


def sweep_figure(records, images: Optional[Sequence] = None, *, title: Optional[str] = None,
                 image_size: float = 1.9):
    """The bit-width sweep in one figure: the channel's visualisation at each width (top row, float32
    first when the records carry it), and top-1 agreement and KL divergence against bits (below).

    Args:
        records: what ``course.experiments.sweep`` returns (a ``SweepTable``; any list of dicts with
            ``bits``, ``top1_agreement``, ``mean_kl`` and optionally ``vis_image``, ``vis_similarity``).
        images: HxWx3 pictures in [0,1], one per record, to show instead of ``record["vis_image"]``.
        title: figure title (default: the layer and channel, when known).
        image_size: inches per picture.

    Returns:
        ``matplotlib.figure.Figure``. Without any pictures only the curves are drawn.
    """
    import matplotlib.pyplot as plt

    rows = list(records)
    if not rows:
        raise ValueError("records is empty: run the sweep (course.experiments.sweep) first.")
    if images is not None and len(images) != len(rows):
        raise ValueError(f"images has {len(images)} pictures for {len(rows)} records; give one per record.")
    reference = dict(getattr(records, "reference", {}) or {})
    pictures = list(images) if images is not None else [r.get("vis_image") for r in rows]
    panels = []  # (picture, caption)
    if images is None and reference.get("vis_image") is not None:
        act = reference.get("vis_activation")
        panels.append((reference["vis_image"], "float32" + (f"\nact {act:.3g}" if act is not None else "")))
    for row, pic in zip(rows, pictures):
        if pic is None:
            continue
        caption = f"{row['bits']}-bit"
        if row.get("vis_similarity") is not None:
            caption += f"\nsim {row['vis_similarity']:.2f}"
        if row.get("vis_activation") is not None:
            caption += f", act {row['vis_activation']:.3g}"
        panels.append((pic, caption))

    ncols = max(len(panels), 3)
    height = (image_size + 0.6 if panels else 0) + 3.0
    fig = plt.figure(figsize=(max(image_size * ncols, 7.5), height), constrained_layout=True)
    if panels:
        grid = fig.add_gridspec(2, ncols, height_ratios=[image_size + 0.6, 3.0])
        for i, (pic, caption) in enumerate(panels):
            ax = fig.add_subplot(grid[0, i])
            ax.imshow(np.clip(np.asarray(pic, dtype=np.float32), 0, 1))
            ax.set_title(caption, fontsize=9)
            ax.set_axis_off()
        curve_ax = fig.add_subplot(grid[1, :])
    else:
        curve_ax = fig.add_subplot(1, 1, 1)

    bits = [r["bits"] for r in rows]
    order = np.argsort(bits)
    xs = np.asarray(bits)[order]
    agreement = 100.0 * np.asarray([rows[i]["top1_agreement"] for i in order], dtype=float)
    kl = np.asarray([rows[i]["mean_kl"] for i in order], dtype=float)
    line1 = curve_ax.plot(xs, agreement, "o-", color="tab:blue", label="top-1 agreement with float (%)")
    curve_ax.set_xscale("log", base=2)  # each step of 1 bit halves the grid spacing
    curve_ax.set_xlabel("weight bits (log scale)")
    curve_ax.set_ylabel("top-1 agreement (%)", color="tab:blue")
    curve_ax.set_ylim(-5, 105)
    curve_ax.set_xticks(xs)
    curve_ax.set_xticklabels([str(b) for b in xs])
    curve_ax.minorticks_off()
    curve_ax.grid(alpha=0.3)
    kl_ax = curve_ax.twinx()
    line2 = kl_ax.plot(xs, kl, "s--", color="tab:red", label="KL(float || quantised) (nats)")
    kl_ax.set_ylabel("mean KL (nats)", color="tab:red")
    kl_ax.set_ylim(bottom=0)
    curve_ax.legend(line1 + line2, [l.get_label() for l in line1 + line2], loc="center right", fontsize=8)

    if title is None and reference.get("layer") is not None:
        title = f"Weight quantisation: {reference['layer']} channel {reference['channel']}"
    if title:
        fig.suptitle(title)
    return fig
