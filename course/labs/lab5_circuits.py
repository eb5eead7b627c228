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
# This lab follows the SMU lab *CNN Visualization* (Klinkert and Yu; 15 points), which analyses
# VGG19's conv3_3 unit 195.
#
# | Handout question | Points | Where it is answered | How it is graded |
# |---|---|---|---|
# | Model selection and task: choose a pre-trained CNN, explain why, classify a few images | 3 | **Question 1**: *Your answer* (3 pts) | 3 written |
# | Filter selection and explanation: a mid-level multi-channel filter, an image that maximally excites it, a hypothesis | 4 | **Question 2**: *Your answer* (4 pts) | 4 written |
# | Analyse each channel: extract the input filters, keep the six strongest (L2 norm), mostly excitatory or inhibitory | 4 | **Question 3**: `top_k_inputs` (2 pts), `polarity` (2 pts) | 4 autograded |
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
# `"efficientnet_lite0"` to change it). When VGG19's weights are not on this machine, labkit says
# so and uses the offline EfficientNet-Lite0, whose weights ship with labkit; every step works
# with either. `CIRCUIT_LAYER` / `CIRCUIT_UNIT` pick the unit to analyse (`None`: the model's
# preset, VGG19 conv3_3 unit 195). `FAST` (from `LABKIT_FAST=1`) uses fewer steps and pixels so the
# notebook runs on a laptop CPU in minutes.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG19); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
CIRCUIT_LAYER = None  # None = the model's preset (VGG19: conv3_3 = "features.14")
CIRCUIT_UNIT = None  # None = the preset (VGG19: 195)
K = 6  # how many of the strongest inputs to study (the handout: six)
FV_STEPS = 24 if FAST else None  # feature-visualisation steps (None: labkit's default)
FV_SIZE = 64 if FAST else None  # feature-visualisation image side in px (None: labkit's default)

# %% id="setup"
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from IPython.display import display

from course.experiments import explore
from course.roles import roles_for
from labkit.circuits import feeding_layer, input_kernels, input_norms, strongest
from labkit.featurevis import dataset_examples, visualize
from labkit.images import denormalize, preprocess, sample_images
from labkit.layers import layer_info, layers
from labkit.models import load_model
from labkit.plot import dataset_examples_figure, filter_grid, kernel_image, norm_histogram

model = load_model(MODEL_NAME, default="vgg19", device=DEVICE)
roles = roles_for(model)
L_C = CIRCUIT_LAYER if CIRCUIT_LAYER is not None else roles.circuit_layer
U_C = CIRCUIT_UNIT if CIRCUIT_UNIT is not None else roles.circuit_channel
L_C = layer_info(model, L_C).name  # a handout index works too; from here on, the dotted name
print(f"model: {model.labkit.name} on {DEVICE}")
print(f"The SMU lab's unit is VGG19 conv3_3 (features.14) unit 195; on {model.labkit.name} "
      f"we analyse {L_C} unit {U_C}.")

# %% [markdown]
# ## Question 1 — Model selection and task (3 pts)
#
# *Handout:* select a convolutional network pre-trained on a large dataset (preferably ImageNet).
# Simplicity in architecture helps (VGG, or another network with few layers and no complex
# feed-forward paths). Explain the model you chose and why. Classify a few images with it to
# verify that it works.
#
# **VGG19** (Simonyan and Zisserman, Oxford, 2014) is a plain chain: 16 conv layers of 3x3
# kernels with ReLUs, five max-pools, and three fully connected layers (144 M parameters),
# trained on ImageNet's 1000 classes. Each conv unit reads *every* channel of the layer right
# below it, so its weights are the whole story of how it is computed.
#
# **EfficientNet-Lite0** (the offline model) is built from *inverted residual* blocks: a 1x1
# conv that widens the channels, a depthwise conv (one 3x3 or 5x5 kernel per channel, no mixing),
# a 1x1 conv that narrows them again, and a residual addition. It has 4.7 M parameters and ReLU6
# non-linearities. Its circuits run through those bottlenecks, which the optional part of
# Question 4 unpacks.
#
# The conv layers of the model in use (`RF px` is each layer's receptive field in input pixels):

# %% id="layer_table"
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
# ### Your answer to Question 1 (3 pts)
#
# Explain the model in use (what kind of network, how deep, trained on what) and why it is (or is
# not) a good choice for finding circuits. Do the predictions above show that it works? Comment
# on any prediction that is wrong or uncertain, and why that might be.

