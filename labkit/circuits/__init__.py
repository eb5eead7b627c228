"""Circuits: read a unit's weights (SMU circuit lab; Distill "Visualizing Weights").

A unit is one output channel ``channel`` of a conv layer ``L``: it computes a weighted sum over its
input channels, one ``kh x kw`` kernel per input channel. The *strong* kernels (large norm) are the
unit's main inputs; a kernel whose coefficients are mostly positive *excites* the unit wherever its
input channel fires, a mostly negative one *inhibits* it. Together with a picture of what each input
channel responds to (feature visualisation), that explains the unit as a circuit.

* :func:`input_kernels`, :func:`input_channels`: the unit's kernels ``[C_in/groups, kh, kw]`` and which
  input channels they read (grouped and depthwise convs read only their group);
* :func:`input_norms`, :func:`strongest`, :func:`polarity`: rank the kernels, call them excitatory or
  inhibitory; :func:`feeding_layer` names the layer whose channels they read;
* :func:`expanded_weights`: the effective kernel between two non-adjacent layers with the
  non-linearities in between treated as the identity (reads circuits through 1x1 bottlenecks and
  depthwise blocks, e.g. EfficientNet-Lite0 and GoogLeNet); module ``labkit.circuits.expanded``.

``labkit.plot.weight_explorer`` draws a :class:`CircuitTable` (with pictures of the input channels
when you have them); the course's ``course.experiments.explore`` collects both.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from labkit import layers as L
from labkit._table import FormattedTable

from .expanded import expanded_weights

__all__ = [
    "NORMS",
    "CircuitTable",
    "conv_layer",
    "input_kernels",
    "input_channels",
    "kernel_norms",
    "input_norms",
    "POLARITY_MARGIN",
    "balance",
    "polarity",
    "feeding_layer",
    "strongest",
    "expanded_weights",
]

#: Strength measures for :func:`strongest`, over one input kernel ``k`` (``kh x kw`` coefficients).
NORMS = {
    "l2": "sqrt(sum k^2) (the SMU lab's measure)",
    "l1": "sum |k|",
    "max": "max |k|",
    "sum": "|sum k| (net effect on a uniform input)",
}


# --------------------------------------------------------------------------- kernels of one unit


def _check_k(k) -> None:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}.")


def _check_by(by: str) -> None:
    if by not in NORMS:
        raise ValueError(f"Unknown strength measure by={by!r}. Valid choices: {', '.join(NORMS)}.")


def conv_layer(model: nn.Module, layer) -> Tuple[str, nn.Conv2d]:
    """``(name, module)`` of a 2-D conv layer (dotted name or handout index).

    Raises:
        ValueError: the layer is not a ``Conv2d`` (the message lists the model's conv layers).
    """
    name, module = L.resolve_layer(model, layer)
    if not isinstance(module, nn.Conv2d):
        convs = [row.name for row in L.conv_layers(model)]
        raise ValueError(
            f"Layer {name!r} is a {type(module).__name__}, not a Conv2d, so it has no input kernels. "
            f"Conv layers: {L._short_list(convs)}."
        )
    return name, module


def _check_channel(name: str, module: nn.Conv2d, channel) -> int:
    count = module.out_channels
    bad = isinstance(channel, (bool, np.bool_)) or not isinstance(channel, (int, np.integer))
    if bad or not 0 <= int(channel) < count:
        raise IndexError(
            f"Channel {channel!r} does not exist: layer {name!r} has {count} channels, "
            f"so valid indices are 0..{count - 1}."
        )
    return int(channel)


def input_kernels(model: nn.Module, layer, channel: int) -> torch.Tensor:
    """The input kernels of one unit (output ``channel``): the weight slice ``weight[channel]``,
    ``[C_in/groups, kh, kw]``.

    Kernel ``i`` multiplies input channel ``input_channels(model, layer, channel)[i]``. For an ordinary
    conv (``groups=1``) that is simply channel ``i``. A grouped conv splits its input channels into
    ``groups`` blocks and output channel ``c`` reads only block ``c // (C_out/groups)``; a depthwise conv
    (``groups = C_in``) has one kernel per output channel, reading the single input channel
    ``c // (C_out/C_in)`` (= ``c`` when ``C_out = C_in``).

    Returns:
        A detached copy (float, on the model's device); editing it does not change the model.

    Raises:
        ValueError: ``layer`` is not a conv layer (lists the conv layers).
        IndexError: ``channel`` out of range (states the channel count).
    """
    name, module = conv_layer(model, layer)
    channel = _check_channel(name, module, channel)
    return module.weight.detach()[channel].clone()


def input_channels(model: nn.Module, layer, channel: int) -> List[int]:
    """Indices of the input channels (of the layer's input tensor) that output ``channel``'s kernels
    read, in kernel order: ``0..C_in-1`` for ordinary convs, its group for grouped/depthwise convs."""
    name, module = conv_layer(model, layer)
    channel = _check_channel(name, module, channel)
    per_group_in = module.in_channels // module.groups
    group = channel // (module.out_channels // module.groups)
    return list(range(group * per_group_in, (group + 1) * per_group_in))


def kernel_norms(kernels: torch.Tensor, by: str = "l2") -> torch.Tensor:
    """Strength of each kernel of ``kernels`` ``[C, kh, kw]`` -> ``[C]``; ``by`` is one of :data:`NORMS`."""
    _check_by(by)
    flat = kernels.detach().reshape(kernels.shape[0], -1).to(torch.float32)
    if by == "l2":
        return torch.linalg.vector_norm(flat, ord=2, dim=1)
    if by == "l1":
        return flat.abs().sum(dim=1)
    if by == "max":
        return flat.abs().amax(dim=1)
    return flat.sum(dim=1).abs()


def input_norms(model: nn.Module, layer, channel: int, by: str = "l2") -> torch.Tensor:
    """Strength (``by``, see :data:`NORMS`) of each of output ``channel``'s input kernels: ``[C_in/groups]``.
    The data behind ``labkit.plot.norm_histogram``."""
    return kernel_norms(input_kernels(model, layer, channel), by)


#: A kernel is "mixed" when its net mass (positive - negative) is within this fraction of its total mass.
POLARITY_MARGIN = 0.25


def balance(kernel: torch.Tensor) -> float:
    """``(P - N) / (P + N)`` in [-1, 1]: P the sum of the positive coefficients, N of the |negative| ones.

    +1: all positive; -1: all negative; 0: equal masses (and 0 for an all-zero kernel).
    """
    k = kernel.detach().cpu().to(torch.float64)
    pos, neg = float(k.clamp(min=0).sum()), float((-k).clamp(min=0).sum())
    return (pos - neg) / (pos + neg) if pos + neg > 0 else 0.0


def polarity(kernel: torch.Tensor, margin: float = POLARITY_MARGIN) -> Tuple[str, float, float]:
    """Call one kernel excitatory, inhibitory or mixed: ``(label, positive_mass, negative_mass)``.

    ``positive_mass`` is the sum of the positive coefficients, ``negative_mass`` the sum of the absolute
    values of the negative ones. The label is ``"excitatory"`` when :func:`balance` > ``margin`` (the
    input channel, where it fires, raises the unit), ``"inhibitory"`` when it is < ``-margin``, and
    ``"mixed"`` in between: with the default 0.25 a kernel needs more than 62.5 % of its absolute mass
    on one side to get a sign. ``margin=0`` gives the plain sign of the sum (exact ties stay mixed).
    """
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin!r}.")
    k = kernel.detach().cpu().to(torch.float64)
    pos, neg = float(k.clamp(min=0).sum()), float((-k).clamp(min=0).sum())
    b = balance(k)
    label = "excitatory" if b > margin else ("inhibitory" if b < -margin else "mixed")
    return label, pos, neg


def feeding_layer(model: nn.Module, layer) -> Optional[str]:
    """The conv layer whose output channels ``layer`` reads: the nearest conv before it in call order,
    if its output channel count equals ``layer``'s input channel count; else None.

    For VGG the input of conv3_3 is ``ReLU(conv3_2)``, so conv3_3's input channel ``i`` is conv3_2's
    unit ``i``. None means no single conv feeds it: the first conv (it reads the RGB image) or a conv
    after a concatenation (GoogLeNet's inception inputs). Between the two there may be BatchNorm,
    non-linearities, pooling, and residual additions (ResNet, EfficientNet), which mix in earlier layers too.
    """
    name, module = conv_layer(model, layer)
    table = L.layers(model)
    names = table.names()
    if name not in names:
        raise ValueError(f"Layer {name!r} does not run in this model's forward pass.")
    previous = [row for row in table[: names.index(name)] if row.is_conv]
    if not previous:
        return None
    candidate = previous[-1]
    return candidate.name if candidate.channels == module.in_channels else None


class CircuitTable(FormattedTable):
    """The records of :func:`strongest` (dicts), printable as a table in a terminal and in Jupyter.

    ``layer``, ``channel``, ``by`` and ``source`` say what was ranked.
    """

    columns = (
        ("rank", "rank", "{}"),
        ("input_channel", "input channel", "{}"),
        ("norm", "strength", "{:.4f}"),
        ("polarity", "polarity", "{}"),
        ("positive_mass", "positive mass", "{:.4f}"),
        ("negative_mass", "negative mass", "{:.4f}"),
        ("feeding_layer", "reads from", "{}"),
    )

    def __init__(self, rows=(), *, layer: str = "", channel: int = -1, by: str = "l2", source: Optional[str] = None):
        super().__init__(rows)
        self.layer, self.channel, self.by, self.source = layer, channel, by, source

    @property
    def kernels(self) -> torch.Tensor:
        """``[k, kh, kw]`` CPU float: the ranked kernels, in row order."""
        return torch.stack([row["kernel"] for row in self]) if len(self) else torch.empty(0)

    @property
    def input_layer(self) -> Optional[str]:
        """The layer whose channels the inputs are (None: the RGB image or no single layer)."""
        return self[0]["feeding_layer"] if len(self) else None

    def _head(self) -> List[str]:
        head = [h for _, h, _ in self.columns]
        head[2] = f"strength ({self.by})"
        return head

    def _title(self) -> str:
        via = f" (expanded weights from {self.source})" if self.source else ""
        return f"strongest inputs of {self.layer} channel {self.channel}{via}"


def _channel_kernels(model: nn.Module, layer, channel: int, source) -> Tuple[str, torch.Tensor, List[int],
                                                                             Optional[str]]:
    """(layer name, kernels [C, kh, kw], input channel of each kernel, layer the input channels belong to)."""
    name, module = conv_layer(model, layer)
    channel = _check_channel(name, module, channel)
    if source is None:
        return (name, input_kernels(model, name, channel), input_channels(model, name, channel),
                feeding_layer(model, name))
    source_name, _ = L.resolve_layer(model, source)
    kernels = expanded_weights(model, source_name, name, channels=[channel], progress=False)[0]
    return name, kernels, list(range(kernels.shape[0])), source_name


def strongest(model: nn.Module, layer, channel: int, k: int = 6, by: str = "l2", *, source=None) -> CircuitTable:
    """The ``k`` strongest input kernels of output ``channel`` of ``layer`` (SMU lab: the top six by L2 norm).

    Args:
        layer: a conv layer (dotted name or handout index); ``channel``: its output channel (the unit).
        k: how many to keep (at most the number of kernels the unit has; a depthwise unit has one).
        by: strength measure, one of :data:`NORMS` ("l2", "l1", "max", "sum").
        source: ``None`` for the unit's own kernels, or an earlier layer to rank the *expanded* weights
            from that layer's channels (:func:`expanded_weights`), e.g. through a 1x1 bottleneck.

    Returns:
        :class:`CircuitTable` of dicts, strongest first: ``rank`` (1..k), ``input_channel`` (see
        :func:`input_channels`), ``index`` (position in :func:`input_kernels`), ``norm``,
        ``polarity``/``positive_mass``/``negative_mass`` (:func:`polarity`), ``feeding_layer`` (the layer
        whose output channel ``input_channel`` is, :func:`feeding_layer`; None if none), ``kernel``
        ([kh, kw] CPU). ``table.kernels`` stacks the kernels.
    """
    _check_k(k)
    _check_by(by)  # both before any expensive step
    name, kernels, channels, feeder = _channel_kernels(model, layer, channel, source)
    return _rank(name, int(channel), kernels, channels, feeder, k, by, source is not None)


def _rank(name: str, channel: int, kernels: torch.Tensor, channels: List[int], feeder: Optional[str], k, by: str,
          expanded: bool) -> CircuitTable:
    _check_k(k)
    norms = kernel_norms(kernels, by)
    top = torch.topk(norms, min(int(k), len(norms)))
    rows = []
    for rank, (value, idx) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
        label, pos, neg = polarity(kernels[idx])
        rows.append({"rank": rank, "input_channel": channels[idx], "index": idx, "norm": float(value), "polarity": label,
                     "positive_mass": pos, "negative_mass": neg, "feeding_layer": feeder,
                     "kernel": kernels[idx].detach().cpu().float()})
    return CircuitTable(rows, layer=name, channel=channel, by=by, source=feeder if expanded else None)
