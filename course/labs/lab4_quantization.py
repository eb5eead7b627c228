# ---
# jupyter:
#   labkit:
#     title: "Lab 4 \u2014 The impact of weight quantisation"
# ---

# %% [markdown]
# # Lab 4 — The impact of weight quantisation
#
# Model compression makes networks small enough for phones and edge devices. *Weight quantisation*
# stores every weight with fewer bits: 8-bit integers instead of 32-bit floats make the model 4x
# smaller, and integer arithmetic is cheaper in time and energy. But a weight that has to land on
# one of only 2^bits values is rounded, and rounding errors add up through the layers.
#
# In this lab you write the quantiser yourself (one scale per tensor, then one per output channel),
# then quantise the **whole network** at every width from 16 down to 2 bits and watch two things:
# whether the network still classifies photos the way the float model does, and whether the
# handout's filter still responds to the same things (its activation maps on the photos, and the
# feature visualisation of Lab 2 redone with the quantised weights).
#
# This lab follows **Assignment 3** of the Duke ECE590 Lab 1 handout. Points here: 11, of which 5
# are autograded.
#
# | Handout question | Points | Where it is answered | How it is graded |
# |---|---|---|---|
# | 3(a) Quantise to 8, 4, 3, 2 bits; how does the filter's response change? | 8 | **Question 3(a)**: *Step 1* `fake_quantize` (3 pts), *Step 2* `fake_quantize_per_channel` (2 pts), *Step 3* the sweep, *Your answer* (3 pts) | 5 autograded + 3 written |
# | 3(b) Pros and cons of quantisation (LASER metrics) | 3 | **Question 3(b)**: *Your answer* (3 pts) | 3 written |
#
# Cells with grey backgrounds are locked. Write code only in cells that say `YOUR CODE HERE`
# and answers only in cells that say `YOUR ANSWER HERE`.

# %% kind="shared" id="colab_setup"

# %% [markdown]
# ## Settings
#
# Put your name(s) in `STUDENT_NAME`. `MODEL_NAME = None` gives the course model, VGG16 (set the
# environment variable `LABKIT_MODEL` or write a name such as `"efficientnet_lite0"` to change it).
# When VGG16's weights are not on this machine, labkit says so and uses the offline
# EfficientNet-Lite0, whose weights ship with labkit: everything in this lab works with either.
# `FAST` (from `LABKIT_FAST=1`) uses fewer photos, steps and pixels so the notebook runs on a
# laptop CPU in minutes.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG16); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
BITS = (16, 8, 6, 5, 4, 3, 2)  # the bit widths of the sweep (the handout's 8, 4, 3, 2 and a few between)
VIS_STEPS = 12 if FAST else None  # feature-visualisation steps (None: labkit's default)
VIS_SIZE = 64 if FAST else None  # feature-visualisation image side in px (None: labkit's default)

# %% id="setup"
import matplotlib.pyplot as plt
import torch

from course import quant_study as qs
from course.roles import roles_for
from labkit.layers import layer_info
from labkit.models import load_model
from labkit.quantize import model_size_mb, snr_db

model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
roles = roles_for(model)
L_Q, F_Q = roles.quant_layer, roles.quant_channel  # VGG16: the handout's layer 24, filter 4
print(f"model: {model.labkit.name} on {DEVICE}")
print(f"The handout's layer 24 on VGG16 is features.24; on {model.labkit.name} we use {L_Q} "
      f"(handout index {layer_info(model, L_Q).index}), channel {F_Q}.")

photos, PHOTO_NAMES, LABELS = qs.photo_set(model)  # every shipped photo: [N,3,224,224], normalised for this model
print(f"{len(PHOTO_NAMES)} photos for checking predictions (every photo that ships with labkit"
      + (", each with its ImageNet label)." if LABELS is not None else ")."))


