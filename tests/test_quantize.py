"""labkit.quantize: fake quantisation against PyTorch's own ops, model copies, sizes and SNR."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from labkit import quantize as Q
from labkit.layers import forward_hooks_count

SHAPES = [(7,), (3, 5), (8, 4, 3, 3), (16, 1, 5, 5)]


def _sym_reference(t, bits):
    """The Duke lab's grid, written out: scale = max|t| / (2^(b-1) - 1), zero point 0."""
    qmax = 2 ** (bits - 1) - 1
    return float(t.abs().max() / qmax), 0, -(2 ** (bits - 1)), qmax


def _asym_reference(t, bits, per_channel=False):
    """PyTorch's own MinMaxObserver (range widened to include 0) on an unsigned 0..2^b-1 grid."""
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver

    dtype = torch.quint8 if bits <= 8 else torch.qint32
    if per_channel:
        observer = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=torch.per_channel_affine,
                                            quant_min=0, quant_max=2 ** bits - 1)
    else:
        observer = MinMaxObserver(dtype=dtype, qscheme=torch.per_tensor_affine, quant_min=0, quant_max=2 ** bits - 1)
    observer(t)
    scale, zero_point = observer.calculate_qparams()
    if per_channel:
        return scale, zero_point.to(torch.int32), 0, 2 ** bits - 1
    return float(scale), int(zero_point), 0, 2 ** bits - 1


# --------------------------------------------------------------------------- fake_quantize vs torch


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("shape", SHAPES)
def test_symmetric_per_tensor_equals_torch(seed, shape):
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(shape, generator=gen) * (seed + 0.3)
    for bits in range(2, 17):
        scale, zp, qmin, qmax = _sym_reference(t, bits)
        expected = torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax)
        assert torch.equal(Q.fake_quantize(t, bits), expected), bits


@pytest.mark.parametrize("seed", [0, 1])
def test_symmetric_per_channel_equals_torch(seed):
    gen = torch.Generator().manual_seed(seed)
    t = torch.randn(6, 4, 3, 3, generator=gen) * torch.logspace(-2, 1, 6).view(6, 1, 1, 1)
    for axis in (0, 1):
        for bits in (2, 3, 4, 8, 16):
            qmax = 2 ** (bits - 1) - 1
            dims = tuple(d for d in range(t.dim()) if d != axis)
            scale = t.abs().amax(dim=dims) / qmax
            zero = torch.zeros(t.shape[axis], dtype=torch.int32)
            expected = torch.fake_quantize_per_channel_affine(t, scale, zero, axis, -qmax - 1, qmax)
            got = Q.fake_quantize(t, bits, per_channel=True, axis=axis)
            assert torch.equal(got, expected), (axis, bits)
            # per-channel keeps the small channels that one per-tensor scale flattens
            assert Q.snr_db(t, got) > Q.snr_db(t, Q.fake_quantize(t, bits))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asymmetric_equals_torch(seed):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(5, 3, 4, generator=gen) * 3 - 0.7  # lopsided range around 0
    for bits in (2, 3, 4, 8, 12, 16):
        scale, zp, qmin, qmax = _asym_reference(t, bits)
        expected = torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax)
        assert torch.equal(Q.fake_quantize(t, bits, symmetric=False), expected), bits
        # per channel along axis 0
        scale, zp, qmin, qmax = _asym_reference(t, bits, per_channel=True)
        expected = torch.fake_quantize_per_channel_affine(t, scale, zp, 0, qmin, qmax)
        assert torch.equal(Q.fake_quantize(t, bits, symmetric=False, per_channel=True), expected), bits


def test_equals_torch_on_real_weights(lite0):
    names = ["conv_stem", "blocks.1.0.conv_dw", "blocks.3.0.conv_pw", "classifier"]
    modules = dict(lite0.named_modules())
    for name in names:
        w = modules[name].weight.detach()
        for bits in (2, 4, 8, 16):
            scale, zp, qmin, qmax = _sym_reference(w, bits)
            expected = torch.fake_quantize_per_tensor_affine(w, scale, zp, qmin, qmax)
            got = Q.fake_quantize(w, bits)
            assert torch.equal(got, expected), (name, bits)
            assert got.dtype == w.dtype and got.shape == w.shape
            assert len(torch.unique(got)) <= 2 ** bits


