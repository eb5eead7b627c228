# ---
# jupyter:
#   labkit:
#     title: 'Lab 3 - ReLU: filter responses before and after the non-linearity'
# ---

# %% [markdown]
# # Lab 3 - ReLU: filter responses before and after the non-linearity
#
# In VGG16 every convolution is followed by a **ReLU**, `relu(z) = max(z, 0)`. It is what makes the
# network non-linear, but it also throws information away: every negative response becomes 0.
# This lab measures how much it throws away, and where, by comparing the **first** and the
# **last** conv-ReLU pair of the network, on real photos and on images synthesised to excite one
# filter (the gradient-ascent visualisation of the previous lab).
#
# Source: Duke ECE590 Lab 1, *Assignment 2(c)* (Hai Li and Yiran Chen).
#
# ## Where each question is answered
#
# | Handout question | Points | Answered in |
# |---|---|---|
# | Duke Assignment 2(c): visualise filter responses before and after the ReLU for the first and the last conv-ReLU pair; what does the ReLU do, does it behave differently in the first and the last layer, why? | 4 | **Question 2(c)**: `fraction_zeroed` (1 pt, autograded), `fraction_removed` (1 pt, autograded) and a written answer (2 pts) |
#
# Autograded cells have visible tests (run them as often as you like) and hidden tests that check
# your functions on other inputs when your notebook is graded. Before you hand in:
# *Kernel > Restart & Run All*, then check that every cell ran.

# %% kind="shared" id="colab_setup"

# %% [markdown]
# ## Settings
#
# Put your name in `STUDENT_NAME`. `MODEL_NAME = None` means the course default: VGG16, the
# handout's network, or `$LABKIT_MODEL` when set. Without VGG16's weights (no internet) labkit
# falls back to the bundled **EfficientNet-Lite0** and says so; every cell works with either.
# `FAST` (from `LABKIT_FAST=1`) uses fewer photos and optimisation steps so the notebook runs in
# a few minutes on a laptop CPU.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG16); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
PHOTOS = ["dog", "cat", "bee", "coffee"] if FAST else ["dog", "cat", "bee", "coffee", "rocket", "china",
                                                      "flower", "citrus", "bridge", "grace_hopper"]
SHOWN_FILTERS = 4  # filters per layer in the figures
FEATUREVIS = dict(steps=12, size=96) if FAST else {}  # overrides of the "handout" preset ({}: 30 steps, 224 px)

# %% id="load_model"
import matplotlib.pyplot as plt
import numpy as np
import torch

from labkit import featurevis, images, layers, plot
from labkit.models import load_model

torch.manual_seed(0)
model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
info = model.labkit
print(f"model: {info.name} ({info.source}) on {DEVICE}")

L_FIRST = info.presets["first_conv"]
L_LAST = info.presets["last_conv"]
if layers.layer_info(model, L_LAST).activation is None:  # e.g. ResNet: the last conv feeds an addition
    L_LAST = [row.name for row in layers.conv_layers(model) if row.activation][-1]
for role, name in (("first", L_FIRST), ("last", L_LAST)):
    row = layers.layer_info(model, name)
    act = type(model.get_submodule(row.activation)).__name__
    print(f"{role} conv-ReLU pair: {name} (handout index {row.index}, {row.channels} filters, output "
          f"{row.out_shape}, receptive field {row.receptive_field} px) -> {row.activation} ({act})")
print("On VGG16 these are features.0 -> features.1 and features.28 -> features.29 "
      "(the handout's layers 0/1 and 28/29).")

# %% [markdown]
# On VGG16 the ReLU directly follows each convolution. On EfficientNet-Lite0 a batch-norm layer
# sits in between and the non-linearity is **ReLU6**, `min(max(z, 0), 6)`: "before" is then the
# batch-normalised conv output, and the ReLU6 also clips very large responses at 6.
# `labkit.layers.pre_post_activations(model, x, layer)` returns the input and the output of the
# non-linearity that follows `layer`, and stops the forward pass there.

# %% [markdown]
# ## Responses to a real photo
#
# Each panel is one filter's response map to the first photo. Blue is negative, red positive,
# white zero, on one colour scale per filter so that the "before" and "after" rows can be
# compared. For the first layer we show filters `0..3`; for the last layer most filters are
# silent on any given photo, so we show the ones with the strongest response to it.

# %% id="fig_maps"
x = images.preprocess(PHOTOS, model)  # [P,3,H,W]
pre_first, post_first = layers.pre_post_activations(model, x, L_FIRST)  # each [P,C,h,w]
pre_last, post_last = layers.pre_post_activations(model, x, L_LAST)
assert layers.forward_hooks_count(model) == 0
first_filters = list(range(SHOWN_FILTERS))
last_filters = post_last[0].mean(dim=(1, 2)).topk(SHOWN_FILTERS).indices.tolist()

