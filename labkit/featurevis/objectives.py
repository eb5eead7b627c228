"""Objectives: what activation maximisation pushes up, as small composable parts (lucent-style).

An :class:`Objective` maps the state of one optimisation step to a score per image, ``[N]``;
higher is better. Objectives add, subtract and scale::

    obj = fv.mean() + 0.5 * fv.neuron() + fv.total_variation(0.1)   # penalties score negative: add them

Unless told otherwise, an objective looks at the layer being visualised (``layer=None``) and,
for image ``i`` of the batch, at the channel ``channels[i]`` (``channel=None``). So one objective
serves a whole batch of channels, and image ``i`` depends only on its own channel (except for
:func:`diversity`, which couples the batch on purpose).
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Callable, Dict, FrozenSet, Optional, Sequence, Tuple, Union

import torch
from torch import nn

__all__ = [
    "Objective",
    "StepState",
    "as_objective",
    "mean",
    "mean_abs",
    "neuron",
    "center",
    "class_logit",
    "diversity",
    "OBJECTIVE_NAMES",
]

#: ``(layer ref or None for the visualised layer, relu)``: one activation an objective reads.
LayerKey = Tuple[Optional[Union[str, int]], Optional[str]]


@dataclasses.dataclass
class StepState:
    """What an objective sees at one optimisation step.

    Attributes:
        acts: ``{(layer, relu): tensor}``, the captured activations ``[N,C,h,w]`` (or ``[N,C]``).
            The key ``(None, None)`` is the layer being visualised, as the caller asked for it.
        channels: ``[N]`` long tensor, the channel each image of the batch is optimised for (for
            :func:`class_logit` with no class given: the class).
        images: ``[N,3,H,W]`` the images in ``[0,1]`` before augmentation (regularisers read these).
        logits: ``[N,classes]`` class scores when an objective asked for the full forward pass, else None.
        model: the model (for its mean/std).
    """

    acts: Dict[LayerKey, torch.Tensor]
    channels: torch.Tensor
    images: torch.Tensor
    logits: Optional[torch.Tensor]
    model: nn.Module

    def activation(self, layer, relu) -> torch.Tensor:
        key = (None, None) if layer is None else (layer, relu)
        return self.acts[key]


class Objective:
    """A score per image ``[N]`` computed from a :class:`StepState`; combine with ``+ - *``.

    Args:
        fn: ``fn(state) -> [N]`` tensor.
        name: shown in results and progress bars.
        needs: the activations ``fn`` reads, as ``(layer, relu)`` keys (``layer=None``: the visualised one).
        needs_logits: ``fn`` reads ``state.logits`` (forces the full forward pass).
        couples_batch: the score of one image depends on the other images (e.g. :func:`diversity`).
    """

    def __init__(self, fn: Callable[[StepState], torch.Tensor], name: str, *,
                 needs: Sequence[LayerKey] = (), needs_logits: bool = False, couples_batch: bool = False):
        self.fn = fn
        self.name = name
        self.needs: FrozenSet[LayerKey] = frozenset(needs)
        self.needs_logits = needs_logits
        self.couples_batch = couples_batch

    def __call__(self, state: StepState) -> torch.Tensor:
        return self.fn(state)

    def __repr__(self) -> str:
        return f"Objective({self.name})"

    # -- algebra: scores add per image; flags and needs are the union of the parts
    def _combine(self, other: "Objective", fn, name: str) -> "Objective":
        return Objective(fn, name, needs=self.needs | other.needs,
                         needs_logits=self.needs_logits or other.needs_logits,
                         couples_batch=self.couples_batch or other.couples_batch)

    def __add__(self, other):
        if isinstance(other, numbers.Number) and other == 0:  # sum([...]) starts at 0
            return self
        other = _check_objective(other, "+")
        return self._combine(other, lambda s: self(s) + other(s), f"{self.name} + {other.name}")

    __radd__ = __add__

    def __sub__(self, other):
        other = _check_objective(other, "-")
        return self._combine(other, lambda s: self(s) - other(s), f"{self.name} - {other.name}")

    def __neg__(self):
        return Objective(lambda s: -self(s), f"-({self.name})", needs=self.needs,
                         needs_logits=self.needs_logits, couples_batch=self.couples_batch)

    def __mul__(self, weight):
        if not isinstance(weight, numbers.Number):
            raise TypeError(f"An objective can only be scaled by a number, not {type(weight).__name__}.")
        return Objective(lambda s: weight * self(s), f"{weight:g}*{self.name}", needs=self.needs,
                         needs_logits=self.needs_logits, couples_batch=self.couples_batch)

    __rmul__ = __mul__

    def __truediv__(self, weight):
        return self * (1.0 / weight)


def _check_objective(other, op: str) -> Objective:
    if not isinstance(other, Objective):
        raise TypeError(f"Cannot combine an objective with {type(other).__name__} using {op!r}.")
    return other


def _key(layer, relu) -> LayerKey:
    if relu not in (None, "before", "after"):
        raise ValueError(f"relu must be None, 'before' or 'after', not {relu!r}.")
    return (None, None) if layer is None else (layer, relu)


def _channel_maps(state: StepState, layer, relu, channel) -> torch.Tensor:
    """``[N, ...]``: for each image, its channel's map (``[N,h,w]``) or value (``[N]`` for linear layers)."""
    act = state.activation(layer, relu)
    n = act.shape[0]
    if channel is None:
        idx = state.channels.to(act.device)
    else:
        idx = torch.full((n,), int(channel), dtype=torch.long, device=act.device)
    return act[torch.arange(n, device=act.device), idx]


