"""Circuits: read a unit's weights (SMU circuit lab; Distill "Visualizing Weights").

A conv unit (output channel) ``unit`` of layer ``L`` computes a weighted sum over its input channels,
one ``kh x kw`` kernel per input channel. The *strong* kernels (large norm) are the unit's main
inputs; a kernel whose coefficients are mostly positive *excites* the unit wherever its input channel
fires, a mostly negative one *inhibits* it. Together with a picture of what each input channel
responds to (feature visualisation), that explains the unit as a circuit.

* :func:`input_filters`, :func:`input_channels`: the unit's kernels ``[C_in/groups, kh, kw]`` and which
  input channels they read (grouped and depthwise convs read only their group);
* :func:`input_norms`, :func:`strongest`, :func:`polarity`: rank the kernels, call them excitatory or
  inhibitory; :func:`feeding_layer` names the layer whose channels they read;
* :func:`expanded_weights`: the effective kernel between two non-adjacent layers with the
  non-linearities in between treated as the identity (reads circuits through 1x1 bottlenecks and
  depthwise blocks, e.g. EfficientNet-Lite0 and GoogLeNet);
* :func:`explore`: everything the weight-explorer figure (``labkit.plot.weight_explorer``) needs.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from labkit import layers as L
from labkit._table import FormattedTable

__all__ = [
    "NORMS",
    "CircuitTable",
    "Explorer",
    "conv_layer",
    "input_filters",
    "input_channels",
    "kernel_norms",
    "input_norms",
    "polarity",
    "feeding_layer",
    "strongest",
    "expanded_weights",
    "explore",
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


def _check_unit(name: str, module: nn.Conv2d, unit) -> int:
    count = module.out_channels
    if isinstance(unit, (bool, np.bool_)) or not isinstance(unit, (int, np.integer)) or not 0 <= int(unit) < count:
        raise IndexError(
            f"Unit {unit!r} does not exist: layer {name!r} has {count} units (output channels), "
            f"so valid indices are 0..{count - 1}."
        )
    return int(unit)


def input_filters(model: nn.Module, layer, unit: int) -> torch.Tensor:
    """The input kernels of one unit: the weight slice ``weight[unit]``, ``[C_in/groups, kh, kw]``.

    Kernel ``i`` multiplies input channel ``input_channels(model, layer, unit)[i]``. For an ordinary
    conv (``groups=1``) that is simply channel ``i``. A grouped conv splits its input channels into
    ``groups`` blocks and unit ``u`` reads only block ``u // (C_out/groups)``; a depthwise conv
    (``groups = C_in``) has one kernel per unit, reading the single input channel
    ``u // (C_out/C_in)`` (= ``u`` when ``C_out = C_in``).

    Returns:
        A detached copy (float, on the model's device); editing it does not change the model.

    Raises:
        ValueError: ``layer`` is not a conv layer (lists the conv layers).
        IndexError: ``unit`` out of range (states the unit count).
    """
    name, module = conv_layer(model, layer)
    unit = _check_unit(name, module, unit)
    return module.weight.detach()[unit].clone()


def input_channels(model: nn.Module, layer, unit: int) -> List[int]:
    """Indices of the input channels (of the layer's input tensor) that ``unit``'s kernels read, in
    kernel order: ``0..C_in-1`` for ordinary convs, the unit's group for grouped/depthwise convs."""
    name, module = conv_layer(model, layer)
    unit = _check_unit(name, module, unit)
    per_group_in = module.in_channels // module.groups
    group = unit // (module.out_channels // module.groups)
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


def input_norms(model: nn.Module, layer, unit: int, by: str = "l2") -> torch.Tensor:
    """Strength (``by``, see :data:`NORMS`) of each of ``unit``'s input kernels: ``[C_in/groups]``.
    The data behind ``labkit.plot.norm_histogram``."""
    return kernel_norms(input_filters(model, layer, unit), by)


def polarity(kernel: torch.Tensor) -> Tuple[str, float, float]:
    """Call one kernel excitatory or inhibitory: ``(label, positive_mass, negative_mass)``.

    ``positive_mass`` is the sum of the positive coefficients, ``negative_mass`` the sum of the absolute
    values of the negative ones. The label is ``"excitatory"`` when positive mass > negative mass (the
    coefficients sum to more than 0: the input channel, where it fires, raises the unit), ``"inhibitory"``
    when it is smaller, and ``"balanced"`` when they are exactly equal.
    """
    k = kernel.detach().cpu().to(torch.float64)
    pos = float(k.clamp(min=0).sum())
    neg = float((-k).clamp(min=0).sum())
    label = "excitatory" if pos > neg else ("inhibitory" if neg > pos else "balanced")
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

    ``layer``, ``unit``, ``by`` and ``source`` say what was ranked.
    """

    columns = (
        ("rank", "rank", "{}"),
        ("channel", "input channel", "{}"),
        ("norm", "strength", "{:.4f}"),
        ("polarity", "polarity", "{}"),
        ("positive_mass", "positive mass", "{:.4f}"),
        ("negative_mass", "negative mass", "{:.4f}"),
        ("feeding_layer", "reads from", "{}"),
    )

    def __init__(self, rows=(), *, layer: str = "", unit: int = -1, by: str = "l2", source: Optional[str] = None):
        super().__init__(rows)
        self.layer, self.unit, self.by, self.source = layer, unit, by, source

    def _head(self) -> List[str]:
        head = [h for _, h, _ in self.columns]
        head[2] = f"strength ({self.by})"
        return head

    def _title(self) -> str:
        via = f" (expanded weights from {self.source})" if self.source else ""
        return f"strongest inputs of {self.layer} unit {self.unit}{via}"


def _unit_kernels(model: nn.Module, layer, unit: int, source) -> Tuple[str, torch.Tensor, List[int], Optional[str]]:
    """(layer name, kernels [C, kh, kw], channel index of each kernel, layer the channels belong to)."""
    name, module = conv_layer(model, layer)
    unit = _check_unit(name, module, unit)
    if source is None:
        return name, input_filters(model, name, unit), input_channels(model, name, unit), feeding_layer(model, name)
    source_name, _ = L.resolve_layer(model, source)
    kernels = expanded_weights(model, source_name, name, units=[unit], progress=False)[0]
    return name, kernels, list(range(kernels.shape[0])), source_name


def strongest(model: nn.Module, layer, unit: int, k: int = 6, by: str = "l2", *, source=None) -> CircuitTable:
    """The ``k`` strongest input kernels of ``unit`` (SMU lab: the top six by L2 norm).

    Args:
        layer: a conv layer (dotted name or handout index); ``unit``: its output channel.
        k: how many to keep (at most the number of kernels the unit has; a depthwise unit has one).
        by: strength measure, one of :data:`NORMS` ("l2", "l1", "max", "sum").
        source: ``None`` for the unit's own kernels, or an earlier layer to rank the *expanded* weights
            from that layer's channels (:func:`expanded_weights`), e.g. through a 1x1 bottleneck.

    Returns:
        :class:`CircuitTable` of dicts, strongest first: ``rank`` (1..k), ``channel`` (input channel
        index, see :func:`input_channels`), ``index`` (position in :func:`input_filters`), ``norm``,
        ``polarity``/``positive_mass``/``negative_mass`` (:func:`polarity`), ``feeding_layer`` (the layer
        whose unit ``channel`` this input is, :func:`feeding_layer`; None if none), ``kernel`` ([kh, kw] CPU).
    """
    _check_k(k)
    _check_by(by)  # both before any expensive step
    name, kernels, channels, feeder = _unit_kernels(model, layer, unit, source)
    return _rank(name, int(unit), kernels, channels, feeder, k, by, source is not None)


def _rank(name: str, unit: int, kernels: torch.Tensor, channels: List[int], feeder: Optional[str], k, by: str,
          expanded: bool) -> CircuitTable:
    _check_k(k)
    norms = kernel_norms(kernels, by)
    top = torch.topk(norms, min(int(k), len(norms)))
    rows = []
    for rank, (value, idx) in enumerate(zip(top.values.tolist(), top.indices.tolist()), start=1):
        label, pos, neg = polarity(kernels[idx])
        rows.append({"rank": rank, "channel": channels[idx], "index": idx, "norm": float(value), "polarity": label,
                     "positive_mass": pos, "negative_mass": neg, "feeding_layer": feeder,
                     "kernel": kernels[idx].detach().cpu().float()})
    return CircuitTable(rows, layer=name, unit=unit, by=by, source=feeder if expanded else None)


# --------------------------------------------------------------------------- expanded weights

_ELEMENTWISE_NONLINEAR = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "leaky_relu", "leaky_relu_", "elu", "elu_", "selu", "selu_",
    "celu", "celu_", "gelu", "silu", "mish", "hardswish", "softplus", "tanh", "tanh_", "sigmoid", "sigmoid_",
    "hardsigmoid", "prelu", "rrelu", "rrelu_", "threshold", "threshold_", "logsigmoid", "softsign", "tanhshrink",
    "clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_",
}
_SUBTRACT = {"sub", "sub_", "__sub__", "__isub__", "subtract"}
_REVERSE_SUBTRACT = {"rsub", "__rsub__"}
_ADDITIVE = {"add", "add_", "__add__", "__radd__", "__iadd__"} | _SUBTRACT | _REVERSE_SUBTRACT
_PRODUCT = {"mul", "mul_", "__mul__", "__rmul__", "__imul__", "multiply", "matmul", "__matmul__", "bmm"}
_CONCAT = {"cat", "concat", "concatenate"}
_BATCHNORM_MODES = ("fold", "ignore")


def _max_pool_args(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    return input, kernel_size, stride, padding, dilation, ceil_mode


def _batch_norm_args(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    return input, running_var, weight, eps


def _depends(value) -> bool:
    return torch.is_tensor(value) and value.requires_grad


class _Linearize(TorchFunctionMode):
    """Run a forward pass as its linear path from one tensor (the only thing that requires grad).

    Element-wise non-linearities become the identity, max pooling becomes average pooling over the
    same window, BatchNorm keeps its scale ``gamma / sqrt(var + eps)`` ("fold") or is skipped
    ("ignore"). Terms that do not depend on the tracked tensor are constants for the Jacobian, so they
    are dropped from sums (biases, the other side of a residual) and replaced by zeros in concatenations.
    """

    def __init__(self, batchnorm: str):
        super().__init__()
        self.batchnorm = batchnorm

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _ELEMENTWISE_NONLINEAR and args and torch.is_tensor(args[0]):
            return args[0]
        if name in ("max_pool2d", "max_pool2d_with_indices"):
            x, kernel, stride, padding, dilation, ceil_mode = _max_pool_args(*args, **kwargs)
            if dilation not in (1, (1, 1), [1, 1]):
                raise ValueError("expanded_weights cannot linearise a dilated max pooling.")
            return F.avg_pool2d(x, kernel, stride, padding, ceil_mode=ceil_mode, count_include_pad=False)
        if name == "adaptive_max_pool2d":
            return F.adaptive_avg_pool2d(args[0], args[1] if len(args) > 1 else kwargs["output_size"])
        if name == "batch_norm":
            x, var, weight, eps = _batch_norm_args(*args, **kwargs)
            if self.batchnorm == "ignore" or not _depends(x):
                return x
            scale = torch.rsqrt(var.to(x.dtype) + eps)
            if weight is not None:
                scale = scale * weight.to(x.dtype)
            return x * scale.view(1, -1, *([1] * (x.dim() - 2)))
        if name in _ADDITIVE and len(args) >= 2:
            return self._additive(func, name, args, kwargs)
        if name in _PRODUCT and len(args) >= 2 and _depends(args[0]) and _depends(args[1]):
            raise ValueError("expanded_weights met a product of two signals (a multiplicative gate such as "
                             "squeeze-excitation or attention); its linear path is not defined.")
        if name in _CONCAT and args:
            tensors = list(args[0])
            dim = args[1] if len(args) > 1 else kwargs.get("dim", kwargs.get("axis", 0))
            tracked = [t for t in tensors if _depends(t)]
            if tracked and len(tracked) < len(tensors):
                like = tracked[0]
                dim = dim % like.dim()
                parts = []
                for t in tensors:
                    if _depends(t):
                        parts.append(t)
                    else:
                        shape = list(like.shape)
                        shape[dim] = t.shape[dim]
                        parts.append(like.new_zeros(shape))
                return torch.cat(parts, dim=dim)
        return func(*args, **kwargs)

    @staticmethod
    def _additive(func, name, args, kwargs):
        """``a + alpha b``, ``a - alpha b`` or ``b - alpha a`` (rsub) with constant terms dropped."""
        a, b = args[0], args[1]
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        dep_a, dep_b = _depends(a), _depends(b)
        if dep_a == dep_b:  # both tracked (a real sum of paths) or both constant
            return func(*args, **kwargs)
        if name in _SUBTRACT:
            return a if dep_a else -alpha * b
        if name in _REVERSE_SUBTRACT:
            return -alpha * a if dep_a else b
        return a if dep_a else alpha * b


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """Parameters do not require grad inside (so "requires grad" marks the tracked tensor alone)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _check_units(units, count: int, name: str) -> List[int]:
    if units is None:
        return list(range(count))
    ulist = [units] if isinstance(units, (int, np.integer)) and not isinstance(units, bool) else list(units)
    for u in ulist:
        if isinstance(u, (bool, np.bool_)) or not isinstance(u, (int, np.integer)) or not 0 <= int(u) < count:
            raise IndexError(f"Unit {u!r} does not exist: layer {name!r} has {count} units (output channels), "
                             f"so valid indices are 0..{count - 1}.")
    if not ulist:
        raise ValueError("units is empty.")
    return [int(u) for u in ulist]


def _out_shape(model: nn.Module, name: str, image_size: int) -> Tuple[int, ...]:
    """Output shape of one image [C, H, W] at the model's input size (from the cached layer table)."""
    for row in L.layers(model):
        if row.name == name and row.out_shape is not None:
            return tuple(row.out_shape)
    with torch.no_grad():  # a container module (e.g. GoogLeNet's "inception3a"): measure it
        out = L.activations(model, torch.zeros(1, 3, image_size, image_size, device=_model_device(model)), name)
    return tuple(out.shape[1:])


def _first_guess(model: nn.Module, from_name: Optional[str], to_name: str) -> int:
    """A starting side (px of the source map) from the layer table's receptive fields; grown if too small."""
    try:
        table = {row.name: row for row in L.layers(model)}
        size = getattr(getattr(model, "labkit", None), "input_size", 224)
        to_row = table[to_name]
        if from_name is None:
            rf_from, jump = 1, 1.0
        else:
            from_row = table[from_name]
            rf_from, jump = from_row.receptive_field, size / from_row.out_shape[-1]
        if to_row.receptive_field is None or to_row.receptive_field < 0 or rf_from is None or rf_from < 0:
            return 16
        return int(min(max((to_row.receptive_field - rf_from) / jump + 1, 1), 96)) + 4
    except Exception:
        return 16


def _jacobian_rows(model: nn.Module, from_name: Optional[str], to_name: str, units: List[int], in_channels: int,
                   side: int, batchnorm: str, image_size: int, chunk: int, progress: bool) -> torch.Tensor:
    """d to[u, centre] / d source for each unit u: [len(units), C_in, side, side] (source map of side x side)."""
    from tqdm.auto import tqdm

    device = _model_device(model)
    rows = []
    batches = [units[i:i + chunk] for i in range(0, len(units), chunk)]
    for batch in tqdm(batches, desc="expanded weights", disable=not progress or len(batches) < 2, leave=False):
        n = len(batch)
        source = torch.zeros(n, in_channels, side, side, device=device, requires_grad=True)
        seen = {"from": from_name is None}
        with L.hooks() as handles, _Linearize(batchnorm):
            if from_name is not None:
                def swap(module, args, output):
                    seen["from"] = True
                    return source * 1.0  # a non-leaf, so in-place ops downstream are allowed
                handles.append(model.get_submodule(from_name).register_forward_hook(swap))
            with L.capture(model, to_name, stop=True) as store:
                if from_name is None:
                    L.run_until(model, source * 1.0)
                else:
                    L.run_until(model, torch.zeros(1, 3, image_size, image_size, device=device))
        if to_name not in store or not seen["from"] or not store[to_name].requires_grad:
            raise ValueError(f"{to_name!r} does not depend on {from_name!r}: the target must run after the "
                             f"source in the forward pass, and read its output.")
        out = store[to_name]
        if out.dim() != 4:
            raise ValueError(f"{to_name!r} outputs a {out.dim()}-D tensor; expanded weights need conv feature maps.")
        cy, cx = out.shape[2] // 2, out.shape[3] // 2
        picked = out[torch.arange(n, device=out.device), torch.tensor(batch, device=out.device), cy, cx]
        (grad,) = torch.autograd.grad(picked.sum(), source)
        rows.append(grad.detach())
    return torch.cat(rows)


def expanded_weights(model: nn.Module, from_layer, to_layer, *, units=None, batchnorm: str = "fold",
                     chunk: int = 64, progress: bool = True) -> torch.Tensor:
    """Effective linear kernel from ``from_layer``'s output channels to ``to_layer``'s units.

    Between two non-adjacent layers the network is not linear, but reading the weights of the path as
    if it were ("expanded weights", Distill "Visualizing Weights") shows how a unit depends on
    earlier channels through 1x1 bottlenecks, depthwise convs and residual blocks. labkit computes it
    as the Jacobian of the *linearised* path: the forward pass from ``from_layer`` to ``to_layer`` is
    run with every element-wise non-linearity as the identity, max pooling as average pooling over
    the same window, and each BatchNorm as its scale ``gamma / sqrt(var + eps)`` (``batchnorm="fold"``)
    or the identity (``"ignore"``, as for models without BatchNorm such as Distill's InceptionV1);
    biases, BatchNorm shifts and other constant terms do not change a Jacobian. Every path is
    followed: a residual connection adds its identity kernel, a concatenation keeps only its own
    channels. Multiplicative gates (squeeze-excitation) are not supported.

    Args:
        from_layer: the source layer (name or handout index), or ``None`` for the input image.
        to_layer: a later layer whose output is a feature map; usually a conv layer.
        units: output channels to compute (int or list); default all.
        batchnorm: "fold" or "ignore" (see above).
        chunk: output channels per backward pass (memory vs. speed).
        progress: a tqdm bar when there are several chunks.

    Returns:
        Tensor ``[len(units), C_in, KH, KW]`` on the model's device: entry ``[o, c, y, x]`` is the
        change of unit ``o`` at one position of ``to_layer`` per unit change of ``from_layer``'s
        channel ``c`` at offset ``(y, x)`` of its window, in ``from_layer`` pixels. ``KH x KW`` is the
        extent of that window (the composed kernel sizes and strides; 3x3 then a stride-2 depthwise
        3x3 gives 5x5). For adjacent convs with nothing but a non-linearity between them it equals
        the second conv's weight.

    Raises:
        ValueError: unknown layers, ``to_layer`` not reached from ``from_layer``, bad ``batchnorm``.
        IndexError: a unit out of range.
    """
    if batchnorm not in _BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be one of {', '.join(_BATCHNORM_MODES)}, got {batchnorm!r}.")
    if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}.")
    to_name, _ = L.resolve_layer(model, to_layer)
    from_name = None if from_layer is None else L.resolve_layer(model, from_layer)[0]
    info = getattr(model, "labkit", None)
    image_size = int(getattr(info, "input_size", 224))
    to_shape = _out_shape(model, to_name, image_size)
    in_channels = 3 if from_name is None else _out_shape(model, from_name, image_size)[0]
    if len(to_shape) != 3:
        raise ValueError(f"{to_name!r} outputs a {len(to_shape)}-D tensor per image; expanded weights need "
                         "a conv feature map.")
    unit_list = _check_units(units, to_shape[0], to_name)

    side = max(_first_guess(model, from_name, to_name), 3)
    with _frozen(model):
        for _ in range(6):
            jac = _jacobian_rows(model, from_name, to_name, unit_list, in_channels, side, batchnorm,
                                 min(image_size, 64), int(chunk), progress)
            support = jac.abs().sum(dim=(0, 1)) > 0
            if not bool(support.any()):
                raise ValueError(f"Unit(s) {unit_list} of {to_name!r} do not depend on {from_name!r} at all "
                                 "(all expanded weights are zero).")
            rows = torch.nonzero(support.any(dim=1)).flatten()
            cols = torch.nonzero(support.any(dim=0)).flatten()
            top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
            # a window that touches the border may be cut off by padding: grow the map and redo
            if top > 0 and left > 0 and bottom < side - 1 and right < side - 1:
                return jac[:, :, top:bottom + 1, left:right + 1].contiguous()
            side = 2 * side + 1
    raise ValueError(f"The window from {from_name!r} to {to_name!r} is larger than {side} px; is it global?")


# --------------------------------------------------------------------------- weight explorer data


@dataclasses.dataclass
class Explorer:
    """What the weight-explorer figure shows for one unit (built by :func:`explore`).

    Attributes:
        layer, unit: the unit.
        records: :class:`CircuitTable` of its strongest inputs (strongest first).
        kernels: ``[k, kh, kw]`` CPU float: the kernels of those inputs, in record order.
        input_layer: the layer whose channels the inputs are (None: unknown / the RGB image).
        input_images: ``[k, H, W, 3]`` numpy in ``[0,1]``: feature visualisation of each input channel
            (None when ``input_layer`` is None or ``visualize=False``).
        input_activations: ``[k]`` numpy, the objective each of those pictures reaches.
        unit_image: ``[H, W, 3]`` numpy: the unit's own feature visualisation (None if not computed).
        unit_activation: its objective value.
        norms: ``[C]`` CPU: strength of every input kernel (for the histogram).
        norm_channels: the input channel of each entry of ``norms``.
    """

    layer: str
    unit: int
    records: CircuitTable
    kernels: torch.Tensor
    input_layer: Optional[str]
    input_images: Optional[np.ndarray]
    input_activations: Optional[np.ndarray]
    unit_image: Optional[np.ndarray]
    unit_activation: Optional[float]
    norms: torch.Tensor
    norm_channels: List[int]

    @property
    def channels(self) -> List[int]:
        return self.records.column("channel")

    @property
    def polarities(self) -> List[str]:
        return self.records.column("polarity")


def _visualize(model, layer: str, filters: Sequence[int], steps, size, seed, preset, progress):
    from labkit.featurevis import visualize  # lazy: only the pictures need it

    kwargs = {"seed": seed, "progress": progress, "preset": preset}
    if steps is not None:
        kwargs["steps"] = steps
    if size is not None:
        kwargs["size"] = size
    result = visualize(model, layer, list(filters), **kwargs)  # one batch for all filters
    return result.images.permute(0, 2, 3, 1).numpy(), result.activations.numpy()


def explore(model: nn.Module, layer, unit: int, k: int = 6, *, by: str = "l2", source=None,
            steps: Optional[int] = None, size=None, seed: int = 0, preset: str = "quality",
            visualize: bool = True, progress: bool = True) -> Explorer:
    """Collect a unit's circuit: its ``k`` strongest input kernels, their polarity, and feature
    visualisations of each input channel and of the unit (SMU lab; Distill's weight explorer).

    The input channels are visualised in ONE batched ``labkit.featurevis.visualize`` call on their
    layer (:func:`feeding_layer`, or ``source``), the unit in one more call; ``steps``, ``size``,
    ``seed`` and ``preset`` go to it. ``source`` switches to expanded weights (:func:`strongest`).
    ``visualize=False`` skips the pictures (kernels and ranking only).
    """
    name, module = conv_layer(model, layer)
    unit = _check_unit(name, module, unit)
    _check_k(k)
    _check_by(by)  # both before any expensive step
    _, kernels, channels, input_layer = _unit_kernels(model, name, unit, source)
    records = _rank(name, unit, kernels, channels, input_layer, k, by, source is not None)
    norms = kernel_norms(kernels, by).cpu()
    chosen = torch.stack([row["kernel"] for row in records])
    input_images = input_acts = unit_image = unit_act = None
    if visualize:
        if input_layer is not None:
            input_images, input_acts = _visualize(model, input_layer, records.column("channel"), steps, size, seed,
                                                  preset, progress)
        images, acts = _visualize(model, name, [unit], steps, size, seed, preset, progress)
        unit_image, unit_act = images[0], float(acts[0])
    return Explorer(name, unit, records, chosen, input_layer, input_images, input_acts, unit_image, unit_act, norms,
                    list(channels))
