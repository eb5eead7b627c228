"""Gradient methods: the plain input gradient, vanilla saliency and guided backpropagation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from labkit.scores import input_gradient

from ._common import Target, _check_input, _eval_mode, _targets

__all__ = ["gradient", "vanilla", "guided_relus", "guided_backprop"]


def gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Signed gradient of the target logit with respect to the input pixels (in eval mode).

    Args:
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.

    Returns:
        [N,3,H,W] d logit / d x, in logit units per unit of the normalised input.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    with _eval_mode(model):
        return input_gradient(model, x, t)


def vanilla(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Vanilla gradient saliency (Simonyan et al. 2014): how much each pixel can change the class score.

    ``map[n,i,j] = max_c |d logit_target / d x[n,c,i,j]|`` (captum's ``Saliency(abs=True)``, then the
    channel max of the paper). The signed gradient it is made from (the Duke handout's
    gray-means-zero picture, ``labkit.plot.signed_gradient_image``) is :func:`gradient`.

    Args:
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.

    Returns:
        [N,H,W] non-negative map.
    """
    return gradient(model, x, target).abs().amax(dim=1)


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
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.

    Returns:
        [N,3,H,W] signed map (logit units per unit of normalised input), same definition as captum's
        ``GuidedBackprop`` on a model whose rectifiers are all ``nn.ReLU`` modules.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    with _eval_mode(model), guided_relus():
        return input_gradient(model, x, t)


