"""course.roles: every model's lab roles name real layers and channels."""
import dataclasses

import pytest

from course.roles import ROLES, LabRoles, roles_for
from labkit.layers import check_channels, layer_info
from labkit.models import load_model, model_names


@pytest.mark.parametrize("name", sorted(ROLES))
def test_roles_name_real_layers_and_channels(name):
    model = load_model(name, pretrained=False, device="cpu")
    roles = roles_for(model)
    assert roles is roles_for(name) and roles.model == name
    for field in ("first_conv", "mid_conv", "last_conv", "quant_layer", "circuit_layer"):
        assert layer_info(model, getattr(roles, field)).is_conv, (name, field)
    check_channels(model, roles.mid_conv, roles.mid_channels)
    check_channels(model, roles.quant_layer, roles.quant_channel)
    check_channels(model, roles.circuit_layer, roles.circuit_channel)


def test_every_model_has_roles_and_rows_are_frozen():
    assert set(ROLES) == set(model_names())
    with pytest.raises(dataclasses.FrozenInstanceError):
        ROLES["vgg16"].mid_conv = "features.0"
    assert isinstance(roles_for("lite0"), LabRoles) and roles_for("lite0").model == "efficientnet_lite0"
    # only the Caffe-trained VGG19's conv3_3 unit 195 is the one OpenAI Microscope shows
    assert [name for name, row in ROLES.items() if row.circuit_is_microscope] == ["vgg19_caffe"]


def test_unknown_models_are_clear_errors():
    import torch

    with pytest.raises(ValueError, match="Valid choices"):
        roles_for("vgg17")
    with pytest.raises(ValueError, match="no labkit config"):
        roles_for(torch.nn.Linear(2, 2))


def test_lab5_uses_the_caffe_vgg19_only_when_its_weights_are_here(tmp_path, monkeypatch):
    import torch
    import torchvision

    from course.roles import circuit_model_name

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    assert circuit_model_name("vgg19") == "vgg19" and circuit_model_name("lite0") == "efficientnet_lite0"
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), folder / "vgg19-d01eb7cb.pth")
    assert circuit_model_name("vgg19") == "vgg19_caffe"
    assert roles_for(circuit_model_name("vgg19")).circuit_is_microscope
    assert circuit_model_name("vgg16") == "vgg16"
