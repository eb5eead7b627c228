"""Saliency and attribution: which input pixels does a class score depend on?

Every method has one signature, ``method(model, x, target, ...)``:

* ``model``: a classifier returning pre-softmax logits ``[N,C]`` (any :func:`labkit.models.load_model`
  model). It is run in eval mode for the call (the previous train/eval flags are restored); its weights,
  modules and hooks are never changed.
* ``x``: a preprocessed batch ``[N,3,H,W]`` (``labkit.images.preprocess``) on the model's device.
* ``target``: the class to explain, an int for the whole batch or one int per image (list or tensor).

The class score is always the pre-softmax logit of ``target``. Maps come back on ``x``'s device,
detached, as float tensors: ``[N,H,W]`` for one value per pixel, ``[N,3,H,W]`` per colour channel.

| function | paper | returns |
|---|---|---|
| :func:`gradient` | - | ``[N,3,H,W]`` signed d score / d x |
| :func:`vanilla` | Simonyan et al. 2014 | ``[N,H,W]`` max over channels of the gradient magnitude |
| :func:`guided_backprop` | Springenberg et al. 2015 | ``[N,3,H,W]`` signed, negative gradients stopped at every ReLU |
| :func:`grad_cam` | Selvaraju et al. 2017 | ``[N,H,W]`` class activation map of a conv layer, upsampled |
| :func:`guided_grad_cam` | Selvaraju et al. 2017 | ``[N,3,H,W]`` guided backprop x Grad-CAM |
| :func:`occlusion` | Zeiler & Fergus 2014 | ``[N,H,W]`` score drop when a patch is covered |
| :func:`smoothgrad` | Smilkov et al. 2017 | ``[N,H,W]`` gradient magnitude averaged over noisy copies |
| :func:`integrated_gradients` | Sundararajan et al. 2017 | ``[N,3,H,W]`` signed, sums to F(x) - F(baseline) |
| :func:`sanity_check` | Adebayo et al. 2018 | rank correlation as weights are randomised top-down |

The definitions match captum's (the tests cross-check ``Saliency``, ``GuidedBackprop``, ``LayerGradCam``,
``GuidedGradCam``, ``Occlusion`` and ``IntegratedGradients``); the docstrings state the few differences.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import numbers
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from labkit._table import RecordTable

from labkit.layers import hooks, last_conv, resolve_layer
from labkit.layers import layers as layer_table

__all__ = [
    "gradient",
    "vanilla",
    "guided_backprop",
    "guided_relus",
    "grad_cam",
    "guided_grad_cam",
    "occlusion",
    "smoothgrad",
    "integrated_gradients",
    "IGResult",
    "IG_METHODS",
    "sanity_check",
    "SanityResult",
    "METHODS",
]

Target = Union[int, Sequence[int], torch.Tensor]


# --------------------------------------------------------------------------- input checks


def _check_input(model: nn.Module, x) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a preprocessed image batch (torch.Tensor [N,3,H,W]), not {type(x).__name__}; "
                        "use labkit.images.preprocess(image, model).")
    if x.dim() != 4 or x.shape[1] != 3:
        hint = " (one image: add the batch dimension with x[None])" if x.dim() == 3 else ""
        raise ValueError(f"x must have shape [N,3,H,W] (a preprocessed batch), got {list(x.shape)}{hint}.")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch (N = 0).")
    if not x.is_floating_point():
        raise ValueError(f"x must be a float tensor (preprocessed with labkit.images.preprocess), got {x.dtype}.")
    param = next(model.parameters(), None)
    if param is not None and param.device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {param.device}; move one of them (x.to(...)).")


def _num_classes(model: nn.Module) -> Optional[int]:
    classes = getattr(getattr(model, "labkit", None), "classes", None)
    return len(classes) if classes else None


def _targets(model: nn.Module, x: torch.Tensor, target: Target, num_classes: Optional[int] = None) -> torch.Tensor:
    """``target`` -> LongTensor [N] on x's device, range-checked when the class count is known."""
    n = x.shape[0]
    if isinstance(target, bool):
        raise TypeError("target must be a class index (int), not a bool.")
    if isinstance(target, numbers.Integral):
        t = torch.full((n,), int(target), dtype=torch.long)
    else:
        if isinstance(target, torch.Tensor):
            if target.is_floating_point() or target.dtype == torch.bool:
                raise TypeError(f"target must hold integer class indices, got a {target.dtype} tensor.")
            t = target.detach().reshape(-1).to("cpu", torch.long)
            if target.dim() == 0:
                t = t.expand(n)
        elif isinstance(target, (list, tuple, np.ndarray)):
            items = list(np.asarray(target).reshape(-1)) if isinstance(target, np.ndarray) else list(target)
            if not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in items):
                raise TypeError(f"target must be an int or a list of ints (one per image), got {target!r}.")
            t = torch.tensor([int(v) for v in items], dtype=torch.long)
        else:
            raise TypeError(f"target must be an int, a list of ints or an integer tensor, not {type(target).__name__}.")
        if t.numel() != n:
            raise ValueError(f"target has {t.numel()} entries but the batch has {n} images; "
                             "give one int for all or one per image.")
    count = num_classes if num_classes is not None else _num_classes(model)
    if count is not None:
        _check_target_range(t, count)
    return t.to(x.device)


