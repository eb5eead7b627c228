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

from course import circuit_study as cs
from course.roles import circuit_model_name, roles_for
from labkit.featurevis import dataset_examples, visualize
from labkit.images import denormalize, labelled_images, preprocess
from labkit.layers import layer_info, layers
from labkit.models import load_model
from labkit.plot import dataset_examples_figure, filter_grid, norm_histogram

model = load_model(MODEL_NAME, default="vgg19", device=DEVICE)
if circuit_model_name(model.labkit.name) != model.labkit.name:  # VGG19 -> the Caffe VGG19 when its weights are here
    model = load_model(circuit_model_name(model.labkit.name), device=DEVICE)  # the VGG19 Microscope shows
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
# labelled photos shipped with labkit excite the unit most, and where? The yellow box (and the crop below
# each photo) is the unit's receptive field around its strongest position; the synthetic image is
# on the left.

# %% id="dataset_examples"
PHOTOS = [path for path, _ in labelled_images()]  # the labelled photo set (data/images/labelled/)
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
