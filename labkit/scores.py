"""Class scores: the one place where a *target* becomes class indices and where the gradient of a
class score with respect to the input is taken.

* :func:`class_index` -- a class name (``"tabby"``, case-insensitive, ``_``/``-`` count as spaces) or
  an index, checked, with close matches in the error for an unknown name.
* :func:`resolve_targets` -- ``target`` (an int, a class name, a sequence of either, or an integer
  tensor) -> ``LongTensor [n]`` on the model's device. The same rules everywhere in labkit.
* :func:`class_scores` -- the target logits ``[N]`` picked from ``[N,C]`` logits.
* :func:`input_gradient` -- ``d logit_target / d x`` for a batch, ``x`` left untouched.

The class score is always the pre-softmax logit. Nothing here changes the model (no hooks, no
train/eval flags, no parameter flags).
"""
from __future__ import annotations

import difflib
import numbers
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from labkit.models import imagenet_class_names, model_device

__all__ = ["Target", "class_index", "resolve_targets", "class_scores", "input_gradient"]

Target = Union[int, str, Sequence[Union[int, str]], torch.Tensor]
"""A class to score: an index, a class name, one of either per image, or an integer tensor."""


def _classes(model: Optional[nn.Module]) -> Optional[List[str]]:
    classes = getattr(getattr(model, "labkit", None), "classes", None)
    return list(classes) if classes else None


def _key(name: str) -> str:
    return " ".join(str(name).replace("_", " ").replace("-", " ").lower().split())


def class_index(name_or_idx: Union[str, int], classes: Optional[Sequence[str]] = None) -> int:
    """ImageNet class index of a name or a checked index.

    Args:
        name_or_idx: an int in ``0..len(classes)-1``, a string of digits, a one-element integer
            tensor, or a class name such as ``"German shepherd"``, ``"tabby"``, ``"espresso"``
            (case-insensitive; ``_`` and ``-`` count as spaces).
        classes: the class list (default :func:`labkit.models.imagenet_class_names`), e.g.
            ``model.labkit.classes``.

    Raises:
        ValueError: unknown name (the message lists close matches), a name several entries share
            (pass the index then), or a value that is neither a name nor an index.
        IndexError: index out of range (the message gives the valid range).
    """
    names = list(classes) if classes is not None else imagenet_class_names()
    value = name_or_idx
    if isinstance(value, bool):
        raise ValueError(f"Expected a class name or index, got {value!r}.")
    if torch.is_tensor(value):
        if value.numel() != 1 or value.is_floating_point() or value.dtype == torch.bool:
            raise ValueError(f"Expected one integer class index, got a {value.dtype} tensor of shape {list(value.shape)}.")
        value = int(value.item())
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, numbers.Integral):
        idx = int(value)
        if not 0 <= idx < len(names):
            raise IndexError(f"Class index {idx} is out of range: this model has {len(names)} classes, "
                             f"valid indices are 0..{len(names) - 1}.")
        return idx
    if not isinstance(value, str):
        raise ValueError(f"Expected a class name or index, got {type(value).__name__} {value!r}.")
    key = _key(value)
    hits = [i for i, n in enumerate(names) if _key(n) == key]
    if len(hits) == 1:
        return hits[0]
    if len(hits) > 1:
        raise ValueError(f"{value!r} names several classes: {', '.join(map(str, hits))}; pass the index instead.")
    keys = {_key(n): n for n in names}
    words = [k for k in keys if key and f" {key} " in f" {k} "]  # "cat" -> "tiger cat", "Egyptian cat"
    close = words[:5] + [k for k in difflib.get_close_matches(key, list(keys), n=5, cutoff=0.6) if k not in words]
    hint = f" Close matches: {', '.join(repr(keys[c]) for c in close[:5])}." if close else ""
    raise ValueError(f"Unknown class name {value!r}.{hint} See labkit.models.imagenet_class_names().")