fig, axes = plt.subplots(4, SHOWN_FILTERS + 1, figsize=(2.6 * (SHOWN_FILTERS + 1), 10.4))
rows = [(L_FIRST, pre_first, post_first, first_filters), (L_LAST, pre_last, post_last, last_filters)]
for r, (name, pre, post, chosen) in enumerate(rows):
    for k, (what, maps) in enumerate((("before", pre), ("after", post))):
        ax_row = axes[2 * r + k]
        ax_row[0].imshow(images.deprocess(x[0], model))
        ax_row[0].set_title(f"{name}\n{what} the ReLU", fontsize=9)
        for ax, f in zip(ax_row[1:], chosen):
            limit = float(pre[0, f].abs().max()) or 1.0
            ax.imshow(maps[0, f].cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"filter {f}: {float((maps[0, f] > 0).float().mean()):.0%} > 0", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for: first-layer filters are edge and colour detectors. Before the ReLU a filter
# responds with both signs (a dark-to-light edge positive, the opposite edge negative); after it,
# only one polarity is left. In the last layer, a filter that fires on this photo does so in a few
# places, and most of its map, and most other filters, are negative before the ReLU and 0 after.
#
# The histograms below pool every response of each layer over all the photos.

# %% id="fig_histograms"
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for ax, (name, pre) in zip(axes, ((L_FIRST, pre_first), (L_LAST, pre_last))):
    values = pre.flatten().cpu().numpy()
    ax.hist(values, bins=200, color="tab:gray", log=True)
    ax.axvspan(values.min(), 0, color="tab:blue", alpha=0.15, label="set to 0 by the ReLU")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(f"{name}: {float((pre <= 0).float().mean()):.0%} of all responses <= 0")
    ax.set_xlabel("response before the ReLU")
    ax.legend(loc="upper right")
axes[0].set_ylabel("count (log scale)")
fig.tight_layout()
plt.show()


# %% [markdown]
# ## Question 2(c) - What does the ReLU do to the first and the last layer? (4 pts)
#
# The handout asks you to visualise filter responses before and after the ReLU of the first and
# the last conv-ReLU pair, to describe the ReLU's effect and whether it differs between the two
# layers, and to explain why. First, put numbers on it.
#
# ### Your code (2 of 4 pts, autograded: 1 pt per function)
#
# Both functions take a pre-activation tensor `pre` shaped `[N,C,H,W]` (N images, C filters) and
# return one value per filter, a tensor shaped `[C]`, pooling the N images and all positions:
#
# * `fraction_zeroed(pre)`: the fraction of responses the ReLU sets to 0, i.e. those `<= 0`;
# * `fraction_removed(pre)`: the fraction of the response's total magnitude the ReLU removes,
#   `sum(max(-pre, 0)) / sum(|pre|)` (0 for a filter whose responses are all 0).
#
# Do not change `pre` itself (it is used again below).

# %% kind="solution" id="relu_functions"
def fraction_zeroed(pre):
    """Per filter, the fraction of responses that a ReLU sets to zero.

    Args:
        pre: [N,C,H,W] responses before the ReLU.

    Returns:
        [C] tensor in [0, 1]: the share of the N*H*W values of each filter that are <= 0.
    """
    ### BEGIN SOLUTION
    return (pre <= 0).float().mean(dim=(0, 2, 3))
    ### END SOLUTION


def fraction_removed(pre):
    """Per filter, the fraction of the total response magnitude that a ReLU removes.

    Args:
        pre: [N,C,H,W] responses before the ReLU.

    Returns:
        [C] tensor in [0, 1]: sum(max(-pre, 0)) / sum(|pre|) over the N*H*W values of each
        filter (0 when they are all 0).
    """
    ### BEGIN SOLUTION
    removed = (-pre).clamp(min=0).sum(dim=(0, 2, 3))
    total = pre.abs().sum(dim=(0, 2, 3))
    return torch.where(total > 0, removed / total.clamp(min=1e-30), torch.zeros_like(total))
    ### END SOLUTION


# %% kind="tests" id="test_fraction_zeroed" points=1
# Two filters, one image, 2x2 positions.
_pre = torch.tensor([[[[-1.0, 2.0], [0.0, 3.0]],
                      [[-4.0, -4.0], [2.0, 0.0]]]])
_keep = _pre.clone()
_got = fraction_zeroed(_pre)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (2,), f"expected one value per filter, shape (2,), got {tuple(_got.shape)}"
assert torch.allclose(_got.float(), torch.tensor([0.5, 0.75])), (
    f"filter 0 has -1 and 0 zeroed out of 4 values (0.5), filter 1 has -4, -4 and 0 (0.75); got {_got.tolist()}. "
    "A response of exactly 0 is also 0 after the ReLU.")
assert torch.equal(_pre, _keep), "fraction_zeroed changed its input"
print("fraction_zeroed: visible tests passed")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(5)
_rand = torch.randn(3, 7, 5, 6, generator=_g) + torch.linspace(-2, 2, 7)[None, :, None, None]
_rand[0, 2] = 0.0  # exact zeros count as zeroed
_want = (_rand.numpy() <= 0).mean(axis=(0, 2, 3))
_got = fraction_zeroed(_rand)
assert np.allclose(np.asarray(_got.detach().cpu(), dtype=float), _want, atol=1e-6), (
    f"On a random [3,7,5,6] tensor your fractions {np.round(np.asarray(_got.detach().cpu()), 3)} differ "
    f"from the share of values <= 0 per filter {np.round(_want, 3)}: pool dims 0, 2 and 3.")
# The model's own non-linearity: every zero after it came from a response <= 0 before it.
_x = images.preprocess(["dog", "coffee"], model)
for _layer in (L_FIRST, L_LAST):
    _b, _a = layers.pre_post_activations(model, _x, _layer)
    _mine = fraction_zeroed(_b).to(_a.device)
    _real = (_a == 0).float().mean(dim=(0, 2, 3))
    assert torch.allclose(_mine, _real, atol=1e-4), (
        f"On {_layer}, your fractions do not match how often the model's own non-linearity outputs 0 "
        f"(largest difference {float((_mine - _real).abs().max()):.3g}).")
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% kind="tests" id="test_fraction_removed" points=1
_pre = torch.tensor([[[[-1.0, 2.0], [0.0, 3.0]],
                      [[-4.0, -4.0], [2.0, 0.0]]]])
_keep = _pre.clone()
_got = fraction_removed(_pre)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (2,), f"expected one value per filter, shape (2,), got {tuple(_got.shape)}"
assert torch.allclose(_got.float(), torch.tensor([1 / 6, 0.8])), (
    f"filter 0 loses |-1| out of 1+2+0+3 = 6 (1/6), filter 1 loses 8 out of 10 (0.8); got {_got.tolist()}")
assert torch.equal(_pre, _keep), "fraction_removed changed its input"
_silent = fraction_removed(torch.zeros(1, 3, 2, 2))
assert torch.allclose(_silent.float(), torch.zeros(3)), (
    f"a filter whose responses are all 0 loses nothing: expected 0, got {_silent.tolist()} (no NaN)")
print("fraction_removed: visible tests passed")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(6)
_rand = torch.randn(2, 9, 4, 5, generator=_g) * torch.linspace(0.1, 3, 9)[None, :, None, None] - 0.3
_r = _rand.numpy()
_want = np.clip(-_r, 0, None).sum(axis=(0, 2, 3)) / np.abs(_r).sum(axis=(0, 2, 3))
_got = fraction_removed(_rand)
assert np.allclose(np.asarray(_got.detach().cpu(), dtype=float), _want, rtol=1e-5, atol=1e-6), (
    f"On a random [2,9,4,5] tensor your fractions {np.round(np.asarray(_got.detach().cpu()), 3)} differ from "
    f"sum(max(-pre, 0)) / sum(|pre|) per filter {np.round(_want, 3)}.")
_b, _a = layers.pre_post_activations(model, images.preprocess(["bee"], model), L_LAST)
_bn = _b.detach().cpu().double().numpy()
_want = np.clip(-_bn, 0, None).sum(axis=(0, 2, 3)) / np.maximum(np.abs(_bn).sum(axis=(0, 2, 3)), 1e-30)
_got = np.asarray(fraction_removed(_b).detach().cpu(), dtype=float)
assert np.allclose(_got, _want, rtol=1e-4, atol=1e-6), (
    f"On the real responses of {L_LAST} your fractions differ from the definition "
    f"(largest difference {np.abs(_got - _want).max():.3g}).")
### END HIDDEN TESTS

# %% [markdown]
# ### Every filter of both layers
#
# Your functions, applied to all the photos: one dot per filter. Filters in the top right lose
# almost everything to the ReLU; filters near the bottom left pass almost everything through.

# %% id="fig_scatter"
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True, sharey=True)
for ax, (name, pre) in zip(axes, ((L_FIRST, pre_first), (L_LAST, pre_last))):
    zeroed, removed = fraction_zeroed(pre).cpu(), fraction_removed(pre).cpu()
    ax.scatter(zeroed, removed, s=8, alpha=0.6)
    ax.plot([0, 1], [0, 1], color="gray", linewidth=0.8, linestyle="--")
    ax.set_title(f"{name} ({len(zeroed)} filters): median {float(zeroed.median()):.0%} zeroed, "
                 f"{float(removed.median()):.0%} of magnitude removed", fontsize=10)
    ax.set_xlabel("fraction zeroed")
    print(f"{name}: fraction zeroed per filter: mean {float(zeroed.mean()):.2f}, median "
          f"{float(zeroed.median()):.2f}; filters never positive on these photos: {int((zeroed == 1).sum())}")
