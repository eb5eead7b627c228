"""Layers: a printable table of a model's layers, layer addressing, truncated forward passes
and hook context managers that always clean up.

A *layer* is any module that computes something itself: a leaf module, or a module with
its own parameters (timm's ``BatchNormAct2d``). Layers are listed in the order the forward
pass calls them. The *handout index* is the position in ``model.features`` for VGG/AlexNet
(the numbers the Duke handout uses: ``cnn_layer=10``) and the call order for other models.
"""
from __future__ import annotations

import contextlib
import dataclasses
import numbers
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from labkit._table import RecordTable
from labkit.models import model_device

LayerRef = Union[str, int]

ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.Tanh,
               nn.Sigmoid, nn.PReLU, nn.Hardtanh)
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_SKIP = (nn.Identity,)


@dataclasses.dataclass
class LayerInfo:
    """One row of :func:`layers`."""

    index: Optional[int]            # handout index (see module docstring)
    name: str                       # dotted module name
    type: str                       # class name
    out_shape: Optional[Tuple[int, ...]]  # output shape for one image, without the batch dim
    is_conv: bool
    activation: Optional[str]       # name of the non-linearity that follows, if any
    receptive_field: Optional[int]  # pixels (theoretical, along the executed chain)
    channels: Optional[int]         # output channels / features

    @property
    def relu_after(self) -> bool:
        return self.activation is not None


class LayerTable(RecordTable):
    """A list of :class:`LayerInfo` that prints as a table (text in a terminal, HTML in Jupyter)."""

    def conv(self) -> "LayerTable":
        """Only the convolution layers."""
        return LayerTable(row for row in self if row.is_conv)

    def names(self) -> List[str]:
        return [row.name for row in self]

    def _head(self) -> List[str]:
        return ["idx", "name", "type", "output (CxHxW)", "conv", "non-linearity after", "RF px"]

    def _cells(self, row: LayerInfo) -> List[str]:
        shape = "x".join(map(str, row.out_shape)) if row.out_shape else "-"
        rf = "global" if row.receptive_field == -1 else ("-" if row.receptive_field is None else str(row.receptive_field))
        return ["-" if row.index is None else str(row.index), row.name, row.type, shape,
                "yes" if row.is_conv else "", row.activation or "", rf]


# --------------------------------------------------------------------------- tracing


def _is_layer(module: nn.Module) -> bool:
    if isinstance(module, _SKIP):
        return False
    has_children = any(True for _ in module.children())
    return not has_children or any(True for _ in module.parameters(recurse=False))


def _input_size(model: nn.Module, input_size) -> Tuple[int, int, int]:
    if input_size is None:
        size = getattr(getattr(model, "labkit", None), "input_size", 224)
        return (3, size, size)
    if isinstance(input_size, int):
        return (3, input_size, input_size)
    return tuple(input_size[-3:])


_TRACE_CACHE: "weakref.WeakKeyDictionary[nn.Module, Dict]" = weakref.WeakKeyDictionary()


def _trace(model: nn.Module, input_size=None) -> List[Tuple[str, nn.Module, Optional[Tuple[int, ...]]]]:
    """Run one dummy forward and return (name, module, out_shape) for each layer in call order."""
    size = _input_size(model, input_size)
    cached = _TRACE_CACHE.get(model, {}).get(size)
    if cached is not None:
        return cached
    order: List[str] = []
    shapes: Dict[str, Optional[Tuple[int, ...]]] = {}
    modules = {name: m for name, m in model.named_modules() if name and _is_layer(m)}
    handles = []

    def pre_hook(name):
        def hook(module, args):
            if name not in shapes:
                order.append(name)
                shapes[name] = None
        return hook

    def post_hook(name):
        def hook(module, args, output):
            if shapes.get(name) is None and isinstance(output, torch.Tensor):
                shapes[name] = tuple(output.shape[1:])
        return hook

    was_training = model.training
    try:
        for name, m in modules.items():
            handles.append(m.register_forward_pre_hook(pre_hook(name)))
            handles.append(m.register_forward_hook(post_hook(name)))
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *size), device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # modules that never ran (e.g. unused aux heads) are not layers of this forward pass
    result = [(name, modules[name], shapes[name]) for name in order]
    _TRACE_CACHE.setdefault(model, {})[size] = result
    return result


def _handout_indices(model: nn.Module, names: Sequence[str]) -> Dict[str, int]:
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and all(_is_layer(m) for m in features):
        return {f"features.{i}": i for i in range(len(features))}
    return {name: i for i, name in enumerate(names)}


