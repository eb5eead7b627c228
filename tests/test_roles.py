"""course.roles: every model's lab roles name real layers and channels."""
import dataclasses

import pytest
import torch

from course.roles import ROLES, LabRoles, roles_for
from labkit.layers import check_channels, hooks, layer_info, layers
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
    # Lab 6: inversion layers shallow -> middle -> deep, style layers likewise, each a layer of the
    # forward pass that runs once (so a truncated capture reads its only output)
    order = {row.name: i for i, row in enumerate(layers(model))}
    assert len(roles.invert_layers) == 3 and len(roles.style_layers) >= 2, name
    for field in ("invert_layers", "style_layers"):
        picked = getattr(roles, field)
        rows = [layer_info(model, layer) for layer in picked]
        assert [order[row.name] for row in rows] == sorted(order[row.name] for row in rows), (name, field)
        assert len(set(picked)) == len(picked), (name, field)
        sizes = [row.out_shape[-1] for row in rows]
        assert sizes == sorted(sizes, reverse=True), (name, field, sizes)  # resolution never grows with depth
    deep = [layer_info(model, layer).out_shape[-1] for layer in roles.invert_layers]
    assert deep[0] > deep[-1], (name, deep)  # the deep layer really is coarser than the shallow one
    calls = {layer: 0 for layer in (*roles.invert_layers, *roles.style_layers)}
    with hooks() as handles:
        for layer in calls:
            handles.append(model.get_submodule(layer).register_forward_hook(
                lambda m, args, out, layer=layer: calls.__setitem__(layer, calls[layer] + 1)))
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
    assert set(calls.values()) == {1}, (name, calls)


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
