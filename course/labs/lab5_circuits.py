# ---
# jupyter:
#   labkit:
#     title: "Lab 5 \u2014 Circuits: how a unit is built from the units before it"
# ---

# %% [markdown]
# # Lab 5 — Circuits: how a unit is built from the units before it
#
# A unit (one output channel) of a conv layer is a weighted sum of the channels of the layer
# below, one small kernel per input channel, followed by a non-linearity. If we know what the
# input channels respond to (feature visualisation) and read the kernels that connect them to
# the unit (the weights), we can explain the unit as a **circuit**: *"it fires where these
# inputs fire and those do not"*. This is the approach of the Distill articles
# [Zoom In: An Introduction to Circuits](https://distill.pub/2020/circuits/zoom-in/) and
# [Visualizing Weights](https://distill.pub/2020/circuits/visualizing-weights/).
#
# This lab follows the SMU lab *CNN Visualization* (Klinkert and Yu), which analyses conv3_3
# unit 195 of the Caffe-trained VGG19 shown on OpenAI Microscope. Points here: 18, of which 9 are
# autograded.
#
# | Handout question | Points | Where it is answered | How it is graded |
# |---|---|---|---|
# | Model selection and task: choose a pre-trained CNN, explain why, classify a few images | 2 | **Question 1**: *Your answer* (2 pts) | 2 written |
# | Filter selection and explanation: a mid-level multi-channel filter, an image that maximally excites it, a hypothesis | 3 | **Question 2**: *Your answer* (3 pts) | 3 written |
# | Analyse each channel: extract the input filters, keep the six strongest (L2 norm), mostly excitatory or inhibitory | 9 | **Question 3**: `top_k_inputs` (2 pts), `polarity` (2 pts), `compose_kernels` (5 pts) | 9 autograded |
# | Visualise what each of the six strongest inputs responds to, and explain how the circuit works | 4 | **Question 4**: weight explorer, *Your answer* (4 pts) | 4 written |
#
# Cells with grey backgrounds are locked. Write code only in cells that say `YOUR CODE HERE`
# and answers only in cells that say `YOUR ANSWER HERE`.

# %% kind="shared" id="colab_setup"

# %% [markdown]
# ## Settings
#
# Put your name(s) in `STUDENT_NAME`. `MODEL_NAME = None` gives this lab's model, **VGG19** (the SMU
# lab's choice; set the environment variable `LABKIT_MODEL` or write a name such as
# `"efficientnet_lite0"` to change it). When the Caffe-trained VGG19 that OpenAI Microscope shows
# (`vgg19_caffe`) can be loaded, the lab uses it; otherwise torchvision's VGG19, whose units are
# *different features* (it was trained separately); when no VGG19 weights are on this machine,
# labkit says so and uses the offline EfficientNet-Lite0. Every step works with each of them.
# `CIRCUIT_LAYER` / `CIRCUIT_UNIT` pick the unit to analyse (`None`: the model's default unit).
# `FAST` (from `LABKIT_FAST=1`) uses fewer steps and pixels so the notebook runs on a laptop CPU in minutes.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG19); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
CIRCUIT_LAYER = None  # None = the model's default (VGG19: conv3_3 = "features.14")
CIRCUIT_UNIT = None  # None = the model's default (VGG19: 195)
K = 6  # how many of the strongest inputs to study (the handout: six)
FV_STEPS = 24 if FAST else None  # feature-visualisation steps (None: labkit's default)
FV_SIZE = 64 if FAST else None  # feature-visualisation image side in px (None: labkit's default)

# %% id="setup"
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from course import circuit_study as cs
from course.roles import roles_for
from labkit.featurevis import dataset_examples, visualize
from labkit.images import denormalize, preprocess, sample_images
from labkit.layers import layer_info, layers
from labkit.models import load_model, weights_available
from labkit.plot import dataset_examples_figure, filter_grid, norm_histogram

model = load_model(MODEL_NAME, default="vgg19", device=DEVICE)
if MODEL_NAME is None and model.labkit.name == "vgg19" and weights_available("vgg19_caffe"):
    model = load_model("vgg19_caffe", device=DEVICE)  # the VGG19 whose units OpenAI Microscope shows
roles = roles_for(model)
L_C = CIRCUIT_LAYER if CIRCUIT_LAYER is not None else roles.circuit_layer
U_C = CIRCUIT_UNIT if CIRCUIT_UNIT is not None else roles.circuit_channel
L_C = layer_info(model, L_C).name  # a handout index works too; from here on, the dotted name
MICROSCOPE = roles.circuit_is_microscope and (L_C, U_C) == (roles.circuit_layer, roles.circuit_channel)
print(f"model: {model.labkit.name} on {DEVICE}; we analyse {L_C} unit {U_C}.")
if MICROSCOPE:
    print("This is the unit the SMU lab picked on OpenAI Microscope (Caffe VGG19 conv3_3 unit 195).")
