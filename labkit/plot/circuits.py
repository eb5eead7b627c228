"""Figures for labkit.circuits (matplotlib only; the numbers come from ``labkit.circuits``).

Weights are drawn Distill-style on a diverging scale centred at 0: orange = positive (excitatory),
blue = negative (inhibitory), white = 0 (:func:`weight_cmap`; the colours are module constants).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

__all__ = ["WEIGHT_CMAP", "EXCITATORY_COLOR", "INHIBITORY_COLOR", "weight_cmap", "kernel_image",
           "norm_histogram", "weight_explorer"]

EXCITATORY_COLOR = "#e8710a"  # orange
INHIBITORY_COLOR = "#1f6fb4"  # blue
WEIGHT_CMAP = "labkit_weights"


def weight_cmap():
    """Diverging colormap blue (negative) - white (0) - orange (positive); use with limits ``(-m, m)``."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        WEIGHT_CMAP, ["#0b3d74", INHIBITORY_COLOR, "#9ec9ec", "#ffffff", "#f9c08a", EXCITATORY_COLOR, "#8a3c00"])


def _polarity_color(label: Optional[str]) -> str:
    """Orange / blue for a signed kernel; grey for a mixed one (labkit.circuits.polarity's labels)."""
    return {"excitatory": EXCITATORY_COLOR, "inhibitory": INHIBITORY_COLOR}.get(label or "", "0.5")


