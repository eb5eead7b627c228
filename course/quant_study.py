"""Lab 4's measures of what weight quantisation does to a network (course level, on labkit primitives).

The lab quantises every conv/linear weight of a model copy (``labkit.quantize.quantize_model``) at
several bit widths and asks two questions: does the network still classify the photos the same way,
and does the handout's filter still respond to the same things? The measures here are chosen to be
*stable* (the same numbers on every run, no optimisation in between) and to read plainly:

* **top-1 agreement**: the fraction of photos whose top class is the float model's (over every
  shipped photo, :func:`photo_set`);
* **answer probability**: the probability the quantised model gives to the float model's top
  class, averaged over the photos (1 = confident agreement, 1/1000 = chance). It replaces the KL
  divergence, which is not monotone in the bit width: a collapsed model that outputs an almost
  uniform distribution has a *smaller* KL (at most log 1000 - H(float) nats) than one that is
  confidently wrong, so the KL can drop again at 2 bits although the model got worse;
* **map correlation**: Pearson correlation between the filter's activation maps under float and
  quantised weights, over every photo and position (1 = the filter responds to the same places);
* **activation**: the filter's mean |activation| (Lab 2's objective, the Duke "feedback signal"),
  on the photos and on the float model's own feature visualisation, relative to the float model;
* **zeroed weights**: the fraction of weights that round to exactly 0.

:func:`collapse_bits` then reads off where the network collapses instead of assuming it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from labkit._table import FormattedTable
from labkit.layers import capture, check_channels, resolve_layer
from labkit.models import model_device
from labkit.quantize import check_bits, fake_quantize, model_size_mb, quantizable_layers, quantize_model, snr_db

__all__ = ["ACTIVATION", "COLLAPSE_THRESHOLD", "StudyTable", "photo_set", "zero_fraction", "model_zero_fraction",
           "mean_abs_activation", "map_correlation", "forward_with_maps", "Reference", "reference", "measure",
           "study", "collapse_bits", "keeps_bits", "study_figure"]

#: The one activation measure of the lab (Lab 2's objective): mean |activation| of one channel.
ACTIVATION = "mean |activation|"
#: The network counts as collapsed at a width where fewer than this fraction of photos keep the float top-1.
COLLAPSE_THRESHOLD = 0.5


class StudyTable(FormattedTable):
    """One row (dict) per bit width from :func:`study`; ``reference`` holds the float model's numbers."""

    columns = (
        ("bits", "bits", "{}"),
        ("size_mb", "size (MB)", "{:.2f}"),
        ("zero_fraction", "weights -> 0", "{:.1%}"),
        ("weight_snr_db", "weight SNR (dB)", "{:.1f}"),
        ("top1_agreement", "top-1 agreement", "{:.1%}"),
        ("answer_prob", "p(float's class)", "{:.3f}"),
        ("accuracy", "top-1 accuracy", "{:.1%}"),
        ("map_correlation", "map correlation", "{:.3f}"),
        ("photo_activation", "mean |act| (photos)", "{:.3g}"),
        ("vis_response", "mean |act| (float vis.)", "{:.3g}"),
        ("vis_activation", "mean |act| (own vis.)", "{:.3g}"),
    )

    def __init__(self, rows=(), reference: Optional[dict] = None):
        super().__init__(rows)
        self.reference = dict(reference or {})

    def _title(self) -> Optional[str]:
        ref = self.reference
        if "layer" not in ref:
            return None
        scale = "per-channel" if ref.get("per_channel") else "per-tensor"
        return f"{ref['layer']} channel {ref['channel']}, {scale} scales, {ref.get('n_photos', '?')} photos"

    def _footer(self) -> Optional[str]:
        ref = self.reference
        if "photo_activation" not in ref:
            return None
        parts = [f"float32: {ref['size_mb']:.2f} MB", f"mean |act| (photos) {ref['photo_activation']:.3g}"]
        if ref.get("vis_response") is not None:
            parts.append(f"mean |act| (float vis.) {ref['vis_response']:.3g}")
        if ref.get("accuracy") is not None:
            parts.append(f"top-1 accuracy {ref['accuracy']:.1%}")
        return "(" + ", ".join(parts) + ")"


# --------------------------------------------------------------------------- photos


