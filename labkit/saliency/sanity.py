"""The sanity check of Adebayo et al. 2018 and the table of every method by name."""
from __future__ import annotations

import copy
import math
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from labkit._table import RecordTable
from labkit.layers import layers as layer_table
from labkit.layers import resolve_layer

from ._common import DEFAULT_MEMORY_MB, Target, _check_input, _targets, chunk_size
from .averaged import IGResult, integrated_gradients, smoothgrad
from .cam import grad_cam, guided_grad_cam
from .gradients import guided_backprop, vanilla
from .occlusion import occlusion

__all__ = ["METHODS", "SanityResult", "sanity_check"]


METHODS: Dict[str, Callable] = {
    "vanilla": vanilla,
    "guided_backprop": guided_backprop,
    "grad_cam": grad_cam,
    "guided_grad_cam": guided_grad_cam,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "occlusion": occlusion,
}
"""Every attribution method by name; all share the signature ``method(model, x, target, **options)``
and return a map tensor, except ``integrated_gradients`` (an :class:`IGResult`; its map is ``.attributions``)."""

_BUDGETED = (smoothgrad, integrated_gradients, occlusion)  # methods with their own memory_mb


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
                 method_kwargs: Optional[dict] = None, memory_mb: Optional[float] = DEFAULT_MEMORY_MB,
                 progress: Optional[bool] = None) -> SanityResult:
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
        memory_mb: memory budget (MiB) of one forward/backward pass: the images go to the method in
            chunks that fit it, and the built-in methods that chunk themselves (SmoothGrad, integrated
            gradients, occlusion) get it too unless ``method_kwargs`` sets it. ``None``: all at once.
            The chunking does not change the result.

    Returns:
        A :class:`SanityResult`: step 0 is the original model (correlation 1), then one record per step
        ``{"step", "layer", "spearman", "spearman_per_image"}``.
    """
    _check_input(model, x)
    t = _targets(model, x, target)
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}. Valid choices: {', '.join(METHODS)} (or a callable).")
        name, fn = method, METHODS[method]
    elif callable(method):
        name, fn = getattr(method, "__name__", "method"), method
    else:
        raise TypeError(f"method must be a name ({', '.join(METHODS)}) or a callable, not {type(method).__name__}.")
    kwargs = dict(method_kwargs or {})
    if fn in _BUDGETED:
        kwargs.setdefault("memory_mb", memory_mb)
    per_pass = chunk_size(model, x, memory_mb, backward=True)
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

    def maps(m: nn.Module) -> torch.Tensor:  # images are independent: chunk them to the budget
        return torch.cat([_as_map(fn(m, x[k:k + per_pass], t[k:k + per_pass], **kwargs))
                          for k in range(0, x.shape[0], per_pass)])

    original = maps(model)
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
        current = maps(shadow)
        per_image = _spearman_per_image(original, current)
        result.append({"step": step, "layer": layer_name, "spearman": _mean(per_image),
                       "spearman_per_image": per_image})
    return result