# %% [markdown] kind="answer" id="answer_q1" points=3
# *Model answer (instructors).* VGG19 is a 19-layer (16 conv + 3 fully connected) ImageNet
# classifier from Oxford's Visual Geometry Group: a plain chain of 3x3 convs with ReLUs and five
# max-pools, 144 M parameters, trained on 1.2 M images of 1000 classes. It suits circuit analysis
# because each conv unit reads every channel of exactly one previous layer (no branches,
# bottlenecks or skips), so its weights describe the whole computation, and well-known tools
# (OpenAI Microscope) document its units. (EfficientNet-Lite0 is far smaller and more accurate per
# parameter, but its 1x1 bottlenecks, depthwise convs and residual additions spread a circuit over
# several layers.) The predictions are sensible: the dog is a German shepherd, the coffee an
# espresso, the bee a bee, the cat one of the cat classes (tabby/tiger/Egyptian: ImageNet splits
# cats finely and they look alike). Mistakes are instructive: the rocket on its pad may come out as
# a drilling platform or missile (the towers and lights dominate the picture) and the dahlia as a
# daisy with low confidence (ImageNet has almost no flower classes), errors of the label set and of
# context, not signs of a broken model.

# %% [markdown]
# ## Question 2 — Filter selection and explanation (4 pts)
#
# *Handout:* select a multi-channel filter (a feature) in a *mid-level* layer (a few conv layers
# before and after it), find an input image that maximally excites it with image-gradient
# techniques, and give a hypothesis for what it extracts: what is its function in the network?
#
# The SMU team picked VGG19 conv3_3 unit 195 from [OpenAI Microscope](https://microscope.openai.com/models/vgg19_caffe/conv3_3_conv3_3_0/195)
# (you may pick another unit in the settings cell). First, where does the layer sit?

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
examples = dataset_examples(model, L_C, U_C, sample_images(), k=6)
print("photos, strongest first:", ", ".join(f"{Path(s).stem} ({v:.3g})"
                                            for s, v in zip(examples.sources, examples.scores.tolist())))
dataset_examples_figure(examples, visualization=unit_vis.images[0])
plt.show()

# %% [markdown]
# ### Your answer to Question 2 (4 pts)
#
# Why is this layer "mid-level" (use the numbers above: position, receptive field)? Describe the
# image that maximally excites the unit and what the strongest photo patches have in common.
# Then state your **hypothesis**: what does this unit detect, and what might it be for in the
# network? If you use VGG19, compare with the unit's page on OpenAI Microscope (link above).

# %% [markdown] kind="answer" id="answer_q2" points=4
# *Model answer (instructors).* VGG19 conv3_3 (features.14) is conv layer 7 of 16: six conv
# layers and two pools before it, nine conv layers after; each unit sees a 40x40 px patch of the
# 224 px input (on EfficientNet-Lite0 the preset, blocks.3.0.conv_pw, is conv 16 of 49 with a 67 px
# receptive field). That is mid-level: beyond edges and colours, below object parts. For VGG19
# unit 195 the maximising image (and Microscope) shows many small round shapes, blurred or glowing
# at their edges and in varied colours; the strongest dataset patches contain small bright round
# things (lights, fruit, dots, eyes). Hypothesis: a colour-invariant detector of small circles or
# blobs with soft edges, which later layers can use for eyes, wheels, balls, fruit and lights.
# (On Lite0 the pictures differ; the answer should rest on the student's own figures, naming
# what the synthetic image and the photo patches share and where they disagree.)

# %% [markdown]
# ## Question 3 — Analyse the input channels of the filter (4 pts)
#
# *Handout:* extract the filter coefficients for each input channel of the multi-channel filter
# (a 3x3 filter over 256 input channels gives 256 input filters of 3x3). Keep the six with the
# "strongest" weights, by the L2 norm of each input filter, and call each of them *mostly
# excitatory* or *mostly inhibitory* (mostly positive or mostly negative coefficients).
#
# `labkit.circuits.input_kernels(model, layer, unit)` returns the slice `weight[unit]` of the
# layer's weight tensor `[C_out, C_in, kh, kw]`: one `kh x kw` kernel per input channel.

# %% id="extract"
W = input_kernels(model, L_C, U_C).cpu()  # [C_in, kh, kw]
feeder = feeding_layer(model, L_C)
print(f"{L_C} unit {U_C} has {W.shape[0]} input kernels of {W.shape[1]}x{W.shape[2]}.")
if feeder is None:
    print(f"No single conv layer feeds {L_C} (it reads the image or a concatenation).")
else:
    after = layer_info(model, feeder).activation
    print(f"Input channel c of {L_C} is unit c of {feeder}, "
          + (f"after its non-linearity ({after})." if after else "a linear projection (no non-linearity)."))
    if model.labkit.name not in ("vgg16", "vgg19", "alexnet"):
        print("In a residual network the skip connection adds earlier layers' channels to it as well.")