# %% [markdown]
# ## Background — fake quantisation
#
# *Symmetric, per-tensor* quantisation to `bits` bits picks one step size (scale) for a whole weight
# tensor `t`, so that the largest weight lands on the largest integer:
#
# $$\text{scale} = \frac{\max |t|}{2^{\text{bits}-1} - 1}, \qquad
# q = \operatorname{clamp}\!\left(\operatorname{round}\!\left(\frac{t}{\text{scale}}\right),\,
# -2^{\text{bits}-1},\, 2^{\text{bits}-1}-1\right), \qquad \hat t = q \cdot \text{scale}.$$
#
# The integers `q` are what a deployed model stores (with one float `scale` per tensor); `t̂`
# ("t hat") is what they stand for. *Fake* quantisation computes `t̂` and keeps working in float32,
# so we can study the effect of the rounding without integer kernels. At 8 bits the integers run
# from -128 to 127; at 2 bits only -1, 0 and 1 are used (-2 is never reached because
# `max|t|` maps to +1 and rounding is symmetric): every weight becomes `-scale`, `0` or `+scale`.
# A weight rounds to **zero** whenever `|t| <= scale / 2`.
#
# *Per-channel* quantisation does the same with one scale for each output channel `c` of a conv
# weight `[C_out, C_in, kh, kw]`: $\text{scale}_c = \max |t_c| / (2^{\text{bits}-1} - 1)$ over that
# channel's own weights, so one large filter no longer sets the step for all the others.

# %% [markdown]
# ## Question 3(a) — Quantise the weights to 8, 4, 3 and 2 bits: what happens to the filter's response? (8 pts)
#
# *Handout:* configure the quantisation precision of the weights (bits = 8, 4, 3, 2), run the
# visualisation of Assignment 2 again, and see how the response of the chosen filter (layer 24,
# filter 4 of VGG16) changes. How does it change when the precision goes down from 8 to 2 bits?
# Plot the results and explain your findings.
#
# Points: **3** for `fake_quantize` (Step 1) and **2** for `fake_quantize_per_channel` (Step 2), both
# autograded, and **3** for your written answer.
#
# ### Step 1 — Write `fake_quantize` (3 pts, autograded)
#
# Implement the formula above for one tensor with plain torch operations (`abs`, `max`, `round`,
# `clamp`). **Off limits** (the hidden tests make them raise while your function runs, so a
# wrapper around them earns nothing): `labkit.quantize` (`fake_quantize`, `quant_params`,
# `quantize_model`, `binarize`), `course.quant_study`, `torch.fake_quantize_per_tensor_affine`,
# `torch.fake_quantize_per_channel_affine`, `torch.quantize_per_tensor`, `torch.quantize_per_channel`
# and `torch.ao.quantization`. The tests compare your result with these references.
#
# * the result has the shape, dtype and device of `t`, and `t` itself is not changed;
# * an all-zero tensor has `max|t| = 0`: return zeros (not NaN);
# * `torch.round` rounds halves to even, like the integer hardware does; keep it.

# %% kind="solution" id="fake_quantize"
def fake_quantize(t, bits):
    """Symmetric per-tensor fake quantisation of ``t`` to ``bits`` bits.

    Args:
        t: float tensor of any shape (e.g. a conv weight [C_out, C_in, kh, kw]).
        bits: integer >= 2.

    Returns:
        Tensor like ``t`` holding ``clamp(round(t / scale), -2**(bits-1), 2**(bits-1) - 1) * scale``
        with ``scale = max|t| / (2**(bits-1) - 1)``; all zeros if ``t`` is all zeros.
    """
    ### BEGIN SOLUTION
    qmax = 2 ** (bits - 1) - 1
    qmin = -(2 ** (bits - 1))
    scale = t.abs().max() / qmax
    if scale == 0:  # all-zero tensor: nothing to round, and no division by zero
        return torch.zeros_like(t)
    return torch.clamp(torch.round(t / scale), qmin, qmax) * scale
    ### END SOLUTION


