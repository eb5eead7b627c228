"""Lab 2 explorer: pick a layer and a channel, see the channel's feature visualisation.

``FeatureVisExplorer(model, layers)`` runs :func:`labkit.featurevis.visualize` for the chosen channel
when the choice changes (with labkit's progress bar while it optimises) and keeps every picture it
made, so going back to a channel is instant.
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from course.explorers._common import Explorer

__all__ = ["FeatureVisExplorer"]


class FeatureVisExplorer(Explorer):
    """Layer x channel picker for activation maximisation.

    Args:
        model: a labkit model.
        layers: the layers to offer (dotted names or handout indices), in order.
        layer, channel: the initial setting (default: the first layer, channel 0).
        settings: keyword arguments for :func:`labkit.featurevis.visualize` (``preset``, ``steps``,
            ``size``, ``seed``, ...); the same for every picture.
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "Feature visualisation explorer: pick a layer and a channel"

    def __init__(self, model: torch.nn.Module, layers: Sequence, *, layer=None, channel: int = 0,
                 settings: Optional[Mapping[str, Any]] = None, live: Optional[bool] = None):
        import ipywidgets as widgets

        from labkit.layers import layer_info, resolve_layer

        if not layers:
            raise ValueError("layers is empty: give the layers to choose from, e.g. [row.name for row in "
                             "labkit.layers.conv_layers(model)].")
        self.model = model
        self.rows = {}
        for ref in layers:
            name, _ = resolve_layer(model, ref)
            self.rows[name] = layer_info(model, name)
        first = resolve_layer(model, layer)[0] if layer is not None else next(iter(self.rows))
        if first not in self.rows:
            raise ValueError(f"Layer {layer!r} is not among the explorer's layers: {', '.join(self.rows)}.")
        self.settings: Dict[str, Any] = dict(settings or {})
        for reserved in ("filters", "channels", "layer", "progress"):
            if reserved in self.settings:
                raise ValueError(f"settings may not set {reserved!r}: the explorer's controls choose it.")
        count = self.channel_count(first)
        if not 0 <= int(channel) < count:
            raise IndexError(f"channel {channel} is out of range for {first} ({count} channels: 0..{count - 1}).")
        controls = {
            "layer": widgets.Dropdown(options=[(self._label(n), n) for n in self.rows], value=first,
                                      description="layer", layout=widgets.Layout(width="360px")),
            "channel": widgets.BoundedIntText(value=int(channel), min=0, max=count - 1, description="channel",
                                              layout=widgets.Layout(width="180px")),
        }
        super().__init__(controls, live=live, figsize=(4.2, 4.6), cache_size=128)

    def _label(self, name: str) -> str:
        row = self.rows[name]
        return f"{name} (idx {row.index}, {row.channels} ch, RF {row.receptive_field} px)"

    def channel_count(self, layer: str) -> int:
        """How many channels ``layer`` has."""
        return int(self.rows[layer].channels)

    def adjust(self, changed: str) -> None:
        if changed == "layer":
            channel = self.controls["channel"]
            top = self.channel_count(self.controls["layer"].value) - 1
            channel.max = top
            channel.value = min(int(channel.value), top)

    def key(self, setting):
        return (setting["layer"], int(setting["channel"]))

    def compute(self, setting):
        """:func:`labkit.featurevis.visualize` for one channel: (image [3,H,W] in [0,1], activation)."""
        from labkit.featurevis import visualize

        result = visualize(self.model, setting["layer"], [int(setting["channel"])], progress=self.live,
                           **self.settings)
        return result.images[0], float(result.activations[0]), result.objective

    def describe(self, setting) -> str:
        return f"{setting['layer']} channel {int(setting['channel'])}"

    def draw(self, fig, result, setting) -> None:
        image, activation, objective = result
        row = self.rows[setting["layer"]]
        ax = fig.subplots()
        ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_axis_off()
        ax.set_title(f"{setting['layer']} (idx {row.index}) channel {int(setting['channel'])}\n"
                     f"RF {row.receptive_field} px; objective ({objective}) {activation:.3g}", fontsize=9)