def photo_set(model: nn.Module, *, limit: Optional[int] = None) -> Tuple[torch.Tensor, List[str], Optional[torch.Tensor]]:
    """Every shipped photo, preprocessed for ``model``: ``(x [N,3,H,W] on the model's device, names, labels)``.

    Uses the labelled photo set (``labkit.images.labelled_images()``, (path, class index) pairs) when
    labkit has it, else the sample photos (``labels`` is then None). ``limit`` keeps the first ``limit``.
    """
    from labkit import images

    labels = None
    if hasattr(images, "labelled_images"):
        pairs = list(images.labelled_images())
        paths = [p for p, _ in pairs]
        labels = torch.tensor([int(c) for _, c in pairs], dtype=torch.long)
    else:
        paths = list(images.sample_images().values())
    if limit is not None:
        paths = paths[:limit]
        labels = None if labels is None else labels[:limit]
    if not paths:
        raise ValueError("No photos found: labkit's data/images folder is empty.")
    x = images.preprocess(paths, model)
    return x, [Path(p).stem for p in paths], labels


# --------------------------------------------------------------------------- measures


def zero_fraction(t: torch.Tensor, bits: int, *, per_channel: bool = False) -> float:
    """Fraction (0..1) of the entries of ``t`` that symmetric ``bits``-bit quantisation rounds to exactly 0.

    A weight becomes 0 when ``|w| < scale / 2`` (``scale = max|w| / (2^(bits-1) - 1)``, per tensor
    or per output channel), so this fraction grows quickly as the bit width falls.
    """
    q = fake_quantize(t.detach(), check_bits(bits), per_channel=per_channel, axis=0)
    return float((q == 0).double().mean())


def model_zero_fraction(model: nn.Module, bits: int, *, per_channel: bool = False) -> float:
    """:func:`zero_fraction` over every weight ``quantize_model`` quantises (weighted by tensor size)."""
    modules = dict(model.named_modules())
    zeros = total = 0
    for name in quantizable_layers(model):
        w = modules[name].weight.detach()
        zeros += zero_fraction(w, bits, per_channel=per_channel) * w.numel()
        total += w.numel()
    return zeros / total if total else float("nan")


def mean_abs_activation(maps: torch.Tensor) -> torch.Tensor:
    """Lab 2's objective for each map: ``maps`` ``[N,h,w]`` (one channel) -> ``[N]`` mean |activation|."""
    if maps.dim() != 3:
        raise ValueError(f"maps must be [N,h,w] (one channel per image), got shape {tuple(maps.shape)}.")
    return maps.abs().flatten(1).mean(dim=1)


def map_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two equally shaped tensors over all their entries, in [-1, 1].

    When either is constant (e.g. a filter whose activation is 0 everywhere) the correlation is
    undefined; it is reported as 0: a constant map shares no variation with the other.
    """
    if a.shape != b.shape:
        raise ValueError(f"a {tuple(a.shape)} and b {tuple(b.shape)} differ in shape.")
    x = a.detach().double().flatten()
    y = b.detach().double().flatten().to(x.device)
    x, y = x - x.mean(), y - y.mean()
    denom = float(x.norm() * y.norm())
    return float(x @ y) / denom if denom > 0 else 0.0


def forward_with_maps(model: nn.Module, x: torch.Tensor, layer: str, channel: int,
                      batch_size: int = 16) -> Tuple[torch.Tensor, torch.Tensor]:
    """One full forward pass in batches: ``(logits [N,classes] CPU, maps [N,h,w] CPU)`` of ``layer``'s ``channel``."""
    logits, maps = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            with capture(model, layer) as store:
                logits.append(model(x[i:i + batch_size]).float().cpu())
            maps.append(store[layer][:, channel].float().cpu())
    return torch.cat(logits), torch.cat(maps)


class Reference(dict):
    """The float model's side of the comparison (see :func:`reference`)."""


def _visualise(model: nn.Module, layer: str, channel: int, steps, size, seed: int):
    from labkit.featurevis import visualize

    kwargs = {"seed": seed, "progress": False, "objective": "mean_abs"}
    if steps is not None:
        kwargs["steps"] = steps
    if size is not None:
        kwargs["size"] = size
    result = visualize(model, layer, [channel], **kwargs)
    return result.images[0].permute(1, 2, 0).numpy(), float(result.activations[0])


def _response(model: nn.Module, picture: np.ndarray, layer: str, channel: int) -> float:
    """``channel``'s mean |activation| for one picture (HxWx3 in [0,1])."""
    from labkit.images import normalize
    from labkit.layers import activations

    x = normalize(torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1)[None].to(model_device(model)), model)
    with torch.no_grad():
        return float(mean_abs_activation(activations(model, x, layer)[:, channel]).mean())


