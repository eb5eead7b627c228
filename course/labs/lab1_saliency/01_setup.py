# ---
# jupyter:
#   labkit:
#     title: 'Lab 1 - How CNNs see: saliency maps'
# ---

# %% [markdown]
# # Lab 1 - How CNNs see: saliency maps
#
# Which pixels of a photo does a convolutional network's decision depend on? In this lab you
# compute **saliency maps** three ways and compare them:
#
# * the **vanilla gradient** (Simonyan et al. 2014): how much the class score changes when one
#   pixel changes, *d score / d pixel*;
# * **occlusion** (Zeiler & Fergus 2014): cover a patch and see how much the score drops;
# * **Grad-CAM** (Selvaraju et al. 2017): a conv layer's channels weighted by the class's gradient;
# * and, with labkit's implementations, **guided backprop**, **SmoothGrad**, and the **sanity check**
#   of Adebayo et al. (2018) that asks whether a map explains the *model* at all.
#
# You write the first three yourself. An explorer at the end lets you try every method on every
# photo and class.
#
# Sources: Duke ECE590 Lab 1, *Assignment 1* (Hai Li and Yiran Chen), the saliency section of
# Ernest Ryu's lecture on network visualisation (occlusion and backprop pseudo-code, guided
# backprop) and Zsolt Kira's lecture (Grad-CAM's dog vs cat, sanity checks).
#
# **The example images.** The handout's three examples were a king snake, a mastiff next to a cat
# and a spider. This course ships freely licensed photos instead (see `data/images/ATTRIBUTION.md`):
# example 0 is a **garden lizard** (`chameleon.jpg`, an agamid) in place of the snake, example 1 a
# **German shepherd (left half) next to a kitten (right half)** in place of the mastiff and cat,
# and example 2 a **bee** in place of the spider. `course.examples.duke_examples()` returns them with
# their ImageNet target classes.
#
# ## Where each question is answered
#
# | Handout question | Points | Answered in |
# |---|---|---|
# | Duke Assignment 1(a): run the saliency code on each example; why do pixels respond differently, what does it mean for classifier design? | 4 | **Question 1(a)**: `vanilla_saliency` (2 pts, autograded) and a written answer (2 pts) |
# | Duke Assignment 1(b): compare the three examples; which features matter, which images are easy or hard? | 4 | **Question 1(b)**: `occlusion_map` (2 pts, autograded) and a written answer (2 pts) |
# | Duke Assignment 1(c): why does the CNN attend differently to the dog and the cat? | 6 | **Question 1(c)**: `grad_cam_map` (3 pts, autograded), `saliency_share` (1 pt, autograded) and a written answer (2 pts) |
# | Kira lecture: sanity checks for saliency maps (Adebayo et al. 2018) | 2 | **Question 1(d)**: a written answer (2 pts) |
# | (ungraded) every method on every photo and class | - | **Explore**, at the end |
#
# 16 points: 8 autograded, 8 for written answers.
#
# Autograded cells have visible tests (run them as often as you like) and hidden tests that
# compare your functions with labkit's reference implementations when your notebook is graded.
# Before you hand in: *Kernel > Restart & Run All*, then check that every cell ran.

# %% kind="shared" id="colab_setup"

# %% [markdown]
# ## Settings
#
# Put your name in `STUDENT_NAME`. `MODEL_NAME = None` means the course default: VGG16, the
# handout's network, or `$LABKIT_MODEL` when set. On a machine without VGG16's weights (no
# internet), labkit falls back to the bundled **EfficientNet-Lite0** and says so; every cell works
# with either model. `FAST` (from `LABKIT_FAST=1`) uses fewer samples and coarser occlusion so the
# whole notebook runs in a few minutes on a laptop CPU.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG16); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
OCCLUSION = dict(window=64, stride=40) if FAST else dict(window=32, stride=16)  # pixels
SMOOTHGRAD_SAMPLES = 4 if FAST else 32
SANITY_STEPS = 3 if FAST else 12  # layers randomised in the sanity check (from the top)
SANITY_PHOTOS = 16 if FAST else 32  # labelled photos in the sanity check (the bee and a seeded random subset)

# %% id="load_model"
import matplotlib.pyplot as plt
import numpy as np
import torch

from course.examples import duke_examples
from labkit import images, layers, plot, saliency
from labkit.models import load_model

torch.manual_seed(0)
model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
info = model.labkit
print(f"model: {info.name} ({info.source}) on {DEVICE}; input {info.input_size} px, "
      f"normalised with mean {info.mean}, std {info.std}")
print(f"Grad-CAM uses the last conv layer: {layers.last_conv(model)} "
      f"(on VGG16 it is features.28, the handout's layer 28)")

# %% [markdown]
# ## The three examples
#
# Each photo is squashed (not cropped) to the model's input size, so the whole picture is seen and
# the left half of the composite is the dog, the right half the kitten. The *target* of each
# example is the class whose score we explain. The table shows what the model itself predicts.

# %% id="examples"
examples = duke_examples()  # [(name, path, target class index)]
x = images.preprocess([e.path for e in examples], model)  # [3,3,H,W], normalised
targets = [e.target for e in examples]
photos = [images.deprocess(x[i], model) for i in range(len(examples))]  # HxWx3 in [0,1]

with torch.no_grad():
    probs = model(x).softmax(dim=1)
fig, axes = plt.subplots(1, len(examples), figsize=(4 * len(examples), 4.3))
for i, (ex, ax) in enumerate(zip(examples, axes)):
    top = probs[i].topk(3)
    guesses = ", ".join(f"{info.classes[int(c)]} {p:.0%}" for p, c in zip(top.values.tolist(), top.indices))
    print(f"example {i} ({ex.name}): target '{info.classes[ex.target]}' p={probs[i, ex.target]:.2f}; "
          f"top-3: {guesses}")
    ax.imshow(photos[i])
    ax.set_title(f"{i}: {ex.name}\ntarget: {info.classes[ex.target]} ({probs[i, ex.target]:.0%})")
    ax.set_axis_off()
plt.show()
