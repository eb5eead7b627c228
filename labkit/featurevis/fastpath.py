"""A frozen, faster copy of the part of a model that an optimisation loop runs (never the model itself).

Activation maximisation, inversion and class visualisation run the same network hundreds of times
on a batch of images whose gradient is all that is needed. :func:`inference_copy` prepares a copy
for that:

* parameters frozen (``requires_grad=False``), eval mode;
* every batch norm that directly follows a convolution folded into it (``w' = w * g/s``,
  ``b' = (b - mu) * g/s + beta`` with ``s = sqrt(var + eps)``), the batch norm replaced by what is
  left of it (nothing, or timm's activation);
* timm's TensorFlow-"same" depthwise convolutions run without their padding copy
  (:class:`SameDepthwise`);
* optionally the channels-last memory layout, with 1x1 convolutions run as matrix products
  (:class:`Pointwise`).

Only the modules that run before the forward pass stops are copied; the rest share the original's
tensors (they never run). The copy is checked on a random batch against the original before it is
used: if the folded network does not reproduce the original's captured activations, the caller gets
the original model back, so folding can only change speed, never results beyond float rounding.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Dict, Iterable, List, Optional, Set, Tuple

import torch
from torch import nn

from labkit import layers as L

__all__ = ["InferenceCopy", "inference_copy", "fold_batchnorm", "Pointwise", "SameDepthwise"]

#: Relative tolerance of the folded copy's captured activations against the original's (fp32).
FOLD_RTOL = 1e-3


class _ActOnly(nn.Module):
    """What remains of a timm ``BatchNormAct2d`` once its normalisation is folded away: ``act(drop(x))``.

    The children keep their names (``drop``, ``act``), so hooks addressed as ``"...bn1.act"`` still fit."""

    def __init__(self, drop: nn.Module, act: nn.Module):
        super().__init__()
        self.drop = drop
        self.act = act

    def forward(self, x):
        return self.act(self.drop(x))


class Pointwise(nn.Module):
    """A 1x1, stride-1, ungrouped convolution as one matrix product over the channels of a
    channels-last tensor: ``y[n,:,i,j] = W @ x[n,:,i,j] + b``, the same values as the convolution.

    On a CPU, PyTorch sends small-batch 1x1 convolutions on one thread to its slow im2col path
    (``_slow_conv2d``), whose backward zero-fills and copies far more than it multiplies; a plain
    ``linear`` on the channels-last view runs one GEMM forward and two backward. The output is
    ``[N,C,H,W]`` in channels-last memory."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach()[:, :, 0, 0].contiguous(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)

    def forward(self, x):
        return torch.nn.functional.linear(x.permute(0, 2, 3, 1), self.weight, self.bias).permute(0, 3, 1, 2)


class SameDepthwise(nn.Module):
    """timm's ``Conv2dSame`` depthwise convolution (TensorFlow "same" padding) without its padding copy.

    TF "same" pads ``total = max((ceil(n/s) - 1) * s + k - n, 0)`` pixels per side pair, ``total // 2``
    before and the rest after, so the two sides differ by at most one. Where they differ, this runs the
    convolution with symmetric padding (the larger side) and a kernel one tap longer, whose extra
    leading tap is zero: the same sums, the same output size, without padding the input into a new
    tensor (and without slicing the gradient back out of one). On a CPU, the padded copy and the
    stride-2 backward through it cost more than the convolution itself
    (``benchmarks/results/featurevis_profile.md``)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.weight = nn.Parameter(conv.weight.detach().clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.stride, self.groups = tuple(conv.stride), conv.groups
        from timm.layers.padding import get_same_padding  # timm is loaded already: conv is one of its modules

        self._same_padding = get_same_padding

    def forward(self, x):
        (top, bottom), (left, right) = [
            (total // 2, total - total // 2)
            for total in (self._same_padding(n, k, s, 1)
                          for n, k, s in zip(x.shape[-2:], self.weight.shape[-2:], self.stride))]
        w = self.weight
        if (top, left) != (bottom, right):  # the longer kernel: a few microseconds, not worth a cache to keep fresh
            w = torch.nn.functional.pad(w, (right - left, 0, bottom - top, 0))
            if self.weight.is_contiguous(memory_format=torch.channels_last):
                w = w.contiguous(memory_format=torch.channels_last)
        return torch.nn.functional.conv2d(x, w, self.bias, self.stride, (bottom, right), 1, self.groups)


def _replace_module(net: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in place of ``net``'s submodule ``name`` (dotted)."""
    parent_name, _, child = name.rpartition(".")
    setattr(net.get_submodule(parent_name) if parent_name else net, child, module)


def _is_same_depthwise(m: nn.Module) -> bool:
    """timm's Conv2dSame as a depthwise (one filter per channel), undilated convolution."""
    return (isinstance(m, nn.Conv2d) and type(m).__name__ == "Conv2dSame" and type(m).__module__.startswith("timm")
            and m.groups == m.in_channels == m.out_channels and m.dilation == (1, 1) and m.padding == (0, 0)
            and m.padding_mode == "zeros")


def _is_pointwise(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.stride == (1, 1) and m.padding == (0, 0)
            and m.dilation == (1, 1) and m.groups == 1 and m.padding_mode == "zeros")


def _is_plain_bn(m: nn.Module) -> bool:
    return type(m) in (nn.BatchNorm2d,)


def _is_bn_act(m: nn.Module) -> bool:
    """timm's BatchNormAct2d: a BatchNorm2d subclass that applies ``drop`` then ``act`` after normalising."""
    return (isinstance(m, nn.BatchNorm2d) and type(m).__name__ == "BatchNormAct2d"
            and isinstance(getattr(m, "act", None), nn.Module) and isinstance(getattr(m, "drop", None), nn.Module))


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and (_is_plain_bn(bn) or _is_bn_act(bn)) and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


