"""Lab 6 explorer: photo x target class x L-inf budget, the fooling image and its perturbation.

``FoolingExplorer(model, photos, targets)`` runs labkit's targeted attack
(:func:`labkit.featurevis.targeted_attack`: projected sign-gradient steps in pixel space that stop
each image once its top class is the target) for the chosen photo, class and budget, and draws the
photo, the perturbation magnified so that the budget fills the grey range, the fooling image, and
the model's top classes before and after. Attacks are computed on demand and cached; the
magnification only redraws.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Union

import torch

from course.explorers._common import Explorer

__all__ = ["FoolingExplorer", "BUDGETS"]

#: L-inf budgets offered, in grey levels (1 = 1/255 of the pixel range).
BUDGETS = (0.25, 0.5, 1, 2, 4, 8, 16)


def _photo_paths(photos) -> Dict[str, Any]:
    from labkit import images

    if isinstance(photos, Mapping):
        out = dict(photos)
    else:
        shipped = images.sample_images()
        out = {str(item): shipped.get(str(item), item) for item in photos}
    if not out:
        raise ValueError("photos is empty: give sample names (labkit.images.sample_images()) or {name: path}.")
    return out


class FoolingExplorer(Explorer):
    """Photo x target class x budget, with the fooling image, its perturbation and the predictions.

    Args:
        model: a labkit classifier (``labkit.models.load_model``).
        photos: sample names (``["bee", "dog"]``) or ``{name: path}``.
        targets: class names or indices offered as targets (at least one).
        eps: the initial budget in grey levels, one of :data:`BUDGETS`.
        steps: the attack's maximum number of steps; its step size is ``eps / 4``.
        photo: the initial photo (default: the first).
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "Fooling explorer: pick a photo, a target class and a budget"

    def __init__(self, model: torch.nn.Module, photos: Union[Sequence[str], Mapping[str, Any]],
                 targets: Sequence[Union[int, str]], *, eps: float = 2, steps: int = 20,
                 photo: Optional[str] = None, live: Optional[bool] = None):
        import ipywidgets as widgets

        from labkit import images

        self.model = model
        self.paths = _photo_paths(photos)
        if not targets:
            raise ValueError("targets is empty: give at least one class name or index.")
        classes = model.labkit.classes
        self.targets = [images.class_index(t, classes) if isinstance(t, str) else int(t) for t in targets]
        if eps not in BUDGETS:
            raise ValueError(f"eps is in grey levels and one of {BUDGETS}, got {eps}.")
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        self.steps = int(steps)
        first = photo if photo is not None else next(iter(self.paths))
        if first not in self.paths:
            raise ValueError(f"Unknown photo {first!r}; valid: {', '.join(self.paths)}.")
        self._inputs: Dict[str, torch.Tensor] = {}
        controls = {
            "photo": widgets.Dropdown(options=list(self.paths), value=first, description="photo"),
            "target": widgets.Dropdown(options=[(classes[c], c) for c in self.targets], value=self.targets[0],
                                       description="target"),
            "eps": widgets.SelectionSlider(options=list(BUDGETS), value=eps, description="eps (/255)",
                                           continuous_update=False),
            "magnify": widgets.Checkbox(value=True, description="magnify perturbation"),
        }
        super().__init__(controls, live=live, figsize=(11.0, 3.9))

    def _input(self, name: str) -> torch.Tensor:
        if name not in self._inputs:
            from labkit import images

            self._inputs[name] = images.preprocess([self.paths[name]], self.model)
        return self._inputs[name]

    def key(self, setting):
        return (setting["photo"], int(setting["target"]), float(setting["eps"]))

    def compute(self, setting) -> Dict[str, Any]:
        """The attack for one setting: photo and fooling image in [0,1] (CPU), probabilities before/after."""
        from labkit import images
        from labkit.featurevis import targeted_attack

        x = self._input(setting["photo"])
        eps = float(setting["eps"]) / 255
        result = targeted_attack(self.model, x, int(setting["target"]), eps=eps, steps=self.steps,
                                 step_size=eps / 4, progress=self.live)
        with torch.no_grad():
            before = self.model(x).softmax(dim=1)[0].cpu()
            after = self.model(result.x_adv).softmax(dim=1)[0].cpu()
        return dict(photo=images.denormalize(x, self.model)[0].clamp(0, 1).cpu(),
                    adversarial=images.denormalize(result.x_adv, self.model)[0].clamp(0, 1).cpu(),
                    before=before, after=after, success=bool(result.success[0]))

    def describe(self, setting) -> str:
        return (f"{setting['photo']} -> '{self.model.labkit.classes[int(setting['target'])]}' "
                f"within {float(setting['eps']):g}/255")

    def draw(self, fig, result, setting) -> None:
        classes = self.model.labkit.classes
        eps = float(setting["eps"]) / 255
        delta = result["adversarial"] - result["photo"]
        gain = 0.5 / eps if setting["magnify"] else 1.0
        axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1, 1.25]))
        axes[0].imshow(result["photo"].permute(1, 2, 0).numpy())
        top = int(result["before"].argmax())
        axes[0].set_title(f"photo: {classes[top]} ({float(result['before'][top]):.2f})", fontsize=9)
        axes[1].imshow((0.5 + gain * delta).clamp(0, 1).permute(1, 2, 0).numpy())
        axes[1].set_title(f"perturbation x {gain:.0f} (grey = 0)\nmax |change| {255 * float(delta.abs().max()):.2g}/255",
                          fontsize=9)
        top = int(result["after"].argmax())
        axes[2].imshow(result["adversarial"].permute(1, 2, 0).numpy())
        axes[2].set_title(f"{'fooled' if result['success'] else 'not fooled'}: {classes[top]} "
                          f"({float(result['after'][top]):.2f})", fontsize=9)
        for ax in axes[:3]:
            ax.set_axis_off()
        target = int(setting["target"])
        shown = list(dict.fromkeys(result["before"].topk(3).indices.tolist() + [target]
                                   + result["after"].topk(2).indices.tolist()))
        ys = range(len(shown))
        axes[3].barh([y + 0.2 for y in ys], [float(result["before"][c]) for c in shown], height=0.4, label="photo")
        axes[3].barh([y - 0.2 for y in ys], [float(result["after"][c]) for c in shown], height=0.4,
                     label="fooling image")
        axes[3].set_yticks(list(ys), [classes[c][:18] for c in shown], fontsize=8)
        axes[3].invert_yaxis()
        axes[3].set_xlim(0, 1)
        axes[3].set_xlabel("probability", fontsize=8)
        axes[3].legend(fontsize=7, loc="lower right")
