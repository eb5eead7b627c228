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
# channel (the gradient-ascent visualisation of the previous lab). You capture the responses
# yourself, with PyTorch's forward hooks.
#
# Source: Duke ECE590 Lab 1, *Assignment 2(c)* (Hai Li and Yiran Chen).
#
# ## Where each question is answered
#
# | Handout question | Points | Answered in |
# |---|---|---|
# | Duke Assignment 2(c): visualise filter responses before and after the ReLU for the first and the last conv-ReLU pair; what does the ReLU do, does it behave differently in the first and the last layer, why? | 8 | **Question 2(c)**: Part 1 `pre_post_responses`, capturing the responses with hooks (3 pts, autograded), Part 2 `relu_fractions`, counting what is zeroed and what is clipped (2 pts, autograded), and a written answer (3 pts) |
# | (ungraded) every conv/non-linearity pair, any photo, any channel | - | **Explore**, at the end |
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
SHOWN_CHANNELS = 4  # channels per layer in the figures
FEATUREVIS = dict(steps=12, size=96) if FAST else {}  # overrides of the "handout" preset ({}: 30 steps, 224 px)

# %% id="load_model"
import contextlib

import matplotlib.pyplot as plt
import numpy as np
import torch

from course.explorers.lab3 import rectifier_range
from course.roles import roles_for
from labkit import featurevis, images, layers
from labkit.models import load_model

torch.manual_seed(0)
model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
info = model.labkit
print(f"model: {info.name} ({info.source}) on {DEVICE}")

roles = roles_for(model)
L_FIRST, L_LAST = roles.first_conv, roles.last_conv
ACT, FLOOR, CAP = {}, {}, {}  # per layer: the non-linearity after it (module name), its floor and its cap
for role, name in (("first", L_FIRST), ("last", L_LAST)):
    row = layers.layer_info(model, name)
    act = model.get_submodule(row.activation)
    ACT[name] = row.activation
    FLOOR[name], CAP[name] = rectifier_range(act)
    limits = f"floor {FLOOR[name]:g}, " + (f"cap {CAP[name]:g}" if np.isfinite(CAP[name]) else "no cap")
    print(f"{role} conv/non-linearity pair: {name} (handout index {row.index}, {row.channels} channels, "
          f"output {row.out_shape}, receptive field {row.receptive_field} px) -> {row.activation} "
          f"({type(act).__name__}: {limits})")
print("On VGG16 these are features.0 -> features.1 and features.28 -> features.29 "
      "(the handout's layers 0/1 and 28/29).")

# %% [markdown]
# On VGG16 a **ReLU**, `max(z, 0)`, directly follows each convolution and has no upper limit. On
# EfficientNet-Lite0 a batch-norm layer sits in between and the non-linearity is **ReLU6**,
# `min(max(z, 0), 6)`. The setup cell printed which one your model has. A non-linearity with a
# floor and a cap changes a response in two different ways, and this lab counts them separately:
#
# * **zeroed**: the response was below the floor (0) and comes out as 0. Every ReLU does this.
# * **clipped**: the response was above the cap (6) and comes out as 6. Only a capped
#   non-linearity such as ReLU6 does this; for a plain ReLU the clipped fraction is 0 by definition.
#
# "Before" is the non-linearity's input (on Lite0 the batch-normalised conv output), "after" its output.
