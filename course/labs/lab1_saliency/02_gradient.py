# %% [markdown]
# ## Question 1(a) - Which pixels is the class score sensitive to? (4 pts)
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
# ### Your code (2 of 4 pts, autograded)
#
# Write `vanilla_saliency(model, x, target)`. It must work for a batch of `N` images, with one
# target for all of them (an `int`) or one per image (a list of `N` ints), and for any
# `torch.nn.Module` that maps `[N,3,H,W]` to scores `[N,classes]`. Leave the caller's `x`
# untouched: work on `x.detach().clone()`.
#
# **Off limits** (they raise while your function is graded, and a wrapper around them scores 0):
# everything in `labkit.saliency` (`vanilla`, `gradient`, ...), `labkit.scores.input_gradient` and
# captum. Use `torch.autograd.grad` or `.backward()`.

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


# %% kind="tests" id="test_vanilla_saliency" points=2
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
_grading = dict(calls=["vanilla_saliency"], forbid=["labkit.saliency", "labkit.scores.input_gradient", "captum"])
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
# (`labkit.plot.signed_gradient_image`). The gradient is concentrated on a few pixels, so scaled by
# its largest value the picture is almost uniformly gray. Here it is **contrast-stretched**: black
# and white stand for minus and plus the 99th percentile of `|gradient|` (the scale bar gives the
# value; the 1% of values beyond it are clipped). Next to it: your saliency map, alone and over the
# photo (capped at its 99th percentile for display, for the same reason).

# %% id="fig_vanilla"
def clip99(maps):
    """For display only: cap each map at its 99th percentile so a few extreme pixels don't hide the rest."""
    top = maps.flatten(1).quantile(0.99, dim=1)
    return torch.minimum(maps, top[:, None, None])


signed = saliency.gradient(model, x, targets)  # [3,3,H,W], labkit's reference
mine = vanilla_saliency(model, x, targets)  # [3,H,W], your function
fig, axes = plt.subplots(len(examples), 4, figsize=(15, 3.7 * len(examples)), layout="constrained")
for i, ex in enumerate(examples):
    scale = float(signed[i].abs().flatten().quantile(0.99))  # black/white = -/+ this value
    peak = float(signed[i].abs().max())
    print(f"{ex.name}: |gradient| 99th percentile {scale:.3g}, largest {peak:.3g} ({peak / scale:.0f}x the "
          f"99th percentile); {float((signed[i].abs() > scale).float().mean()):.1%} of the values are clipped")
    axes[i, 0].imshow(photos[i])
    axes[i, 0].set_title(f"{ex.name}: {info.classes[ex.target]}")
    axes[i, 1].imshow(plot.signed_gradient_image(signed[i], percentile=99))
    axes[i, 1].set_title("signed gradient, stretched\n(gray = 0)")
    bar = plt.cm.ScalarMappable(norm=plt.Normalize(-scale, scale), cmap="gray")
    fig.colorbar(bar, ax=axes[i, 1], fraction=0.046, pad=0.02, label="d score / d pixel")
    axes[i, 2].imshow(clip99(mine)[i].cpu(), cmap="gray")
    axes[i, 2].set_title("your saliency max|grad|")
    plot.overlay(photos[i], clip99(mine)[i], axes[i, 3], title="saliency over the photo")
    for ax in axes[i]:
        ax.set_axis_off()
plt.show()


# %% [markdown]
# What to look for: where is the gradient gray (zero), and where does it light up? Compare the
# object with the background, edges and textures with flat regions. The speckle is typical: the
# gradient only describes a tiny change around this one image, so it is noisy. (VGG16's maps are
# usually cleaner than EfficientNet-Lite0's.)
#
# ### Your answer (2 of 4 pts)
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
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) What the figure shows, for the three examples, in the student's own words: where the
#    gradient is large (object, edges, texture) and where it is near zero (flat background), and that
#    the map is noisy/speckled. Statements must match the figure (e.g. no "the map is on the
#    background" where it is not).
# 2. (1 pt) Why pixels differ (non-linear score; only pixels in the receptive fields of the features
#    the class uses, on the patterns they detect, move it; a first-order, local measure) and one
#    sound consequence for classifier design (reliance on a few local features: fragility,
#    adversarial examples, spurious context; the map as a debugging tool).
