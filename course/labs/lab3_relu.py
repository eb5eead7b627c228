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

# %% [markdown]
# ## Question 2(c) - What does the ReLU do to the first and the last layer? (8 pts)
#
# The handout asks you to visualise responses before and after the ReLU of the first and the last
# conv-ReLU pair, to describe the ReLU's effect and whether it differs between the two layers, and
# to explain why. First you capture the responses yourself, then you put numbers on them.
#
# ### Part 1 - Capture the responses with hooks (3 pts, autograded)
#
# PyTorch lets you attach a function to a module that runs during every forward pass:
#
# * `module.register_forward_pre_hook(fn)` calls `fn(module, args)` just **before** the module runs
#   (`args[0]` is its input);
# * `module.register_forward_hook(fn)` calls `fn(module, args, output)` just **after** it.
#
# Both return a *handle*; `handle.remove()` detaches the hook. A hook that is never removed fires in
# every later forward pass and keeps its tensors alive, so the safe pattern is a **context manager**
# that registers the hooks, `yield`s, and removes them in a `finally:` block, so they are removed
# even when the code inside the `with` block raises.
#
# Write two things in the cell below:
#
# 1. `record_pre_post(module)`, a `@contextlib.contextmanager`. It yields a dict that, after each
#    forward pass of `module` inside the `with` block, holds `"before"`, a copy of the module's input,
#    and `"after"`, a copy of its output (both detached; the last pass wins).
# 2. `pre_post_responses(model, x, activation)`: the input and output of the module named
#    `activation` (e.g. `"features.1"`) when `model(x)` runs once, returned as two tensors
#    `(before, after)`. Use your context manager, and run the model under `torch.no_grad()`.
#
# One trap: **VGG's ReLUs work in place** (`nn.ReLU(inplace=True)`): they overwrite their input
# tensor with the output, so by the time a forward hook runs, `args[0]` already holds the rectified
# values. Copy the input *before* the module runs.
#
# The tests grade `pre_post_responses` (on small models, on in-place ReLUs and on the real model).
# **Off limits** (they raise while your function is graded, and a wrapper around them scores 0):
# labkit's capturing functions `labkit.layers.pre_post`, `activations`, `capture`, `hooks`,
# `run_until`, and captum. Use the two `register_*_hook` methods above.

# %% kind="solution" id="record_pre_post"
@contextlib.contextmanager
def record_pre_post(module):
    """Record a module's input and output during the forward passes run inside the block.

    Usage::

        with record_pre_post(model.get_submodule("features.1")) as rec:
            model(x)
        rec["before"], rec["after"]  # [N,C,h,w] each

    Args:
        module: an nn.Module, here a non-linearity (nn.ReLU, possibly in place, or nn.ReLU6).

    Yields:
        A dict holding, after each forward pass of ``module`` inside the block, "before" (a detached
        copy of its input, taken before the module runs) and "after" (a detached copy of its output).
        The last pass wins. The hooks are removed when the block ends, even if it raised.
    """
    ### BEGIN SOLUTION
    record = {}

    def before(mod, args):
        record["before"] = args[0].detach().clone()  # copy now: an in-place ReLU overwrites its input

    def after(mod, args, output):
        record["after"] = output.detach().clone()

    handles = [module.register_forward_pre_hook(before), module.register_forward_hook(after)]
    try:
        yield record
    finally:
        for handle in handles:
            handle.remove()
    ### END SOLUTION


def pre_post_responses(model, x, activation):
    """One forward pass of ``model`` on ``x``; the input and output of its module ``activation``.

    Args:
        model: an nn.Module. x: its input batch, e.g. [N,3,H,W].
        activation: the dotted name of the module to record (``model.get_submodule(activation)``).

    Returns:
        (before, after): detached copies of that module's input and output, e.g. [N,C,h,w] each.
        No hooks are left on the model, even if the forward pass raised.
    """
    ### BEGIN SOLUTION
    with record_pre_post(model.get_submodule(activation)) as record:
        with torch.no_grad():
            model(x)
    return record["before"], record["after"]
    ### END SOLUTION