def _kernel_stride(module: nn.Module) -> Optional[Tuple[int, int, int]]:
    """(kernel, stride, dilation) along height for conv/pool layers, else None."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        k, s = module.kernel_size, module.stride
        d = getattr(module, "dilation", 1)
        first = lambda v: v[0] if isinstance(v, (tuple, list)) else v  # noqa: E731
        return first(k), first(s), first(d)
    return None


def layers(model: nn.Module, input_size=None) -> LayerTable:
    """Every layer of ``model`` in call order, as a printable :class:`LayerTable`.

    Args:
        input_size: int (square side in px), (C,H,W), or None for the model's own size.

    Each row has the handout index, dotted name, type, output shape [C,H,W] for one image,
    whether it is a conv layer, the non-linearity that follows it (if one does before the next
    conv/linear layer), and its theoretical receptive field in input pixels (exact for chains like
    VGG/AlexNet, an upper bound for branching models; -1 means global).
    """
    traced = _trace(model, input_size)
    names = [name for name, _, _ in traced]
    index = _handout_indices(model, names)
    table = LayerTable()
    rf, jump, is_global = 1, 1, False
    for pos, (name, module, shape) in enumerate(traced):
        ks = _kernel_stride(module)
        if ks is not None and not is_global:
            k, s, d = ks
            rf += (k - 1) * d * jump
            jump *= s
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten)):
            is_global = True
        activation = None
        if not isinstance(module, ACTIVATIONS):
            for later_name, later, _ in traced[pos + 1:]:
                if isinstance(later, ACTIVATIONS):
                    activation = later_name
                    break
                if isinstance(later, CONVS + (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)):
                    break
        channels = shape[0] if shape else None
        table.append(LayerInfo(index.get(name), name, type(module).__name__, shape, isinstance(module, CONVS),
                               activation, -1 if is_global else rf, channels))
    return table


# --------------------------------------------------------------------------- addressing


def resolve_layer(model: nn.Module, layer: LayerRef) -> Tuple[str, nn.Module]:
    """Turn a dotted name (``"features.10"``) or handout index (``10``) into ``(name, module)``.

    Raises:
        IndexError: an index that does not exist (message gives the valid range and the conv indices).
        ValueError: a name that does not exist (message lists close matches and the conv layers).
    """
    if isinstance(layer, nn.Module):
        for name, m in model.named_modules():
            if m is layer:
                return name, m
        raise ValueError("That module is not part of this model.")
    table = layers(model)
    if isinstance(layer, bool) or not isinstance(layer, (int, str)):
        raise TypeError(f"A layer is a dotted name (str) or a handout index (int), not {type(layer).__name__}.")
    if isinstance(layer, int) or (isinstance(layer, str) and layer.strip().lstrip("-").isdigit()):
        idx = int(layer)
        for row in table:
            if row.index == idx:
                return row.name, model.get_submodule(row.name)
        valid = [r.index for r in table if r.index is not None]
        convs = [r.index for r in table if r.is_conv and r.index is not None]
        raise IndexError(
            f"Layer index {idx} does not exist in this model: valid indices are {min(valid)}..{max(valid)}; "
            f"conv layers are at {_short_list(convs)}."
        )
    modules = dict(model.named_modules())
    if layer in modules and layer:
        return layer, modules[layer]
    import difflib

    close = difflib.get_close_matches(layer, list(modules), n=5)
    convs = [r.name for r in table if r.is_conv]
    raise ValueError(
        f"No layer named {layer!r}. "
        + (f"Did you mean {', '.join(close)}? " if close else "")
        + f"Conv layers: {_short_list(convs)} (see labkit.layers.layers(model) for all)."
    )


def _short_list(items: Sequence, limit: int = 24) -> str:
    items = [str(i) for i in items]
    return ", ".join(items) if len(items) <= limit else ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


def layer_info(model: nn.Module, layer: LayerRef) -> LayerInfo:
    """The :class:`LayerInfo` row for ``layer``."""
    name, _ = resolve_layer(model, layer)
    for row in layers(model):
        if row.name == name:
            return row
    raise ValueError(f"Layer {name!r} does not run in this model's forward pass.")


def check_channels(model: nn.Module, layer: LayerRef, channels) -> List[int]:
    """Validate output-channel indices of ``layer`` (an int or a sequence of ints) and return them as a list.

    Raises:
        IndexError: an index that is not an int in ``0..C-1``; the message states the layer's channel count.
    """
    row = layer_info(model, layer)
    count = row.channels
    if count is None:
        raise ValueError(f"Layer {row.name!r} has no tensor output, so it has no channels.")
    single = isinstance(channels, numbers.Integral) and not isinstance(channels, bool)
    clist = [channels] if single else list(channels)
    for c in clist:
        if isinstance(c, bool) or not isinstance(c, numbers.Integral) or not 0 <= c < count:
            raise IndexError(
                f"Channel {c!r} does not exist: layer {row.name!r} ({row.type}) has {count} channels, "
                f"so valid indices are 0..{count - 1}."
            )
    return [int(c) for c in clist]


# --------------------------------------------------------------------------- hooks


def hook_count(model: nn.Module) -> int:
    """Total number of hooks registered on ``model`` and its submodules (0 after every labkit call)."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
                     "_state_dict_hooks", "_load_state_dict_pre_hooks"):
            total += len(getattr(m, attr, {}) or {})
    return total


