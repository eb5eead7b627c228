# ---
# jupyter:
#   labkit:
#     title: "Lab 2 \u2014 What filters respond to: feature visualisation"
# ---

# %% [markdown]
# # Lab 2 — What filters respond to: feature visualisation
#
# A CNN is made of layers, each with many filters, and the features a layer captures get more
# abstract with depth. We cannot read that knowledge off the weights directly, but we can ask the
# network: *which input image makes this filter respond most strongly?* Start from noise, measure
# the filter's response, and change the pixels by gradient **ascent** on that response. The image
# that comes out shows the pattern the filter is looking for. This is *activation maximisation*
# (Erhan et al. 2009; Simonyan et al. 2014; Olah et al., Distill 2017).
#
# You will write the gradient-ascent loop yourself, then use labkit's full version to look at
# filter 0 of every conv layer and at five filters of one mid-level layer. The last part tries
# the tricks of Max Schneider's project *Visualizing the Inner Workings of a CNN*: octaves, edge
# and colour penalties, a normalised gradient step, and starting from a photo.
#
# This lab follows **Assignment 2(a) and 2(b)** of the Duke ECE590 Lab 1 handout (6 points;
# 2(c) is Lab 3).
#
# | Handout question | Points | Where it is answered | How it is graded |
# |---|---|---|---|
# | 2(a) Filter 0 of every conv layer: how do the responses change with depth? | 6 | **Question 2(a)**: *Step 1* `ascend` (4 pts), *Step 2* figure made with your `ascend`, *Your answer* (2 pts) | 4 autograded + 2 written |
# | 2(b) Filters 1, 3, 15, 63, 255 of layer 10: what happens to their responses? | 2 | **Question 2(b)**: figure made with your `ascend`, *Your answer* (2 pts) | 2 written |
# | (ungraded) any channel of any layer | - | **Explore**, after the Schneider techniques | - |
# | Schneider project: octaves, Scharr-edge and colour penalties, normalised gradient, photo start | — | **Techniques from the Schneider project** | ungraded |
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
# `FAST` (from `LABKIT_FAST=1`) uses fewer layers, steps and pixels so the notebook runs on a laptop
# CPU in minutes. `FV_PRESET` picks labkit's visualisation recipe for the figures: `"quality"`
# (clean pictures) or `"handout"` (the Duke lab's plain pixel ascent, like your `ascend`).

# %% kind="free" tags=["parameters"]
# %matplotlib inline
from labkit.notebook import lab_settings

STUDENT_NAME = ""  # your name(s), as they should appear on the report
MODEL_NAME = None  # None: $LABKIT_MODEL, else this lab's model (VGG16); offline: the bundled EfficientNet-Lite0
FAST, DEVICE = lab_settings()  # FAST: $LABKIT_FAST=1 (small, quick settings); DEVICE: CUDA, Apple MPS or CPU
FV_PRESET = "quality"  # "quality" or "handout" (see above)
FV_STEPS = 16 if FAST else None  # optimisation steps per picture (None: the preset's)
FV_SIZE = 64 if FAST else None  # picture side in px (None: the preset's)
MAX_LAYERS = 4 if FAST else 13  # Question 2(a): how many conv layers to show (VGG16 has 13)
ASCEND = dict(steps=12, size=64) if FAST else dict(steps=30, size=128)  # your ascend in the 2(a)/2(b) figures

# %% id="setup"
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

from course.roles import roles_for
from labkit.featurevis import color_penalty, dataset_examples, scharr_edges, visualize
from labkit.images import denormalize, deprocess, labelled_images, normalize
from labkit.layers import activations, layer_info, layers
from labkit.models import load_model
from labkit.plot import filter_grid

model = load_model(MODEL_NAME, default="vgg16", device=DEVICE)
roles = roles_for(model)
L_FIRST, L_MID, MID_FILTERS = roles.first_conv, roles.mid_conv, list(roles.mid_channels)
print(f"model: {model.labkit.name} on {DEVICE}")
print(f"The handout's layer 10 on VGG16 is features.10; on {model.labkit.name} we use {L_MID} "
      f"(handout index {layer_info(model, L_MID).index}) and its filters {MID_FILTERS}.")

# %% [markdown]
# The conv layers of the model in use, in the order the forward pass runs them. `idx` is the
# handout's layer index (`cnn_layer`), `RF px` the receptive field: how many input pixels one
# position of the layer's output can see.