# %% id="weights_histogram"
# Your quantiser on the weights of the layer we visualise: the histogram of the float weights
# (grey, log scale) and the few values that remain after quantisation (red lines).
weight = model.get_submodule(L_Q).weight.detach().cpu()
fig, axes = plt.subplots(1, 4, figsize=(14, 2.8), sharey=True, constrained_layout=True)
for ax, bits in zip(axes, (8, 4, 3, 2)):
    q = fake_quantize(weight, bits)
    levels = q.unique()
    ax.vlines(levels.numpy(), 0.8, weight.numel(), color="tab:red", zorder=0,
              lw=0.5 if len(levels) > 20 else 1.2, alpha=0.3 if len(levels) > 20 else 1.0)
    ax.hist(weight.flatten().numpy(), bins=200, color="0.45", log=True)
    ax.set_title(f"{bits} bits: {len(levels)} values, {torch.count_nonzero(q == 0) / q.numel():.1%} are 0,\n"
                 f"SNR {snr_db(weight, q):.1f} dB", fontsize=10)
    ax.set_xlabel("weight value")
axes[0].set_ylabel("number of weights")
fig.suptitle(f"{L_Q}: {weight.numel():,} weights, max |w| = {weight.abs().max():.3g}")
plt.show()

# %% [markdown]
# The titles give, for each width, how many distinct values remain, which fraction of the weights
# rounds to exactly **zero** (all those with `|w| <= scale / 2`), and the SNR (signal-to-noise ratio,
# 10·log10 of weight power over rounding-error power; each bit removed halves the step, which costs
# about 6 dB). Read off from your own titles at which width most of this layer's weights are zero.

# %% kind="tests" id="test_fake_quantize" points=3
# Visible tests: random tensors, and this model's real weights, against labkit and PyTorch.
import torch
from labkit.quantize import fake_quantize as labkit_fake_quantize


def _close(yours, reference, bits, name):
    # Dividing by the scale or multiplying by 1/scale can move an exact .5 tie by one step, so a
    # tiny fraction (< 0.1 %) of values may differ by exactly one step; nothing may differ by more.
    assert torch.is_tensor(yours), f"{name}: fake_quantize must return a tensor, got {type(yours).__name__}"
    assert yours.shape == reference.shape, f"{name}: shape {tuple(yours.shape)}, expected {tuple(reference.shape)}"
    assert torch.isfinite(yours).all(), f"{name}: the result contains NaN or inf"
    step = reference.abs().max().item() / (2 ** (bits - 1) - 1) or 1.0
    diff = (yours.detach().float() - reference.float()).abs()
    off = (diff > 1e-4 * step).float().mean().item()
    assert diff.max().item() <= 1.001 * step and off < 1e-3, (
        f"{name} at {bits} bits: {off:.2%} of the values differ from the reference (largest difference "
        f"{diff.max().item():.3g}, one step is {step:.3g}). Check the scale max|t|/(2**(bits-1)-1), "
        f"the rounding and the clamp range [-2**(bits-1), 2**(bits-1)-1]."
    )


torch.manual_seed(0)
t = torch.randn(64, 32, 3, 3)
for bits in (8, 4, 3, 2):
    scale = t.abs().max().item() / (2 ** (bits - 1) - 1)
    torch_ref = torch.fake_quantize_per_tensor_affine(t, scale, 0, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    yours = fake_quantize(t, bits)
    _close(yours, torch_ref, bits, "random [64,32,3,3] vs torch.fake_quantize_per_tensor_affine")
    _close(yours, labkit_fake_quantize(t, bits), bits, "random [64,32,3,3] vs labkit")
    levels = yours.unique().numel()
    assert levels <= 2 ** bits - 1, f"{bits} bits allow at most {2 ** bits - 1} values here, you have {levels}"

w_real = model.get_submodule(L_Q).weight.detach().cpu()
before = w_real.clone()
for bits in (8, 2):
    _close(fake_quantize(w_real, bits), labkit_fake_quantize(w_real, bits), bits, f"real weights of {L_Q}")
assert torch.equal(w_real, before), "fake_quantize changed its input tensor; work on a copy"
print("fake_quantize agrees with PyTorch and labkit on random and real weights.")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["fake_quantize"], forbid=["labkit.quantize", "course.quant_study", "torch.fake_quantize_per_tensor_affine", "torch.fake_quantize_per_channel_affine", "torch.quantize_per_tensor", "torch.quantize_per_channel", "torch.ao.quantization"])
torch.manual_seed(1)
for shape in [(7,), (5, 1, 3), (2, 3, 1, 1, 4), (1000,)]:
    x = torch.randn(*shape) * 0.05
    for bits in (2, 3, 5, 7, 16):
        _close(fake_quantize(x, bits), labkit_fake_quantize(x, bits), bits, f"shape {shape}")
