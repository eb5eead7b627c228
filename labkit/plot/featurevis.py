"""Figures for labkit.featurevis (matplotlib only; every function returns the Figure)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

__all__ = ["filter_grid", "visualization_grid", "snapshot_strip", "before_after_relu", "dataset_examples_figure",
           "attack_figure"]


def _hwc(image) -> np.ndarray:
    """``[3,H,W]`` tensor/array in ``[0,1]`` -> ``HxWx3`` numpy for imshow."""
    arr = image.detach().cpu().float().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 3 and arr.shape[-1] != 3:
        arr = np.moveaxis(arr, 0, -1)
    return np.clip(arr, 0.0, 1.0)


def _batch(images) -> list:
    if hasattr(images, "dim") and images.dim() == 3:
        images = images[None]
    return [images[i] for i in range(len(images))]


def _axes_grid(n: int, ncols: Optional[int], cell: float):
    import matplotlib.pyplot as plt

    ncols = max(1, min(n, ncols or math.ceil(math.sqrt(n)))) if n else 1
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    return fig, axes


def filter_grid(images, titles: Optional[Sequence[str]] = None, ncols: Optional[int] = None, *,
                cell: float = 2.2, suptitle: Optional[str] = None):
    """Images ``[F,3,H,W]`` in ``[0,1]`` (e.g. ``visualize(...).images``) in a grid, one title each."""
    items = _batch(images)
    if titles is not None and len(titles) != len(items):
        raise ValueError(f"Got {len(titles)} titles for {len(items)} images.")
    fig, axes = _axes_grid(len(items), ncols, cell)
    for i, img in enumerate(items):
        ax = axes.flat[i]
        ax.imshow(_hwc(img))
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def visualization_grid(result, ncols: Optional[int] = None, *, titles: Optional[Sequence[str]] = None,
                       cell: float = 2.2, suptitle: Optional[str] = None):
    """A featurevis result in a grid: anything with ``.images`` ``[N,3,H,W]`` in ``[0,1]`` and
    ``.titles()`` (``visualize``, ``class_visualization`` and ``invert`` results).

    ``titles`` replaces the result's own titles."""
    if not hasattr(result, "images"):
        raise TypeError(f"Expected a featurevis result with .images, got {type(result).__name__}.")
    own = result.titles() if hasattr(result, "titles") else None
    return filter_grid(result.images, titles=list(titles) if titles is not None else own, ncols=ncols, cell=cell,
                       suptitle=suptitle)


def attack_figure(result, index: int = 0, *, classes: Optional[Sequence[str]] = None, magnify: Optional[float] = None,
                  cell: float = 2.6):
    """One image of an attack (``fgsm`` / ``targeted_attack`` result): the original, the perturbation
    magnified to fill the grey range (or by ``magnify``), and the adversarial image, titled with the
    classes before and after."""
    import matplotlib.pyplot as plt

    name = (lambda i: classes[i]) if classes is not None else (lambda i: f"class {i}")
    delta = result.perturbation[index]
    adv = result.images[index]
    orig = (adv - delta).clamp(0, 1)
    peak = float(delta.abs().max())
    factor = magnify if magnify is not None else (0.5 / peak if peak > 0 else 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(3 * cell, cell + 0.5), squeeze=False)
    panels = ((orig, f"original: {name(int(result.original_class[index]))}"),
              ((0.5 + factor * delta).clamp(0, 1), f"perturbation x{factor:.0f}\nL_inf {255 * peak:.1f}/255"),
              (adv, f"adversarial: {name(int(result.pred[index]))}\n({100 * float(result.confidence[index]):.0f}%)"))
    for ax, (img, title) in zip(axes[0], panels):
        ax.imshow(_hwc(img))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def snapshot_strip(snapshots: Sequence[Tuple[int, object]], index: int = 0, *, cell: float = 1.8,
                   title: Optional[str] = None):
    """How one image develops: ``visualize(..., snapshot_every=k).snapshots`` as a strip, one panel
    per snapshot, labelled by step. ``index`` picks the image (batch position)."""
    if not snapshots:
        raise ValueError("No snapshots: run visualize(..., snapshot_every=k) first.")
    fig, axes = _axes_grid(len(snapshots), len(snapshots), cell)
    for ax, (step, imgs) in zip(axes.flat, snapshots):
        ax.imshow(_hwc(_batch(imgs)[index]))
        ax.set_title(f"step {step}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def before_after_relu(before, after, channels: Sequence[int], *, layer: str = "", cell: float = 2.2,
                      before_scores=None, after_scores=None):
    """Duke 2(c): each channel visualised before (top row) and after (bottom row) its ReLU.

    Args:
        before, after: ``[F,3,H,W]`` images in ``[0,1]`` (``visualize(..., relu="before"/"after").images``).
        channels: the channel indices (column titles).
        before_scores, after_scores: optional ``[F]`` activations shown under the titles.
    """
    b, a = _batch(before), _batch(after)
    if len(b) != len(a) or len(b) != len(channels):
        raise ValueError(f"Need as many before/after images as channels, got {len(b)}, {len(a)}, {len(channels)}.")
    import matplotlib.pyplot as plt

    n = len(channels)
    fig, axes = plt.subplots(2, n, figsize=(cell * n, 2 * cell + 0.4), squeeze=False)
    for j, f in enumerate(channels):
        for row, (imgs, scores, label) in enumerate(((b, before_scores, "before"), (a, after_scores, "after"))):
            ax = axes[row, j]
            ax.imshow(_hwc(imgs[j]))
            ax.set_xticks([])
            ax.set_yticks([])
            score = f"\n{float(scores[j]):.3g}" if scores is not None else ""
            ax.set_title(f"#{f} {label} ReLU{score}", fontsize=8)
    if layer:
        fig.suptitle(f"{layer}: before vs after the ReLU")
    fig.tight_layout()
    return fig


def dataset_examples_figure(examples, visualization=None, *, cell: float = 1.8, show_boxes: bool = True):
    """A channel's dataset examples (``labkit.featurevis.dataset_examples``): the top images with the
    receptive-field box drawn (top row), their crops (bottom row), and optionally the channel's
    feature visualisation ``[3,H,W]`` at the left."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    k = len(examples.crops)
    extra = 1 if visualization is not None else 0
    fig, axes = plt.subplots(2, k + extra, figsize=(cell * (k + extra), 2 * cell + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    if visualization is not None:
        axes[0, 0].imshow(_hwc(visualization))
        axes[0, 0].set_title("visualisation", fontsize=8)
    for j in range(k):
        ax = axes[0, j + extra]
        ax.imshow(_hwc(examples.images[j]))
        ax.set_title(f"{float(examples.scores[j]):.3g}", fontsize=8)
        if show_boxes:
            t, l, b, r = examples.boxes[j]
            ax.add_patch(Rectangle((l - 0.5, t - 0.5), r - l, b - t, fill=False, edgecolor="yellow", linewidth=1.5))
        axes[1, j + extra].imshow(_hwc(examples.crops[j]))
    fig.suptitle(f"{examples.layer} #{examples.channel}: strongest dataset examples")
    fig.tight_layout()
    return fig
