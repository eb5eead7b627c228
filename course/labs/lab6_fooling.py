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

from labkit import featurevis, images, layers
from labkit.models import load_model, model_names, weights_available

torch.manual_seed(0)
model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
info = model.labkit
print(f"model: {info.name} ({info.source}) on {DEVICE}; input {info.input_size} px, "
      f"normalised with mean {info.mean}, std {info.std}")

# The layers this lab reads, per model family: a shallow, a middle and a deep layer for inversion
# (after the non-linearity on VGG: relu2_2, relu4_3/relu4_4, relu5_3/relu5_4) and Gatys et al.'s first
# style layers (relu1_1, relu2_1, relu3_1). Other models: evenly spaced conv layers.
LAB6_LAYERS = {
    "vgg16": dict(invert=("features.8", "features.22", "features.29"), style=("features.1", "features.6", "features.11")),
    "vgg19": dict(invert=("features.8", "features.26", "features.35"), style=("features.1", "features.6", "features.11")),
    "efficientnet_lite0": dict(invert=("blocks.1.1.conv_pwl", "blocks.3.2.conv_pwl", "blocks.5.3.conv_pwl"),
                               style=("blocks.0.0.conv_pw", "blocks.1.1.conv_pwl", "blocks.2.1.conv_pwl")),
}
LAB6_LAYERS["vgg19_caffe"] = LAB6_LAYERS["vgg19"]
if info.name in LAB6_LAYERS:
    INVERT_LAYERS, STYLE_LAYERS = LAB6_LAYERS[info.name]["invert"], LAB6_LAYERS[info.name]["style"]
else:
    _convs = [row.name for row in layers.layers(model).conv()]
    INVERT_LAYERS = tuple(_convs[int(f * (len(_convs) - 1))] for f in (0.15, 0.5, 0.9))
    STYLE_LAYERS = tuple(_convs[i] for i in (0, 2, 4))
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

# %% [markdown]
# ## Question 1(a) - Fooling images (5 pts)
#
# A **targeted attack** changes a photo `x` as little as possible so that the model's top class
# becomes a chosen target `t`. "As little as possible" is an **L-inf budget** `eps`: no pixel value
# may move by more than `eps` (in `[0,1]` pixel units, so `eps = 2/255` is two grey levels of an
# 8-bit image). The iterative attack (Kurakin et al. 2017; Madry et al. 2018 call it PGD) repeats:
#
# 1. compute the gradient `g` of the cross-entropy loss `CE(model(x_adv), t)` with respect to the
#    **pixel** image;
# 2. step *down* the loss by a fixed amount per pixel: `x_adv = x_adv - step * sign(g)`;
# 3. **project** back: clip `x_adv` to `[x - eps, x + eps]` (the budget around the *original*
#    pixels), then to `[0, 1]` (valid pixels).
#
# Careful: the valid range `[0,1]` is in pixel units, *before* normalisation. The model's input is
# normalised with its own mean and std, so clipping the preprocessed tensor to `[0,1]` or to
# `x ± eps` is wrong for every model. Go to pixels with `images.denormalize(x, model)`, take every
# step and clip there, and call the model on `images.normalize(x_adv01, model)`.
#
# ### Your code (3 of 5 pts, autograded)
#
# Write `targeted_fool(model, x, target, *, eps, step, steps)`: `steps` iterations as above, starting
# from `x_adv = x` (no random start, no early stop), for a batch of `N` images with one target for
# all (`int`) or one per image (list of `N` ints). Return the adversarial batch **preprocessed**,
# like `x`, and leave the caller's `x` untouched. Use the loss summed over the batch (each image's
# gradient is then its own).
#
# *Off limits:* `labkit.featurevis` (its `targeted_attack` and `fgsm`), captum, torchattacks,
# foolbox and advertorch. `torch.nn.functional.cross_entropy`, `torch.autograd.grad` and
# `images.normalize/denormalize` are fine.

# %% kind="solution" id="targeted_fool"
def targeted_fool(model, x, target, *, eps, step, steps):
    """Targeted iterative L-inf attack (projected sign-gradient steps in pixel space).

    Args:
        model: a labkit classifier (its `model.labkit` has mean/std), [N,3,H,W] -> [N,classes] scores.
        x: [N,3,H,W] preprocessed batch.
        target: an int (one class for every image) or a list of N ints.
        eps: L-inf budget in [0,1] pixel units; step: step size per iteration, same units.
        steps: number of iterations.

    Returns:
        [N,3,H,W] adversarial batch, preprocessed like x, whose pixels are within eps of x's and in [0,1].
    """
    ### BEGIN SOLUTION
    x01 = images.denormalize(x.detach(), model)
    t = torch.as_tensor(target, device=x.device).reshape(-1).expand(len(x))
    adv = x01.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(images.normalize(adv, model)), t, reduction="sum")
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() - step * grad.sign()
        adv = torch.min(torch.max(adv, x01 - eps), x01 + eps).clamp(0, 1)
    return images.normalize(adv, model)
    ### END SOLUTION


