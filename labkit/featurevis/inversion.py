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

from .objectives import Objective, StepState
from .param import as_param
from .regularizers import total_variation
from .render import render, sample_generators

__all__ = ["InversionResult", "invert"]


@dataclasses.dataclass
class InversionResult:
    """What :func:`invert` returns.

    Attributes:
        images: ``[N,3,H,W]`` reconstructions in ``[0,1]`` on the CPU.
        relative_error: ``[N]`` ``||phi(x_hat) - phi(x)||^2 / ||phi(x)||^2`` at the end.
        initial_error: ``[N]`` the same for the starting noise (how far the optimisation came).
        losses: mean total loss (relative error + prior) per step.
        layer, relu: the layer whose features were matched.
    """

    images: torch.Tensor
    relative_error: torch.Tensor
    initial_error: torch.Tensor
    losses: List[float]
    layer: str
    relu: Optional[str]

    def titles(self) -> List[str]:
        """One short title per image: the layer and the final relative error."""
        return [f"from {self.layer}\nrel. error {float(e):.2f}" for e in self.relative_error]


def invert(model: nn.Module, x: torch.Tensor, layer, *, steps: int = 200, tv_weight: float = 0.05,
           lr: float = 0.05, relu: Optional[str] = None, param="pixel", transforms=None, seed: int = 0,
           progress: bool = True, batch_size: Optional[int] = -1, fast: bool = True) -> InversionResult:
    """Reconstruct images from their activations at ``layer`` (Mahendran & Vedaldi 2015).

    Minimises ``||phi(x_hat) - phi(x)||^2 / ||phi(x)||^2 + tv_weight * TV(x_hat)`` per image over
    ``x_hat`` (TV in ``[0,1]`` units, see :func:`~labkit.featurevis.regularizers.total_variation`)
    with :func:`~labkit.featurevis.render`; the forward pass stops at ``layer``.

    Args:
        x: ``[N,3,H,W]`` preprocessed batch (the photos to invert) on the model's device.
        layer: name or handout index; relu: None/"before"/"after" its non-linearity.
        steps: Adam steps; lr: learning rate in the parameter's units (pixel: normalised units).
        tv_weight: strength of the total-variation prior.
        param: "pixel" or "fft" (or a spec); transforms: optional random transforms (default none).
        seed: seeds the starting noise (per image).
        batch_size, fast: speed settings of :func:`~labkit.featurevis.render`.

    Returns:
        :class:`InversionResult` with ``images`` ``[N,3,H,W]`` in ``[0,1]``.
    """
    from labkit.images import normalize

    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be a preprocessed batch [N,3,H,W], got shape {tuple(x.shape)}.")
    name, _ = L.resolve_layer(model, layer)
    with torch.no_grad():
        target = L.activations(model, x.detach(), name, relu=relu).detach().float()
    norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)

    def relative_error(state: StepState) -> torch.Tensor:
        idx = state.channels  # image i of the batch inverts photo channels[i]
        return (state.activation(None, None) - target[idx]).flatten(1).pow(2).sum(1) / norm[idx]

    match = Objective(lambda s: -relative_error(s), "feature_match", needs=[(None, None)])
    n, _, h, w = x.shape
    out = render(model, match, param=param, transforms=transforms or (), lr=lr, steps=steps, size=(h, w),
                 channels=range(n), layer=name, relu=relu, regularizers=[total_variation(tv_weight)], seed=seed,
                 progress=progress, desc=f"invert {name}", batch_size=batch_size, fast=fast, device=x.device)
    with torch.no_grad():  # the starting noise, as render draws it (same generators)
        start = as_param(param).build(n, (h, w), gens=sample_generators(seed, range(n)), model=model,
                                      device=x.device)()
        initial = (L.activations(model, normalize(start, model), name, relu=relu).float() - target
                   ).flatten(1).pow(2).sum(1) / norm
    return InversionResult(images=out.images, relative_error=-out.scores, initial_error=initial.cpu(),
                           losses=[-v for v in out.history], layer=name, relu=relu)