else:
    print("This is NOT the unit shown on OpenAI Microscope: Microscope shows the Caffe-trained VGG19 "
          "(labkit's vgg19_caffe); the pictures there describe a different feature.")

# %% [markdown]
# ## Question 1 — Model selection and task (2 pts)
#
# *Handout:* select a convolutional network pre-trained on a large dataset (preferably ImageNet).
# Simplicity in architecture helps (VGG, or another network with few layers and no complex
# feed-forward paths). Explain the model you chose and why. Classify a few images with it to
# verify that it works.
#
# The cells below print the facts you need about the model in use: its conv layers (`RF px` is
# each layer's receptive field in input pixels), its kernel shapes, its size, whether it has
# skip connections, and what the unit of this lab reads.

# %% id="layer_table"
from collections import Counter

conv_modules = [model.get_submodule(r.name) for r in layers(model).conv()]
shapes = Counter(f"{m.kernel_size[0]}x{m.kernel_size[1]}" + (" depthwise" if m.groups > 1 else "") for m in conv_modules)
skips = [n for n, m in model.named_modules() if getattr(m, "has_skip", False)]
READ = cs.read_layer(model, L_C)
print(f"{model.labkit.name}: {len(conv_modules)} conv layers, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters")
print("kernel shapes:", ", ".join(f"{n} x {s}" for s, n in shapes.most_common()))
print(f"blocks that add their input back (skip connections): {len(skips)}" + (f", e.g. {skips[0]}" if skips else ""))
print(f"{L_C} unit {U_C} reads the output of {READ} ({type(model.get_submodule(READ)).__name__})")
layers(model).conv()

# %% id="classify"
# Classify a few of the photos that ship with labkit: the top-3 classes of each.
PHOTO_NAMES = ["cat", "dog", "coffee", "bee", "rocket", "flower"]
x = preprocess(PHOTO_NAMES, model)  # [6,3,224,224], normalised for this model
with torch.no_grad():
    probs = model(x).softmax(dim=1)
top = probs.topk(3, dim=1)
classes = model.labkit.classes
titles = []
for name, p, idx in zip(PHOTO_NAMES, top.values.tolist(), top.indices.tolist()):
    print(f"{name:>7}: " + ", ".join(f"{classes[i]} ({q:.0%})" for q, i in zip(p, idx)))
    titles.append(f"{classes[idx[0]]}\n{p[0]:.0%}")
filter_grid(denormalize(x, model).clamp(0, 1).cpu(), titles=titles, ncols=len(PHOTO_NAMES))
plt.show()

# %% [markdown]
# ### Your answer to Question 1 (2 pts)
#
# (a) From the printed facts, describe the model in use (depth, kernel shapes, size, skip
# connections) and say what the lab's unit reads. Does this structure make a unit's circuit easy or
# hard to read from one layer's weights, and why? (b) Do the predictions above show that the model
# works? Comment on one prediction that is wrong or uncertain, and why that might be.

# %% [markdown] kind="answer" id="answer_q1" points=2
# *Model answer (instructors), per model family.* **VGG19 (torchvision or Caffe):** 16 conv layers,
# all 3x3, about 144 M parameters (most in the fully connected layers), no skip connections; conv3_3
# reads ReLU(conv3_2) (`features.13`). A plain chain: each unit reads every channel of exactly one
# layer, so one layer's weights are the whole story of how it is computed: easy to read.
# **EfficientNet-Lite0:** about 49 conv layers, mostly 1x1 plus 3x3/5x5 *depthwise* kernels,
# 4.7 M parameters, many blocks with skip connections; the unit (a 1x1 conv) reads a residual
# sum (the printed block, e.g. `blocks.2.1`): its own weights are one number per channel with no
# spatial extent, and its inputs are themselves sums of a projection and an earlier block, so the
# circuit spreads over several layers: harder; one has to compose weights through the block
# (Question 3, Step 3). (b) Most top-1 predictions are plausible; a good answer names one wrong or
# low-confidence prediction from the printout and gives a reason (a class missing from ImageNet's
# label set, fine-grained classes that look alike, context dominating the object).
#
# **Rubric (2 pts):**
# - 1 pt: (a) structure described with the printed numbers (conv count, kernel shapes, parameters,
#   skips) and a correct reason why circuits are easy (plain chain) or hard (1x1 bottlenecks,
#   depthwise convs, residual sums) to read on this model; half a point if the numbers are missing
#   or contradict the printout.
# - 1 pt: (b) cites the student's own predictions, names a wrong or uncertain one and a plausible
#   reason.

# %% [markdown]
# ## Question 2 — Filter selection and explanation (3 pts)
#
# *Handout:* select a multi-channel filter (a feature) in a *mid-level* layer (a few conv layers
# before and after it), find an input image that maximally excites it with image-gradient
# techniques, and give a hypothesis for what it extracts: what is its function in the network?
#
# The SMU team picked conv3_3 unit 195 of the Caffe-trained VGG19 on [OpenAI Microscope](https://microscope.openai.com/models/vgg19_caffe/conv3_3_conv3_3_0/195)
# (you may pick another unit in the settings cell; the setup cell printed whether yours is
# Microscope's unit). First, where does the layer sit?