zeros = torch.zeros(4, 3, 3, 3)
out = fake_quantize(zeros, 4)
assert torch.is_tensor(out) and out.shape == zeros.shape and torch.isfinite(out).all() and (out == 0).all(), \
    "an all-zero tensor must come back as zeros (max|t| = 0: avoid dividing by it)"
x = torch.randn(300) * 3
for bits in (3, 6):
    q = fake_quantize(x, bits)
    assert torch.allclose(fake_quantize(-x, bits), -q), "symmetric quantisation must satisfy fq(-t) = -fq(t)"
    assert abs(q.abs().max().item() - x.abs().max().item()) < 1e-5 * x.abs().max().item(), \
        "the largest |weight| must stay exactly representable (it sets the scale)"
w_first = model.get_submodule(roles.first_conv).weight.detach().cpu()
for bits in (3, 4):
    _close(fake_quantize(w_first, bits), labkit_fake_quantize(w_first, bits), bits, "real first-layer weights")
### END HIDDEN TESTS

# %% [markdown]
# ### Step 2 — Write `fake_quantize_per_channel` (2 pts, autograded)
#
# The same quantiser with one scale per output channel (axis 0): `scale[c] = max|t[c]| / (2**(bits-1) - 1)`.
# Compute all the scales at once (no Python loop over channels), with the shape `[C, 1, 1, ...]`
# so that they broadcast against `t`. A channel whose weights are all zero must come back as
# zeros. The same calls as in Step 1 are **off limits**. (Calling your `fake_quantize` once per
# channel in a loop would work, but is slow on big layers and misses the point: vectorise.)

# %% kind="solution" id="fake_quantize_per_channel"
def fake_quantize_per_channel(t, bits):
    """Symmetric fake quantisation of ``t`` with one scale per slice along axis 0 (output channels).

    Args:
        t: float tensor with at least one dimension, e.g. a conv weight [C_out, C_in, kh, kw].
        bits: integer >= 2.

    Returns:
        Tensor like ``t``: ``clamp(round(t / scale), -2**(bits-1), 2**(bits-1) - 1) * scale`` with
        ``scale[c] = max|t[c]| / (2**(bits-1) - 1)``; channels that are all zero stay zero.
    """
    ### BEGIN SOLUTION
    qmax = 2 ** (bits - 1) - 1
    qmin = -(2 ** (bits - 1))
    peak = t.abs().reshape(t.shape[0], -1).amax(dim=1)
    scale = (peak / qmax).reshape(-1, *([1] * (t.dim() - 1)))
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))  # all-zero channel: 0 / 1 = 0
    return torch.clamp(torch.round(t / safe), qmin, qmax) * safe
    ### END SOLUTION

# %% kind="tests" id="test_fake_quantize_per_channel" points=2
# Visible tests: a hand-made tensor, random tensors and this model's real weights against PyTorch and labkit.
import torch
from labkit.quantize import fake_quantize as labkit_fake_quantize


