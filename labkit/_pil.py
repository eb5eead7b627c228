"""PIL helpers for ``labkit.images.load_image``: any PIL mode or numpy array to 8-bit RGB.

Private to labkit. Transparency is composited on white, 16-bit images are rescaled (not clipped),
and :class:`PilGuards` raises PIL's decompression-bomb limit and forbids truncated loads only
while a file is decoded (thread-safe; the user's settings are restored).
"""
from __future__ import annotations

import threading
import warnings
from typing import Optional

import numpy as np
from PIL import Image, ImageFile

#: Pixel count up to which load_image decodes without PIL's decompression-bomb error (PIL's own
#: default limit is ~89 Mpx with an error at twice that). Applied only inside load_image.
LARGE_IMAGE_PIXELS = 20_000 * 20_000

_PIL_GLOBALS_LOCK = threading.RLock()
_RESIZE_FIRST_MODES = ("L", "LA", "RGB", "RGBA")  # PIL resizes these exactly (alpha premultiplied)


class PilGuards:
    """Locally (and thread-safely) raise PIL's decompression-bomb limit and forbid truncated loads."""

    def __enter__(self):
        _PIL_GLOBALS_LOCK.acquire()
        self._max = Image.MAX_IMAGE_PIXELS
        self._trunc = ImageFile.LOAD_TRUNCATED_IMAGES
        if self._max is not None:
            Image.MAX_IMAGE_PIXELS = max(self._max, LARGE_IMAGE_PIXELS)
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        self._warn = warnings.catch_warnings()
        self._warn.__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return self

    def __exit__(self, *exc):
        try:
            self._warn.__exit__(*exc)
        finally:
            Image.MAX_IMAGE_PIXELS = self._max
            ImageFile.LOAD_TRUNCATED_IMAGES = self._trunc
            _PIL_GLOBALS_LOCK.release()
        return False


def _sixteen_bit_to_8(arr: np.ndarray, full_scale: float) -> np.ndarray:
    return np.clip(np.round(arr.astype(np.float64) * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def _to_rgb(im: Image.Image, fmt: Optional[str] = None) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Transparency is composited on white; 16-bit is rescaled, not clipped."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16"):
        # 16-bit grey (I;16, I;16L, I;16B, I;16N): 0..65535 -> 0..255
        arr = np.asarray(im)
        return Image.fromarray(_sixteen_bit_to_8(arr, 65535.0), "L").convert("RGB")
    if mode == "I":
        # 32-bit int grey: 16-bit PNGs in older Pillows, int TIFFs. Values above 255 mean 16 bit;
        # beyond 65535 the image is stretched by its own maximum.
        arr = np.asarray(im)
        top = float(arr.max()) if arr.size else 0.0
        if fmt == "PNG" or 255 < top <= 65535:
            full = 65535.0
        elif top <= 255:
            full = 255.0
        else:
            full = top
        return Image.fromarray(_sixteen_bit_to_8(np.maximum(arr, 0), full), "L").convert("RGB")
    if mode == "F":
        arr = np.nan_to_num(np.asarray(im, dtype=np.float64))
        full = 1.0 if arr.size == 0 or arr.max() <= 1.0 else 255.0
        return Image.fromarray(_sixteen_bit_to_8(arr, full), "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info) or (
        mode in ("L", "RGB") and "transparency" in im.info
    )
    if has_alpha:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "1":
        return im.convert("L").convert("RGB")
    return im.convert("RGB")  # L, P, CMYK, YCbCr, HSV, ...


def _downscale(im: Image.Image, max_size: Optional[int]) -> Image.Image:
    if max_size is None or max(im.size) <= max_size:
        return im
    scale = max_size / max(im.size)
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)


def fit_rgb(im: Image.Image, max_size: Optional[int], fmt: Optional[str] = None) -> Image.Image:
    """Downscale (first, while the image is still small per pixel, for 8-bit modes) and convert to RGB."""
    if im.mode in _RESIZE_FIRST_MODES and "transparency" not in im.info:
        return _to_rgb(_downscale(im, max_size), fmt)
    return _downscale(_to_rgb(im, fmt), max_size)


def array_to_pil(arr: np.ndarray) -> Image.Image:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(
            f"A numpy image must be HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA), got shape {a.shape}. "
            "For a CxHxW array use arr.transpose(1, 2, 0)."
        )
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif a.dtype == np.uint16:
        a = _sixteen_bit_to_8(a, 65535.0)
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a.astype(np.float64))
        a = np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer):
        if a.min() < 0 or a.max() > 255:
            raise ValueError(f"An integer numpy image must hold values 0..255, got {a.min()}..{a.max()}.")
        a = a.astype(np.uint8)
    else:
        raise ValueError(f"Unsupported numpy image dtype {a.dtype}.")
    mode = "L" if a.ndim == 2 else ("RGB" if a.shape[-1] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(a), mode)