# %% id="layer_table"
layers(model).conv()


# %% [markdown]
# ## Question 2(a) — Filter 0 of every conv layer (6 pts)
#
# *Handout:* keep `filter_pos = 0` and change `cnn_layer` to visualise the responses of different
# layers. Plot the visualisations of all convolution layers (only conv layers). How do the responses
# change from layer to layer? Explain your understanding intuitively.
#
# Points: **4** for `ascend` (autograded, Step 1) and **2** for your written answer.
#
# ### Step 1 — Write the gradient ascent yourself (4 pts, autograded)
#
# Write `ascend(model, layer, filter, steps, lr, size)`, the handout's method:
#
# 1. Start from a grey, slightly noisy image: pixels uniform in `[0.6, 0.7]` (the handout's 150..180
#    of 255), shape `[1, 3, size, size]`, on the model's device, and convert it to the model's
#    input units with `normalize(x01, model)`. Optimise this normalised tensor `x` directly
#    (`x.requires_grad_(True)`), with `torch.optim.Adam([x], lr=lr)`.
# 2. Each step: run the network **only up to** `layer` with
#    `labkit.layers.activations(model, x, layer)` (shape `[1, C, h, w]`), take channel `filter`,
#    and use the **mean absolute activation** as the score. Adam *minimises*, so minimise `-score`.
# 3. After each step keep the image displayable: clamp it to valid pixels,
#    `x.data = normalize(denormalize(x.data, model).clamp(0, 1), model)`.
# 4. Return the final `x`, detached: `[1, 3, size, size]` in normalised units
#    (`deprocess(x, model)` turns it into a picture).
#
# The model's weights are frozen (`requires_grad=False`), so only the image changes. The figures of
# 2(a) and 2(b) are made with your `ascend`.
#
# **Off limits** (they raise while your function is graded, and a wrapper around them scores 0):
# everything in `labkit.featurevis` (`visualize`, ...), lucent and captum. The helpers named above
# (`activations`, `normalize`, `denormalize`) are allowed.

# %% kind="solution" id="ascend"
def ascend(model, layer, filter, steps=30, lr=0.1, size=128):
    """Gradient ascent on the pixels of one image to maximise a filter's mean |activation|.

    Args:
        model: a labkit model (frozen, eval mode).
        layer: the layer's dotted name or handout index.
        filter: the filter (output channel) index in that layer.
        steps: number of Adam steps.
        lr: Adam's learning rate, in normalised pixel units.
        size: image side in pixels.

    Returns:
        [1, 3, size, size] tensor in the model's normalised units, detached.
    """
    ### BEGIN SOLUTION
    device = next(model.parameters()).device
    x01 = 0.6 + 0.1 * torch.rand(1, 3, size, size, device=device)  # the handout's grey noise
    x = normalize(x01, model).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    for _ in range(steps):
        response = activations(model, x, layer)[0, filter]  # stops at `layer`
        loss = -response.abs().mean()  # Adam minimises: minimise minus the score
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        x.data = normalize(denormalize(x.data, model).clamp(0, 1), model)  # stay a valid image
    return x.detach()
    ### END SOLUTION


# %% id="ascend_demo"
# Your ascent on filter 0 of the first conv layer, next to the starting noise.
torch.manual_seed(0)
mine = ascend(model, L_FIRST, 0, steps=20, lr=0.1, size=96)
start = normalize(0.6 + 0.1 * torch.rand(1, 3, 96, 96, device=DEVICE), model)
with torch.no_grad():
    scores = [activations(model, x, L_FIRST)[0, 0].abs().mean().item() for x in (start, mine)]
pictures = torch.stack([denormalize(x, model)[0].clamp(0, 1).cpu() for x in (start, mine)])
filter_grid(pictures, titles=[f"start (noise)\nmean |act| {scores[0]:.3g}",
                              f"your ascend, 20 steps\nmean |act| {scores[1]:.3g}"])
plt.show()

# %% kind="tests" id="test_ascend" points=4
# Visible test: your image must excite the filter far more than noise does, and about as much as
# labkit's version of the same method (preset "handout") with the same steps and size.
import torch
from labkit.featurevis import visualize as labkit_visualize
from labkit.layers import activations, forward_hooks_count


