# %% [markdown]
# ## Question 1(b) - Comparing the three examples (4 pts)
#
# A gradient says what happens for a *tiny* change. **Occlusion** asks a bigger question: what if
# this part of the image were gone? Ryu's pseudo-code slides a `k x k` patch over the image, fills
# it with a plain value, and records the class score. Here the patch is filled with **0 in
# normalised units**, i.e. the model's mean colour, and every pixel gets the **average score drop**
# `score(x) - score(occluded x)` over all patch positions that cover it. Positive = hiding it hurts
# the class.
#
# ### Your code (2 of 4 pts, autograded)
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


# %% kind="tests" id="test_occlusion_map" points=2
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
_grading = dict(calls=["occlusion_map"], forbid=["labkit.saliency", "captum"])
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
# ### Your answer (2 of 4 pts)
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
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) A comparison of the three examples grounded in the figures and the printed
#    probabilities: which parts each method highlights, how much lies on the object vs the context,
#    and which prediction is confident. Either model family is fine; the claims must match what this
#    notebook printed (e.g. which example has the highest target probability).
# 2. (1 pt) A reasoned answer on feature types (local texture/parts over global shape or colour;
#    context) and on easy vs hard images (one large, typical, well-lit object vs camouflage,
#    fine-grained classes, small or several objects, out-of-distribution composites).