# %% id="layer_position"
conv_names = layers(model).conv().names()
row = layer_info(model, L_C)
position = conv_names.index(L_C)
print(f"{L_C} (handout index {row.index}) is conv layer {position + 1} of {len(conv_names)}: "
      f"{position} conv layers before it, {len(conv_names) - position - 1} after.")
print(f"It has {row.channels} units, output {row.out_shape} for a 224 px image, and each unit sees a "
      f"{row.receptive_field} x {row.receptive_field} px patch of the input.")

# %% [markdown]
# **The image that maximally excites the unit.** `labkit.featurevis.visualize` does gradient ascent
# on the input image (as in Lab 2), with the tricks that make the result look like an image rather
# than noise: a Fourier-space parameterisation, random jitter, scaling and rotation at each step.

# %% id="unit_vis"
unit_vis = visualize(model, L_C, [U_C], steps=FV_STEPS, size=FV_SIZE, seed=0)
filter_grid(unit_vis.images, titles=[f"{L_C} unit {U_C}\nmean activation {unit_vis.activations[0]:.3g}"])
plt.show()

# %% [markdown]
# **Dataset examples.** Synthetic images can mislead, so also look at real photos: which of the
# photos shipped with labkit excite the unit most, and where? The yellow box (and the crop below
# each photo) is the unit's receptive field around its strongest position; the synthetic image is
# on the left.

# %% id="dataset_examples"
from labkit import images as _images

PHOTOS = ([p for p, _ in _images.labelled_images()] if hasattr(_images, "labelled_images")
          else list(sample_images().values()))  # every shipped photo
examples = dataset_examples(model, L_C, U_C, PHOTOS, k=6)
print(f"searched {len(PHOTOS)} photos")
print("photos, strongest first:", ", ".join(f"{Path(s).stem} ({v:.3g})"
                                            for s, v in zip(examples.sources, examples.scores.tolist())))
dataset_examples_figure(examples, visualization=unit_vis.images[0])
plt.show()

# %% [markdown]
# ### Your answer to Question 2 (3 pts)
#
# Why is this layer "mid-level" (use the numbers above: position, receptive field)? Describe the
# image that maximally excites the unit and what the strongest photo patches have in common.
# Then state your **hypothesis**: what does this unit detect, and what might it be for in the
# network? Only if the setup cell said that this is Microscope's unit, compare with its page on
# OpenAI Microscope (link above).

# %% [markdown] kind="answer" id="answer_q2" points=3
# *Model answer (instructors), per model family.* Position: VGG19 conv3_3 (features.14) is conv
# layer 7 of 16 with a 40 px receptive field; on EfficientNet-Lite0 the default unit
# (blocks.3.0.conv_pw) is conv 16 of 49 with a 67 px receptive field (the printout gives the exact
# numbers): beyond edges and colours, below object parts, so mid-level. **Caffe VGG19 unit 195
# (Microscope's unit):** the maximising image shows many small round shapes, blurred or glowing at
# their edges and in varied colours; the strongest patches contain small bright round things
# (lights, fruit, dots, eyes); hypothesis: a colour-invariant detector of small soft-edged circles
# or blobs, for later eye, wheel, ball, fruit and light detectors. **torchvision VGG19 and Lite0:**
# the unit is a different feature; there is no fixed answer, and Microscope must not be quoted as
# evidence. The answer should rest on the student's own figures: name what the synthetic image and
# the strongest patches share, where they disagree, and a hypothesis consistent with both.
#
# **Rubric (3 pts, 1 point each):**
# - 1 pt: "mid-level" argued with the printed position and receptive field.
# - 1 pt: describes the student's own synthetic image and what the top photo patches share (not a
#   description copied from Microscope when the setup cell says it is not Microscope's unit: 0 for
#   this point then).
# - 1 pt: a testable hypothesis about what the unit detects and what it could serve, consistent
#   with both the picture and the patches (or naming where they disagree).

# %% [markdown]
# ## Question 3 — Analyse the input channels of the filter (9 pts)
#
# *Handout:* extract the filter coefficients for each input channel of the multi-channel filter
# (a 3x3 filter over 256 input channels gives 256 input filters of 3x3). Keep the six with the
# "strongest" weights, by the L2 norm of each input filter, and call each of them *mostly
# excitatory* or *mostly inhibitory* (mostly positive or mostly negative coefficients).
#
# A unit's kernels are the slice `weight[unit]` of its layer's weight tensor `[C_out, C_in, kh, kw]`:
# one `kh x kw` kernel per channel of the tensor the unit reads. What that tensor is, and the
# shape of the kernels, depend on the model:

# %% id="extract"
W = model.get_submodule(L_C).weight.detach()[U_C].cpu().float()  # [C_in, kh, kw]
print(f"{L_C} unit {U_C} has {W.shape[0]} input kernels of {W.shape[1]}x{W.shape[2]}, one per channel of {READ}.")
TERMS = cs.sum_terms(model, READ)
if len(TERMS) > 1:
    print(f"{READ} is a residual sum: {' + '.join(TERMS)} (each block's projection, plus the block's input).")
