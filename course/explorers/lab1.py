"""Lab 1 explorer: photo x target class x saliency method, the map drawn over the photo.

``SaliencyExplorer(model, photos)`` shows one photo, a class to explain (the model's top classes for
that photo, best first) and a method (vanilla gradient, SmoothGrad, Grad-CAM, occlusion), computed
with labkit's reference implementations. The overlay's opacity only redraws.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from course.explorers._common import Explorer

__all__ = ["SaliencyExplorer", "METHODS"]

METHODS = ("vanilla", "SmoothGrad", "Grad-CAM", "occlusion")


def _photo_paths(photos) -> Dict[str, Any]:
    from labkit import images

    if isinstance(photos, Mapping):
        return dict(photos)
    shipped = images.sample_images()
    out = {}
    for item in photos:
        name = str(item)
        out[name] = shipped.get(name, item)
    if not out:
        raise ValueError("photos is empty: give sample names (labkit.images.sample_images()) or {name: path}.")
    return out


class SaliencyExplorer(Explorer):
    """Photo x target class x method, with the saliency map over the photo.

    Args:
        model: a labkit classifier (``labkit.models.load_model``).
        photos: sample names (``["bee", "dog_and_cat"]``) or ``{name: path}``.
        top: how many of the model's top classes each photo offers as targets.
        extra_targets: ``{photo name: class index}`` added to that photo's choices (e.g. the lab's
            Duke targets), whatever the model's ranking.
        smoothgrad_samples: noisy copies per SmoothGrad map. occlusion: ``dict(window=, stride=)`` in px.
        photo, method: the initial setting (default: the first photo, "Grad-CAM"); the initial target is
            the photo's extra target, else the model's top class.
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "Saliency explorer: pick a photo, a class and a method"

    def __init__(self, model: torch.nn.Module, photos: Union[Sequence[str], Mapping[str, Any]], *, top: int = 5,
                 extra_targets: Optional[Mapping[str, int]] = None, smoothgrad_samples: int = 16,
                 occlusion: Optional[Mapping[str, int]] = None, photo: Optional[str] = None,
                 method: str = "Grad-CAM", live: Optional[bool] = None):
        import ipywidgets as widgets

        self.model = model
        self.paths = _photo_paths(photos)
        if method not in METHODS:
            raise ValueError(f"Unknown method {method!r}; valid: {', '.join(METHODS)}.")
        if top < 1:
            raise ValueError(f"top must be >= 1, got {top}.")
        self.top = int(top)
        self.extra_targets = dict(extra_targets or {})
        self.smoothgrad_samples = int(smoothgrad_samples)
        self.occlusion = dict(occlusion or dict(window=32, stride=16))
        self._photos: Dict[str, Tuple[torch.Tensor, Any, torch.Tensor]] = {}
        first = photo if photo is not None else next(iter(self.paths))
        if first not in self.paths:
            raise ValueError(f"Unknown photo {first!r}; valid: {', '.join(self.paths)}.")
        controls = {
            "photo": widgets.Dropdown(options=list(self.paths), value=first, description="photo"),
            "target": widgets.Dropdown(options=self._target_options(first), description="class",
                                       layout=widgets.Layout(width="330px")),
            "method": widgets.ToggleButtons(options=list(METHODS), value=method, description="method"),
            "opacity": widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="opacity",
                                           continuous_update=False),
        }
        controls["target"].value = self._default_target(first)
        super().__init__(controls, live=live, figsize=(8.4, 4.2))

    # ------------------------------------------------------------------ photos and classes

    def photo(self, name: str) -> Tuple[torch.Tensor, Any, torch.Tensor]:
        """(x [1,3,H,W] on the model's device, picture HxWx3 in [0,1], class probabilities [classes])."""
        if name not in self._photos:
            from labkit import images

            x = images.preprocess([self.paths[name]], self.model)
            with torch.no_grad():
                probs = self.model(x).softmax(dim=1)[0].cpu()
            self._photos[name] = (x, images.deprocess(x[0], self.model), probs)
        return self._photos[name]

    def _class_name(self, index: int) -> str:
        return self.model.labkit.classes[index]

    def _target_options(self, name: str):
        _, _, probs = self.photo(name)
        order = probs.topk(self.top).indices.tolist()
        extra = self.extra_targets.get(name)
        if extra is not None and int(extra) not in order:
            order.append(int(extra))
        return [(f"{self._class_name(c)} ({float(probs[c]):.0%})", c) for c in order]

    def _default_target(self, name: str) -> int:
        extra = self.extra_targets.get(name)
        return int(extra) if extra is not None else int(self.photo(name)[2].argmax())

    def adjust(self, changed: str) -> None:
        if changed == "photo":
            name = self.controls["photo"].value
            self.controls["target"].options = self._target_options(name)
            self.controls["target"].value = self._default_target(name)

    # ------------------------------------------------------------------ compute and draw

    def key(self, setting):
        return (setting["photo"], int(setting["target"]), setting["method"])

    def compute(self, setting) -> torch.Tensor:
        """The map [H,W] (CPU) of the setting's method for its photo and class."""
        from labkit import saliency

        x, _, _ = self.photo(setting["photo"])
        target, method = int(setting["target"]), setting["method"]
        if method == "vanilla":
            m = saliency.vanilla(self.model, x, target)
        elif method == "SmoothGrad":
            m = saliency.smoothgrad(self.model, x, target, samples=self.smoothgrad_samples, seed=0,
                                    progress=self.live)
        elif method == "Grad-CAM":
            m = saliency.grad_cam(self.model, x, target)
        elif method == "occlusion":
            m = saliency.occlusion(self.model, x, target, **self.occlusion, progress=self.live)
        else:
            raise ValueError(f"Unknown method {method!r}; valid: {', '.join(METHODS)}.")
        return m[0].detach().float().cpu()

    def describe(self, setting) -> str:
        return f"{setting['photo']}, class '{self._class_name(int(setting['target']))}', {setting['method']}"

    def draw(self, fig, result: torch.Tensor, setting) -> None:
        from labkit import plot

        _, picture, probs = self.photo(setting["photo"])
        target = int(setting["target"])
        heat = result
        if setting["method"] in ("vanilla", "SmoothGrad"):  # a few extreme pixels would hide the rest
            heat = torch.minimum(heat, heat.flatten().quantile(0.99))
        low, high = float(heat.min()), float(heat.max())
        axes = fig.subplots(1, 2)
        axes[0].imshow(picture)
        axes[0].set_title(f"{setting['photo']}: p('{self._class_name(target)}') = {float(probs[target]):.2f}",
                          fontsize=9)
        axes[0].set_axis_off()
        plot.overlay(picture, heat, axes[1], alpha=float(setting["opacity"]), colorbar=True,
                     title=f"{setting['method']} for '{self._class_name(target)}'\n"
                           f"colour range {low:.3g} .. {high:.3g}")
        axes[1].title.set_fontsize(9)