def reference(model: nn.Module, x: torch.Tensor, layer, channel: int, *, labels: Optional[torch.Tensor] = None,
              visualise: bool = True, vis_steps: Optional[int] = None, vis_size=None, seed: int = 0) -> Reference:
    """The float model's predictions, maps and (optionally) feature visualisation of ``layer``/``channel``.

    Returns a dict with ``layer`` (dotted name), ``channel``, ``logits``, ``top1`` ``[N]``, ``maps``
    ``[N,h,w]``, ``photo_activation`` (mean |act| over photos), ``size_mb``, ``n_photos``,
    ``accuracy`` (None without labels), ``labels``, and with ``visualise``: ``vis_image``
    (HxWx3 in [0,1], maximising mean |activation|), ``vis_activation`` and ``vis_response``
    (the same number measured again; the quantised models are measured on this same picture).
    """
    name, _ = resolve_layer(model, layer)
    check_channels(model, name, [channel])
    logits, maps = forward_with_maps(model, x, name, channel)
    top1 = logits.argmax(dim=1)
    ref = Reference(layer=name, channel=int(channel), logits=logits, top1=top1, maps=maps,
                    photo_activation=float(mean_abs_activation(maps).mean()), size_mb=model_size_mb(model, 32),
                    n_photos=len(x), labels=labels, vis_image=None, vis_activation=None, vis_response=None,
                    vis_settings=dict(steps=vis_steps, size=vis_size, seed=seed),
                    accuracy=None if labels is None else float((top1 == labels).double().mean()))
    if visualise:
        image, act = _visualise(model, name, channel, vis_steps, vis_size, seed)
        ref.update(vis_image=image, vis_activation=act, vis_response=_response(model, image, name, channel))
    return ref


def measure(model: nn.Module, bits: int, x: torch.Tensor, ref: Reference, *, per_channel: bool = False,
            visualise: bool = False) -> dict:
    """Quantise a copy of ``model`` to ``bits`` bits and compare it with the float ``ref`` on photos ``x``.

    Returns one row: ``bits``, ``per_channel``, ``size_mb``, ``zero_fraction`` (all quantised weights),
    ``layer_zero_fraction`` (the studied layer's), ``weight_snr_db`` (mean over layers),
    ``layer_weight_snr_db``, ``top1_agreement``, ``n_photos``, ``answer_prob`` (mean probability of
    the float model's top class), ``accuracy`` (None without labels), ``map_correlation``,
    ``photo_activation`` (mean |act| on the photos), ``vis_response`` (mean |act| on the float
    model's picture; None if ``ref`` has none), and with ``visualise`` the quantised model's own
    picture ``vis_image`` and its ``vis_activation`` (same seed and settings as the float one).
    """
    bits = check_bits(bits)
    layer, channel = ref["layer"], ref["channel"]
    qmodel = quantize_model(model, bits, per_channel=per_channel)
    try:
        logits, maps = forward_with_maps(qmodel, x, layer, channel)
        probs = logits.double().softmax(dim=1)
        top1 = logits.argmax(dim=1)
        modules, qmodules = dict(model.named_modules()), dict(qmodel.named_modules())
        snrs = [snr_db(modules[n].weight, qmodules[n].weight) for n in qmodel.labkit_quantization.layers]
        finite = [s for s in snrs if math.isfinite(s)]
        weight = modules[layer].weight
        row = {
            "bits": bits, "per_channel": bool(per_channel), "size_mb": model_size_mb(model, bits),
            "zero_fraction": model_zero_fraction(model, bits, per_channel=per_channel),
            "layer_zero_fraction": zero_fraction(weight, bits, per_channel=per_channel),
            "weight_snr_db": float(np.mean(finite)) if finite else math.inf,
            "layer_weight_snr_db": snr_db(weight, qmodules[layer].weight),
            "top1_agreement": float((top1 == ref["top1"]).double().mean()), "n_photos": len(x),
            "answer_prob": float(probs.gather(1, ref["top1"][:, None]).mean()),
            "accuracy": None if ref["labels"] is None else float((top1 == ref["labels"]).double().mean()),
            "map_correlation": map_correlation(maps, ref["maps"]),
            "photo_activation": float(mean_abs_activation(maps).mean()),
            "vis_response": None, "vis_image": None, "vis_activation": None,
        }
        if ref.get("vis_image") is not None:
            row["vis_response"] = _response(qmodel, ref["vis_image"], layer, channel)
        if visualise:
            s = ref["vis_settings"]
            row["vis_image"], row["vis_activation"] = _visualise(qmodel, layer, channel, s["steps"], s["size"], s["seed"])
        return row
    finally:
        del qmodel  # VGG copies are half a gigabyte


