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
        x_adv: ``[N,3,H,W]`` adversarial batch, preprocessed (the model's normalised units, same shape
            as ``x``), on the model's device.
        images: ``[N,3,H,W]`` adversarial images in ``[0,1]`` on the CPU.
        perturbation: ``[N,3,H,W]`` adversarial minus original, ``[0,1]`` units, CPU.
        original_class: ``[N]`` the model's top class on the original images.
        pred: ``[N]`` the model's top class on the adversarial images.
        target: ``[N]`` the class the attack aimed at (targeted) or moved away from (untargeted).
        targeted: which kind of attack.
        success: ``[N]`` bool: ``pred`` is the target (targeted) / is no longer the label (untargeted).
        steps: ``[N]`` gradient steps used (an iterative attack stops an image once it fools the model).
        linf: ``[N]`` max |perturbation| in ``[0,1]`` pixel units.
        l2: ``[N]`` Euclidean norm of the perturbation over all ``3*H*W`` values, ``[0,1]`` units.
        confidence: ``[N]`` softmax probability of ``pred``.
    """

    x_adv: torch.Tensor
    images: torch.Tensor
    perturbation: torch.Tensor
    original_class: torch.Tensor
    pred: torch.Tensor
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
                f"{name(int(self.original_class[i]))} -> {name(int(self.pred[i]))} "
                f"({100 * float(self.confidence[i]):.1f}%), {'fooled' if self.success[i] else 'not fooled'} "
                f"after {int(self.steps[i])} step(s); L_inf {255 * float(self.linf[i]):.1f}/255, "
                f"L2 {float(self.l2[i]):.3f}"
            )
        return lines


def _check_eps(eps: float, what: str = "eps") -> None:
    if not 0 <= eps <= 1:
        raise ValueError(f"{what} is in [0,1] pixel units (8/255 = eight grey levels), got {eps}.")


def _check_batch(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"x must be a preprocessed batch [N,3,H,W], got {getattr(x, 'shape', type(x).__name__)}.")


def _result(model, x01_orig, x01_adv, orig_cls, target, targeted, steps) -> AttackResult:
    from labkit.images import normalize

    with torch.no_grad():
        x_adv = normalize(x01_adv, model)
        probs = F.softmax(model(x_adv), dim=1)
        conf, pred = probs.max(dim=1)
    delta = (x01_adv - x01_orig).detach()
    success = pred == target if targeted else pred != target
    return AttackResult(
        x_adv=x_adv.detach(), images=x01_adv.detach().cpu(), perturbation=delta.cpu(),
        original_class=orig_cls.cpu(), pred=pred.cpu(), target=target.cpu(), targeted=targeted,
        success=success.cpu(), steps=steps.cpu(), linf=delta.abs().flatten(1).amax(1).cpu(),
        l2=delta.flatten(1).norm(dim=1).cpu(), confidence=conf.cpu(),
    )


def _logit_step(model: nn.Module, x01: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``sign(d logit_target / d x01)`` per image. The model's normalisation scales each colour
    channel by a positive factor, so the sign is that of :func:`labkit.scores.input_gradient`."""
    from labkit.images import normalize
    from labkit.scores import input_gradient

    return input_gradient(model, normalize(x01, model), target).sign()


def fgsm(model: nn.Module, x: torch.Tensor, target=None, eps: float = 2 / 255, *, targeted: bool = False) -> AttackResult:
    """Fast gradient sign method (Goodfellow et al. 2015) on the class score: one step of size ``eps``
    along the sign of the input gradient of the target's logit (down for an untargeted attack, up for
    a targeted one).

    Args:
        x: ``[N,3,H,W]`` preprocessed batch on the model's device.
        target: label(s) to move away from (untargeted; default: the model's own prediction) or, with
            ``targeted=True``, the class(es) to move towards. Index, name, list or ``[N]`` tensor
            (:func:`labkit.scores.resolve_targets`).
        eps: step size in ``[0,1]`` pixel units.

    Returns:
        :class:`AttackResult` (``steps`` is 1).
    """
    from labkit.images import denormalize
    from labkit.scores import resolve_targets

    _check_eps(eps)
    _check_batch(x)
    x01 = denormalize(x.detach(), model)
    with torch.no_grad():
        orig = model(x.detach()).argmax(dim=1)
    if target is None:
        if targeted:
            raise ValueError("A targeted attack needs a target class.")
        t = orig.clone()
    else:
        t = resolve_targets(model, target, x.shape[0])
    direction = 1.0 if targeted else -1.0
    adv = (x01 + direction * eps * _logit_step(model, x01, t)).clamp(0, 1)
    return _result(model, x01, adv, orig, t, targeted, torch.ones_like(orig))


def targeted_attack(model: nn.Module, x: torch.Tensor, target_class, *, eps: float = 2 / 255, steps: int = 20,
                    step_size: Optional[float] = None, progress: bool = True) -> AttackResult:
    """Iterative targeted attack (I-FGSM / PGD without random start on the target's logit) that
    stops an image once it is fooled.

    Each step moves every not-yet-fooled image by ``step_size`` along the sign of the gradient of the
    target class's logit and projects back into the L_inf ball of radius ``eps`` around the original
    (and into ``[0,1]``). An image stops as soon as its top class is the target.

    Args:
        x: ``[N,3,H,W]`` preprocessed batch on the model's device.
        target_class: class index or name (``"goldfish"``), or one per image (see
            :func:`labkit.scores.resolve_targets`).
        eps: L_inf budget in ``[0,1]`` pixel units (``2/255`` = two grey levels).
        steps: give up after this many steps.
        step_size: per-step change in ``[0,1]`` units (default ``eps / 4``).
        progress: show a tqdm progress bar.

    Returns:
        :class:`AttackResult`: ``x_adv`` (preprocessed, same shape as ``x``), ``success`` and ``pred``
        per image, with the steps used and the L_inf / L2 sizes.
    """
    from tqdm.auto import tqdm

    from labkit.images import denormalize, normalize
    from labkit.scores import resolve_targets

    _check_eps(eps)
    _check_batch(x)
    step_size = eps / 4 if step_size is None else step_size
    _check_eps(step_size, "step_size")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}.")
    x01 = denormalize(x.detach(), model)
    with torch.no_grad():
        orig = model(x.detach()).argmax(dim=1)
    t = resolve_targets(model, target_class, x.shape[0])
    adv = x01.clone()
    used = torch.zeros_like(orig)
    done = orig == t
    for _ in tqdm(range(steps), disable=not progress, desc="targeted attack", leave=False):
        if bool(done.all()):
            break
        active = ~done
        moved = adv[active] + step_size * _logit_step(model, adv[active], t[active])
        moved = torch.max(torch.min(moved, x01[active] + eps), x01[active] - eps).clamp(0, 1)
        adv[active] = moved
        used[active] += 1
        with torch.no_grad():
            done[active] = model(normalize(moved, model)).argmax(dim=1) == t[active]
    return _result(model, x01, adv, orig, t, True, used)
