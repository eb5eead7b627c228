"""course.circuit_study on the bundled Lite0 (real weights) and VGG16 (random weights), cross-checked
against labkit's Jacobian-based expanded weights and against autograd through real conv layers."""
import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from course import circuit_study as cs
from labkit.circuits import expanded_weights
from labkit.layers import activations, hook_count

UNIT_LAYER, UNIT = "blocks.3.0.conv_pw", 195


def test_polarity_has_a_mixed_class_within_the_margin():
    assert cs.polarity(torch.tensor([[1.0, 2.0], [0.5, 0.0]])) == "excitatory"
    assert cs.polarity(torch.tensor([[-1.0, -0.2], [-0.5, -3.0]])) == "inhibitory"
    centre_surround = torch.tensor([[-0.06, -0.06, -0.06], [-0.06, 0.488, -0.06], [-0.06, -0.06, -0.06]])
    assert cs.balance(centre_surround) == pytest.approx((0.488 - 0.48) / (0.488 + 0.48), abs=1e-6)  # float32 input
    assert cs.polarity(centre_surround) == "mixed"  # the nearly balanced kernel of the issue
    edge = 1 + cs.MARGIN  # balance exactly at the margin: (P - N) / (P + N) = margin -> mixed
    kernel = torch.tensor([[edge, -(1 - cs.MARGIN)]])
    assert cs.balance(kernel) == pytest.approx(cs.MARGIN)
    assert cs.polarity(kernel * 1.0001 + torch.tensor([[0.001, 0.0]])) == "excitatory"
    assert cs.polarity(torch.zeros(3, 3)) == "mixed"
    assert cs.polarity(torch.tensor([[0.3]])) == "excitatory" and cs.polarity(torch.tensor([[-0.3]])) == "inhibitory"
    assert cs.polarity(centre_surround, margin=0.0) == "excitatory"
    with pytest.raises(ValueError):
        cs.polarity(kernel, margin=1.5)


def test_top_k_orders_by_l2_norm_regardless_of_sign():
    hand = torch.zeros(5, 3, 3)
    hand[0, 1, 1], hand[1], hand[2, 0, 0], hand[3, :, 0], hand[4, 2, 2] = 1.0, 0.5, -3.0, 1.0, 0.1
    assert cs.top_k(hand, 3) == [2, 3, 1]
    g = torch.Generator().manual_seed(0)
    ones = torch.randn(12, 1, 1, generator=g)
    assert cs.top_k(ones, 4) == torch.argsort(ones.abs().flatten(), descending=True)[:4].tolist()


def test_read_layer_finds_the_residual_sum(lite0):
    read = cs.read_layer(lite0, UNIT_LAYER)
    assert read == "blocks.2.1" and lite0.get_submodule(read).has_skip
    x = torch.rand(2, 3, 224, 224)
    seen = {}
    handle = lite0.get_submodule(UNIT_LAYER).register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    try:
        with torch.no_grad():
            lite0(x)
    finally:
        handle.remove()
    with torch.no_grad():
        acts = {name: activations(lite0, x, name) for name in (read, f"{read}.bn3")}
    assert torch.allclose(seen["x"], acts[read])
    assert not torch.allclose(seen["x"], acts[f"{read}.bn3"], atol=1e-3)  # the sum, not the projection
    assert hook_count(lite0) == 0


def test_read_layer_on_vgg(vgg16_random):
    assert cs.read_layer(vgg16_random, "features.14") == "features.13"
    assert cs.expansion_path(vgg16_random, "features.14") == ("features.12", "features.11")
    assert cs.expansion_path(vgg16_random, "features.2") is None  # conv1_1 reads the image
    assert hook_count(vgg16_random) == 0


