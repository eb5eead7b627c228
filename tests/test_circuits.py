"""labkit.circuits: input kernels, strongest inputs, polarity, expanded weights, the weight-explorer figure."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import circuits as C
from labkit.layers import forward_hooks_count

LAYER = "blocks.3.0.conv_pw"  # lite0's circuit role: 1x1 conv, 40 -> 240 channels
CHANNEL = 195


def _bn_scale(bn):
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _crop_support(jac):
    """Crop [O, C, H, W] to the rows/columns where any entry is non-zero."""
    support = jac.abs().sum(dim=(0, 1)) > 0
    rows = torch.nonzero(support.any(dim=1)).flatten()
    cols = torch.nonzero(support.any(dim=0)).flatten()
    return jac[:, :, rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


# --------------------------------------------------------------------------- kernels of one unit


def test_input_kernels_is_the_weight_slice(lite0):
    from course.roles import roles_for

    assert (roles_for(lite0).circuit_layer, roles_for(lite0).circuit_channel) == (LAYER, CHANNEL)
    weight = lite0.get_submodule(LAYER).weight
    kernels = C.input_kernels(lite0, LAYER, CHANNEL)
    assert kernels.shape == (40, 1, 1) and torch.equal(kernels, weight[CHANNEL])
    kernels.zero_()  # a copy: the model is unchanged
    assert weight[CHANNEL].abs().sum() > 0
    assert C.input_channels(lite0, LAYER, CHANNEL) == list(range(40))


def test_depthwise_and_grouped_slices(lite0):
    dw = lite0.get_submodule("blocks.3.0.conv_dw")
    assert dw.groups == dw.in_channels == dw.out_channels == 240
    assert torch.equal(C.input_kernels(lite0, "blocks.3.0.conv_dw", 17), dw.weight[17])
    assert C.input_kernels(lite0, "blocks.3.0.conv_dw", 17).shape == (1, 3, 3)
    assert C.input_channels(lite0, "blocks.3.0.conv_dw", 17) == [17]
    table = C.strongest(lite0, "blocks.3.0.conv_dw", 17)  # k=6 but a depthwise unit has one kernel
    assert len(table) == 1 and table[0]["input_channel"] == 17
    assert table[0]["feeding_layer"] == "blocks.3.0.conv_pw"

    grouped = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(4, 6, 3, groups=2)).eval()
    assert C.input_channels(grouped, "1", 0) == [0, 1]
    assert C.input_channels(grouped, "1", 4) == [2, 3]
    assert C.input_kernels(grouped, "1", 4).shape == (2, 3, 3)


def test_strongest_matches_direct_computation(lite0):
    weight = lite0.get_submodule(LAYER).weight[CHANNEL]  # [40, 1, 1]
    direct = {
        "l2": torch.linalg.norm(weight.flatten(1), dim=1),
        "l1": weight.flatten(1).abs().sum(dim=1),
        "max": weight.flatten(1).abs().amax(dim=1),
        "sum": weight.flatten(1).sum(dim=1).abs(),
    }
    for by, norms in direct.items():
        table = C.strongest(lite0, LAYER, CHANNEL, k=6, by=by)
        top = torch.topk(norms, 6)
        assert table.column("input_channel") == top.indices.tolist(), by
        assert table.column("norm") == pytest.approx(top.values.tolist(), rel=1e-6), by
        assert table.column("rank") == [1, 2, 3, 4, 5, 6]
        assert torch.allclose(C.input_norms(lite0, LAYER, CHANNEL, by=by), norms)
    table = C.strongest(lite0, LAYER, CHANNEL)
    for row in table:
        kernel = weight[row["input_channel"]]
        assert torch.equal(row["kernel"], kernel.cpu())
        total = float(kernel.sum())
        b = (row["positive_mass"] - row["negative_mass"]) / (row["positive_mass"] + row["negative_mass"])
        assert row["polarity"] == ("excitatory" if b > C.POLARITY_MARGIN else "inhibitory" if b < -C.POLARITY_MARGIN
                                   else "mixed"), (row, total)
        assert row["positive_mass"] - row["negative_mass"] == pytest.approx(total, abs=1e-6)
        assert row["feeding_layer"] == "blocks.2.1.conv_pwl"
    text = str(table)
    assert "input channel" in text and ("excitatory" in text or "inhibitory" in text)
    assert "<table>" in table._repr_html_()


def test_polarity_on_hand_made_kernels():
    kernel = torch.tensor([[1.0, -0.5], [0.2, -0.1]])
    label, pos, neg = C.polarity(kernel)
    assert (label, pos, neg) == ("excitatory", pytest.approx(1.2), pytest.approx(0.6))
    assert C.polarity(-kernel)[0] == "inhibitory"
    # many small positives can outweigh one large negative: with no margin, polarity is the sign of the sum
    assert C.polarity(torch.tensor([0.3, 0.3, 0.3, -0.8]), margin=0.0)[0] == "excitatory"
    # ... but 0.9 against 0.8 is within the default margin: a mixed kernel, not an excitatory one
    assert C.polarity(torch.tensor([0.3, 0.3, 0.3, -0.8]))[0] == "mixed"
    assert C.polarity(torch.tensor([1.0, -1.0]), margin=0.0)[0] == "mixed"
    assert C.balance(torch.tensor([3.0, -1.0])) == 0.5 and C.polarity(torch.tensor([3.0, -1.0]))[0] == "excitatory"
    with pytest.raises(ValueError, match="margin"):
        C.polarity(torch.tensor([1.0]), margin=1.0)

    conv = nn.Conv2d(3, 2, 3, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[1, 0] = 0.1  # weak, excitatory
        conv.weight[1, 1] = torch.tensor([[-1.0, 0.2, 0.2], [0.2, -1.0, 0.2], [0.2, 0.2, -1.0]])  # strong, inhibitory
        conv.weight[1, 2] = 0.3  # middle, excitatory
    model = nn.Sequential(conv).eval()
    table = C.strongest(model, "0", 1, k=3)
    assert table.column("input_channel") == [1, 2, 0]
    assert table.column("polarity") == ["inhibitory", "excitatory", "excitatory"]
    assert table[0]["negative_mass"] == pytest.approx(3.0) and table[0]["positive_mass"] == pytest.approx(1.2)
    assert table[0]["feeding_layer"] is None  # the first conv reads the RGB image


def test_feeding_layer(lite0, vgg16_random):
    assert C.feeding_layer(lite0, LAYER) == "blocks.2.1.conv_pwl"
    assert C.feeding_layer(lite0, "blocks.3.0.conv_pwl") == "blocks.3.0.conv_dw"
    assert C.feeding_layer(lite0, "conv_stem") is None
    # VGG: conv3_3 (features.14) reads ReLU(conv3_2 = features.12), also by handout index
    assert C.feeding_layer(vgg16_random, "features.14") == "features.12"
    assert C.feeding_layer(vgg16_random, 14) == "features.12"
    assert C.input_kernels(vgg16_random, 14, 195).shape == (256, 3, 3)


def test_errors_name_the_valid_choices(lite0):
    with pytest.raises(IndexError, match=r"240 channels.*0\.\.239"):
        C.input_kernels(lite0, LAYER, 240)
    with pytest.raises(IndexError, match="240 channels"):
        C.strongest(lite0, LAYER, -1)
    with pytest.raises(ValueError, match=r"not a Conv2d.*Conv layers: conv_stem"):
        C.input_kernels(lite0, "blocks.3.0.bn1", 0)
    with pytest.raises(ValueError, match="not a Conv2d"):
        C.strongest(lite0, "classifier", 0)
    with pytest.raises(ValueError, match="Valid choices: l2, l1, max, sum"):
        C.strongest(lite0, LAYER, CHANNEL, by="l3")
    with pytest.raises(ValueError, match="positive int"):
        C.strongest(lite0, LAYER, CHANNEL, k=0)
    with pytest.raises(ValueError, match="No layer named"):
        C.input_kernels(lite0, "blocks.3.0.conv_pww", 0)


# --------------------------------------------------------------------------- expanded weights


def _chain():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(),
        nn.Conv2d(6, 8, 1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8), nn.ReLU(),
        nn.Conv2d(8, 5, 1),
    ).eval()


def _linearised(net, start=0):
    """The hand-built linear path: the same convs, no activations, no biases."""
    convs = [m for m in list(net)[start:] if isinstance(m, nn.Conv2d)]
    lin = nn.Sequential(*[nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding,
                                    groups=c.groups, bias=False) for c in convs])
    with torch.no_grad():
        for src, dst in zip(convs, lin):
            dst.weight.copy_(src.weight)
    return lin


def _centre_jacobian(lin, in_channels, side=17):
    x = torch.zeros(1, in_channels, side, side)
    out_side = lin(x).shape[-1]
    jac = torch.autograd.functional.jacobian(lambda v: lin(v)[0, :, out_side // 2, out_side // 2], x)
    return _crop_support(jac[:, 0])


def test_expanded_weights_equal_jacobian_of_linearised_chain():
    net = _chain()
    # from the image through conv3x3 -> ReLU -> 1x1 -> depthwise 3x3 stride 2 -> 1x1
    kernel = C.expanded_weights(net, None, "6", progress=False)
    reference = _centre_jacobian(_linearised(net), 3)
    assert kernel.shape == reference.shape == (5, 3, 5, 5)
    assert torch.allclose(kernel, reference, atol=1e-6)
    # the same, composed analytically: a conv followed by a conv is a transposed conv of kernels
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    w1, w2, w3, w4 = (c.weight.detach() for c in convs)
    outer = w4[:, :, 0, 0][:, :, None, None] * w3[:, 0][None]  # [5, 8, 3, 3]: 1x1 after depthwise
    outer = torch.einsum("omhw,mc->ochw", outer, w2[:, :, 0, 0])  # the 1x1 before the depthwise: [5, 6, 3, 3]
    composed = F.conv_transpose2d(outer, w1, stride=1)  # then the stem 3x3 at stride 1: 5x5
    assert torch.allclose(kernel, composed, atol=1e-6)
    # from a middle layer
    kernel = C.expanded_weights(net, "0", "6", progress=False)
    assert torch.allclose(kernel, _centre_jacobian(_linearised(net, start=1), 6), atol=1e-6)
    assert forward_hooks_count(net) == 0


def test_expanded_weights_inside_a_lite0_block(lite0):
    block = lite0.blocks[3][0]
    flags = [p.requires_grad for p in lite0.parameters()]
    kernel = C.expanded_weights(lite0, "blocks.3.0.conv_pw", "blocks.3.0.conv_pwl", progress=False)
    # pw -> BN1 -> ReLU6 -> depthwise 3x3 (stride 2, "same" padding) -> BN2 -> ReLU6 -> pwl
    depthwise = block.conv_dw.weight[:, 0] * (_bn_scale(block.bn1) * _bn_scale(block.bn2))[:, None, None]
    reference = block.conv_pwl.weight[:, :, 0, 0][:, :, None, None] * depthwise[None]
    assert kernel.shape == (80, 240, 3, 3)
    assert torch.allclose(kernel, reference, atol=1e-6)
    # adjacent layers, BatchNorm ignored: just the second conv's weight
    adjacent = C.expanded_weights(lite0, "blocks.3.0.conv_dw", "blocks.3.0.conv_pwl", batchnorm="ignore",
                                  progress=False)
    assert torch.allclose(adjacent, block.conv_pwl.weight, atol=1e-7)
    # a subset of units is the same rows
    some = C.expanded_weights(lite0, "blocks.3.0.conv_pw", "blocks.3.0.conv_pwl", channels=[3, 70], progress=False)
    assert torch.allclose(some, kernel[[3, 70]], atol=1e-7)
    assert forward_hooks_count(lite0) == 0
    assert flags == [p.requires_grad for p in lite0.parameters()]


def test_expanded_weights_follow_the_residual_path(lite0):
    # blocks.2.0.conv_pwl -> BN -> [block 2.1: pw, dw 5x5, pwl, BN, + identity] -> blocks.3.0.conv_pw
    b20, b21, b30 = lite0.blocks[2][0], lite0.blocks[2][1], lite0.blocks[3][0]
    kernel = C.expanded_weights(lite0, "blocks.2.0.conv_pwl", LAYER, channels=[CHANNEL, 0], progress=False)
    depthwise = b21.conv_dw.weight[:, 0] * (_bn_scale(b21.bn1) * _bn_scale(b21.bn2))[:, None, None]
    branch = torch.einsum("om,o,mc,mhw->ochw", b21.conv_pwl.weight[:, :, 0, 0], _bn_scale(b21.bn3),
                          b21.conv_pw.weight[:, :, 0, 0], depthwise)  # [40, 40, 5, 5]
    skip = torch.zeros_like(branch)
    skip[range(40), range(40), 2, 2] = 1.0
    def through(inner):
        return torch.einsum("om,mchw->ochw", b30.conv_pw.weight[[CHANNEL, 0], :, 0, 0], inner) * \
            _bn_scale(b20.bn3)[None, :, None, None]

    reference = through(branch + skip)
    assert kernel.shape == (2, 40, 5, 5)
    assert torch.allclose(kernel, reference, atol=1e-5 * float(reference.abs().max()))
    # a chain of convs that missed the skip connection would be clearly different
    assert not torch.allclose(kernel, through(branch), atol=0.1 * float(reference.abs().max()))


class _Branchy(nn.Module):
    """Constants, a reversed subtraction, a functional clamp and a second path, in one forward."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.a(x)
        z = 1.0 - torch.relu(y) + 2.0  # linear part: -y
        w = self.b(z) - y.clamp(min=0)  # linear part: b(-y) - y
        return self.c(F.max_pool2d(w, 3, stride=1, padding=1))  # max pool -> average pool


