"""Averaged gradients: SmoothGrad (Smilkov et al. 2017) and integrated gradients (Sundararajan et al. 2017)."""
from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from labkit.scores import input_gradient

from ._common import DEFAULT_MEMORY_MB, Target, _baseline_like, _check_input, _eval_mode, _progress, _scores, \
    _targets, chunk_size

__all__ = ["smoothgrad", "integrated_gradients", "IGResult", "IG_METHODS"]


def smoothgrad(model: nn.Module, x: torch.Tensor, target: Target, *, samples: int = 25, sigma: float = 0.15,
               seed: Optional[int] = None, magnitude: bool = True, memory_mb: Optional[float] = DEFAULT_MEMORY_MB,
               batch_size: Optional[int] = None, progress: Optional[bool] = None) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): gradients averaged over noisy copies of each image.

    Each image gets ``samples`` copies with Gaussian noise of standard deviation
    ``sigma * (x.max() - x.min())`` (that image's range, in normalised units).

    Args:
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.
        samples: noisy copies per image. sigma: noise level as a fraction of the image's value range.
        seed: noise seed. Every image draws its noise from this same seed (``torch.randn((samples, 3, H, W))``
            on a CPU generator, then moved to x's device chunk by chunk), so an image's map does not
            depend on the rest of its batch; ``None`` draws a seed from torch's global generator.
        magnitude: ``True``: ``max_c mean_s |grad|`` (average the vanilla maps; what captum's
            ``NoiseTunnel(Saliency)`` with ``abs=True`` gives; opposite signs never cancel);
            ``False``: ``max_c |mean_s grad|`` (the paper: average the signed gradients, then take
            the magnitude for display).
        memory_mb: memory budget (MiB) of one forward/backward pass; the noisy copies go through the
            model in chunks that fit it (:func:`labkit.saliency.chunk_size`). ``None``: all at once.
        batch_size: noisy copies per pass, overriding ``memory_mb``.

    Returns:
        [N,H,W] non-negative map (logit units per unit of normalised input). The chunking does not change it.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got samples={samples}.")
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 (a fraction of the image's range), got {sigma}.")
    step = chunk_size(model, x, memory_mb, backward=True, batch_size=batch_size)
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    n = x.shape[0]
    starts = list(range(0, samples, step))
    result = torch.empty(n, *x.shape[-2:], device=x.device, dtype=x.dtype)
    with _eval_mode(model), _progress(n * len(starts), "smoothgrad", progress) as bar:
        for s in range(n):
            # CPU generator: the same noise on every device; drawn at once (a chunked draw gives other numbers)
            gen = torch.Generator().manual_seed(seed)
            noise = torch.randn((samples, *x.shape[1:]), generator=gen)
            scale = sigma * (x[s].max() - x[s].min())
            acc = torch.zeros_like(x[s])
            for k in starts:
                batch = x[s] + noise[k:k + step].to(x.device, x.dtype) * scale
                grad = input_gradient(model, batch, t[s].expand(len(batch)))
                acc += (grad.abs() if magnitude else grad).sum(0)
                bar.update()
            result[s] = (acc / samples).abs().amax(dim=0)
    return result


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
    """What :func:`integrated_gradients` returns.

    Attributes:
        attributions: [N,3,H,W] signed attributions in logit units.
        error: [N] ``|attributions.sum() - (F(x) - F(baseline))|`` per image (logit units: how far the
            quadrature is from completeness).
        delta_score: [N] ``F(x) - F(baseline)``, F the target logit.
    """

    attributions: torch.Tensor
    error: torch.Tensor
    delta_score: torch.Tensor


def integrated_gradients(model: nn.Module, x: torch.Tensor, target: Target, *, baseline=None, steps: int = 50,
                         method: str = "gausslegendre", memory_mb: Optional[float] = DEFAULT_MEMORY_MB,
                         batch_size: Optional[int] = None, progress: Optional[bool] = None) -> IGResult:
    """Integrated gradients (Sundararajan et al. 2017): the gradient averaged along the straight path
    from a baseline to the image, times ``x - baseline``.

    ``attr = (x - b) * sum_k w_k * grad F(b + a_k (x - b))`` with quadrature points ``a_k`` and weights
    ``w_k`` from ``method``. Completeness: ``attr.sum() ~= F(x) - F(b)`` (F = target logit); the error
    shrinks as ``steps`` grows. Matches captum's ``IntegratedGradients(model).attribute(x, baselines=b,
    target=..., n_steps=steps, method=method)``, except ``"riemann_trapezoid"``: captum's weights are
    ``1/steps`` (halved at the ends) and sum to ``1 - 1/steps``; ours are the trapezoid rule's
    ``1/(steps-1)`` and sum to 1, so ours are captum's times ``steps/(steps-1)``.

    Args:
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.
        baseline: None (zeros in normalised units = the model's mean colour), a number, or a tensor
            broadcastable to [N,3,H,W] (e.g. ``labkit.images.normalize(torch.zeros(1,3,H,W), model)``
            for black).
        steps: points on the path.
        method: one of :data:`IG_METHODS` ("gausslegendre", "riemann_trapezoid", "riemann_left", ...).
        memory_mb: memory budget (MiB) of one forward/backward pass; the path points (of all images
            together) go through the model in chunks that fit it. ``None``: all at once.
        batch_size: path points per pass, overriding ``memory_mb``.

    Returns:
        :class:`IGResult` (attributions [N,3,H,W], completeness error [N], F(x) - F(baseline) [N]).
        The chunking does not change it.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    if method not in IG_METHODS:
        raise ValueError(f"Unknown method {method!r}. Valid choices: {', '.join(IG_METHODS)}.")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got steps={steps}.")
    step = chunk_size(model, x, memory_mb, backward=True, batch_size=batch_size)
    alphas, weights = IG_METHODS[method](steps)
    alpha = torch.tensor(alphas, device=x.device, dtype=x.dtype)
    weight = torch.tensor(weights, device=x.device, dtype=x.dtype)
    base = _baseline_like(baseline, x)
    diff = x.detach() - base
    n = x.shape[0]
    # (image, step) pairs are flattened so one chunk can hold path points of several images
    chunks = torch.arange(n * steps, device=x.device).split(step)
    acc = torch.zeros_like(x)
    with _eval_mode(model), _progress(len(chunks), "integrated gradients", progress) as bar:
        for chunk in chunks:
            img, k = chunk // steps, chunk % steps
            points = base[img] + alpha[k, None, None, None] * diff[img]
            grad = input_gradient(model, points, t[img])
            acc.index_add_(0, img, grad * weight[k, None, None, None])
            bar.update()
        attr = diff * acc
        with torch.no_grad():
            ends = torch.cat([_scores(model(part), tt) for part, tt in
                              zip(torch.cat([x.detach(), base]).split(step), torch.cat([t, t]).split(step))])
    delta = ends[:n] - ends[n:]
    error = (attr.sum(dim=(1, 2, 3)) - delta).abs()
    return IGResult(attr, error, delta)
