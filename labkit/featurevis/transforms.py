"""Random augmentations applied to the images before each forward pass (transformation robustness).

A transform is called as ``t(x, gens)``: ``x`` is ``[N,3,H,W]`` in ``[0,1]``, ``gens`` holds one
``torch.Generator`` per image, and image ``i``'s random draws come from ``gens[i]`` only (so a
filter's picture does not depend on which other filters share its batch). Everything is batched
and differentiable: integer shifts with ``torch.roll``, scale and rotation with one
``affine_grid``/``grid_sample`` per transform, and :class:`RandomAffine` does scale, rotation and
shift in a single resampling (the default, :func:`standard_transforms`). No kornia.
"""
from __future__ import annotations

import abc
import math
from typing import List, Sequence

import torch
import torch.nn.functional as F

__all__ = ["Transform", "Compose", "Pad", "Jitter", "RandomScale", "RandomRotate", "RandomAffine",
           "standard_transforms", "lucent_transforms", "compose"]


def _choice(gen: torch.Generator, values: Sequence[float]) -> float:
    return float(values[int(torch.randint(len(values), (1,), generator=gen))])


class Transform(abc.ABC):
    """Base class: ``__call__(x [N,3,H,W], gens) -> [N,3,H',W']``."""

    @abc.abstractmethod
    def __call__(self, x: torch.Tensor, gens: Sequence[torch.Generator]) -> torch.Tensor:
        """Transform each image of ``x`` with randomness drawn from its own generator in ``gens``."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


class Compose(Transform):
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, x, gens):
        for t in self.transforms:
            x = t(x, gens)
        return x


class Pad(Transform):
    """Pad every side by ``px`` pixels with a constant grey (``value`` in ``[0,1]``) or ``mode="reflect"``."""

    def __init__(self, px: int, value: float = 0.5, mode: str = "constant"):
        if mode not in ("constant", "reflect", "replicate"):
            raise ValueError(f"mode must be 'constant', 'reflect' or 'replicate', not {mode!r}.")
        self.px, self.value, self.mode = int(px), float(value), mode

    def __call__(self, x, gens):
        pad = (self.px,) * 4
        if self.mode == "constant":
            return F.pad(x, pad, mode="constant", value=self.value)
        return F.pad(x, pad, mode=self.mode)


class Jitter(Transform):
    """Shift each image by a random whole number of pixels in ``[-px, px]`` on each axis (wrapping round)."""

    def __init__(self, px: int):
        self.px = int(px)

    def __call__(self, x, gens):
        if self.px <= 0:
            return x
        out = []
        for i, g in enumerate(gens):
            dy, dx = (int(v) for v in torch.randint(-self.px, self.px + 1, (2,), generator=g))
            out.append(torch.roll(x[i], shifts=(dy, dx), dims=(-2, -1)))
        return torch.stack(out)


def _affine(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(matrices.to(dtype=x.dtype, device=x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


class RandomScale(Transform):
    """Zoom each image by a factor drawn from the list ``scales``; the image keeps its size
    (borders reflect)."""

    def __init__(self, scales: Sequence[float]):
        self.scales = [float(s) for s in scales]
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be a non-empty list of positive factors, got {scales!r}.")

    def __call__(self, x, gens):
        s = torch.tensor([_choice(g, self.scales) for g in gens])
        theta = torch.zeros(len(gens), 2, 3)
        theta[:, 0, 0] = 1.0 / s  # sampling grid shrinks -> content grows
        theta[:, 1, 1] = 1.0 / s
        return _affine(x, theta)


class RandomRotate(Transform):
    """Rotate each image by an angle (degrees) drawn from ``degrees`` (a list or ``range``)."""

    def __init__(self, degrees: Sequence[float]):
        self.degrees = list(degrees)

    def __call__(self, x, gens):
        a = torch.tensor([_choice(g, self.degrees) for g in gens]) * (math.pi / 180.0)
        cos, sin = torch.cos(a), torch.sin(a)
        theta = torch.zeros(len(gens), 2, 3)
        theta[:, 0, 0], theta[:, 0, 1] = cos, -sin
        theta[:, 1, 0], theta[:, 1, 1] = sin, cos
        h, w = x.shape[-2:]
        if h != w:  # affine_grid works in [-1,1] per axis; correct the aspect ratio for true rotations
            theta[:, 0, 1] *= h / w
            theta[:, 1, 0] *= w / h
        return _affine(x, theta)


class RandomAffine(Transform):
    """Scale, rotate and shift each image in one resampling; the image keeps its size.

    Image ``i`` draws a zoom factor from ``scales``, an angle (degrees) from ``degrees`` and a whole-pixel
    shift in ``[-shift, shift]`` on each axis, in that order, from ``gens[i]``. One ``affine_grid`` /
    ``grid_sample`` (bilinear) serves the whole batch; what comes into view from outside the image is
    the grey ``fill`` (as after lucent's constant padding)."""

    def __init__(self, scales: Sequence[float], degrees: Sequence[float], shift: int, fill: float = 0.5):
        self.scales = [float(s) for s in scales]
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be a non-empty list of positive factors, got {scales!r}.")
        self.degrees = [float(d) for d in degrees]
        if not self.degrees:
            raise ValueError("degrees must be a non-empty list of angles (e.g. [0] for no rotation).")
        if int(shift) < 0:
            raise ValueError(f"shift must be >= 0 px, got {shift}.")
        self.shift, self.fill = int(shift), float(fill)

    def __call__(self, x, gens):
        h, w = x.shape[-2:]
        theta = torch.zeros(len(gens), 2, 3)
        for i, g in enumerate(gens):
            s = _choice(g, self.scales)
            a = _choice(g, self.degrees) * (math.pi / 180.0)
            dy, dx = (int(v) for v in torch.randint(-self.shift, self.shift + 1, (2,), generator=g))
            cos, sin = math.cos(a) / s, math.sin(a) / s  # sampling grid shrinks -> content grows
            # affine_grid works in [-1,1] per axis: correct the aspect ratio for true rotations; 1 px = 2/size
            theta[i] = torch.tensor([[cos, -sin * h / w, -2.0 * dx / w], [sin * w / h, cos, -2.0 * dy / h]])
        grid = F.affine_grid(theta.to(dtype=x.dtype, device=x.device), list(x.shape), align_corners=False)
        moved = F.grid_sample(x - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return moved + self.fill


def standard_transforms() -> List[Transform]:
    """labkit's transformation robustness: one :class:`RandomAffine` with lucent's ranges (scale
    0.9..1.1, rotation -10..10 degrees, shifts up to 12 px, grey from outside), at the image's own size.

    Against lucent's chain (:func:`lucent_transforms`) it gives pictures of the same look and a
    slightly higher final activation, and a quality step costs 23% less CPU time (23.1 against 30.0
    ms per image-step on Lite0, ``benchmarks/results/featurevis_profile.md``): one resampling
    instead of two, and the network runs on the image's size instead of the 24 px larger padded one."""
    return [RandomAffine([1 + (i - 5) / 50 for i in range(11)], range(-10, 11), shift=12, fill=0.5)]


def lucent_transforms() -> List[Transform]:
    """lucent's ``standard_transforms`` as a chain: pad 12 px grey, jitter 8 px, scale 0.9..1.1,
    rotate -10..10 degrees, jitter 4 px (the image grows by 24 px)."""
    return [
        Pad(12, value=0.5),
        Jitter(8),
        RandomScale([1 + (i - 5) / 50 for i in range(11)]),
        RandomRotate(list(range(-10, 11))),
        Jitter(4),
    ]


def compose(transforms) -> Compose:
    """A :class:`Compose` from ``None``/``[]`` (no augmentation), a list, or one transform."""
    if transforms is None:
        return Compose([])
    if isinstance(transforms, Compose):
        return transforms
    if isinstance(transforms, Transform):
        return Compose([transforms])
    items = list(transforms)
    for t in items:
        if not callable(t):
            raise TypeError(f"A transform must be callable as t(x, gens), got {type(t).__name__}.")
    return Compose(items)
