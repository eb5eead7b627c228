"""Occlusion sensitivity (Zeiler & Fergus 2014)."""
from __future__ import annotations

import math
import numbers
from typing import List, Optional, Tuple

import torch
from torch import nn

from ._common import DEFAULT_MEMORY_MB, Target, _baseline_like, _check_input, _eval_mode, _progress, _scores, \
    _targets, chunk_size

__all__ = ["occlusion"]


def _pair(value, what: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in pair):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair of them, got {value!r}.")
    return int(pair[0]), int(pair[1])


def _window_starts(size: int, window: int, stride: int) -> List[int]:
    # captum's count: ceil((size - window) / stride) + 1; a last window past the edge is cut at the edge
    count = math.ceil((size - window) / stride) + 1
    return [k * stride for k in range(count)]


def occlusion(model: nn.Module, x: torch.Tensor, target: Target, *, window=16, stride=8, baseline=0.0,
              memory_mb: Optional[float] = DEFAULT_MEMORY_MB, batch_size: Optional[int] = None,
              progress: Optional[bool] = None) -> torch.Tensor:
    """Occlusion sensitivity (Zeiler & Fergus 2014): cover a square patch, see how much the score drops.

    A ``window x window`` patch (all three channels) is replaced by ``baseline`` at every position on a
    grid with step ``stride``. Each pixel gets the mean drop ``score(x) - score(occluded)`` over the
    windows that cover it, exactly captum's ``Occlusion(model).attribute(x, target=..., baselines=baseline,
    sliding_window_shapes=(3, window, window), strides=(3, stride, stride))`` (which repeats the same
    value in all three channels; we return one channel). Positive = covering it lowers the score.

    Args:
        x: [N,3,H,W] preprocessed batch. target: a class (index or name) or one per image.
        window, stride: pixels; an int or (height, width). ``stride <= window`` so every pixel is covered.
        baseline: fill value in *normalised* units (0.0 = the model's mean colour), or a tensor
            broadcastable to [N,3,H,W].
        memory_mb: memory budget (MiB) of one forward pass; the occluded copies are made and scored in
            chunks that fit it (:func:`labkit.saliency.chunk_size`). ``None``: all positions of an image at once.
        batch_size: occluded copies per forward pass, overriding ``memory_mb``.
        progress: tqdm bar (None: only when there are many batches).

    Returns:
        [N,H,W] map in logit units. The chunking does not change it.
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
    base = _baseline_like(baseline, x)
    positions = [(i, j) for i in _window_starts(height, wh, sh) for j in _window_starts(width, ww, sw)]
    step = chunk_size(model, x, memory_mb, backward=False, batch_size=batch_size)
    chunks = [positions[k:k + step] for k in range(0, len(positions), step)]
    total = torch.zeros(n, height, width, device=x.device, dtype=x.dtype)
    counts = torch.zeros(height, width, device=x.device, dtype=x.dtype)
    for i, j in positions:
        counts[i:i + wh, j:j + ww] += 1
    with _eval_mode(model), torch.no_grad(), _progress(n * len(chunks), "occlusion", progress) as bar:
        clean = torch.cat([_scores(model(x[k:k + step]), t[k:k + step]) for k in range(0, n, step)])
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
