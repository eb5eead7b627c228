"""Lab 5's reading of a unit as a circuit, on plain chains (VGG) and on bottleneck blocks (EfficientNet).

A conv unit reads one tensor. In VGG that tensor is ``ReLU(previous conv)`` and the unit's own
3x3 kernels already have spatial structure. In a network of inverted-residual blocks the unit is
often a 1x1 conv that reads the *residual sum* of the previous block: its true weights are one
number per input channel (drawn as signed bars here, never as flat colour squares), and the spatial
structure lives one block down, in expand -> depthwise -> project and the skip. Composing those
weights (non-linearities read as the identity, BatchNorm folded to its scale) gives *expanded
weights*: an effective k x k kernel from each channel of the block's input into the unit.

* :func:`balance`, :func:`polarity`: excitatory / inhibitory / **mixed** within a stated
  :data:`MARGIN` (labkit's rule, :func:`labkit.circuits.polarity`); every label in the lab's
  figures comes from this one rule;
* :func:`read_layer`: the module whose output the unit reads (for a residual block: the sum);
* :func:`block_kernel`, :func:`compose_kernels`: the linearised block as one conv, and its
  composition with the unit's kernels (cross-checked against ``labkit.circuits.expanded_weights``);
* :func:`analyse`: everything about one unit; :func:`bars`, :func:`kernel_cards`: the figures.

"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from labkit.circuits import POLARITY_MARGIN, balance, conv_layer, feeding_layer
from labkit.circuits import polarity as _polarity
from labkit.layers import hooks, resolve_layer

__all__ = ["MARGIN", "balance", "polarity", "top_k", "read_layer", "sum_terms", "visualize_read", "block_kernel", "compose_kernels",
           "expansion_path", "Circuit", "analyse", "bars", "kernel_cards"]

#: A kernel is "mixed" when its net mass (positive - negative) is within this fraction of its total mass.
MARGIN = POLARITY_MARGIN


def polarity(kernel: torch.Tensor, margin: float = MARGIN) -> str:
    """``"excitatory"``, ``"inhibitory"`` or ``"mixed"``: labkit's rule (:func:`labkit.circuits.polarity`),
    the one every label and figure of Lab 5 uses."""
    return _polarity(kernel, margin)[0]


def top_k(kernels: torch.Tensor, k: int) -> List[int]:
    """Indices of the ``k`` kernels of ``kernels`` ``[C, ...]`` with the largest L2 norm, strongest first."""
    norms = kernels.detach().reshape(kernels.shape[0], -1).double().norm(dim=1)
    return [int(i) for i in torch.argsort(norms, descending=True, stable=True)[:min(int(k), len(norms))]]


# --------------------------------------------------------------------------- which tensor a unit reads


class _Stop(Exception):
    pass


def read_layer(model: nn.Module, layer) -> str:
    """The dotted name of the module whose output tensor is ``layer``'s input.

    Found by running the model up to ``layer`` and matching tensor identity: VGG's conv3_3 reads
    its ReLU ``features.13`` (in place on conv3_2's output); a 1x1 conv after a residual block reads
    the block itself (the sum), not the block's last conv. Pass-through modules (Identity, Dropout)
    and Sequential containers (which only hand on a child's tensor) are skipped; a block whose last
    layer made the tensor is named as the block (``blocks.2.0``, not ``blocks.2.0.bn3``).
    """
    name, module = resolve_layer(model, layer)
    seen: List[Tuple[str, nn.Module, object]] = []
    found = {}
    size = int(getattr(getattr(model, "labkit", None), "input_size", 224))
    device = next(model.parameters()).device
    with hooks() as handles:
        for n, m in model.named_modules():
            if m is model or m is module:
                continue
            handles.append(m.register_forward_hook(lambda mod, args, out, n=n: seen.append((n, mod, out))))

        def pre(mod, args):
            found["input"] = args[0]
            raise _Stop

        handles.append(module.register_forward_pre_hook(pre))
        try:
            with torch.no_grad():
                model(torch.zeros(1, 3, size, size, device=device))
        except _Stop:
            pass
    if "input" not in found:
        raise ValueError(f"Layer {name!r} does not run in this model's forward pass.")
    candidates = [(n, m) for n, m, out in seen if out is found["input"]
                  and not isinstance(m, (nn.Identity, nn.Dropout)) and not name.startswith(n + ".")]
    # a Sequential only hands on its last child's tensor: name the child; any other module that
    # produced the tensor (a residual block's sum, a block's last BatchNorm) is named itself
    names = [n for n, m in candidates
             if not (isinstance(m, nn.Sequential) and any(o.startswith(n + ".") for o, _ in candidates))]
    kept = [n for n in names if not any(n.startswith(o + ".") for o in names)]
    if not kept:
        raise ValueError(f"No module outputs the tensor {name!r} reads (it reads the image or a fresh tensor).")
    return kept[-1]


def sum_terms(model: nn.Module, read: str) -> List[str]:
    """Layers (rows of ``labkit.layers.layers``) whose outputs add up to module ``read``'s output.

    A plain layer is its own single term. A residual block's output is its projection (``bn3``)
    plus its input, which may itself be a residual sum: ``blocks.3.2`` -> ``[blocks.3.2.bn3,
    blocks.3.1.bn3, blocks.3.0.bn3]``. A block without a skip is its ``bn3``.
    """
    from labkit.layers import layers

    names = set(layers(model).names())
    if read in names:
        return [read]
    module = model.get_submodule(read)
    if not _is_bottleneck(module):
        raise ValueError(f"{read!r} is a {type(module).__name__}: neither a layer nor an inverted-residual block.")
    terms = [f"{read}.bn3"]
    if getattr(module, "has_skip", False):
        terms += sum_terms(model, read_layer(model, f"{read}.conv_pw"))
    return terms


def visualize_read(model: nn.Module, read: str, channels: Sequence[int], **settings):
    """Feature visualisation of channels of the tensor ``read`` outputs (a residual sum included):
    gradient ascent on the channel's mean activation, which for a sum is the sum of its terms' means
    (:func:`sum_terms`). ``settings`` go to ``labkit.featurevis.visualize`` (``steps``, ``size``, ...).
    Returns its ``FeatureVisResult`` (``activations``: the mean of each channel of the sum)."""
    from labkit.featurevis import objectives, visualize

    terms = sum_terms(model, read)
    objective = objectives.mean()
    for term in terms[1:]:
        objective = objective + objectives.mean(term)
    return visualize(model, terms[0], [int(c) for c in channels], objective=objective, **settings)


# --------------------------------------------------------------------------- expanded weights by composition


def _bn_scale(bn: nn.Module) -> torch.Tensor:
    scale = torch.rsqrt(bn.running_var.detach() + bn.eps)
    return scale * bn.weight.detach() if bn.weight is not None else scale


def _is_bottleneck(module: nn.Module) -> bool:
    return all(hasattr(module, a) for a in ("conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3"))


def block_kernel(model: nn.Module, block) -> Tuple[torch.Tensor, bool]:
    """A block's linear path as one stride-1 conv: ``(weight [C_out, C_in, k, k], residual)``.

    * a plain ``Conv2d`` (VGG): its weight; ``residual`` False;
    * an inverted-residual block (timm's ``InvertedResidual``: 1x1 expand + BN, depthwise k x k + BN,
      1x1 project + BN, optional skip): ``W[o, c] = sum_e P[o, e] D[e] E[e, c]`` with each BatchNorm
      folded into its conv as ``gamma / sqrt(var + eps)`` (the shift is a constant and drops out),
      ReLU6 read as the identity; ``residual`` says whether the block adds its input.

    Raises:
        ValueError: another kind of block, or a strided one (its composition is not a plain conv).
    """
    name, module = resolve_layer(model, block)
    if isinstance(module, nn.Conv2d):
        if module.groups != 1 or module.stride != (1, 1):
            raise ValueError(f"{name!r} must be an ordinary stride-1 conv to compose, got groups={module.groups}, "
                             f"stride={module.stride}.")
        return module.weight.detach().clone(), False
    if not _is_bottleneck(module):
        raise ValueError(f"{name!r} is a {type(module).__name__}; block_kernel reads a Conv2d or an inverted-residual "
                         "block (conv_pw, conv_dw, conv_pwl with BatchNorms).")
    if module.conv_dw.stride != (1, 1):
        raise ValueError(f"{name!r} is strided (stride {module.conv_dw.stride}); pick a stride-1 block.")
    expand = module.conv_pw.weight.detach()[:, :, 0, 0] * _bn_scale(module.bn1)[:, None]  # [E, C_in]
    depthwise = module.conv_dw.weight.detach()[:, 0] * _bn_scale(module.bn2)[:, None, None]  # [E, k, k]
    project = module.conv_pwl.weight.detach()[:, :, 0, 0] * _bn_scale(module.bn3)[:, None]  # [C_out, E]
    weight = torch.einsum("oe,eyx,ec->ocyx", project, depthwise, expand)
    return weight, bool(getattr(module, "has_skip", False))


def compose_kernels(outer: torch.Tensor, inner: torch.Tensor, residual: bool = False) -> torch.Tensor:
    """Effective kernels of a unit through one more (linear) conv: the reference for the lab's task.

    Args:
        outer: the unit's kernels ``[M, kh2, kw2]`` over the M channels of the tensor it reads.
        inner: the conv that makes that tensor, ``[M, C, kh1, kw1]`` (stride 1, odd sizes).
        residual: the tensor is ``inner(x) + x`` (then ``M == C``): the identity adds ``outer`` at
            the centre of each window.

    Returns:
        ``[C, kh1 + kh2 - 1, kw1 + kw2 - 1]``: entry ``[c, y, x]`` is how much the unit changes per unit of
        input channel ``c`` at offset ``(y, x)`` of its window (``K[c, d2 + d1] += sum_m outer[m, d2] inner[m, c, d1]``).
    """
    if outer.dim() != 3 or inner.dim() != 4 or outer.shape[0] != inner.shape[0]:
        raise ValueError(f"outer must be [M, kh, kw] and inner [M, C, kh, kw] with the same M, got "
                         f"{tuple(outer.shape)} and {tuple(inner.shape)}.")
    m, kh2, kw2 = outer.shape
    _, c, kh1, kw1 = inner.shape
    if residual and m != c:
        raise ValueError(f"a residual block keeps its channel count: M = {m} but C = {c}.")
    out = inner.new_zeros(c, kh1 + kh2 - 1, kw1 + kw2 - 1)
    for y in range(kh2):
        for x in range(kw2):
            out[:, y:y + kh1, x:x + kw1] += torch.einsum("m,mcij->cij", outer[:, y, x], inner)
            if residual:
                out[:, y + kh1 // 2, x + kw1 // 2] += outer[:, y, x]
    return out


def expansion_path(model: nn.Module, layer) -> Optional[Tuple[str, str]]:
    """``(block, source)`` for expanded weights into ``layer``: the block that makes the tensor
    ``layer`` reads, and the module whose output is that block's input. None when there is none.

    VGG conv3_3 -> ``("features.12", "features.11")`` (conv3_2, fed by ReLU(conv3_1)); Lite0
    ``blocks.3.0.conv_pw`` -> ``("blocks.2.1", "blocks.2.0")`` when block 2.1 is a stride-1 bottleneck.
    """
    name, _ = conv_layer(model, layer)
    read = read_layer(model, name)
    module = model.get_submodule(read)
    if _is_bottleneck(module) and module.conv_dw.stride == (1, 1):
        return read, read_layer(model, f"{read}.conv_pw")
    feeder = feeding_layer(model, name)
    if feeder is None:
        return None
    conv = model.get_submodule(feeder)
    if conv.groups != 1 or conv.stride != (1, 1):
        return None
    try:
        return feeder, read_layer(model, feeder)
    except ValueError:  # the first conv reads the image
        return None


# --------------------------------------------------------------------------- one unit


@dataclasses.dataclass
class Circuit:
    """One unit read as a circuit (see :func:`analyse`). Kernels are CPU float tensors."""

    layer: str
    unit: int
    read: str  # the module whose output the unit reads
    kernels: torch.Tensor  # [C_in, kh, kw], the unit's true weights
    top: List[int]  # strongest input channels (L2), strongest first
    labels: List[str]  # polarity of each of ``top`` (:func:`polarity`)
    block: Optional[str] = None
    source: Optional[str] = None  # the module whose channels the expanded kernels read
    residual: bool = False
    expanded: Optional[torch.Tensor] = None  # [C_src, KH, KW]
    expanded_top: List[int] = dataclasses.field(default_factory=list)
    expanded_labels: List[str] = dataclasses.field(default_factory=list)
    margin: float = MARGIN

    @property
    def is_1x1(self) -> bool:
        return self.kernels.shape[-2:] == (1, 1)


def analyse(model: nn.Module, layer, unit: int, k: int = 6, *, margin: float = MARGIN) -> Circuit:
    """The unit's true weights, the tensor it reads, and (where a block feeds it) its expanded weights,
    each with its ``k`` strongest input channels and their polarity (one rule, :func:`polarity`)."""
    name, module = conv_layer(model, layer)
    if isinstance(unit, bool) or not 0 <= int(unit) < module.out_channels:
        raise IndexError(f"Unit {unit!r} does not exist: {name!r} has {module.out_channels} units "
                         f"(0..{module.out_channels - 1}).")
    kernels = module.weight.detach()[int(unit)].cpu().float()  # [C_in/groups, kh, kw]
    top = top_k(kernels, k)
    circuit = Circuit(name, int(unit), read_layer(model, name), kernels, top,
                      [polarity(kernels[i], margin) for i in top], margin=margin)
    path = expansion_path(model, name)
    if path is not None and kernels.shape[0] == block_kernel(model, path[0])[0].shape[0]:
        inner, residual = block_kernel(model, path[0])
        expanded = compose_kernels(kernels.to(inner), inner, residual).cpu().float()
        top_e = top_k(expanded, k)
        circuit.block, circuit.source, circuit.residual = path[0], path[1], residual
        circuit.expanded, circuit.expanded_top = expanded, top_e
        circuit.expanded_labels = [polarity(expanded[i], margin) for i in top_e]
    return circuit


# --------------------------------------------------------------------------- figures (draw only)

_COLORS = {"excitatory": "#e8710a", "inhibitory": "#1f6fb4", "mixed": "0.45"}


def bars(ax, weights: torch.Tensor, top: Sequence[int], labels: Sequence[str], *, title: Optional[str] = None):
    """True 1x1 weights as signed bars: every input channel's weight, sorted by size, the top ones
    coloured by polarity and named by channel. ``weights``: ``[C]`` or ``[C, 1, 1]``."""
    w = weights.detach().cpu().reshape(weights.shape[0]).double().numpy()
    order = np.argsort(-np.abs(w), kind="stable")
    colors = ["0.8"] * len(w)
    names = dict(zip(top, labels))
    for pos, c in enumerate(order):
        if int(c) in names:
            colors[pos] = _COLORS[names[int(c)]]
    ax.bar(np.arange(len(w)), w[order], color=colors, width=0.85)
    ax.axhline(0, color="0.2", lw=0.8)
    shown = [pos for pos, c in enumerate(order) if int(c) in names]
    ax.set_xticks(shown)
    ax.set_xticklabels([str(int(order[p])) for p in shown], fontsize=7, rotation=90)
    ax.set_xlim(-1, len(w))
    ax.set_xlabel("input channels, largest |weight| first (ticks: the strongest, by channel)")
    ax.set_ylabel("weight")
    if title:
        ax.set_title(title, fontsize=10)


def kernel_cards(kernels: torch.Tensor, channels: Sequence[int], labels: Sequence[str], *,
                 pictures: Optional[np.ndarray] = None, source: str = "input", unit_picture: Optional[np.ndarray] = None,
                 title: Optional[str] = None, margin: float = MARGIN, fig=None):
    """Weight explorer: for each channel, its feature visualisation (when ``pictures`` ``[k,H,W,3]``
    is given) and its kernel on one diverging colour scale (orange +, blue -), framed and labelled
    by polarity; 1x1 kernels are drawn as a signed bar. Draws on ``fig`` (default: a new pyplot
    figure). Returns the Figure."""
    import matplotlib.pyplot as plt
    from labkit.plot import weight_cmap

    kernels = kernels.detach().cpu().float()
    n = len(channels)
    has_pic, has_unit = pictures is not None, unit_picture is not None
    cols = n + (1 if has_unit else 0)
    if fig is None:
        fig = plt.figure(figsize=(1.75 * cols + 0.6, 3.7 if has_pic else 2.2), layout="constrained")
    axes = fig.subplots(2 if has_pic else 1, cols, squeeze=False)
    limit = float(kernels[list(channels)].abs().max()) or 1.0
    image = None
    for i, (c, label) in enumerate(zip(channels, labels)):
        color = _COLORS[label]
        ax_k = axes[-1, i]
        k = kernels[c]
        if k.shape[-2:] == (1, 1):
            ax_k.bar([0], [float(k.flatten()[0])], color=color, width=0.6)
            ax_k.set_ylim(-limit, limit)
            ax_k.axhline(0, color="0.2", lw=0.8)
            ax_k.set_xticks([])
            ax_k.tick_params(labelsize=6)
        else:
            image = ax_k.imshow(k.numpy(), cmap=weight_cmap(), vmin=-limit, vmax=limit, interpolation="nearest")
            ax_k.set_xticks([])
            ax_k.set_yticks([])
        ax_k.set_title(f"#{c} {label}\nbalance {balance(k):+.2f}", fontsize=8, color=color)
        if has_pic:
            ax_p = axes[0, i]
            ax_p.imshow(np.clip(pictures[i], 0, 1))
            ax_p.set_xticks([])
            ax_p.set_yticks([])
            ax_p.set_title(f"{source} #{c}", fontsize=8)
            for spine in ax_p.spines.values():
                spine.set_edgecolor(color)
                spine.set_linewidth(2.5)
    if has_unit:
        for ax in axes[:, -1]:
            ax.set_axis_off()
        ax_u = axes[0, -1]
        ax_u.imshow(np.clip(unit_picture, 0, 1))
        ax_u.set_title("the unit", fontsize=9)
    if image is not None:
        fig.colorbar(image, ax=list(axes[-1, :n]), shrink=0.8, label="weight")
    fig.suptitle((title + "\n" if title else "") + f"labels: balance > {margin} excitatory, < -{margin} inhibitory, "
                 "else mixed", fontsize=10)
    return fig
