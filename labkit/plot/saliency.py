"""Figures for labkit.saliency: heatmap overlays, the signed-gradient picture, method comparisons and
the sanity-check curve. Matplotlib only; every function returns the Figure (no computation here
beyond scaling values for display)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

__all__ = ["compare_methods", "overlay", "plot_sanity", "signed_gradient_image"]


def _numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().float().numpy()
    return np.asarray(a, dtype=np.float64)


def _image01(image01) -> np.ndarray:
    img = _numpy(image01)
    if img.ndim == 4 and img.shape[0] == 1:
        img = img[0]
    if img.ndim == 3 and img.shape[0] == 3 and img.shape[-1] != 3:
        img = img.transpose(1, 2, 0)  # CHW tensor -> HWC
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
        raise ValueError(f"image01 must be an HxWx3 (or 3xHxW) picture in [0,1], got shape {img.shape}; "
                         "use labkit.images.deprocess(x[0], model).")
    return np.clip(img, 0, 1)


def _heatmap(heatmap) -> np.ndarray:
    heat = _numpy(heatmap)
    if heat.ndim == 3 and heat.shape[0] == 1:
        heat = heat[0]
    if heat.ndim != 2:
        raise ValueError(f"heatmap must be one HxW map (e.g. vanilla(...)[0]), got shape {heat.shape}.")
    return heat


def _new_axes(ax, size=(4, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax.figure, ax


def overlay(image01, heatmap, ax=None, *, alpha: float = 0.5, cmap: str = "jet", vmin: Optional[float] = None,
            vmax: Optional[float] = None, title: Optional[str] = None, colorbar: bool = False):
    """A saliency heatmap drawn over the photo.

    Args:
        image01: HxWx3 picture in [0,1] (``labkit.images.deprocess(x[0], model)``).
        heatmap: HxW map (tensor or array); a smaller map is stretched over the whole photo.
        ax: axes to draw on (a new figure when None). alpha: heatmap opacity.
        vmin, vmax: colour range; default the map's own min and max.

    Returns:
        The matplotlib Figure.
    """
    img, heat = _image01(image01), _heatmap(heatmap)
    fig, ax = _new_axes(ax)
    height, width = img.shape[:2]
    ax.imshow(img, extent=(0, width, height, 0))
    shown = ax.imshow(heat, cmap=cmap, alpha=alpha, extent=(0, width, height, 0),
                      vmin=np.min(heat) if vmin is None else vmin, vmax=np.max(heat) if vmax is None else vmax)
    if colorbar:
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def signed_gradient_image(grad, *, percentile: float = 100.0) -> np.ndarray:
    """The Duke handout's picture of a signed gradient: gray means zero.

    ``0.5 + g / (2 * max|g|)``: zero -> 0.5 gray, the strongest positive value -> 1, the strongest
    negative -> 0 (per colour channel for a [3,H,W] gradient).

    Args:
        grad: [3,H,W] (or [1,3,H,W], HxWx3) signed gradient, or an [H,W] map.
        percentile: scale by this percentile of ``|g|`` instead of the max (e.g. 99.5, so a few extreme
            pixels do not turn the rest gray); values beyond it are clipped to 0 and 1.

    Returns:
        HxWx3 (or HxW) numpy array in [0,1], ready for ``plt.imshow``.
    """
    g = _numpy(grad)
    if g.ndim == 4 and g.shape[0] == 1:
        g = g[0]
    if g.ndim == 3 and g.shape[0] == 3 and g.shape[-1] != 3:
        g = g.transpose(1, 2, 0)
    if g.ndim not in (2, 3):
        raise ValueError(f"grad must be [3,H,W] or [H,W], got shape {g.shape}.")
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}.")
    peak = np.abs(g).max() if percentile == 100 else np.percentile(np.abs(g), percentile)
    return np.full_like(g, 0.5) if peak == 0 else np.clip(0.5 + g / (2 * peak), 0, 1)


def compare_methods(image01, maps: Mapping[str, object], *, normalize: str = "each", overlay_photo: bool = True,
                    alpha: float = 0.5, cmap: str = "jet", clip_percentile: float = 99.5, ncols: Optional[int] = None,
                    panel_size: float = 3.0, title: Optional[str] = None):
    """The photo next to one panel per saliency method.

    Args:
        image01: HxWx3 picture in [0,1].
        maps: method name -> HxW map (tensor or array). A [3,H,W] map (guided backprop, integrated
            gradients) is drawn as a signed-gradient picture (:func:`signed_gradient_image`).
        normalize: "each" (every map spans its own min..max: compare *where*, not how much) or
            "shared" (one colour range for all HxW maps: only meaningful for maps in the same units,
            e.g. vanilla vs SmoothGrad).
        overlay_photo: draw the HxW maps over the photo (True) or alone.
        clip_percentile: the top of the colour range is this percentile of the values (100 = the max);
            gradient maps have a few extreme pixels that would otherwise leave everything else dark.
        ncols: panels per row (default: everything on one row, up to 4).

    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    if normalize not in ("each", "shared"):
        raise ValueError(f"normalize must be 'each' or 'shared', not {normalize!r}.")
    if not maps:
        raise ValueError("maps is empty: give at least one {method name: map}.")
    img = _image01(image01)
    arrays: Dict[str, np.ndarray] = {}
    for name, value in maps.items():
        a = _numpy(value)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 3 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 3 and a.shape[0] != 3:
            raise ValueError(f"map {name!r} has shape {a.shape}; expected HxW or 3xHxW.")
        arrays[name] = a
    if not 0 < clip_percentile <= 100:
        raise ValueError(f"clip_percentile must be in (0, 100], got {clip_percentile}.")

    def colour_range(values: np.ndarray):
        return float(values.min()), float(np.percentile(values, clip_percentile))

    flat = [a for a in arrays.values() if a.ndim == 2]
    shared = colour_range(np.concatenate([a.ravel() for a in flat])) if flat else None
    count = len(arrays) + 1
    ncols = ncols or min(count, 4)
    nrows = -(-count // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows), squeeze=False)
    axes = axes.ravel()
    axes[0].imshow(img)
    axes[0].set_title("image")
    axes[0].set_axis_off()
    for ax, (name, a) in zip(axes[1:], arrays.items()):
        if a.ndim == 3:
            ax.imshow(signed_gradient_image(a, percentile=clip_percentile))
            ax.set_axis_off()
            ax.set_title(name)
            continue
        vmin, vmax = shared if normalize == "shared" else colour_range(a)
        if overlay_photo:
            overlay(img, a, ax, alpha=alpha, cmap=cmap, vmin=vmin, vmax=vmax, title=name)
        else:
            ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_axis_off()
            ax.set_title(name)
    for ax in axes[count:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_sanity(records: Union[Sequence[dict], Mapping[str, Sequence[dict]]], ax=None, *,
                title: Optional[str] = "Cascading randomisation (Adebayo et al. 2018)"):
    """Spearman rank correlation with the original map after each randomisation step.

    Args:
        records: the result of ``labkit.saliency.sanity_check`` or a dict ``{method name: result}``
            to draw several methods on one plot.

    Returns:
        The matplotlib Figure (x axis: the layer randomised down to, logits first).
    """
    if isinstance(records, Mapping):
        curves = dict(records)
    else:
        curves = {getattr(records, "method", "") or "method": records}
    if not curves or not any(len(r) for r in curves.values()):
        raise ValueError("No records to plot: pass the result of labkit.saliency.sanity_check.")
    fig, ax = _new_axes(ax, size=(7, 4))
    labels: Sequence[str] = []
    for name, recs in curves.items():
        steps = [r["step"] for r in recs]
        values = [float(r["spearman"]) for r in recs]
        line, = ax.plot(steps, values, marker="o", label=name)
        # A map that became constant has no rank correlation (NaN): mark it instead of dropping the point.
        undefined = [s for s, v in zip(steps, values) if v != v]
        if undefined:
            ax.plot(undefined, [0.0] * len(undefined), linestyle="none", marker="x", markersize=9,
                    color=line.get_color(), label=f"{name}: map constant (no correlation)")
        if len(recs) > len(labels):
            labels = [r["layer"] for r in recs]
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.axhline(0, color="gray", linewidth=0.8)
    finite = [float(r["spearman"]) for recs in curves.values() for r in recs if float(r["spearman"]) == float(r["spearman"])]
    ax.set_ylim(min([-0.2] + [v - 0.05 for v in finite]), 1.05)
    ax.set_xlabel("randomised down to layer")
    ax.set_ylabel("Spearman rank corr. with original")
    if len(curves) > 1 or any(h.get_label().endswith("(no correlation)") for h in ax.lines):
        ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
