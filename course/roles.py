"""Which layers and channels each lab uses, per model: one typed row per registry model.

The labs are written once and run on whatever model the course machine has (VGG16/VGG19 with
internet, EfficientNet-Lite0 offline). A lab never names a layer itself; it asks
``roles_for(model)`` and reads the row's fields, so every lab names a real layer on every model.

Layers are dotted module names (``labkit.layers.layers(model)`` lists them); channels are output
channel indices of that layer. ``tests/test_roles.py`` checks every row against the real models.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, Tuple, Union

from torch import nn

from labkit import models

__all__ = ["LabRoles", "ROLES", "roles_for", "circuit_model_name"]


@dataclasses.dataclass(frozen=True)
class LabRoles:
    """The layers and channels the labs use on one model.

    Attributes:
        model: registry name (``labkit.models.model_names()``).
        first_conv: the first conv layer (Lab 3: ReLU on the first layer; Lab 4: its weights).
        mid_conv: a mid-level conv layer (Lab 2's filters, the ``labkit featurevis`` default).
        mid_channels: the channels of ``mid_conv`` that Lab 2 visualises (the Duke handout's 1, 3, 15, 63, 255).
        last_conv: the last conv layer (Lab 3).
        quant_layer, quant_channel: the channel whose response Lab 4 follows across bit widths
            (VGG16: the Duke handout's layer 24, filter 4).
        circuit_layer, circuit_channel: the unit Lab 5 reads as a circuit.
        invert_layers: Lab 6's shallow, middle and deep layer for feature inversion, in forward
            order (VGG: after the ReLU, relu2_2, relu4_3/relu4_4, relu5_3/relu5_4).
        style_layers: Lab 6's style (Gram matrix) layers, in forward order (VGG: Gatys et al.'s first
            style layers relu1_1, relu2_1, relu3_1; other models: the first layers at 1/2, 1/4 and
            1/8 of the input resolution).
        circuit_is_microscope: the circuit unit is the one OpenAI Microscope shows (conv3_3 unit 195
            of the Caffe-trained VGG19); only then may the lab say so.
    """

    model: str
    first_conv: str
    mid_conv: str
    mid_channels: Tuple[int, ...]
    last_conv: str
    quant_layer: str
    quant_channel: int
    circuit_layer: str
    circuit_channel: int
    invert_layers: Tuple[str, str, str]
    style_layers: Tuple[str, ...]
    circuit_is_microscope: bool = False


_HANDOUT_CHANNELS = (1, 3, 15, 63, 255)
_VGG_STYLE = ("features.1", "features.6", "features.11")  # relu1_1, relu2_1, relu3_1 (VGG16 and VGG19)
_VGG19_INVERT = ("features.8", "features.26", "features.35")  # relu2_2, relu4_4, relu5_4

ROLES: Dict[str, LabRoles] = {row.model: row for row in (
    LabRoles("vgg16", first_conv="features.0", mid_conv="features.10", mid_channels=_HANDOUT_CHANNELS,
             last_conv="features.28", quant_layer="features.24", quant_channel=4,
             circuit_layer="features.14", circuit_channel=195,
             invert_layers=("features.8", "features.22", "features.29"), style_layers=_VGG_STYLE),
    LabRoles("vgg19", first_conv="features.0", mid_conv="features.10", mid_channels=_HANDOUT_CHANNELS,
             last_conv="features.34", quant_layer="features.28", quant_channel=4,
             circuit_layer="features.14", circuit_channel=195,  # conv3_3, but not Microscope's weights
             invert_layers=_VGG19_INVERT, style_layers=_VGG_STYLE),
    LabRoles("vgg19_caffe", first_conv="features.0", mid_conv="features.10", mid_channels=_HANDOUT_CHANNELS,
             last_conv="features.34", quant_layer="features.28", quant_channel=4,
             circuit_layer="features.14", circuit_channel=195, circuit_is_microscope=True,
             invert_layers=_VGG19_INVERT, style_layers=_VGG_STYLE),
    LabRoles("alexnet", first_conv="features.0", mid_conv="features.6", mid_channels=_HANDOUT_CHANNELS,
             last_conv="features.10", quant_layer="features.8", quant_channel=4,
             circuit_layer="features.6", circuit_channel=195,
             invert_layers=("features.4", "features.7", "features.11"),  # relu2, relu3, relu5
             style_layers=("features.1", "features.4", "features.7")),  # relu1, relu2, relu3
    LabRoles("googlenet", first_conv="conv1.conv", mid_conv="inception3b.branch2.1.conv",
             mid_channels=(1, 3, 15, 63, 127), last_conv="inception5b.branch4.1.conv",
             quant_layer="inception4c.branch2.1.conv", quant_channel=4,
             circuit_layer="inception3b.branch2.1.conv", circuit_channel=100,
             invert_layers=("conv3.conv", "inception4a.branch2.1.conv", "inception5b.branch2.1.conv"),
             style_layers=("conv1.conv", "conv3.conv", "inception3a.branch2.1.conv")),
    LabRoles("resnet18", first_conv="conv1", mid_conv="layer2.1.conv2", mid_channels=(1, 3, 15, 63, 127),
             last_conv="layer4.1.conv2", quant_layer="layer4.0.conv2", quant_channel=4,
             circuit_layer="layer3.0.conv2", circuit_channel=195,
             invert_layers=("layer1.1.conv2", "layer3.1.conv2", "layer4.1.conv2"),
             style_layers=("conv1", "layer1.0.conv1", "layer2.0.conv1")),
    LabRoles("efficientnet_lite0", first_conv="conv_stem", mid_conv="blocks.3.0.conv_pw",
             mid_channels=(1, 3, 15, 63, 127), last_conv="conv_head", quant_layer="blocks.5.0.conv_pw",
             quant_channel=4, circuit_layer="blocks.3.0.conv_pw", circuit_channel=195,
             invert_layers=("blocks.1.1.conv_pwl", "blocks.3.2.conv_pwl", "blocks.5.3.conv_pwl"),
             style_layers=("blocks.0.0.conv_pw", "blocks.1.1.conv_pwl", "blocks.2.1.conv_pwl")),
)}


def roles_for(model_or_name: Union[nn.Module, str]) -> LabRoles:
    """The :class:`LabRoles` row of a model (a labkit model, read from ``model.labkit.name``) or of a
    registry name (aliases such as ``"lite0"`` accepted).

    Raises:
        ValueError: an unknown name, or a module that is not a labkit model (the message lists the
            models that have roles).
    """
    if isinstance(model_or_name, nn.Module):
        info = getattr(model_or_name, "labkit", None)
        if info is None:
            raise ValueError("This model carries no labkit config (model.labkit); load it with "
                             f"labkit.load_model(name). Models with lab roles: {', '.join(ROLES)}.")
        name = info.name
    else:
        name = models.model_config(str(model_or_name)).name
    if name not in ROLES:
        raise ValueError(f"No lab roles for model {name!r}. Models with lab roles: {', '.join(ROLES)}.")
    return ROLES[name]


def circuit_model_name(name: str) -> str:
    """The model Lab 5 should load for ``name``: ``"vgg19_caffe"`` for VGG19 when the Caffe-trained
    weights can be had offline now (then conv3_3 unit 195 is the unit OpenAI Microscope shows), else
    ``name`` itself (canonical registry name)."""
    name = models.model_config(name).name
    if name == "vgg19" and models.weights_available("vgg19_caffe"):
        return "vgg19_caffe"
    return name
