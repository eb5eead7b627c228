"""Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017)."""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from labkit.layers import hooks, last_conv, resolve_layer

from ._common import Target, _check_input, _eval_mode, _scores, _targets
from .gradients import guided_backprop

__all__ = ["grad_cam", "guided_grad_cam"]


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
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.
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


