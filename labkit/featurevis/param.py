"""Image parameterisations: how the optimised numbers become a batch of images in ``[0,1]``.

* :func:`pixel`: one number per pixel (the Duke handout). Stored in the model's normalised units
  (``(x01 - mean) / std``), so a learning rate means what it means in the handout, and clamped to
  the valid pixel range after every step (or squashed with a sigmoid).
* :func:`fft`: lucid/lucent's Fourier parameterisation: the image's spectrum, scaled by ``1/f`` so
  all frequencies learn at a similar rate, with colours decorrelated through the ImageNet colour
  correlation matrix and a sigmoid to ``[0,1]``. Gives smooth, natural-looking visualisations.

A parameterisation *spec* (what :func:`pixel`/:func:`fft` return) builds an :class:`ImageParam`
for a batch size and image size, from per-image random generators (so image ``i`` never depends on
the others) or from given starting images (a photo, or the previous octave's result).
"""
from __future__ import annotations

import abc
import math
from typing import List, Optional, Sequence, Tuple

import torch
from torch import nn

__all__ = ["ImageParam", "PixelImage", "FFTImage", "ParamSpec", "pixel", "fft", "as_param",
           "COLOR_CORRELATION_SVD_SQRT"]

#: Square root of the ImageNet colour correlation matrix (from lucid), columns normalised below.
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                           [0.27, 0.00, -0.05],
                                           [0.27, -0.09, 0.03]])
_COLOR_MATRIX = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()
_EPS = 1e-4  # keeps logit() finite for pixels that are exactly 0 or 1


def _logit(x01: torch.Tensor) -> torch.Tensor:
    x = x01.clamp(_EPS, 1 - _EPS)
    return torch.log(x) - torch.log1p(-x)


def _randn(gens: Sequence[torch.Generator], shape: Tuple[int, ...]) -> torch.Tensor:
    """``[N, *shape]`` standard normal, image ``i`` drawn from its own generator (on the CPU)."""
    return torch.stack([torch.randn(shape, generator=g) for g in gens])


def _rand(gens: Sequence[torch.Generator], shape: Tuple[int, ...]) -> torch.Tensor:
    return torch.stack([torch.rand(shape, generator=g) for g in gens])


class ImageParam(abc.ABC):
    """A batch of images ``[N,3,H,W]`` in ``[0,1]`` made from optimisable tensors."""

    @abc.abstractmethod
    def parameters(self) -> List[torch.Tensor]:
        """The leaf tensors the optimiser updates."""

    @abc.abstractmethod
    def __call__(self) -> torch.Tensor:
        """The images, ``[N,3,H,W]`` in ``[0,1]``, differentiable w.r.t. :meth:`parameters`."""

    @abc.abstractmethod
    def set_images(self, x01: torch.Tensor) -> None:
        """Re-encode the parameters so that ``self()`` gives ``x01`` (``[N,3,H,W]`` in ``[0,1]``)."""

    def project(self) -> None:
        """Called after every optimiser step (e.g. clamp to the valid range)."""


class PixelImage(ImageParam):
    """Plain pixels in the model's normalised units; ``sigmoid=True`` optimises logits instead of clamping."""

    def __init__(self, x01: torch.Tensor, mean: Sequence[float], std: Sequence[float], sigmoid: bool = False):
        dev, dt = x01.device, x01.dtype
        self.mean = torch.as_tensor(mean, dtype=dt, device=dev).view(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=dt, device=dev).view(1, 3, 1, 1)
        self.sigmoid = sigmoid
        self.low, self.high = -self.mean / self.std, (1 - self.mean) / self.std  # [0,1] in normalised units
        self.tensor = torch.empty_like(x01)
        self.set_images(x01)
        self.tensor.requires_grad_(True)

    def parameters(self) -> List[torch.Tensor]:
        return [self.tensor]

    def __call__(self) -> torch.Tensor:
        if self.sigmoid:
            return torch.sigmoid(self.tensor)
        return self.tensor * self.std + self.mean

    def set_images(self, x01: torch.Tensor) -> None:
        with torch.no_grad():
            value = _logit(x01) if self.sigmoid else (x01.clamp(0, 1) - self.mean) / self.std
            self.tensor.copy_(value)

    def project(self) -> None:
        if not self.sigmoid:
            with torch.no_grad():  # in place: no new image-sized tensor per step
                self.tensor.clamp_(self.low, self.high)