def _spatial_mean(maps: torch.Tensor) -> torch.Tensor:
    return maps.flatten(1).mean(dim=1) if maps.dim() > 1 else maps


def mean(layer=None, *, relu: Optional[str] = None, channel: Optional[int] = None) -> Objective:
    """Mean activation of a channel over all positions (lucid's ``channel`` objective).

    Args:
        layer: a name or handout index; ``None`` = the layer being visualised (with its ``relu``).
        relu: with an explicit ``layer``: None, "before" or "after" its non-linearity.
        channel: a fixed channel; ``None`` = each image's own channel (``StepState.channels``).
    """
    key = _key(layer, relu)
    return Objective(lambda s: _spatial_mean(_channel_maps(s, layer, relu, channel)),
                     "mean" if layer is None else f"mean[{layer}]", needs=[key])


def mean_abs(layer=None, *, relu: Optional[str] = None, channel: Optional[int] = None) -> Objective:
    """Mean absolute activation of a channel: the Duke lab's feedback signal (arguments as :func:`mean`)."""
    key = _key(layer, relu)
    return Objective(lambda s: _spatial_mean(_channel_maps(s, layer, relu, channel).abs()),
                     "mean_abs" if layer is None else f"mean_abs[{layer}]", needs=[key])


def neuron(layer=None, *, relu: Optional[str] = None, channel: Optional[int] = None,
           x: Optional[int] = None, y: Optional[int] = None) -> Objective:
    """Activation of a channel at one spatial position (default: the centre, ``h//2, w//2``).

    ``x``/``y`` are positions in the layer's own feature map (not input pixels).
    """
    key = _key(layer, relu)

    def score(s: StepState) -> torch.Tensor:
        maps = _channel_maps(s, layer, relu, channel)
        if maps.dim() == 1:  # a linear layer has no positions
            return maps
        h, w = maps.shape[-2:]
        yy, xx = (h // 2 if y is None else y), (w // 2 if x is None else x)
        if not (0 <= yy < h and 0 <= xx < w):
            raise IndexError(f"Position (y={yy}, x={xx}) is outside the {h}x{w} feature map.")
        return maps[:, yy, xx]

    return Objective(score, "neuron" if layer is None else f"neuron[{layer}]", needs=[key])


center = neuron


def class_logit(cls: Union[int, str, None] = None) -> Objective:
    """Pre-softmax score of an ImageNet class (class visualisation; needs the full forward pass).

    Args:
        cls: class index or name (``"German shepherd"``); ``None`` = each image's own class
            (``StepState.channels``, as :func:`~labkit.featurevis.class_visualization` sets them).
    """
    if cls is None:
        idx = None
        name = "class_logit"
    else:
        from labkit.scores import class_index

        idx = class_index(cls)
        name = f"class_logit[{idx}]"

    def score(s: StepState) -> torch.Tensor:
        logits = s.logits
        n = logits.shape[0]
        rows = torch.arange(n, device=logits.device)
        cols = s.channels.to(logits.device) if idx is None else torch.full((n,), idx, device=logits.device)
        return logits[rows, cols]

    return Objective(score, name, needs_logits=True)


def diversity(weight: float = 1.0, layer=None, *, relu: Optional[str] = None) -> Objective:
    """Penalise images of the batch that look alike (lucid's diversity term).

    For each image, minus ``weight`` times the mean cosine similarity between its gram matrix
    (channel correlations of ``layer``'s activations) and those of the other images. Couples the
    batch: an image then depends on which other channels share its batch. 0 for a batch of one.
    """
    key = _key(layer, relu)

    def score(s: StepState) -> torch.Tensor:
        act = s.activation(layer, relu)
        n = act.shape[0]
        if n < 2:
            return act.new_zeros(n)
        from .style import gram as gram_matrix

        gram = torch.nn.functional.normalize(gram_matrix(act).flatten(1), dim=1)
        sim = gram @ gram.T
        others = (sim.sum(dim=1) - sim.diagonal()) / (n - 1)
        return -weight * others

    return Objective(score, f"diversity({weight:g})", needs=[key], couples_batch=True)


#: String shortcuts accepted wherever an objective is.
OBJECTIVE_NAMES = {"mean": mean, "mean_abs": mean_abs, "center": neuron, "neuron": neuron, "class_logit": class_logit}


def as_objective(objective) -> Objective:
    """An :class:`Objective`, a shortcut name (:data:`OBJECTIVE_NAMES`) or ``fn(state) -> [N]``."""
    if isinstance(objective, Objective):
        return objective
    if isinstance(objective, str):
        try:
            return OBJECTIVE_NAMES[objective.strip().lower()]()
        except KeyError:
            raise ValueError(
                f"Unknown objective {objective!r}. Valid names: {', '.join(OBJECTIVE_NAMES)} "
                "(or build one: labkit.featurevis.mean() + 0.1 * labkit.featurevis.diversity())."
            ) from None
    if callable(objective):
        return Objective(objective, getattr(objective, "__name__", "custom"), needs=[(None, None)])
    raise TypeError(f"An objective is a name, an Objective or a callable, not {type(objective).__name__}.")