def test_compose_kernels_matches_autograd_through_two_convs():
    g = torch.Generator().manual_seed(1)
    for (m, c, k1, k2, residual) in [(6, 4, 3, 3, False), (5, 5, 5, 1, True), (3, 3, 1, 3, True), (4, 2, 1, 1, False)]:
        inner = torch.randn(m, c, k1, k1, generator=g)
        outer = torch.randn(m, k2, k2, generator=g)
        side = k1 + k2 + 5
        x = torch.zeros(1, c, side, side, requires_grad=True)
        mid = F.conv2d(x, inner, padding=k1 // 2) + (x if residual else 0)
        out = F.conv2d(mid, outer[None], padding=k2 // 2)
        (grad,) = torch.autograd.grad(out[0, 0, side // 2, side // 2], x)
        r = (k1 + k2 - 2) // 2
        window = grad[0, :, side // 2 - r:side // 2 + r + 1, side // 2 - r:side // 2 + r + 1]
        assert torch.allclose(cs.compose_kernels(outer, inner, residual), window, atol=1e-5)
    with pytest.raises(ValueError):
        cs.compose_kernels(torch.zeros(3, 1, 1), torch.zeros(4, 2, 3, 3))
    with pytest.raises(ValueError):
        cs.compose_kernels(torch.zeros(3, 1, 1), torch.zeros(3, 2, 3, 3), residual=True)


def test_analyse_matches_labkit_expanded_weights(lite0, vgg16_random):
    for model, layer, unit, size in [(lite0, UNIT_LAYER, UNIT, 5), (vgg16_random, "features.14", 195, 5)]:
        circuit = cs.analyse(model, layer, unit)
        reference = expanded_weights(model, circuit.source, layer, channels=[unit], progress=False)[0].cpu()
        assert circuit.expanded.shape[-2:] == (size, size) == reference.shape[-2:]
        assert torch.allclose(circuit.expanded, reference, atol=1e-5 * float(reference.abs().max()))
        assert circuit.labels == [cs.polarity(circuit.kernels[i]) for i in circuit.top]
        assert circuit.expanded_labels == [cs.polarity(circuit.expanded[i]) for i in circuit.expanded_top]
    lite = cs.analyse(lite0, UNIT_LAYER, UNIT)
    assert lite.is_1x1 and lite.residual and lite.block == "blocks.2.1" and lite.source == "blocks.2.0"


def test_figures_never_draw_a_1x1_kernel_as_a_square(lite0):
    circuit = cs.analyse(lite0, UNIT_LAYER, UNIT)
    fig = cs.kernel_cards(circuit.kernels, circuit.top, circuit.labels)
    assert not any(im.get_array().shape[:2] == (1, 1) for ax in fig.axes for im in ax.get_images())
    plt.close(fig)
    fig = cs.kernel_cards(circuit.expanded, circuit.expanded_top, circuit.expanded_labels)
    assert all(im.get_array().shape == (5, 5) for ax in fig.axes for im in ax.get_images())
    plt.close(fig)
    fig, ax = plt.subplots()
    cs.bars(ax, circuit.kernels, circuit.top, circuit.labels)
    assert len(ax.patches) == circuit.kernels.shape[0]
    plt.close(fig)


def test_unit_explorer_feeds_the_weight_explorer(lite0):
    from course.explorers.lab5 import VIEWS, UnitExplorer

    explorer = UnitExplorer(lite0, UNIT_LAYER, UNIT, settings={"steps": 2, "size": 32}, live=False)
    assert explorer.computed == 0 and explorer.controls["view"].value == VIEWS[1]
    assert "image/png" in explorer._repr_mimebundle_()
    result = explorer.result()
    circuit = cs.analyse(lite0, UNIT_LAYER, UNIT)
    assert result["top"] == circuit.expanded_top and result["source"] == "blocks.2.0"
    assert result["pictures"].shape[0] == len(circuit.expanded_top)
    first = explorer.png()
    explorer.set(view=VIEWS[0])
    assert explorer.result()["source"] == "blocks.2.1" and explorer.result()["top"] == circuit.top
    explorer.set(unit=3)
    assert explorer.computed == 3 and explorer.png() != first
    explorer.set(unit=UNIT, view=VIEWS[1])
    assert explorer.computed == 3  # cached
    with pytest.raises(IndexError):
        UnitExplorer(lite0, UNIT_LAYER, 10_000, live=False)
    assert hook_count(lite0) == 0


def test_visualize_read_maximises_the_tensor_the_unit_reads(lite0):
    assert cs.sum_terms(lite0, "blocks.3.2") == ["blocks.3.2.bn3", "blocks.3.1.bn3", "blocks.3.0.bn3"]
    assert cs.sum_terms(lite0, "blocks.2.1") == ["blocks.2.1.bn3", "blocks.2.0.bn3"]
    result = cs.visualize_read(lite0, "blocks.2.1", [0, 5], steps=3, size=48, progress=False)
    from labkit.images import normalize

    seen = {}
    handle = lite0.get_submodule(UNIT_LAYER).register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].clone()))
    try:
        with torch.no_grad():
            lite0(normalize(result.images, lite0))
    finally:
        handle.remove()
    means = seen["x"][[0, 1], [0, 5]].mean(dim=(1, 2))
    assert torch.allclose(result.activations, means, rtol=1e-4, atol=1e-4)