def test_distinct_values_and_grid():
    t = torch.randn(4000, generator=torch.Generator().manual_seed(3))
    for bits in range(1, 11):
        for symmetric in (True, False):
            q = Q.fake_quantize(t, bits, symmetric=symmetric)
            assert len(torch.unique(q)) <= 2 ** bits, (bits, symmetric)
        q = Q.fake_quantize(t.view(40, 100), bits, per_channel=True)
        for row in q:
            assert len(torch.unique(row)) <= 2 ** bits
    # the grid points are integer multiples of the scale, and the extreme value is kept exactly
    q = Q.fake_quantize(t, 4)
    scale = float(t.abs().max()) / 7
    assert torch.allclose(q / scale, torch.round(q / scale), atol=1e-4)
    assert float(q.abs().max()) == pytest.approx(float(t.abs().max()), rel=1e-6)


def test_error_decreases_with_bits(lite0):
    w = lite0.get_submodule("blocks.3.0.conv_pw").weight.detach()
    snrs = [Q.snr_db(w, Q.fake_quantize(w, b)) for b in range(2, 17)]
    assert all(later > earlier for earlier, later in zip(snrs, snrs[1:])), snrs
    # uniform rounding noise: about 6 dB per bit once the grid is fine
    slope = (snrs[12 - 2] - snrs[8 - 2]) / 4
    assert 5.0 < slope < 7.0, slope
    errors = [float((w - Q.fake_quantize(w, b)).abs().max()) for b in range(2, 17)]
    assert all(later < earlier for earlier, later in zip(errors, errors[1:]))


def test_one_bit_binarises():
    t = torch.tensor([[0.5, -1.5, 0.0], [2.0, -0.25, 0.75]])
    q = Q.fake_quantize(t, 1)
    alpha = float(t.abs().mean())
    assert torch.allclose(q, torch.where(t >= 0, torch.tensor(alpha), torch.tensor(-alpha)))
    assert sorted(torch.unique(q).tolist()) == pytest.approx([-alpha, alpha])
    per_row = Q.fake_quantize(t, 1, per_channel=True)
    assert torch.allclose(per_row.abs(), t.abs().mean(dim=1, keepdim=True).expand_as(t))
    # asymmetric 1 bit: the two-level affine grid, still PyTorch's op
    scale, zp, qmin, qmax = _asym_reference(t, 1)
    assert torch.equal(Q.fake_quantize(t, 1, symmetric=False),
                       torch.fake_quantize_per_tensor_affine(t, scale, zp, qmin, qmax))


@pytest.mark.parametrize("bad", [0, -1, -8, 33, 64])
def test_bad_bits_out_of_range(bad):
    with pytest.raises(ValueError, match=r"1 to 32"):
        Q.fake_quantize(torch.ones(3), bad)


@pytest.mark.parametrize("bad", [2.5, 8.0, "8", None, True])
def test_bad_bits_not_an_integer(bad):
    with pytest.raises(TypeError, match=r"1 to 32"):
        Q.fake_quantize(torch.ones(3), bad)
    with pytest.raises(TypeError, match=r"1 to 32"):
        Q.check_bits(bad)


def test_wide_bits_accepted_and_nearly_lossless():
    t = torch.randn(1000, generator=torch.Generator().manual_seed(0))
    assert Q.check_bits(np.int64(20)) == 20
    for bits in (17, 24, 32):
        assert Q.snr_db(t, Q.fake_quantize(t, bits)) > 6 * min(bits, 23) - 10


def test_all_zero_tensor():
    z = torch.zeros(4, 3, 3)
    for kwargs in ({}, {"symmetric": False}, {"per_channel": True}, {"symmetric": False, "per_channel": True}):
        for bits in (1, 2, 8):
            q = Q.fake_quantize(z, bits, **kwargs)
            assert torch.equal(q, z), (kwargs, bits)
    # one all-zero channel next to live ones
    t = torch.randn(3, 5)
    t[1] = 0
    q = Q.fake_quantize(t, 4, per_channel=True)
    assert torch.isfinite(q).all() and torch.equal(q[1], torch.zeros(5))
    assert Q.snr_db(z, z) == math.inf


