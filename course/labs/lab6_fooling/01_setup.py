# ---
# jupyter:
#   labkit:
#     title: 'Lab 6 - Fooling images, class visualisation, inversion and style'
# ---

# %% [markdown]
# # Lab 6 - Fooling images, class visualisation, inversion and style
#
# So far you asked *which pixels matter* (saliency) and *what a filter responds to* (feature
# visualisation). This lab turns the same tool, the gradient of the network with respect to its
# input, to four more questions:
#
# 1. **Fooling images** (Szegedy et al. 2014; Goodfellow et al. 2015): how small a change to a
#    correctly classified photo makes the network call it something unrelated?
# 2. **Class visualisation** (Simonyan et al. 2014; Yosinski et al. 2015): what image does the
#    network itself find most "goldfish"-like, and what do the usual regularisers buy?
# 3. **Inversion** (Mahendran & Vedaldi 2015): which images give the *same features* as a photo at a
#    shallow, a middle and a deep layer, i.e. what does each layer keep?
# 4. **Style as statistics** (Gatys et al. 2015): a Gram matrix of a layer's responses keeps which
#    features occur together, and throws away where.
#
# Sources: Zsolt Kira's lecture (gradient ascent on the image, fooling images, "Testing
# robustness", content and style with Gram matrices), Ernest Ryu's lecture (model inversion
# pseudo-code with a total-variation regulariser), and CS231n's network-visualisation assignment
# (fooling images, class visualisation with jitter, L2 decay and blur).
#
# ## Where each question is answered
#
# | Lecture topic | Points | Answered in |
# |---|---|---|
# | Kira: adversarial (fooling) images; Goodfellow et al.'s linearity argument | 5 | **Question 1(a)**: `targeted_fool`, a projected iterative L-inf attack (3 pts, autograded), the smallest budget per photo, and a written answer (2 pts) |
# | Kira: "Testing robustness"; does a fooling image fool another network? | 2 | **Question 1(b)**: the transfer check the notebook runs, and a written answer (2 pts) |
# | Kira / CS231n: class visualisation by gradient ascent with regularisers | 6 | **Question 2**: `class_visualize` (3 pts, autograded), an ablation of each regulariser, labkit's Fourier version, and a written answer (3 pts) |
# | Ryu: model inversion with a total-variation regulariser | 6 | **Question 3**: `tv_loss` (1 pt, autograded), `invert_features` (2 pts, autograded) and a written answer (3 pts) |
# | Kira: style as feature correlations (Gram matrices) | 3 | **Question 4**: `gram` (1 pt, autograded), texture synthesis, and a written answer (2 pts) |
# | (ungraded) any photo, any target class, any budget | - | **Explore**, at the end |
#
# Autograded cells have visible tests (run them as often as you like) and hidden tests that check
# your functions on other inputs when your notebook is graded. Each graded task says which library
# calls are off limits: a function that wraps labkit's (or another library's) implementation of the
# very thing you are asked to write earns nothing. Before you hand in: *Kernel > Restart & Run
# All*, then check that every cell ran.
#
# **Pixels and model inputs.** A *pixel image* is RGB in `[0,1]`. The model reads a *preprocessed*
# batch: the pixel image normalised with the model's own mean and std (`model.labkit`). Budgets,
# clipping and regularisers in this lab are all in pixel units: `images.denormalize(x, model)` takes
# a model input back to pixels, `images.normalize(x01, model)` goes forward. Both are
# differentiable and are *not* off limits anywhere.

# %% kind="shared" id="colab_setup"

# %% [markdown]
# ## Settings
#
# Put your name in `STUDENT_NAME`. `MODEL_NAME = None` means the course default, VGG16, or
# `$LABKIT_MODEL` when set. Without VGG16's weights (no internet) labkit falls back to the bundled
# **EfficientNet-Lite0** and says so; every cell works with either. `FAST` (from `LABKIT_FAST=1`)
# uses fewer photos, fewer steps and smaller pictures so the notebook runs in a few minutes on a
# laptop CPU; the full settings give the good pictures.

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else the course default "vgg16" (offline: "efficientnet_lite0")
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
N_ATTACK = 4 if FAST else 10  # Question 1: correctly classified photos to fool
ATTACK_STEPS = 10 if FAST else 20  # projected gradient steps per budget (step size: budget / 4)
EPS_LADDER = (0.5, 1, 2, 4, 8) if FAST else (0.25, 0.5, 1, 2, 4, 8)  # L-inf budgets tried, in grey levels (1 = 1/255)
TARGET_CLASS = "goldfish"  # the unrelated class every photo is pushed to
CLASSVIS_CLASSES = ["goldfish", "flamingo", "tarantula"] if FAST else [
    "goldfish", "flamingo", "tarantula", "pizza", "lemon", "jellyfish"]