# %% [markdown]
# ### Step 1 — `top_k_inputs` (2 pts, autograded)
#
# Write `top_k_inputs(weight, k)`: given a unit's kernels `weight` `[C_in, kh, kw]`, return the
# indices of the `k` kernels with the largest L2 norm (the square root of the sum of squares of
# a kernel's `kh*kw` coefficients), **strongest first**, as a list of `int`.
#
# ### Step 2 — `polarity` (2 pts, autograded)
#
# Write `polarity(kernel)`: given one kernel `[kh, kw]`, return `"excitatory"` if it is mostly
# positive and `"inhibitory"` if it is mostly negative. "Mostly" is by **mass**, not by count: compare
# the sum of the positive coefficients with the sum of the absolute values of the negative ones
# (equivalently, the sign of the kernel's sum). A kernel `[[5, -1], [-1, -1]]` has more negative
# coefficients but is excitatory: on a uniform input it raises the unit by 5 - 3 = 2 times that input.
#
# Use torch only; labkit's versions are what the tests compare you with.

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
    return [int(i) for i in torch.argsort(norms, descending=True)[:k]]
    ### END SOLUTION


def polarity(kernel):
    """``"excitatory"`` if the kernel's positive mass exceeds its negative mass, else ``"inhibitory"``.

    Args:
        kernel: [kh, kw] tensor.
    """
    ### BEGIN SOLUTION
    positive = kernel.clamp(min=0).sum()
    negative = (-kernel).clamp(min=0).sum()
    return "excitatory" if positive > negative else "inhibitory"
    ### END SOLUTION


# %% kind="tests" id="test_top_k_inputs" points=2
# Visible tests for top_k_inputs: hand-made kernels, then this unit's real weights vs labkit.
import torch
from labkit.circuits import strongest as labkit_strongest

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

expected = labkit_strongest(model, L_C, U_C, k=K).column("input_channel")
got = [int(i) for i in top_k_inputs(W, K)]
assert got == expected, f"{L_C} unit {U_C}: labkit's {K} strongest inputs are {expected}, you returned {got}"
print(f"top_k_inputs agrees with labkit: the {K} strongest inputs of {L_C} unit {U_C} are {got}")
### BEGIN HIDDEN TESTS
n_units = model.get_submodule(L_C).out_channels
for unit in sorted({0, (U_C + 7) % n_units, n_units - 1}):
    w = input_kernels(model, L_C, unit).cpu()
    for k in (1, 4, 10):
        k = min(k, w.shape[0])
        expected = labkit_strongest(model, L_C, unit, k=k).column("input_channel")
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
# Visible tests for polarity: hand-made kernels, then the strongest real kernels vs labkit.
import torch
from labkit.circuits import polarity as labkit_polarity

cases = [
    (torch.tensor([[1.0, 2.0], [0.5, 0.0]]), "excitatory"),
    (torch.tensor([[-1.0, -0.2], [-0.5, -3.0]]), "inhibitory"),
    (torch.tensor([[5.0, -1.0], [-1.0, -1.0]]), "excitatory"),   # fewer positives, but more positive mass
    (torch.tensor([[-4.0, 1.0], [1.0, 1.0]]), "inhibitory"),
    (torch.tensor([[0.3]]), "excitatory"),
]
for kernel, want in cases:
    got = polarity(kernel)
    assert got in ("excitatory", "inhibitory"), f"polarity must return 'excitatory' or 'inhibitory', got {got!r}"
    assert got == want, (f"polarity({kernel.tolist()}) should be {want!r}, got {got!r}: compare the sum of "
                         f"the positive coefficients with the sum of |negative| ones")
for c in strongest(model, L_C, U_C, k=K).column("input_channel"):  # labkit's ranking: independent of top_k_inputs
    assert polarity(W[c]) == labkit_polarity(W[c])[0], f"input channel {c}: labkit says {labkit_polarity(W[c])[0]}"
print("polarity agrees with labkit on hand-made kernels and the strongest real kernels.")
### BEGIN HIDDEN TESTS
g = torch.Generator().manual_seed(11)
for shape in [(3, 3), (1, 1), (5, 5), (7, 1)]:
    for _ in range(20):
        kernel = torch.randn(*shape, generator=g) + 0.3 * torch.randn(1, generator=g)
        want = labkit_polarity(kernel)[0]
        if want == "balanced":
            continue
        assert polarity(kernel) == want, f"a random {shape} kernel: expected {want}"
assert polarity(torch.tensor([[10.0, -1.0, -1.0], [-1.0, -1.0, -1.0], [-1.0, -1.0, -1.0]])) == "excitatory", \
    "polarity is by mass, not by the count of negative coefficients"