def _close_pc(yours, reference, bits, name):
    assert torch.is_tensor(yours) and yours.shape == reference.shape, f"{name}: wrong type or shape"
    assert torch.isfinite(yours).all(), f"{name}: the result contains NaN or inf"
    steps = reference.abs().reshape(reference.shape[0], -1).amax(dim=1) / (2 ** (bits - 1) - 1)
    steps = torch.where(steps > 0, steps, torch.ones_like(steps)).reshape(-1, *([1] * (reference.dim() - 1)))
    diff = (yours.detach().float() - reference.float()).abs() / steps
    off = (diff > 1e-4).float().mean().item()
    assert diff.max().item() <= 1.001 and off < 1e-3, (
        f"{name} at {bits} bits: {off:.2%} of the values differ from the reference (up to {diff.max().item():.2f} "
        f"steps). Check that every output channel gets its own scale max|t[c]|/(2**(bits-1)-1).")


hand = torch.tensor([[1.0, -0.5, 0.24], [10.0, 2.4, -2.6], [0.0, 0.0, 0.0]])
got = fake_quantize_per_channel(hand, 3)  # qmax = 3: steps 1/3, 10/3 and none
want = torch.tensor([[1.0, -2 / 3, 1 / 3], [10.0, 10 / 3, -10 / 3], [0.0, 0.0, 0.0]])
assert torch.allclose(got, want, atol=1e-6), f"hand-made rows at 3 bits: expected {want.tolist()}, got {got.tolist()}"
torch.manual_seed(0)
t = torch.randn(16, 8, 3, 3) * torch.logspace(-2, 0, 16).view(16, 1, 1, 1)
for bits in (8, 4, 2):
    qmax = 2 ** (bits - 1) - 1
    scales = t.abs().amax(dim=(1, 2, 3)) / qmax
    torch_ref = torch.fake_quantize_per_channel_affine(t, scales, torch.zeros(16, dtype=torch.int32), 0, -qmax - 1, qmax)
    _close_pc(fake_quantize_per_channel(t, bits), torch_ref, bits, "random [16,8,3,3] vs torch")
w_real = model.get_submodule(L_Q).weight.detach().cpu()
for bits in (8, 3):
    _close_pc(fake_quantize_per_channel(w_real, bits), labkit_fake_quantize(w_real, bits, per_channel=True), bits,
              f"real weights of {L_Q}")
print("fake_quantize_per_channel agrees with PyTorch and labkit.")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["fake_quantize_per_channel"], forbid=["labkit.quantize", "course.quant_study", "torch.fake_quantize_per_tensor_affine", "torch.fake_quantize_per_channel_affine", "torch.quantize_per_tensor", "torch.quantize_per_channel", "torch.ao.quantization"])
torch.manual_seed(2)
for shape in [(5,), (3, 7), (6, 1, 5, 5), (4, 2, 1, 1)]:
    x = torch.randn(*shape) * torch.rand(shape[0]).view(-1, *([1] * (len(shape) - 1)))
    for bits in (2, 5, 8, 12):
        _close_pc(fake_quantize_per_channel(x, bits), labkit_fake_quantize(x, bits, per_channel=True), bits,
                  f"shape {shape}")
x = torch.randn(4, 3, 3, 3)
x[2] = 0
out = fake_quantize_per_channel(x, 4)
assert torch.isfinite(out).all() and (out[2] == 0).all(), "an all-zero channel must stay zero (no division by 0)"
assert torch.allclose(fake_quantize_per_channel(-x, 4), -out), "symmetric: fq(-t) = -fq(t)"
w_first = model.get_submodule(roles.first_conv).weight.detach().cpu()
_close_pc(fake_quantize_per_channel(w_first, 4), labkit_fake_quantize(w_first, 4, per_channel=True), 4,
          "real first-layer weights")
### END HIDDEN TESTS

