"""``render``: the one optimisation loop behind feature visualisation, inversion and class visualisation.

Each step: parameterisation -> images in ``[0,1]`` -> random transforms -> normalise with the
model's mean/std -> forward pass that stops at the deepest layer the objective reads (or the whole
model when it reads class scores) -> score per image (objective + penalties) -> gradient w.r.t. the
image parameters only -> optimiser step -> projection, image operations, snapshots.

The model is never modified. The loop runs a frozen copy of the part of the network it needs, with
batch norms folded into their convolutions (:mod:`~labkit.featurevis.fastpath`); the final scores
are measured on the original model. Image ``i`` draws its randomness from its own generator, seeded
from ``(seed, keys[i])``, and the score is summed over the batch, so with batch-independent
objectives (all but :func:`~labkit.featurevis.objectives.diversity`) an image does not depend on
which other images share its batch, nor on ``batch_size``.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from labkit import layers as L
from labkit.models import model_device

from .fastpath import inference_copy
from .objectives import LayerKey, Objective, StepState, as_objective
from .param import ParamSpec, as_param
from .regularizers import ImageOp
from .transforms import Compose, compose, standard_transforms

__all__ = ["render", "RenderResult", "sample_generators", "OPTIMIZERS", "default_batch_size", "default_channels_last"]

OPTIMIZERS = ("adam", "normalized")
AUTOCAST = (None, "bf16", "fp16")


@dataclasses.dataclass
class RenderResult:
    """What :func:`render` returns.

    Attributes:
        images: ``[N,3,H,W]`` float32 on the CPU, RGB in ``[0,1]`` (the last octave's size).
        scores: ``[N]`` float32 on the CPU: the objective (without penalties) of each final,
            un-augmented image, measured on the original model in float32.
        history: the mean score (objective + penalties) of the batch at each step.
        snapshots: ``[(step, images [N,3,h,w] CPU)]`` every ``snapshot_every`` steps (steps count across
            octaves, from 1); empty when not asked for.
        settings: how the loop ran: the fast-path choices (``folded``, ``channels_last``, ``autocast``,
            ``batch_size``) and the parameterisation, transforms and regularisers as text.
    """

    images: torch.Tensor
    scores: torch.Tensor
    history: List[float]
    snapshots: List[Tuple[int, torch.Tensor]]
    settings: Dict[str, object]


# --------------------------------------------------------------------------- small pieces


def sample_generators(seed: int, keys: Sequence[int]) -> List[torch.Generator]:
    """One CPU generator per image, seeded from ``(seed, keys[i])`` so an image's randomness does not
    depend on its position in the batch."""
    gens = []
    for k in keys:
        state = np.random.SeedSequence([int(seed) % 2**63, int(k) % 2**63]).generate_state(2, np.uint32)
        gens.append(torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1])))
    return gens


def _size_hw(size) -> Tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 8 or w < 8:
        raise ValueError(f"size must be at least 8 px, got {size}.")
    return h, w


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


def default_batch_size(device: torch.device) -> Optional[int]:
    """Images per forward/backward pass: 1 on a CPU, the whole batch on a GPU.

    On a CPU a batch saves nothing per image (the convolutions are large enough already), while every
    larger activation tensor is more fresh memory that the allocator maps and the kernel zero-fills
    at each step (minor page faults): in fresh one-thread processes, one image per pass cost less CPU
    per image-step than 2 and about the same as 4, with the fewest page faults and the least memory
    (``benchmarks/results/featurevis_profile.md``)."""
    return 1 if torch.device(device).type == "cpu" else None


def default_channels_last(device: torch.device) -> bool:
    """Channels-last layout (with 1x1 convolutions as matrix products): on a CPU, where it was
    measured to pay; not on a GPU, where it has not been timed here."""
    return torch.device(device).type == "cpu"


class _Stop(Exception):
    """Raised by a capture hook once everything the objective reads has been seen."""


@dataclasses.dataclass
class _Forward:
    """Which activations to capture (hooks addressed by module name), and where the pass may stop."""

    points: Dict[LayerKey, Tuple[str, str]]  # objective key -> (module name, "input" | "output")
    stop: Optional[Tuple[str, str]]          # the last capture point, None: run the whole model
    layer_names: Dict[LayerKey, Tuple[str, Optional[str]]]

    def __call__(self, net: nn.Module, x: torch.Tensor, *, to_float: bool = False):
        store: Dict[Tuple[str, str], torch.Tensor] = {}
        wanted = set(self.points.values())
        logits = None

        def record(point, value):
            store[point] = value.to(torch.float32, copy=True) if to_float else value.clone()
            if self.stop is not None and len(store) == len(wanted):
                raise _Stop

        with L.hooks() as handles:
            for name, where in wanted:
                module = net.get_submodule(name)
                if where == "input":
                    handles.append(module.register_forward_pre_hook(
                        lambda m, args, p=(name, where): record(p, args[0])))
                else:
                    handles.append(module.register_forward_hook(
                        lambda m, args, out, p=(name, where): record(p, out)))
            try:
                out = net(x)
                logits = out.float() if to_float else out
            except _Stop:
                pass
        acts = {}
        for key, point in self.points.items():
            if point not in store:
                raise RuntimeError(f"Layer {self.layer_names[key][0]!r} did not run in the forward pass.")
            acts[key] = store[point]
        return acts, logits


def _plan(model: nn.Module, target: Optional[Tuple[str, Optional[str]]], objectives: Sequence[Objective]) -> _Forward:
    full = any(o.needs_logits for o in objectives)
    layer_names: Dict[LayerKey, Tuple[str, Optional[str]]] = {}
    for obj in objectives:
        for key in obj.needs:
            if key == (None, None):
                if target is None:
                    raise ValueError("The objective reads 'the layer being visualised' but no layer was given.")
                layer_names[key] = target
            else:
                layer_names[key] = (L.resolve_layer(model, key[0])[0], key[1])
    if not layer_names and not full:
        raise ValueError("The objective reads no layer and no class scores; nothing to optimise.")
    points = {}
    for key, (name, relu) in layer_names.items():
        hook_name, _, where = L.capture_point(model, name, relu)
        points[key] = (hook_name, where)
    stop = None
    if not full:
        order = {n: i for i, n in enumerate(L.layers(model).names())}
        stop = max(points.values(), key=lambda p: (order.get(p[0], -1), p[1] == "output"))
    return _Forward(points, stop, layer_names)


def _autocast(device: torch.device, autocast: Optional[str]):
    if autocast is None:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if autocast == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# --------------------------------------------------------------------------- the loop


def render(
    model: nn.Module,
    objective,
    *,
    param: Union[str, ParamSpec] = "fft",
    transforms=(),
    optimizer: str = "adam",
    lr: float = 0.05,
    steps: int = 256,
    size=224,
    channels: Optional[Sequence[int]] = None,
    n: Optional[int] = None,
    layer=None,
    relu: Optional[str] = None,
    regularizers=(),
    seed: int = 0,
    seed_keys: Optional[Sequence[int]] = None,
    init: Optional[torch.Tensor] = None,
    octaves: int = 1,
    octave_scale: float = 1.4,
    snapshot_every: Optional[int] = None,
    batch_size: Optional[int] = -1,
    fast: bool = True,
    channels_last: Optional[bool] = None,
    autocast: Optional[str] = None,
    device=None,
    progress: bool = True,
    desc: str = "render",
) -> RenderResult:
    """Optimise a batch of images to maximise ``objective``: the loop every labkit optimisation uses.

    Args:
        model: a labkit model in eval mode (never modified; no parameter gets a ``.grad``).
        objective: an :class:`~labkit.featurevis.objectives.Objective` (or a name, e.g. ``"mean"``),
            giving a score ``[N]`` per image, higher is better.
        param: "pixel", "fft" or a spec from :func:`~labkit.featurevis.param.pixel` / ``fft(...)``.
        transforms: random transforms applied before each forward pass, ``()`` for none, or "standard".
        optimizer: "adam", or "normalized" (plain ascent, each image's step divided by its largest
            absolute gradient; the Schneider project's step).
        lr: learning rate (Adam) or step size ("normalized"), in the parameter's units.
        steps: optimisation steps per octave (>= 1).
        size: image side in px, int or ``(H, W)``, of the first octave.
        channels: ``[N]`` the channel each image is optimised for (what an objective with
            ``channel=None`` reads; class indices for :func:`~labkit.featurevis.objectives.class_logit`).
            Default ``range(n)``.
        n: batch size when ``channels`` is not given.
        layer, relu: the layer an objective with ``layer=None`` reads (name or handout index), and
            None / "before" / "after" its non-linearity.
        regularizers: penalties (Objectives added to the score) and image operations (:class:`ImageOp`).
        seed, seed_keys: image ``i`` draws its random start and transforms from a generator seeded by
            ``(seed, seed_keys[i])`` (default: ``channels``).
        init: ``[N,3,H,W]`` starting images in ``[0,1]`` (resized to ``size``), instead of noise.
        octaves, octave_scale: octave ``k`` restarts from octave ``k-1``'s images upscaled (bicubic) to
            ``size * octave_scale**k`` and runs ``steps`` more steps.
        snapshot_every: keep a copy of the images every this many steps.
        batch_size: images per forward/backward pass (-1: :func:`default_batch_size`; None: all).
            Gradients are per image, so this changes speed and memory, not results. Ignored for
            objectives that couple the batch.
        fast: run a frozen copy with batch norms folded into convolutions (see ``fastpath``).
        channels_last: use the channels-last memory layout in that copy, with 1x1 convolutions as
            matrix products (None: :func:`default_channels_last`).
        autocast: None (float32), "bf16" or "fp16" for the forward pass.
        device: where to optimise (default: the model's device; the model must be there).
        progress: show a tqdm progress bar; desc: its label.

    Returns:
        :class:`RenderResult`.

    Raises:
        ValueError: bad steps/octaves/optimizer/autocast/size, or an objective that reads nothing.
    """
    from tqdm.auto import tqdm

    from labkit.images import normalize

    if int(steps) < 1 or int(octaves) < 1 or octave_scale <= 0:
        raise ValueError(f"steps and octaves must be >= 1 and octave_scale > 0, got {steps}, {octaves}, {octave_scale}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}. Valid choices: {', '.join(OPTIMIZERS)}.")
    if autocast not in AUTOCAST:
        raise ValueError(f"Unknown autocast {autocast!r}. Valid choices: None, 'bf16', 'fp16'.")
    if channels is None:
        if n is None or int(n) < 1:
            raise ValueError("Give channels (one per image) or n >= 1.")
        channels = list(range(int(n)))
    channels = [int(c) for c in channels]
    n = len(channels)
    if n == 0:
        raise ValueError("Nothing to optimise: channels is empty.")
    keys = channels if seed_keys is None else [int(k) for k in seed_keys]
    if len(keys) != n:
        raise ValueError(f"Got {len(keys)} seed keys for {n} images.")
    base_hw = _size_hw(size)
    spec = as_param(param)
    obj = as_objective(objective)
    augment = _resolve_transforms(transforms)
    penalties, ops = _split_regularizers(regularizers)
    target = None if layer is None else (L.resolve_layer(model, layer)[0], relu)
    forward = _plan(model, target, [obj, *penalties])
    device = torch.device(device) if device is not None else model_device(model)
    if batch_size == -1:
        batch_size = default_batch_size(device)
    if channels_last is None:
        channels_last = default_channels_last(device)
    chunk = n if (batch_size is None or obj.couples_batch or any(p.couples_batch for p in penalties)) \
        else max(1, int(batch_size))
    gens = sample_generators(seed, keys)
    chan = torch.tensor(channels, dtype=torch.long, device=device)

    net, folded, cl = model, [], False
    if fast:
        probe = torch.rand(1, 3, *base_hw, generator=torch.Generator().manual_seed(0)).to(device)

        def captured(m, x):
            acts, logits = forward(m, normalize(x, model), to_float=True)
            return [*acts.values()] + ([logits] if logits is not None else [])

        copy = inference_copy(
            model, stop_layer=None if forward.stop is None else forward.stop[0],
            hooked_outputs=[p[0] for p in forward.points.values() if p[1] == "output"],
            hooked_inputs=[p[0] for p in forward.points.values() if p[1] == "input"],
            channels_last=channels_last, unpad_same=device.type == "cpu",  # timed on a CPU only
            check=(probe, captured))
        net, folded, cl = copy.model, copy.folded, copy.channels_last

    def state_of(x01, acts_logits, idx):
        acts, logits = acts_logits
        return StepState(acts=acts, channels=chan[idx], images=x01, logits=logits, model=model)

    def run(x01_aug):
        x_in = normalize(x01_aug, model)
        if cl:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        with _autocast(device, autocast):
            return forward(net, x_in, to_float=autocast is not None)

    snapshots: List[Tuple[int, torch.Tensor]] = []
    history: List[float] = []
    bar = tqdm(total=int(steps) * int(octaves), disable=not progress, desc=f"{desc} x{n}", leave=False)
    global_step = 0
    images = None if init is None else init.detach().to(device, torch.float32)
    try:
        for octave in range(int(octaves)):
            hw = tuple(max(8, round(s * octave_scale ** octave)) for s in base_hw)
            init01 = None
            if images is not None:
                init01 = images if tuple(images.shape[-2:]) == hw else \
                    F.interpolate(images, size=hw, mode="bicubic", align_corners=False).clamp(0, 1)
                if init01.shape[0] == 1 and n > 1:
                    init01 = init01.expand(n, -1, -1, -1).contiguous()
            image_param = spec.build(n, hw, gens=gens, model=model, device=device, init01=init01)
            params = image_param.parameters()
            opt = torch.optim.Adam(params, lr=float(lr)) if optimizer == "adam" else None
            for _ in range(int(steps)):
                x01 = image_param()
                leaf = x01.detach().requires_grad_(True) if chunk < n else x01
                grads01, total = [], 0.0
                for start in range(0, n, chunk):
                    idx = slice(start, start + chunk)
                    part = leaf[idx] if chunk < n else leaf
                    state = state_of(part, run(augment(part, gens[idx])), idx)
                    score = obj(state)
                    for pen in penalties:
                        score = score + pen(state)
                    total += float(score.detach().sum())
                    if chunk < n:  # sum, not mean: each image's gradient is independent of the batch
                        grads01.append(torch.autograd.grad(-score.sum(), part)[0])
                    else:
                        grads01 = None
                        grads = torch.autograd.grad(-score.sum(), params)
                if grads01 is not None:
                    grads = torch.autograd.grad(x01, params, grad_outputs=torch.cat(grads01))
                if opt is not None:
                    for p, g in zip(params, grads):
                        p.grad = g
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                else:
                    with torch.no_grad():
                        for p, g in zip(params, grads):
                            peak = g.abs().flatten(1).amax(dim=1).view(-1, *([1] * (g.dim() - 1)))
                            p -= float(lr) * g / (peak + 1e-8)
                image_param.project()
                global_step += 1
                history.append(total / n)
                for op in ops:
                    if global_step % op.every == 0:
                        with torch.no_grad():
                            image_param.set_images(op(image_param()).clamp(0, 1))
                if snapshot_every and global_step % int(snapshot_every) == 0:
                    snapshots.append((global_step, image_param().detach().cpu().float().clone()))
                bar.update(1)
                if progress:
                    bar.set_postfix(score=f"{history[-1]:.3g}", refresh=False)
            with torch.no_grad():
                images = image_param().detach().clamp(0, 1)
    finally:
        bar.close()

    with torch.no_grad():  # measured on the original model, in float32, without augmentation
        scores = torch.cat([obj(state_of(images[i:i + chunk], forward(model, normalize(images[i:i + chunk], model)),
                                         slice(i, i + chunk))) for i in range(0, n, chunk)]) \
            if chunk < n else obj(state_of(images, forward(model, normalize(images, model)), slice(None)))
    settings = dict(param=repr(spec), transforms=[repr(t) for t in augment.transforms],
                    regularizers=[getattr(r, "name", repr(r)) for r in (*penalties, *ops)], objective=obj.name,
                    steps=int(steps), size=base_hw, lr=float(lr), optimizer=optimizer, seed=seed, octaves=int(octaves),
                    octave_scale=octave_scale, folded=len(folded), channels_last=cl, autocast=autocast,
                    batch_size=chunk)
    return RenderResult(images=images.cpu().float(), scores=scores.detach().cpu().float(), history=history,
                        snapshots=snapshots, settings=settings)

