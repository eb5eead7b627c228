"""The course's experiments, built on labkit's primitives: the bit-width sweep of Lab 4 and the
weight explorer of Lab 5. They are course material (which measures, which defaults), so they live
here; labkit keeps the primitives they call (``labkit.quantize``, ``labkit.circuits``,
``labkit.featurevis``) and the figures that draw their results (``labkit.plot.sweep_figure``,
``labkit.plot.weight_explorer``).

* :func:`sweep` -> :class:`SweepTable`: quantise a model at each bit width and measure what changes.
* :func:`explore` -> :class:`Explorer`: a unit's strongest input kernels with feature visualisations.
"""
from __future__ import annotations

import dataclasses
import math
from typing import List, Optional, Sequence, Type

import numpy as np
import torch
from torch import nn

from labkit import circuits
from labkit._table import FormattedTable
from labkit.circuits import CircuitTable
from labkit import featurevis
from labkit.images import normalize, preprocess, sample_images
from labkit.layers import activations, check_channels, resolve_layer
from labkit.quantize import DEFAULT_LAYER_TYPES, check_bits, model_size_mb, quantize_model, weight_snr_db

from course.roles import roles_for

__all__ = ["SweepTable", "sweep", "Explorer", "explore"]


# --------------------------------------------------------------------------- Lab 4: bit-width sweep


class SweepTable(FormattedTable):
    """Records of :func:`sweep` (one dict per bit width), printable as a table in a terminal and in Jupyter.

    ``reference`` holds the float model's row parts: ``size_mb``, ``vis_image`` (HxWx3 in [0,1] or None),
    ``vis_activation``, and the ``layer``/``channel`` that were visualised.
    """

    columns = (
        ("bits", "bits", "{}"),
        ("size_mb", "size (MB)", "{:.2f}"),
        ("top1_agreement", "top-1 agreement", "{:.1%}"),
        ("mean_kl", "KL(float||quant) nats", "{:.4f}"),
        ("weight_snr_db", "weight SNR (dB)", "{:.1f}"),
        ("vis_similarity", "vis. similarity", "{:.3f}"),
        ("vis_activation", "vis. activation", "{:.3g}"),
        ("vis_float_activation", "resp. to float vis.", "{:.3g}"),
    )

    def __init__(self, rows=(), reference: Optional[dict] = None):
        super().__init__(rows)
        self.reference = dict(reference or {})

    def _footer(self) -> Optional[str]:
        size = self.reference.get("size_mb")
        return None if size is None else f"(float32 model: {size:.2f} MB)"


def _default_images(model: nn.Module) -> torch.Tensor:
    return preprocess(list(sample_images().values()), model)


def _as_batch(images, model: nn.Module) -> torch.Tensor:
    if images is None:
        return _default_images(model)
    if torch.is_tensor(images):
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a preprocessed batch [N,3,H,W], got shape {tuple(images.shape)}.")
        return images
    return preprocess(list(images) if isinstance(images, (list, tuple)) else images, model)


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of the mean-centred pixels (Pearson correlation), in [-1, 1]."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom > 0 else float("nan")


def _visualize_channel(model: nn.Module, layer, channel: int, steps, size, seed: int, preset: str):
    kwargs = {"seed": seed, "progress": False, "preset": preset}
    if steps is not None:
        kwargs["steps"] = steps
    if size is not None:
        kwargs["size"] = size
    result = featurevis.visualize(model, layer, [channel], **kwargs)
    image = result.images[0].detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    return np.ascontiguousarray(image), float(result.activations[0])