def forward_hooks_count(model: nn.Module) -> int:
    """Forward/backward hooks only (state-dict hooks that libraries install are ignored)."""
    total = 0
    for m in model.modules():
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            total += len(getattr(m, attr, {}) or {})
    return total


@contextlib.contextmanager
def hooks(handles: Optional[list] = None) -> Iterator[list]:
    """Collect hook handles in a list and remove them all on exit, whatever happens."""
    handles = [] if handles is None else handles
    try:
        yield handles
    finally:
        for h in handles:
            h.remove()
        handles.clear()


class _StopForward(Exception):
    """Raised by a hook once everything needed has been captured."""


def _following_activation(model: nn.Module, name: str) -> Tuple[str, nn.Module]:
    row = layer_info(model, name)
    if row.activation is None:
        if isinstance(model.get_submodule(name), ACTIVATIONS):
            return name, model.get_submodule(name)
        raise ValueError(
            f"Layer {name!r} is not followed by a non-linearity, so relu='before'/'after' has no meaning. "
            f"Layers followed by one: {_short_list([r.name for r in layers(model) if r.activation and r.is_conv])}."
        )
    return row.activation, model.get_submodule(row.activation)


def capture_point(model: nn.Module, layer: LayerRef, relu: Optional[str]) -> Tuple[str, nn.Module, str]:
    """Where to hook for ``layer`` seen ``relu`` = None/"before"/"after": (name, module, "input"|"output")."""
    name, module = resolve_layer(model, layer)
    if relu is None:
        return name, module, "output"
    if relu not in ("before", "after"):
        raise ValueError(f"relu must be None, 'before' or 'after', not {relu!r}.")
    act_name, act = _following_activation(model, name)
    if act is module:  # the layer is itself the non-linearity
        return act_name, act, "input" if relu == "before" else "output"
    return act_name, act, "input" if relu == "before" else "output"


@contextlib.contextmanager
def capture(model: nn.Module, layers_: Union[LayerRef, Sequence[LayerRef]], *, relu: Optional[str] = None,
            stop: bool = False, detach: bool = False) -> Iterator[Dict]:
    """Capture layer outputs during forward passes run inside the block.

    ``with capture(model, ["features.0", 28]) as acts: model(x)`` fills ``acts`` with
    ``{layer_ref: tensor}``. With ``stop=True`` the forward pass is cut off once every requested
    layer has been seen (the call to ``model(x)`` must then go through :func:`run_until`).
    Tensors are cloned when captured, so in-place activations later in the pass cannot change them.
    Hooks are removed on exit, even after an error.
    """
    refs = list(layers_) if isinstance(layers_, (list, tuple)) else [layers_]
    store: Dict = {}
    points = [(ref, *capture_point(model, ref, relu)) for ref in refs]
    with hooks() as handles:
        for ref, name, module, where in points:
            def record(value, ref=ref):
                store[ref] = value.detach().clone() if detach else value.clone()
                if stop and len(store) == len(refs):
                    raise _StopForward

            if where == "input":
                handles.append(module.register_forward_pre_hook(lambda m, args, record=record: record(args[0])))
            else:
                handles.append(module.register_forward_hook(lambda m, args, out, record=record: record(out)))
        yield store


def run_until(model: nn.Module, x: torch.Tensor) -> None:
    """Run ``model(x)``, treating a labkit stop signal as the normal end of a truncated pass."""
    try:
        model(x)
    except _StopForward:
        pass