def _check_ascend(layer, filt, steps=10, size=64, times_noise=3.0):
    x = ascend(model, layer, filt, steps=steps, lr=0.1, size=size)
    assert torch.is_tensor(x), f"ascend must return a tensor, got {type(x).__name__}"
    assert tuple(x.shape) == (1, 3, size, size), f"ascend must return [1,3,{size},{size}], got {tuple(x.shape)}"
    assert torch.isfinite(x).all(), "the image contains NaN or inf"
    assert forward_hooks_count(model) == 0, "hooks were left on the model; use labkit.layers.activations"
    assert all(p.grad is None for p in model.parameters()), "model parameters received gradients"
    noise = normalize(0.6 + 0.1 * torch.rand(1, 3, size, size, device=DEVICE), model)
    with torch.no_grad():
        yours = activations(model, x.to(DEVICE), layer)[0, filt].abs().mean().item()
        base = activations(model, noise, layer)[0, filt].abs().mean().item()
    ref = labkit_visualize(model, layer, [filt], preset="handout", steps=steps, size=size, progress=False)
    theirs = float(ref.activations[0])
    print(f"{layer} filter {filt}: mean |activation| noise {base:.3g}, yours {yours:.3g}, labkit {theirs:.3g}")
    if times_noise:
        assert yours > times_noise * base, (
            f"your image excites {layer} filter {filt} only {yours / max(base, 1e-12):.1f}x as much as noise; "
            "is the sign of the loss right (ascend = minimise -score)?")
    assert yours - base > 0.5 * (theirs - base), (
        f"your image raises {layer} filter {filt} from {base:.3g} (noise) to {yours:.3g}, labkit's to {theirs:.3g} "
        "with the same steps; check the objective (mean |activation| of one channel) and Adam's lr")


_check_ascend(L_MID, MID_FILTERS[1])
### BEGIN HIDDEN TESTS
_grading = dict(calls=["ascend"], forbid=["labkit.featurevis", "lucent", "captum"])
_check_ascend(L_FIRST, 5, steps=8, size=48)
_check_ascend(roles.quant_layer, 10, steps=6, size=48, times_noise=None)
### END HIDDEN TESTS

# %% [markdown]
# ### Step 2 — Filter 0 of every conv layer
#
# The top row is **your** `ascend` (settings `ASCEND`: the handout's plain pixel ascent), the
# handout's figure. For comparison, the bottom row is labkit's `visualize(model, layer, channels)`
# with the recipe `FV_PRESET` (`"quality"`: a Fourier-space image, random jitter and more steps), which
# optimises all channels of one layer as one batch. VGG16 has 13 conv layers; a model with many more
# (EfficientNet-Lite0 has 49, most of them 1x1 and depthwise convs in its inverted-residual blocks)
# gets an evenly spaced sample of `MAX_LAYERS` of them, skipping depthwise convs (their filters see
# only one channel each).

# %% id="all_layers"
conv_names = [row.name for row in layers(model).conv() if model.get_submodule(row.name).groups == 1]
if len(conv_names) > MAX_LAYERS:
    keep = np.linspace(0, len(conv_names) - 1, MAX_LAYERS).round().astype(int)
    print(f"{len(conv_names)} conv layers (without depthwise ones): showing {MAX_LAYERS}, evenly spaced.")
    conv_names = [conv_names[i] for i in keep]
yours, preset_pictures, titles = [], [], []
for name in tqdm(conv_names, desc="filter 0 of each layer"):
    torch.manual_seed(0)
    yours.append(deprocess(ascend(model, name, 0, **ASCEND), model))  # HxWx3 in [0,1]
    result = visualize(model, name, [0], preset=FV_PRESET, steps=FV_STEPS, size=FV_SIZE, progress=False)
    preset_pictures.append(result.images[0].permute(1, 2, 0).numpy())
    row = layer_info(model, name)
    titles.append(f"{name} (idx {row.index})\nRF {row.receptive_field} px")
fig, axes = plt.subplots(2, len(conv_names), figsize=(2.3 * len(conv_names), 5.4), squeeze=False,
                         layout="constrained")
for j, title in enumerate(titles):
    axes[0, j].imshow(yours[j])
    axes[0, j].set_title(title, fontsize=8)
    axes[1, j].imshow(preset_pictures[j])
axes[0, 0].set_ylabel("your ascend", fontsize=9)
axes[1, 0].set_ylabel(f"labkit '{FV_PRESET}'", fontsize=9)
for ax in axes.flat:
    ax.set_xticks([])
    ax.set_yticks([])