# %% [markdown]
# ### Step 3 — The whole network at every width
#
# For each bit width, `course.quant_study` does what your functions do to every conv and linear
# weight of a copy of the model (`labkit.quantize.quantize_model`; biases and BatchNorm stay in
# float, as they do in integer inference) and compares the copy with the float model on **every
# shipped photo**. Each measure gives the same number on every run:
#
# * **size**: the storage of the parameters at that width;
# * **weights -> 0**: the fraction of all quantised weights that round to exactly zero;
# * **top-1 agreement**: on which fraction of the photos the quantised model's top class is the
#   float model's (and, when the photos carry labels, the **top-1 accuracy**);
# * **p(float's class)**: the probability the quantised model gives to the float model's answer,
#   averaged over the photos: 1 is confident agreement, 1/1000 is a guess among the 1000 classes;
# * **map correlation**: the correlation between the handout filter's activation maps under float
#   and quantised weights, over every photo and position: 1 = it responds to the same places;
#   0 = no relation (also when the quantised filter is dead, its map constant);
# * **mean |act|**: the filter's mean |activation|, Lab 2's objective, on the photos, on the float
#   model's feature visualisation, and on the quantised model's own visualisation.
#
# The pictures are the feature visualisation of Lab 2 (maximising mean |activation|), redone at each
# width from the same random start. They show what the quantised filter now *prefers*; because the
# optimisation is chaotic, two pictures can differ even when the filter barely changed, so judge
# the weights' effect by the map correlation and the response to the float picture, and use the
# pictures to see *how* the preference changed.

# %% id="sweep"
ref = qs.reference(model, photos, L_Q, F_Q, labels=LABELS, vis_steps=VIS_STEPS, vis_size=VIS_SIZE)
table = qs.study(model, BITS, photos, ref, visualise=True)
table

# %% id="sweep_figure"
qs.study_figure(table, title=f"{model.labkit.name}: {L_Q} channel {F_Q}, per-tensor scales, "
                             f"{len(PHOTO_NAMES)} photos")
plt.show()
collapse = qs.collapse_bits(table)
print(f"Collapse (fewer than {qs.COLLAPSE_THRESHOLD:.0%} of the {len(PHOTO_NAMES)} photos keep the float top-1): "
      + (f"first at {collapse} bits." if collapse else "not within the widths measured."))
kept = [r["bits"] for r in table if r["bits"] >= (qs.keeps_bits(table) or 99)]
print("At least 95% agreement (every width from the top down): " + ", ".join(f"{b} bits" for b in kept)
      if kept else "Even the widest measured width loses more than 5% agreement.")

# %% [markdown]
# **What to look for.** Follow one column of the table down the widths and find where it changes:
# the printed collapse width is where the classifier stops agreeing with the float model. Compare
# it with where the map correlation drops and with the fraction of zeroed weights. The filter's
# response depends on every quantised layer before it, so errors compound with depth.
#
# *Why not the KL divergence?* A common measure, KL(float ‖ quantised) of the class
# probabilities, is not monotone in the bit width: a collapsed model that outputs an almost
# uniform distribution has a KL of at most log 1000 ≈ 6.9 nats minus the float model's entropy,
# while a model that is confidently wrong has a larger one. So the KL can *drop* again at 2 bits
# although the model got worse. The probability of the float model's class reads plainly instead.
#
# One scale for a whole tensor is a crude choice: a single large weight makes the step coarse for
# all the others. Real int8 deployments use one scale **per output channel** (your Step 2). The
# same sweep with per-channel scales, without the pictures:

# %% id="per_channel"
per_channel = qs.study(model, BITS, photos, ref, per_channel=True)
print(f"{'bits':>4}  {'agreement':>21}  {'weights -> 0':>21}  {'map correlation':>21}")
print(f"{'':>4}  {'tensor':>10} {'channel':>10}  {'tensor':>10} {'channel':>10}  {'tensor':>10} {'channel':>10}")
for a, b in zip(table, per_channel):
    print(f"{a['bits']:>4}  {a['top1_agreement']:>10.1%} {b['top1_agreement']:>10.1%}  "
          f"{a['zero_fraction']:>10.1%} {b['zero_fraction']:>10.1%}  "
          f"{a['map_correlation']:>10.3f} {b['map_correlation']:>10.3f}")