axes[0].set_ylabel("fraction of magnitude removed")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The handout's visualisation, before and after the ReLU
#
# The Duke notebook visualises a filter by gradient ascent on the input image, using the **mean
# absolute value** of the filter's output as the signal (`preset="handout"`). Here each filter is
# visualised twice: reading its response *before* the ReLU (top row) and *after* it (bottom row).
# Before the ReLU, a strongly *negative* response also counts, so the image may show the filter's
# opposite pattern; after it, only what makes the filter fire survives. The number under each
# image is the signal reached. The optimisation starts from random noise.

# %% id="fig_featurevis"
for name, chosen in ((L_FIRST, first_filters), (L_LAST, last_filters)):
    before = featurevis.visualize(model, name, chosen, relu="before", preset="handout", seed=0,
                                  progress=not FAST, **FEATUREVIS)
    after = featurevis.visualize(model, name, chosen, relu="after", preset="handout", seed=0,
                                 progress=not FAST, **FEATUREVIS)
    fig = plot.before_after_relu(before.images, after.images, chosen, layer=name,
                                 before_scores=before.activations, after_scores=after.activations)
    plt.show()
assert layers.forward_hooks_count(model) == 0

# %% [markdown]
# What to look for: in the first layer, "before" and "after" images show the same kind of simple
# pattern (a colour, an oriented edge or stripes), possibly with opposite polarity. In the last
# layer, look for images that stayed **gray noise with a signal of 0** after the ReLU: when a
# filter is negative everywhere on the starting noise, the ReLU outputs 0 *and its gradient is 0*,
# so gradient ascent cannot even start. How often does that happen in each layer, and why more in
# one than in the other? (On EfficientNet-Lite0 the ReLU6 also caps the signal at 6, with zero
# gradient above it.)
#
# ### Your answer (2 of 4 pts)
#
# Use the figures and numbers above (response maps, histograms, your two functions, the
# visualisations). What effect does the ReLU non-linearity have on the filter responses? Does it
# behave differently on the first and on the last convolutional layer? Explain your findings
# intuitively.