fig.suptitle("Filter 0 of each conv layer: your ascend (top), labkit's preset (bottom)")
plt.show()

# %% [markdown]
# **What to look for.** The first layer's filter 0 gives a colour or an oriented edge/stripe
# pattern repeated over the whole image: its receptive field is a few pixels, so all it can ask
# for is a colour or a local gradient. A few layers in, textures appear (repeated small motifs).
# Deeper, the motifs grow (compare the `RF` numbers) and become parts of objects: eyes, fur,
# wheels, scales, often in several places and poses. The last layers mix such parts into
# object-like collages. Not every filter 0 is pretty: some are dead-ish or respond to many things.

# %% [markdown]
# ### Your answer to Question 2(a) (2 pts)
#
# Describe how the visualisations change from the first to the last conv layer (scale of the
# patterns, colour, complexity, how "object-like" they are), referring to the figure. Explain
# intuitively why: use the receptive field and the idea that each layer combines the features of
# the layer below.

# %% [markdown] kind="answer" id="answer_2a" points=2
# *Model answer (instructors).* The first conv layer's filter 0 asks for a flat colour or a fine,
# oriented edge/stripe pattern that repeats over the whole image; the early layers (VGG16 conv1,
# conv2) stay at that scale: high-frequency stripes, colour gradients, small dots. In the middle
# layers (conv3, conv4) textures appear: repeated motifs such as waves, grids, honeycombs or
# fur-like strokes, a few times larger. The last layers (conv5) show larger, more complex and more
# varied structures that look like object parts (eyes, snouts, legs, wheels, leaves) scattered over
# the image in several poses. Why: each unit combines the features of the layer below over a
# 3x3 window, so the patterns it can express are conjunctions of simpler ones, and after every
# pooling the window covers more input: VGG16's receptive field grows from 3 px (conv1_1) to
# 196 px (conv5_3). A unit repeats its pattern everywhere because the objective is the mean over
# all positions and conv layers are translation-equivariant. Deeper pictures made with plain
# pixel ascent are noisier (high frequencies are the cheapest way to raise a deep unit), which is
# why priors and the quality preset help (compare the two rows).
#
# On EfficientNet-Lite0 the same trend holds with different numbers: read the `RF px` of each panel
# (the printed layer table: 3 px at `conv_stem`, hundreds of pixels in the last blocks). Its
# 1x1 "expand/project" convs mix channels without looking further, and the depthwise 3x3/5x5 convs
# grow the field; the sampled layers skip the depthwise ones, so the receptive field grows between
# panels in uneven jumps. Where plain pixel ascent (top row) turns into high-frequency noise in the
# deeper layers, the preset's pictures (bottom row) are the ones to read.
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) A description of *this notebook's* figure from the first to the last layer (scale of the
#    patterns, colour, complexity, object parts), with at least one concrete observation per
#    stage; claims must match the pictures shown (e.g. no "eyes" if none appear).
# 2. (1 pt) The explanation: receptive field growth (quoting the printed `RF` values) and
#    composition of lower-layer features; a remark on why plain ascent gets noisier with depth, or
#    why the pattern repeats over the image, is welcome but not required for the point.

# %% [markdown]
# ## Question 2(b) — Five filters of one mid-level layer (2 pts)
#
# *Handout:* keep `cnn_layer = 10` and set `filter_pos` to 1, 3, 15, 63 and 255 in turn. What
# happens to the responses of these filters? Plot the results and explain your findings.
#
# On VGG16 that is `features.10` (conv3_1); on other models the setup cell printed the layer and
# filters used instead (`L_MID`, `MID_FILTERS`). The top row is your `ascend`, one filter at a time;
# the bottom row labkit's preset, all five filters in **one** batched call. The second figure
# shows, for each filter, the two patches of the course's labelled photo set
# (`labelled_images()`; the cell prints how many photos) that excite it most (its receptive field
# around the strongest position), titled with the photo's class: real-world evidence for what the
# synthetic pictures suggest.

# %% id="mid_filters"
mid_yours = []
for f in tqdm(MID_FILTERS, desc=f"your ascend on {L_MID}"):
    torch.manual_seed(0)
    mid_yours.append(ascend(model, L_MID, f, **ASCEND))
