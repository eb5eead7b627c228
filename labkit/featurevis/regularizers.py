"""Regularisers: priors that keep visualisations image-like.

Two kinds, both accepted in ``visualize(..., regularizers=[...])``:

* **penalties** are :class:`~labkit.featurevis.objectives.Objective` s with a negative score per
  image (so they also compose with ``+``/``*``): :func:`l2`, :func:`total_variation`,
  :func:`scharr_edges` and :func:`color_penalty` (the last two from the Schneider project).
* **image operations** change the images directly between steps (:class:`ImageOp`):
  :func:`blur_every` (Yosinski et al.'s Gaussian blur every k steps) and :func:`weight_decay`.

Penalties read the un-augmented images in ``[0,1]``; each returns ``-weight * value`` per image,
where ``value`` is a mean over pixels, so weights do not depend on the image size.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .objectives import Objective, StepState

__all__ = ["l2", "total_variation", "scharr_edges", "color_penalty", "ImageOp", "blur_every", "weight_decay",
           "gaussian_blur", "scharr_gradients"]


def _normalized(state: StepState) -> torch.Tensor:
    from labkit.images import normalize

    return normalize(state.images, state.model)


def l2(weight: float = 1e-3) -> Objective:
    """Simonyan et al.'s L2 prior: ``-weight * mean(x_norm**2)``, with ``x_norm`` the image in the
    model's normalised units (0 = the training set's mean colour)."""
    return Objective(lambda s: -weight * _normalized(s).pow(2).flatten(1).mean(1), f"l2({weight:g})")


def total_variation(weight: float = 0.1) -> Objective:
    """Total variation: ``-weight * (mean |dx| + mean |dy|)`` of neighbouring pixels, ``[0,1]`` units."""

    def score(s: StepState) -> torch.Tensor:
        x = s.images
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        return -weight * (dx + dy)

    return Objective(score, f"total_variation({weight:g})")


_SCHARR = torch.tensor([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]]) / 32.0


def scharr_gradients(x: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Scharr derivatives of every colour channel: ``[N,3,H,W] -> [N,2,3,H,W]``
    (replicate padding; kernels divided by 32, so a ramp rising by ``d`` per pixel gives ``|g| = d``)."""
    k = torch.stack([_SCHARR, _SCHARR.T]).to(device=x.device, dtype=x.dtype)  # [2,3,3]
    n, c, h, w = x.shape
    flat = F.pad(x.reshape(n * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    return F.conv2d(flat, k.unsqueeze(1)).view(n, c, 2, h, w).transpose(1, 2)


def scharr_edges(weight: float = 1.0) -> Objective:
    """The Schneider project's sharp-edge penalty: the image convolved with a horizontal and a
    vertical Scharr filter, ``-weight * mean(gx**2 + gy**2)`` over pixels and colours. Squared, so
    sharp jumps (pixel noise) cost far more than gentle shading."""

    def score(s: StepState) -> torch.Tensor:
        g = scharr_gradients(s.images)
        return -weight * g.pow(2).sum(dim=1).flatten(1).mean(1)

    return Objective(score, f"scharr_edges({weight:g})")


def color_penalty(weight: float = 0.1) -> Objective:
    """The Schneider project's penalty on high colour values: ``-weight * mean |x_norm|``, the image's
    distance from the training set's mean colour in the model's normalised units (an L1 prior,
    gentler on a few saturated pixels than :func:`l2`)."""
    return Objective(lambda s: -weight * _normalized(s).abs().flatten(1).mean(1), f"color_penalty({weight:g})")


# --------------------------------------------------------------------------- image operations


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[N,C,H,W]`` with standard deviation ``sigma`` pixels (reflect borders)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    n, c, h, w = x.shape
    y = x.reshape(n * c, 1, h, w)
    mode = "reflect" if min(h, w) > radius else "replicate"
    y = F.conv2d(F.pad(y, (radius, radius, 0, 0), mode=mode), k.view(1, 1, 1, -1))
    y = F.conv2d(F.pad(y, (0, 0, radius, radius), mode=mode), k.view(1, 1, -1, 1))
    return y.view(n, c, h, w)


class ImageOp:
    """An operation on the images ``[N,3,H,W]`` in ``[0,1]`` applied after every ``every``-th step."""

    def __init__(self, fn, every: int = 1, name: Optional[str] = None):
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}.")
        self.fn, self.every, self.name = fn, int(every), name or getattr(fn, "__name__", "op")

    def __call__(self, x01: torch.Tensor) -> torch.Tensor:
        return self.fn(x01)

    def __repr__(self) -> str:
        return f"ImageOp({self.name}, every={self.every})"


def blur_every(k: int = 4, sigma: float = 0.5) -> ImageOp:
    """Blur the images with a Gaussian of ``sigma`` pixels every ``k`` steps (Yosinski et al. 2015)."""
    return ImageOp(lambda x: gaussian_blur(x, sigma), every=k, name=f"blur_every({k}, sigma={sigma:g})")


def weight_decay(rate: float = 1e-3, every: int = 1) -> ImageOp:
    """Decay the images towards mid-grey: ``x <- 0.5 + (1 - rate) * (x - 0.5)`` every ``every`` steps."""
    if not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate}.")
    return ImageOp(lambda x: 0.5 + (1 - rate) * (x - 0.5), every=every, name=f"weight_decay({rate:g})")


#: Penalty weight per unit of the CLI's ``--sharpness`` (Schneider's image_gen.py flag): chosen so that
#: ``--sharpness 5`` (weight 2000 on the mean squared Scharr gradient) visibly smooths pixel noise in the
#: handout preset and softens the quality preset without flattening its patterns.
SHARPNESS_UNIT = 400.0
#: Penalty weight per unit of the CLI's ``--color``.
COLOR_UNIT = 20.0
