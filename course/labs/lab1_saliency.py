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
# * and, with labkit's implementations, **guided backprop**, **Grad-CAM**, **SmoothGrad**, and the
#   **sanity check** of Adebayo et al. (2018) that asks whether a map explains the *model* at all.
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
# | Duke Assignment 1(a): run the saliency code on each example; why do pixels respond differently, what does it mean for classifier design? | 3 | **Question 1(a)**: `vanilla_saliency` (1 pt, autograded) and a written answer (2 pts) |
# | Duke Assignment 1(b): compare the three examples; which features matter, which images are easy or hard? | 3 | **Question 1(b)**: `occlusion_map` (1 pt, autograded) and a written answer (2 pts) |
# | Duke Assignment 1(c): why does the CNN attend differently to the dog and the cat? | 4 | **Question 1(c)**: `saliency_share` (1 pt, autograded) and a written answer (3 pts) |
# | Kira lecture: sanity checks for saliency maps (Adebayo et al. 2018) | 2 | **Question 1(d)**: a written answer (2 pts; beyond the Duke handout's 10 points) |
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


# %% [markdown]
# ## Question 1(a) - Which pixels is the class score sensitive to? (3 pts)
#
# The **score** of a class is the network's output for it *before* the softmax (the logit). The
# **vanilla gradient** is the derivative of the target's score with respect to every input value,
# `d score / d x`, a tensor shaped like the image `[3,H,W]`. Where it is large, changing that pixel
# a little changes the score a lot. Ryu's pseudo-code:
#
# 1. freeze the network (labkit models already are), 2. make the input require gradients,
# 3. run the network, 4. back-propagate the target's score, 5. read the input's gradient,
# 6. the saliency map is its absolute value; we take the **maximum over the three colour
# channels**, giving one value per pixel `[H,W]`.
#
# ### Your code (1 of 3 pts, autograded)
#
# Write `vanilla_saliency(model, x, target)`. It must work for a batch of `N` images, with one
# target for all of them (an `int`) or one per image (a list of `N` ints), and for any
# `torch.nn.Module` that maps `[N,3,H,W]` to scores `[N,classes]`. Leave the caller's `x`
# untouched: work on `x.detach().clone()`.

# %% kind="solution" id="vanilla_saliency"
def vanilla_saliency(model, x, target):
    """Vanilla gradient saliency: max over colour channels of |d score_target / d x|.

    Args:
        model: a classifier, [N,3,H,W] -> [N,classes] pre-softmax scores.
        x: [N,3,H,W] preprocessed batch.
        target: an int (the same class for every image) or a list of N ints.

    Returns:
        [N,H,W] tensor >= 0 (score units per unit of normalised input).
    """
    ### BEGIN SOLUTION
    x = x.detach().clone().requires_grad_(True)
    scores = model(x)
    t = torch.as_tensor(target, device=scores.device).reshape(-1).expand(len(x))
    chosen = scores[torch.arange(len(x), device=scores.device), t]
    (grad,) = torch.autograd.grad(chosen.sum(), x)
    return grad.abs().amax(dim=1)
    ### END SOLUTION


# %% kind="tests" id="test_vanilla_saliency" points=1
# A linear "network": its gradient is its weight, so the saliency is max_c |W[target]|.
_toy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 5, 4))
torch.nn.init.normal_(_toy[1].weight, generator=torch.Generator().manual_seed(0))
_xt = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(1))
_got = vanilla_saliency(_toy, _xt, [2, 0])
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (2, 5, 5), f"expected shape [N,H,W] = (2, 5, 5), got {tuple(_got.shape)}"
_want = _toy[1].weight.detach().view(4, 3, 5, 5).abs().amax(dim=1)[[2, 0]]
assert torch.allclose(_got, _want, atol=1e-6), (
    "On a linear model the gradient of score k is the weight row W[k], so the saliency must be "
    "max over channels of |W[k]|. Check the target indexing (one target per image) and dim=1 for the max.")
_one = vanilla_saliency(_toy, _xt, 3)
assert torch.allclose(_one, _toy[1].weight.detach().view(4, 3, 5, 5).abs().amax(dim=1)[[3, 3]], atol=1e-6), (
    "An int target means the same class for every image in the batch.")