# %% kind="tests" id="test_record_pre_post" points=3
# A conv followed by a ReLU, on random numbers: "before" is the conv's output, "after" its ReLU.
_conv = torch.nn.Conv2d(3, 4, 3, padding=1)
_xt = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    _want = _conv(_xt)
_toy = torch.nn.Sequential(_conv, torch.nn.ReLU())
_out = pre_post_responses(_toy, _xt, "1")
assert isinstance(_out, tuple) and len(_out) == 2, "return a tuple (before, after)"
_before, _after = _out
assert tuple(_before.shape) == (2, 4, 6, 6), f"'before' should be [2,4,6,6], got {tuple(_before.shape)}"
assert torch.allclose(_before, _want, atol=1e-6), "'before' must equal the ReLU's input (the conv output)"
assert torch.allclose(_after, _want.clamp(min=0), atol=1e-6), "'after' must equal the ReLU's output"
assert not _toy[1]._forward_hooks and not _toy[1]._forward_pre_hooks, "hooks were left on the module"
# VGG's ReLUs are in place: they overwrite their input with the output.
_before, _after = pre_post_responses(torch.nn.Sequential(_conv, torch.nn.ReLU(inplace=True)), _xt, "1")
assert torch.allclose(_before, _want, atol=1e-6), (
    "With nn.ReLU(inplace=True) your 'before' has no negative values: the ReLU overwrote the tensor you kept. "
    "Copy the input in a forward *pre*-hook (before the module runs), with .clone().")


class _Boom(torch.nn.Module):
    """Fails after the ReLU has run: the hooks must be removed all the same."""

    def forward(self, z):
        raise ValueError("a module after the ReLU failed")


_broken = torch.nn.Sequential(_conv, torch.nn.ReLU(), _Boom())
try:
    pre_post_responses(_broken, _xt, "1")
except Exception:
    pass
else:
    raise AssertionError("the forward pass raised inside pre_post_responses, but no error came out")
assert not _broken[1]._forward_hooks and not _broken[1]._forward_pre_hooks, (
    "after an error in the forward pass the hooks are still there: remove them in a finally: block")
print("pre_post_responses: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["pre_post_responses"],
                forbid=["labkit.layers.pre_post", "labkit.layers.activations", "labkit.layers.capture",
                        "labkit.layers.hooks", "labkit.layers.run_until", "captum"])


def _reference_pre_post(_net, _inputs, _name):
    """The module's input and output, by hooks of the test's own (not the student's)."""
    _module, _store = _net.get_submodule(_name), {}
    _hs = [_module.register_forward_pre_hook(lambda m, a: _store.__setitem__("b", a[0].detach().clone())),
           _module.register_forward_hook(lambda m, a, o: _store.__setitem__("a", o.detach().clone()))]
    try:
        with torch.no_grad():
            _net(_inputs)
    finally:
        for _h in _hs:
            _h.remove()
    return _store["b"], _store["a"]


_xr = images.preprocess(["dog", "bee"], model)
for _layer in (L_FIRST, L_LAST):
    _b, _a = _reference_pre_post(model, _xr, ACT[_layer])
    _before, _after = pre_post_responses(model, _xr, ACT[_layer])
    assert torch.allclose(_before.to(_b.device), _b, atol=1e-5), f"wrong 'before' on {_layer} of the real model"
    assert torch.allclose(_after.to(_a.device), _a, atol=1e-5), f"wrong 'after' on {_layer} of the real model"
# VGG-like: in-place ReLU and in-place ReLU6, a deeper module, an input that requires grad.
_vgg_like = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.ReLU(inplace=True), torch.nn.Conv2d(5, 2, 1),
                                torch.nn.ReLU6(inplace=True))
_x2 = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(7)).requires_grad_(True)
for _name in ("1", "3"):
    _b, _a = _reference_pre_post(_vgg_like, _x2, _name)
    _before, _after = pre_post_responses(_vgg_like, _x2, _name)
    assert torch.allclose(_before, _b, atol=1e-5) and torch.allclose(_after, _a, atol=1e-5), (
        f"wrong responses of module {_name} of a conv/ReLU(inplace)/conv/ReLU6(inplace) model")
    assert not _before.requires_grad and not _after.requires_grad, "return detached copies"
### END HIDDEN TESTS

# %% [markdown]
# ### Part 2 - Count what the non-linearity zeroes and what it clips (2 pts, autograded)
#
# Write `relu_fractions(before, floor, cap)`. `before` holds responses before the non-linearity,
# shaped `[N,C,...]` (N images, C channels, then any number of positions, e.g. `[N,C,H,W]`). For each
# channel, pooling the N images and all positions, return two tensors shaped `[C]`:
#
# * `zeroed`: the fraction of responses **below** `floor` (they come out as the floor, 0);
# * `clipped`: the fraction **above** `cap` (they come out as the cap; `cap=inf` for a plain ReLU,
#   so nothing is clipped).
#
# Leave `before` unchanged. **Off limits**: `labkit.layers.PrePost.zeroed` / `clipped`.