if tuple(W.shape[1:]) == (1, 1):
    print("1x1 kernels: one number per input channel and no spatial structure; Step 3 finds the spatial "
          "structure one block further down.")

# %% [markdown]
# ### Step 1 — `top_k_inputs` (2 pts, autograded)
#
# Write `top_k_inputs(weight, k)`: given a unit's kernels `weight` `[C_in, kh, kw]`, return the
# indices of the `k` kernels with the largest L2 norm (the square root of the sum of squares of
# a kernel's `kh*kw` coefficients), **strongest first**, as a list of `int`.
#
# ### Step 2 — `polarity` with a "mixed" class (2 pts, autograded)
#
# "Mostly" positive or negative is by **mass**, not by count. With `P` the sum of a kernel's
# positive coefficients and `N` the sum of the absolute values of its negative ones, the kernel's
# *balance* is `(P - N) / (P + N)` (0 for an all-zero kernel), between -1 (all negative) and +1 (all
# positive). Write `polarity(kernel, margin=0.25)` that returns `"excitatory"` if the balance is
# greater than `margin`, `"inhibitory"` if it is less than `-margin`, and `"mixed"` otherwise. A kernel
# `[[5, -1], [-1, -1]]` has more negative coefficients but balance (5 - 3) / 8 = 0.25: mixed at the
# default margin. A centre-surround kernel whose positive centre and negative surround nearly cancel
# is mixed too: calling it excitatory or inhibitory would hide that it does both. Every label in
# this lab's figures uses this rule with the margin 0.25.
#
# ### Step 3 — `compose_kernels` (5 pts, autograded)
#
# A unit's input channels are made by a conv themselves. Reading the non-linearities in between as
# the identity (and BatchNorm as its scale), the unit is one linear filter of the tensor *before*
# that conv: its **expanded weights**. For a unit with kernels `outer` `[M, kh2, kw2]` over the `M`
# channels made by a stride-1 conv `inner` `[M, C, kh1, kw1]`, the effective kernel over the `C`
# input channels is `[C, kh1 + kh2 - 1, kw1 + kw2 - 1]` with
#
# $$K[c,\ y_2 + y_1,\ x_2 + x_1] \mathrel{+}= \sum_m \text{outer}[m, y_2, x_2]\ \text{inner}[m, c, y_1, x_1]$$
#
# over all offsets `(y2, x2)` of `outer` and `(y1, x1)` of `inner` (each offset of the outer kernel
# places a weighted sum of the inner kernels into the bigger window). With `residual=True` the
# tensor is `inner(x) + x` (`M == C`), and the skip adds `outer[c, y2, x2]` at the centre of the
# inner window: `K[c, y2 + kh1 // 2, x2 + kw1 // 2] += outer[c, y2, x2]`. On VGG, `inner` is the
# previous 3x3 conv (3x3 then 3x3 gives 5x5); on EfficientNet it is a whole inverted-residual
# block folded into one conv (`course.circuit_study.block_kernel`: expand, depthwise and project
# multiplied out), which turns the unit's flat 1x1 weights into 3x3 or 5x5 kernels.
#
# **Off limits** in all three steps (the hidden tests make them raise while your functions run, so a
# wrapper earns nothing): `labkit.circuits` (`strongest`, `kernel_norms`, `input_norms`, `polarity`,
# `expanded_weights`), `course.circuit_study` and `torch.autograd`. Plain torch operations
# (`reshape`, `norm`, `argsort`, `clamp`, `sum`, `einsum`, slicing) are what you need.

# %% kind="solution" id="circuit_functions"
def top_k_inputs(weight, k=6):
    """Indices of the ``k`` input kernels with the largest L2 norm, strongest first.

    Args:
        weight: [C_in, kh, kw] tensor, one kernel per input channel.
        k: how many to return (1 <= k <= C_in).

    Returns:
        list of ``k`` Python ints (input-channel indices).
    """
    ### BEGIN SOLUTION
    norms = weight.reshape(weight.shape[0], -1).norm(dim=1)
    return [int(i) for i in torch.argsort(norms, descending=True, stable=True)[:k]]
    ### END SOLUTION


def polarity(kernel, margin=0.25):
    """``"excitatory"``, ``"inhibitory"`` or ``"mixed"`` by the kernel's balance (P - N) / (P + N).

    Args:
        kernel: [kh, kw] tensor.
        margin: balances in [-margin, margin] are "mixed".
    """
    ### BEGIN SOLUTION
    positive = float(kernel.clamp(min=0).sum())
    negative = float((-kernel).clamp(min=0).sum())
    balance = (positive - negative) / (positive + negative) if positive + negative > 0 else 0.0
    if balance > margin:
        return "excitatory"
    if balance < -margin:
        return "inhibitory"
    return "mixed"
    ### END SOLUTION