with torch.no_grad():
    mid_scores = [float(activations(model, x.to(DEVICE), L_MID)[0, f].abs().mean()) for x, f in zip(mid_yours, MID_FILTERS)]
mid = visualize(model, L_MID, MID_FILTERS, preset=FV_PRESET, steps=FV_STEPS, size=FV_SIZE)
fig, axes = plt.subplots(2, len(MID_FILTERS), figsize=(2.4 * len(MID_FILTERS), 5.6), squeeze=False,
                         layout="constrained")
for j, f in enumerate(MID_FILTERS):
    axes[0, j].imshow(deprocess(mid_yours[j], model))
    axes[0, j].set_title(f"#{f}, your ascend\nmean |act| {mid_scores[j]:.3g}", fontsize=8)
    axes[1, j].imshow(mid.images[j].permute(1, 2, 0).numpy())
    axes[1, j].set_title(f"#{f}, labkit '{FV_PRESET}'\n{mid.objective} {float(mid.activations[j]):.3g}", fontsize=8)
for ax in axes.flat:
    ax.set_axis_off()
fig.suptitle(f"{L_MID}: five filters")
plt.show()

# %% id="mid_examples"
labelled = labelled_images()  # (path, class index) of every labelled photo
class_names = model.labkit.classes
crops, titles, sources = [], [], []
for f in MID_FILTERS:  # dataset_examples reads the photos from disk in batches: never all in memory at once
    best = dataset_examples(model, L_MID, f, [path for path, _ in labelled], k=2, progress=False)
    for crop, i in zip(best.crops, best.indices):
        crops.append(torch.nn.functional.interpolate(crop[None], size=(80, 80), mode="bilinear")[0])
        titles.append(f"#{f}: {class_names[labelled[i][1]][:16]}")
        sources.append(i)
filter_grid(torch.stack(crops).clamp(0, 1), titles=titles, ncols=2 * len(MID_FILTERS),
            suptitle=f"{L_MID}: the two patches of {len(labelled)} photos that excite each filter most")
plt.show()
print(f"searched {len(labelled)} labelled photos ({len({t for _, t in labelled})} classes); "
      f"the {len(crops)} top patches come from {len(set(sources))} different photos")

# %% [markdown]
# ### Your answer to Question 2(b) (2 pts)
#
# Compare the five filters of the same layer: what does each respond to, how different are they,
# and how do the photo patches agree or disagree with the synthetic pictures? Explain intuitively
# why one layer needs many different filters (and why some filters are harder to read than others).

# %% [markdown] kind="answer" id="answer_2b" points=2
# *Model answer (instructors).* All five filters work at the same scale (same receptive field),
# but each asks for a different pattern: different orientation, frequency, colour or motif (for
# example diagonal stripes vs a honeycomb/cell pattern vs horizontal bands), and they reach very
# different activation levels. Some pictures are clear textures that the photo patches confirm
# (the same stripes or cells appear in the strongest real patches: fruit segments, scales, fur,
# grass); others are mixed or vague, and their patches share little: those units respond to
# several unrelated things (polysemantic) or need context the synthetic image lacks. One layer
# needs many different filters because later layers build every object out of combinations of
# them: a rich, distributed vocabulary of local features (256 channels in VGG16's conv3_1) lets the
# next layers detect many parts, while any single filter says little on its own.
# On EfficientNet-Lite0 the layer is a 1x1 expansion conv inside a bottleneck block
# (`blocks.3.0.conv_pw`, 240 channels, printed receptive field): each channel is a weighted mix
# of the previous block's channels at one position (its receptive field comes from the blocks
# before it), so the same reasoning holds.
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) The five filters compared from this notebook's pictures and patches: what each seems
#    to respond to, how they differ, and where the photo patches agree or disagree with the
#    synthetic pictures (claims must match the figures).
# 2. (1 pt) Why a layer needs many different filters (a vocabulary that later layers combine;
#    distributed representation) and why some are hard to read (polysemantic units, missing
#    context, weak activation).

