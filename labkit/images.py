"""Photos in, model-ready tensors out, and back again.

* :func:`load_image`: any photo file (or sample name, PIL image, numpy array) -> 8-bit RGB PIL image,
  whatever its mode (RGBA, L, P, 16-bit, CMYK), EXIF orientation and size.
* :func:`preprocess`: images -> ``[N,3,H,W]`` float batch normalised with the model's own mean/std,
  on the model's device. :func:`deprocess` goes back to ``[H,W,3]`` numpy in ``[0,1]`` for plotting.
* :func:`to_tensor01`, :func:`normalize`, :func:`denormalize`: the same steps as plain tensor functions
  (differentiable; feature visualisation optimises in ``[0,1]`` space and normalises on the fly).
* Re-exported from :mod:`labkit.photos`: the shipped photos (:func:`sample_images`,
  :func:`labelled_images`, :func:`images_dir`); from :mod:`labkit.scores`: :func:`class_index`.
  The class list is ``labkit.models.imagenet_class_names()``.

Conventions: a "[0,1] image" is float RGB with 0 = black, 1 = white; a "preprocessed" batch is
``(x01 - mean) / std`` per channel with the model's ``model.labkit.mean``/``std``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image, ImageOps

from labkit._pil import LARGE_IMAGE_PIXELS
from labkit._pil import PilGuards as _PilGuards
from labkit._pil import array_to_pil as _array_to_pil
from labkit._pil import fit_rgb as _fit_rgb
from labkit.photos import (SAMPLE_FILES, LabelledImage, images_dir, labelled_images, sample_images,
                           sample_names)
from labkit.scores import class_index

__all__ = [
    "SAMPLE_FILES",
    "LARGE_IMAGE_PIXELS",
    "ImageLike",
    "LabelledImage",
    "images_dir",
    "sample_images",
    "sample_names",
    "labelled_images",
    "load_image",
    "to_tensor01",
    "preprocess",
    "deprocess",
    "normalize",
    "denormalize",
    "class_index",
]

ImageLike = Union[str, os.PathLike, Image.Image, np.ndarray]

_ORIENTATION = 0x0112  # EXIF tag
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


# --------------------------------------------------------------------------- loading


def _resolve_path(source: Union[str, os.PathLike]) -> Path:
    path = Path(source).expanduser()
    if not path.exists() and isinstance(source, str) and source in SAMPLE_FILES:
        return sample_images()[source]
    if not path.exists():
        raise FileNotFoundError(
            f"No image file at {str(path)!r} (resolved: {path.resolve()}). Pass a path to an image file or "
            f"one of the sample names: {', '.join(SAMPLE_FILES)}."
        )
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not an image file.")
    return path


def load_image(image: ImageLike, *, max_size: Optional[int] = 2048) -> Image.Image:
    """Load a photo as an 8-bit RGB PIL image, whatever the file holds.

    Args:
        image: a path (str or ``os.PathLike``), a sample name from :func:`sample_images`
            (``"cat"``, ``"dog"``, ...), a PIL image, or a numpy array ``HxW``/``HxWx3``/``HxWx4``
            (uint8 0..255, uint16 0..65535, bool, or float 0..1).
        max_size: longest side in pixels of the result; larger images are shrunk (LANCZOS, aspect
            kept), never enlarged. ``None`` keeps the full size.

    Returns:
        A loaded ``PIL.Image.Image`` in mode ``"RGB"`` (file closed). EXIF orientation is applied,
        transparency (RGBA, LA, palette or tRNS) is composited on white, 16-bit images are rescaled to
        8 bit (not clipped), CMYK and other modes are converted. JPEGs larger than ``max_size`` are
        decoded at reduced scale; images up to :data:`LARGE_IMAGE_PIXELS` pixels load without PIL's
        decompression-bomb error (the limit is raised only while this function runs).

    Raises:
        FileNotFoundError: no file at the path (the message lists the sample names).
        ValueError: the file is not a readable image (corrupt, truncated or unsupported format), or
            ``image`` has an unsupported type/shape.
    """
    if max_size is not None and (not isinstance(max_size, (int, np.integer)) or max_size < 1):
        raise ValueError(f"max_size must be a positive int or None, got {max_size!r}")
    if isinstance(image, Image.Image):
        im = ImageOps.exif_transpose(image) if image.getexif().get(_ORIENTATION, 1) != 1 else image
        out = _fit_rgb(im, max_size, getattr(image, "format", None))
        return out.copy() if out is image else out
    if isinstance(image, np.ndarray):
        return _fit_rgb(_array_to_pil(image), max_size)
    if torch.is_tensor(image):
        raise ValueError("load_image takes files, PIL images or numpy arrays; for a tensor use deprocess().")
    if not isinstance(image, (str, os.PathLike)):
        raise ValueError(
            f"Cannot load an image from a {type(image).__name__}; pass a path, a sample name "
            f"({', '.join(SAMPLE_FILES)}), a PIL image or a numpy array."
        )
    path = _resolve_path(image)
    try:
        with _PilGuards():
            with Image.open(path) as im:
                fmt = im.format
                if max_size is not None and fmt == "JPEG" and max(im.size) > max_size:
                    scale = max_size / max(im.size)
                    # draft() decodes at 1/2, 1/4 or 1/8 scale but never below the requested size.
                    im.draft(im.mode, (max(1, int(im.width * scale) + 1), max(1, int(im.height * scale) + 1)))
                im.load()
                if im.getexif().get(_ORIENTATION, 1) != 1:
                    im = ImageOps.exif_transpose(im)
                out = _fit_rgb(im, max_size, fmt)
                out.load()
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"{str(path)!r} is too large to load ({exc}); shrink it first (limit {LARGE_IMAGE_PIXELS} pixels)."
        ) from exc
    except (FileNotFoundError, PermissionError):
        raise
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError) as exc:
        # PIL raises all of these for corrupt or truncated data (UnidentifiedImageError is an OSError).
        raise ValueError(
            f"{str(path)!r} is not a readable image (corrupt or unsupported format): {type(exc).__name__}: {exc}"
        ) from exc
    return out if out.mode == "RGB" else out.convert("RGB")


# --------------------------------------------------------------------------- model config


def _config(model, size, mean, std, interpolation):
    """Resolve (size, mean, std, interpolation) from keyword overrides, then ``model.labkit``."""
    info = getattr(model, "labkit", None) if model is not None else None
    if info is None and (mean is None or std is None):
        what = "model=None" if model is None else f"{type(model).__name__} has no .labkit attribute"
        raise ValueError(
            f"Cannot tell how to normalise for this model ({what}). Load it with labkit.models.load_model(), "
            "or pass mean=(r, g, b) and std=(r, g, b) (and size=, interpolation=) explicitly."
        )
    size = size if size is not None else getattr(info, "input_size", None)
    mean = tuple(float(v) for v in (mean if mean is not None else info.mean))
    std = tuple(float(v) for v in (std if std is not None else info.std))
    interpolation = interpolation or getattr(info, "interpolation", None) or "bilinear"
    if len(mean) != 3 or len(std) != 3:
        raise ValueError(f"mean and std must have 3 values (R, G, B), got {mean} and {std}")
    if any(s <= 0 for s in std):
        raise ValueError(f"std must be positive, got {std}")
    return size, mean, std, str(interpolation).lower()


def _model_device_dtype(model) -> Tuple[torch.device, torch.dtype]:
    if model is not None and hasattr(model, "parameters"):
        for p in model.parameters():
            return p.device, (p.dtype if p.dtype.is_floating_point else torch.float32)
        for b in model.buffers():
            return b.device, torch.float32
    return torch.device("cpu"), torch.float32


def _mean_std(x: torch.Tensor, model, mean, std) -> Tuple[torch.Tensor, torch.Tensor]:
    _, mean, std, _ = _config(model, 0, mean, std, "bilinear")
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return m, s


def _layout(model, mean, std) -> Tuple[float, bool]:
    """``(input_scale, bgr)`` from the model's config (``labkit.models.ModelConfig``: a Caffe model
    takes BGR in 0..255); ``(1, False)`` when mean/std are given explicitly or there is no config."""
    info = getattr(model, "labkit", None) if model is not None else None
    if info is None or mean is not None or std is not None:
        return 1.0, False
    return float(getattr(info, "input_scale", 1.0)), getattr(info, "channel_order", "RGB") == "BGR"


def normalize(x01: torch.Tensor, model=None, *, mean=None, std=None) -> torch.Tensor:
    """``[0,1]`` images -> preprocessed model input: ``(x01 - mean) / std`` per channel.

    Args:
        x01: float tensor ``[N,3,H,W]`` or ``[3,H,W]``, RGB in ``[0,1]`` (not clipped).
        model: a model carrying ``model.labkit`` (mean/std), or ``None`` with ``mean``/``std`` given.
        mean, std: 3-tuples overriding the model's.

    Returns:
        Tensor of the same shape, device and dtype. Differentiable.
    """
    _check_chw(x01, "x01")
    m, s = _mean_std(x01, model, mean, std)
    scale, bgr = _layout(model, mean, std)  # the model's input range and channel order (Caffe: 255, BGR)
    x = x01 * scale if scale != 1 else x01
    return ((x.flip(-3) if bgr else x) - m) / s


def denormalize(x: torch.Tensor, model=None, *, mean=None, std=None) -> torch.Tensor:
    """Preprocessed model input -> ``[0,1]`` images: ``x * std + mean`` (inverse of :func:`normalize`).

    Args:
        x: float tensor ``[N,3,H,W]`` or ``[3,H,W]``.
        model, mean, std: as in :func:`normalize`.

    Returns:
        Tensor of the same shape, device and dtype, not clipped. Differentiable.
    """
    _check_chw(x, "x")
    m, s = _mean_std(x, model, mean, std)
    scale, bgr = _layout(model, mean, std)
    x = x * s + m
    x = x.flip(-3) if bgr else x
    return x / scale if scale != 1 else x


def _check_chw(x, name: str) -> None:
    if not torch.is_tensor(x):
        raise ValueError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if x.dim() not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"{name} must be [N,3,H,W] or [3,H,W], got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- to tensors


def _size_hw(size) -> Optional[Tuple[int, int]]:
    if size is None:
        return None
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    h, w = (int(v) for v in size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size}")
    return h, w


def _resample(interpolation: str):
    try:
        return _RESAMPLE[interpolation]
    except KeyError:
        raise ValueError(f"Unknown interpolation {interpolation!r}. Valid choices: {', '.join(_RESAMPLE)}.") from None


def _resize_pil(im: Image.Image, hw: Optional[Tuple[int, int]], crop: bool, crop_pct: float,
                interpolation: str) -> Image.Image:
    if hw is None:
        return im
    h, w = hw
    resample = _resample(interpolation)
    if not crop:
        return im.resize((w, h), resample)
    # torchvision/timm eval transform: Resize(shorter side = size / crop_pct) + CenterCrop(size).
    short = int(min(h, w) / crop_pct) if h == w else None
    if short is not None:
        if im.width <= im.height:
            nw, nh = short, int(short * im.height / im.width)
        else:
            nh, nw = short, int(short * im.width / im.height)
    else:  # rectangular target: scale so both sides cover the target / crop_pct
        scale = max(h / im.height, w / im.width) / crop_pct
        nw, nh = max(w, round(im.width * scale)), max(h, round(im.height * scale))
    im = im.resize((nw, nh), resample)
    top, left = int(round((nh - h) / 2.0)), int(round((nw - w) / 2.0))
    return im.crop((left, top, left + w, top + h))


def _is_batch(images) -> bool:
    return isinstance(images, (list, tuple))


def to_tensor01(
    images: Union[ImageLike, Sequence[ImageLike], torch.Tensor],
    size=None,
    *,
    crop: bool = False,
    crop_pct: float = 0.875,
    interpolation: str = "bilinear",
) -> torch.Tensor:
    """Images -> float tensor ``[N,3,H,W]`` on the CPU, RGB in ``[0,1]``.

    Args:
        images: one image (path, sample name, PIL image, numpy array) or a list of them; or a float
            tensor ``[3,H,W]``/``[N,3,H,W]`` already in ``[0,1]`` (then only resized).
        size: ``None`` (keep each image's size; a list must then be all one size), an int ``S``
            (-> ``S x S``) or ``(H, W)`` in pixels.
        crop: ``False``: squash the whole image to ``size`` (the photo stays entirely visible).
            ``True``: resize the shorter side to ``size / crop_pct`` then take the centre ``size``.
        crop_pct: fraction kept by the centre crop (0.875 = ImageNet's 224 out of 256).
        interpolation: ``"bilinear"``, ``"bicubic"``, ``"lanczos"``, ``"nearest"``, ...

    Returns:
        ``torch.float32`` tensor ``[N,3,H,W]`` (N = 1 for a single image).
    """
    hw = _size_hw(size)
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    if torch.is_tensor(images):
        x = images.detach().to(torch.float32)
        _check_chw(x, "images")
        x = x.unsqueeze(0) if x.dim() == 3 else x
        if hw is not None and tuple(x.shape[-2:]) != hw:
            mode = interpolation if interpolation in ("bilinear", "bicubic", "nearest") else "bilinear"
            if crop:
                raise ValueError("crop=True is only supported for images, not tensors")
            kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": True}
            x = torch.nn.functional.interpolate(x, size=hw, mode=mode, **kwargs)
        return x.cpu()
    items = list(images) if _is_batch(images) else [images]
    if not items:
        raise ValueError("Got an empty list of images.")
    arrays = []
    for item in items:
        im = _resize_pil(load_image(item, max_size=None if hw is None else max(2048, 2 * max(hw))),
                         hw, crop, crop_pct, interpolation)
        arrays.append(np.asarray(im, dtype=np.float32) / 255.0)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"Images of different sizes {sorted(shapes)} cannot be batched; pass size=.")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def preprocess(
    images: Union[ImageLike, Sequence[ImageLike], torch.Tensor],
    model=None,
    *,
    size=None,
    crop: bool = False,
    mean=None,
    std=None,
    interpolation: Optional[str] = None,
    device=None,
) -> torch.Tensor:
    """Images -> a model-ready batch ``[N,3,H,W]``, normalised with the model's own mean/std.

    Args:
        images: one image (path, sample name, PIL image, numpy array) or a list of them, or a float
            tensor ``[3,H,W]``/``[N,3,H,W]`` in ``[0,1]``.
        model: a model from ``labkit.models.load_model`` (its ``model.labkit`` gives ``input_size``,
            ``mean``, ``std``, ``interpolation``); the batch goes to the device (and float dtype)
            of its parameters.
        size: output size in pixels, int or ``(H, W)``; default ``model.labkit.input_size``.
        crop: ``False`` (default) squashes the whole image to ``size x size``, so the entire photo is
            seen and saliency maps line up with it; ``True`` resizes the shorter side to
            ``size / 0.875`` and centre-crops (the standard ImageNet evaluation transform).
        mean, std, interpolation: override the model's values (needed when ``model`` has no
            ``.labkit``); ``device`` overrides the model's device.

    Returns:
        Float tensor ``[N,3,H,W]`` (N = 1 for a single image): ``(rgb01 - mean) / std``.

    Raises:
        ValueError: no way to know mean/std, bad size/interpolation, or an unreadable image.
        FileNotFoundError: a path does not exist.
    """
    # the model's own layout (input range, channel order) unless mean/std are given explicitly
    layout_model = model if mean is None and std is None else None
    size, mean, std, interpolation = _config(model, size, mean, std, interpolation)
    if size is None:
        raise ValueError("No size: the model's .labkit has no input_size; pass size=.")
    dev, dtype = _model_device_dtype(model)
    if device is not None:
        dev = torch.device(device)
    crop_pct = float(getattr(getattr(model, "labkit", None), "crop_pct", 0.875))
    x01 = to_tensor01(images, size, crop=crop, crop_pct=crop_pct, interpolation=interpolation)
    if layout_model is not None:
        return normalize(x01, layout_model).to(device=dev, dtype=dtype)
    return normalize(x01, mean=mean, std=std).to(device=dev, dtype=dtype)


def deprocess(x: torch.Tensor, model=None, *, mean=None, std=None) -> np.ndarray:
    """Preprocessed tensor -> numpy RGB image(s) in ``[0,1]`` for plotting (the inverse of :func:`preprocess`).

    Args:
        x: ``[3,H,W]``, ``[1,3,H,W]`` or ``[N,3,H,W]`` normalised with the model's mean/std
            (any device; gradients are detached).
        model, mean, std: as in :func:`normalize`.

    Returns:
        ``float32`` array ``HxWx3`` (for ``[3,H,W]`` and ``[1,3,H,W]``) or ``NxHxWx3`` (N > 1),
        clipped to ``[0,1]``.
    """
    _check_chw(x, "x")
    x01 = denormalize(x.detach().to("cpu", torch.float32), model, mean=mean, std=std).clamp_(0.0, 1.0)
    arr = x01.numpy()
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    return np.ascontiguousarray(np.moveaxis(arr, -3, -1))
