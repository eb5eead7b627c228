"""Lab 4 explorer: a bit-width slider and a per-tensor / per-channel toggle.

For each setting it quantises a copy of the model (``labkit.quantize.quantize_model``) and shows the
studied layer's weight histogram with the values that remain, the channel's feature visualisation
under the quantised weights, and the agreement with the float model over the photos
(:func:`course.quant_study.measure`). Every setting is computed once and cached.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np
import torch

from course import quant_study as qs
from course.explorers._common import Explorer

__all__ = ["QuantExplorer", "SCALES"]

SCALES = ("per-tensor", "per-channel")


class QuantExplorer(Explorer):
    """Bit width x scale granularity for one model, layer and channel.

    Args:
        model: a labkit model (float weights; never modified).
        x: the photos, a preprocessed batch ``[N,3,H,W]`` on the model's device.
        ref: the float model's side (:func:`course.quant_study.reference`, with its picture to also
            show pictures; without one only the histogram and the numbers are drawn).
        bits: the initial bit width (2..16); per_channel: the initial scale granularity.
        live: see :class:`~course.explorers._common.Explorer`.
    """

    title = "Quantisation explorer: bit width and scale granularity"

    def __init__(self, model: torch.nn.Module, x: torch.Tensor, ref: Mapping[str, Any], *, bits: int = 4,
                 per_channel: bool = False, live: Optional[bool] = None):
        import ipywidgets as widgets

        if not 2 <= int(bits) <= 16:
            raise ValueError(f"bits must be from 2 to 16, got {bits!r}.")
        self.model, self.x, self.ref = model, x, dict(ref)
        self.weight = model.get_submodule(self.ref["layer"]).weight.detach().cpu().float()
        controls = {
            "bits": widgets.IntSlider(value=int(bits), min=2, max=16, step=1, description="bits",
                                      continuous_update=False),
            "scale": widgets.ToggleButtons(options=list(SCALES), value=SCALES[int(bool(per_channel))],
                                           description="scale"),
        }
        super().__init__(controls, live=live, figsize=(11.5, 3.4), cache_size=64)

    def describe(self, setting) -> str:
        return f"{int(setting['bits'])} bits, {setting['scale']} scales"

    def compute(self, setting) -> dict:
        """:func:`course.quant_study.measure` at this setting (with a picture when ``ref`` has one)."""
        per_channel = setting["scale"] == "per-channel"
        row = qs.measure(self.model, int(setting["bits"]), self.x, self.ref, per_channel=per_channel,
                         visualise=self.ref.get("vis_image") is not None)
        from labkit.quantize import fake_quantize

        row["levels"] = fake_quantize(self.weight, int(setting["bits"]), per_channel=per_channel).unique().numpy()
        return row

    def draw(self, fig, row, setting) -> None:
        has_pic = row.get("vis_image") is not None
        axes = fig.subplots(1, 3 if has_pic else 2, width_ratios=[2.2, 1.0, 1.4] if has_pic else [2.2, 1.4])
        hist = axes[0]
        levels = row["levels"]
        hist.vlines(levels, 0.8, self.weight.numel(), color="tab:red", lw=0.6 if len(levels) > 20 else 1.2,
                    alpha=0.35 if len(levels) > 20 else 1.0, zorder=0)
        hist.hist(self.weight.flatten().numpy(), bins=200, color="0.45", log=True)
        hist.set_xlabel("weight value")
        hist.set_ylabel("number of weights")
        hist.set_title(f"{self.ref['layer']}: {len(levels)} values (red), {row['layer_zero_fraction']:.0%} rounded to 0",
                       fontsize=9)
        if has_pic:
            pic = axes[1]
            pic.imshow(np.clip(row["vis_image"], 0, 1))
            pic.set_axis_off()
            pic.set_title(f"channel {self.ref['channel']}\nmean |act| {row['vis_activation']:.3g}", fontsize=9)
        text = axes[-1]
        text.set_axis_off()
        lines = [f"{self.describe(setting)}",
                 f"top-1 agreement: {row['top1_agreement']:.1%} of {row['n_photos']} photos",
                 f"p(float model's class): {row['answer_prob']:.3f}",
                 f"map correlation: {row['map_correlation']:.3f}",
                 f"weights rounded to 0: {row['zero_fraction']:.1%}",
                 f"weight SNR: {row['weight_snr_db']:.1f} dB"]
        if row.get("accuracy") is not None:
            lines.append(f"top-1 accuracy: {row['accuracy']:.1%}")
        text.text(0.0, 0.95, "\n".join(lines), va="top", ha="left", fontsize=9, family="monospace",
                  transform=text.transAxes)
