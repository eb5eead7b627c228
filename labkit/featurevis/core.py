"""``visualize``: activation maximisation of a batch of filters in one optimisation loop.

Each step: parameterisation -> images in ``[0,1]`` -> random transforms -> normalise with the
model's mean/std -> forward pass that stops at the deepest layer the objective reads -> score per
image (objective + penalties) -> gradient w.r.t. the image parameters only -> optimiser step.
The model is never modified: gradients are taken with ``torch.autograd.grad`` w.r.t. the image
parameters, so no parameter of the model ever receives a ``.grad``.

Image ``i`` of the batch is optimised for ``filters[i]`` with its own random generator, seeded
from ``(seed, filters[i])``; with batch-independent objectives (all but :func:`diversity`) a
filter's picture is the same whether it is optimised alone or in a batch.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labkit import layers as L

from .objectives import LayerKey, Objective, StepState, as_objective
from .param import ParamSpec, as_param
from .regularizers import ImageOp
from .transforms import Compose, compose, standard_transforms

__all__ = ["visualize", "FeatureVisResult", "PRESETS", "preset_settings", "image_grid", "save_image",
           "sample_generators", "load_start_image"]

#: Settings of each preset. ``fast`` replaces some values when ``LABKIT_FAST=1``.
PRESETS: Dict[str, Dict[str, object]] = {
    # The Duke lab's code: Adam (lr 0.1) on raw pixels in normalised units, 30 steps, 224 px,
    # mean |activation|, a uniform grey-noise start (150..180 of 255), no regularisation.
    "handout": dict(steps=30, size=224, lr=0.1, param="pixel", objective="mean_abs", transforms=(),
                    regularizers=(), optimizer="adam", fast=dict(steps=20, size=128)),
    # Clean pictures without tuning: lucid's decorrelated Fourier parameterisation + lucent's
    # standard transforms (pad, jitter, scale, rotate, jitter), mean activation, Adam lr 0.05.
    "quality": dict(steps=256, size=160, lr=0.05, param="fft", objective="mean", transforms="standard",
                    regularizers=(), optimizer="adam", fast=dict(steps=96, size=128)),
}
OPTIMIZERS = ("adam", "normalized")


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
    """What :func:`visualize` returns.

    Attributes:
        images: ``[F,3,H,W]`` float32 on the CPU, RGB in ``[0,1]``: image ``i`` maximises ``filters[i]``.
        activations: ``[F]`` float32 on the CPU: the objective of each image measured on the final,
            un-augmented image (for ``"mean_abs"`` the mean |activation| of the filter's channel).
        layer: dotted name of the layer visualised.
        filters: the filter indices, in batch order.
        relu: None, "before" or "after".
        objective: the objective's name.
        snapshots: ``[(step, images [F,3,h,w] CPU)]`` every ``snapshot_every`` steps (steps count
            across octaves, from 1), empty when not asked for.
        settings: every setting used (after preset and overrides).
    """

    images: torch.Tensor
    activations: torch.Tensor
    layer: str
    filters: List[int]
    relu: Optional[str] = None
    objective: str = "mean"
    snapshots: List[Tuple[int, torch.Tensor]] = dataclasses.field(default_factory=list)
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)

    def titles(self) -> List[str]:
        relu = f" ({self.relu} ReLU)" if self.relu else ""
        return [f"{self.layer}{relu} #{f}" for f in self.filters]

    def grid(self, ncols: Optional[int] = None, titles: Optional[Sequence[str]] = None, **kwargs):
        """A matplotlib Figure of the images (``labkit.plot.filter_grid``)."""
        from labkit.plot.featurevis import filter_grid

        return filter_grid(self.images, titles=list(titles) if titles is not None else self.titles(),
                           ncols=ncols, **kwargs)

    def show(self, ncols: Optional[int] = None, **kwargs) -> None:
        """Draw :meth:`grid` now (returns nothing, so a notebook does not display it twice)."""
        import matplotlib.pyplot as plt

        self.grid(ncols=ncols, **kwargs)
        plt.show()

    def numpy(self) -> np.ndarray:
        """The images as ``[F,H,W,3]`` float32 numpy in ``[0,1]``."""
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


def sample_generators(seed: int, filters: Sequence[int]) -> List[torch.Generator]:
    """One CPU generator per image, seeded from ``(seed, filter)`` so a filter's randomness does not
    depend on its position in the batch."""
    gens = []
    for f in filters:
        state = np.random.SeedSequence([int(seed) % 2**63, int(f) % 2**63]).generate_state(2, np.uint32)
        gens.append(torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1])))
    return gens


def load_start_image(start, size: Tuple[int, int]) -> torch.Tensor:
    """A starting image ``[1,3,H,W]`` in ``[0,1]`` from a path, sample name, PIL image, numpy array or
    a ``[3,H,W]``/``[N,3,H,W]`` tensor in ``[0,1]``, resized (whole picture, bicubic) to ``size``."""
    from labkit.images import to_tensor01

    return to_tensor01(start, size, interpolation="bicubic").clamp(0, 1)


@dataclasses.dataclass
class _ForwardPlan:
    """Which activations to capture, and where the forward pass may stop."""

    points: Dict[LayerKey, Tuple[str, Optional[str]]]  # objective key -> (layer name, relu)
    groups: Dict[Optional[str], List[str]]             # relu -> layer names
    stop_group: Optional[str]                          # the group whose capture ends the pass
    full: bool                                         # logits needed: run the whole model

    def run(self, model: nn.Module, x: torch.Tensor) -> Tuple[Dict[LayerKey, torch.Tensor], Optional[torch.Tensor]]:
        stores = {}
        logits = None
        with contextlib.ExitStack() as stack:
            for relu, names in self.groups.items():
                stop = not self.full and relu == self.stop_group
                stores[relu] = stack.enter_context(L.capture(model, names, relu=relu, stop=stop))
            if self.full:
                logits = model(x)
            else:
                L.run_until(model, x)
        acts = {}
        for key, (name, relu) in self.points.items():
            if name not in stores[relu]:
                raise RuntimeError(f"Layer {name!r} did not run in the forward pass.")
            acts[key] = stores[relu][name]
        return acts, logits


def _plan(model: nn.Module, target: Tuple[str, Optional[str]], objectives: Sequence[Objective]) -> _ForwardPlan:
    points: Dict[LayerKey, Tuple[str, Optional[str]]] = {}
    full = any(o.needs_logits for o in objectives)
    for obj in objectives:
        for key in obj.needs:
            if key == (None, None):
                points[key] = target
            else:
                name, _ = L.resolve_layer(model, key[0])
                points[key] = (name, key[1])
    groups: Dict[Optional[str], List[str]] = {}
    for name, relu in points.values():
        groups.setdefault(relu, [])
        if name not in groups[relu]:
            groups[relu].append(name)
    order = {n: i for i, n in enumerate(L.layers(model).names())}
    stop_group, last = None, (-1, -1)
    for name, relu in points.values():
        hook_name, _, where = L.capture_point(model, name, relu)
        pos = (order.get(hook_name, -1), 0 if where == "input" else 1)
        if pos > last:
            last, stop_group = pos, relu
    if not points and not full:
        raise ValueError("The objective reads no layer and no class scores; nothing to optimise.")
    return _ForwardPlan(points, groups, stop_group, full)


def _resolve_transforms(value) -> Compose:
    if isinstance(value, str):
        if value != "standard":
            raise ValueError(f"transforms must be a list of transforms, [] / None, or 'standard', not {value!r}.")
        return Compose(standard_transforms())
    return compose(value)


def _split_regularizers(regs) -> Tuple[List[Objective], List[ImageOp]]:
    penalties, ops = [], []
    for r in regs or ():
        if isinstance(r, Objective):
            penalties.append(r)
        elif isinstance(r, ImageOp):
            ops.append(r)
        else:
            raise TypeError(f"A regulariser is an Objective (penalty) or an ImageOp, not {type(r).__name__}; "
                            "see labkit.featurevis.total_variation, l2, scharr_edges, blur_every.")
    return penalties, ops


def _size_hw(size) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8 px, got {size}.")
    return h, w


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- visualize


def visualize(
    model: nn.Module,
    layer,
    filters: Union[int, Sequence[int]],
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
) -> FeatureVisResult:
    """Synthesise, for each filter, an image that maximises it (activation maximisation).

    All filters are optimised together as one batch (batch index = filter), the forward pass stops at
    the deepest layer the objective reads, and the model's parameters are left untouched (no
    ``.grad``, ``requires_grad`` unchanged).

    Args:
        model: a labkit model (``labkit.models.load_model``), in eval mode.
        layer: dotted name (``"features.10"``) or handout index (``10``).
        filters: one filter index or a list; each is checked against the layer's filter count.
        steps: optimisation steps per octave (preset: quality 256, handout 30).
        size: image side in px, int or ``(H, W)``, of the first octave (preset: quality 160, handout 224).
        seed: random seed; the same seed gives the same images (image ``i`` is seeded by ``(seed, filters[i])``).
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
            in ``[0,1]``): deep-dream style. Every filter starts from the same photo.
        snapshot_every: keep a copy of the images every this many steps (``result.snapshots``).
        preset: "quality" (clean pictures) or "handout" (the Duke lab's plain pixel ascent). Explicit
            arguments override the preset; ``LABKIT_FAST=1`` shrinks the preset's steps and size.
        device: where to optimise (default: the model's device; the model must already be there).
        progress: show a tqdm progress bar.
        optimizer: "adam", or "normalized" (the Schneider project's step: plain gradient ascent with
            each image's gradient divided by its maximum absolute value). Default: the preset's ("adam").

    Returns:
        :class:`FeatureVisResult` with ``images`` ``[F,3,H,W]`` in ``[0,1]`` on the CPU and
        ``activations`` ``[F]`` (the objective measured on the final, un-augmented images).

    Raises:
        IndexError: a filter index out of range (the message gives the layer's filter count), or a
            layer index that does not exist.
        ValueError: unknown layer name, preset, objective, parameterisation or optimizer, or
            ``relu`` for a layer without a following non-linearity.
    """
    from tqdm.auto import tqdm

    from labkit.images import normalize

    settings = preset_settings(preset)
    overrides = dict(steps=steps, size=size, lr=lr, param=param, objective=objective, transforms=transforms,
                     regularizers=regularizers, optimizer=optimizer)
    settings.update({k: v for k, v in overrides.items() if v is not None})
    settings.update(preset=preset, seed=seed, relu=relu, octaves=octaves, octave_scale=octave_scale)

    name, _ = L.resolve_layer(model, layer)
    flist = L.check_filters(model, name, filters)
    if not flist:
        raise ValueError("filters is empty; give at least one filter index.")
    L.capture_point(model, name, relu)  # a clear error now for a relu the layer does not have
    n_steps = int(settings["steps"])
    if n_steps < 1 or int(octaves) < 1 or octave_scale <= 0:
        raise ValueError(f"steps and octaves must be >= 1 and octave_scale > 0, got {n_steps}, {octaves}, {octave_scale}.")
    if settings["optimizer"] not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {settings['optimizer']!r}. Valid choices: {', '.join(OPTIMIZERS)}.")
    base_hw = _size_hw(settings["size"])
    spec = as_param(settings["param"])
    obj = as_objective(settings["objective"])
    augment = _resolve_transforms(settings["transforms"])
    penalties, ops = _split_regularizers(settings["regularizers"])
    plan = _plan(model, (name, relu), [obj, *penalties])
    device = torch.device(device) if device is not None else _model_device(model)
    gens = sample_generators(seed, flist)
    filt = torch.tensor(flist, dtype=torch.long, device=device)
    n = len(flist)

    init01 = None
    if start is not None:
        init01 = load_start_image(start, base_hw).to(device)
        init01 = init01[:1].expand(n, -1, -1, -1).contiguous()

    def step_state(x01, logits_acts):
        acts, logits = logits_acts
        return StepState(acts=acts, filters=filt, images=x01, logits=logits, model=model)

    snapshots: List[Tuple[int, torch.Tensor]] = []
    total = n_steps * int(octaves)
    bar = tqdm(total=total, disable=not progress, desc=f"featurevis {name} x{n}", leave=False)
    global_step = 0
    images = None
    try:
        for octave in range(int(octaves)):
            hw = tuple(max(8, round(s * octave_scale ** octave)) for s in base_hw)
            if octave > 0:
                init01 = F.interpolate(images, size=hw, mode="bicubic", align_corners=False).clamp(0, 1)
            image_param = spec.build(n, hw, gens=gens, model=model, device=device, init01=init01)
            params = image_param.parameters()
            opt = torch.optim.Adam(params, lr=float(settings["lr"])) if settings["optimizer"] == "adam" else None
            for _ in range(n_steps):
                x01 = image_param()
                x_in = normalize(augment(x01, gens), model)
                state = step_state(x01, plan.run(model, x_in))
                score = obj(state)
                for pen in penalties:
                    score = score + pen(state)
                # sum, not mean: each image's gradient is independent of the batch size
                grads = torch.autograd.grad(-score.sum(), params)
                if opt is not None:
                    for p, g in zip(params, grads):
                        p.grad = g
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        for p, g in zip(params, grads):
                            peak = g.abs().flatten(1).amax(dim=1).view(-1, *([1] * (g.dim() - 1)))
                            p -= float(settings["lr"]) * g / (peak + 1e-8)
                image_param.project()
                global_step += 1
                for op in ops:
                    if global_step % op.every == 0:
                        with torch.no_grad():
                            image_param.set_images(op(image_param()).clamp(0, 1))
                if snapshot_every and global_step % int(snapshot_every) == 0:
                    snapshots.append((global_step, image_param().detach().cpu().float().clone()))
                bar.update(1)
                if progress:
                    bar.set_postfix(score=f"{score.mean().item():.3g}", refresh=False)
            with torch.no_grad():
                images = image_param().detach().clamp(0, 1)
    finally:
        bar.close()

    with torch.no_grad():
        final = obj(step_state(images, plan.run(model, normalize(images, model))))
    settings["param"] = repr(spec)
    settings["transforms"] = [repr(t) for t in augment.transforms]
    settings["regularizers"] = [getattr(r, "name", repr(r)) for r in (*penalties, *ops)]
    settings["objective"] = obj.name
    settings["size"] = base_hw
    return FeatureVisResult(
        images=images.cpu().float(),
        activations=final.detach().cpu().float(),
        layer=name,
        filters=list(flist),
        relu=relu,
        objective=obj.name,
        snapshots=snapshots,
        settings=settings,
    )