@torch.no_grad()
def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn`` (eval statistics) into ``conv`` in place: ``bn(conv(x)) == conv'(x)`` up to rounding."""
    scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    w = conv.weight
    conv.weight = nn.Parameter(w * scale.view(-1, *([1] * (w.dim() - 1))).to(w.dtype), requires_grad=False)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.bias = nn.Parameter(((bias - bn.running_mean) * scale + shift).to(w.dtype), requires_grad=False)


@dataclasses.dataclass
class InferenceCopy:
    """What :func:`inference_copy` returns.

    Attributes:
        model: the network to run (a partial copy, or the original when nothing was worth copying
            or the check failed).
        folded: names of the batch norms folded into their convolutions.
        channels_last: whether the copy's 4-D weights use the channels-last layout (feed it
            channels-last inputs).
        copied: whether ``model`` is a copy.
        note: why the original is used, when it is.
    """

    model: nn.Module
    folded: List[str]
    channels_last: bool
    copied: bool
    note: str = ""


def _needed_modules(model: nn.Module, stop_layer: Optional[str]) -> Optional[Set[str]]:
    """Names of the layers that run up to and including ``stop_layer`` (None: all of them)."""
    if stop_layer is None:
        return None
    names = L.layers(model).names()
    if stop_layer not in names:
        return None
    return set(names[:names.index(stop_layer) + 1])


def _partial_deepcopy(model: nn.Module, needed: Optional[Set[str]]) -> nn.Module:
    """Deep copy of ``model`` in which modules outside ``needed`` share the original's tensors."""
    memo: Dict[int, object] = {}
    if needed is not None:
        keep = set()
        for name in needed:
            sub = model.get_submodule(name)
            keep.update(id(t) for t in sub.parameters())
            keep.update(id(t) for t in sub.buffers())
        for t in (*model.parameters(), *model.buffers()):
            if id(t) not in keep:
                memo[id(t)] = t  # shared, not copied: it never runs in the truncated pass
    return copy.deepcopy(model, memo)


def inference_copy(model: nn.Module, *, stop_layer: Optional[str], hooked_outputs: Iterable[str] = (),
                   hooked_inputs: Iterable[str] = (), fold: bool = True, channels_last: bool = False,
                   unpad_same: bool = True,
                   check: Optional[Tuple[torch.Tensor, "callable"]] = None) -> InferenceCopy:
    """A frozen copy of ``model`` with batch norms folded into their convolutions.

    Args:
        model: the original (never modified).
        stop_layer: the last layer the pass needs, in the model's call order (``None``: the whole model).
        hooked_outputs: modules whose output is read (a conv read here keeps its batch norm apart).
        hooked_inputs: modules whose input is read (a batch norm read here is not folded).
        fold: fold batch norms; channels_last: convert the 4-D weights to channels-last and run 1x1
            convolutions as :class:`Pointwise` matrix products.
        unpad_same: run timm's same-padded depthwise convolutions as :class:`SameDepthwise`.
        check: ``(x, run)`` where ``run(net, x) -> list of tensors``; the copy must reproduce the
            original's tensors within :data:`FOLD_RTOL` (relative to each tensor's largest value).

    Returns:
        :class:`InferenceCopy`. The original is returned unchanged (``copied=False``) when there is
        nothing to fold and no layout to change, when the model is in training mode, or when the check fails.
    """
    if model.training:
        return InferenceCopy(model, [], False, False, "model in training mode")
    hooked_outputs, hooked_inputs = set(hooked_outputs), set(hooked_inputs)
    rows = [(r.name, model.get_submodule(r.name)) for r in L.layers(model)]
    needed = _needed_modules(model, stop_layer)
    pairs = []
    if fold:
        for (cname, conv), (bname, bn) in zip(rows, rows[1:]):
            if needed is not None and bname not in needed:
                break
            if _foldable(conv, bn) and cname not in hooked_outputs and bname not in hooked_inputs:
                pairs.append((cname, bname))
    if not pairs and not channels_last:
        return InferenceCopy(model, [], False, False, "nothing to fold")
    net = _partial_deepcopy(model, needed)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for m in net.modules():  # an in-place activation on a view (Pointwise's output) costs autograd a full copy
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    for cname, bname in pairs:
        bn = net.get_submodule(bname)
        fold_batchnorm(net.get_submodule(cname), bn)
        _replace_module(net, bname, _ActOnly(bn.drop, bn.act) if _is_bn_act(bn) else nn.Identity())
    if unpad_same:
        for name, m in list(net.named_modules()):
            if (needed is None or name in needed) and _is_same_depthwise(m):
                _replace_module(net, name, SameDepthwise(m))
    if channels_last:
        for name, m in list(net.named_modules()):
            if needed is not None and name not in needed:
                continue
            if _is_pointwise(m):
                _replace_module(net, name, Pointwise(m))
            elif isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.dim() == 4:
                m.weight = nn.Parameter(m.weight.detach().contiguous(memory_format=torch.channels_last),
                                        requires_grad=False)
    if check is not None:
        x, run = check
        with torch.no_grad():
            want = run(model, x)
            got = run(net, x.contiguous(memory_format=torch.channels_last) if channels_last else x)
        for a, b in zip(want, got):
            tol = FOLD_RTOL * float(a.abs().max()) + 1e-6
            if a.shape != b.shape or float((a - b.to(a.dtype)).abs().max()) > tol:
                return InferenceCopy(model, [], False, False, "folded copy did not reproduce the original")
    return InferenceCopy(net, [b for _, b in pairs], channels_last, True)
