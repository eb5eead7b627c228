"""What every saliency method shares: input checks, targets, eval mode, progress bars and the memory budget."""
from __future__ import annotations

import contextlib
import math
import numbers
from typing import Iterator, Optional

import torch
from torch import nn

from labkit.models import model_device
from labkit.scores import Target, class_scores, resolve_targets

DEFAULT_MEMORY_MB = 512.0
"""Default memory budget (MiB) of one forward/backward pass of the batched methods (SmoothGrad, integrated
gradients, occlusion, the sanity check). Measured on a CPU with EfficientNet-Lite0 (one thread, 224 px):
occlusion (window 32, stride 16) grows the process by 410 MB at 512 and by 850 MB at 1024, in the same
time or less, so a whole lab stays within 2 GB on a laptop or Colab's free tier."""

__all__ = ["Target", "DEFAULT_MEMORY_MB", "per_image_bytes", "chunk_size"]


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
    device = model_device(model)
    if device != x.device:
        raise ValueError(f"x is on {x.device} but the model is on {device}; move one of them (x.to(...)).")


def _targets(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """``target`` -> LongTensor [N] on x's device (:func:`labkit.scores.resolve_targets`'s rules)."""
    return resolve_targets(model, target, x.shape[0]).to(x.device)


_scores = class_scores


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


def _progress(total: int, desc: str, progress: Optional[bool]):
    from tqdm.auto import tqdm

    show = total >= 8 if progress is None else progress
    return tqdm(total=total, desc=desc, disable=not show, leave=False)


def _baseline_like(baseline, x: torch.Tensor) -> torch.Tensor:
    """A baseline as a tensor of x's shape [N,3,H,W] (a number, or a tensor that broadcasts to it)."""
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


# --------------------------------------------------------------------------- memory budget


def per_image_bytes(model: nn.Module, x: torch.Tensor, *, backward: bool) -> int:
    """Estimated memory (bytes) that one image of ``x``'s size costs in a pass through ``model``.

    From the layer table at ``x``'s size (``labkit.layers.layers``): with ``backward`` every layer's
    output is kept for the backward pass and gets a gradient of the same size (2 x the sum of all
    layer outputs); without, a few layer outputs and the kernels' workspace are alive at a time
    (5 x the largest). Plus the input and its gradient. An estimate for sizing chunks, not a
    measurement; on EfficientNet-Lite0 at 224 px it is within a factor of 2 above the measured
    resident memory (backward: 151 MB estimated, about 86 MB measured per copy).
    """
    from labkit.layers import layers

    table = layers(model, tuple(int(v) for v in x.shape[1:]))
    sizes = [math.prod(row.out_shape) for row in table if row.out_shape]
    if not sizes:
        sizes = [x[0].numel()]
    values = 2 * sum(sizes) if backward else 5 * max(sizes)
    return int((values + 2 * x[0].numel()) * x.element_size())


def chunk_size(model: nn.Module, x: torch.Tensor, memory_mb: Optional[float], *, backward: bool,
               batch_size: Optional[int] = None) -> int:
    """How many images (noisy copies, path points, occluded copies) to put through ``model`` per pass.

    Args:
        memory_mb: the budget in MiB (:data:`DEFAULT_MEMORY_MB`); ``None``: no budget (everything in one pass).
        batch_size: an explicit count that overrides the budget.

    Returns:
        ``batch_size`` if given, else ``max(1, budget // per_image_bytes(...))``.

    Raises:
        ValueError: ``batch_size < 1`` or ``memory_mb <= 0``.
    """
    if batch_size is not None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int (or None to follow memory_mb), got {batch_size!r}.")
        return int(batch_size)
    if memory_mb is None:
        return 2 ** 31 - 1
    if not isinstance(memory_mb, numbers.Real) or isinstance(memory_mb, bool) or not memory_mb > 0:
        raise ValueError(f"memory_mb must be a positive number of MiB (default {DEFAULT_MEMORY_MB:g}) or None, "
                         f"got {memory_mb!r}.")
    return max(1, int(float(memory_mb) * 2 ** 20 // per_image_bytes(model, x, backward=backward)))