for name, rows in (("per-tensor", table), ("per-channel", per_channel)):
    bits = qs.collapse_bits(rows)
    print(f"{name}: collapse " + (f"first at {bits} bits" if bits else "not within the widths measured"))

# %% [markdown]
# ### Your answer to Question 3(a) (3 pts)
#
# Answer with the numbers your notebook printed:
#
# 1. How does the filter's response change as the precision goes from 8 bits down to 2 bits? Use
#    the map correlation, the mean |activation| on the float picture, and the pictures.
# 2. At which width does the network collapse (the printed width), and does the filter's map
#    correlation break down at the same width, earlier or later?
# 3. Why? Use the fraction of weights rounded to zero, what a 2-bit layer computes, and the fact
#    that the filter sits deep in the network.
# 4. Does per-channel scaling move the collapse, and why?

# %% [markdown] kind="answer" id="answer_3a" points=3
# *Model answer (instructors).* Phrased by the printed numbers; the executed solution on the bundled
# EfficientNet-Lite0 prints them for its photo set (at the time of writing, per-tensor: agreement
# about 90 % or more at 8 bits, collapse first at 5 bits, about 80 % of the weights zero at 3 bits
# and nearly all at 2; per-channel: collapse one width later, at 4 bits). VGG16 was not measured
# here (no weights offline); expect its cliff to come at a different width, so grade against the
# numbers in the student's own notebook, not against these.
# (1) From 16 to 8 bits the map correlation stays near 1 and the response to the float picture
# near the float value: the filter still responds to the same places. Below that the map
# correlation falls width by width, and the response and the picture drift (the filter prefers
# another pattern); at 2 bits the map correlation is near 0 (or exactly 0 when the filter is dead,
# mean |act| 0 and a flat picture). (2) The collapse width is where the agreement falls below 50 %;
# the map correlation has usually already fallen well below 1 there (it drops gradually, the
# agreement falls off a cliff), so the filter degrades at the same width or a little earlier.
# (3) One scale per tensor is set by the largest weight, step = max|w| / (2^(bits-1) - 1); most
# weights are far below the maximum, so at low widths most round to zero (the printed fraction) and
# a 2-bit layer is ternary {-s, 0, +s} with almost every weight 0. The filter sits deep in the
# network, so its input is already distorted by every quantised layer before it: errors compound.
# (4) Per-channel scales give each filter its own step (small filters, e.g. depthwise convs, are no
# longer rounded to zero by one large filter elsewhere): fewer zeroed weights and a higher SNR, which
# typically moves the collapse down by about one bit, but does not remove it.
#
# **Rubric (3 pts, 1 point each; half points allowed):**
# - 1 pt: describes the filter's change across the widths with the student's own numbers (map
#   correlation and/or response to the float picture), not only the pictures.
# - 1 pt: names the printed collapse width and compares it with where the filter breaks (same,
#   earlier or later), consistently with the student's table.
# - 1 pt: explains why, using zeroed weights / the ternary 2-bit layer / error compounding with
#   depth, and states correctly from the per-channel table whether per-channel scales moved the
#   collapse and why. A claim that contradicts the student's printed numbers earns 0 for that point.

# %% [markdown]
# ## Question 3(b) — Pros and cons of quantisation (3 pts)
#
# *Handout:* DNN models are very sensitive to the precision of their weights; below some level the
# accuracy drops quickly. In practice 8 bits is common; the best choice depends on the model and
# data. Based on your results, what are the pros and cons of quantisation? Use the **LASER**
# metrics from Lecture 1 as the reference of your analysis.
#
# Some numbers to reason with. The parameter storage of this model at each width:

# %% id="sizes"
n_params = sum(p.numel() for p in model.parameters())
print(f"{model.labkit.name}: {n_params / 1e6:.1f} M parameters")
for bits in (32, 16, 8, 4, 3, 2):
    print(f"  {bits:>2}-bit weights: {model_size_mb(model, bits):8.1f} MB")

