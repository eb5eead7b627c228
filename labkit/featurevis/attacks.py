"""Adversarial ("fooling") images: tiny pixel changes that change the class (lecture decks).

Budgets and reported sizes are in ``[0,1]`` pixel units (``8/255`` = eight grey levels), whatever
the model's normalisation. Inputs and ``x_adv`` are preprocessed batches, like everywhere in labkit.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AttackResult", "fgsm", "targeted_attack"]


@dataclasses.dataclass
class AttackResult:
    """Outcome of an attack on a batch of ``N`` images.

    Attributes:
        x_adv: ``[N,3,H,W]`` adversarial batch, preprocessed (the model's normalised units), on the model's device.
        images: ``[N,3,H,W]`` adversarial images in ``[0,1]`` on the CPU.
        perturbation: ``[N,3,H,W]`` adversarial minus original, ``[0,1]`` units, CPU.
        original_class, adversarial_class: ``[N]`` the model's top class before/after.
        target: ``[N]`` the class the attack aimed at (targeted) or moved away from (untargeted).
        targeted: which kind of attack.
        success: ``[N]`` bool: the top class is the target (targeted) / no longer the label (untargeted).
        steps: ``[N]`` gradient steps used (an iterative attack stops an image once it fools the model).
        linf: ``[N]`` max |perturbation| in ``[0,1]`` pixel units.
        l2: ``[N]`` Euclidean norm of the perturbation over all ``3*H*W`` values, ``[0,1]`` units.
        confidence: ``[N]`` softmax probability of the adversarial class.
    """

    x_adv: torch.Tensor
    images: torch.Tensor
    perturbation: torch.Tensor
    original_class: torch.Tensor
    adversarial_class: torch.Tensor
    target: torch.Tensor
    targeted: bool
    success: torch.Tensor
    steps: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    confidence: torch.Tensor

    def summary(self, classes: Optional[Sequence[str]] = None) -> List[str]:
        """One line per image: classes before/after, success, perturbation size."""
        name = (lambda i: classes[i]) if classes is not None else str
        lines = []
        for i in range(len(self.success)):
            lines.append(
                f"{name(int(self.original_class[i]))} -> {name(int(self.adversarial_class[i]))} "
                f"({100 * float(self.confidence[i]):.1f}%), {'fooled' if self.success[i] else 'not fooled'} "
                f"after {int(self.steps[i])} step(s); L_inf {255 * float(self.linf[i]):.1f}/255, "
                f"L2 {float(self.l2[i]):.3f}"
            )
        return lines


def _targets(target, n: int, device, model) -> torch.Tensor:
    from labkit.images import class_index

    classes = getattr(getattr(model, "labkit", None), "classes", None)
    if torch.is_tensor(target):
        t = target.to(device=device, dtype=torch.long).flatten()
    elif isinstance(target, (list, tuple)):
        t = torch.tensor([class_index(c, classes) for c in target], device=device)
    else:
        t = torch.tensor([class_index(target, classes)], device=device)
    if t.numel() == 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"Got {t.numel()} targets for a batch of {n} images.")
    return t


def _check_eps(eps: float, what: str = "eps") -> None:
    if not 0 <= eps <= 1:
        raise ValueError(f"{what} is in [0,1] pixel units (8/255 = eight grey levels), got {eps}.")


def _result(model, x01_orig, x01_adv, orig_cls, target, targeted, steps) -> AttackResult:
    from labkit.images import normalize

    with torch.no_grad():
        x_adv = normalize(x01_adv, model)
        probs = F.softmax(model(x_adv), dim=1)
        conf, adv_cls = probs.max(dim=1)
    delta = (x01_adv - x01_orig).detach()
    success = adv_cls == target if targeted else adv_cls != target
    return AttackResult(
        x_adv=x_adv.detach(), images=x01_adv.detach().cpu(), perturbation=delta.cpu(),
        original_class=orig_cls.cpu(), adversarial_class=adv_cls.cpu(), target=target.cpu(), targeted=targeted,
        success=success.cpu(), steps=steps.cpu(), linf=delta.abs().flatten(1).amax(1).cpu(),
        l2=delta.flatten(1).norm(dim=1).cpu(), confidence=conf.cpu(),
    )


def _input_grad(model: nn.Module, x01: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """d CE(model(normalize(x01)), target) / d x01, per image (sum over the batch keeps them independent)."""
    from labkit.images import normalize

    x01 = x01.detach().requires_grad_(True)
    loss = F.cross_entropy(model(normalize(x01, model)), target, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x01)
    return grad


def fgsm(model: nn.Module, x: torch.Tensor, target=None, eps: float = 2 / 255, *, targeted: bool = False) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015): one step of size ``eps`` along the sign of
    the input gradient of the cross-entropy loss.

    Args:
        x: ``[N,3,H,W]`` preprocessed batch on the model's device.
        target: label(s) to move away from (untargeted; default: the model's own prediction) or, with
            ``targeted=True``, the class(es) to move towards. Index, name, list or ``[N]`` tensor.
        eps: step size in ``[0,1]`` pixel units.

    Returns:
        :class:`AttackResult` (``steps`` is 1).
    """
    from labkit.images import denormalize

    _check_eps(eps)
    x01 = denormalize(x.detach(), model)
    with torch.no_grad():
        orig = model(x.detach()).argmax(dim=1)
    if target is None:
        if targeted:
            raise ValueError("A targeted attack needs a target class.")
        t = orig.clone()
    else:
        t = _targets(target, x.shape[0], x.device, model)
    grad = _input_grad(model, x01, t)
    direction = -1.0 if targeted else 1.0
    adv = (x01 + direction * eps * grad.sign()).clamp(0, 1)
    return _result(model, x01, adv, orig, t, targeted, torch.ones_like(orig))


def targeted_attack(model: nn.Module, x: torch.Tensor, target_class, *, eps: float = 8 / 255,
                    step: float = 1 / 255, max_steps: int = 50, progress: bool = True) -> AttackResult:
    """Iterative targeted attack (I-FGSM / PGD without random start) that stops once fooled.

    Each step moves every not-yet-fooled image by ``step`` against the sign of the gradient of the
    cross-entropy with ``target_class`` and projects back into the L_inf ball of radius ``eps``
    around the original (and into ``[0,1]``). An image stops as soon as its top class is the target.

    Args:
        x: ``[N,3,H,W]`` preprocessed batch on the model's device.
        target_class: class index or name (``"goldfish"``), or one per image.
        eps: L_inf budget in ``[0,1]`` pixel units; step: step size in the same units.
        max_steps: give up after this many steps.

    Returns:
        :class:`AttackResult` with the per-image steps used, success, and L_inf / L2 sizes.
    """
    from tqdm.auto import tqdm

    from labkit.images import denormalize, normalize

    _check_eps(eps)
    _check_eps(step, "step")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}.")
    x01 = denormalize(x.detach(), model)
    with torch.no_grad():
        orig = model(x.detach()).argmax(dim=1)
    t = _targets(target_class, x.shape[0], x.device, model)
    adv = x01.clone()
    steps = torch.zeros_like(orig)
    done = orig == t
    for _ in tqdm(range(max_steps), disable=not progress, desc="targeted attack", leave=False):
        if bool(done.all()):
            break
        active = ~done
        grad = _input_grad(model, adv[active], t[active])
        moved = adv[active] - step * grad.sign()
        moved = torch.max(torch.min(moved, x01[active] + eps), x01[active] - eps).clamp(0, 1)
        adv[active] = moved
        steps[active] += 1
        with torch.no_grad():
            done[active] = model(normalize(moved, model)).argmax(dim=1) == t[active]
    return _result(model, x01, adv, orig, t, True, steps)