def study(model: nn.Module, bits: Sequence[int], x: torch.Tensor, ref: Reference, *, per_channel: bool = False,
          visualise: bool = False, progress: bool = True) -> StudyTable:
    """:func:`measure` at each width of ``bits`` (a tqdm bar over the widths): a :class:`StudyTable`."""
    from tqdm.auto import tqdm

    widths = [check_bits(b) for b in bits]
    if not widths:
        raise ValueError("bits must name at least one bit width, e.g. (16, 8, 6, 5, 4, 3, 2).")
    rows = [measure(model, b, x, ref, per_channel=per_channel, visualise=visualise)
            for b in tqdm(widths, desc="quantising", disable=not progress, leave=False)]
    keep = ("layer", "channel", "photo_activation", "size_mb", "n_photos", "accuracy", "vis_image",
            "vis_activation", "vis_response")
    return StudyTable(rows, {**{k: ref.get(k) for k in keep}, "per_channel": per_channel})


def collapse_bits(rows: Sequence[dict], key: str = "top1_agreement",
                  threshold: float = COLLAPSE_THRESHOLD) -> Optional[int]:
    """The largest bit width at which ``row[key] < threshold``: where the network has collapsed.

    Widths are read from the highest down; None when no width falls below the threshold.
    """
    for row in sorted(rows, key=lambda r: -r["bits"]):
        value = row.get(key)
        if value is not None and not (value >= threshold):  # nan counts as collapsed
            return int(row["bits"])
    return None


def keeps_bits(rows: Sequence[dict], key: str = "top1_agreement", threshold: float = 0.95) -> Optional[int]:
    """The smallest width ``b`` such that every measured width ``>= b`` has ``row[key] >= threshold``."""
    best = None
    for row in sorted(rows, key=lambda r: -r["bits"]):
        value = row.get(key)
        if value is None or not value >= threshold:
            break
        best = int(row["bits"])
    return best


# --------------------------------------------------------------------------- figure (draws only)


def study_figure(table: StudyTable, *, title: Optional[str] = None, image_size: float = 1.8):
    """Pictures per width (top; float first) and the measures against the bit width (bottom).

    Every picture caption gives its mean |activation| (Lab 2's objective). Returns the Figure.
    """
    import matplotlib.pyplot as plt

    rows = sorted(table, key=lambda r: -r["bits"])
    if not rows:
        raise ValueError("the table is empty: run quant_study.study(...) first.")
    ref = table.reference
    panels = []
    if ref.get("vis_image") is not None:
        panels.append((ref["vis_image"], f"float32\nmean |act| {ref['vis_activation']:.3g}"))
    panels += [(r["vis_image"], f"{r['bits']}-bit\nmean |act| {r['vis_activation']:.3g}")
               for r in rows if r.get("vis_image") is not None]
    ncols = max(len(panels), 4)
    fig = plt.figure(figsize=(max(image_size * ncols, 9.0), (image_size + 0.7 if panels else 0) + 3.4),
                     constrained_layout=True)
    grid = fig.add_gridspec(2 if panels else 1, ncols, height_ratios=[image_size + 0.7, 3.4] if panels else [1])
    for i, (pic, caption) in enumerate(panels):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.clip(np.asarray(pic, dtype=np.float32), 0, 1))
        ax.set_title(caption, fontsize=9)
        ax.set_axis_off()
    ax = fig.add_subplot(grid[-1, :])
    xs = [r["bits"] for r in rows]
    curves = [("top1_agreement", "top-1 agreement with float", "o-", "tab:blue"),
              ("answer_prob", "probability of the float model's class", "s-", "tab:purple"),
              ("map_correlation", f"map correlation ({ref.get('layer')} #{ref.get('channel')})", "^-", "tab:green"),
              ("zero_fraction", "fraction of weights rounded to 0", "x--", "0.4")]
    for key, label, style, color in curves:
        ys = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.plot(xs, ys, style, color=color, label=label)
    ax.axhline(COLLAPSE_THRESHOLD, color="tab:red", lw=0.8, ls=":", label=f"collapse threshold ({COLLAPSE_THRESHOLD:.0%})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels([str(b) for b in xs])
    ax.minorticks_off()
    ax.invert_xaxis()  # precision falls from left to right
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("weight bits (log scale; precision falls to the right)")
    ax.set_ylabel("fraction / correlation")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    if title is None and ref.get("layer") is not None:
        scale = "per-channel" if ref.get("per_channel") else "per-tensor"
        title = f"Quantised weights ({scale}): {ref['layer']} channel {ref['channel']}, {ref.get('n_photos')} photos"
    if title:
        fig.suptitle(title)
    return fig