CLASSVIS = dict(steps=40, size=112) if FAST else dict(steps=200, size=224)  # Question 2, your method and labkit's
INVERT = dict(steps=100, size=112) if FAST else dict(steps=300, size=224)  # Question 3
INVERT_PHOTOS = ["dog", "bee"] if FAST else ["dog", "bee", "coffee", "citrus"]
STYLE = dict(steps=60, size=112) if FAST else dict(steps=300, size=224)  # Question 4
STYLE_PHOTO = "citrus"

# %% id="load_model"
import io
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF

from course.roles import roles_for
from labkit import featurevis, images, layers
from labkit.models import load_model, model_names, weights_available

torch.manual_seed(0)
model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
info = model.labkit
print(f"model: {info.name} ({info.source}) on {DEVICE}; input {info.input_size} px, "
      f"normalised with mean {info.mean}, std {info.std}")

# The layers this lab reads (course/roles.py, one row per model): a shallow, a middle and a deep layer
# for inversion (after the non-linearity on VGG: relu2_2, relu4_3/relu4_4, relu5_3/relu5_4) and
# Gatys et al.'s first style layers (VGG: relu1_1, relu2_1, relu3_1).
roles = roles_for(model)
INVERT_LAYERS, STYLE_LAYERS = roles.invert_layers, roles.style_layers
print(f"inversion layers (shallow, middle, deep): {INVERT_LAYERS}; style layers: {STYLE_LAYERS}")


def top1(x):
    """The model's top class and its probability for a preprocessed batch: ([N] long, [N] float), CPU."""
    with torch.no_grad():
        p = model(x).softmax(dim=1)
    conf, cls = p.max(dim=1)
    return cls.cpu(), conf.cpu()


def gaussian_blur(images01, sigma):
    """Blur a batch [N,3,H,W] with a Gaussian of std `sigma` pixels (kernel 2*ceil(2 sigma)+1), same shape."""
    k = 2 * int(np.ceil(2 * sigma)) + 1
    return TF.gaussian_blur(images01, [k, k], [float(sigma), float(sigma)])


# %% [markdown]
# ## The photos
#
# Question 1 attacks photos that the model classifies **correctly**: labkit's labelled photo set
# (`images.labelled_images()`, each photo with its ImageNet class), keeping the first `N_ATTACK`
# photos whose label is the model's top-1 class and for which the target class (`TARGET_CLASS`) is
# *unrelated*: not among the model's top 5 classes for the photo (so no other fish when the target
# is a goldfish). (If the labelled set is not installed, the notebook uses the sample photos that the
# model classifies with probability at least 0.5, and says so.)

# %% id="photos"
TARGET = images.class_index(TARGET_CLASS)
try:
    labelled = [(str(p), int(t)) for p, t in images.labelled_images()]
except (AttributeError, FileNotFoundError) as err:
    labelled = None
    print(f"no labelled photo set ({type(err).__name__}): using sample photos classified with p >= 0.5")
candidates = labelled or [(str(p), None) for p in images.sample_images().values()]
chosen = []
for start in range(0, len(candidates), 16):
    batch = candidates[start:start + 16]
    with torch.no_grad():
        probs = model(images.preprocess([p for p, _ in batch], model)).softmax(dim=1).cpu()
    conf, cls = probs.max(dim=1)
    top5 = probs.topk(5, dim=1).indices
    for (path, label), c, p, t5 in zip(batch, cls.tolist(), conf.tolist(), top5.tolist()):
        ok = (c == label) if label is not None else (p >= 0.5)
        if ok and TARGET not in t5:  # the target must be unrelated: not among the photo's top 5 classes
            chosen.append((path, c, p))
    if len(chosen) >= N_ATTACK:
        break
chosen = chosen[:N_ATTACK]
x_att = images.preprocess([p for p, _, _ in chosen], model)  # [N,3,H,W], preprocessed
clean_class = torch.tensor([c for _, c, _ in chosen])
for path, c, p in chosen:
    print(f"{path.split('/')[-1]:28s} {info.classes[c]:24s} p = {p:.2f}")
print(f"{len(chosen)} correctly classified photos; target class for all of them: '{TARGET_CLASS}' ({TARGET})")