def _check_target_range(t: torch.Tensor, num_classes: int) -> None:
    bad = [int(v) for v in t.tolist() if not 0 <= v < num_classes]
    if bad:
        raise IndexError(f"target {bad[0]} is out of range: this model has {num_classes} classes, "
                         f"valid targets are 0..{num_classes - 1}.")


def _scores(logits: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Target logits [B] from [B,C] logits, after checking the range against the real output."""
    if logits.dim() != 2:
        raise ValueError(f"The model must return logits [N,C]; it returned shape {list(logits.shape)}.")
    _check_target_range(t, logits.shape[1])
    return logits.gather(1, t[:, None]).squeeze(1)


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode for the call (dropout off, BN running stats), restoring every module's flag after."""
    flags = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _input_grads(model: nn.Module, inputs: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """d score_i / d inputs_i for a batch [B,3,H,W] (images are independent in eval mode)."""
    inputs = inputs.detach().requires_grad_(True)
    with torch.enable_grad():
        score = _scores(model(inputs), t)
        (grad,) = torch.autograd.grad(score.sum(), inputs)
    return grad


def _progress(total: int, desc: str, progress: Optional[bool]):
    from tqdm.auto import tqdm

    show = total >= 8 if progress is None else progress
    return tqdm(total=total, desc=desc, disable=not show, leave=False)


def _channel_max(m: torch.Tensor) -> torch.Tensor:
    return m.amax(dim=1)


# --------------------------------------------------------------------------- gradients


def gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Signed gradient of the target logit with respect to the input pixels.

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.

    Returns:
        [N,3,H,W] d logit / d x, in logit units per unit of the normalised input.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    with _eval_mode(model):
        return _input_grads(model, x, t)


def vanilla(model: nn.Module, x: torch.Tensor, target: Target, *, return_signed: bool = False):
    """Vanilla gradient saliency (Simonyan et al. 2014): how much each pixel can change the class score.

    ``map[n,i,j] = max_c |d logit_target / d x[n,c,i,j]|`` (captum's ``Saliency(abs=True)``, then the
    channel max of the paper).

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        return_signed: also return the signed gradient (the Duke handout's gray-means-zero picture,
            see ``labkit.plot.signed_gradient_image``).

    Returns:
        [N,H,W] non-negative map, or ``(map, grad)`` with ``grad`` [N,3,H,W] when ``return_signed``.
    """
    grad = gradient(model, x, target)
    sal = _channel_max(grad.abs())
    return (sal, grad) if return_signed else sal


# --------------------------------------------------------------------------- guided backprop


class _GuideOutOfPlace(torch.autograd.Function):
    """Identity forward (a copy); backward lets only positive gradients through."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


class _GuideInPlace(torch.autograd.Function):
    """Same gate for a tensor that is about to be overwritten by an in-place ReLU (``x.relu_()``)."""

    @staticmethod
    def forward(ctx, x):
        ctx.mark_dirty(x)
        return x

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp(min=0)


def _hardtanh_is_relu6(args, kwargs) -> bool:
    # F.hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False): nn.ReLU6 is hardtanh(0, 6)
    min_val = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
    return float(min_val) == 0.0


# rectifiers whose gradient guided backprop gates -> a test of the call's arguments (None: always)
_OUT_OF_PLACE = {F.relu: None, torch.relu: None, torch.Tensor.relu: None, F.relu6: None, F.hardtanh: _hardtanh_is_relu6}
_IN_PLACE = {torch.relu_: None, torch.Tensor.relu_: None, F.relu_: None, F.hardtanh_: _hardtanh_is_relu6}
# where the `inplace` flag sits among the positional arguments
_INPLACE_POSITION = {F.relu: 1, F.relu6: 1, F.hardtanh: 3}


class guided_relus(TorchFunctionMode):
    """Context manager: inside it every ReLU and ReLU6 passes only positive gradients backwards.

    Guided backpropagation's rule (Springenberg et al. 2015) at each rectifier: the gradient flowing
    back is ``relu(grad_out) * [0 < input (< 6 for ReLU6)]``, i.e. the ordinary ReLU gradient with
    negative values clamped, which is what captum's ``GuidedBackprop`` does at each ``nn.ReLU``.

    It works at the function level (``F.relu``, ``F.relu6``, ``F.hardtanh(min_val=0)``, ``relu_``), so it
    also catches ``nn.ReLU(inplace=True)``, timm's ``BatchNormAct2d`` (``nn.ReLU6`` inside) and the
    functional ``F.relu(x, inplace=True)`` of torchvision's GoogLeNet, which module hooks cannot see.
    ``inplace=True`` calls are run out of place (same values; the caller uses the return value) and
    ``x.relu_()`` is gated on its input, so the model's ``inplace`` flags and modules are never touched
    and no hooks are registered. Usage: ``with guided_relus(): model(x)[0, target].backward()``.
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _OUT_OF_PLACE:
            check = _OUT_OF_PLACE[func]
            if check is not None and not check(args, kwargs):
                return func(*args, **kwargs)  # e.g. a Hardtanh(-1, 1) is not a rectifier
            # run in-place variants out of place (same values); the caller uses the return value
            if "inplace" in kwargs:
                kwargs["inplace"] = False
            position = _INPLACE_POSITION.get(func)
            if position is not None and len(args) > position:
                args = (*args[:position], False, *args[position + 1:])
            out = func(*args, **kwargs)
            return _GuideOutOfPlace.apply(out) if isinstance(out, torch.Tensor) and out.requires_grad else out
        if func in _IN_PLACE:
            check = _IN_PLACE[func]
            x = args[0] if args else None
            if (check is None or check(args, kwargs)) and isinstance(x, torch.Tensor) and x.requires_grad:
                # x.relu_() keeps no return value we could wrap: gate x itself just before it is rectified
                _GuideInPlace.apply(x)
        return func(*args, **kwargs)


def guided_backprop(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Guided backpropagation (Springenberg et al. 2015): the input gradient with negative gradients
    stopped at every ReLU/ReLU6 of the whole model (see :class:`guided_relus`).

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.

    Returns:
        [N,3,H,W] signed map (logit units per unit of normalised input), same definition as captum's
        ``GuidedBackprop`` on a model whose rectifiers are all ``nn.ReLU`` modules.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    with _eval_mode(model), guided_relus():
        return _input_grads(model, x, t)


# --------------------------------------------------------------------------- Grad-CAM


def _layer_and_grad(model: nn.Module, x: torch.Tensor, t: torch.Tensor, module: nn.Module, name: str):
    """(activation, d score / d activation) of ``module``'s output, each [N,...]."""
    store: List[torch.Tensor] = []

    def keep(mod, args, out):
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"Layer {name!r} returns {type(out).__name__}, not a tensor; pick a conv layer.")
        act = out.detach().requires_grad_(True)
        store.append(act)
        # the next layer may be an in-place ReLU (VGG): hand on a copy so our tensor keeps the layer's output
        return act.clone()

    with hooks() as handles, _eval_mode(model), torch.enable_grad():
        handles.append(module.register_forward_hook(keep))
        logits = model(x.detach())
        if not store:
            raise ValueError(f"Layer {name!r} did not run in the forward pass.")
        if len(store) > 1:
            raise ValueError(f"Layer {name!r} runs {len(store)} times in one forward pass (a shared module); "
                             "pick a layer that runs once, e.g. a conv layer.")
        score = _scores(logits, t)
        (grad,) = torch.autograd.grad(score.sum(), store[0])
    return store[0].detach(), grad


def grad_cam(model: nn.Module, x: torch.Tensor, target: Target, layer=None, *, relu: bool = True) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): a conv layer's channels weighted by their mean gradient.

    ``cam = relu(sum_k w_k A_k)`` with ``w_k = mean_ij d logit_target / d A_k[i,j]``, where ``A`` is the
    layer's output ``[N,K,h,w]``, then bilinearly upsampled to the input size (``align_corners=False``).
    Same as captum's ``LayerGradCam(...).attribute(relu_attributions=relu)`` followed by
    ``LayerAttribution.interpolate(..., "bilinear")``.

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        layer: dotted name or handout index (see ``labkit.layers.layers(model)``); default the last conv
            layer (``labkit.layers.last_conv``). The layer's *output* is used, e.g. for VGG16's
            ``features.28`` the conv output before its ReLU.
        relu: keep only positive evidence (the paper); ``False`` returns the signed map.

    Returns:
        [N,H,W] map in logit units (non-negative when ``relu``).
    """
    _check_input(model, x)
    name, module = resolve_layer(model, last_conv(model) if layer is None else layer)
    t = _targets(model, x, target)
    act, grad = _layer_and_grad(model, x, t, module, name)
    if act.dim() != 4:
        raise ValueError(f"Grad-CAM needs a layer with a spatial output [N,C,h,w]; {name!r} gives "
                         f"{list(act.shape)}. Pick a conv layer (labkit.layers.conv_layers(model)).")
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = (weights * act).sum(dim=1, keepdim=True)
    if relu:
        cam = F.relu(cam)
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)
    return cam[:, 0]


def guided_grad_cam(model: nn.Module, x: torch.Tensor, target: Target, layer=None) -> torch.Tensor:
    """Guided Grad-CAM: :func:`guided_backprop` times the (rectified) :func:`grad_cam` map.

    Same as captum's ``GuidedGradCam(model, layer).attribute(x, target, interpolate_mode="bilinear")``
    (captum's default upsampling is "nearest"; ours matches :func:`grad_cam`).

    Returns:
        [N,3,H,W] signed map.
    """
    cam = grad_cam(model, x, target, layer, relu=True)
    return guided_backprop(model, x, target) * cam[:, None]


# --------------------------------------------------------------------------- occlusion


def _pair(value, what: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair of them, got {value!r}.")
    return int(pair[0]), int(pair[1])


def _baseline_like(baseline, x: torch.Tensor) -> torch.Tensor:
    """A baseline as a tensor that broadcasts against x: [N,3,H,W] or [1,3,H,W] (or fewer dims)."""
    if baseline is None:
        return torch.zeros_like(x)
    if isinstance(baseline, numbers.Real):
        return torch.full_like(x, float(baseline))
    if isinstance(baseline, torch.Tensor):
        b = baseline.detach().to(x.device, x.dtype)
        try:
            return torch.broadcast_to(b, x.shape).clone()
        except RuntimeError:
            pass
    raise ValueError(f"baseline must be a number or a tensor that broadcasts to x's shape {list(x.shape)} "
                     f"(e.g. [3,H,W], [N,3,H,W] or [3,1,1]); got "
                     f"{list(baseline.shape) if isinstance(baseline, torch.Tensor) else repr(baseline)}.")


def _window_starts(size: int, window: int, stride: int) -> List[int]:
    # captum's count: ceil((size - window) / stride) + 1; a last window past the edge is cut at the edge
    count = math.ceil((size - window) / stride) + 1
    return [k * stride for k in range(count)]


def occlusion(model: nn.Module, x: torch.Tensor, target: Target, *, window=16, stride=8, baseline=0.0,
              batch_size: int = 64, progress: Optional[bool] = None) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014): cover a square patch, see how much the score drops.

    A ``window x window`` patch (all three channels) is replaced by ``baseline`` at every position on a
    grid with step ``stride``. Each pixel gets the mean drop ``score(x) - score(occluded)`` over the
    windows that cover it, exactly captum's ``Occlusion(model).attribute(x, target=..., baselines=baseline,
    sliding_window_shapes=(3, window, window), strides=(3, stride, stride))`` (which repeats the same
    value in all three channels; we return one channel). Positive = covering it lowers the score.

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        window, stride: pixels; an int or (height, width). ``stride <= window`` so every pixel is covered.
        baseline: fill value in *normalised* units (0.0 = the model's mean colour), or a tensor
            broadcastable to [N,3,H,W].
        batch_size: occluded copies per forward pass.
        progress: tqdm bar (None: only when there are many batches).

    Returns:
        [N,H,W] map in logit units.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    n, _, height, width = x.shape
    wh, ww = _pair(window, "window")
    sh, sw = _pair(stride, "stride")
    if wh > height or ww > width:
        raise ValueError(f"window {wh}x{ww} is larger than the image {height}x{width}.")
    if (sh > wh and height > wh) or (sw > ww and width > ww):
        raise ValueError(f"stride {sh}x{sw} must not exceed the window {wh}x{ww} (pixels would be skipped).")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    base = _baseline_like(baseline, x)
    positions = [(i, j) for i in _window_starts(height, wh, sh) for j in _window_starts(width, ww, sw)]
    chunks = [positions[k:k + batch_size] for k in range(0, len(positions), batch_size)]
    total = torch.zeros(n, height, width, device=x.device, dtype=x.dtype)
    counts = torch.zeros(height, width, device=x.device, dtype=x.dtype)
    for i, j in positions:
        counts[i:i + wh, j:j + ww] += 1
    with _eval_mode(model), torch.no_grad(), _progress(n * len(chunks), "occlusion", progress) as bar:
        clean = _scores(model(x), t)
        for s in range(n):
            for chunk in chunks:
                masks = torch.zeros(len(chunk), 1, height, width, device=x.device, dtype=x.dtype)
                for k, (i, j) in enumerate(chunk):
                    masks[k, :, i:i + wh, j:j + ww] = 1
                occluded = x[s] * (1 - masks) + base[s] * masks
                drop = clean[s] - _scores(model(occluded), t[s].expand(len(chunk)))
                total[s] += (drop[:, None, None] * masks[:, 0]).sum(0)
                bar.update()
    return total / counts


# --------------------------------------------------------------------------- SmoothGrad


def smoothgrad(model: nn.Module, x: torch.Tensor, target: Target, *, samples: int = 25, sigma: float = 0.15,
               batch_size: int = 32, seed: Optional[int] = None, magnitude: bool = True,
               progress: Optional[bool] = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of each image.

    Each image gets ``samples`` copies with Gaussian noise of standard deviation
    ``sigma * (x.max() - x.min())`` (that image's range, in normalised units).

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        samples: noisy copies per image. sigma: noise level as a fraction of the image's value range.
        batch_size: noisy copies per forward/backward pass.
        seed: noise seed. Every image draws its noise from this same seed, so an image's map does not
            depend on the rest of its batch; ``None`` draws a seed from torch's global generator.
        magnitude: ``True``: ``max_c mean_s |grad|`` (average the vanilla maps; what captum's
            ``NoiseTunnel(Saliency)`` with ``abs=True`` gives; opposite signs never cancel);
            ``False``: ``max_c |mean_s grad|`` (the paper: average the signed gradients, then take
            the magnitude for display).

    Returns:
        [N,H,W] non-negative map (logit units per unit of normalised input).
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    if samples < 1 or batch_size < 1:
        raise ValueError(f"samples and batch_size must be >= 1, got samples={samples}, batch_size={batch_size}.")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the image's range), got {sigma}.")
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    n = x.shape[0]
    starts = list(range(0, samples, batch_size))
    result = torch.empty(n, *x.shape[-2:], device=x.device, dtype=x.dtype)
    with _eval_mode(model), _progress(n * len(starts), "smoothgrad", progress) as bar:
        for s in range(n):
            # CPU generator: the same noise on every device
            gen = torch.Generator().manual_seed(seed)
            noise = torch.randn((samples, *x.shape[1:]), generator=gen).to(x.device, x.dtype)
            noise = noise * (sigma * (x[s].max() - x[s].min()))
            acc = torch.zeros_like(x[s])
            for k in starts:
                batch = x[s] + noise[k:k + batch_size]
                grad = _input_grads(model, batch, t[s].expand(len(batch)))
                acc += (grad.abs() if magnitude else grad).sum(0)
                bar.update()
            result[s] = (acc / samples).abs().amax(dim=0)
    return result


# --------------------------------------------------------------------------- integrated gradients


def _riemann_trapezoid(steps: int) -> Tuple[List[float], List[float]]:
    if steps < 2:
        raise ValueError("riemann_trapezoid needs steps >= 2 (both end points are used).")
    h = 1.0 / (steps - 1)
    weights = [h] * steps
    weights[0] = weights[-1] = h / 2
    return torch.linspace(0, 1, steps).tolist(), weights


def _gauss_legendre(steps: int) -> Tuple[List[float], List[float]]:
    points, weights = np.polynomial.legendre.leggauss(steps)
    return (0.5 * (1 + points)).tolist(), (0.5 * weights).tolist()


def _riemann(kind: str) -> Callable[[int], Tuple[List[float], List[float]]]:
    def rule(steps: int):
        alphas = {"left": torch.linspace(0, 1 - 1 / steps, steps), "right": torch.linspace(1 / steps, 1, steps),
                  "middle": torch.linspace(1 / (2 * steps), 1 - 1 / (2 * steps), steps)}[kind]
        return alphas.tolist(), [1.0 / steps] * steps

    return rule


IG_METHODS: Dict[str, Callable[[int], Tuple[List[float], List[float]]]] = {
    "gausslegendre": _gauss_legendre,
    "riemann_trapezoid": _riemann_trapezoid,
    "riemann_left": _riemann("left"),
    "riemann_right": _riemann("right"),
    "riemann_middle": _riemann("middle"),
}
"""Quadrature rules for :func:`integrated_gradients`: name -> steps -> (alphas in [0,1], weights)."""


@dataclasses.dataclass
class IGResult:
    """What :func:`integrated_gradients` returns with ``return_error=True``.

    ``attributions`` [N,3,H,W]; ``error`` [N] = ``|attributions.sum() - (F(x) - F(baseline))|`` per image
    (logit units: how far the quadrature is from completeness); ``delta_score`` [N] = F(x) - F(baseline).
    Unpacks as ``attr, err = integrated_gradients(..., return_error=True)``.
    """

    attributions: torch.Tensor
    error: torch.Tensor
    delta_score: torch.Tensor

    def __iter__(self):
        return iter((self.attributions, self.error))


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: Target, *, baseline=None, steps: int = 50,
                         batch_size: int = 32, method: str = "gausslegendre", return_error: bool = False,
                         progress: Optional[bool] = None):
    """Integrated gradients (Sundararajan et al. 2017): the gradient averaged along the straight path
    from a baseline to the image, times ``x - baseline``.

    ``attr = (x - b) * sum_k w_k * grad F(b + a_k (x - b))`` with quadrature points ``a_k`` and weights
    ``w_k`` from ``method``. Completeness: ``attr.sum() ~= F(x) - F(b)`` (F = target logit); the error
    shrinks as ``steps`` grows. Matches captum's ``IntegratedGradients(model).attribute(x, baselines=b,
    target=..., n_steps=steps, method=method)``, except ``"riemann_trapezoid"``: captum's weights are
    ``1/steps`` (halved at the ends) and sum to ``1 - 1/steps``; ours are the trapezoid rule's
    ``1/(steps-1)`` and sum to 1, so ours are captum's times ``steps/(steps-1)``.

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        baseline: None (zeros in normalised units = the model's mean colour), a number, or a tensor
            broadcastable to [N,3,H,W] (e.g. ``labkit.images.normalize(torch.zeros(1,3,H,W), model)``
            for black).
        steps: points on the path. batch_size: path points per forward/backward pass (across images).
        method: one of :data:`IG_METHODS` ("gausslegendre", "riemann_trapezoid", "riemann_left", ...).
        return_error: return an :class:`IGResult` (attributions + completeness error) instead.

    Returns:
        [N,3,H,W] signed attributions in logit units, or an :class:`IGResult`.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    if method not in IG_METHODS:
        raise ValueError(f"Unknown method {method!r}. Valid choices: {', '.join(IG_METHODS)}.")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got steps={steps}, batch_size={batch_size}.")
    alphas, weights = IG_METHODS[method](steps)
    alpha = torch.tensor(alphas, device=x.device, dtype=x.dtype)
    weight = torch.tensor(weights, device=x.device, dtype=x.dtype)
    base = _baseline_like(baseline, x)
    diff = x.detach() - base
    n = x.shape[0]
    # (image, step) pairs are flattened so one batch can hold path points of several images
    flat = torch.arange(n * steps, device=x.device)
    chunks = flat.split(batch_size)
    acc = torch.zeros_like(x)
    with _eval_mode(model), _progress(len(chunks), "integrated gradients", progress) as bar:
        for chunk in chunks:
            img, k = chunk // steps, chunk % steps
            points = base[img] + alpha[k, None, None, None] * diff[img]
            grad = _input_grads(model, points, t[img])
            acc.index_add_(0, img, grad * weight[k, None, None, None])
            bar.update()
        attr = diff * acc
        if not return_error:
            return attr
        with torch.no_grad():
            ends = _scores(model(torch.cat([x.detach(), base])), torch.cat([t, t]))
    delta = ends[:n] - ends[n:]
    error = (attr.sum(dim=(1, 2, 3)) - delta).abs()
    return IGResult(attr, error, delta)


# --------------------------------------------------------------------------- sanity check


METHODS: Dict[str, Callable] = {
    "vanilla": vanilla,
    "guided_backprop": guided_backprop,
    "grad_cam": grad_cam,
    "guided_grad_cam": guided_grad_cam,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "occlusion": occlusion,
}
"""Every attribution method by name; all share the signature ``method(model, x, target, **options)``."""


class SanityResult(RecordTable):
    """Records of :func:`sanity_check`, one dict per step: ``step``, ``layer``, ``spearman``
    (mean over images) and ``spearman_per_image``. Prints as a table (text, or HTML in Jupyter)."""

    method: str = ""

    def _head(self) -> List[str]:
        return ["step", "randomised down to", "Spearman vs original"]

    def _cells(self, row) -> List[str]:
        return [str(row["step"]), row["layer"], f"{row['spearman']:.3f}"]

    def _title(self) -> str:
        return f"Sanity check ({self.method})" if self.method else "Sanity check"

    @property
    def spearman(self) -> List[float]:
        """The mean Spearman correlation of each step, in order."""
        return [r["spearman"] for r in self]


def _as_map(result) -> torch.Tensor:
    """A method's output -> [N,h,w] magnitude map (channel max of |.| for [N,3,H,W])."""
    if isinstance(result, IGResult):
        result = result.attributions
    if isinstance(result, tuple):
        result = result[0]
    result = result.detach().abs()
    return result.amax(dim=1) if result.dim() == 4 else result


def _spearman_per_image(a: torch.Tensor, b: torch.Tensor) -> List[float]:
    from scipy.stats import spearmanr

    out = []
    for u, v in zip(a.flatten(1).cpu().double().numpy(), b.flatten(1).cpu().double().numpy()):
        if np.ptp(u) == 0 or np.ptp(v) == 0:
            out.append(float("nan"))  # a constant map has no ranking
        else:
            out.append(float(spearmanr(u, v).statistic))
    return out


def _mean(values: List[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _randomize_(module: nn.Module, gen: torch.Generator) -> int:
    """Re-draw every conv/linear weight and bias inside ``module`` from N(0, std of the original tensor)."""
    count = 0
    for m in module.modules():
        if isinstance(m, _WEIGHTED):
            for p in (m.weight, m.bias):
                if p is None:
                    continue
                std = float(p.detach().float().std()) if p.numel() > 1 else 0.0
                noise = torch.randn(p.shape, generator=gen) * std
                with torch.no_grad():
                    p.copy_(noise.to(p.device, p.dtype))
            count += 1
    return count


def sanity_check(model: nn.Module, x: torch.Tensor, target: Target, method: Union[str, Callable], *,
                 layers: Optional[Sequence] = None, max_steps: Optional[int] = None, seed: int = 0,
                 method_kwargs: Optional[dict] = None, progress: Optional[bool] = None) -> SanityResult:
    """Cascading model-parameter randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps").

    On a deep copy of ``model`` (the original is never changed) the weights are randomised from the
    logits downwards, one layer (or block) per step and cumulatively; after each step the method's map
    is recomputed and compared with the original map by Spearman rank correlation of the absolute maps
    (channel max of ``|.|`` for [N,3,H,W] methods, flattened per image, averaged over images). A method
    that explains the *model* should lose its correlation quickly; one that stays high is mostly
    showing the image (edges), whatever the weights.

    Randomising = every conv/linear weight and bias inside the step's module is redrawn from a normal
    distribution with the original tensor's standard deviation (so activations keep their scale);
    batch-norm layers are left as they are.

    Args:
        x: [N,3,H,W] preprocessed batch. target: int or one int per image.
        method: a name in :data:`METHODS` or a callable ``method(model, x, target, **method_kwargs)``.
        layers: which modules to randomise, as names or handout indices; each one is a step (a block
            name randomises everything in it). They are applied top-down (reverse call order). Default:
            every conv/linear layer.
        max_steps: stop after this many randomisation steps. seed: seed of the random weights.
        method_kwargs: extra options for the method (e.g. ``{"samples": 10}`` for SmoothGrad).

    Returns:
        A :class:`SanityResult`: step 0 is the original model (correlation 1), then one record per step
        ``{"step", "layer", "spearman", "spearman_per_image"}``.
    """
    _check_input(model, x)
    _targets(model, x, target)
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}. Valid choices: {', '.join(METHODS)} (or a callable).")
        name, fn = method, METHODS[method]
    elif callable(method):
        name, fn = getattr(method, "__name__", "method"), method
    else:
        raise TypeError(f"method must be a name ({', '.join(METHODS)}) or a callable, not {type(method).__name__}.")
    kwargs = dict(method_kwargs or {})
    if max_steps is not None and max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}.")

    rows = layer_table(model)
    if layers is None:
        names = [row.name for row in rows if isinstance(model.get_submodule(row.name), _WEIGHTED)]
    else:
        def call_position(module_name: str) -> int:  # a block sits where its first layer runs
            return next((pos for pos, row in enumerate(rows)
                         if row.name == module_name or row.name.startswith(module_name + ".")), -1)

        names = sorted(dict.fromkeys(resolve_layer(model, ref)[0] for ref in layers), key=call_position)
    names = names[::-1]  # top-down: logits first
    if max_steps is not None:
        names = names[:max_steps]

    original = _as_map(fn(model, x, target, **kwargs))
    result = SanityResult()
    result.method = name
    per_image = _spearman_per_image(original, original)
    result.append({"step": 0, "layer": "(original)", "spearman": _mean(per_image), "spearman_per_image": per_image})
    shadow = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    from tqdm.auto import tqdm

    show = len(names) >= 4 if progress is None else progress
    for step, layer_name in enumerate(tqdm(names, desc=f"sanity check ({name})", disable=not show, leave=False),
                                      start=1):
        if _randomize_(shadow.get_submodule(layer_name), gen) == 0:
            raise ValueError(f"{layer_name!r} has no conv/linear weights to randomise.")
        current = _as_map(fn(shadow, x, target, **kwargs))
        per_image = _spearman_per_image(original, current)
        result.append({"step": step, "layer": layer_name, "spearman": _mean(per_image),
                       "spearman_per_image": per_image})
    return result
