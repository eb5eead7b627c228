"""course.quant_study: Lab 4's measures, on the bundled Lite0 and the shipped photos, cross-checked
against torch's own fake-quantize ops and numpy."""
import copy

import numpy as np
import pytest
import torch

from course import quant_study as qs
from labkit.layers import activations, hook_count
from labkit.quantize import quantizable_layers

LAYER, CHANNEL = "blocks.5.0.conv_pw", 4


@pytest.fixture(scope="module")
def photos(lite0):
    return qs.photo_set(lite0)


@pytest.fixture(scope="module")
def ref(lite0, photos):
    x, _, labels = photos
    return qs.reference(lite0, x, LAYER, CHANNEL, labels=labels, visualise=False)


def _torch_quantized_copy(model, bits):
    """An independent quantised copy: torch.fake_quantize_per_tensor_affine with max|w| scales."""
    q = copy.deepcopy(model)
    modules = dict(q.named_modules())
    qmax = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for name in quantizable_layers(model):
            w = modules[name].weight
            scale = float(w.abs().max()) / qmax
            w.copy_(torch.fake_quantize_per_tensor_affine(w, scale, 0, -qmax - 1, qmax))
    return q


def test_photo_set_is_every_shipped_photo(lite0, photos):
    from labkit import images

    x, names, labels = photos
    expected = len(images.labelled_images()) if hasattr(images, "labelled_images") else len(images.sample_images())
    assert x.shape == (expected, 3, 224, 224) and len(names) == expected
    assert labels is None or labels.shape == (expected,)


def test_zero_fraction_matches_a_hand_count(lite0):
    w = lite0.get_submodule(LAYER).weight.detach()
    for bits in (8, 4, 2):
        step = float(w.abs().max()) / (2 ** (bits - 1) - 1)
        expected = float((w.abs() <= step / 2).double().mean())  # a tie at half a step rounds to even: 0
        assert qs.zero_fraction(w, bits) == pytest.approx(expected, abs=1e-6)
        steps = w.abs().flatten(1).amax(dim=1) / (2 ** (bits - 1) - 1)
        steps = steps.view(-1, 1, 1, 1)
        per_channel = float(((w.abs() <= steps / 2) | (steps == 0)).double().mean())
        assert qs.zero_fraction(w, bits, per_channel=True) == pytest.approx(per_channel, abs=1e-6)
    fractions = [qs.model_zero_fraction(lite0, b) for b in (16, 8, 4, 2)]
    assert fractions == sorted(fractions) and 0 <= fractions[0] < fractions[-1] <= 1


def test_map_correlation_is_pearson():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 7, 7, generator=g), torch.randn(5, 7, 7, generator=g)
    b = b + 0.5 * a
    assert qs.map_correlation(a, b) == pytest.approx(np.corrcoef(a.flatten(), b.flatten())[0, 1], abs=1e-9)
    assert qs.map_correlation(a, 3 * a + 1) == pytest.approx(1.0)
    assert qs.map_correlation(a, torch.zeros_like(a)) == 0.0  # a constant map: stated as 0
    with pytest.raises(ValueError):
        qs.map_correlation(a, b[:2])


def test_forward_with_maps_agrees_with_a_truncated_pass(lite0, photos):
    x = photos[0][:5]
    logits, maps = qs.forward_with_maps(lite0, x, LAYER, CHANNEL, batch_size=2)
    with torch.no_grad():
        assert torch.allclose(logits, lite0(x), atol=1e-4)
        assert torch.allclose(maps, activations(lite0, x, LAYER)[:, CHANNEL], atol=1e-5)
    assert hook_count(lite0) == 0
    assert torch.allclose(qs.mean_abs_activation(maps), maps.abs().mean(dim=(1, 2)))


def test_measure_against_an_independent_quantiser(lite0, photos, ref):
    x = photos[0]
    for bits in (16, 5):
        row = qs.measure(lite0, bits, x, ref)
        independent = _torch_quantized_copy(lite0, bits)
        with torch.no_grad():
            top1 = torch.cat([independent(x[i:i + 16]) for i in range(0, len(x), 16)]).argmax(dim=1)
        assert row["top1_agreement"] == pytest.approx(float((top1 == ref["top1"]).double().mean()))
        assert row["n_photos"] == len(x)
        if bits == 16:
            assert row["top1_agreement"] == 1.0 and row["map_correlation"] > 0.999
            assert row["answer_prob"] == pytest.approx(float(ref["logits"].softmax(1).max(1).values.mean()), rel=1e-3)
    assert hook_count(lite0) == 0


def test_study_collapse_is_read_from_the_rows(lite0, photos, ref):
    table = qs.study(lite0, (8, 4, 2), photos[0], ref, progress=False)
    assert [r["bits"] for r in table] == [8, 4, 2]
    assert table[-1]["zero_fraction"] > table[0]["zero_fraction"]
    widths = [r["bits"] for r in table if r["top1_agreement"] < qs.COLLAPSE_THRESHOLD]
    assert qs.collapse_bits(table) == (max(widths) if widths else None)
    assert "map correlation" in str(table)


def test_collapse_logic_on_made_up_rows():
    rows = [{"bits": 16, "a": 1.0}, {"bits": 8, "a": 0.97}, {"bits": 4, "a": 0.6}, {"bits": 3, "a": 0.2},
            {"bits": 2, "a": 0.7}]
    assert qs.collapse_bits(rows, key="a") == 3  # the first failure from the top, not the last
    assert qs.keeps_bits(rows, key="a") == 8
    assert qs.collapse_bits(rows[:2], key="a") is None
    assert qs.keeps_bits([{"bits": 8, "a": 0.1}], key="a") is None


def test_study_figure_draws(lite0, photos, ref):
    import matplotlib.pyplot as plt

    table = qs.study(lite0, (8, 2), photos[0][:4], qs.reference(lite0, photos[0][:4], LAYER, CHANNEL, visualise=False),
                     progress=False)
    fig = qs.study_figure(table)
    assert fig.axes
    plt.close(fig)


def test_quant_explorer_is_lazy_cached_and_static(lite0, photos):
    from course.explorers.lab4 import QuantExplorer

    x = photos[0][:4]
    ref = qs.reference(lite0, x, LAYER, CHANNEL, visualise=True, vis_steps=2, vis_size=32)
    explorer = QuantExplorer(lite0, x, ref, bits=8, live=False)
    assert explorer.computed == 0  # nothing before it is shown
    bundle = explorer._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" not in bundle
    assert explorer.computed == 1
    first = explorer.png()
    explorer.set(bits=3)
    assert explorer.computed == 2 and explorer.png() != first
    row = explorer.result()
    direct = qs.measure(lite0, 3, x, ref)
    assert row["top1_agreement"] == direct["top1_agreement"] and row["map_correlation"] == direct["map_correlation"]
    assert len(row["levels"]) <= 2 ** 3 - 1
    explorer.set(bits=8)
    assert explorer.computed == 2 and explorer.png() == first  # cached
    explorer.set(scale="per-channel")
    assert explorer.computed == 3 and explorer.result()["per_channel"]
    assert hook_count(lite0) == 0
    with pytest.raises(ValueError):
        QuantExplorer(lite0, x, ref, bits=1, live=False)