def compose_kernels(outer, inner, residual=False):
    """Expanded kernels of a unit through one more stride-1 conv.

    Args:
        outer: [M, kh2, kw2], the unit's kernels over the M channels it reads.
        inner: [M, C, kh1, kw1], the conv that makes those channels from C earlier channels.
        residual: the channels are inner(x) + x (then M == C).

    Returns:
        [C, kh1 + kh2 - 1, kw1 + kw2 - 1] tensor.
    """
    ### BEGIN SOLUTION
    m, kh2, kw2 = outer.shape
    _, c, kh1, kw1 = inner.shape
    out = inner.new_zeros(c, kh1 + kh2 - 1, kw1 + kw2 - 1)
    for y in range(kh2):
        for x in range(kw2):
            out[:, y:y + kh1, x:x + kw1] += torch.einsum("m,mcij->cij", outer[:, y, x], inner)
            if residual:
                out[:, y + kh1 // 2, x + kw1 // 2] += outer[:, y, x]
    return out
    ### END SOLUTION

# %% kind="tests" id="test_top_k_inputs" points=2
# Visible tests for top_k_inputs: hand-made kernels, then this unit's real weights vs labkit.
import torch
from labkit.circuits import kernel_norms as labkit_kernel_norms

hand = torch.zeros(5, 3, 3)
hand[0, 1, 1] = 1.0   # norm 1
hand[1] = 0.5         # norm 1.5
hand[2, 0, 0] = -3.0  # norm 3: sign must not matter
hand[3, :, 0] = 1.0   # norm sqrt(3)
hand[4, 2, 2] = 0.1   # norm 0.1
got = top_k_inputs(hand, 3)
assert isinstance(got, (list, tuple)), f"top_k_inputs must return a list of ints, got {type(got).__name__}"
got = [int(i) for i in got]
assert got == [2, 3, 1], (f"for kernels with L2 norms [1, 1.5, 3, 1.73, 0.1] the top 3 strongest first are "
                          f"[2, 3, 1], you returned {got}. Use the L2 norm of each whole kernel, largest first.")
assert [int(i) for i in top_k_inputs(hand, 1)] == [2], "k=1 must return only the strongest kernel"

expected = torch.argsort(labkit_kernel_norms(W), descending=True, stable=True)[:K].tolist()
got = [int(i) for i in top_k_inputs(W, K)]
assert got == expected, f"{L_C} unit {U_C}: labkit's {K} strongest inputs are {expected}, you returned {got}"
print(f"top_k_inputs agrees with labkit: the {K} strongest inputs of {L_C} unit {U_C} are {got}")
### BEGIN HIDDEN TESTS
weight_all = model.get_submodule(L_C).weight.detach().cpu().float()
for unit in sorted({0, (U_C + 7) % weight_all.shape[0], weight_all.shape[0] - 1}):
    w = weight_all[unit]
    for k in (1, 4, 10):
        k = min(k, w.shape[0])
        expected = torch.argsort(labkit_kernel_norms(w), descending=True, stable=True)[:k].tolist()
        got = [int(i) for i in top_k_inputs(w, k)]
        assert got == expected, f"another unit/k: expected {expected}, got {got}"
g = torch.Generator().manual_seed(3)
rand = torch.randn(40, 5, 5, generator=g) * torch.linspace(0.1, 2, 40).view(40, 1, 1)
norms = rand.flatten(1).norm(dim=1)
expected = torch.argsort(norms, descending=True)[:8].tolist()
assert [int(i) for i in top_k_inputs(rand, 8)] == expected, "5x5 random kernels: wrong order"
ones = torch.randn(12, 1, 1, generator=g)
expected = torch.argsort(ones.abs().flatten(), descending=True)[:5].tolist()
assert [int(i) for i in top_k_inputs(ones, 5)] == expected, "1x1 kernels: wrong order (negative weights count by size)"
### END HIDDEN TESTS

# %% kind="tests" id="test_polarity" points=2
# Visible tests for polarity: hand-made kernels, then the strongest real kernels vs the course's rule.
import torch
from course.circuit_study import polarity as course_polarity

cases = [
    (torch.tensor([[1.0, 2.0], [0.5, 0.0]]), "excitatory"),
    (torch.tensor([[-1.0, -0.2], [-0.5, -3.0]]), "inhibitory"),
    (torch.tensor([[5.0, -1.0], [-1.0, -1.0]]), "mixed"),        # balance exactly 0.25: within the margin
    (torch.tensor([[6.0, -1.0], [-1.0, -1.0]]), "excitatory"),   # fewer positives, but balance 1/3
    (torch.tensor([[-4.0, 1.0], [1.0, 1.0]]), "mixed"),          # balance -1/7
    (torch.tensor([[-8.0, 1.0], [1.0, 1.0]]), "inhibitory"),
    (torch.tensor([[0.3]]), "excitatory"),
    (torch.zeros(3, 3), "mixed"),
]
for kernel, want in cases:
    got = polarity(kernel)
    assert got in ("excitatory", "inhibitory", "mixed"), f"polarity must return one of the three labels, got {got!r}"
    assert got == want, (f"polarity({kernel.tolist()}) should be {want!r}, got {got!r}: compute the balance "
                         f"(P - N) / (P + N) and compare it with +-margin")
assert polarity(torch.tensor([[5.0, -1.0], [-1.0, -1.0]]), margin=0.2) == "excitatory", "use the margin argument"
for c in top_k_inputs(W, K):
    assert polarity(W[c]) == course_polarity(W[c]), f"input channel {c}: the rule says {course_polarity(W[c])}"
print("polarity agrees with the course's rule on hand-made kernels and the strongest real kernels.")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(11)
for shape in [(3, 3), (1, 1), (5, 5), (7, 1)]:
    for _ in range(30):
        kernel = torch.randn(*shape, generator=g) + 0.3 * torch.randn(1, generator=g)
        for margin in (0.0, 0.1, 0.25, 0.5):
            want = course_polarity(kernel, margin)
            assert polarity(kernel, margin) == want, f"a random {shape} kernel, margin {margin}: expected {want}"
weight_all = model.get_submodule(L_C).weight.detach().cpu().float()
w = weight_all[(U_C + 1) % weight_all.shape[0]]
for c in range(min(w.shape[0], 64)):
    assert polarity(w[c]) == course_polarity(w[c]), "another unit's real kernels: wrong polarity"
### END HIDDEN TESTS

# %% kind="tests" id="test_compose_kernels" points=5
# Visible tests for compose_kernels: hand-made cases, then this unit against labkit's expanded weights,
# which are computed in a completely different way (the gradient of the linearised network).
import torch
from labkit.circuits import expanded_weights as labkit_expanded_weights

a = torch.tensor([[[2.0]], [[3.0]]])                          # outer: M=2, 1x1
b = torch.tensor([[[[1.0]], [[0.0]]], [[[4.0]], [[-1.0]]]])   # inner: [2, 2, 1, 1]
got = compose_kernels(a, b)
assert torch.is_tensor(got) and got.shape == (2, 1, 1), f"1x1 after 1x1 gives [C, 1, 1], got {getattr(got, 'shape', got)}"
assert torch.allclose(got.flatten(), torch.tensor([14.0, -3.0])), f"1x1 after 1x1 is a matrix product: expected [14, -3], got {got.flatten().tolist()}"
assert torch.allclose(compose_kernels(a, b, residual=True).flatten(), torch.tensor([16.0, 0.0])), \
    "with residual=True the skip adds outer at the centre: [14 + 2, -3 + 3]"
delta = torch.zeros(1, 3, 3)
delta[0, 0, 2] = 1.0                                          # outer: pick the top-right offset
inner = torch.arange(9.0).reshape(1, 1, 3, 3)
got = compose_kernels(delta, inner)
assert got.shape == (1, 5, 5), f"3x3 after 3x3 gives 5x5 kernels, got {tuple(got.shape)}"
want = torch.zeros(1, 5, 5)
want[0, 0:3, 2:5] = inner[0, 0]
assert torch.allclose(got, want), "the inner kernel must be placed at offset (y2, x2) of the outer kernel"

PATH = cs.expansion_path(model, L_C)
if PATH is not None:
    BLOCK, SOURCE = PATH
    INNER, RESIDUAL = cs.block_kernel(model, BLOCK)
    got = compose_kernels(W, INNER.cpu().float(), RESIDUAL)
    reference = labkit_expanded_weights(model, SOURCE, L_C, channels=[U_C], progress=False)[0].cpu()
    assert got.shape == reference.shape, f"expected {tuple(reference.shape)}, got {tuple(got.shape)}"
    assert torch.allclose(got, reference, atol=1e-4 * float(reference.abs().max())), \
        f"{L_C} unit {U_C} through {BLOCK}: your expanded kernels differ from labkit's (largest difference " \
        f"{float((got - reference).abs().max()):.3g})"
    print(f"compose_kernels agrees with labkit's expanded weights through {BLOCK}"
          + (" and its skip connection." if RESIDUAL else "."))
### BEGIN HIDDEN TESTS
import torch.nn.functional as _F

g = torch.Generator().manual_seed(5)
for (m, c, k1, k2, res) in [(6, 4, 3, 3, False), (5, 5, 5, 1, True), (3, 3, 1, 3, True), (4, 2, 1, 1, False),
                            (2, 3, 5, 3, False)]:
    inner_r = torch.randn(m, c, k1, k1, generator=g)
    outer_r = torch.randn(m, k2, k2, generator=g)
    side = k1 + k2 + 5
    x = torch.zeros(1, c, side, side, requires_grad=True)
    mid = _F.conv2d(x, inner_r, padding=k1 // 2) + (x if res else 0)
    out = _F.conv2d(mid, outer_r[None], padding=k2 // 2)
    (grad,) = torch.autograd.grad(out[0, 0, side // 2, side // 2], x)
    r = (k1 + k2 - 2) // 2
    want = grad[0, :, side // 2 - r:side // 2 + r + 1, side // 2 - r:side // 2 + r + 1]
    got = compose_kernels(outer_r, inner_r, res)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), f"random case {(m, c, k1, k2, res)}"
if PATH is not None:
    n_units = model.get_submodule(L_C).out_channels
    for unit in sorted({0, (U_C + 3) % n_units}):
        w = model.get_submodule(L_C).weight.detach()[unit].cpu().float()
        reference = labkit_expanded_weights(model, SOURCE, L_C, channels=[unit], progress=False)[0].cpu()
        got = compose_kernels(w, INNER.cpu().float(), RESIDUAL)
        assert torch.allclose(got, reference, atol=1e-4 * float(reference.abs().max())), f"unit {unit}: wrong"
### END HIDDEN TESTS

# %% [markdown]
# The table ranks the unit's inputs with the L2 norm and labels them with the polarity rule above;
# the histogram shows how the strength is spread over all input channels (does a handful dominate,
# or is the unit a broad mix?). The kernels are drawn below: as images when they have spatial
# extent, as **signed bars** when they are 1x1 (a 1x1 kernel is a single number, and a flat colour
# square would hide its size).

# %% id="strongest_table"
TOP = cs.top_k(W, K)
LABELS = [cs.polarity(W[c]) for c in TOP]
print(f"{'rank':>4}  {'channel':>7}  {'L2 norm':>8}  {'balance':>8}  polarity (|balance| <= {cs.MARGIN}: mixed)")
for rank, (c, label) in enumerate(zip(TOP, LABELS), start=1):
    print(f"{rank:>4}  {c:>7}  {float(W[c].norm()):>8.4f}  {cs.balance(W[c]):>+8.3f}  {label}")
norm_histogram(W.flatten(1).norm(dim=1), k=K, polarities=LABELS,
               title=f"{L_C} unit {U_C}: strength of its {W.shape[0]} input kernels (grey: mixed)")
plt.show()
if tuple(W.shape[1:]) == (1, 1):
    fig, ax = plt.subplots(figsize=(10, 3.2), constrained_layout=True)
    cs.bars(ax, W, TOP, LABELS, title=f"{L_C} unit {U_C}: its true 1x1 weights, one per channel of {READ}")
else:
    cs.kernel_cards(W, TOP, LABELS, title=f"{L_C} unit {U_C}: its {K} strongest kernels over {READ}")
plt.show()

# %% [markdown]
# **Expanded weights.** The same unit read one block further down, with the composition of Step 3
# (here computed by `course.circuit_study`, which your function was just checked against): each
# kernel now says where, in a window of the earlier tensor, each channel raises or lowers the unit.

# %% id="expanded"
PATH = cs.expansion_path(model, L_C)
if PATH is None:
    print(f"No stride-1 conv or block feeds {L_C}, so there are no expanded weights to read.")
else:
    BLOCK, SOURCE = PATH
    INNER, RESIDUAL = cs.block_kernel(model, BLOCK)
    EXPANDED = cs.compose_kernels(W.to(INNER), INNER, RESIDUAL).cpu()
    TOP_E = cs.top_k(EXPANDED, K)
    LABELS_E = [cs.polarity(EXPANDED[c]) for c in TOP_E]
    print(f"{L_C} unit {U_C} through {BLOCK}" + (" (and its skip connection)" if RESIDUAL else "")
          + f": {EXPANDED.shape[0]} kernels of {EXPANDED.shape[1]}x{EXPANDED.shape[2]} over the channels of {SOURCE}")
    for rank, (c, label) in enumerate(zip(TOP_E, LABELS_E), start=1):
        print(f"{rank:>4}  channel {c:>4}  L2 {float(EXPANDED[c].norm()):.4f}  balance {cs.balance(EXPANDED[c]):+.3f}  {label}")
    cs.kernel_cards(EXPANDED, TOP_E, LABELS_E, title=f"{L_C} unit {U_C}: expanded weights from {SOURCE}")
    plt.show()

# %% [markdown]
# ## Question 4 — What the six strongest inputs respond to, and how the circuit works (4 pts)
#
# *Handout:* for each of the six strongest input filters, use image-gradient techniques to
# visualise what it is most excited by. Use these visualisations with the circuit weights to
# explain how the circuit works, in the style of Distill's weight explorer, and describe its
# properties with the vocabulary of [Zoom In](https://distill.pub/2020/circuits/zoom-in/)
# (polysemantic, pose-invariant, ...).
#
# The weight explorer below shows, for the unit's strongest inputs, what each input channel
# responds to (its feature visualisation: gradient ascent on the channel's mean activation, on the
# tensor the unit actually reads, a residual sum included) next to the weight that connects it to
# the unit, framed and labelled with the polarity rule of Step 2 (orange excitatory, blue
# inhibitory, grey mixed; one colour scale for all kernels), and the unit's own picture on the
# right. The first figure reads the unit's true weights, the second its expanded weights.

# %% id="weight_explorer"
UNIT_PICTURE = unit_vis.images[0].permute(1, 2, 0).numpy()
pictures = cs.visualize_read(model, READ, TOP, steps=FV_STEPS, size=FV_SIZE, seed=0).images.permute(0, 2, 3, 1).numpy()
cs.kernel_cards(W, TOP, LABELS, pictures=pictures, source=READ, unit_picture=UNIT_PICTURE,
                title=f"{L_C} unit {U_C}: true weights from {READ}")
plt.show()

# %% id="expanded_explorer"
if PATH is not None:
    pictures_e = cs.visualize_read(model, SOURCE, TOP_E, steps=FV_STEPS, size=FV_SIZE, seed=0)
    cs.kernel_cards(EXPANDED, TOP_E, LABELS_E, pictures=pictures_e.images.permute(0, 2, 3, 1).numpy(),
                    source=SOURCE, unit_picture=UNIT_PICTURE, title=f"{L_C} unit {U_C}: expanded weights from {SOURCE}")
    plt.show()

# %% [markdown]
# **How to read it.** An excitatory input adds its pattern to the unit where the kernel's orange
# coefficients sit: if the input detects, say, a curve fragment and the kernel is orange on its
# left, the unit likes that fragment to its left. An inhibitory input subtracts: the unit is
# *suppressed* where that input fires, which often sharpens a detector ("a blob, but not an
# edge"). A mixed kernel does both, in different places (e.g. a positive centre and a negative
# surround). A spatially structured kernel says *where* relative to the unit each input matters; a
# single 1x1 weight says only *whether* and *how much*.

# %% [markdown]
# ### Your answer to Question 4 (4 pts)
#
# Explain how the circuit works. For each of the strongest inputs say what it seems to detect
# (from its picture), whether it excites or inhibits the unit, and where (the kernel's spatial
# pattern). Then combine them: how do these inputs produce the behaviour you hypothesised in
# Question 2? Use at least two terms from *Zoom In* (e.g. polysemantic, pose-invariant, equivariance,
# union of cases, excitation/inhibition) and say what evidence supports or contradicts each. Name one
# limitation of explaining a unit from its six strongest weights alone (hint: look at the histogram).

# %% [markdown] kind="answer" id="answer_q4" points=4
# *Model answer (instructors), per model family.* **VGG19** (3x3 true kernels over ReLU(conv3_2);
# 5x5 expanded kernels over ReLU(conv3_1)): for each of the six inputs, what its picture shows
# (a curved edge, a colour blob, a texture), its printed label and where its kernel is positive or
# negative. For Microscope's unit 195 of the Caffe VGG19, excitatory inputs are curve fragments and
# colour blobs of several hues placed around the centre, inhibitory ones straight lines or flat
# texture: a round shape of any colour. **EfficientNet-Lite0** (1x1 true weights over the residual
# sum, then 5x5 expanded kernels through the block below and its skip): the true weights say only
# which channels of the sum raise or lower the unit and by how much (the bars); the expanded
# kernels add where (a positive centre with a negative ring, or a side preference); the skip
# contributes only at the centre of each window. For torchvision VGG19 and Lite0 there is no fixed
# feature to name: grade whether the explanation follows from the student's own pictures, labels
# and kernels. Vocabulary: a *union of cases* (several hue- or orientation-specific inputs OR-ed
# into an invariant unit), *excitation/inhibition* sharpening selectivity, *polysemantic* judged
# from unrelated dataset examples. Limitations: the histogram shows a long tail of weaker inputs
# whose sum can rival the top six; reading weights ignores the non-linearities, biases and (in
# EfficientNet) the fact that expanded weights linearise the block; a picture shows what maximises
# an input, not everything it responds to.
#
# **Rubric (4 pts, 1 point each; half points allowed):**
# - 1 pt: each of the strongest inputs (at least four) described by its picture, with the label and
#   the kernel's spatial pattern as printed/drawn (a label that contradicts the figure: 0 for this point).
# - 1 pt: a combined mechanism that explains the Question 2 hypothesis from those inputs, using the
#   expanded weights where the true weights are 1x1.
# - 1 pt: two *Zoom In* terms, each with evidence from the figures for or against.
# - 1 pt: one real limitation of reading six weights (tail of the histogram, non-linearities or
#   biases ignored, linearised block, pictures only show the maximum).

# %% [markdown]
# ## Explore (ungraded): any unit of the layer
#
# Pick a unit of the circuit layer and whether to read its true or its expanded weights; the
# explorer computes that unit's circuit and the pictures of its strongest inputs (a progress bar
# shows while it runs), keeps every unit it has computed, and draws the same weight explorer as
# above. Where no widget frontend runs (an exported report), the picture of the current setting
# stays in the output.

# %% id="explorer"
from course.explorers.lab5 import UnitExplorer

UnitExplorer(model, L_C, U_C, k=K, settings={"steps": FV_STEPS, "size": FV_SIZE, "seed": 0})