assert not _xt.requires_grad, "leave the caller's x alone: work on x.detach().clone()"
_s = vanilla_saliency(model, x[:1], targets[0])
assert tuple(_s.shape) == (1, *x.shape[-2:]), f"expected (1, H, W) for one photo, got {tuple(_s.shape)}"
assert bool((_s >= 0).all()) and bool(torch.isfinite(_s).all()), "saliency is a magnitude: finite and >= 0"
assert layers.forward_hooks_count(model) == 0, "your function left hooks on the model"
print("vanilla_saliency: visible tests passed")
### BEGIN HIDDEN TESTS
_xr = images.preprocess([e.path for e in duke_examples()], model)
_tr = [e.target for e in duke_examples()]
_ref = saliency.vanilla(model, _xr, _tr)
_mine = vanilla_saliency(model, _xr, _tr)
_err = float((_mine.to(_ref.device) - _ref).abs().max())
assert _err <= 1e-4 * float(_ref.abs().max()) + 1e-7, (
    f"On the three example photos your map differs from labkit.saliency.vanilla by up to {_err:.3g} "
    f"(largest reference value {float(_ref.abs().max()):.3g}). Use each image's own target logit "
    "(before softmax), the gradient with respect to the input, its absolute value, then max over dim=1.")
_xn = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2)).to(_xr.device)
_err = float((vanilla_saliency(model, _xn, 7).to(_ref.device) - saliency.vanilla(model, _xn, 7)).abs().max())
assert _err <= 1e-4 * float(saliency.vanilla(model, _xn, 7).abs().max()) + 1e-7, (
    f"On random 64x64 inputs with target 7 your map differs from the reference by {_err:.3g}.")
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% [markdown]
# ### The handout's picture: the signed gradient, gray means zero
#
# The Duke notebook shows the raw gradient as a colour image with **gray = 0**: brighter than gray
# means increasing that colour there raises the score, darker means it lowers it
# (`labkit.plot.signed_gradient_image`). Next to it: your saliency map, alone and over the photo
# (for display, each map is capped at its 99th percentile so that a few extreme pixels do not
# turn everything else black).

# %% id="fig_vanilla"
def clip99(maps):
    """For display only: cap each map at its 99th percentile so a few extreme pixels don't hide the rest."""
    top = maps.flatten(1).quantile(0.99, dim=1)
    return torch.minimum(maps, top[:, None, None])


signed = saliency.gradient(model, x, targets)  # [3,3,H,W], labkit's reference
mine = vanilla_saliency(model, x, targets)  # [3,H,W], your function
fig, axes = plt.subplots(len(examples), 4, figsize=(14, 3.6 * len(examples)))
for i, ex in enumerate(examples):
    axes[i, 0].imshow(photos[i])
    axes[i, 0].set_title(f"{ex.name}: {info.classes[ex.target]}")
    axes[i, 1].imshow(plot.signed_gradient_image(signed[i]))
    axes[i, 1].set_title("signed gradient (gray = 0)")
    axes[i, 2].imshow(clip99(mine)[i].cpu(), cmap="gray")
    axes[i, 2].set_title("your saliency max|grad|")
    plot.overlay(photos[i], clip99(mine)[i], axes[i, 3], title="saliency over the photo")
    for ax in axes[i]:
        ax.set_axis_off()
fig.tight_layout()
plt.show()


# %% [markdown]
# What to look for: where is the gradient gray (zero), and where does it light up? Compare the
# object with the background, edges and textures with flat regions. The speckle is typical: the
# gradient only describes a tiny change around this one image, so it is noisy. (VGG16's maps are
# usually cleaner than EfficientNet-Lite0's.)
#
# ### Your answer (2 of 3 pts)
#
# Record the results for the three examples (the figure above). Describe and analyse what you see.
# Why do input pixels show different responses at the output? What does this indicate for the
# design of classification algorithms?

# %% [markdown] kind="answer" id="answer_1a" points=2
# *Model answer (instructors).* The gradient is near zero (gray) on smooth background and large
# on a sparse set of pixels on the object: edges, eyes, high-contrast texture. Pixels respond
# differently because the score is a highly non-linear function of the image: ReLUs are switched
# off for most background patterns, pooling keeps the strongest local responses, and the filters
# that feed the target logit respond to object parts, so only pixels in their receptive fields
# (and on the patterns they detect) can move the score. The map is local (first-order) and noisy,
# so it shows sensitivity, not "importance" in general. For design: the classifier relies on a
# small set of discriminative, mostly local features rather than the whole object, so it can be
# fooled by small changes there (adversarial examples) and can latch onto spurious context;
# architectures and training (data augmentation, regularisation, attention to shape) should be
# chosen with that in mind, and such maps are a debugging tool for what a model uses.