# %% kind="tests" id="test_targeted_fool" points=3
class _LinearToy(torch.nn.Module):
    """A linear classifier on 3x4x4 inputs with an unusual normalisation (so clipping must happen in pixels)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 4 * 4, 5)
        self.labkit = SimpleNamespace(mean=(0.2, 0.5, 0.8), std=(0.1, 0.2, 0.4))

    def forward(self, x):
        return self.fc(x.flatten(1))


_toy = _LinearToy()
with torch.no_grad():
    _toy.fc.weight.copy_(torch.randn(5, 48, generator=torch.Generator().manual_seed(0)))
    _toy.fc.bias.zero_()
_x01 = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
_x01[:, :, 0, :] = 0.0  # pixels at the edges of the valid range: clipping matters
_x01[:, :, 1, :] = 1.0
_xt = images.normalize(_x01, _toy)
_xt_before = _xt.clone()
_adv = targeted_fool(_toy, _xt, [3, 1], eps=0.03, step=0.03, steps=1)
assert isinstance(_adv, torch.Tensor), f"return a torch.Tensor, not {type(_adv).__name__}"
assert tuple(_adv.shape) == (2, 3, 4, 4), f"expected the shape of x, (2, 3, 4, 4), got {tuple(_adv.shape)}"
assert torch.equal(_xt, _xt_before), "leave the caller's x untouched"
_a01 = images.denormalize(_adv.detach(), _toy)
assert float(_a01.min()) >= -1e-5 and float(_a01.max()) <= 1 + 1e-5, (
    f"pixels of x_adv span {float(_a01.min()):.3f}..{float(_a01.max()):.3f}: clip to [0,1] in PIXEL units "
    "(images.denormalize first), not the normalised tensor")
assert float((_a01 - _x01).abs().max()) <= 0.03 + 1e-5, (
    f"a pixel moved by {float((_a01 - _x01).abs().max()):.4f} > eps = 0.03: project onto [x - eps, x + eps] in pixels")
# One step on a linear model, by hand: d CE / d logits = softmax - onehot, d logits / d pixels = W / std.
_p = F.softmax(_toy(_xt), dim=1).detach()
_onehot = F.one_hot(torch.tensor([3, 1]), 5).float()
_std = torch.tensor(_toy.labkit.std).view(1, 3, 1, 1)
_g01 = ((_p - _onehot) @ _toy.fc.weight.detach()).view(2, 3, 4, 4) / _std
_want = (_x01 - 0.03 * _g01.sign()).clamp(0, 1)
assert torch.allclose(_a01, _want, atol=1e-5), (
    "One step with step = eps on a linear model must give clip(x - eps * sign(dCE/dpixels), 0, 1) (pixel units). "
    "Check the sign (you minimise the loss of the TARGET class), that the gradient is taken with respect to the "
    "pixel image, and one target per image.")
# A real photo: with a budget of 8 grey levels the model must end up calling it the target.
_xb = images.preprocess("bee", model, size=128)
_ab = targeted_fool(model, _xb, 1, eps=8 / 255, step=2 / 255, steps=10)
with torch.no_grad():
    _pred = int(model(_ab.to(_xb.device)).argmax(1)[0])
assert _pred == 1, (f"after 10 steps of 2/255 within 8/255, the bee is classified as "
                    f"'{model.labkit.classes[_pred]}', not the target 'goldfish'")
print("targeted_fool: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["targeted_fool"],
                forbid=["labkit.featurevis", "captum", "torchattacks", "foolbox", "advertorch"])


def _reference_fool(x, target, eps, step, steps):
    x01 = images.denormalize(x.detach(), model)
    t = torch.as_tensor(target, device=x.device).reshape(-1).expand(len(x))
    adv = x01.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(model(images.normalize(adv, model)), t, reduction="sum")
        (g,) = torch.autograd.grad(loss, adv)
        adv = (adv.detach() - step * g.sign())
        adv = torch.min(torch.max(adv, x01 - eps), x01 + eps).clamp(0, 1)
    return adv


_xh = images.preprocess(["dog", "coffee"], model, size=96)
_ref = _reference_fool(_xh, [130, 947], 3 / 255, 1 / 255, 4)
_mine = images.denormalize(targeted_fool(model, _xh, [130, 947], eps=3 / 255, step=1 / 255, steps=4).to(_xh.device), model)
_off = float(((_mine - _ref).abs() > 1e-4).float().mean())
assert _off < 0.01, (f"on two photos (targets flamingo and mushroom, 4 steps of 1/255 within 3/255) {100 * _off:.1f}% "
                     "of your pixels differ from the projected sign-gradient attack")
_h01 = images.denormalize(_xh, model)
assert float((_mine - _h01).abs().max()) <= 3 / 255 + 1e-5 and float(_mine.min()) >= -1e-5
_one = targeted_fool(model, _xh, 130, eps=3 / 255, step=1 / 255, steps=2)
_ref1 = _reference_fool(_xh, 130, 3 / 255, 1 / 255, 2)
assert float(((images.denormalize(_one.to(_xh.device), model) - _ref1).abs() > 1e-4).float().mean()) < 0.01, (
    "an int target means the same class for every image")
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% [markdown]
# ### The smallest budget that works
#
# For each photo, the attack runs at growing budgets `EPS_LADDER` (in grey levels, `ATTACK_STEPS`
# steps of a quarter of the budget each) and stops at the first one that makes `TARGET_CLASS` the
# top class. The count at the end is how many photos were fooled within two grey levels.

# %% id="attack_ladder"
smallest = [None] * len(chosen)
adv_best = [None] * len(chosen)
left = list(range(len(chosen)))
for level in EPS_LADDER:
    if not left:
        break
    eps = level / 255
    adv = targeted_fool(model, x_att[left], TARGET, eps=eps, step=eps / 4, steps=ATTACK_STEPS)
    pred, _ = top1(adv)
    for j, i in enumerate(left):
        if int(pred[j]) == TARGET:
            smallest[i], adv_best[i] = level, adv[j:j + 1].detach()
    print(f"eps = {level:g}/255: {sum(int(pred[j]) == TARGET for j in range(len(left)))} of the {len(left)} "
          f"photos not yet fooled are now '{TARGET_CLASS}'")
    left = [i for i in left if smallest[i] is None]
for (path, c, _), level in zip(chosen, smallest):
    print(f"  {path.split('/')[-1]:28s} {info.classes[c]:24s} smallest budget: "
          + (f"{level:g}/255" if level is not None else f"none up to {EPS_LADDER[-1]:g}/255"))

fooled = [i for i in range(len(chosen)) if smallest[i] is not None and smallest[i] <= 2]
conf_fooled = [float(top1(adv_best[i])[1][0]) for i in fooled]
print(f"\nwithin eps = 2/255: {len(fooled)} of {len(chosen)} correctly classified photos are classified as "
      f"'{TARGET_CLASS}' (median confidence {float(np.median(conf_fooled)) if fooled else 0:.2f})")

# %% id="fig_perturbation"
show = [i for i in range(len(chosen)) if adv_best[i] is not None][:4]
fig, axes = plt.subplots(3, max(len(show), 1), figsize=(3.2 * max(len(show), 1), 10), squeeze=False,
                         layout="constrained")
for col, i in enumerate(show):
    x01 = images.denormalize(x_att[i:i + 1], model)[0].cpu()
    a01 = images.denormalize(adv_best[i], model)[0].cpu()
    delta, eps = a01 - x01, smallest[i] / 255
    magnify = 0.5 / eps  # the budget [-eps, eps] fills the grey range [0, 1]
    c, p = top1(adv_best[i])
    axes[0, col].imshow(x01.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0, col].set_title(f"photo: {info.classes[chosen[i][1]]}\np = {chosen[i][2]:.2f}", fontsize=9)
    axes[1, col].imshow((0.5 + magnify * delta).clamp(0, 1).permute(1, 2, 0).numpy())
    axes[1, col].set_title(f"perturbation x {magnify:.0f} (grey = 0)\nmax |change| = {smallest[i]:g}/255",
                           fontsize=9)
    axes[2, col].imshow(a01.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[2, col].set_title(f"fooling image: {info.classes[int(c)]}\np = {float(p):.2f}", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle(f"{info.name}: the smallest budget that makes each photo a '{TARGET_CLASS}'")
plt.show()

# %% [markdown]
# **Why can so little be enough? Numbers for Goodfellow et al.'s linearity argument.** For each
# photo, the *margin* is how far the target's logit is below the photo's class's logit. To first
# order, a change `delta` moves the margin by `grad . delta`, and within an L-inf budget the largest
# such move is `eps * ||grad||_1`, summed over all `3 x H x W` pixel values. The table compares that
# linear estimate at `eps = 1/255` with the margin to overcome.

# %% id="linearity"
x01_att = images.denormalize(x_att, model).detach().requires_grad_(True)
logits = model(images.normalize(x01_att, model))
rows = torch.arange(len(chosen))
margin = logits[rows, clean_class.to(logits.device)] - logits[:, TARGET]
(g_margin,) = torch.autograd.grad(margin.sum(), x01_att)
margin = margin.detach()
linear_gain = (1 / 255) * g_margin.abs().flatten(1).sum(1)  # eps * ||grad||_1 at eps = 1/255
n_values = x01_att[0].numel()
print(f"{n_values} pixel values per image; a 1/255 change in every one of them, each in the direction that helps:")
for i, (path, c, _) in enumerate(chosen):
    print(f"  {info.classes[c]:24s} margin to overcome {float(margin[i]):6.2f} logits; linear estimate of the "
          f"move at 1/255: {float(linear_gain[i]):7.2f} ({float(linear_gain[i] / margin[i].clamp_min(1e-6)):.1f}x); "
          f"mean |grad| per value {float(g_margin[i].abs().mean()):.2e}")

# %% [markdown]
# ### Your answer to Question 1(a) (2 pts)
#
# Report the smallest budgets the notebook found, and how many photos were fooled within 2/255.
# Why does such a small, almost invisible change suffice? Use the linearity table above. What
# does the magnified perturbation look like: is it related to the target class in any way a person
# would recognise?

# %% [markdown] kind="answer" id="answer_1a" points=2
# *Model answer (instructors).* Read the numbers from the executed notebook. On EfficientNet-Lite0
# (offline) in FAST mode the smallest budget was 1/255 for all 4 photos (espresso, military
# uniform, bee, agama), so 4 of 4 are "goldfish" within 2/255, at confidences from about 0.15 to
# 0.98; with the full settings (10 labelled photos, 20 steps) a run on Lite0 fooled 10 of 10 within
# 2/255 (smallest budget 0.5/255 for one photo, 1/255 for seven, 2/255 for two; median confidence
# 0.89); read the printed count of your own run. On VGG16/VGG19 expect budgets as small or smaller (ImageNet VGGs are
# known to be very easy to fool); the printed numbers are what counts.
# Why: the class score is, locally, close to a linear function of about 150,000 pixel values
# (`3 x 224 x 224`). A change of `eps` per value in the sign of the gradient moves the margin by about
# `eps * ||grad||_1`, which grows with the *number* of values, while the largest change of any one
# pixel stays `eps`. The table shows it: the linear estimate at 1/255 is of the order of, or larger
# than, the margin (the printed ratio), so a budget of 1-2 grey levels is enough even though each
# pixel barely changes (Goodfellow et al.: linear behaviour in high dimension, not overfitting or
# noise, explains adversarial examples). The model was trained only on natural photos; directions
# like this sign pattern never occur in them, so nothing in training constrained the score along
# them. The magnified perturbation looks like structured high-frequency noise, denser on textured
# parts of the photo, with no goldfish a person would recognise: the network's evidence for a
# class is not what a human uses.
#
# **Rubric (2 pts; half points allowed):**
# 1. (0.5 pt) States this notebook's numbers: the smallest budget(s) and the count fooled within
#    2/255, consistent with the printout.
# 2. (1 pt) Explains with the linearity / high-dimension argument: many pixels each change a little
#    in the gradient's sign direction, the first-order effect `eps * ||grad||_1` adds up over all
#    values and exceeds the margin; cites the table's ratio or margins.
# 3. (0.5 pt) Describes the perturbation honestly (noise-like, not a picture of the target class)
#    and draws the conclusion that the network's decision does not rest on human-visible features
#    alone (or that training on natural images does not constrain these directions).

# %% [markdown]
# ## Question 1(b) - Does the fooling image fool another network? (2 pts)
#
# A fooling image **transfers** if a *different* model also sees the target class (or at least
# loses the photo's class). The cell below tries every other model of labkit's registry whose
# weights are on this machine. Offline only EfficientNet-Lite0 has weights, so it also runs an
# honest substitute that it labels as such: the **same** network shown slightly altered views of
# each fooling image (shifted by a few pixels, rescaled, JPEG-compressed, blurred), with the clean
# photos under the same alterations as a control. That does **not** test another network's
# decision boundary; it tests whether the attack is a robust feature of the image or a brittle
# pixel pattern tuned to one exact input pipeline, which is the first thing a transfer to another
# model (with its own resizing and preprocessing) needs.

# %% id="transfer"
adv01 = images.denormalize(torch.cat([adv_best[i] for i in fooled]), model).detach().clamp(0, 1).cpu() \
    if fooled else None
clean01 = images.denormalize(x_att[fooled], model).detach().clamp(0, 1).cpu()
orig_cls = clean_class[fooled]


def _jpeg(batch01, quality=75):
    from PIL import Image

    out = []
    for img in batch01:
        buf = io.BytesIO()
        Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buf, "JPEG", quality=quality)
        out.append(torch.from_numpy(np.asarray(Image.open(buf)).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


VIEWS = {
    "as attacked": lambda b: b,
    "shifted 4 px": lambda b: torch.roll(b, shifts=(4, 4), dims=(2, 3)),
    "rescaled 0.8x and back": lambda b: F.interpolate(F.interpolate(b, scale_factor=0.8, mode="bilinear", antialias=True),
                                                      size=b.shape[-2:], mode="bilinear"),
    "JPEG quality 75": _jpeg,
    "blurred (sigma 1 px)": lambda b: gaussian_blur(b, 1.0),
}
transfer = {}
if not fooled:
    print("no photo was fooled at 2/255, nothing to transfer")
else:
    others = [n for n in model_names() if n != info.name and weights_available(n)]
    if not others:
        print(f"No other registry model has weights on this machine (only {info.name}); "
              "the cross-model check is skipped. Substitute: altered views for the same model.")
    for name in others:
        other = load_model(name, device=DEVICE)
        with torch.no_grad():
            size = other.labkit.input_size
            o_clean = other(images.normalize(F.interpolate(clean01, size=size, mode="bilinear").to(DEVICE), other)).argmax(1).cpu()
            o_adv = other(images.normalize(F.interpolate(adv01, size=size, mode="bilinear").to(DEVICE), other)).argmax(1).cpu()
        transfer[name] = (int((o_adv == TARGET).sum()), int((o_adv == o_clean).sum()), len(fooled))
        print(f"other model {name}: {transfer[name][0]} of {len(fooled)} fooling images are '{TARGET_CLASS}' for it; "
              f"{transfer[name][1]} keep its own clean-photo class")
        del other
    print(f"\nsame model ({info.name}), altered views of the {len(fooled)} fooling images and of the clean photos:")
    for view, fn in VIEWS.items():
        c_adv, _ = top1(images.normalize(fn(adv01).clamp(0, 1).to(DEVICE), model))
        c_clean, _ = top1(images.normalize(fn(clean01).clamp(0, 1).to(DEVICE), model))
        transfer[view] = (int((c_adv == TARGET).sum()), int((c_adv == orig_cls).sum()), int((c_clean == orig_cls).sum()))
        print(f"  {view:24s} fooling images still '{TARGET_CLASS}': {transfer[view][0]}/{len(fooled)}, back to the "
              f"photo's class: {transfer[view][1]}/{len(fooled)}; clean photos keep their class: "
              f"{transfer[view][2]}/{len(fooled)}")

# %% [markdown]
# ### Your answer to Question 1(b) (2 pts)
#
# What did the check above measure on this machine: another network, altered views for the same
# network, or both? Report the numbers. Does the fooling image fool another network, and what does
# your result say about how robust (or brittle) this attack is? What would you expect for a
# transfer from this model to VGG16, and why?

# %% [markdown] kind="answer" id="answer_1b" points=2
# *Model answer (instructors).* Offline (EfficientNet-Lite0 only) no other network has weights, so
# the notebook says the cross-model check is skipped and measures altered views instead. Read the
# printed table: a fooling image made at its smallest budget keeps the target only under
# the identity view; a shift of 4 px, a rescale, JPEG at quality 75 or a 1 px blur typically
# return most fooling images to the photo's own class (or at least take away the target): in the
# FAST run on Lite0 no fooling image stays "goldfish" under any alteration (0/4 each), and a 4 px
# shift returns all 4 to their own class. The control counts matter: where a clean photo itself
# loses its class under an alteration (rescale/JPEG 3/4, blur 2/4 in that run), the alteration
# changes the class by itself and "back to the photo's class" can be at most that. So the perturbation
# is a brittle, input-specific pattern aligned with this exact pixel grid, not a robust feature;
# the minimal-budget attack is just over the decision boundary. With another network's weights
# (VGG16 online) the same computation typically gives few or no target hits from a minimal-budget
# targeted attack: targeted adversarial examples transfer poorly between architectures, while
# untargeted ones (the photo losing its class) transfer more often, and larger budgets, more
# steps, or attacking an ensemble/with input transformations (expectation over transformations)
# improve transfer. Transfer is why black-box attacks work at all: different models trained on the
# same data learn partly shared non-robust features.
#
# **Rubric (2 pts; half points allowed):**
# 1. (0.5 pt) Says correctly what was measured on this machine (another model, or the labelled
#    substitute), without claiming a cross-model result the notebook did not compute.
# 2. (1 pt) Reports the printed counts and interprets them against the control row: the attack is
#    brittle (or robust) to which alterations, and what that says about the perturbation.
# 3. (0.5 pt) A reasoned expectation for cross-model transfer (targeted minimal-budget attacks
#    rarely transfer; untargeted or larger/ensemble attacks transfer more; shared features), marked
#    as expectation, not measurement, unless a second model was run.

# %% [markdown]
# ## Question 2 - Class visualisation (6 pts)
#
# Instead of changing a photo into a class, start from (almost) nothing and **ascend the class
# score** (the logit, before the softmax: the softmax could also be raised by lowering the *other*
# classes). Plain gradient ascent makes high-frequency patterns that the network scores highly but
# that look like noise; Simonyan et al. (2014) add an **L2 decay** and Yosinski et al. (2015) **jitter**
# and **periodic blur**. You write the loop, all in pixel units:
#
# * start: `x = (m + 0.05 * noise).clamp(0, 1)`, with `m = images.denormalize(torch.zeros(1, 3, 1, 1), model)`
#   the dataset's mean colour in pixels and `noise = torch.randn(N, 3, size, size, generator=gen)`
#   drawn on the CPU from `gen = torch.Generator().manual_seed(seed)` (then moved to the model's device);
# * each step `i = 0 .. steps-1`:
#   1. **jitter:** if `jitter > 0`, draw `dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()`
#      and roll the images: `x = x.roll((dy, dx), dims=(2, 3))` (same shift for the batch);
#   2. the objective per image: `score_c(normalize(x)) - l2_decay * ||x - m||^2` (sum of squares over
#      all `3 x size x size` values);
#   3. its gradient `g` with respect to `x`, and an ascent step of fixed size:
#      `x = x + lr * g / (rms(g) + 1e-12)`, with `rms` per image over its `3 x size x size` values;
#   4. undo the jitter (`x.roll((-dy, -dx), dims=(2, 3))`) and clip `x` to `[0, 1]`;
#   5. **blur:** if `blur_every > 0` and `(i + 1) % blur_every == 0`: `x = gaussian_blur(x, blur_sigma)`
#      (defined in the setup cell).
#
# Return `x` (no gradient attached), `[N,3,size,size]` in `[0,1]`: one image per class.
#
# ### Your code (3 of 6 pts, autograded)
#
# *Off limits:* `labkit.featurevis` (its `class_visualization`, `visualize`, objectives and
# regularisers), lucent and captum. The setup cell's `gaussian_blur` and `images.normalize/denormalize` are fine.

# %% kind="solution" id="class_visualize"
def class_visualize(model, classes, *, steps, lr, l2_decay, jitter, blur_every, blur_sigma, size, seed):
    """Gradient ascent on class scores with L2 decay, jitter and periodic blur (pixel units).

    Args:
        model: a labkit classifier; classes: an int or a list of N class indices.
        steps: ascent steps; lr: step size in [0,1] pixel units (per-image RMS-normalised gradient).
        l2_decay: weight of the squared distance to the mean colour; jitter: max shift in px (0: none).
        blur_every: blur every this many steps (0: never); blur_sigma: blur std in px.
        size: image side in px; seed: seeds the start noise and the jitter draws.

    Returns:
        [N,3,size,size] tensor in [0,1], one image per class.
    """
    ### BEGIN SOLUTION
    device = next(model.parameters()).device
    t = torch.as_tensor(classes).reshape(-1).to(device)
    n = len(t)
    gen = torch.Generator().manual_seed(seed)
    m = images.denormalize(torch.zeros(1, 3, 1, 1, device=device), model)
    x = (m + 0.05 * torch.randn(n, 3, size, size, generator=gen).to(device)).clamp(0, 1)
    for i in range(steps):
        dy = dx = 0
        if jitter > 0:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
        x = x.detach().roll((dy, dx), dims=(2, 3)).requires_grad_(True)
        scores = model(images.normalize(x, model))[torch.arange(n, device=device), t]
        objective = scores - l2_decay * (x - m).pow(2).flatten(1).sum(1)
        (g,) = torch.autograd.grad(objective.sum(), x)
        rms = g.pow(2).flatten(1).mean(1).sqrt().view(-1, 1, 1, 1)
        x = (x.detach() + lr * g / (rms + 1e-12)).roll((-dy, -dx), dims=(2, 3)).clamp(0, 1)
        if blur_every > 0 and (i + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
    return x.detach()
    ### END SOLUTION


# %% kind="tests" id="test_class_visualize" points=3
class _ScoreToy(torch.nn.Module):
    """Linear class scores on 3x8x8 inputs (score_c = <w_c, x>), mean colour (0.4, 0.5, 0.6)."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 4, bias=False)
        self.labkit = SimpleNamespace(mean=(0.4, 0.5, 0.6), std=(0.25, 0.25, 0.5))

    def forward(self, x):
        return self.fc(x.flatten(1))