def test_other_dtypes_and_non_float():
    t = torch.randn(50, dtype=torch.float64)
    q = Q.fake_quantize(t, 4)
    assert q.dtype == torch.float64
    assert torch.equal(q, Q.fake_quantize(t.float(), 4).double())
    with pytest.raises(TypeError, match="float tensor"):
        Q.fake_quantize(torch.arange(5), 4)


def test_snr_db_formula():
    ref = torch.tensor([3.0, 4.0])
    noisy = torch.tensor([3.0, 3.0])
    assert Q.snr_db(ref, noisy) == pytest.approx(10 * math.log10(25 / 1))
    assert Q.snr_db(ref, ref) == math.inf
    assert Q.snr_db(torch.zeros(2), torch.ones(2)) == -math.inf
    with pytest.raises(ValueError, match="shape"):
        Q.snr_db(ref, torch.zeros(3))


# --------------------------------------------------------------------------- models


def test_quantize_model_leaves_original_untouched(lite0):
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    flags = [p.requires_grad for p in lite0.parameters()]
    quantized = Q.quantize_model(lite0, 4)
    after = lite0.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert flags == [p.requires_grad for p in lite0.parameters()]
    assert quantized is not lite0 and quantized.labkit.name == "efficientnet_lite0"
    assert quantized.labkit_quantization.bits == 4
    assert not quantized.training
    qmods, omods = dict(quantized.named_modules()), dict(lite0.named_modules())
    names = Q.quantizable_layers(lite0)
    assert names[0] == "conv_stem" and names[-1] == "classifier"
    assert set(names) == {n for n, m in lite0.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    for name in names:
        assert torch.equal(qmods[name].weight, Q.fake_quantize(omods[name].weight, 4))
    # biases and BatchNorm stay in float
    assert torch.equal(qmods["classifier"].bias, omods["classifier"].bias)
    assert torch.equal(qmods["bn1"].weight, omods["bn1"].weight)
    assert forward_hooks_count(lite0) == 0 and forward_hooks_count(quantized) == 0


def test_quantize_model_options(lite0):
    q = Q.quantize_model(lite0, 3, skip_first_last=True, per_channel=True)
    omods, qmods = dict(lite0.named_modules()), dict(q.named_modules())
    assert torch.equal(qmods["conv_stem"].weight, omods["conv_stem"].weight)
    assert torch.equal(qmods["classifier"].weight, omods["classifier"].weight)
    w = omods["blocks.2.0.conv_dw"].weight
    assert torch.equal(qmods["blocks.2.0.conv_dw"].weight, Q.fake_quantize(w, 3, per_channel=True))
    only_linear = Q.quantize_model(lite0, 2, layer_types=(nn.Linear,))
    assert only_linear.labkit_quantization.layers == ("classifier",)
    assert torch.equal(dict(only_linear.named_modules())["conv_head"].weight, omods["conv_head"].weight)
    snr = Q.weight_snr_db(lite0, q)
    assert "conv_stem" not in snr and all(v > 0 for v in snr.values())
    with pytest.raises(TypeError, match="nn.Module classes"):
        Q.quantize_model(lite0, 8, layer_types=("Conv2d",))


def test_model_size_mb(lite0):
    params = list(lite0.parameters())
    total = sum(p.numel() for p in params)
    assert Q.model_size_mb(lite0, 32) == pytest.approx(total * 4 / 1e6)
    weights = sum(m.weight.numel() for m in lite0.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    for bits in (16, 8, 4, 2):
        expected = (weights * bits + (total - weights) * 32) / 8 / 1e6
        assert Q.model_size_mb(lite0, bits) == pytest.approx(expected)
    sizes = [Q.model_size_mb(lite0, b) for b in (32, 16, 8, 4, 2)]
    assert sizes == sorted(sizes, reverse=True)


def test_vgg16_architecture_quantizes(vgg16_random):
    names = Q.quantizable_layers(vgg16_random)
    assert len(names) == 16 and names[0] == "features.0" and names[-1] == "classifier.6"
    mb = Q.model_size_mb(vgg16_random, 8)
    assert 130 < mb < 145  # 138.4 M weights at 1 byte, biases at 4 bytes