# %% [markdown]
# For scale: VGG16 has 138 M parameters (553 MB in float32, 138 MB at 8 bits) and
# EfficientNet-Lite0 4.7 M (19 MB, 4.7 MB at 8 bits). Moving data costs more energy than computing
# with it: in a 45 nm chip (Horowitz, ISSCC 2014) a 32-bit read from off-chip DRAM costs about
# 640 pJ, a 32-bit float multiply about 3.7 pJ and an 8-bit integer multiply about 0.2 pJ; an 8-bit
# add costs about 0.03 pJ against 0.9 pJ for a 32-bit float add. A model that fits in on-chip memory
# avoids most DRAM traffic altogether.
#
# ### Your answer to Question 3(b) (3 pts)
#
# Discuss the pros and cons of weight quantisation along the LASER metrics from Lecture 1 (cover at
# least accuracy, model size / memory, speed / latency and energy). Support each
# point with your own results (sizes, top-1 agreement, collapse width, map correlation) or the
# numbers above, say which bit width you would deploy this model with and why, and name one thing
# that decides whether quantisation really makes a model faster on a given device.

# %% [markdown] kind="answer" id="answer_3b" points=3
# *Model answer (instructors).* Pros: **size/memory**: 8-bit weights are 4x smaller than float32 (the
# printed sizes; VGG16 553 -> 138 MB, EfficientNet-Lite0 19 -> 5 MB), so models fit phones,
# microcontrollers or on-chip SRAM and load faster. **Energy**: data movement dominates (a DRAM read
# costs about 640 pJ vs 0.2 pJ for an 8-bit multiply), so fewer bytes per weight and integer
# arithmetic (about 20x cheaper per multiply-add than float32) save energy, i.e. battery.
# **Speed/latency**: integer units do more operations per cycle (SIMD, int8 tensor cores) and
# memory-bound layers get 4x more weights per transfer. **Accuracy** is nearly unchanged at 8 bits
# (the printed agreement at 8 bits, per-channel scales at least as good). Cons: **accuracy** falls
# off a cliff below a model-dependent width (the printed collapse width), so lower widths need
# per-channel scales, calibration or quantisation-aware training; internal features change (the map
# correlation falls before the classifier collapses); **speed** gains need hardware and kernels for
# that width (fake quantisation is no faster; 3-bit has no native support and needs unpacking), and
# activations must be quantised too for integer-only inference. Deploy at 8 bits with per-channel
# weight scales, or at the lowest width that the student's table shows keeping about 100 %
# agreement. Whether it really gets faster depends on the device's support for low-precision
# arithmetic and on whether the model is memory-bound or compute-bound there.
#
# **Rubric (3 pts, 1 point each; half points allowed):**
# - 1 pt: at least two pros (size/memory, energy, speed) each tied to a number (the printed sizes or
#   the energy figures above).
# - 1 pt: at least two cons (accuracy cliff at the printed collapse width, need for hardware/kernel
#   support or quantised activations, engineering/validation effort), the accuracy one backed by the
#   student's own agreement numbers.
# - 1 pt: a deployment width justified by the student's own table (not only "8 bits is common"),
#   and one correct factor that decides whether quantisation speeds up a given device.

# %% [markdown]
# ## Explore (ungraded): bit width and scale granularity
#
# Move the slider to any width from 2 to 16 bits and switch between one scale per tensor and one
# per output channel. The explorer quantises a copy of the model at that setting and shows the
# studied layer's weight histogram with the values that remain, the filter's feature
# visualisation under those weights, and the agreement with the float model over the photos.
# Each setting is computed once (a progress bar shows while it runs) and kept, so going back is
# instant. Where no widget frontend runs (an exported report), the picture of the current setting
# stays in the output.

# %% id="explorer"
from course.explorers.lab4 import QuantExplorer

QuantExplorer(model, photos, ref, bits=qs.collapse_bits(table) or 4)