# %% [markdown]
# ## Question 1(b) - Comparing the three examples (3 pts)
#
# A gradient says what happens for a *tiny* change. **Occlusion** asks a bigger question: what if
# this part of the image were gone? Ryu's pseudo-code slides a `k x k` patch over the image, fills
# it with a plain value, and records the class score. Here the patch is filled with **0 in
# normalised units**, i.e. the model's mean colour, and every pixel gets the **average score drop**
# `score(x) - score(occluded x)` over all patch positions that cover it. Positive = hiding it hurts
# the class.
#
# ### Your code (1 of 3 pts, autograded)
#
# Write `occlusion_map(model, x, target, window, stride)`. Patch top-left corners are at rows and
# columns `range(0, H - window + stride, stride)` (and likewise for `W`); a last patch that runs
# past the border is simply cut off there, so every pixel is covered at least once. All three
# colour channels are covered. One forward pass per patch position is fine (you may batch them).

# %% kind="solution" id="occlusion_map"
def occlusion_map(model, x, target, window, stride):
    """Occlusion sensitivity: mean drop of the target score when a square patch is set to 0.

    Args:
        model: a classifier, [N,3,H,W] -> [N,classes] pre-softmax scores.
        x: [N,3,H,W] preprocessed batch (0 = the model's mean colour).
        target: an int (the same class for every image) or a list of N ints.
        window: patch side in pixels. stride: step between patch positions in pixels (<= window).

    Returns:
        [N,H,W] tensor: for each pixel, the mean of score(x) - score(occluded x) over the patches
        that cover it (score units).
    """
    ### BEGIN SOLUTION
    n, _, height, width = x.shape
    t = torch.as_tensor(target, device=x.device).reshape(-1).expand(n)
    total = torch.zeros(n, height, width, device=x.device)
    count = torch.zeros(height, width, device=x.device)
    with torch.no_grad():
        clean = model(x)[torch.arange(n), t]
        for i in range(0, height - window + stride, stride):
            for j in range(0, width - window + stride, stride):
                covered = x.clone()
                covered[:, :, i:i + window, j:j + window] = 0
                drop = clean - model(covered)[torch.arange(n), t]
                total[:, i:i + window, j:j + window] += drop[:, None, None]
                count[i:i + window, j:j + window] += 1
    return total / count
    ### END SOLUTION


# %% kind="tests" id="test_occlusion_map" points=1
class _QuadrantSum(torch.nn.Module):
    """Two identical 'class scores': the sum of the top-left 16x16 pixels (all channels)."""

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()), requires_grad=False)

    def forward(self, inp):
        return inp[:, :, :16, :16].sum(dim=(1, 2, 3))[:, None].repeat(1, 2) + self.unused

_ones = torch.ones(1, 3, 32, 32)
_got = occlusion_map(_QuadrantSum(), _ones, 1, window=8, stride=8)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (1, 32, 32), f"expected shape [N,H,W] = (1, 32, 32), got {tuple(_got.shape)}"
_want = torch.zeros(1, 32, 32)
_want[:, :16, :16] = 3 * 8 * 8  # hiding an 8x8 patch there removes 3*64 ones from the sum
assert torch.allclose(_got.float(), _want), (
    "On a model that sums the top-left 16x16 pixels, an 8x8 patch there should lower the score by 192 "
    "and a patch elsewhere by 0. Check the patch positions, that all 3 channels are covered, and the sign "
    "(score(x) - score(occluded)).")
# One patch covering the whole image: every pixel gets score(x) - score(all zeros).
_x0 = x[:1]
_whole = occlusion_map(model, _x0, targets[0], window=_x0.shape[-1], stride=_x0.shape[-1])
with torch.no_grad():
    _drop = model(_x0)[0, targets[0]] - model(torch.zeros_like(_x0))[0, targets[0]]
assert torch.allclose(_whole.to(_drop.device), _drop.expand_as(_whole), rtol=1e-4, atol=1e-4), (
    "With window = stride = image size there is one patch, the whole image, so every pixel should get "
    "score(x) - score(zeros).")
