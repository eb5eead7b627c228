"""course.experiments: Lab 4's bit-width sweep and Lab 5's weight explorer, on labkit's primitives."""
import pytest
import torch

from course import experiments as E
from course.roles import roles_for
from labkit import circuits as C
from labkit import quantize as Q
from labkit.layers import forward_hooks_count

LAYER = "blocks.3.0.conv_pw"  # lite0's circuit role: 1x1 conv, 40 -> 240 channels
CHANNEL = 195


# --------------------------------------------------------------------------- sweep


def test_sweep_agreement_on_shipped_photos(lite0):
    table = E.sweep(lite0, bits=(16, 2), layer=False, progress=False)
    assert isinstance(table, E.SweepTable) and table.column("bits") == [16, 2]
    sixteen, two = table
    assert sixteen["top1_agreement"] == 1.0
    assert two["top1_agreement"] <= 0.5
    assert two["mean_kl"] > 1.0 > 100 * sixteen["mean_kl"]
    assert sixteen["weight_snr_db"] > 60 > two["weight_snr_db"]
    assert set(sixteen["layer_snr_db"]) == set(Q.quantizable_layers(lite0))
    assert sixteen["size_mb"] > two["size_mb"] and table.reference["size_mb"] > sixteen["size_mb"]
    assert sixteen["vis_image"] is None
    text = str(table)
    assert "top-1 agreement" in text and "100.0%" in text
    assert table._repr_html_().startswith("<table>")
    assert forward_hooks_count(lite0) == 0


def test_sweep_visualisation_and_figure(lite0, tmp_path):
    from labkit.images import preprocess, sample_images
    from labkit.plot import sweep_figure

    photos = sample_images()
    x = preprocess([photos[n] for n in ("cat", "dog")], lite0)
    table = E.sweep(lite0, bits=(16, 2), images=x, vis_steps=4, vis_size=48, progress=False)
    ref = table.reference
    roles = roles_for(lite0)
    assert ref["layer"] == roles.quant_layer and ref["channel"] == roles.quant_channel
    assert ref["vis_image"].shape == (48, 48, 3)
    sixteen, two = table
    for row in table:
        assert row["vis_image"].shape == (48, 48, 3)
        assert 0.0 <= row["vis_image"].min() and row["vis_image"].max() <= 1.0
        assert -1.0 <= row["vis_similarity"] <= 1.0
    # same seed, nearly the same weights: nearly the same picture; 2 bits: a different one
    assert sixteen["vis_similarity"] > 0.9
    assert two["vis_similarity"] < sixteen["vis_similarity"]
    # the float model's picture excites the 16-bit channel as much; at 2 bits the response is gone
    assert ref["vis_float_activation"] == pytest.approx(ref["vis_activation"], rel=1e-3)  # both "mean"
    assert sixteen["vis_float_activation"] == pytest.approx(ref["vis_float_activation"], rel=1e-2)
    assert abs(two["vis_float_activation"] - ref["vis_float_activation"]) > 0.5 * abs(ref["vis_float_activation"])
    assert forward_hooks_count(lite0) == 0

    fig = sweep_figure(table)
    assert len(fig.axes) == 3 + 2  # float + 2 widths, the curve and its twin axis
    assert "channel" in fig._suptitle.get_text()
    path = tmp_path / "sweep.png"
    fig.savefig(path, dpi=60)
    assert path.stat().st_size > 5000
    with pytest.raises(ValueError, match="one per record"):
        sweep_figure(table, images=[ref["vis_image"]])


def test_sweep_bad_arguments(lite0):
    with pytest.raises(ValueError, match="1 to 32"):
        E.sweep(lite0, bits=(8, 0), layer=False, progress=False)
    with pytest.raises(ValueError, match=r"\[N,3,H,W\]"):
        E.sweep(lite0, bits=(8,), images=torch.zeros(3, 8, 8), layer=False, progress=False)
    with pytest.raises(IndexError, match="32 channels"):
        E.sweep(lite0, bits=(8,), images=torch.zeros(1, 3, 32, 32), layer="conv_stem", channel=99, progress=False)


# --------------------------------------------------------------------------- weight explorer


def test_weight_explorer_renders(lite0, monkeypatch):
    import labkit.featurevis as fv
    from labkit.plot import norm_histogram

    calls = []
    real = fv.visualize

    def counting(model, layer, channels, **kwargs):
        calls.append((layer, list(channels)))
        return real(model, layer, channels, **kwargs)

    monkeypatch.setattr(fv, "visualize", counting)
    explorer = E.explore(lite0, LAYER, CHANNEL, k=6, source="blocks.2.0.conv_pwl", steps=3, size=40, progress=False)
    # one batched call for the six input channels, one for the unit
    assert calls == [("blocks.2.0.conv_pwl", explorer.input_channels), (LAYER, [CHANNEL])]
    assert explorer.input_images.shape == (6, 40, 40, 3) and explorer.channel_image.shape == (40, 40, 3)
    assert explorer.kernels.shape == (6, 5, 5)
    strongest = C.strongest(lite0, LAYER, CHANNEL, source="blocks.2.0.conv_pwl")
    assert explorer.records.column("input_channel") == strongest.column("input_channel")
    assert forward_hooks_count(lite0) == 0

    fig = explorer.figure()
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 6 + 6 + 1  # input pictures, kernels, the unit
    fig.savefig("/tmp/labkit_weight_explorer.png", dpi=80)

    fig = norm_histogram(explorer.norms, k=6, polarities=explorer.polarities, channels=explorer.norm_channels)
    fig.savefig("/tmp/labkit_norm_histogram.png", dpi=60)
    assert len(fig.axes) == 2


def test_weight_explorer_without_pictures_uses_the_lab_roles(lite0):
    explorer = E.explore(lite0, k=4, pictures=False)
    assert (explorer.layer, explorer.channel) == (LAYER, CHANNEL)
    assert explorer.input_images is None and explorer.channel_image is None
    assert explorer.norms.shape == (40,) and explorer.norm_channels == list(range(40))
    torch.testing.assert_close(explorer.norms, C.input_norms(lite0, LAYER, CHANNEL))
    fig = explorer.figure()
    assert len([ax for ax in fig.axes if ax.images]) == 4