class _Gated(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.c = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = self.a(x)
        return self.c(y * torch.sigmoid(y.mean(dim=(2, 3), keepdim=True)))


def test_expanded_weights_linearisation_rules():
    torch.manual_seed(1)
    net = _Branchy().eval()
    kernel = C.expanded_weights(net, "a", "c", progress=False)

    def linear_path(y):  # written out by hand
        w = -F.conv2d(y, net.b.weight, padding=1) - y
        return F.conv2d(F.avg_pool2d(w, 3, stride=1, padding=1, count_include_pad=False), net.c.weight)

    y = torch.zeros(1, 4, 13, 13)
    jac = torch.autograd.functional.jacobian(lambda v: linear_path(v)[0, :, 6, 6], y)[:, 0]
    reference = _crop_support(jac)
    assert kernel.shape == reference.shape == (2, 4, 5, 5)
    assert torch.allclose(kernel, reference, atol=1e-6)
    with pytest.raises(ValueError, match="multiplicative gate"):
        C.expanded_weights(_Gated().eval(), "a", "c", progress=False)


def test_expanded_weights_errors(lite0):
    with pytest.raises(ValueError, match="does not depend"):
        C.expanded_weights(lite0, "blocks.3.0.conv_pwl", "blocks.3.0.conv_pw", progress=False)
    with pytest.raises(IndexError, match="80 channels"):
        C.expanded_weights(lite0, "blocks.3.0.conv_pw", "blocks.3.0.conv_pwl", channels=[80], progress=False)
    with pytest.raises(ValueError, match="fold, ignore"):
        C.expanded_weights(lite0, "blocks.3.0.conv_pw", "blocks.3.0.conv_pwl", batchnorm="merge")
    assert forward_hooks_count(lite0) == 0


def test_weight_explorer_figure_draws_results_only(lite0):
    """plot.weight_explorer takes results (a CircuitTable and pictures), never a model."""
    from labkit.plot import weight_explorer

    table = C.strongest(lite0, LAYER, CHANNEL, k=4)
    assert table.kernels.shape == (4, 1, 1) and table.input_layer == C.feeding_layer(lite0, LAYER)
    fig = weight_explorer(table)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    pictures = np.random.default_rng(0).random((4, 16, 16, 3))
    fig = weight_explorer(table, input_images=pictures, channel_image=pictures[0])
    assert len([ax for ax in fig.axes if ax.images]) == 4 + 4 + 1
    with pytest.raises(TypeError, match="CircuitTable"):
        weight_explorer(lite0)
    with pytest.raises(ValueError, match="3 pictures for 4 kernels"):
        weight_explorer(table, input_images=pictures[:3])
