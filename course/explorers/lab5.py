"""Lab 5 explorer: a unit picker feeding the weight explorer.

Pick a unit of the circuit layer and whether to read its true weights (the channels of the tensor
it reads) or its expanded weights (through the block below, :func:`course.circuit_study.analyse`);
the explorer shows the strongest inputs' feature visualisations next to their kernels, labelled
with the lab's one polarity rule, and the unit's own picture. Each (unit, view) is computed once.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from course import circuit_study as cs
from course.explorers._common import Explorer

__all__ = ["UnitExplorer", "VIEWS"]

VIEWS = ("true weights", "expanded weights")


class UnitExplorer(Explorer):
    """Unit x view picker for one conv layer.

    Args:
        model: a labkit model. layer: the conv layer whose units are offered. unit: the initial unit.
        k: how many of the strongest inputs to show.
        settings: keyword arguments for :func:`labkit.featurevis.visualize` (``steps``, ``size``,
            ``seed``, ...); ``visualize=False`` in it skips the pictures (kernels only).
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "Unit explorer: pick a unit, read its circuit"

    def __init__(self, model: torch.nn.Module, layer, unit: int = 0, *, k: int = 6,
                 settings: Optional[Mapping[str, Any]] = None, live: Optional[bool] = None):
        import ipywidgets as widgets

        from labkit.circuits import conv_layer

        self.model, self.k = model, int(k)
        self.layer, module = conv_layer(model, layer)
        count = module.out_channels
        if not 0 <= int(unit) < count:
            raise IndexError(f"unit {unit} is out of range for {self.layer} ({count} units: 0..{count - 1}).")
        self.settings = dict(settings or {})
        self.pictures = bool(self.settings.pop("visualize", True))
        views = list(VIEWS) if cs.expansion_path(model, self.layer) is not None else [VIEWS[0]]
        controls = {
            "unit": widgets.BoundedIntText(value=int(unit), min=0, max=count - 1, description="unit",
                                           layout=widgets.Layout(width="180px")),
            "view": widgets.ToggleButtons(options=views, value=views[-1], description="weights"),
        }
        super().__init__(controls, live=live, figsize=(1.75 * (self.k + 1) + 0.6, 4.0), cache_size=32)

    def describe(self, setting) -> str:
        return f"{self.layer} unit {int(setting['unit'])}, {setting['view']}"

    def _visualize(self, layer: str, channels):
        result = cs.visualize_read(self.model, layer, channels, progress=self.live, **self.settings)
        return result.images.permute(0, 2, 3, 1).numpy()

    def compute(self, setting) -> dict:
        """The circuit (:func:`course.circuit_study.analyse`) and, unless switched off, the pictures."""
        circuit = cs.analyse(self.model, self.layer, int(setting["unit"]), self.k)
        expanded = setting["view"] == VIEWS[1] and circuit.expanded is not None
        kernels = circuit.expanded if expanded else circuit.kernels
        top = circuit.expanded_top if expanded else circuit.top
        labels = circuit.expanded_labels if expanded else circuit.labels
        source = circuit.source if expanded else circuit.read
        result = {"circuit": circuit, "kernels": kernels, "top": top, "labels": labels, "source": source,
                  "pictures": None, "unit_picture": None}
        if self.pictures:
            result["pictures"] = self._visualize(source, top)
            result["unit_picture"] = self._visualize(self.layer, [circuit.unit])[0]
        return result

    def draw(self, fig, result, setting) -> None:
        circuit = result["circuit"]
        title = f"{self.describe(setting)}: channels of {result['source']}"
        cs.kernel_cards(result["kernels"], result["top"], result["labels"], pictures=result["pictures"],
                        source=result["source"], unit_picture=result["unit_picture"], title=title,
                        margin=circuit.margin, fig=fig)