assert layers.forward_hooks_count(model) == 0, "your function left hooks on the model"
print("occlusion_map: visible tests passed")
### BEGIN HIDDEN TESTS
_xn = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(3)).to(x.device)
_ref = saliency.occlusion(model, _xn, [5, 9], window=16, stride=12, progress=False)
_mine = occlusion_map(model, _xn, [5, 9], window=16, stride=12)
_err = float((_mine.to(_ref.device) - _ref).abs().max())
assert _err <= 1e-3 * float(_ref.abs().max()) + 1e-4, (
    f"On random 48x48 inputs (window 16, stride 12, targets [5, 9]) your map differs from "
    f"labkit.saliency.occlusion by up to {_err:.3g}. Average the drops of all patches covering a pixel.")
_xb = images.preprocess("bee", model, size=64)
_tb = duke_examples()[2].target
_ref = saliency.occlusion(model, _xb, _tb, window=24, stride=16, progress=False)
_mine = occlusion_map(model, _xb, _tb, window=24, stride=16)
_err = float((_mine.to(_ref.device) - _ref).abs().max())
assert _err <= 1e-3 * float(_ref.abs().max()) + 1e-4, (
    f"On the bee at 64x64 with window 24 and stride 16 (the last patches run past the border and are "
    f"cut off) your map differs from the reference by up to {_err:.3g}. Patch corners: "
    "range(0, H - window + stride, stride).")
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% [markdown]
# ### Five views of the three examples
#
# labkit computes the heavier maps (batched, so occlusion is faster than a plain loop):
# **occlusion** at full resolution, **guided backprop** (Springenberg et al.: negative gradients are
# stopped at every ReLU on the way back, which gives sharp, edge-like pictures; shown as a signed
# image, gray = 0), **Grad-CAM** (Selvaraju et al.: the last conv layer's channels weighted by
# their average gradient, coarse but class-specific) and **SmoothGrad** (Smilkov et al.: the
# gradient magnitude averaged over noisy copies of the image, less speckled). Every map is scaled
# to its own range: compare *where* each method looks, not the colours' absolute values.

# %% id="fig_compare"
maps = {
    "vanilla (yours)": clip99(vanilla_saliency(model, x, targets)),
    f"occlusion {OCCLUSION['window']}px": saliency.occlusion(model, x, targets, **OCCLUSION,
                                                             progress=not FAST),
    "guided backprop": saliency.guided_backprop(model, x, targets),
    "Grad-CAM": saliency.grad_cam(model, x, targets),
    "SmoothGrad": clip99(saliency.smoothgrad(model, x, targets, samples=SMOOTHGRAD_SAMPLES, seed=0,
                                             progress=not FAST)),
}
for i, ex in enumerate(examples):
    fig = plot.compare_methods(photos[i], {name: m[i] for name, m in maps.items()}, ncols=6, panel_size=2.6,
                               title=f"example {i}: {ex.name}, target '{info.classes[ex.target]}' "
                                     f"(p = {probs[i, ex.target]:.2f})")
    plt.show()


# %% [markdown]
# What to look for: do the methods agree on where the evidence is? How much of each map lies on
# the object and how much on its surroundings (the flower, the branch and leaves, the grass)? How
# confident is the model on each example (printed in the titles), and does a confident
# prediction come with a compact map? Occlusion and Grad-CAM are coarse; gradient maps are sharp
# but noisy; guided backprop looks like an edge drawing of the photo (keep that in mind for
# Question 1(d)).
#
# ### Your answer (2 of 3 pts)
#
# Compare the results of the three example images. Describe your observations and your
# understanding. What types of features are more important for classification? What types of
# images are relatively easier or harder for the classification task by the CNN?

# %% [markdown] kind="answer" id="answer_1b" points=2
# *Model answer (instructors).* All methods concentrate on the object, most strongly on
# distinctive local texture and parts (the bee's striped abdomen and wings, the lizard's head,
# eye and scales, the dog's face and ears) and much less on outlines of the whole body or on
# colour of large regions: texture and part features dominate (cf. Geirhos et al.'s texture
# bias). Context also contributes (branch, flower), visible in occlusion as small positive or
# negative drops. Easy images: one large, centred, well-lit object with a characteristic texture
# on a plain background (the bee: high confidence, compact maps). Harder: camouflaged objects
# whose texture resembles the background, fine-grained classes that differ in small details (the
# agama vs other lizards: probability is split), small or partly hidden objects, and several
# objects of different classes in one picture (the composite), where the score of one class
# competes with evidence for the other.

