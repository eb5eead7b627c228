"""Expanded weights: the effective linear kernel between two non-adjacent layers (Distill "Visualizing
Weights"), as the Jacobian of the linearised path between them."""
from __future__ import annotations

import contextlib
from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from labkit import layers as L
from labkit.models import model_device

__all__ = ["expanded_weights"]

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


def _check_channels(channels, count: int, name: str) -> List[int]:
    if channels is None:
        return list(range(count))
    single = isinstance(channels, (int, np.integer)) and not isinstance(channels, bool)
    clist = [channels] if single else list(channels)
    for c in clist:
        if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not 0 <= int(c) < count:
            raise IndexError(f"Channel {c!r} does not exist: layer {name!r} has {count} channels, "
                             f"so valid indices are 0..{count - 1}.")
    if not clist:
        raise ValueError("channels is empty.")
    return [int(c) for c in clist]


def _out_shape(model: nn.Module, name: str, image_size: int) -> Tuple[int, ...]:
    """Output shape of one image [C, H, W] at the model's input size (from the cached layer table)."""
    for row in L.layers(model):
        if row.name == name and row.out_shape is not None:
            return tuple(row.out_shape)
    with torch.no_grad():  # a container module (e.g. GoogLeNet's "inception3a"): measure it
        out = L.activations(model, torch.zeros(1, 3, image_size, image_size, device=model_device(model)), name)
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


def _jacobian_rows(model: nn.Module, from_name: Optional[str], to_name: str, channels: List[int], in_channels: int,
                   side: int, batchnorm: str, image_size: int, chunk: int, progress: bool) -> torch.Tensor:
    """d to[c, centre] / d source for each channel c: [len(channels), C_in, side, side] (source map side x side)."""
    from tqdm.auto import tqdm

    device = model_device(model)
    rows = []
    batches = [channels[i:i + chunk] for i in range(0, len(channels), chunk)]
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


def expanded_weights(model: nn.Module, from_layer, to_layer, *, channels=None, batchnorm: str = "fold",
                     chunk: int = 64, progress: bool = True) -> torch.Tensor:
    """Effective linear kernel from ``from_layer``'s output channels to ``to_layer``'s output channels.

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
        channels: output channels of ``to_layer`` to compute (int or list); default all.
        batchnorm: "fold" or "ignore" (see above).
        chunk: output channels per backward pass (memory vs. speed).
        progress: a tqdm bar when there are several chunks.

    Returns:
        Tensor ``[len(channels), C_in, KH, KW]`` on the model's device: entry ``[o, c, y, x]`` is the
        change of channel ``o`` at one position of ``to_layer`` per unit change of ``from_layer``'s
        channel ``c`` at offset ``(y, x)`` of its window, in ``from_layer`` pixels. ``KH x KW`` is the
        extent of that window (the composed kernel sizes and strides; 3x3 then a stride-2 depthwise
        3x3 gives 5x5). For adjacent convs with nothing but a non-linearity between them it equals
        the second conv's weight.

    Raises:
        ValueError: unknown layers, ``to_layer`` not reached from ``from_layer``, bad ``batchnorm``.
        IndexError: a channel out of range.
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
    channel_list = _check_channels(channels, to_shape[0], to_name)

    side = max(_first_guess(model, from_name, to_name), 3)
    with _frozen(model):
        for _ in range(6):
            jac = _jacobian_rows(model, from_name, to_name, channel_list, in_channels, side, batchnorm,
                                 min(image_size, 64), int(chunk), progress)
            support = jac.abs().sum(dim=(0, 1)) > 0
            if not bool(support.any()):
                raise ValueError(f"Channel(s) {channel_list} of {to_name!r} do not depend on {from_name!r} at all "
                                 "(all expanded weights are zero).")
            rows = torch.nonzero(support.any(dim=1)).flatten()
            cols = torch.nonzero(support.any(dim=0)).flatten()
            top, bottom, left, right = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
            # a window that touches the border may be cut off by padding: grow the map and redo
            if top > 0 and left > 0 and bottom < side - 1 and right < side - 1:
                return jac[:, :, top:bottom + 1, left:right + 1].contiguous()
            side = 2 * side + 1
    raise ValueError(f"The window from {from_name!r} to {to_name!r} is larger than {side} px; is it global?")
