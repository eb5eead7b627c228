"""Model inversion (Mahendran & Vedaldi 2015): which images give the same features as a photo?

Starting from noise, optimise an image so that its activations at ``layer`` match the photo's,
with a total-variation prior. Early layers give back the photo almost exactly; deep layers keep
what the network considers important and lose the rest.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional

import torch
from torch import nn

from labkit import layers as L

from .core import _plan, _resolve_transforms, sample_generators
from .objectives import Objective, StepState
from .param import as_param
from .regularizers import total_variation

__all__ = ["InversionResult", "invert"]


@dataclasses.dataclass
class InversionResult:
    """What :func:`invert` returns.

    Attributes:
        images: ``[N,3,H,W]`` reconstructions in ``[0,1]`` on the CPU.
        relative_error: ``[N]`` ``||phi(x_hat) - phi(x)||^2 / ||phi(x)||^2`` at the end.
        initial_error: ``[N]`` the same for the starting noise (how far the optimisation came).
        losses: mean total loss per step.
        layer, relu: the layer whose features were matched.
    """

    images: torch.Tensor
    relative_error: torch.Tensor
    initial_error: torch.Tensor
    losses: List[float]
    layer: str
    relu: Optional[str]


def invert(model: nn.Module, x: torch.Tensor, layer, *, steps: int = 200, tv_weight: float = 0.05,
           lr: float = 0.05, relu: Optional[str] = None, param="pixel", transforms=None, seed: int = 0,
           progress: bool = True) -> InversionResult:
    """Reconstruct images from their activations at ``layer``.

    Minimises ``||phi(x_hat) - phi(x)||^2 / ||phi(x)||^2 + tv_weight * TV(x_hat)`` per image over
    ``x_hat`` (TV in ``[0,1]`` units, see :func:`~labkit.featurevis.regularizers.total_variation`),
    with Adam. The forward pass stops at ``layer``.

    Args:
        x: ``[N,3,H,W]`` preprocessed batch (the photos to invert) on the model's device.
        layer: name or handout index; relu: None/"before"/"after" its non-linearity.
        steps: Adam steps; lr: learning rate in the parameter's units (pixel: normalised units).
        tv_weight: strength of the total-variation prior.
        param: "pixel" or "fft" (or a spec); transforms: optional random transforms (default none).
        seed: seeds the starting noise (per image).

    Returns:
        :class:`InversionResult`.
    """
    from tqdm.auto import tqdm

    from labkit.images import normalize

    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    name, _ = L.resolve_layer(model, layer)
    with torch.no_grad():
        target = L.activations(model, x.detach(), name, relu=relu).detach()
    norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)

    def relative_error(state: StepState) -> torch.Tensor:
        return (state.activation(None, None) - target).flatten(1).pow(2).sum(1) / norm

    match = Objective(lambda s: -relative_error(s), "feature_match", needs=[(None, None)])
    prior = total_variation(tv_weight)
    plan = _plan(model, (name, relu), [match])
    augment = _resolve_transforms(transforms)
    n, _, h, w = x.shape
    gens = sample_generators(seed, range(n))
    image_param = as_param(param).build(n, (h, w), gens=gens, model=model, device=x.device)
    params = image_param.parameters()
    opt = torch.optim.Adam(params, lr=lr)
    filters = torch.zeros(n, dtype=torch.long, device=x.device)

    def state_of(x01, augmented):
        acts, _ = plan.run(model, normalize(augmented, model))
        return StepState(acts=acts, filters=filters, images=x01, logits=None, model=model)

    with torch.no_grad():
        start = image_param()
        initial = relative_error(state_of(start, start))
    losses = []
    for _ in tqdm(range(steps), disable=not progress, desc=f"invert {name}", leave=False):
        x01 = image_param()
        state = state_of(x01, augment(x01, gens))
        loss = -(match(state) + prior(state))
        grads = torch.autograd.grad(loss.sum(), params)
        for p, g in zip(params, grads):
            p.grad = g
        opt.step()
        opt.zero_grad(set_to_none=True)
        image_param.project()
        losses.append(float(loss.detach().mean()))
    with torch.no_grad():
        final = image_param().clamp(0, 1)
        error = relative_error(state_of(final, final))
    return InversionResult(images=final.cpu().float(), relative_error=error.cpu(), initial_error=initial.cpu(),
                           losses=losses, layer=name, relu=relu)