# %% [markdown]
# ## Question 1(c) - The dog and the cat (4 pts)
#
# On the composite, the handout's code explains the top class, a dog. Here we explain **both**
# classes on the same image: the German shepherd, and the cat class the model scores highest on
# this image. Grad-CAM is class-discriminative by design (Kira's lecture shows the same dog/cat
# photo): its map should move when the target changes; the plain gradient moves much less.
#
# ### Your code (1 of 4 pts, autograded)
#
# To put numbers on "where the map looks", write `saliency_share(maps, region)`: for each
# non-negative map, the fraction of its total that falls inside a region (a boolean `[H,W]` mask).
# A map that is zero everywhere has share 0.

# %% kind="solution" id="saliency_share"
def saliency_share(maps, region):
    """Fraction of each map's total inside a region.

    Args:
        maps: [N,H,W] non-negative saliency maps.
        region: [H,W] boolean mask (True = inside).

    Returns:
        [N] tensor in [0, 1]: sum of the map inside the region / sum of the whole map (0 for an
        all-zero map).
    """
    ### BEGIN SOLUTION
    inside = (maps * region.to(maps.device, maps.dtype)).sum(dim=(1, 2))
    total = maps.sum(dim=(1, 2))
    return torch.where(total > 0, inside / total.clamp(min=1e-30), torch.zeros_like(total))
    ### END SOLUTION


# %% kind="tests" id="test_saliency_share" points=1
_maps = torch.zeros(3, 4, 4)
_maps[0, :, :2] = 1.0  # all of it on the left half
_maps[1] = 1.0  # spread evenly
_left = torch.zeros(4, 4, dtype=torch.bool)
_left[:, :2] = True
_got = saliency_share(_maps, _left)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (3,), f"expected one share per map, shape (3,), got {tuple(_got.shape)}"
assert torch.allclose(_got.float(), torch.tensor([1.0, 0.5, 0.0])), (
    f"expected shares [1.0, 0.5, 0.0] (all left, even, all-zero map), got {_got.tolist()}")
print("saliency_share: visible tests passed")
### BEGIN HIDDEN TESTS
_g = torch.Generator().manual_seed(4)
_rm = torch.rand(5, 20, 30, generator=_g) ** 3
_reg = torch.rand(20, 30, generator=_g) > 0.7
_want = np.array([(m.numpy() * _reg.numpy()).sum() / m.numpy().sum() for m in _rm])
_got = saliency_share(_rm, _reg)
assert np.allclose(np.asarray(_got.detach().cpu(), dtype=float), _want, rtol=1e-5, atol=1e-7), (
    f"On random maps and a random region your shares {np.round(np.asarray(_got.detach().cpu()), 4)} "
    f"differ from sum(map * region) / sum(map) = {np.round(_want, 4)}.")
