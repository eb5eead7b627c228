"""Class visualisation (Simonyan et al. 2014; lucid's class objectives): images the model takes for a class.

Gradient ascent on the pre-softmax score of each class, through :func:`~labkit.featurevis.render`:
by default lucid's decorrelated Fourier parameterisation with labkit's standard transforms, which
keep the pictures from turning into adversarial pixel noise.
"""
from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .objectives import class_logit
from .render import render

__all__ = ["ClassVisResult", "class_visualization"]


@dataclasses.dataclass
class ClassVisResult:
    """What :func:`class_visualization` returns.

    Attributes:
        images: ``[N,3,H,W]`` float32 on the CPU, RGB in ``[0,1]``: image ``i`` shows ``classes[i]``.
        classes: the class indices, in batch order.
        logits: ``[N]`` each image's score for its class (pre-softmax), on the final image.
        probs: ``[N]`` softmax probability of each image's class on the final image (model's view
            of the image as returned, at its own size).
        pred: ``[N]`` the model's top class on each final image.
        names: the class names.
        settings: how the images were made (see :class:`~labkit.featurevis.render.RenderResult`).
    """

    images: torch.Tensor
    classes: List[int]
    logits: torch.Tensor
    probs: torch.Tensor
    pred: torch.Tensor
    names: List[str]
    settings: Dict[str, object] = dataclasses.field(default_factory=dict)

    def titles(self) -> List[str]:
        """One short title per image: the class name and its probability."""
        return [f"{n}\n p = {float(p):.2f}" for n, p in zip(self.names, self.probs)]


def class_visualization(model: nn.Module, classes: Union[int, str, Sequence[Union[int, str]], torch.Tensor], *,
                        steps: int = 128, size: int = 160, seed: int = 0, lr: float = 0.05, param="fft",
                        transforms="standard", regularizers=(), progress: bool = True,
                        batch_size: Optional[int] = -1, fast: bool = True) -> ClassVisResult:
    """Synthesise one image per class that the model scores highly for that class.

    Args:
        model: a labkit classifier (``model.labkit.classes`` names its classes).
        classes: a class index or name (``"goldfish"``), or a list of them (one image each); see
            :func:`labkit.scores.resolve_targets`.
        steps: Adam steps; size: image side in px; seed: image ``i`` is seeded by ``(seed, classes[i])``.
        lr: learning rate in the parameter's units.
        param: "fft" (default: smooth pictures) or "pixel" (Simonyan et al.'s plain pixels), or a spec.
        transforms: "standard" (one random scale/rotation/shift per step,
            :func:`~labkit.featurevis.transforms.standard_transforms`), ``()`` for none, or a list.
        regularizers: extra penalties / image operations (``l2(1e-3)``, ``blur_every(4)``, ...).
        progress: tqdm progress bar; batch_size, fast: speed settings of :func:`~labkit.featurevis.render`.

    Returns:
        :class:`ClassVisResult` with ``images`` ``[N,3,size,size]`` in ``[0,1]`` and the model's
        probability for each class on its image.
    """
    from labkit.images import normalize
    from labkit.models import imagenet_class_names, model_device
    from labkit.scores import resolve_targets

    if torch.is_tensor(classes):
        count = max(1, classes.numel())
    else:
        count = len(classes) if isinstance(classes, (list, tuple)) else 1
    if count == 0:
        raise ValueError("classes is empty; give at least one class index or name.")
    targets = resolve_targets(model, classes, count).tolist()
    out = render(model, class_logit(), param=param, transforms=transforms, lr=lr, steps=steps, size=size,
                 channels=targets, regularizers=regularizers, seed=seed, progress=progress,
                 desc="class visualisation", batch_size=batch_size, fast=fast)
    with torch.no_grad():
        logits = model(normalize(out.images.to(model_device(model)), model)).float().cpu()
    idx = torch.tensor(targets)
    names = list(getattr(getattr(model, "labkit", None), "classes", None) or imagenet_class_names())
    return ClassVisResult(images=out.images, classes=targets, logits=logits[torch.arange(len(targets)), idx],
                          probs=F.softmax(logits, dim=1)[torch.arange(len(targets)), idx],
                          pred=logits.argmax(dim=1), names=[names[i] for i in targets], settings=out.settings)
