"""``visualize``: activation maximisation of a batch of channels, a thin caller of :func:`render`.

Image ``i`` of the batch is optimised for ``channels[i]`` with its own random generator, seeded
from ``(seed, channels[i])``; with batch-independent objectives (all but :func:`diversity`) a
channel's picture is the same whether it is optimised alone or in a batch.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .param import ParamSpec
from .render import _size_hw, render

__all__ = ["visualize", "FeatureVisResult", "PRESETS", "preset_settings", "image_grid", "save_image",
           "load_start_image"]

#: Settings of each preset. ``fast`` replaces some values when ``LABKIT_FAST=1``.
PRESETS: Dict[str, Dict[str, object]] = {
    # The Duke lab's code: Adam (lr 0.1) on raw pixels in normalised units, 30 steps, 224 px,
    # mean |activation|, a uniform grey-noise start (150..180 of 255), no regularisation.
    "handout": dict(steps=30, size=224, lr=0.1, param="pixel", objective="mean_abs", transforms=(),
                    regularizers=(), optimizer="adam", fast=dict(steps=20, size=128)),
    # Clean pictures without tuning: lucid's decorrelated Fourier parameterisation + random scale,
    # rotation and shift with lucent's ranges (transforms.standard_transforms), mean activation, Adam lr 0.05.
    "quality": dict(steps=256, size=160, lr=0.05, param="fft", objective="mean", transforms="standard",
                    regularizers=(), optimizer="adam", fast=dict(steps=96, size=128)),
}


def _fast() -> bool:
    return os.environ.get("LABKIT_FAST", "").strip().lower() in {"1", "true", "yes"}


def preset_settings(preset: str) -> Dict[str, object]:
    """The settings a preset uses now (``LABKIT_FAST=1`` gives fewer steps and smaller images)."""
    if preset not in PRESETS:
        raise ValueError(f"Unknown preset {preset!r}. Valid choices: {', '.join(PRESETS)}.")
    settings = {k: v for k, v in PRESETS[preset].items() if k != "fast"}
    if _fast():
        settings.update(PRESETS[preset]["fast"])
    return settings


# --------------------------------------------------------------------------- results


@dataclasses.dataclass
class FeatureVisResult:
    """What :func:`visualize` returns (draw it with ``labkit.plot.visualization_grid(result)``).

    Attributes:
        images: ``[N,3,H,W]`` float32 on the CPU, RGB in ``[0,1]``: image ``i`` maximises ``channels[i]``.
        activations: ``[N]`` float32 on the CPU: the objective of each image measured on the final,
            un-augmented image (for ``"mean_abs"`` the mean |activation| of the channel).
        layer: dotted name of the layer visualised.
        channels: the channel indices, in batch order.
        relu: None, "before" or "after".
        objective: the objective's name.
        snapshots: ``[(step, images [N,3,h,w] CPU)]`` every ``snapshot_every`` steps (steps count
            across octaves, from 1), empty when not asked for.
        settings: every setting used (after preset and overrides), and how the loop ran.
    """

    images: torch.Tensor
    activations: torch.Tensor
    layer: str
    channels: List[int]
    relu: Optional[str] = None
    objective: str = "mean"
    snapshots: List[Tuple[int, torch.Tensor]] = dataclasses.field(default_factory=list)
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)

    def titles(self) -> List[str]:
        """One short title per image: ``"<layer> (<relu> ReLU) #<channel>"``."""
        relu = f" ({self.relu} ReLU)" if self.relu else ""
        return [f"{self.layer}{relu} #{c}" for c in self.channels]

    def numpy(self) -> np.ndarray:
        """The images as ``[N,H,W,3]`` float32 numpy in ``[0,1]``."""
        return self.images.permute(0, 2, 3, 1).numpy()

    def save(self, path, *, ncols: Optional[int] = None, scale: float = 1.0, force: bool = False) -> Path:
        """Write the images as one PNG grid (see :func:`save_image`)."""
        return save_image(image_grid(self.images, ncols=ncols), path, scale=scale, force=force)


def image_grid(images: torch.Tensor, ncols: Optional[int] = None, pad: int = 2, value: float = 1.0) -> torch.Tensor:
    """Tile ``[N,3,H,W]`` images into one ``[3,H',W']`` image with ``pad`` px gaps of grey ``value``."""
    if images.dim() != 4:
        raise ValueError(f"images must be [N,3,H,W], got shape {tuple(images.shape)}.")
    n, c, h, w = images.shape
    ncols = max(1, min(n, ncols or int(np.ceil(np.sqrt(n)))))
    nrows = int(np.ceil(n / ncols))
    out = torch.full((c, nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad), value, dtype=images.dtype)
    for i in range(n):
        r, col = divmod(i, ncols)
        out[:, r * (h + pad):r * (h + pad) + h, col * (w + pad):col * (w + pad) + w] = images[i].detach().cpu()
    return out


def save_image(image: torch.Tensor, path, *, scale: float = 1.0, force: bool = False) -> Path:
    """Save a ``[3,H,W]`` image in ``[0,1]`` as PNG, atomically; an existing file is kept unless ``force``.

    ``scale`` resizes by that factor first (bicubic). The file is written to a temporary name in the
    same folder and then linked (no ``force``) or renamed (``force``) into place, so a reader never
    sees a half-written file and a concurrent writer cannot be overwritten silently.

    Raises:
        FileExistsError: ``path`` exists and ``force`` is False.
    """
    from PIL import Image

    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{str(path)!r} already exists; pass force=True (CLI: --force) to overwrite it.")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}.")
    x = image.detach().cpu().float().clamp(0, 1)
    if scale != 1.0:
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        x = F.interpolate(x[None], size=size, mode="bicubic", align_corners=False)[0].clamp(0, 1)
    arr = (x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            Image.fromarray(arr).save(fh, format="PNG")
        if force:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile
            except FileExistsError:
                raise FileExistsError(f"{str(path)!r} already exists; pass force=True to overwrite it.") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# --------------------------------------------------------------------------- pieces


def load_start_image(start, size: Tuple[int, int]) -> torch.Tensor:
    """A starting image ``[1,3,H,W]`` in ``[0,1]`` from a path, sample name, PIL image, numpy array or
    a ``[3,H,W]``/``[N,3,H,W]`` tensor in ``[0,1]``, resized (whole picture, bicubic) to ``size``."""
    from labkit.images import to_tensor01

    return to_tensor01(start, size, interpolation="bicubic").clamp(0, 1)



# --------------------------------------------------------------------------- visualize


def visualize(
    model: nn.Module,
    layer,
    channels: Union[int, Sequence[int]],
    *,
    steps: Optional[int] = None,
    size=None,
    seed: int = 0,
    relu: Optional[str] = None,
    objective=None,
    param: Union[str, ParamSpec, None] = None,
    lr: Optional[float] = None,
    transforms=None,
    regularizers=None,
    octaves: int = 1,
    octave_scale: float = 1.4,
    start=None,
    snapshot_every: Optional[int] = None,
    preset: str = "quality",
    device=None,
    progress: bool = True,
    optimizer: Optional[str] = None,
    batch_size: Optional[int] = -1,
    fast: bool = True,
    channels_last: Optional[bool] = None,
    autocast: Optional[str] = None,
) -> FeatureVisResult:
    """Synthesise, for each channel, an image that maximises it (activation maximisation).

    All channels are optimised together (batch index = channel) by :func:`render`, the forward pass
    stops at the deepest layer the objective reads, and the model is left untouched (no ``.grad``,
    ``requires_grad`` unchanged).

    Args:
        model: a labkit model (``labkit.models.load_model``), in eval mode.
        layer: dotted name (``"features.10"``) or handout index (``10``).
        channels: one channel index or a list; each is checked against the layer's channel count.
        steps: optimisation steps per octave (preset: quality 256, handout 30).
        size: image side in px, int or ``(H, W)``, of the first octave (preset: quality 160, handout 224).
        seed: random seed; the same seed gives the same images (image ``i`` is seeded by ``(seed, channels[i])``).
        relu: None (the layer's output), "before" or "after" the non-linearity that follows it (Duke 2(c)).
        objective: "mean", "mean_abs" (the Duke feedback signal), "center"/"neuron", or an
            :class:`~labkit.featurevis.objectives.Objective` (``mean() + 0.1 * diversity()``, ...).
            Default: the preset's (quality "mean", handout "mean_abs").
        param: "pixel", "fft" or a spec from :func:`~labkit.featurevis.param.pixel`/``fft(...)``.
        lr: learning rate (Adam), or step size (``optimizer="normalized"``), in the parameter's units.
        transforms: list of random transforms (``labkit.featurevis.transforms``), ``[]`` for none, or "standard".
        regularizers: list of penalties (``total_variation(0.1)``, ``l2()``, ``scharr_edges()``,
            ``color_penalty()``) and image operations (``blur_every(4)``, ``weight_decay()``).
        octaves: number of scales; octave ``k`` starts from octave ``k-1``'s result upscaled (bicubic)
            to ``size * octave_scale**k`` and runs ``steps`` more steps (the Schneider project's octaves).
        octave_scale: size factor between octaves.
        start: a photo to start from instead of noise (path, sample name, PIL image, ``[3,H,W]`` tensor
            in ``[0,1]``): deep-dream style. Every channel starts from the same photo.
        snapshot_every: keep a copy of the images every this many steps (``result.snapshots``).
        preset: "quality" (clean pictures) or "handout" (the Duke lab's plain pixel ascent). Explicit
            arguments override the preset; ``LABKIT_FAST=1`` shrinks the preset's steps and size.
        device: where to optimise (default: the model's device; the model must already be there).
        progress: show a tqdm progress bar.
        optimizer: "adam", or "normalized" (the Schneider project's step: plain gradient ascent with
            each image's gradient divided by its maximum absolute value). Default: the preset's ("adam").
        batch_size, fast, channels_last, autocast: speed settings of :func:`render` (they change
            speed and memory, and results only by float rounding; autocast by more, see ``render``).

    Returns:
        :class:`FeatureVisResult` with ``images`` ``[N,3,H,W]`` in ``[0,1]`` on the CPU and
        ``activations`` ``[N]`` (the objective measured on the final, un-augmented images).

    Raises:
        IndexError: a channel index out of range (the message gives the layer's channel count), or a
            layer index that does not exist.
        ValueError: unknown layer name, preset, objective, parameterisation or optimizer, or
            ``relu`` for a layer without a following non-linearity.
    """
    from labkit import layers as L

    settings = preset_settings(preset)
    overrides = dict(steps=steps, size=size, lr=lr, param=param, objective=objective, transforms=transforms,
                     regularizers=regularizers, optimizer=optimizer)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    name, _ = L.resolve_layer(model, layer)
    clist = L.check_channels(model, name, channels)
    if not clist:
        raise ValueError("channels is empty; give at least one channel index.")
    L.capture_point(model, name, relu)  # a clear error now for a relu the layer does not have
    init = load_start_image(start, _size_hw(settings["size"])) if start is not None else None
    out = render(model, settings["objective"], param=settings["param"], transforms=settings["transforms"],
                 optimizer=settings["optimizer"], lr=float(settings["lr"]), steps=int(settings["steps"]),
                 size=settings["size"], channels=clist, layer=name, relu=relu, regularizers=settings["regularizers"],
                 seed=seed, init=init, octaves=octaves, octave_scale=octave_scale, snapshot_every=snapshot_every,
                 batch_size=batch_size, fast=fast, channels_last=channels_last, autocast=autocast, device=device,
                 progress=progress, desc=f"featurevis {name}")
    settings.update(out.settings)
    settings.update(preset=preset, relu=relu)
    return FeatureVisResult(images=out.images, activations=out.scores, layer=name, channels=list(clist), relu=relu,
                            objective=out.settings["objective"], snapshots=out.snapshots, settings=settings)