# %% [markdown] kind="answer" id="answer_2c" points=2
# *Model answer (instructors).* The ReLU keeps a filter's positive responses unchanged and sets
# the rest to 0: it turns a signed "matches / anti-matches" signal into a one-sided "is the pattern
# here" detector, makes the maps sparse, and removes the sign information (an edge and its
# opposite polarity are no longer both represented by one filter; networks learn paired filters
# for that). In the first layer, filters are small, roughly zero-mean edge and colour detectors, so
# responses are spread around 0 and a moderate fraction (a third to a half) is zeroed; little
# information is lost because the removed half is mostly available from other filters of opposite
# polarity, and before/after visualisations look alike. In the last layer the responses are
# strongly biased negative: most filters are negative almost everywhere on any given image (80-95%
# zeroed), and only the few filters whose high-level pattern (a part or object) is present fire,
# in a few places. There the ReLU acts as a gate that selects the evidence the classifier uses,
# and what it removes is mostly "this pattern is absent", which is why the before-ReLU
# visualisation (driven by |response|) can look unlike the after-ReLU one. It also blocks the
# gradient: a last-layer filter that is off everywhere on the noise start gets no gradient after
# the ReLU and its visualisation never leaves the noise (a "dead" unit for this input), whereas
# first-layer filters are on somewhere in almost any image. (On EfficientNet-Lite0 the ReLU6
# also clips responses above 6, capping the visualisation's signal at 6.)

# %% [markdown]
# ## Before you hand in
#
# *Kernel > Restart & Run All*, check that every figure appears and every visible test prints
# "passed", and that your name is in the settings cell. For the PDF report the Duke handout asks
# for, run `labkit report lab3_relu.ipynb --to pdf` in a terminal (or `labkit.report.export("pdf")`
# in a cell).