def sweep(model: nn.Module, bits: Sequence[int] = (16, 8, 4, 3, 2), images=None, *, layer=None,
          channel: Optional[int] = None, vis_steps: Optional[int] = None, vis_size: Optional[int] = None,
          seed: int = 0, vis_preset: str = "quality", per_channel: bool = False, symmetric: bool = True,
          skip_first_last: bool = False, layer_types: Sequence[Type[nn.Module]] = DEFAULT_LAYER_TYPES,
          progress: bool = True) -> SweepTable:
    """Quantise ``model`` at each bit width and measure what changes (Duke Lab 1, Assignment 3).

    Args:
        model: a labkit model (float weights).
        bits: bit widths to try, each 1..32.
        images: the photos to compare predictions on: ``None`` (the shipped sample photos), a
            preprocessed batch ``[N,3,H,W]`` on the model's device, or paths/PIL images.
        layer, channel: the channel whose feature visualisation is redone at each width; default the
            model's lab roles (``roles_for(model).quant_layer`` / ``.quant_channel``; VGG16: layer 24, channel 4).
            ``layer=False`` skips the visualisations (much faster).
        vis_steps, vis_size, seed, vis_preset: optimisation steps, image side (px), random seed and
            preset ("quality", or "handout" for the Duke lab's plain pixel ascent) of the
            visualisations (``None``: the preset's values). The same seed is used for every width, so
            differences come from the weights alone.
        per_channel, symmetric, skip_first_last, layer_types: passed to :func:`quantize_model`.
        progress: a tqdm progress bar over the bit widths.

    Returns:
        :class:`SweepTable`, one dict per bit width with

        * ``bits``; ``size_mb``: parameter storage at that width (:func:`model_size_mb`);
        * ``top1_agreement``: fraction of images whose top-1 class matches the float model's (0..1);
        * ``mean_kl``: mean over images of KL(float || quantised) of the softmax outputs, in nats;
        * ``weight_snr_db``: mean over layers of the weight SNR in dB; ``layer_snr_db``: {layer: dB};
        * ``vis_image``: the filter's visualisation (HxWx3 numpy in [0,1]) under the quantised model;
          ``vis_activation``: the channel's mean activation for it; ``vis_similarity``: Pearson
          correlation of its pixels with the float model's visualisation (1 = same picture);
          ``vis_float_activation``: the quantised channel's mean activation for the *float* model's
          picture (how the response to one fixed stimulus degrades; compare with
          ``reference["vis_float_activation"]``, the float channel's own). All ``None`` when ``layer=False``.

        Feature visualisation amplifies tiny differences (the optimisation is chaotic), so even a
        16-bit copy can give a slightly different picture; ``vis_float_activation`` is the steadier
        measure of what the bits did to the channel.

        ``table.reference`` holds the float model's ``size_mb``, ``vis_image``, ``vis_activation`` and
        ``vis_float_activation``, and the ``layer`` and ``channel`` visualised.
    """
    from tqdm.auto import tqdm

    widths = [check_bits(b) for b in (bits if isinstance(bits, (list, tuple)) else [bits])]
    if not widths:
        raise ValueError("bits must name at least one bit width, e.g. (16, 8, 4, 3, 2).")
    x = _as_batch(images, model)
    reference_logits = _logits(model, x)
    reference_logp = torch.log_softmax(reference_logits.cpu().double(), dim=1)
    reference_top1 = reference_logits.argmax(dim=1).cpu()

    reference = {"size_mb": model_size_mb(model, 32), "vis_image": None, "vis_activation": None,
                 "vis_float_activation": None, "layer": None, "channel": None}
    visualise = layer is not False
    if visualise:
        if layer is None or channel is None:
            roles = roles_for(model)
            layer = roles.quant_layer if layer is None else layer
            channel = roles.quant_channel if channel is None else channel
        layer_name, _ = resolve_layer(model, layer)
        check_channels(model, layer_name, [channel])
        ref_image, ref_act = _visualize_channel(model, layer_name, channel, vis_steps, vis_size, seed, vis_preset)
        device = reference_logits.device
        ref_input = normalize(torch.from_numpy(ref_image).permute(2, 0, 1)[None].to(device), model)

        def response(m: nn.Module) -> float:  # the channel's mean activation for the float picture
            with torch.no_grad():
                return float(activations(m, ref_input, layer_name)[0, channel].mean())

        reference.update(vis_image=ref_image, vis_activation=ref_act, vis_float_activation=response(model),
                         layer=layer_name, channel=channel)

    rows = []
    for b in tqdm(widths, desc="quantising", disable=not progress):
        qmodel = quantize_model(model, b, layer_types=layer_types, skip_first_last=skip_first_last,
                                per_channel=per_channel, symmetric=symmetric)
        logits = _logits(qmodel, x)
        logq = torch.log_softmax(logits.cpu().double(), dim=1)
        kl = (reference_logp.exp() * (reference_logp - logq)).sum(dim=1)
        per_layer = weight_snr_db(model, qmodel)
        finite = [v for v in per_layer.values() if math.isfinite(v)]
        row = {
            "bits": b,
            "size_mb": model_size_mb(model, b, layer_types=layer_types, skip_first_last=skip_first_last),
            "top1_agreement": float((logits.argmax(dim=1).cpu() == reference_top1).double().mean()),
            "mean_kl": float(kl.mean()),
            "weight_snr_db": float(np.mean(finite)) if finite else math.inf,
            "layer_snr_db": per_layer,
            "vis_image": None,
            "vis_activation": None,
            "vis_similarity": None,
            "vis_float_activation": None,
        }
        if visualise:
            image, act = _visualize_channel(qmodel, layer_name, channel, vis_steps, vis_size, seed, vis_preset)
            row.update(vis_image=image, vis_activation=act, vis_similarity=_pearson(image, ref_image),
                       vis_float_activation=response(qmodel))
        rows.append(row)
        del qmodel  # VGG16 copies are 0.5 GB each
    return SweepTable(rows, reference)


