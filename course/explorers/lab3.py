"""Lab 3 explorer: a conv layer and the non-linearity after it, before/after maps and histograms.

``ReluExplorer(model, photos)`` offers every conv layer that a non-linearity follows; for the chosen
layer, photo and channel it shows the channel's response before and after the non-linearity (one
colour scale) and the histogram of the responses before it, with the part set to the floor (zeroed)
and, for a capped non-linearity such as ReLU6, the part cut at the cap (clipped) marked and counted.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from course.explorers._common import Explorer

__all__ = ["ReluExplorer", "rectifier_range", "relu_pairs"]


def rectifier_range(module: nn.Module) -> Tuple[float, float]:
    """The output range ``(floor, cap)`` of a rectifying non-linearity.

    ``nn.ReLU`` -> ``(0, inf)``; ``nn.ReLU6`` -> ``(0, 6)``; ``nn.Hardtanh(a, b)`` -> ``(a, b)``.
    A response below the floor comes out as the floor (zeroed, for a ReLU), one above the cap as the
    cap (clipped): the same rule as :meth:`labkit.layers.PrePost.zeroed` / ``clipped``.

    Raises:
        ValueError: the module is not a ReLU, ReLU6 or Hardtanh (e.g. SiLU, GELU: nothing is cut off).
    """
    if isinstance(module, nn.Hardtanh):  # nn.ReLU6 is Hardtanh(0, 6)
        return float(module.min_val), float(module.max_val)
    if isinstance(module, nn.ReLU):
        return 0.0, math.inf
    raise ValueError(f"{type(module).__name__} is not a rectifier with a floor and a cap; valid: nn.ReLU, "
                     "nn.ReLU6, nn.Hardtanh.")


def relu_pairs(model: nn.Module) -> Dict[str, str]:
    """``{conv layer: the rectifier that follows it}`` for every conv layer followed by a ReLU/ReLU6/Hardtanh."""
    from labkit.layers import conv_layers

    pairs = {}
    for row in conv_layers(model):
        if row.activation and isinstance(model.get_submodule(row.activation), (nn.ReLU, nn.Hardtanh)):
            pairs[row.name] = row.activation
    return pairs


class ReluExplorer(Explorer):
    """Conv/non-linearity pair x photo x channel: before/after maps and histograms.

    Args:
        model: a labkit model.
        photos: sample names or ``{name: path}``.
        layers: the conv layers to offer (default: every one followed by a rectifier, see :func:`relu_pairs`).
        layer, photo, channel: the initial setting (default: the first layer and photo, and the
            channel whose responses to the photo are most evenly split between the two signs).
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "ReLU explorer: pick a layer, a photo and a channel"

    def __init__(self, model: nn.Module, photos: Union[Sequence[str], Mapping[str, Any]], *,
                 layers: Optional[Sequence[str]] = None, layer: Optional[str] = None, photo: Optional[str] = None,
                 channel: Optional[int] = None, live: Optional[bool] = None):
        import ipywidgets as widgets

        from course.explorers.lab1 import _photo_paths
        from labkit.layers import layer_info, resolve_layer

        self.model = model
        self.paths = _photo_paths(photos)
        pairs = relu_pairs(model)
        names = [resolve_layer(model, ref)[0] for ref in layers] if layers is not None else list(pairs)
        missing = [n for n in names if n not in pairs]
        if missing:
            raise ValueError(f"No rectifier follows {missing}; layers with one: {', '.join(pairs)}.")
        if not names:
            raise ValueError("This model has no conv layer followed by a ReLU/ReLU6.")
        self.pairs = {n: pairs[n] for n in names}
        self.rows = {n: layer_info(model, n) for n in names}
        first = resolve_layer(model, layer)[0] if layer is not None else names[0]
        if first not in self.pairs:
            raise ValueError(f"Layer {layer!r} is not offered; valid: {', '.join(self.pairs)}.")
        first_photo = photo if photo is not None else next(iter(self.paths))
        if first_photo not in self.paths:
            raise ValueError(f"Unknown photo {first_photo!r}; valid: {', '.join(self.paths)}.")
        self._x: Dict[str, torch.Tensor] = {}
        self._init_state()  # the first result (to choose the channel) is computed before the controls exist
        count = int(self.rows[first].channels)
        start = self.balanced_channel(first, first_photo) if channel is None else int(channel)
        if not 0 <= start < count:
            raise IndexError(f"channel {start} is out of range for {first} ({count} channels: 0..{count - 1}).")
        controls = {
            "layer": widgets.Dropdown(options=[(self._label(n), n) for n in self.pairs], value=first,
                                      description="pair", layout=widgets.Layout(width="420px")),
            "photo": widgets.Dropdown(options=list(self.paths), value=first_photo, description="photo"),
            "channel": widgets.IntSlider(value=start, min=0, max=count - 1, description="channel",
                                         continuous_update=False),
        }
        super().__init__(controls, live=live, figsize=(11.0, 3.4))

    def _label(self, name: str) -> str:
        act = self.model.get_submodule(self.pairs[name])
        return f"{name} -> {self.pairs[name]} ({type(act).__name__})"

    def inputs(self, photo: str) -> torch.Tensor:
        """The preprocessed photo [1,3,H,W] (cached)."""
        if photo not in self._x:
            from labkit import images

            self._x[photo] = images.preprocess([self.paths[photo]], self.model)
        return self._x[photo]

    def balanced_channel(self, layer: str, photo: str) -> int:
        """The channel whose responses to ``photo`` are closest to half positive, half not."""
        pre, _ = self.result({"layer": layer, "photo": photo})
        positive = (pre > 0).float().mean(dim=(1, 2))
        return int((positive - 0.5).abs().argmin())

    def adjust(self, changed: str) -> None:
        if changed == "layer":
            slider = self.controls["channel"]
            top = int(self.rows[self.controls["layer"].value].channels) - 1
            slider.max = top
            slider.value = min(int(slider.value), top)

    def key(self, setting):
        return (setting["layer"], setting["photo"])

    def compute(self, setting) -> Tuple[torch.Tensor, torch.Tensor]:
        """(before, after) the layer's non-linearity for the photo, each [C,h,w] on the CPU."""
        from labkit.layers import pre_post

        responses = pre_post(self.model, self.inputs(setting["photo"]), setting["layer"])
        return responses.before[0].detach().float().cpu(), responses.after[0].detach().float().cpu()

    def describe(self, setting) -> str:
        return f"{setting['layer']} channel {int(setting['channel'])} on {setting['photo']}"

    def draw(self, fig, result, setting) -> None:
        from labkit import images

        pre_all, post_all = result
        c = int(setting["channel"])
        pre, post = pre_all[c], post_all[c]
        act = self.model.get_submodule(self.pairs[setting["layer"]])
        floor, cap = rectifier_range(act)
        limit = float(pre.abs().max()) or 1.0
        axes = fig.subplots(1, 4, gridspec_kw=dict(width_ratios=[1, 1, 1, 1.5]))
        axes[0].imshow(images.deprocess(self.inputs(setting["photo"])[0], self.model))
        axes[0].set_title(setting["photo"], fontsize=9)
        for ax, maps, what in ((axes[1], pre, "before"), (axes[2], post, "after")):
            shown = ax.imshow(maps.numpy(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"channel {c} {what} {type(act).__name__}", fontsize=9)
        fig.colorbar(shown, ax=axes[1:3], shrink=0.8, label="response (blue < 0 < red)")
        for ax in axes[:3]:
            ax.set_axis_off()
        zeroed = float((pre < floor).float().mean())
        layer_zeroed = float((pre_all < floor).float().mean())
        ax = axes[3]
        ax.hist(pre_all.flatten().numpy(), bins=120, color="0.75", density=True, label="all channels")
        ax.hist(pre.flatten().numpy(), bins=60, color="tab:purple", alpha=0.6, density=True, label=f"channel {c}")
        ax.axvspan(min(float(pre_all.min()), floor), floor, color="tab:blue", alpha=0.12,
                   label=f"zeroed: ch {zeroed:.0%}, layer {layer_zeroed:.0%}")
        if math.isfinite(cap):
            clipped = float((pre > cap).float().mean())
            layer_clipped = float((pre_all > cap).float().mean())
            ax.axvspan(cap, max(float(pre_all.max()), cap), color="tab:red", alpha=0.12,
                       label=f"clipped at {cap:g}: ch {clipped:.0%}, layer {layer_clipped:.0%}")
        ax.set_yscale("log")
        ax.set_xlabel(f"response before {type(act).__name__}", fontsize=8)
        ax.set_title(f"{setting['layer']}: responses to {setting['photo']}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