# %% kind="solution" id="relu_fractions"
def relu_fractions(before, floor=0.0, cap=float("inf")):
    """Per channel, the fraction of responses a rectifier sets to its floor and the fraction it clips.

    Args:
        before: [N,C,...] responses before the non-linearity.
        floor: its lower limit (0 for ReLU and ReLU6). cap: its upper limit (6 for ReLU6, inf for ReLU).

    Returns:
        (zeroed, clipped): two [C] tensors in [0, 1], the share of each channel's values below ``floor``
        and above ``cap``, pooled over the batch and every position.
    """
    ### BEGIN SOLUTION
    dims = [d for d in range(before.dim()) if d != 1]
    zeroed = (before < floor).float().mean(dim=dims)
    clipped = (before > cap).float().mean(dim=dims)
    return zeroed, clipped
    ### END SOLUTION


# %% kind="tests" id="test_relu_fractions" points=2
# Two channels, one image, 2x2 positions; ReLU6 limits.
_pre = torch.tensor([[[[-1.0, 2.0], [0.0, 7.0]],
                      [[-4.0, -4.0], [9.0, 6.0]]]])
_keep = _pre.clone()
_out = relu_fractions(_pre, 0.0, 6.0)
assert isinstance(_out, tuple) and len(_out) == 2, "return a tuple (zeroed, clipped)"
_zeroed, _clipped = _out
assert isinstance(_zeroed, torch.Tensor) and tuple(_zeroed.shape) == (2,), (
    f"zeroed: one value per channel, shape (2,), got {getattr(_zeroed, 'shape', _zeroed)}")
assert torch.allclose(_zeroed.float(), torch.tensor([0.25, 0.5])), (
    f"channel 0 has one value below 0 (-1; 0 itself is not changed), channel 1 two (-4, -4): expected "
    f"[0.25, 0.5], got {_zeroed.tolist()}")
assert torch.allclose(_clipped.float(), torch.tensor([0.25, 0.25])), (
    f"channel 0 has 7 > 6, channel 1 has 9 > 6 (6 itself is not changed): expected [0.25, 0.25], got "
    f"{_clipped.tolist()}")