_toy = _ScoreToy()
with torch.no_grad():
    _toy.fc.weight.copy_(torch.randn(4, 192, generator=torch.Generator().manual_seed(0)))
_m = torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1)
# One plain step (no decay, jitter or blur): the start noise from the seed, then x + lr * g / rms(g),
# where on this model g = w_c / std (the score's gradient in pixel units).
_got = class_visualize(_toy, [2, 0], steps=1, lr=0.01, l2_decay=0.0, jitter=0, blur_every=0, blur_sigma=0.5,
                       size=8, seed=3)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (2, 3, 8, 8), f"expected [N,3,size,size] = (2, 3, 8, 8), got {tuple(_got.shape)}"
assert not _got.requires_grad, "return the images without a gradient attached (detach)"
_x0 = (_m + 0.05 * torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
_g = _toy.fc.weight.detach()[[2, 0]].view(2, 3, 8, 8) / torch.tensor([0.25, 0.25, 0.5]).view(1, 3, 1, 1)
_rms = _g.pow(2).flatten(1).mean(1).sqrt().view(2, 1, 1, 1)
_want = (_x0 + 0.01 * _g / _rms).clamp(0, 1)
assert torch.allclose(_got.cpu(), _want, atol=1e-5), (
    "One plain step must be clip(x0 + lr * g / rms(g), 0, 1) with x0 = (m + 0.05 * randn(seed)).clamp(0, 1): "
    "check the start (mean colour in PIXELS, noise from torch.Generator().manual_seed(seed)), the per-image rms, "
    "and one class per image.")
# L2 decay alone (a model that ignores its input): every step pulls the images towards the mean colour.


class _Flat(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.labkit = SimpleNamespace(mean=(0.4, 0.5, 0.6), std=(0.25, 0.25, 0.5))

    def forward(self, x):
        return self.w * x.flatten(1)[:, :3] + torch.tensor([1.0, 2.0, 3.0])


_d0 = float((_x0[:1] - _m).pow(2).sum())
_decayed = class_visualize(_Flat(), 1, steps=5, lr=0.005, l2_decay=1.0, jitter=0, blur_every=0, blur_sigma=0.5,
                           size=8, seed=3).cpu()
assert float((_decayed - _m).pow(2).sum()) < 0.9 * _d0, (
    "with only L2 decay, the image must move towards the mean colour m (the objective subtracts l2_decay * ||x - m||^2)")
# Blur every step makes the image smoother (smaller differences between neighbours).
_rough = class_visualize(_toy, 1, steps=4, lr=0.05, l2_decay=0.0, jitter=0, blur_every=0, blur_sigma=1.0, size=8, seed=0)
_smooth = class_visualize(_toy, 1, steps=4, lr=0.05, l2_decay=0.0, jitter=0, blur_every=1, blur_sigma=1.0, size=8, seed=0)
_tv = lambda z: float((z[..., 1:, :] - z[..., :-1, :]).abs().mean() + (z[..., :, 1:] - z[..., :, :-1]).abs().mean())
assert _tv(_smooth) < 0.8 * _tv(_rough), "blur_every=1 must blur after every step (smoother image)"
# The real model: 30 steps already make each class by far the most likely.
_vis = class_visualize(model, [1, 130], steps=30, lr=0.05, l2_decay=4e-3, jitter=4, blur_every=4, blur_sigma=0.7,
                       size=112, seed=0)
with torch.no_grad():
    _p = model(images.normalize(_vis.to(next(model.parameters()).device), model)).softmax(1)
assert float(_vis.min()) >= 0 and float(_vis.max()) <= 1, "images must be in [0,1]"
assert float(_p[0, 1]) > 0.5 and float(_p[1, 130]) > 0.5, (
    f"after 30 steps p(goldfish) = {float(_p[0, 1]):.2f}, p(flamingo) = {float(_p[1, 130]):.2f}; both should be > 0.5 "
    "(ascend the LOGIT of each image's own class)")
print("class_visualize: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["class_visualize"], forbid=["labkit.featurevis", "lucent", "captum"])


def _reference_classvis(classes, steps, lr, l2_decay, jitter, blur_every, blur_sigma, size, seed):
    dev = next(model.parameters()).device
    t = torch.as_tensor(classes).reshape(-1).to(dev)
    gen = torch.Generator().manual_seed(seed)
    m = images.denormalize(torch.zeros(1, 3, 1, 1, device=dev), model)
    x = (m + 0.05 * torch.randn(len(t), 3, size, size, generator=gen).to(dev)).clamp(0, 1)
    for i in range(steps):
        dy = dx = 0
        if jitter > 0:
            dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=gen).tolist()
        x = x.detach().roll((dy, dx), dims=(2, 3)).requires_grad_(True)
        obj = model(images.normalize(x, model))[torch.arange(len(t), device=dev), t] - l2_decay * (x - m).pow(2).flatten(1).sum(1)
        (g,) = torch.autograd.grad(obj.sum(), x)
        rms = g.pow(2).flatten(1).mean(1).sqrt().view(-1, 1, 1, 1)
        x = (x.detach() + lr * g / (rms + 1e-12)).roll((-dy, -dx), dims=(2, 3)).clamp(0, 1)
        if blur_every > 0 and (i + 1) % blur_every == 0:
            x = gaussian_blur(x, blur_sigma)
    return x.detach().cpu()


_args = dict(steps=4, lr=0.02, l2_decay=1e-2, jitter=3, blur_every=2, blur_sigma=0.8, size=48, seed=7)
_ref = _reference_classvis([947, 72], **_args)
_mine = class_visualize(model, [947, 72], **_args).cpu()
_err = float((_mine - _ref).abs().max())
assert _err < 2e-3, (f"with jitter, decay and blur on the real model, your images differ from the specified loop by "
                     f"up to {_err:.3g} (order: jitter, objective, normalised step, unjitter + clip, blur)")
_ref = _reference_classvis(309, **dict(_args, jitter=0, blur_every=0, seed=1))
_mine = class_visualize(model, 309, **dict(_args, jitter=0, blur_every=0, seed=1)).cpu()
assert float((_mine - _ref).abs().max()) < 2e-3, "an int class: one image; without jitter and blur"
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% [markdown]
# ### Your pictures, and labkit's Fourier-parameterised version
#
# Top row: your `class_visualize` for `CLASSVIS_CLASSES` with all three regularisers. Bottom row:
# `featurevis.class_visualization`, which optimises the image's **Fourier coefficients** (scaled so
# that every frequency starts with natural-image-like energy: a prior against high frequencies
# built into the parameterisation) under random jitter, scale and rotation. Each title gives the
# model's probability for the class.

# %% id="fig_classvis"
CV_CLASSES = [images.class_index(c) for c in CLASSVIS_CLASSES]
CV_ARGS = dict(lr=0.05, l2_decay=4e-3, jitter=max(1, CLASSVIS["size"] // 28), blur_every=4, blur_sigma=0.7,
               size=CLASSVIS["size"], seed=0)
mine_cv = class_visualize(model, CV_CLASSES, steps=CLASSVIS["steps"], **CV_ARGS).cpu()
lab_cv = featurevis.class_visualization(model, CV_CLASSES, steps=CLASSVIS["steps"], size=CLASSVIS["size"], seed=0,
                                        progress=False).images.cpu()


def class_prob(batch01, classes):
    with torch.no_grad():
        p = model(images.normalize(batch01.to(DEVICE), model)).softmax(dim=1).cpu()
    return p[torch.arange(len(classes)), torch.as_tensor(classes)], p.argmax(dim=1)


p_mine, _ = class_prob(mine_cv, CV_CLASSES)
p_lab, _ = class_prob(lab_cv, CV_CLASSES)
fig, axes = plt.subplots(2, len(CV_CLASSES), figsize=(2.6 * len(CV_CLASSES), 6.0), squeeze=False, layout="constrained")
for j, c in enumerate(CV_CLASSES):
    axes[0, j].imshow(mine_cv[j].permute(1, 2, 0).numpy())
    axes[0, j].set_title(f"{info.classes[c]}\nyours: p = {float(p_mine[j]):.2f}", fontsize=9)
    axes[1, j].imshow(lab_cv[j].permute(1, 2, 0).numpy())
    axes[1, j].set_title(f"labkit Fourier: p = {float(p_lab[j]):.2f}", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle(f"Class visualisations on {info.name}, {CLASSVIS['steps']} steps, {CLASSVIS['size']} px")
plt.show()
for c, a, b in zip(CV_CLASSES, p_mine.tolist(), p_lab.tolist()):
    print(f"{info.classes[c]:20s} p(class): yours {a:.3f}, labkit Fourier {b:.3f}")

# %% [markdown]
# ### What each regulariser buys: an ablation
#
# The same class with all regularisers, and with each one switched off in turn (and with none).
# Three numbers per picture, all computed here:
#
# * `p`: the model's probability for the class on the picture itself;
# * `p moved`: the mean probability over 8 random small shifts of the picture (up to twice the
#   jitter), i.e. does the picture carry the class in a form that survives a small change of view
#   (as a photo's would) or only in one exact pixel pattern;
# * `hf`: high-frequency energy, the mean squared difference between neighbouring pixels (a
#   photo at this size has about the value printed last);
# * `|x - m|`: the root-mean-square distance from the mean colour.

# %% id="fig_ablation"
ABLATION = {
    "all three": CV_ARGS,
    "no L2 decay": dict(CV_ARGS, l2_decay=0.0),
    "no jitter": dict(CV_ARGS, jitter=0),
    "no blur": dict(CV_ARGS, blur_every=0),
    "none (plain ascent)": dict(CV_ARGS, l2_decay=0.0, jitter=0, blur_every=0),
}
ab_class = CV_CLASSES[0]
m01 = images.denormalize(torch.zeros(1, 3, 1, 1), model).cpu()


def hf_energy(batch01):
    return ((batch01[..., 1:, :] - batch01[..., :-1, :]).pow(2).mean(dim=(1, 2, 3))
            + (batch01[..., :, 1:] - batch01[..., :, :-1]).pow(2).mean(dim=(1, 2, 3)))


ablation = {}
for label, args in ABLATION.items():
    pic = class_visualize(model, ab_class, steps=CLASSVIS["steps"], **args).cpu()
    shifts = torch.randint(-2 * CV_ARGS["jitter"], 2 * CV_ARGS["jitter"] + 1, (8, 2),
                           generator=torch.Generator().manual_seed(1)).tolist()
    moved = torch.cat([torch.roll(pic, shifts=(dy, dx), dims=(2, 3)) for dy, dx in shifts])
    ablation[label] = dict(picture=pic[0], p=float(class_prob(pic, [ab_class])[0][0]),
                           p_moved=float(class_prob(moved, [ab_class] * len(shifts))[0].mean()),
                           hf=float(hf_energy(pic)[0]),
                           dist=float((pic - m01).pow(2).mean().sqrt()))
photo_hf = float(hf_energy(images.denormalize(images.preprocess(STYLE_PHOTO, model, size=CLASSVIS["size"]),
                                             model).cpu())[0])
fig, axes = plt.subplots(1, len(ablation), figsize=(2.8 * len(ablation), 3.6), layout="constrained")
for ax, (label, r) in zip(axes, ablation.items()):
    ax.imshow(r["picture"].permute(1, 2, 0).numpy())
    ax.set_title(f"{label}\np {r['p']:.2f}, p moved {r['p_moved']:.2f}\nhf {r['hf']:.4f}, |x-m| {r['dist']:.2f}",
                 fontsize=8)
    ax.set_axis_off()
fig.suptitle(f"'{info.classes[ab_class]}': what each regulariser changes")
plt.show()
for label, r in ablation.items():
    print(f"{label:20s} p = {r['p']:.3f}  p moved = {r['p_moved']:.3f}  hf = {r['hf']:.4f}  |x - m| = {r['dist']:.3f}")
print(f"{'a photo (' + STYLE_PHOTO + ')':20s} hf = {photo_hf:.4f}")

# %% [markdown]
# ### Your answer to Question 2 (3 pts)
#
# (1) Report the probabilities of your pictures and of labkit's. (2) For each regulariser (L2
# decay, jitter, blur) say what it prevents and what it buys, using the ablation's numbers and
# pictures. (3) Why do pictures that the model scores at `p ~ 1` still not look like the class to
# you, and what makes the Fourier version look different?

# %% [markdown] kind="answer" id="answer_2" points=3
# *Model answer (instructors).* Probabilities: read the printout. On EfficientNet-Lite0 both methods
# reach p close to 1 for every class at the full settings (FAST too, mostly); on VGG16/VGG19 the same
# holds (class scores are easy to drive up). Note the high p says nothing about how natural the
# picture is.
# Per regulariser, in terms of the ablation's numbers (FAST run on Lite0, 40 steps at 112 px: every
# variant reaches p = 1.00; what differs is the picture):
# * **Blur** has by far the largest, unambiguous effect: without it `hf` jumps from about 0.005 to
#   about 0.15 (the photo: about 0.03) and the picture becomes saturated high-frequency noise; blur
#   removes the frequencies that gradient ascent adds fastest, so larger shapes survive (Yosinski et al.).
# * **L2 decay** penalises the distance from the mean colour: it keeps pixels near grey unless they pay
#   for themselves in score (Simonyan et al.). At this weight its effect is small in the numbers
#   (`|x - m|` 0.09 with or without it once blur is on; 0.22-0.24 without blur); it matters more
#   with more steps or a larger weight, and without blur.
# * **Jitter** asks the picture to raise the score at many alignments, so it cannot rely on one exact
#   pixel grid. The `p moved` column measures exactly that: in the FAST run on Lite0 it is about 0.96
#   with all three regularisers but 0.34 without jitter (and 0.01 with none), while removing decay
#   or blur leaves it near 1. Jitter buys evidence that survives small shifts, as a photo's does.
# * With none, plain ascent still reaches p = 1 but gives the largest `hf` and `|x - m|` and the
#   lowest `p moved`: a fooling image grown from grey.
# Why `p ~ 1` yet not the class: the network's score is raised by many local features (textures,
# parts such as eyes or fins, colours) in any arrangement and number, because nothing in the
# objective asks for a whole, single, coherent object, and the classifier was never trained to
# reject such images. The Fourier parameterisation scales each frequency like natural images
# (decorrelated, 1/f spectrum), so the optimiser mostly moves low frequencies: smoother, more
# colourful, more "object-like" patterns; it also uses random scaling/rotation, a stronger version
# of jitter.
#
# **Rubric (3 pts; half points allowed):**
# 1. (0.5 pt) Reports both methods' printed probabilities for the classes.
# 2. (1.5 pts) One correct role per regulariser (0.5 each), each tied to the ablation (a number or
#    a visible difference) and consistent with the printed values; a student who says a regulariser
#    made no measurable difference here, when the numbers show that, gets the half point.
# 3. (1 pt) Explains why a high probability does not make a recognisable picture (local features,
#    no constraint to natural images/coherent objects) and what the Fourier parameterisation
#    changes (frequency scaling / decorrelation; transformation robustness).

# %% [markdown]
# ## Question 3 - Inversion: what does each layer keep? (6 pts)
#
# Ryu's pseudo-code for **model inversion**: start from noise and optimise an image `x_hat` whose
# features at a layer match a photo's features, `phi(x_hat) ~ phi(x)`, plus a regulariser that
# prefers natural images. Mahendran and Vedaldi (2015) use **total variation** (TV): the energy of
# the differences between neighbouring pixels.
#
# ### Your code, part 1 (1 of 6 pts, autograded)
#
# Write `tv_loss(images01)`: for each image of `[N,3,H,W]`, the mean over channels and positions of
# the squared vertical differences `(x[:, :, i+1, j] - x[:, :, i, j])^2`, **plus** the mean of the
# squared horizontal differences `(x[:, :, i, j+1] - x[:, :, i, j])^2`. Returns `[N]`.
#
# *Off limits:* `labkit.featurevis` (its `total_variation`), kornia and torchmetrics.

# %% kind="solution" id="tv_loss"
def tv_loss(images01):
    """Total variation (squared, mean per direction) of each image.

    Args:
        images01: [N,3,H,W] images (any range).

    Returns:
        [N] tensor: mean of squared vertical neighbour differences + mean of squared horizontal ones.
    """
    ### BEGIN SOLUTION
    vertical = (images01[..., 1:, :] - images01[..., :-1, :]).pow(2).flatten(1).mean(1)
    horizontal = (images01[..., :, 1:] - images01[..., :, :-1]).pow(2).flatten(1).mean(1)
    return vertical + horizontal
    ### END SOLUTION


# %% kind="tests" id="test_tv_loss" points=1
_flat = torch.full((1, 3, 5, 6), 0.3)
_stripes = torch.zeros(1, 3, 5, 6)
_stripes[..., 1::2] = 1.0  # columns alternate 0, 1: every horizontal difference is 1, vertical ones 0
_checker = ((torch.arange(5).view(5, 1) + torch.arange(6).view(1, 6)) % 2).float().expand(1, 3, 5, 6)
_ramp = (0.1 * torch.arange(6).float()).view(1, 1, 1, 6).expand(1, 3, 5, 6)  # horizontal steps of 0.1
_got = tv_loss(torch.cat([_flat, _stripes, _checker, _ramp]))
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (4,), f"expected one value per image, shape (4,), got {tuple(_got.shape)}"
assert torch.allclose(_got.float(), torch.tensor([0.0, 1.0, 2.0, 0.01]), atol=1e-6), (
    f"expected [0, 1, 2, 0.01] for a flat image, vertical stripes, a checkerboard and a ramp of 0.1 per column; "
    f"got {[round(v, 4) for v in _got.tolist()]}")
_x = torch.rand(2, 3, 7, 9, requires_grad=True)
tv_loss(_x).sum().backward()
assert _x.grad is not None and torch.isfinite(_x.grad).all(), "tv_loss must be differentiable (used as a loss)"
print("tv_loss: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["tv_loss"], forbid=["labkit.featurevis", "kornia", "torchmetrics"])
_r = torch.rand(3, 3, 11, 7, generator=torch.Generator().manual_seed(5))
_a = _r.numpy()
_want = (np.diff(_a, axis=2) ** 2).reshape(3, -1).mean(1) + (np.diff(_a, axis=3) ** 2).reshape(3, -1).mean(1)
assert np.allclose(np.asarray(tv_loss(_r).detach().cpu(), dtype=float), _want, rtol=1e-5, atol=1e-8), (
    "on random non-square images your TV differs from mean(dy^2) + mean(dx^2) per image")
### END HIDDEN TESTS

# %% [markdown]
# ### Your code, part 2 (2 of 6 pts, autograded)
#
# Write `invert_features(model, x, layer, *, steps, lr, tv_weight, seed)`:
#
# * the target: `phi0 = layers.activations(model, x, layer)` (a truncated forward pass, no gradient);
# * start: `x_hat = (0.5 + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)`
#   in **pixels** (then moved to `x`'s device), optimised with `torch.optim.Adam([x_hat], lr=lr)`;
# * the loss per image: `||phi(normalize(x_hat)) - phi0||^2 / ||phi0||^2 + tv_weight * tv_loss(x_hat)`,
#   summed over the batch; after each Adam step clip `x_hat` to `[0, 1]`;
# * return `x_hat` (no gradient attached), `[N,3,H,W]` in `[0,1]`.
#
# *Off limits:* `labkit.featurevis` (its `invert`), lucent and captum. `labkit.layers.activations`
# (a truncated forward pass), your `tv_loss` and `images.normalize` are fine.

# %% kind="solution" id="invert_features"
def invert_features(model, x, layer, *, steps, lr, tv_weight, seed):
    """Reconstruct images from their features at `layer` (Mahendran & Vedaldi 2015, with TV).

    Args:
        model: a labkit classifier; x: [N,3,H,W] preprocessed photos.
        layer: a layer name (or handout index) for labkit.layers.activations.
        steps: Adam steps; lr: Adam's learning rate (pixel units); tv_weight: weight of tv_loss.
        seed: seeds the start noise.

    Returns:
        [N,3,H,W] tensor in [0,1]: the reconstructions.
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        target = layers.activations(model, x.detach(), layer)
    norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))
    x_hat = (0.5 + 0.02 * noise).clamp(0, 1).to(x.device).requires_grad_(True)
    opt = torch.optim.Adam([x_hat], lr=lr)
    for _ in range(steps):
        feats = layers.activations(model, images.normalize(x_hat, model), layer)
        loss = ((feats - target).flatten(1).pow(2).sum(1) / norm + tv_weight * tv_loss(x_hat)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            x_hat.clamp_(0, 1)
    return x_hat.detach()
    ### END SOLUTION


# %% kind="tests" id="test_invert_features" points=2
def _feature_error(recon01, x, layer):
    with torch.no_grad():
        a = layers.activations(model, images.normalize(recon01.to(x.device), model), layer)
        b = layers.activations(model, x, layer)
    return ((a - b).flatten(1).pow(2).sum(1) / b.flatten(1).pow(2).sum(1)).cpu()


_xs = images.preprocess(["bee", "dog"], model, size=64)
_shallow = INVERT_LAYERS[0]
_start = (0.5 + 0.02 * torch.randn(_xs.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
_rec = invert_features(model, _xs, _shallow, steps=25, lr=0.05, tv_weight=0.0, seed=0)
assert isinstance(_rec, torch.Tensor) and tuple(_rec.shape) == tuple(_xs.shape), (
    f"return a tensor shaped like x {tuple(_xs.shape)}, got {getattr(_rec, 'shape', type(_rec))}")
assert not _rec.requires_grad, "return the reconstruction without a gradient attached (detach)"
assert float(_rec.min()) >= 0 and float(_rec.max()) <= 1, "reconstructions must be pixel images in [0,1]"
_e0, _e1 = _feature_error(_start, _xs, _shallow), _feature_error(_rec, _xs, _shallow)
print(f"relative feature error at {_shallow}: start {_e0.tolist()}, after 25 steps {_e1.tolist()}")
assert bool((_e1 < 0.3 * _e0).all()), (
    "25 Adam steps should cut the relative feature error at a shallow layer by more than 3x; is the loss "
    "||phi(normalize(x_hat)) - phi0||^2 / ||phi0||^2, with x_hat in pixels and phi0 from x?")
_photo = images.denormalize(_xs, model).cpu()
_corr = [float(np.corrcoef(_rec[i].cpu().flatten().numpy(), _photo[i].flatten().numpy())[0, 1]) for i in range(2)]
assert min(_corr) > 0.1, (f"even after 25 steps the reconstructions from a shallow layer should start to resemble the "
                          f"photos (pixel correlation {_corr}, noise: about 0)")
assert layers.forward_hooks_count(model) == 0, "your function left hooks on the model"
print("invert_features: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["invert_features"], forbid=["labkit.featurevis", "lucent", "captum"])
_xh = images.preprocess(["coffee"], model, size=48)
_mid = INVERT_LAYERS[1]
_start = (0.5 + 0.02 * torch.randn(_xh.shape, generator=torch.Generator().manual_seed(4))).clamp(0, 1)
_r0 = invert_features(model, _xh, _mid, steps=20, lr=0.05, tv_weight=0.0, seed=4)
assert float(_feature_error(_r0, _xh, _mid)[0]) < 0.6 * float(_feature_error(_start, _xh, _mid)[0]), (
    f"at {_mid} the feature error did not go down enough in 20 steps")
_r1 = invert_features(model, _xh, _mid, steps=20, lr=0.05, tv_weight=50.0, seed=4)
_tv = lambda z: float(((z[..., 1:, :] - z[..., :-1, :]) ** 2).mean() + ((z[..., :, 1:] - z[..., :, :-1]) ** 2).mean())
assert _tv(_r1) < 0.7 * _tv(_r0), "a large tv_weight must give a smoother reconstruction (add tv_weight * tv_loss)"
assert layers.forward_hooks_count(model) == 0
### END HIDDEN TESTS

# %% [markdown]
# ### Inversions at three depths
#
# Each photo is inverted from its features at the shallow, middle and deep layer of
# `INVERT_LAYERS`. For each reconstruction the notebook prints the relative feature error it reached,
# the pixel correlation with the photo, and whether the model's **top-1 class on the
# reconstruction equals its top-1 on the photo**.

# %% id="fig_inversion"
x_inv = images.preprocess(INVERT_PHOTOS, model, size=INVERT["size"])
photo01 = images.denormalize(x_inv, model).cpu().clamp(0, 1)
photo_top, _ = top1(x_inv)
INV_ARGS = dict(steps=INVERT["steps"], lr=0.02, tv_weight=10.0, seed=0)
recons, inversion_stats = {}, {}
for layer in INVERT_LAYERS:
    rec = invert_features(model, x_inv, layer, **INV_ARGS).cpu()
    recons[layer] = rec
    with torch.no_grad():
        a = layers.activations(model, images.normalize(rec.to(DEVICE), model), layer)
        b = layers.activations(model, x_inv, layer)
    err = ((a - b).flatten(1).pow(2).sum(1) / b.flatten(1).pow(2).sum(1)).cpu()
    rec_top, _ = top1(images.normalize(rec.to(DEVICE), model))
    corr = [float(np.corrcoef(rec[i].flatten().numpy(), photo01[i].flatten().numpy())[0, 1]) for i in range(len(rec))]
    inversion_stats[layer] = dict(error=err.tolist(), corr=corr, agree=(rec_top == photo_top).tolist(),
                                  rec_top=rec_top.tolist(), shape=tuple(b.shape[1:]))
fig, axes = plt.subplots(len(INVERT_PHOTOS), 1 + len(INVERT_LAYERS), squeeze=False,
                         figsize=(2.9 * (1 + len(INVERT_LAYERS)), 3.1 * len(INVERT_PHOTOS)), layout="constrained")
for i, name in enumerate(INVERT_PHOTOS):
    axes[i, 0].imshow(photo01[i].permute(1, 2, 0).numpy())
    axes[i, 0].set_title(f"{name}: {info.classes[int(photo_top[i])]}", fontsize=8)
    for j, layer in enumerate(INVERT_LAYERS):
        s = inversion_stats[layer]
        axes[i, j + 1].imshow(recons[layer][i].permute(1, 2, 0).numpy())
        axes[i, j + 1].set_title(f"{('shallow', 'middle', 'deep')[j]}: {layer}\n"
                                 f"top-1 {info.classes[s['rec_top'][i]]} ({'same' if s['agree'][i] else 'differs'})",
                                 fontsize=8)
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle(f"Inversions on {info.name} ({INVERT['steps']} Adam steps, TV weight {INV_ARGS['tv_weight']})")
plt.show()
for j, layer in enumerate(INVERT_LAYERS):
    s = inversion_stats[layer]
    c, h, w = s["shape"]
    print(f"{('shallow', 'middle', 'deep')[j]:8s} {layer:22s} features {c}x{h}x{w} = {c * h * w} values "
          f"(image: {3 * INVERT['size'] ** 2}); top-1 agreement {sum(s['agree'])}/{len(s['agree'])}; "
          f"feature error {np.round(s['error'], 3).tolist()}; pixel correlation {np.round(s['corr'], 2).tolist()}")

# %% [markdown]
# ### Your answer to Question 3 (3 pts)
#
# What survives at each depth? Describe the three reconstructions (colour, fine detail, edges, the
# object's position and shape, texture) and report the printed top-1 agreement and pixel
# correlation per depth. Why does more get lost deeper in the network? The feature error is small
# at every depth: what does that tell you about how many different images share the same deep
# features?

# %% [markdown] kind="answer" id="answer_3" points=3
# *Model answer (instructors).* Read the printed table; on EfficientNet-Lite0 in FAST mode (112 px,
# 100 steps) it says: **shallow** (`blocks.1.1.conv_pwl`, 24x28x28) pixel correlation about 0.6, the
# photo clearly recognisable (outline, layout, edges, textures) but with washed-out colours and a
# fine noise, and top-1 agreement 0/2; **middle** (`blocks.3.2.conv_pwl`, 80x7x7) correlation about
# 0.05, no recognisable layout, only colour blobs and texture strokes, top-1 0/2; **deep**
# (`blocks.5.3.conv_pwl`, 192x4x4) correlation about 0, a texture-like field, yet top-1 agreement
# 2/2 (the dog's reconstruction is a "German shepherd", the bee photo's a "daisy" like the photo's
# own top-1). On VGG16/VGG19 (with the full settings) the same progression appears, with more
# recognisable middle-layer reconstructions (Mahendran and Vedaldi's figures).
# So appearance (colour, exact edges, layout) survives only at the shallow layer, while the class
# evidence survives at the deep layer even when nothing visible does; the shallow reconstruction
# is misclassified although it looks like the photo, because its residual noise and colour shift
# are exactly the kind of small change Question 1 showed the classifier is sensitive to.
# Why information is lost with depth: every stage is many-to-one: non-linearities discard what is
# below threshold, strided convolutions/pooling discard exact positions (28x28 -> 7x7 -> 4x4
# positions here), and training keeps what predicts the class and makes the network invariant to
# the rest (lighting, colour shifts, small translations). The feature error reached is small at
# every depth (printed) while the pictures are far from the photo: many very different images
# share (almost) the same deep features, and the TV prior picks one of them.
#
# **Rubric (3 pts; half points allowed):**
# 1. (1 pt) A description per depth (shallow / middle / deep) that matches the figure.
# 2. (1 pt) Reports the printed top-1 agreement and correlation per depth and interprets them (e.g.
#    the class survives longer than the appearance).
# 3. (1 pt) Explains the loss of information with depth (many-to-one non-linearities, pooling/stride,
#    invariances learned for classification) and draws the conclusion from the small feature error:
#    many images share the same deep features.

# %% [markdown]
# ## Question 4 - Style as statistics: Gram matrices (3 pts)
#
# A layer's response `F` to an image has `C` channels at `P = h x w` positions. Its **Gram
# matrix** `G[c, d] = sum_p F[c, p] F[d, p] / P` says how strongly channels `c` and `d` fire
# *together*, averaged over positions: which features co-occur, not where.
#
# ### Your code (1 of 3 pts, autograded)
#
# Write `gram(features)`: `[N,C,h,w]` -> `[N,C,C]`, divided by the number of positions `h*w`.
#
# *Off limits:* `labkit.featurevis` (its `gram`).

# %% kind="solution" id="gram"
def gram(features):
    """Gram matrices of a batch of feature maps.

    Args:
        features: [N,C,h,w] layer responses.

    Returns:
        [N,C,C] tensor: G[n,c,d] = sum over positions of F[n,c,p] * F[n,d,p], divided by h*w.
    """
    ### BEGIN SOLUTION
    n, c, h, w = features.shape
    flat = features.reshape(n, c, h * w)
    return flat @ flat.transpose(1, 2) / (h * w)
    ### END SOLUTION


# %% kind="tests" id="test_gram" points=1
_f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # N=1, C=2, h=1, w=2
_got = gram(_f)
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (1, 2, 2), f"expected [N,C,C] = (1, 2, 2), got {tuple(_got.shape)}"
assert torch.allclose(_got, torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 2), (
    f"G = F F^T / (h*w): for F = [[1, 2], [3, 4]] expected [[2.5, 5.5], [5.5, 12.5]], got {_got.tolist()}")
_r = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
_perm = torch.randperm(15, generator=torch.Generator().manual_seed(1))
_shuffled = _r.flatten(2)[:, :, _perm].reshape(2, 4, 3, 5)  # the same responses at other positions
assert torch.allclose(gram(_r), gram(_shuffled), atol=1e-5), "shuffling the positions must not change a Gram matrix"
assert torch.allclose(gram(_r), gram(_r).transpose(1, 2), atol=1e-6), "a Gram matrix is symmetric"
print("gram: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["gram"], forbid=["labkit.featurevis"])
_h = torch.randn(3, 6, 4, 7, generator=torch.Generator().manual_seed(2))
_want = torch.einsum("nchw,ndhw->ncd", _h, _h) / 28
assert torch.allclose(gram(_h), _want, atol=1e-5), "on a random [3,6,4,7] batch your Gram matrices are wrong (divide by h*w)"
### END HIDDEN TESTS

# %% [markdown]
# ### Texture synthesis (Gatys et al. 2015)
#
# Match the Gram matrices of `STYLE_PHOTO` at the `STYLE_LAYERS` (Gatys et al. use VGG's first
# layers of each block) from noise, with Adam, using **your** `gram`. Next to it: the inversion of the
# same photo from one layer's *features*. First a check that shows the difference in numbers:
# shuffle the photo's responses over positions; the Gram matrix does not change at all, while the
# features (what inversion matches) change completely.

# %% id="gram_vs_features"
x_style = images.preprocess(STYLE_PHOTO, model, size=STYLE["size"])


def style_features(x):
    """{layer: [N,C,h,w]} at STYLE_LAYERS, one truncated forward pass (gradients flow)."""
    with layers.capture(model, list(STYLE_LAYERS), stop=True) as acts:
        layers.run_until(model, x)
    return dict(acts)


with torch.no_grad():
    style_feats = style_features(x_style)
    style_grams = {name: gram(f) for name, f in style_feats.items()}
f0 = style_feats[STYLE_LAYERS[-1]]
perm = torch.randperm(f0.shape[-2] * f0.shape[-1], generator=torch.Generator().manual_seed(0))
f_shuffled = f0.flatten(2)[:, :, perm.to(f0.device)].reshape(f0.shape)
gram_change = float((gram(f_shuffled) - gram(f0)).norm() / gram(f0).norm())
feat_change = float((f_shuffled - f0).norm() / f0.norm())
print(f"{STYLE_LAYERS[-1]}: shuffling positions changes the features by {feat_change:.2f} (relative L2) "
      f"and the Gram matrix by {gram_change:.1e}")


# %% id="fig_texture"
def synthesise_texture(steps, lr=0.02, seed=0):
    """Adam on a pixel image so that its Gram matrices at STYLE_LAYERS match the photo's (your gram)."""
    noise = torch.randn(x_style.shape, generator=torch.Generator().manual_seed(seed))
    img = (0.5 + 0.02 * noise).clamp(0, 1).to(DEVICE).requires_grad_(True)
    opt = torch.optim.Adam([img], lr=lr)
    history = []
    for _ in range(steps):
        feats = style_features(images.normalize(img, model))
        loss = sum(((gram(feats[n]) - style_grams[n]).pow(2).sum() / style_grams[n].pow(2).sum()) for n in STYLE_LAYERS)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            img.clamp_(0, 1)
        history.append(float(loss.detach()))
    return img.detach().cpu(), history


texture, style_history = synthesise_texture(STYLE["steps"])
style_inv = invert_features(model, x_style, STYLE_LAYERS[-1], steps=STYLE["steps"], lr=0.02, tv_weight=10.0, seed=0).cpu()
style_top, style_p = top1(x_style)
tex_top, tex_p = top1(images.normalize(texture.to(DEVICE), model))
inv_top, inv_p = top1(images.normalize(style_inv.to(DEVICE), model))
panels = [(images.denormalize(x_style, model).cpu().clamp(0, 1)[0], f"photo: {info.classes[int(style_top)]} ({float(style_p):.2f})"),
          (texture[0], f"Gram match at {len(STYLE_LAYERS)} layers\ntop-1 {info.classes[int(tex_top)]} ({float(tex_p):.2f})"),
          (style_inv[0], f"feature match at {STYLE_LAYERS[-1]}\ntop-1 {info.classes[int(inv_top)]} ({float(inv_p):.2f})")]
fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.8), layout="constrained")
for ax, (pic, title) in zip(axes, panels):
    ax.imshow(pic.permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.suptitle(f"Style (Gram matrices) vs content (features), {STYLE['steps']} Adam steps")
plt.show()
print(f"Gram loss: {style_history[0]:.3f} at the start, {style_history[-1]:.4f} after {len(style_history)} steps")

# %% [markdown]
# ### Your answer to Question 4 (2 pts)
#
# Compare the texture with the inversion of the same photo. What does each keep and what does each
# throw away? Use the shuffle check's two printed numbers in your explanation.

# %% [markdown] kind="answer" id="answer_4" points=2
# *Model answer (instructors).* The texture keeps local patterns of the photo (curved rind edges,
# segment-like wedges) and part of its colours, but scatters them over the whole image: no whole
# slice, no layout, no outline in its place. (In the FAST run, 60 steps at 112 px, it is still noisy:
# yellow/orange and white among saturated colour noise; the model calls it a texture class,
# "manhole cover". The full settings give a cleaner texture.) The inversion from features keeps the layout:
# the slices' circles where they were, with washed-out colours. The shuffle check says why, in numbers: moving the
# responses to other positions changes the features by a relative amount of order 1 (printed) but
# the Gram matrix by essentially zero (floating-point error): a Gram matrix is a sum over positions,
# so it is invariant to *where* things are and keeps only *which features occur together and how
# strongly* (second-order statistics). Features index positions, so matching them pins the content
# in place. The model's top-1 on the texture may still be the photo's class or a texture-like class,
# a reminder that ImageNet CNNs rely heavily on texture (Geirhos et al.).
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) What each keeps / loses, consistent with the figure (texture: colours and local
#    patterns, no layout; inversion: layout and shapes).
# 2. (1 pt) The reason: Gram = sum over positions, invariant to spatial rearrangement (quoting the
#    printed ~0 change vs the large feature change), whereas features keep positions.

# %% [markdown]
# ## Explore (ungraded): any photo, any target, any budget
#
# Pick a photo, a target class and a budget: the explorer runs labkit's targeted attack (the same
# projected sign-gradient steps as yours, stopping each image once it is fooled) when you change a
# control, with a progress bar while it works, and keeps every result it made, so going back is
# instant. The perturbation is shown magnified so that the budget fills the grey range. In an
# exported report it appears as the picture of its current setting.

# %% id="explorer"
from course.explorers.lab6 import FoolingExplorer

FoolingExplorer(model, {p.split("/")[-1].rsplit(".", 1)[0]: p for p, _, _ in chosen},
                targets=[TARGET_CLASS, "tree frog", "school bus", "pizza", "tarantula", "volcano"],
                eps=2, steps=ATTACK_STEPS)

# %% [markdown]
# ## Before you hand in
#
# *Kernel > Restart & Run All*, check that every figure appears and every visible test prints
# "passed", and that your name is in the settings cell. To make a PDF report, run
# `labkit report lab6_fooling.ipynb --to pdf` in a terminal (or `labkit.report.export("pdf")` in a cell).

# %% kind="free"
# Scratch cell (ungraded): experiment here.
