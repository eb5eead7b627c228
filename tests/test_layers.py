"""labkit.layers: the layer table, addressing, truncated forward and hook hygiene."""
import pytest
import torch
from torch import nn

from labkit import layers as L


def test_vgg16_table_uses_handout_indices(vgg16_random):
    table = L.layers(vgg16_random)
    conv = table.conv()
    assert [r.index for r in conv] == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    row = L.layer_info(vgg16_random, 10)
    assert (row.name, row.type, row.out_shape, row.activation) == ("features.10", "Conv2d", (256, 56, 56), "features.11")
    # theoretical receptive fields of VGG16 (3x3 convs, 2x2 pools): conv1_1 3 px ... pool5 212 px
    assert L.layer_info(vgg16_random, 0).receptive_field == 3
    assert L.layer_info(vgg16_random, 28).receptive_field == 196
    assert L.layer_info(vgg16_random, 30).receptive_field == 212
    text = str(table)
    assert "features.28" in text and "512x14x14" in text
    assert "<table>" in table._repr_html_()


def test_receptive_field_matches_gradient_support(vgg16_random):
    """Independent check: the input pixels that influence one unit span the table's receptive field."""
    model = vgg16_random
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    for idx in (0, 2, 5, 10):
        act = L.activations(model, x, idx, relu="before")
        c = act.shape[-1] // 2
        grad, = torch.autograd.grad(act[0, :, c, c].sum(), x)
        cols = torch.nonzero(grad.abs().sum((0, 1, 2)) > 0).flatten()
        support = int(cols.max() - cols.min() + 1)
        rf = L.layer_info(model, idx).receptive_field
        # max-pooling routes gradients to one pixel per window, so the support may only shrink after a pool
        assert support == rf if idx < 4 else support <= rf, (idx, support, rf)


def test_bundled_model_table_finds_relu6_after_convs(lite0):
    table = L.layers(lite0)
    stem = next(r for r in table if r.name == "conv_stem")
    assert stem.is_conv and stem.activation == "bn1.act" and stem.out_shape == (32, 112, 112)
    pwl = next(r for r in table if r.name == "blocks.1.0.conv_pwl")
    assert pwl.activation is None  # linear bottleneck: no non-linearity follows


def test_bad_layer_addresses_list_valid_choices(vgg16_random):
    with pytest.raises(IndexError, match=r"valid indices are 0\.\.30; conv layers are at 0, 2, 5"):
        L.resolve_layer(vgg16_random, 31)
    with pytest.raises(ValueError, match="Did you mean features.10"):
        L.resolve_layer(vgg16_random, "features.100")
    with pytest.raises(IndexError, match="has 64 channels, so valid indices are 0..63"):
        L.check_channels(vgg16_random, 0, [1, 255])
    assert L.check_channels(vgg16_random, 0, 3) == [3] and L.check_channels(vgg16_random, 0, (1, 2)) == [1, 2]
    with pytest.raises(ValueError, match="not followed by a non-linearity"):
        L.activations(vgg16_random, torch.zeros(1, 3, 32, 32), 4, relu="after")


def test_truncated_forward_never_runs_later_layers(lite0):
    calls = []
    later = [lite0.blocks[4], lite0.conv_head, lite0.classifier]
    handles = [m.register_forward_pre_hook(lambda m, a: calls.append(m)) for m in later]
    try:
        act = L.activations(lite0, torch.randn(2, 3, 224, 224), "blocks.3.0.conv_pw")
    finally:
        for h in handles:
            h.remove()
    assert act.shape == (2, 240, 28, 28)
    assert calls == []
    assert L.forward_hooks_count(lite0) == 0


def test_truncated_activation_equals_full_forward_capture(lite0):
    x = torch.randn(2, 3, 224, 224)
    with L.capture(lite0, ["blocks.2.1.conv_dw"]) as store:
        full = lite0(x)
    assert full.shape == (2, 1000)
    torch.testing.assert_close(L.activations(lite0, x, "blocks.2.1.conv_dw"), store["blocks.2.1.conv_dw"])
    with L.capture(lite0, ["conv_stem", "blocks.1.0.conv_dw"], stop=True) as many:
        L.run_until(lite0, x)
    assert set(many) == {"conv_stem", "blocks.1.0.conv_dw"}
    torch.testing.assert_close(many["conv_stem"], L.activations(lite0, x, "conv_stem"))
    with pytest.raises(TypeError, match="takes one layer"):
        L.activations(lite0, x, ["conv_stem"])  # one return type: several layers go through capture


def test_pre_and_post_relu_survive_inplace_relu(vgg16_random):
    model = vgg16_random
    assert model.features[1].inplace  # VGG's ReLUs overwrite their input
    x = torch.randn(1, 3, 64, 64)
    r = L.pre_post(model, x, 0)
    before, after = r.before, r.after
    assert (r.layer, r.nonlinearity, r.cap) == ("features.0", "features.1", None)
    assert (before < 0).any(), "pre-activation must keep its negative values"
    torch.testing.assert_close(after, before.clamp(min=0))
    # the same tensors as the relu= address of activations (one way to name a tap point)
    torch.testing.assert_close(L.activations(model, x, 0, relu="before"), before)
    torch.testing.assert_close(L.activations(model, x, 0, relu="after"), after)
    torch.testing.assert_close(r.zeroed(), (before < 0).float().mean(dim=(0, 2, 3)))
    assert torch.equal(r.clipped(), torch.zeros(64))
    assert L.forward_hooks_count(model) == 0


def test_pre_post_counts_zeroed_and_clipped_values_of_relu6(lite0):
    from labkit.images import preprocess, sample_images

    x = preprocess(list(sample_images().values())[:2], lite0)
    r = L.pre_post(lite0, x, "conv_stem")
    assert r.cap == 6.0 and r.nonlinearity == "bn1.act"
    # independent: the same counts from the raw tensors
    before = r.before
    torch.testing.assert_close(r.after, before.clamp(0, 6))
    torch.testing.assert_close(r.zeroed(), (before < 0).float().mean(dim=(0, 2, 3)))
    torch.testing.assert_close(r.clipped(), (before > 6).float().mean(dim=(0, 2, 3)))
    assert float(r.clipped().max()) > 0  # the bundled model's stem does saturate
    assert L.forward_hooks_count(lite0) == 0


def test_gradients_flow_through_truncated_pass(lite0):
    x = torch.randn(1, 3, 96, 96, requires_grad=True)
    act = L.activations(lite0, x, "blocks.2.0.conv_pw", relu="after")
    act[:, 3].mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in lite0.parameters())


def test_hooks_are_removed_even_when_the_forward_fails(lite0):
    with pytest.raises(RuntimeError):
        L.activations(lite0, torch.randn(1, 5, 64, 64), "conv_stem")  # wrong channel count
    with pytest.raises(KeyError):
        with L.capture(lite0, "conv_stem"):
            raise KeyError("user code fails inside the block")
    assert L.forward_hooks_count(lite0) == 0


def test_works_for_any_module_tree():
    """Not only nn.Sequential: a hand-written forward with a branch."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 3, padding=1)
            self.b = nn.Conv2d(4, 4, 3, padding=1)
            self.relu = nn.ReLU()
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            y = self.relu(self.a(x))
            y = y + self.b(y)
            return self.head(y.mean((2, 3)))

    net = Net().eval()
    table = L.layers(net, 16)
    assert [r.name for r in table] == ["a", "relu", "b", "head"]
    assert table[0].activation == "relu" and table[0].index == 0
    act = L.activations(net, torch.randn(1, 3, 16, 16), 2)
    assert act.shape == (1, 4, 16, 16)
