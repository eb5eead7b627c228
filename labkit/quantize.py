"""Weight quantisation: fake-quantised tensors and model copies.

*Fake* quantisation rounds every weight to the nearest point of an integer grid and maps it straight
back to float (``(clamp(round(w / scale) + zp, qmin, qmax) - zp) * scale``), so the model still runs in
float32 but only ever sees values a ``bits``-bit integer could hold. That is how the Duke lab
(Assignment 3) studies what low precision does to a network, without integer kernels.

* :func:`fake_quantize`: one tensor; symmetric or asymmetric, per tensor or per channel. It computes
  through ``torch.fake_quantize_per_tensor_affine`` / ``..._per_channel_affine``, so the result is
  exactly PyTorch's; labkit only chooses the scale, zero point and integer range.
* :func:`quantize_model`: a quantised deep copy of a model (the original is left untouched).
* :func:`model_size_mb`, :func:`snr_db`, :func:`weight_snr_db`: what quantisation saves and costs.

The course's bit-width experiment built on these (``course.experiments.sweep``) is drawn by
``labkit.plot.sweep_figure``.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import numbers
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from torch import nn

__all__ = [
    "MIN_BITS",
    "MAX_BITS",
    "DEFAULT_LAYER_TYPES",
    "QuantConfig",
    "check_bits",
    "qrange",
    "quant_params",
    "fake_quantize",
    "binarize",
    "snr_db",
    "quantizable_layers",
    "quantize_model",
    "weight_snr_db",
    "model_size_mb",
]

MIN_BITS = 1
MAX_BITS = 32
DEFAULT_LAYER_TYPES: Tuple[Type[nn.Module], ...] = (nn.Conv2d, nn.Linear)
_BYTES_PER_MB = 1e6  # decimal megabytes, as storage and datasheets count them


# --------------------------------------------------------------------------- bit widths and grids


def check_bits(bits) -> int:
    """Validate a bit width and return it as an ``int``.

    Valid widths are the integers 1..32. 1 bit means binarisation (:func:`binarize`); 2..16 are the
    usual fake-quantisation widths; 17..32 are accepted too, but from about 24 bits on the integer
    grid is finer than float32's own resolution, so the result is float32 itself up to rounding.

    Raises:
        TypeError: ``bits`` is not an integer (``2.5``, ``"8"``, ``True``); the message names 1..32.
        ValueError: an integer outside 1..32.
    """
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, numbers.Integral):
        raise TypeError(
            f"bits must be an integer from {MIN_BITS} to {MAX_BITS} (1 = binarise, 2..16 usual), "
            f"got {bits!r} ({type(bits).__name__})."
        )
    bits = int(bits)
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(
            f"bits must be from {MIN_BITS} to {MAX_BITS} (1 = binarise, 2..16 usual), got {bits}."
        )
    return bits


def qrange(bits: int, symmetric: bool = True) -> Tuple[int, int]:
    """Integer range ``(qmin, qmax)`` of a ``bits``-bit grid.

    Symmetric (signed): ``[-2^(bits-1), 2^(bits-1) - 1]``, e.g. ``[-128, 127]`` at 8 bits.
    Asymmetric (unsigned, with a zero point): ``[0, 2^bits - 1]``, e.g. ``[0, 255]``.
    """
    bits = check_bits(bits)
    if symmetric:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _check_axis(t: torch.Tensor, axis: int) -> int:
    if t.dim() == 0:
        raise ValueError("per_channel=True needs a tensor with at least one dimension.")
    if not -t.dim() <= axis < t.dim():
        raise ValueError(f"axis {axis} does not exist for a tensor of shape {tuple(t.shape)} "
                         f"(valid: {-t.dim()}..{t.dim() - 1}).")
    return axis % t.dim()


def _reduce_dims(t: torch.Tensor, per_channel: bool, axis: int) -> Tuple[int, ...]:
    return tuple(d for d in range(t.dim()) if not (per_channel and d == axis))


def quant_params(t: torch.Tensor, bits: int, *, symmetric: bool = True, per_channel: bool = False,
                 axis: int = 0) -> Tuple[torch.Tensor, torch.Tensor, int, int]:
    """Scale, zero point and integer range labkit uses to quantise ``t`` (``bits`` >= 2).

    Symmetric: ``scale = max|t| / (2^(bits-1) - 1)``, zero point 0, range ``[-2^(bits-1), 2^(bits-1)-1]``
    (the most negative integer is never produced by rounding, so the grid is symmetric around 0).
    Asymmetric: the range ``[min, max]`` of ``t`` is first widened to include 0 (so 0 stays exact, as
    PyTorch's MinMaxObserver does); ``scale = (max - min) / (2^bits - 1)``,
    ``zero_point = clamp(round(-min / scale), 0, 2^bits - 1)``, range ``[0, 2^bits - 1]``.
    A scale of 0 (an all-zero tensor or channel) is replaced by 1, which maps zeros to zeros.

    Returns:
        ``(scale, zero_point, qmin, qmax)``: float32 ``scale`` and int32 ``zero_point`` tensors of shape
        ``[]`` (per tensor) or ``[t.shape[axis]]`` (per channel).
    """
    bits = check_bits(bits)
    if bits < 2 and symmetric:
        raise ValueError("A symmetric grid needs at least 2 bits; 1 bit is binarisation (see binarize).")
    qmin, qmax = qrange(bits, symmetric)
    if per_channel:
        axis = _check_axis(t, axis)
    dims = _reduce_dims(t, per_channel, axis)
    x = t.detach().to(torch.float32)
    if x.numel() == 0:
        raise ValueError("Cannot quantise an empty tensor.")
    if symmetric:
        peak = x.abs().amax(dim=dims) if dims else x.abs()
        scale = peak / qmax
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        lo = (x.amin(dim=dims) if dims else x).clamp(max=0.0)
        hi = (x.amax(dim=dims) if dims else x).clamp(min=0.0)
        scale = (hi - lo) / float(qmax - qmin)
        safe = torch.where(scale > 0, scale, torch.ones_like(scale))
        zero_point = torch.round(-lo / safe).clamp(qmin, qmax).to(torch.int32)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero: no division by zero
    return scale, zero_point, qmin, qmax


def binarize(t: torch.Tensor, *, per_channel: bool = False, axis: int = 0) -> torch.Tensor:
    """1-bit weights: ``sign(t) * mean|t|`` (XNOR-Net's binarisation; ``mean|t|`` minimises the L2 error).

    ``sign(0)`` counts as +1, so every value becomes ``+alpha`` or ``-alpha``: exactly two levels.
    With ``per_channel`` the scale ``alpha`` is the mean over each slice along ``axis``.
    An all-zero tensor stays all zero (``alpha = 0``). Same shape, dtype and device as ``t``.
    """
    if per_channel:
        axis = _check_axis(t, axis)
    dims = _reduce_dims(t, per_channel, axis)
    alpha = t.abs().mean(dim=dims, keepdim=True) if dims else t.abs()
    return torch.where(t >= 0, alpha, -alpha).to(t.dtype)


def fake_quantize(t: torch.Tensor, bits: int, *, symmetric: bool = True, per_channel: bool = False,
                  axis: int = 0) -> torch.Tensor:
    """Round ``t`` to a ``bits``-bit integer grid and back to float ("fake" quantisation).

    Args:
        t: any float tensor (weights ``[C_out, C_in, kh, kw]``, activations, ...), any device.
        bits: integer 1..32 (see :func:`check_bits`). 1 bit with ``symmetric=True`` binarises
            (:func:`binarize`); with ``symmetric=False`` it is the 2-level affine grid {min, max}.
        symmetric: zero point 0 and a signed grid scaled by ``max|t|`` (True), or an unsigned grid
            over ``[min, max]`` with a zero point (False). Grids: :func:`quant_params`.
        per_channel: one scale (and zero point) per slice along ``axis`` (output channels of a conv
            weight for ``axis=0``) instead of one for the whole tensor.

    Returns:
        Tensor of ``t``'s shape, dtype and device holding at most ``2^bits`` distinct values. For
        float32 input it equals ``torch.fake_quantize_per_tensor_affine(t, scale, zero_point, qmin,
        qmax)`` (or the per-channel op with int32 zero points) bit for bit, with the arguments of
        :func:`quant_params`; other float dtypes are computed in float32 and cast back. An all-zero
        tensor returns zeros. Not differentiable (use it on weights, under ``torch.no_grad``).
    """
    bits = check_bits(bits)
    if not torch.is_tensor(t) or not t.is_floating_point():
        raise TypeError(f"fake_quantize needs a float tensor, got {type(t).__name__}"
                        + (f" of dtype {t.dtype}" if torch.is_tensor(t) else "") + ".")
    if bits == 1 and symmetric:
        return binarize(t, per_channel=per_channel, axis=axis)
    scale, zero_point, qmin, qmax = quant_params(t, bits, symmetric=symmetric, per_channel=per_channel, axis=axis)
    x = t.detach().to(torch.float32)
    if per_channel:
        out = torch.fake_quantize_per_channel_affine(x, scale.to(x.device), zero_point.to(x.device),
                                                     _check_axis(t, axis), qmin, qmax)
    else:
        out = torch.fake_quantize_per_tensor_affine(x, float(scale), int(zero_point), qmin, qmax)
    return out.to(t.dtype)


def snr_db(reference: torch.Tensor, quantized: torch.Tensor) -> float:
    """Signal-to-quantisation-noise ratio in decibels: ``10 log10(sum ref^2 / sum (ref - quantized)^2)``.

    Higher is better; each extra bit adds about 6 dB. Returns ``inf`` when the two are identical
    (including two all-zero tensors) and ``-inf`` when ``reference`` is all zero but ``quantized`` is not.
    """
    if reference.shape != quantized.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and quantized {tuple(quantized.shape)} differ in shape.")
    # float32 on the tensors' own device (MPS has no float64); sums go to Python floats
    ref = reference.detach().to(torch.float32)
    noise = float(((ref - quantized.detach().to(device=ref.device, dtype=torch.float32)) ** 2).sum())
    signal = float((ref ** 2).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


# --------------------------------------------------------------------------- models


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """How a model copy was quantised (stored on it as ``model.labkit_quantization``)."""

    bits: int
    symmetric: bool
    per_channel: bool
    layers: Tuple[str, ...]  # names of the modules whose weights were quantised


def _call_order(model: nn.Module) -> Dict[str, int]:
    try:
        from labkit.layers import layers

        return {row.name: i for i, row in enumerate(layers(model))}
    except Exception:  # a model the tracer cannot run: fall back to definition order
        return {name: i for i, (name, _) in enumerate(model.named_modules())}


def quantizable_layers(model: nn.Module, layer_types: Sequence[Type[nn.Module]] = DEFAULT_LAYER_TYPES,
                       skip_first_last: bool = False) -> List[str]:
    """Names of the modules whose ``weight`` :func:`quantize_model` quantises, in call order.

    ``skip_first_last`` leaves out the first and the last of them (the stem conv and the classifier
    usually stay at high precision in deployed int8 models).
    """
    layer_types = tuple(layer_types)
    if not layer_types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in layer_types):
        raise TypeError(f"layer_types must be a tuple of nn.Module classes, got {layer_types!r}.")
    order = _call_order(model)
    names = [name for name, m in model.named_modules()
             if isinstance(m, layer_types) and isinstance(getattr(m, "weight", None), torch.Tensor)]
    names.sort(key=lambda n: order.get(n, len(order)))
    if skip_first_last:
        names = names[1:-1]
    return names


def quantize_model(model: nn.Module, bits: int, *, layer_types: Sequence[Type[nn.Module]] = DEFAULT_LAYER_TYPES,
                   skip_first_last: bool = False, per_channel: bool = False, symmetric: bool = True) -> nn.Module:
    """A deep copy of ``model`` whose conv/linear weights are fake-quantised to ``bits`` bits.

    Args:
        model: any ``nn.Module`` (a labkit model keeps its ``.labkit`` config on the copy).
        bits: 1..32 (:func:`check_bits`).
        layer_types: module classes whose ``weight`` is quantised (timm's ``Conv2dSame`` is a Conv2d).
        skip_first_last: keep the first and last of those layers in float.
        per_channel: one scale per output channel (axis 0 of the weight) instead of one per tensor.
            Per-tensor scales hurt depthwise convs (EfficientNet, MobileNet) badly: one large filter
            sets the step for all of them.
        symmetric: see :func:`fake_quantize`.

    Returns:
        The quantised copy, in the original's train/eval mode, with ``requires_grad`` flags copied and
        ``copy.labkit_quantization`` (:class:`QuantConfig`). Biases and BatchNorm parameters stay in
        float: in integer inference biases are kept at 32 bits and BatchNorm is folded into the conv,
        so weights are what the bit width is about. The original model is not modified.
    """
    bits = check_bits(bits)
    names = quantizable_layers(model, layer_types, skip_first_last)
    quantized = copy.deepcopy(model)
    modules = dict(quantized.named_modules())
    with torch.no_grad():
        for name in names:
            weight = modules[name].weight
            weight.copy_(fake_quantize(weight, bits, symmetric=symmetric, per_channel=per_channel, axis=0))
    quantized.labkit_quantization = QuantConfig(bits, symmetric, per_channel, tuple(names))
    return quantized


def weight_snr_db(model: nn.Module, quantized: nn.Module,
                  layers: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """Per-layer weight SNR (dB, :func:`snr_db`) between ``model`` and its quantised copy.

    ``layers`` defaults to the layers recorded on ``quantized.labkit_quantization`` (else all conv/linear).
    """
    if layers is None:
        config = getattr(quantized, "labkit_quantization", None)
        layers = config.layers if config is not None else quantizable_layers(model)
    ref, quant = dict(model.named_modules()), dict(quantized.named_modules())
    return {name: snr_db(ref[name].weight, quant[name].weight) for name in layers}


def model_size_mb(model: nn.Module, bits: int = 32, *, layer_types: Sequence[Type[nn.Module]] = DEFAULT_LAYER_TYPES,
                  skip_first_last: bool = False) -> float:
    """Parameter storage of ``model`` in MB (10^6 bytes) with quantised weights held at ``bits`` bits.

    The weights of :func:`quantizable_layers` count ``bits`` bits each; every other parameter (biases,
    BatchNorm, skipped layers) counts 32 bits. Buffers (BatchNorm running statistics) and the few
    bytes of scales/zero points per tensor or channel are left out. ``bits=32`` gives the float size.
    """
    bits = check_bits(bits)
    quantized = set()
    modules = dict(model.named_modules())
    for name in quantizable_layers(model, layer_types, skip_first_last):
        quantized.add(id(modules[name].weight))
    total_bits, seen = 0, set()
    for p in model.parameters():
        if id(p) in seen:  # shared (tied) parameters are stored once
            continue
        seen.add(id(p))
        total_bits += p.numel() * (bits if id(p) in quantized else 32)
    return total_bits / 8 / _BYTES_PER_MB