def kernel_image(ax, kernel, *, limit: Optional[float] = None, title: Optional[str] = None):
    """Draw one ``[kh, kw]`` kernel on ``ax`` in the weight colours, centred at 0; returns the image.

    ``limit`` sets the colour scale to ``(-limit, limit)`` (default: this kernel's max |value|), so
    several kernels drawn with one ``limit`` can be compared.
    """
    k = np.asarray(kernel.detach().cpu() if hasattr(kernel, "detach") else kernel, dtype=np.float32)
    if k.ndim != 2:
        raise ValueError(f"kernel must be [kh, kw], got shape {k.shape}.")
    m = float(limit) if limit is not None else float(np.abs(k).max())
    m = m if m > 0 else 1.0
    im = ax.imshow(k, cmap=weight_cmap(), vmin=-m, vmax=m, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    return im


def norm_histogram(norms, *, k: int = 6, polarities: Optional[Sequence[str]] = None, by: str = "l2",
                   channels: Optional[Sequence[int]] = None, title: Optional[str] = None, bins: int = 30):
    """How strong a unit's input kernels are: a histogram of the norms (left) and the norms sorted
    from strongest (right), the top ``k`` highlighted (orange/blue by polarity when given).

    Args:
        norms: ``[C]`` strengths, e.g. ``labkit.circuits.input_norms(model, layer, channel)``.
        k: how many of the strongest to highlight.
        polarities: labels of the top ``k`` in strength order (``strongest(...).column("polarity")``).
        by: name of the measure for the axis labels.
        channels: the input channel of each norm (default ``0..C-1``; grouped convs:
            ``labkit.circuits.input_channels(...)``), used to label the top ``k``.

    Returns:
        ``matplotlib.figure.Figure``.
    """
    import matplotlib.pyplot as plt

    values = np.asarray(norms.detach().cpu() if hasattr(norms, "detach") else norms, dtype=np.float64).ravel()
    if values.size == 0:
        raise ValueError("norms is empty.")
    order = np.argsort(-values, kind="stable")
    k = max(0, min(int(k), values.size))
    fig, (hist_ax, rank_ax) = plt.subplots(1, 2, figsize=(10, 3.4), constrained_layout=True)
    hist_ax.hist(values, bins=bins, color="0.6")
    for i in order[:k]:
        hist_ax.axvline(values[i], color="0.2", lw=0.8, ls=":")
    hist_ax.set_xlabel(f"kernel strength ({by})")
    hist_ax.set_ylabel("input channels")
    hist_ax.set_title(f"{values.size} input kernels; dotted: top {k}", fontsize=9)

    colors = ["0.75"] * values.size
    for rank, i in enumerate(order[:k]):
        label = polarities[rank] if polarities is not None and rank < len(polarities) else None
        colors[rank] = _polarity_color(label) if polarities is not None else "0.2"
    rank_ax.bar(np.arange(values.size), values[order], width=1.0, color=colors)
    # tick labels name the input channel of each highlighted bar
    rank_ax.set_xticks(np.arange(k))
    names = list(channels) if channels is not None else list(range(values.size))
    if len(names) != values.size:
        raise ValueError(f"channels has {len(names)} entries for {values.size} norms.")
    rank_ax.set_xticklabels([str(names[i]) for i in order[:k]], fontsize=7, rotation=90)
    rank_ax.set_xlabel(f"input kernels, strongest first (ticks: input channel of the top {k})")
    rank_ax.set_ylabel(by)
    rank_ax.set_xlim(-1, values.size)
    if polarities is not None:
        from matplotlib.patches import Patch

        rank_ax.legend(handles=[Patch(color=EXCITATORY_COLOR, label="excitatory"),
                                Patch(color=INHIBITORY_COLOR, label="inhibitory")], fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def weight_explorer(records, *, input_images=None, channel_image=None, ncols: int = 2, title: Optional[str] = None):
    """Distill-style weight explorer of one unit: each strong input channel's feature visualisation
    next to the kernel that connects it to the unit (orange excitatory, blue inhibitory, one colour
    scale for all), and the unit's own visualisation on the right. Draws only; computes nothing.

    Args:
        records: a ``labkit.circuits.CircuitTable`` (``labkit.circuits.strongest``): the ranked
            kernels, their polarity and strength, the layer and channel.
        input_images: ``[k, H, W, 3]`` pictures in ``[0,1]`` of the input channels, in row order
            (feature visualisations), or None for kernels only.
        channel_image: ``[H, W, 3]`` picture of the unit itself, or None.
        ncols: columns of input cards.

    Returns:
        ``matplotlib.figure.Figure``.
    """
    import matplotlib.pyplot as plt

    if not hasattr(records, "kernels") or not hasattr(records, "by"):
        raise TypeError("weight_explorer draws a labkit.circuits.CircuitTable (from labkit.circuits.strongest), "
                        f"not a {type(records).__name__}; compute first, then draw.")
    table = records
    if input_images is not None and len(input_images) != len(table):
        raise ValueError(f"input_images has {len(input_images)} pictures for {len(table)} kernels.")
    records = list(table)
    n = len(records)
    ncols = max(1, min(int(ncols), n))
    nrows = math.ceil(n / ncols)
    kernels = table.kernels
    kernels = kernels.detach().cpu().numpy() if hasattr(kernels, "detach") else np.asarray(kernels)
    limit = float(np.abs(kernels).max()) or 1.0
    has_inputs = input_images is not None
    has_unit = channel_image is not None

    card_cols = 2 if has_inputs else 1  # [input picture | kernel]
    width_ratios = ([1.0, 0.8] if has_inputs else [0.8]) * ncols + ([0.15, 2.0] if has_unit else [])
    fig = plt.figure(figsize=(sum(width_ratios) * 1.7 + 0.6, nrows * 1.95 + 0.9), constrained_layout=True)
    grid = fig.add_gridspec(nrows, len(width_ratios), width_ratios=width_ratios)
    image = None
    source_name = table.input_layer or "input channel"  # None: the RGB image or a concatenation
    for i, row in enumerate(records):
        r, c = divmod(i, ncols)
        base = c * card_cols
        color = _polarity_color(row["polarity"])
        header = f"{source_name} #{row['input_channel']}"
        if has_inputs:
            ax_in = fig.add_subplot(grid[r, base])
            ax_in.imshow(np.clip(np.asarray(input_images[i]), 0, 1))
            ax_in.set_xticks([])
            ax_in.set_yticks([])
            ax_in.set_title(header, fontsize=8)
            for spine in ax_in.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5)
        ax_k = fig.add_subplot(grid[r, base + card_cols - 1])
        image = kernel_image(ax_k, kernels[i], limit=limit)
        # Without the input picture the kernel card is narrow: a short "#channel" header fits, the layer is in the title.
        short = f"#{row['input_channel']}"
        ax_k.set_title(("" if has_inputs else short + "\n") + f"{row['polarity']}", fontsize=8, color=color)
        ax_k.set_xlabel(f"{table.by} {row['norm']:.3g}", fontsize=7)
    if image is not None:
        cbar = fig.colorbar(image, ax=fig.axes[-1] if not has_unit else None,
                            cax=fig.add_subplot(grid[:, -2]) if has_unit else None)
        cbar.set_label("weight (orange +, blue -)", fontsize=8)
        cbar.ax.tick_params(labelsize=7)
    if has_unit:
        ax_u = fig.add_subplot(grid[:, -1])
        ax_u.imshow(np.clip(np.asarray(channel_image), 0, 1))
        ax_u.set_xticks([])
        ax_u.set_yticks([])
        ax_u.set_title(f"{table.layer} channel {table.channel}", fontsize=10)
    if title is None:
        via = "expanded weights" if table.source else "weights"
        title = (f"{table.layer} channel {table.channel}: its {n} strongest input {via} "
                 f"(by {table.by})" + ("" if has_inputs else f"\ninput channels of {source_name}"))
    import textwrap

    # Narrow figures (no pictures) would clip a one-line title: wrap it to the figure's width.
    chars = max(24, int(fig.get_figwidth() * 9))
    fig.suptitle("\n".join(textwrap.fill(part, chars) for part in title.split("\n")), fontsize=11)
    return fig