# %% [markdown]
# ## Techniques from the Schneider project (ungraded)
#
# Max Schneider's project hit three problems with plain gradient ascent and fixed each:
#
# 1. **The learning rate varied by orders of magnitude** between layers and filters. Fix: a
#    *normalised gradient* step, `x += lr * grad / max|grad|`, so every step changes the image by
#    the same amount (`optimizer="normalized"`).
# 2. **The images were chaotic**, with sharp, drastic colour changes. Fix: two penalties in the
#    objective, one on **sharp edges** (the image convolved with horizontal and vertical Scharr
#    filters, `scharr_edges(weight)`) and one on **extreme colours** (`color_penalty(weight)`).
# 3. **The patterns were tiny.** Fix: **octaves**: optimise a small image, upscale it, optimise
#    again, several times (`octaves=3`), so patterns appear at several scales.
#
# He also started from **a photo** instead of noise (`start="flower"`), which turns the method
# into DeepDream-like art. Below, one filter of the mid-level layer with four recipes:

# %% id="schneider_compare"
F_DEMO = MID_FILTERS[1]
steps = 12 if FAST else 64  # per octave
size = 56 if FAST else 128
octaves = 2 if FAST else 3
schneider = dict(preset="handout", optimizer="normalized", lr=0.5, steps=steps, size=size,
                 regularizers=[scharr_edges(0.5), color_penalty(0.05)], progress=False)
recipes = {
    "handout preset\n(Adam on pixels)": dict(preset="handout", steps=steps, size=size, progress=False),
    "quality preset\n(Fourier + scale/rotate/shift)": dict(preset="quality", steps=steps, size=size, progress=False),
    f"Schneider: normalised step,\npenalties, {octaves} octaves": dict(schneider, octaves=octaves,
                                                                      snapshot_every=steps),
    "... started from a photo": dict(schneider, octaves=octaves, start="flower"),
}
results = {label: visualize(model, L_MID, [F_DEMO], **kwargs) for label, kwargs in tqdm(recipes.items())}
pictures = [torch.nn.functional.interpolate(r.images, size=(160, 160), mode="bilinear")[0]
            for r in results.values()]  # octave results are larger; same display size for all
filter_grid(torch.stack(pictures).clamp(0, 1),
            titles=[f"{label}\nact {r.activations[0]:.3g}" for label, r in results.items()], ncols=4)
plt.show()

# %% [markdown]
# Each `act` is that recipe's own objective on its final picture (the quality preset maximises the
# mean activation, the others the mean |activation|, and penalties pull scores down), so compare
# the pictures more than the numbers. The octaves at work: the picture at the end of each octave.
# Each octave starts from the previous one's picture, enlarged by `octave_scale` (1.4), and
# optimises it for `steps` more steps; the panels are shown at the same size, and their titles give
# each octave's real size.

# %% id="octaves_strip"
octave_run = results[f"Schneider: normalised step,\npenalties, {octaves} octaves"]
fig, axes = plt.subplots(1, len(octave_run.snapshots), figsize=(2.8 * len(octave_run.snapshots), 3.3),
                         squeeze=False, layout="constrained")
for k, (ax, (step, imgs)) in enumerate(zip(axes[0], octave_run.snapshots)):  # one snapshot per octave
    ax.imshow(imgs[0].permute(1, 2, 0).clamp(0, 1).numpy())
    ax.set_title(f"octave {k + 1} of {octaves}\n{imgs.shape[-2]}x{imgs.shape[-1]} px, {steps} steps", fontsize=9)
    ax.set_axis_off()
fig.suptitle(f"{L_MID} #{F_DEMO}: the picture at the end of each octave")
plt.show()

# %% [markdown]
# ## Explore (ungraded): any channel of any layer
#
# Pick a layer and a channel: the explorer runs labkit's `visualize` for it (recipe `FV_PRESET`, the
# same steps and size as the figures above) when you change the choice, with a progress bar while
# it optimises, and keeps every picture it made, so going back is instant. This is the Duke
# handout's "change `cnn_layer` and `filter_pos`", without editing code. In an exported report it
# appears as the picture of its current setting.

# %% id="explorer"
from course.explorers.lab2 import FeatureVisExplorer

all_conv = [row.name for row in layers(model).conv() if model.get_submodule(row.name).groups == 1]
FeatureVisExplorer(model, all_conv, layer=L_MID, channel=MID_FILTERS[0],
                   settings=dict(preset=FV_PRESET, steps=FV_STEPS, size=FV_SIZE, seed=0))

# %% [markdown]
# Things to try (ungraded): change the penalty weights in `schneider` above (what happens at 0?
# at 5?), the number of octaves, another photo (`labkit.images.sample_images()` lists them), or a filter of a
# deeper layer. Use the scratch cell below.

# %% kind="free"
# Scratch cell (ungraded): experiment here.