def _rfft_freqs(h: int, w: int) -> torch.Tensor:
    fy = torch.fft.fftfreq(h).view(-1, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    return torch.sqrt(fx * fx + fy * fy)


class FFTImage(ImageParam):
    """lucid's Fourier-space image with ``1/f^decay_power`` scaling and optional colour decorrelation."""

    magic = 4.0  # lucid's constant: divides the spatial image, reduces saturation

    def __init__(self, spectrum: torch.Tensor, size: Tuple[int, int], decay_power: float = 1.0,
                 decorrelate: bool = True):
        h, w = size
        self.size = (h, w)
        self.decorrelate = decorrelate
        freqs = _rfft_freqs(h, w).to(spectrum.device)
        scale = 1.0 / torch.clamp(freqs, min=1.0 / max(h, w)) ** decay_power
        self.scale = scale.to(spectrum.dtype)[None, None, :, :, None]
        self.color = _COLOR_MATRIX.to(device=spectrum.device, dtype=spectrum.dtype)
        self.spectrum = spectrum.detach().clone().requires_grad_(True)  # [N,3,h,w//2+1,2] (real, imag)

    @classmethod
    def from_noise(cls, gens, n: int, size: Tuple[int, int], *, sd: float = 0.01, decay_power: float = 1.0,
                   decorrelate: bool = True, device=None) -> "FFTImage":
        h, w = size
        spectrum = _randn(gens, (3, h, w // 2 + 1, 2)) * sd
        return cls(spectrum.to(device), size, decay_power, decorrelate)

    def parameters(self) -> List[torch.Tensor]:
        return [self.spectrum]

    def _spatial(self) -> torch.Tensor:
        spec = torch.view_as_complex((self.scale * self.spectrum).contiguous())
        return torch.fft.irfftn(spec, s=self.size, dim=(-2, -1), norm="ortho") / self.magic

    def __call__(self) -> torch.Tensor:
        x = self._spatial()
        if self.decorrelate:
            x = torch.einsum("nchw,dc->ndhw", x, self.color)
        return torch.sigmoid(x)

    def set_images(self, x01: torch.Tensor) -> None:
        if tuple(x01.shape[-2:]) != self.size:
            raise ValueError(f"Images of size {tuple(x01.shape[-2:])} do not fit a {self.size} spectrum.")
        with torch.no_grad():
            x = _logit(x01.to(self.spectrum.dtype))
            if self.decorrelate:
                x = torch.einsum("nchw,dc->ndhw", x, torch.linalg.inv(self.color))
            spec = torch.fft.rfftn(x * self.magic, dim=(-2, -1), norm="ortho")
            self.spectrum.copy_(torch.view_as_real(spec) / self.scale)


class ParamSpec(abc.ABC):
    """Builds an :class:`ImageParam` for a batch; returned by :func:`pixel` and :func:`fft`."""

    name = "param"

    @abc.abstractmethod
    def build(self, n: int, size: Tuple[int, int], *, gens: Sequence[torch.Generator], model: nn.Module,
              device, init01: Optional[torch.Tensor] = None) -> ImageParam:
        """``n`` images of ``size`` (H, W): from ``init01`` ``[n,3,H,W]`` in ``[0,1]`` if given, else random."""

    def __repr__(self) -> str:
        return self.name


class _PixelSpec(ParamSpec):
    def __init__(self, sigmoid: bool, init_range: Tuple[float, float]):
        self.sigmoid = sigmoid
        self.init_range = init_range
        self.name = "pixel(sigmoid)" if sigmoid else "pixel"

    def build(self, n, size, *, gens, model, device, init01=None):
        info = getattr(model, "labkit", None)
        mean = getattr(info, "mean", (0.485, 0.456, 0.406))
        std = getattr(info, "std", (0.229, 0.224, 0.225))
        if init01 is None:
            lo, hi = self.init_range
            init01 = lo + (hi - lo) * _rand(gens, (3, *size))
        return PixelImage(init01.to(device=device, dtype=torch.float32), mean, std, sigmoid=self.sigmoid)


class _FFTSpec(ParamSpec):
    def __init__(self, decorrelate: bool, decay_power: float, sd: float):
        self.decorrelate = decorrelate
        self.decay_power = decay_power
        self.sd = sd
        self.name = "fft" + ("+decorrelated" if decorrelate else "")

    def build(self, n, size, *, gens, model, device, init01=None):
        param = FFTImage.from_noise(gens, n, size, sd=self.sd, decay_power=self.decay_power,
                                    decorrelate=self.decorrelate, device=device)
        if init01 is not None:
            param.set_images(init01.to(device))
        return param


def pixel(*, sigmoid: bool = False, init_range: Tuple[float, float] = (150 / 255, 180 / 255)) -> ParamSpec:
    """Plain pixels. Random starts are uniform in ``init_range`` (``[0,1]`` units; the Duke
    handout's 150..180 grey levels by default). ``sigmoid=False`` clamps to the valid range after
    each step; ``True`` optimises logits through a sigmoid."""
    lo, hi = init_range
    if not 0 <= lo <= hi <= 1:
        raise ValueError(f"init_range must satisfy 0 <= low <= high <= 1, got {init_range}.")
    return _PixelSpec(sigmoid, (float(lo), float(hi)))


def fft(*, decorrelate: bool = True, decay_power: float = 1.0, sd: float = 0.01) -> ParamSpec:
    """Fourier parameterisation (lucid): ``1/f^decay_power`` spectrum scaling, colours decorrelated
    with the ImageNet colour correlation matrix, sigmoid to ``[0,1]``. Random starts draw the spectrum
    from N(0, ``sd``), i.e. images close to uniform grey."""
    if decay_power < 0 or sd <= 0 or not math.isfinite(sd):
        raise ValueError(f"decay_power must be >= 0 and sd > 0, got {decay_power} and {sd}.")
    return _FFTSpec(decorrelate, float(decay_power), float(sd))


PARAM_NAMES = {"pixel": pixel, "fft": fft}


def as_param(param) -> ParamSpec:
    """A :class:`ParamSpec`, or a name: ``"pixel"`` or ``"fft"``."""
    if isinstance(param, ParamSpec):
        return param
    if isinstance(param, str) and param.strip().lower() in PARAM_NAMES:
        return PARAM_NAMES[param.strip().lower()]()
    raise ValueError(f"Unknown parameterisation {param!r}. Valid choices: {', '.join(PARAM_NAMES)} "
                     "(or labkit.featurevis.pixel(...)/fft(...)).")