_cam = saliency.grad_cam(model, x[1:2], targets[1])
_half = torch.zeros(_cam.shape[-2:], dtype=torch.bool)
_half[:, : _cam.shape[-1] // 2] = True
_want = float(_cam[0][_half.to(_cam.device)].sum() / _cam[0].sum())
assert abs(float(saliency_share(_cam, _half)[0]) - _want) < 1e-5, (
    "On a real Grad-CAM map of the composite your share of the left half is wrong.")
### END HIDDEN TESTS

# %% id="fig_dog_cat"
composite = x[1:2]  # dog left, kitten right
cat_classes = [images.class_index(name) for name in
               ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")]
with torch.no_grad():
    logits = model(composite)[0]
dog = examples[1].target
cat = max(cat_classes, key=lambda c: float(logits[c]))
print(f"scores (logits): {info.classes[dog]} {logits[dog]:.2f}, {info.classes[cat]} {logits[cat]:.2f}; "
      f"probabilities {probs[1, dog]:.1%} vs {probs[1, cat]:.1%}")

pair = composite.expand(2, -1, -1, -1)  # the same image twice: one row per target class
two_targets = [dog, cat]
by_method = {
    "vanilla (yours)": vanilla_saliency(model, pair, two_targets),
    "SmoothGrad": saliency.smoothgrad(model, pair, two_targets, samples=SMOOTHGRAD_SAMPLES, seed=0,
                                      progress=not FAST),
    "Grad-CAM": saliency.grad_cam(model, pair, two_targets),
}
left_half = torch.zeros(pair.shape[-2:], dtype=torch.bool)
left_half[:, : pair.shape[-1] // 2] = True  # the dog's half

fig, axes = plt.subplots(2, len(by_method) + 1, figsize=(3.4 * (len(by_method) + 1), 6.6))
for row, target in enumerate(two_targets):
    axes[row, 0].imshow(photos[1])
    axes[row, 0].set_title(f"target: {info.classes[target]}")
    axes[row, 0].set_axis_off()
    for col, (name, m) in enumerate(by_method.items(), start=1):
        share = float(saliency_share(m[row:row + 1], left_half)[0])
        plot.overlay(photos[1], clip99(m[row:row + 1])[0], axes[row, col],
                     title=f"{name}\n{share:.0%} on the dog's half")
fig.tight_layout()
plt.show()

# %% [markdown]
# What to look for: does each method's map move to the kitten when the target changes from the
# dog to the cat? Grad-CAM is built to be class-specific; the gradient maps show where the score
# is *sensitive*, which includes evidence *against* a class, so they move much less. Compare the
# two scores printed above as well: how strongly does the model believe in each animal?
#
# ### Your answer (3 of 4 pts)
#
# For the composite image the CNN pays different attention to the dog and the cat. To the best of
# your knowledge, what could be the reason for the difference? Use the figure and the shares above.

# %% [markdown] kind="answer" id="answer_1c" points=3
# *Model answer (instructors).* The network is asked about one class at a time and was trained
# with one label per image: the softmax makes the classes compete, so for the top class (the dog)
# the evidence in the dog's half dominates and the cat's features mostly act as evidence
# *against* it. ImageNet has over 100 dog breeds and only a handful of cat classes, so the network
# has many more, and finer, dog features; the German shepherd is also larger, higher in contrast
# and in a typical pose, while the kitten is small and partly hidden by the wool. Gradient maps are
# not class-discriminative (they show where the score is sensitive, including negative evidence),
# whereas Grad-CAM weights the last conv layer's channels by the class's gradient and localises
# each class. The composite also sits outside the training distribution (two animals, a seam in
# the middle), and the squashing to 224 px changes the animals' proportions.

# %% [markdown]
# ## Question 1(d) - Do the maps explain the model? A sanity check (2 pts)
#
# Kira's lecture ends with a warning: saliency maps "can be misleading or uninformative" (Adebayo et
# al. 2018). Their **cascading randomisation** test replaces the trained weights by random ones,
# from the top (the classifier) downwards, one layer at a time, and recomputes the map. A method
# that explains the *model* must change as the model is destroyed; one that keeps looking the same
# is mostly showing the image (edges), whatever the weights. The curve shows the Spearman rank
# correlation with the original map (1 = same ranking of pixels, 0 = unrelated). labkit works on a
# copy of the model, so `model` itself is untouched.

# %% id="fig_sanity"
bee = x[2:3]
checks = {
    method: saliency.sanity_check(model, bee, targets[2], method, max_steps=SANITY_STEPS, seed=0,
                                  progress=not FAST)
    for method in ("vanilla", "guided_backprop", "grad_cam")
}
fig = plot.plot_sanity(checks)
plt.show()
print(checks["guided_backprop"])
assert layers.forward_hooks_count(model) == 0

# %% [markdown]
# What to look for: the curves start at 1 (the original model). How fast does each one fall as
# more layers are randomised? A point may be missing when a randomised model's map became
# all zero (no ranking to compare), which happens to Grad-CAM once its layer is random. Adebayo et
# al. found that guided backprop stays high: its pictures look like an edge detector applied to
# the photo, even for a network with random weights.
#
# ### Your answer (2 pts)
#
# Which methods pass the sanity check on this model, and which do not? What does it mean for a
# saliency method if its map barely changes when the network's weights are randomised?

# %% [markdown] kind="answer" id="answer_1d" points=2
# *Model answer (instructors).* Vanilla gradients and Grad-CAM lose their correlation after a few
# top layers are randomised: they depend on the learned weights and pass. Guided backprop keeps a
# high correlation far down the cascade: because negative gradients are zeroed at every ReLU, the
# map is dominated by the input's edges and the low-level layers, so it behaves like an edge
# detector and fails the test. A method whose map is insensitive to the model's parameters cannot
# tell us what the model has learned (or detect a broken/untrained model); it produces pleasing
# pictures of the image, not explanations. Sanity checks like this (and data randomisation) should
# precede trusting any attribution method.

# %% [markdown]
# ## Before you hand in
#
# *Kernel > Restart & Run All*, check that every figure appears and every visible test prints
# "passed", and that your name is in the settings cell. To make the PDF report the Duke handout
# asks for, run `labkit report lab1_saliency.ipynb --to pdf` in a terminal (or
# `labkit.report.export("pdf")` in a cell).