def activations(model: nn.Module, x: torch.Tensor, layer: LayerRef, *, relu: Optional[str] = None) -> torch.Tensor:
    """Truncated forward pass: the activation of one ``layer`` for batch ``x``, without running later layers.

    Args:
        x: [N,3,H,W] preprocessed batch on the model's device. Gradients flow if ``x`` requires grad.
        layer: dotted name or handout index (several layers in one pass: :func:`capture`).
        relu: None for the layer's own output, "before"/"after" for the input/output of the
            non-linearity that follows it (both at once: :func:`pre_post`).

    Returns:
        [N,C,h,w] tensor (or [N,F] for a linear layer).
    """
    if isinstance(layer, (list, tuple)):
        raise TypeError("activations() takes one layer; for several layers in one pass use "
                        "`with labkit.layers.capture(model, layers, stop=True) as acts: run_until(model, x)`.")
    with capture(model, layer, relu=relu, stop=True) as store:
        run_until(model, x)
    if layer not in store:
        raise RuntimeError(f"Layer {layer!r} did not run in the forward pass.")
    return store[layer]


@dataclasses.dataclass
class PrePost:
    """A layer's response before and after the non-linearity that follows it (:func:`pre_post`).

    Attributes:
        layer: the layer's dotted name; nonlinearity: the name of the non-linearity module.
        before, after: [N,C,h,w] (or [N,F]) its input and output.
        cap: the upper clip of a capped non-linearity (6.0 for ReLU6), else None.
    """

    layer: str
    nonlinearity: str
    before: torch.Tensor
    after: torch.Tensor
    cap: Optional[float] = None

    def zeroed(self) -> torch.Tensor:
        """[C] fraction of the values (over batch and positions) that the non-linearity set to 0 from a negative input."""
        return _channel_fraction((self.after == 0) & (self.before < 0))

    def clipped(self) -> torch.Tensor:
        """[C] fraction of the values a capped non-linearity cut down to its cap (all 0 for an uncapped one)."""
        if self.cap is None:
            return torch.zeros(self.before.shape[1], device=self.before.device)
        return _channel_fraction(self.before > self.cap)


def _channel_fraction(mask: torch.Tensor) -> torch.Tensor:
    dims = [d for d in range(mask.dim()) if d != 1]
    return mask.float().mean(dim=dims)


def _cap(module: nn.Module) -> Optional[float]:
    if isinstance(module, nn.Hardtanh) and float(module.min_val) == 0.0:  # nn.ReLU6 is Hardtanh(0, 6)
        return float(module.max_val)
    return None


def pre_post(model: nn.Module, x: torch.Tensor, layer: LayerRef) -> PrePost:
    """One truncated pass that returns ``layer``'s response before and after the non-linearity after it.

    The same tensors as ``activations(model, x, layer, relu="before")`` and ``relu="after"``, from
    one pass. The pre-activation is cloned, so an in-place ReLU (VGG) cannot overwrite it.

    Args:
        x: [N,3,H,W] preprocessed batch on the model's device.
        layer: a layer followed by a non-linearity, or a non-linearity (name or handout index).

    Returns:
        :class:`PrePost`: ``before``/``after`` [N,C,h,w], the non-linearity's name and its cap (ReLU6: 6).

    Raises:
        ValueError: the layer is not followed by a non-linearity (the message lists the layers that are).
    """
    name, _ = resolve_layer(model, layer)
    act_name, act = _following_activation(model, name)
    store: Dict[str, torch.Tensor] = {}

    def after(module, args, out):
        store["after"] = out.clone()
        raise _StopForward

    with hooks() as handles:
        handles.append(act.register_forward_pre_hook(lambda m, args: store.__setitem__("before", args[0].clone())))
        handles.append(act.register_forward_hook(after))
        run_until(model, x)
    if "after" not in store:
        raise RuntimeError(f"{act_name!r} did not run in the forward pass.")
    return PrePost(name, act_name, store["before"], store["after"], _cap(act))


def conv_layers(model: nn.Module) -> LayerTable:
    """Just the conv rows of :func:`layers`."""
    return layers(model).conv()


def last_conv(model: nn.Module) -> str:
    """Name of the last conv layer in call order (Grad-CAM's default target)."""
    convs = conv_layers(model)
    if not convs:
        raise ValueError("This model has no conv layers.")
    return convs[-1].name