assert polarity(torch.tensor([[-10.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])) == "inhibitory", \
    "polarity is by mass, not by the count of positive coefficients"
n_units = model.get_submodule(L_C).out_channels
w = input_kernels(model, L_C, (U_C + 1) % n_units).cpu()
for c in range(min(w.shape[0], 64)):
    want = labkit_polarity(w[c])[0]
    if want != "balanced":
        assert polarity(w[c]) == want, "another unit's real kernels: wrong polarity"
### END HIDDEN TESTS

# %% [markdown]
# labkit's full version, `labkit.circuits.strongest`, gives the same ranking as a table with the
# positive and negative mass of each kernel. The histogram shows how the strength is spread over
# all input channels: does a handful dominate, or is the unit a broad mix?

# %% id="strongest_table"
records = strongest(model, L_C, U_C, k=K)
display(records)
norm_histogram(input_norms(model, L_C, U_C), k=K, polarities=records.column("polarity"),
               title=f"{L_C} unit {U_C}: strength of its {W.shape[0]} input kernels")
plt.show()
limit = max(float(r["kernel"].abs().max()) for r in records)  # one colour scale for all six
fig, axes = plt.subplots(1, K, figsize=(1.9 * K, 2.3), constrained_layout=True)
for ax, r in zip(axes, records):
    kernel_image(ax, r["kernel"], limit=limit, title=f"input {r['input_channel']}\n{r['polarity']}")
fig.suptitle("the six strongest kernels (orange +, blue -, one colour scale)")
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
# `course.experiments.explore` visualises the six input channels of the layer below in **one
# batched** `visualize` call, and the unit itself in one more; `labkit.plot.weight_explorer`
# draws each input's picture next to the kernel that connects it to the unit (orange frame and
# kernel: excitatory; blue: inhibitory; one colour scale for all kernels), and the unit on the right.

# %% id="weight_explorer"
circuit = explore(model, L_C, U_C, k=K, steps=FV_STEPS, size=FV_SIZE, seed=0)
circuit.figure()  # labkit.plot.weight_explorer(circuit.records, input_images=..., channel_image=...)
plt.show()

# %% [markdown]
# **How to read it.** An excitatory input adds its pattern to the unit where the kernel's orange
# coefficients sit: if the input detects, say, a curve fragment and the kernel is orange on its
# left, the unit likes that fragment to its left. An inhibitory input subtracts: the unit is
# *suppressed* where that input fires, which often sharpens a detector ("a blob, but not an
# edge"). A spatially structured kernel (e.g. orange on one side, blue on the other) says *where*
# relative to the unit each input matters; a uniform kernel says only *whether*.
#
# ### Optional — expanded weights through bottlenecks (ungraded)
#
# In EfficientNet the layer below a 1x1 conv is a narrow *projection* (a bottleneck, without a
# non-linearity), so the interesting channels are one block further down. *Expanded weights*
# multiply the kernels along the path (treating the non-linearities as the identity) to get the
# effective kernel from an earlier layer straight to the unit. For VGG19 the same tool skips one
# layer: from conv3_1 through conv3_2 to conv3_3, giving 5x5 kernels.

# %% id="expanded"
# The conv layer before the one feeding the unit, skipping depthwise convs (one channel each).
before = conv_names[:conv_names.index(feeder)] if feeder else []
before = [n for n in before if model.get_submodule(n).groups == 1]
if before:
    SOURCE = before[-1]
    expanded = explore(model, L_C, U_C, k=K, source=SOURCE, steps=FV_STEPS, size=FV_SIZE, seed=0,
                       pictures=not FAST)  # FAST: kernels only
    display(expanded.records)
    expanded.figure()
    plt.show()
else:
    print(f"{L_C} has no earlier conv layer to expand from.")

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
# *Model answer (instructors).* A good answer names, for each of the six inputs, what its picture
# shows (e.g. a curved edge, a colour blob, a high-frequency texture), its sign and its spatial
# kernel. Excitatory inputs supply the pieces of the unit's pattern where their kernel is orange
# (e.g. curve fragments arranged around the centre make a round shape; colour blobs of different
# hues each excite it, so the circle can be any colour); inhibitory inputs remove what the unit
# should ignore (straight lines, flat texture, a competing colour), sharpening selectivity. The
# combination is a *union of cases* (several colour- or orientation-specific inputs OR-ed into one
# colour/rotation-invariant unit: invariance built from equivariant pieces) with
# excitation/inhibition; whether the unit is *polysemantic* is judged from the dataset examples
# (unrelated things firing it). Limitations: the histogram shows a long tail of weaker inputs whose
# sum is comparable to the top six; the ReLU, biases and (in EfficientNet) residual additions and
# bottlenecks are ignored by reading single-layer weights; an input's picture is only what
# maximises it, not everything it responds to.