def resolve_targets(model: Optional[nn.Module], target: Target, n: int) -> torch.Tensor:
    """The classes to score for a batch of ``n`` images, as ``LongTensor [n]`` on the model's device.

    Args:
        model: the classifier (its ``model.labkit.classes`` names the classes; a bare module uses
            the ImageNet list), or ``None`` (ImageNet names, CPU).
        target: one class for the whole batch (an int, a digit string or a class name), one per
            image (a list/tuple/array of ints or names), or an integer tensor (0-d or ``n`` values).
        n: the batch size (>= 1).

    Raises:
        TypeError: a float/bool target, or a type that is none of the above.
        ValueError: unknown class name (with close matches) or the wrong number of targets.
        IndexError: a class index out of range.
    """
    if n < 1:
        raise ValueError(f"n (the batch size) must be >= 1, got {n}.")
    classes = _classes(model)
    device = model_device(model) if model is not None else torch.device("cpu")
    if isinstance(target, bool):
        raise TypeError("target must be a class index or name, not a bool.")
    if isinstance(target, (numbers.Integral, str)):
        return torch.full((n,), class_index(target, classes), dtype=torch.long, device=device)
    if isinstance(target, torch.Tensor):
        if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
            raise TypeError(f"target must hold integer class indices, got a {target.dtype} tensor.")
        t = target.detach().reshape(-1).to(device=device, dtype=torch.long)
        if target.dim() == 0:
            t = t.expand(n).clone()
    elif isinstance(target, (list, tuple, np.ndarray)):
        items = list(np.asarray(target).reshape(-1)) if isinstance(target, np.ndarray) else list(target)
        bad = [v for v in items if isinstance(v, bool) or not isinstance(v, (numbers.Integral, str))]
        if bad or (isinstance(target, np.ndarray) and target.dtype.kind not in "iuU"):
            raise TypeError(f"target must be an int, a class name, or a list of them (one per image), got {target!r}.")
        t = torch.tensor([class_index(v, classes) for v in items], dtype=torch.long, device=device)
    else:
        raise TypeError(f"target must be an int, a class name, a list of them or an integer tensor, "
                        f"not {type(target).__name__}.")
    if t.numel() != n:
        raise ValueError(f"target has {t.numel()} entries but the batch has {n} images; "
                         "give one target for all or one per image.")
    count = len(classes) if classes is not None else None
    if count is not None and t.numel():
        low, high = int(t.min()), int(t.max())
        if low < 0 or high >= count:
            bad = low if low < 0 else high
            raise IndexError(f"target {bad} is out of range: this model has {count} classes, "
                             f"valid targets are 0..{count - 1}.")
    return t


def class_scores(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Target logits ``[N]`` from logits ``[N,C]`` and resolved targets ``LongTensor [N]``.

    Raises:
        ValueError: the logits are not ``[N,C]`` or the counts differ.
        IndexError: a target is not below ``C`` (the real output width).
    """
    if logits.dim() != 2:
        raise ValueError(f"The model must return logits [N,C]; it returned shape {list(logits.shape)}.")
    if targets.shape != (logits.shape[0],):
        raise ValueError(f"Got {targets.numel()} targets for {logits.shape[0]} logit rows.")
    high = int(targets.max())
    if high >= logits.shape[1] or int(targets.min()) < 0:
        raise IndexError(f"target {high} is out of range: the model returns {logits.shape[1]} classes, "
                         f"valid targets are 0..{logits.shape[1] - 1}.")
    return logits.gather(1, targets.to(logits.device)[:, None]).squeeze(1)


def input_gradient(model: nn.Module, x: torch.Tensor, target: Target) -> torch.Tensor:
    """Signed gradient of each image's target logit with respect to its input pixels.

    ``grad[i] = d logit_{target_i}(x_i) / d x_i``. The images are independent as long as the model
    has no batch coupling (eval mode: batch norm uses its running statistics); this function does
    not change the model's train/eval flags, so put it in eval mode first (labkit models load in
    eval mode).

    Args:
        model: a classifier returning ``[N,C]`` logits.
        x: ``[N,3,H,W]`` preprocessed batch on the model's device; it is not modified and needs no
            ``requires_grad``.
        target: see :func:`resolve_targets`.

    Returns:
        ``[N,3,H,W]`` tensor on ``x``'s device, detached: logit units per unit of the normalised input.
    """
    if not isinstance(x, torch.Tensor) or x.dim() < 1:
        raise TypeError("x must be a preprocessed image batch (torch.Tensor [N,3,H,W]).")
    t = resolve_targets(model, target, x.shape[0])
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        score = class_scores(model(inputs), t)
        (grad,) = torch.autograd.grad(score.sum(), inputs)
    return grad
