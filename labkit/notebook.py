"""The settings every lab notebook starts from: quick mode and the device.

Each lab's settings cell reads::

    %matplotlib inline
    from labkit.notebook import lab_settings

    STUDENT_NAME = ""  # your name(s), as they should appear on the report
    MODEL_NAME = None  # None: $LABKIT_MODEL, else the lab's model
    FAST, DEVICE = lab_settings()
    ...  # the lab's own one-line defaults, e.g. STEPS = 16 if FAST else 256

so the rule for quick mode and the device choice live here, once.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional, Union

import torch

from labkit.models import resolve_device

FAST_ENV = "LABKIT_FAST"
_TRUE = {"1", "true", "yes"}


class LabSettings(NamedTuple):
    """What :func:`lab_settings` returns; unpacks as ``FAST, DEVICE``."""

    fast: bool  # small, quick settings (CI, laptops): $LABKIT_FAST is 1/true/yes
    device: torch.device  # where the model and the tensors go


def fast_mode() -> bool:
    """True when ``$LABKIT_FAST`` is ``1``, ``true`` or ``yes`` (any case): labs use small, quick settings."""
    return os.environ.get(FAST_ENV, "").strip().lower() in _TRUE


def lab_settings(device: Optional[Union[str, torch.device]] = None) -> LabSettings:
    """The quick-mode flag and the device of a lab notebook.

    Args:
        device: ``None`` picks CUDA, then Apple MPS, then CPU (:func:`labkit.models.resolve_device`);
            else a device name such as ``"cpu"`` or ``"cuda:0"``.

    Returns:
        ``LabSettings(fast, device)``: ``fast`` from ``$LABKIT_FAST`` (:func:`fast_mode`).
    """
    return LabSettings(fast_mode(), resolve_device(device))
