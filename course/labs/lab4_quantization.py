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
# In this lab you write the quantiser yourself, then quantise the **whole network** at 16, 8, 4, 3
# and 2 bits and watch two things: what one filter responds to (the feature visualisation of
# Lab 2, redone with the quantised weights) and whether the network still classifies photos the
# same way.
#
# This lab follows **Assignment 3** of the Duke ECE590 Lab 1 handout (10 points).
#
# | Handout question | Points | Where it is answered | How it is graded |
# |---|---|---|---|
# | 3(a) Quantise to 8, 4, 3, 2 bits; how does the filter's response change? | 5 | **Question 3(a)**: *Step 1* `fake_quantize` (2 pts), *Step 2* sweep figure, *Your answer* (3 pts) | 2 autograded + 3 written |
# | 3(b) Pros and cons of quantisation (LASER metrics) | 5 | **Question 3(b)**: *Your answer* (5 pts) | 5 written |
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
BITS = (16, 8, 4, 3, 2)  # the bit widths of the sweep
VIS_STEPS = 12 if FAST else None  # feature-visualisation steps (None: labkit's default)
VIS_SIZE = 64 if FAST else None  # feature-visualisation image side in px (None: labkit's default)

# %% id="setup"
import matplotlib.pyplot as plt
import torch

from labkit.images import preprocess, sample_images
from labkit.layers import layer_info
from labkit.models import load_model
from labkit.plot import sweep_figure
from labkit.quantize import model_size_mb, quantize_model, snr_db, sweep

model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
presets = model.labkit.presets
L_Q, F_Q = presets["quant_layer"], presets["quant_filter"]  # VGG16: layer 24, filter 4
print(f"model: {model.labkit.name} on {DEVICE}")
print(f"The handout's layer 24 on VGG16 is features.24; on {model.labkit.name} we use {L_Q} "
      f"(handout index {layer_info(model, L_Q).index}), filter {F_Q}.")

PHOTO_NAMES = ["cat", "dog", "coffee", "bee"] if FAST else list(sample_images())
photos = preprocess(PHOTO_NAMES, model)  # [N,3,224,224], normalised for this model
print(f"{len(PHOTO_NAMES)} photos for checking predictions: {', '.join(PHOTO_NAMES)}")


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

# %% [markdown]
# ## Question 3(a) — Quantise the weights to 8, 4, 3 and 2 bits: what happens to the filter's response? (5 pts)
#
# *Handout:* configure the quantisation precision of the weights (bits = 8, 4, 3, 2), run the
# visualisation of Assignment 2 again, and see how the response of the chosen filter (layer 24,
# filter 4 of VGG16) changes. How does it change when the precision goes down from 8 to 2 bits?
# Plot the results and explain your findings.
#
# Points: **2** for `fake_quantize` (autograded, Step 1) and **3** for your written answer.
#
# ### Step 1 — Write `fake_quantize` (2 pts, autograded)
#
# Implement the formula above for one tensor. Use only torch operations (`abs`, `max`, `round`,
# `clamp`); do not call labkit or `torch.fake_quantize_*` (the tests compare you with both).
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
    ax.set_title(f"{bits} bits: {len(levels)} values, SNR {snr_db(weight, q):.1f} dB", fontsize=10)
    ax.set_xlabel("weight value")
axes[0].set_ylabel("number of weights")
fig.suptitle(f"{L_Q}: {weight.numel():,} weights, max |w| = {weight.abs().max():.3g}")
plt.show()

# %% [markdown]
# Most weights are tiny compared with the largest one, and the scale is set by the largest. At 4
# bits and below the step is so coarse that most weights round to **zero**: the SNR
# (signal-to-noise ratio, 10·log10 of weight power over rounding-error power) drops by about
# 6 dB per bit removed.

# %% kind="tests" id="test_fake_quantize" points=2
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
w_first = model.get_submodule(presets["first_conv"]).weight.detach().cpu()
for bits in (3, 4):
    _close(fake_quantize(w_first, bits), labkit_fake_quantize(w_first, bits), bits, "real first-layer weights")
### END HIDDEN TESTS

# %% [markdown]
# ### Step 2 — The whole network at 16, 8, 4, 3 and 2 bits
#
# `labkit.quantize.sweep` does, for each bit width, what you just did for one tensor, to every
# conv and linear weight of a copy of the model (`quantize_model`; biases and BatchNorm stay in
# float, as they do in integer inference). Then it measures:
#
# * **size**: the storage of the parameters at that width (`model_size_mb`);
# * **top-1 agreement**: on how many photos the quantised model's top class is the float model's;
# * **KL**: how far the quantised model's class probabilities are from the float model's (nats; 0 = same);
# * **weight SNR**: rounding noise of the weights, in dB (about 6 dB per bit);
# * **the feature visualisation** of the handout's filter (Lab 2's method, same random start for every
#   width, so only the weights differ), its **similarity** to the float model's picture (pixel
#   correlation, 1 = same picture) and the **activation** it reaches.

# %% id="sweep"
table = sweep(model, bits=BITS, images=photos, layer=L_Q, filter=F_Q, vis_steps=VIS_STEPS, vis_size=VIS_SIZE)
table