# --------------------------------------------------------------------------- Lab 5: weight explorer


@dataclasses.dataclass
class Explorer:
    """What the weight-explorer figure shows for one unit (built by :func:`explore`).

    Attributes:
        layer, channel: the unit (an output channel of a conv layer).
        records: :class:`CircuitTable` of its strongest inputs (strongest first).
        kernels: ``[k, kh, kw]`` CPU float: the kernels of those inputs, in record order.
        input_layer: the layer whose channels the inputs are (None: unknown / the RGB image).
        input_images: ``[k, H, W, 3]`` numpy in ``[0,1]``: feature visualisation of each input channel
            (None when ``input_layer`` is None or ``visualize=False``).
        input_activations: ``[k]`` numpy, the objective each of those pictures reaches.
        channel_image: ``[H, W, 3]`` numpy: the unit's own feature visualisation (None if not computed).
        channel_activation: its objective value.
        norms: ``[C]`` CPU: strength of every input kernel (for the histogram).
        norm_channels: the input channel of each entry of ``norms``.
    """

    layer: str
    channel: int
    records: CircuitTable
    kernels: torch.Tensor
    input_layer: Optional[str]
    input_images: Optional[np.ndarray]
    input_activations: Optional[np.ndarray]
    channel_image: Optional[np.ndarray]
    channel_activation: Optional[float]
    norms: torch.Tensor
    norm_channels: List[int]

    @property
    def input_channels(self) -> List[int]:
        return self.records.column("input_channel")

    @property
    def polarities(self) -> List[str]:
        return self.records.column("polarity")

    def figure(self, *, ncols: int = 2, title: Optional[str] = None):
        """The weight-explorer figure (``labkit.plot.weight_explorer``) of these results."""
        from labkit.plot import weight_explorer

        return weight_explorer(self.records, input_images=self.input_images, channel_image=self.channel_image,
                               ncols=ncols, title=title)


def _visualize_channels(model, layer: str, channels: Sequence[int], steps, size, seed, preset, progress):
    kwargs = {"seed": seed, "progress": progress, "preset": preset}
    if steps is not None:
        kwargs["steps"] = steps
    if size is not None:
        kwargs["size"] = size
    result = featurevis.visualize(model, layer, list(channels), **kwargs)  # one batch for all channels
    return result.images.permute(0, 2, 3, 1).numpy(), result.activations.numpy()


def explore(model: nn.Module, layer=None, channel: Optional[int] = None, k: int = 6, *, by: str = "l2", source=None,
            steps: Optional[int] = None, size=None, seed: int = 0, preset: str = "quality",
            pictures: bool = True, progress: bool = True) -> Explorer:
    """Collect a unit's circuit: its ``k`` strongest input kernels, their polarity, and feature
    visualisations of each input channel and of the unit (SMU lab; Distill's weight explorer).

    The input channels are visualised in ONE batched ``labkit.featurevis.visualize`` call on their
    layer (:func:`feeding_layer`, or ``source``), the unit in one more call; ``steps``, ``size``,
    ``seed`` and ``preset`` go to it. ``source`` switches to expanded weights (:func:`strongest`).
    ``pictures=False`` skips the pictures (kernels and ranking only). ``layer``/``channel`` default to
    the model's lab roles (:func:`course.roles.roles_for`: ``circuit_layer``/``circuit_channel``).
    """
    if layer is None or channel is None:
        roles = roles_for(model)
        layer = roles.circuit_layer if layer is None else layer
        channel = roles.circuit_channel if channel is None else channel
    records = circuits.strongest(model, layer, channel, k, by, source=source)  # checks everything first
    name = records.layer
    if source is None:
        kernels = circuits.input_kernels(model, name, channel)
        norm_channels = circuits.input_channels(model, name, channel)
    else:
        kernels = circuits.expanded_weights(model, source, name, channels=[channel], progress=False)[0]
        norm_channels = list(range(kernels.shape[0]))
    norms = circuits.kernel_norms(kernels, by).cpu()
    input_layer = circuits.feeding_layer(model, name) if source is None else resolve_layer(model, source)[0]
    input_images = input_acts = channel_image = channel_act = None
    if pictures:
        if input_layer is not None:
            input_images, input_acts = _visualize_channels(model, input_layer, records.column("input_channel"), steps,
                                                           size, seed, preset, progress)
        images, acts = _visualize_channels(model, name, [channel], steps, size, seed, preset, progress)
        channel_image, channel_act = images[0], float(acts[0])
    return Explorer(name, int(channel), records, records.kernels, input_layer, input_images, input_acts, channel_image,
                    channel_act, norms, list(norm_channels))