assert torch.equal(_pre, _keep), "relu_fractions changed its input"
_z, _c = relu_fractions(_pre)  # a plain ReLU: no cap
assert torch.allclose(_c.float(), torch.zeros(2)), f"with cap=inf nothing is clipped, got {_c.tolist()}"
print("relu_fractions: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["relu_fractions"], forbid=["labkit.layers.PrePost.zeroed", "labkit.layers.PrePost.clipped"])
_g = torch.Generator().manual_seed(5)
for _shape in ((3, 7, 5, 6), (4, 5, 9), (2, 3, 2, 3, 4)):
    _rand = 4 * torch.randn(*_shape, generator=_g) + torch.linspace(-3, 5, _shape[1]).view(1, -1, *[1] * (len(_shape) - 2))
    _r = _rand.numpy()
    _axes = tuple(d for d in range(_r.ndim) if d != 1)
    for _floor, _cap in ((0.0, 6.0), (0.0, float("inf")), (-1.0, 2.5)):
        _zeroed, _clipped = relu_fractions(_rand, _floor, _cap)
        assert np.allclose(np.asarray(_zeroed.detach().cpu(), dtype=float), (_r < _floor).mean(axis=_axes), atol=1e-6), (
            f"zeroed is wrong on a random {list(_shape)} tensor with floor {_floor}: pool every dim except 1")
        assert np.allclose(np.asarray(_clipped.detach().cpu(), dtype=float), (_r > _cap).mean(axis=_axes), atol=1e-6), (
            f"clipped is wrong on a random {list(_shape)} tensor with cap {_cap}")
_store = {}
_hook = model.get_submodule(ACT[L_FIRST]).register_forward_pre_hook(
    lambda m, a: _store.__setitem__("b", a[0].detach().clone()))
try:
    with torch.no_grad():
        model(images.preprocess(["coffee"], model))
finally:
    _hook.remove()
_b = _store["b"]
_zeroed, _clipped = relu_fractions(_b, FLOOR[L_FIRST], CAP[L_FIRST])
_bn = _b.cpu().numpy()
assert np.allclose(np.asarray(_zeroed.cpu(), dtype=float), (_bn < FLOOR[L_FIRST]).mean(axis=(0, 2, 3)), atol=1e-6)
assert np.allclose(np.asarray(_clipped.cpu(), dtype=float), (_bn > CAP[L_FIRST]).mean(axis=(0, 2, 3)), atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## Numbers for both layers
#
# Your `pre_post_responses` captures the responses of the first and the last pair to all the photos,
# your `relu_fractions` counts. "All responses" pools every channel, image and position; the
# per-channel numbers are medians over the channels.

# %% id="numbers"
x = images.preprocess(PHOTOS, model)  # [P,3,H,W]
responses = {}
for name in (L_FIRST, L_LAST):
    responses[name] = pre_post_responses(model, x, ACT[name])
assert layers.hook_count(model) == 0

fractions = {}
for name, (before, after) in responses.items():
    zeroed, clipped = (f.cpu() for f in relu_fractions(before, FLOOR[name], CAP[name]))
    fractions[name] = (zeroed, clipped)
    capped = np.isfinite(CAP[name])
    print(f"{name} ({ACT[name]}, {len(zeroed)} channels, {len(PHOTOS)} photos):")
    print(f"  zeroed  (below {FLOOR[name]:g}, set to {FLOOR[name]:g}): {float((before < FLOOR[name]).float().mean()):6.1%} "
          f"of all responses; median channel {float(zeroed.median()):6.1%}; "
          f"channels never above {FLOOR[name]:g} on these photos: {int((zeroed == 1).sum())}")
    if capped:
        print(f"  clipped (above {CAP[name]:g}, cut to {CAP[name]:g}):  {float((before > CAP[name]).float().mean()):6.1%} "
              f"of all responses; median channel {float(clipped.median()):6.1%}; "
              f"channels clipped somewhere: {int((clipped > 0).sum())}")
    else:
        print("  clipped: none (this ReLU has no cap)")

# %% [markdown]
# ## Responses to a real photo
#
# Each panel is one channel's response map to the first photo. Blue is negative, red positive,
# white zero, on one colour scale per channel so that "before" and "after" can be compared (with a
# cap, everything above it comes out as the cap's colour). For the first layer we show channels
# that respond with **both signs** (between 5% and 95% zeroed) and whose kernel is **not flat**:
# we rank them by how much the kernel's weights add up over space (`flatness` below, 1 for a
# kernel that only sees the average colour, 0 for a pure edge or stripe detector), least flat
# first. A flat kernel responds to colour, and its visualisation further down would be a flat
# coloured square. For the last layer we show the channels that respond most to the photo.

# %% id="fig_maps"
w = model.get_submodule(L_FIRST).weight.detach()  # [C,3,k,k]
flatness = (w.sum(dim=(2, 3)).norm(dim=1) / (w[0, 0].numel() ** 0.5 * w.flatten(1).norm(dim=1))).cpu()
zeroed_first = fractions[L_FIRST][0]
both_signs = [c for c in range(len(zeroed_first)) if 0.05 <= float(zeroed_first[c]) <= 0.95]
first_channels = sorted(both_signs, key=lambda c: float(flatness[c]))[:SHOWN_CHANNELS]
if len(first_channels) < SHOWN_CHANNELS:  # too few with both signs: the most balanced ones
    first_channels += [c for c in (zeroed_first - 0.5).abs().argsort().tolist() if c not in first_channels]
    first_channels = first_channels[:SHOWN_CHANNELS]
last_channels = responses[L_LAST][1][0].mean(dim=(1, 2)).topk(SHOWN_CHANNELS).indices.tolist()
for c in first_channels:
    print(f"{L_FIRST} channel {c}: {float(zeroed_first[c]):.0%} zeroed, flatness {float(flatness[c]):.2f}")

for name, chosen in ((L_FIRST, first_channels), (L_LAST, last_channels)):
    before, after = responses[name]
    fig, axes = plt.subplots(2, len(chosen) + 1, figsize=(2.5 * (len(chosen) + 1), 5.6), layout="constrained")
    fig.suptitle(f"{name} -> {ACT[name]}: responses to '{PHOTOS[0]}'")
    for r, (what, maps) in enumerate((("before", before), ("after", after))):
        axes[r, 0].imshow(images.deprocess(x[0], model))
        axes[r, 0].set_title(f"{what} {type(model.get_submodule(ACT[name])).__name__}", fontsize=9)
        for ax, c in zip(axes[r, 1:], chosen):
            limit = float(before[0, c].abs().max()) or 1.0
            ax.imshow(maps[0, c].cpu(), cmap="RdBu_r", vmin=-limit, vmax=limit)
            ax.set_title(f"ch {c}: {float((maps[0, c] > 0).float().mean()):.0%} > 0", fontsize=9)
    for ax in axes.flat:
        ax.set_axis_off()
    plt.show()

# %% [markdown]
# The histograms pool every response of each layer over all the photos. Blue: the part the
# non-linearity zeroes; red: the part it clips (only with a cap).

# %% id="fig_histograms"
fig, axes = plt.subplots(1, 2, figsize=(12, 3.9), layout="constrained")
for ax, name in zip(axes, (L_FIRST, L_LAST)):
    values = responses[name][0].flatten().cpu().numpy()
    ax.hist(values, bins=200, color="tab:gray", log=True)
    low, high = FLOOR[name], CAP[name]
    ax.axvspan(min(values.min(), low), low, color="tab:blue", alpha=0.15,
               label=f"zeroed: {float((values < low).mean()):.1%}")
    if np.isfinite(high):
        ax.axvspan(high, max(values.max(), high), color="tab:red", alpha=0.15,
                   label=f"clipped at {high:g}: {float((values > high).mean()):.1%}")
    ax.set_title(f"{name} -> {ACT[name]}", fontsize=10)
    ax.set_xlabel("response before the non-linearity")
    ax.legend(loc="upper right", fontsize=9)
axes[0].set_ylabel("count (log scale)")
plt.show()

# %% [markdown]
# ### Every channel of both layers
#
# Your `relu_fractions`, one dot per channel: how much of it is zeroed (x) and how much clipped (y).

# %% id="fig_scatter"
fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharex=True, sharey=True, layout="constrained")
for ax, name in zip(axes, (L_FIRST, L_LAST)):
    zeroed, clipped = fractions[name]
    ax.scatter(zeroed, clipped, s=10, alpha=0.6)
    ax.set_title(f"{name} ({len(zeroed)} channels): median {float(zeroed.median()):.0%} zeroed, "
                 + (f"{float(clipped.median()):.0%} clipped" if np.isfinite(CAP[name]) else "no cap"), fontsize=10)
    ax.set_xlabel("fraction zeroed")
axes[0].set_ylabel("fraction clipped")
plt.show()

# %% [markdown]
# ### The handout's visualisation, before and after the non-linearity
#
# The Duke notebook visualises a channel by gradient ascent on the input image, using the **mean
# absolute value** of the channel's output as the signal (`preset="handout"`). Here each channel is
# visualised twice: reading its response *before* the non-linearity (top row) and *after* it
# (bottom row). Before it, a strongly *negative* response also counts, so the image may show the
# channel's opposite pattern; after it, only what makes the channel fire survives, and with a cap
# the signal cannot pass the cap (the gradient is 0 above it). The optimisation starts from random
# noise. The table under the figure says, per channel, the signal reached and, after the
# non-linearity, whether it stayed at 0 (the channel never fired, so there was no gradient to
# follow) or reached the cap.

# %% id="fig_featurevis"
for name, chosen in ((L_FIRST, first_channels), (L_LAST, last_channels)):
    kind = type(model.get_submodule(ACT[name])).__name__
    runs = {relu: featurevis.visualize(model, name, chosen, relu=relu, preset="handout", seed=0,
                                       progress=not FAST, **FEATUREVIS) for relu in ("before", "after")}
    fig, axes = plt.subplots(2, len(chosen), figsize=(2.4 * len(chosen), 5.4), squeeze=False, layout="constrained")
    fig.suptitle(f"{name}: visualised before and after {kind}")
    for r, relu in enumerate(("before", "after")):
        for j, c in enumerate(chosen):
            axes[r, j].imshow(runs[relu].images[j].permute(1, 2, 0).numpy())
            axes[r, j].set_title(f"ch {c} {relu}\nsignal {float(runs[relu].activations[j]):.3g}", fontsize=9)
            axes[r, j].set_axis_off()
    plt.show()
    for j, c in enumerate(chosen):
        reached = float(runs["after"].activations[j])
        state = ("stayed at 0: never fired, no gradient" if reached < 1e-6 else
                 f"{reached / CAP[name]:.0%} of the cap" if np.isfinite(CAP[name]) else "no cap")
        print(f"  {name} ch {c}: signal before {float(runs['before'].activations[j]):8.3g}, after {reached:6.3g} ({state})")
assert layers.hook_count(model) == 0

# %% [markdown]
# What to look for: in the first layer, do "before" and "after" show the same kind of simple
# pattern (stripes, an oriented edge), possibly with opposite polarity? Compare the signals: the
# "after" signal of a capped non-linearity cannot pass the cap, and the table says how close each
# one got. In the last layer, look for images that stayed **gray noise with a signal of 0** after
# the non-linearity: when a channel is negative everywhere on the starting noise, the output is 0
# *and its gradient is 0*, so gradient ascent cannot even start. How often does that happen in each
# layer (the table), and how does it relate to the zeroed fractions printed above?
#
# ### Your answer (3 pts)
#
# Use the numbers and figures above (your counts, the response maps, the histograms, the
# visualisations). What effect does the non-linearity have on the responses? Does it behave
# differently on the first and on the last convolutional layer? Explain your findings intuitively.
# If your model's non-linearity has a cap, say which of its two effects (zeroing, clipping) matters
# more in each layer, with the printed numbers.

# %% [markdown] kind="answer" id="answer_2c" points=3
# *Model answer (instructors).* It depends on the model only through the printed numbers; the
# reasoning is the same for VGG16/VGG19 (ReLU) and EfficientNet-Lite0 (ReLU6).
#
# * **What it does.** Responses below 0 become 0 (zeroed): the map turns from a signed
#   "matches / anti-matches" signal into a one-sided "the pattern is here" detector, it becomes
#   sparse, and the sign is lost (an edge and its opposite polarity can no longer share one channel;
#   networks learn paired channels for that). ReLU has no cap (the clipped count is 0). ReLU6 also
#   cuts responses above 6 down to 6 (clipped): very strong evidence is saturated, and its gradient
#   is 0 there.
# * **First vs last layer (with the printed numbers).** The last layer zeroes a much larger share
#   than the first (compare the two "all responses" and "median channel" figures and the number of
#   channels never above 0). In the first layer responses are spread around 0 (histogram roughly
#   symmetric); in the last they are mostly negative with a thin positive tail. On Lite0, clipping
#   touches far fewer responses than zeroing in both layers (compare the printed percentages), so
#   zeroing is the main effect; clipping matters for the strongest responses and for the visualisation.
# * **Why.** First-layer channels are small edge, stripe and colour detectors with near-zero-mean
#   kernels: every photo has both polarities of every edge, so a moderate share is zeroed and little
#   is lost (the opposite-polarity channel carries it); before/after visualisations look alike.
#   Last-layer channels detect specific object parts: on any photo almost all are absent almost
#   everywhere, so their responses are negative and the non-linearity acts as a gate that passes only
#   the few channels whose pattern is present. The same gate blocks the gradient: a last-layer channel
#   that is negative on the whole noise start never moves in the "after" visualisation (signal 0),
#   while first-layer channels fire somewhere on any image. With a cap, the "after" signal stops at 6.
#
# **Rubric (3 pts; half points allowed):**
# 1. (1 pt) The effect: negative responses set to 0 (sparse, one-sided, sign lost); for a capped
#    non-linearity also large ones cut to the cap, named as two different counts (zeroed vs clipped).
# 2. (1 pt) The two layers compared *with the printed numbers* (zeroed shares, channels never
#    positive, clipped shares on a capped model); a claim that contradicts the printed numbers earns 0.
# 3. (1 pt) An intuitive reason: generic zero-mean detectors in the first layer vs specific, mostly
#    absent parts in the last (gate), or the gradient argument for the visualisations that stay at 0.

# %% [markdown]
# ## Explore (ungraded): every conv/non-linearity pair
#
# Pick a pair, a photo and a channel. The explorer shows the channel's response before and after the
# non-linearity on one colour scale, and the histogram of the layer's responses to that photo with
# the zeroed (blue) and clipped (red) parts counted, for the channel and for the whole layer. Each
# layer/photo combination is computed once (a truncated forward pass) and then cached. In an
# exported report the explorer appears as the picture of its current setting.

# %% id="explorer"
from course.explorers.lab3 import ReluExplorer

ReluExplorer(model, PHOTOS, layer=L_FIRST)

# %% [markdown]
# ## Before you hand in
#
# *Kernel > Restart & Run All*, check that every figure appears and every visible test prints
# "passed", and that your name is in the settings cell. For the PDF report the Duke handout asks
# for, run `labkit report lab3_relu.ipynb --to pdf` in a terminal (or `labkit.report.export("pdf")`
# in a cell).