# %% id="sweep_figure"
sweep_figure(table, title=f"{model.labkit.name}: {L_Q} filter {F_Q} with quantised weights")
plt.show()

# %% [markdown]
# **What to look for.** At 16 bits the picture (and every prediction) is the float model's: the
# rounding error is far below anything the network notices. At 8 bits the picture may change in
# detail while predictions mostly survive. Somewhere below that the picture falls apart: the
# filter's pattern is replaced by noise, a flat image, or the activation collapses to zero,
# and at the same point the classifier stops agreeing with the float model. The *response* of a
# deep filter depends on every quantised layer before it, so errors compound with depth.
#
# One scale for a whole tensor is a crude choice: a single large weight makes the step coarse for
# all the others. Real int8 deployments use one scale **per output channel**. The same sweep
# with per-channel scales, without the pictures (fast):

# %% id="per_channel"
per_channel = sweep(model, bits=BITS, images=photos, layer=False, per_channel=True)
print("top-1 agreement with the float model, per bit width:")
for a, b in zip(table, per_channel):
    print(f"  {a['bits']:>2} bits: per-tensor {a['top1_agreement']:6.1%}   per-channel {b['top1_agreement']:6.1%}"
          f"   (weight SNR {a['weight_snr_db']:5.1f} dB vs {b['weight_snr_db']:5.1f} dB)")

# %% [markdown]
# ### Your answer to Question 3(a) (3 pts)
#
# Describe how the response of the filter (the picture, its similarity and activation) changes
# when you enable quantisation, and how it changes as the precision goes from 8 bits down to 2 bits.
# Refer to the sweep figure. Then explain intuitively *why*: use the weight histogram (how many
# weights become zero? what does a 2-bit layer compute?), the SNR, and the fact that the filter
# sits deep in the network. Does the filter picture break at the same bit width as the
# classification? Does per-channel scaling help, and why?

# %% [markdown] kind="answer" id="answer_3a" points=3
# *Model answer (instructors).* At 16 bits the picture, the activation and every prediction are
# the float model's. At 8 bits the picture keeps the same kind of pattern (details move, similarity
# drops somewhat) and the predictions agree with float on (nearly) all photos, KL close to 0. At
# 4 bits the pattern is largely lost, the similarity is about 0 and the activation changes
# strongly; at 3 and 2 bits the picture no longer shows the filter's pattern (noise or a flat image)
# and the activation collapses (at 2 bits to about 0), while top-1 agreement falls to 0 and the KL is
# large. Why: one scale per tensor is set by the largest weight, step = max|w| / (2^(bits-1) - 1).
# Weights are bell-shaped with most far below the maximum, so at 4 bits (step max/7) most round
# to 0 or one step, and at 2 bits the layer is ternary {-s, 0, +s} with almost all weights 0. The
# histogram shows this and the SNR falls by about 6 dB per bit (about 36 dB at 8 bits, 11 at 4,
# near 0 at 2). The filter sits deep in the network, so its input is already distorted by every
# quantised layer before it and the errors compound with depth; the picture and the classification
# break at about the same width. Per-channel scales give small filters (e.g. EfficientNet's
# depthwise convs) their own step: about 7 dB better SNR, which secures 8 bits (and helps 6), but at
# 4 bits and below this model still fails without quantisation-aware training.

# %% [markdown]
# ## Question 3(b) — Pros and cons of quantisation (5 pts)
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
# ### Your answer to Question 3(b) (5 pts)
#
# Discuss the pros and cons of weight quantisation along the LASER metrics from Lecture 1 (cover at
# least accuracy, model size / memory, speed / latency and energy). Support each
# point with your own results (sizes, top-1 agreement, KL, pictures) or the numbers above, say
# which bit width you would deploy this model with and why, and name one thing that decides
# whether quantisation really makes a model faster on a given device.

# %% [markdown] kind="answer" id="answer_3b" points=5
# *Model answer (instructors).* Pros: **size/memory**: 8-bit weights are 4x smaller (VGG16 553 ->
# 138 MB; EfficientNet-Lite0 19 -> 5 MB), so models fit phones, microcontrollers or on-chip SRAM and
# load faster. **Energy**: data movement dominates (a DRAM read costs about 640 pJ vs 0.2 pJ for an
# 8-bit multiply), so fewer bytes per weight and integer arithmetic (about 20x cheaper per
# multiply-add than float32) save a lot of energy, i.e. battery. **Speed/latency**: integer units
# do more operations per cycle (SIMD, int8 tensor cores) and memory-bound layers get 4x more
# weights per transfer. **Accuracy** is nearly unchanged at 8 bits (top-1 agreement about 100 %,
# tiny KL). Cons: **accuracy** falls off a cliff below a model-dependent width (4 bits here: 0 %
# agreement), so lower widths need per-channel scales, calibration or quantisation-aware training;
# internal features change (the filter pictures), and robustness to noise/adversarial inputs can
# change; **speed** gains need hardware and kernels for that width (fake quantisation is no
# faster; 3-bit has no native support and needs unpacking), and activations must be quantised too
# for integer-only inference; extra engineering and validation. Deploy this model at 8 bits with
# per-channel weight scales (16-bit float when there is no int8 support). Whether it really gets
# faster depends on the device's support for low-precision arithmetic and on whether the model is
# memory-bound or compute-bound there.
