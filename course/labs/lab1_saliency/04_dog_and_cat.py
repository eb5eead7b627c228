# %% [markdown]
# ## Question 1(c) - The dog and the cat (6 pts)
#
# On the composite, the handout's code explains the top class, a dog. Here we explain **both**
# classes on the same image: the German shepherd, and the cat class the model scores highest on
# this image. Grad-CAM is class-discriminative by design (Kira's lecture shows the same dog/cat
# photo): its map should move when the target changes; the plain gradient moves much less.
#
# ### Your code: Grad-CAM (3 of 6 pts, autograded)
#
# Grad-CAM (Selvaraju et al. 2017) explains one class with the output `A` of a conv layer,
# `[N,K,h,w]` (K channels on an h x w grid, 7 x 7 for the last layer of both course models):
#
# 1. run the model with a **forward hook** on the layer that keeps its output `A`; remove the hook
#    in a `finally:` block (or use a context manager) so that it is gone whatever happens. The
#    model's weights are frozen and `x` needs no gradient, so nothing in the pass would track
#    gradients: in the hook, make the output a leaf that does, `A = output.detach().requires_grad_(True)`,
#    keep `A`, and `return A.clone()` (a forward hook may return a replacement output). The rest of
#    the network then computes from `A`, so the gradient reaches it, and on VGG, where the conv's
#    output goes into an **in-place ReLU**, the ReLU overwrites the copy, not your `A`;
# 2. take the gradient of each image's target score (the logit, before the softmax) with respect to
#    `A`: `torch.autograd.grad(scores.sum(), A)` (the images do not interact, so the sum gives each
#    image its own gradient);
# 3. weight each channel by its gradient averaged over the grid: `w[n,k] = mean_ij dscore_n/dA[n,k,i,j]`;
# 4. `cam = relu(sum_k w[n,k] * A[n,k])`, one `[h,w]` map per image: only positive evidence;
# 5. upsample it to the input size: `F.interpolate(cam[:, None], size=(H, W), mode="bilinear",
#    align_corners=False)[:, 0]`.
#
# Write `grad_cam_map(model, x, target, layer)`: `layer` is the conv layer's dotted name
# (`model.get_submodule(layer)`), `target` an int or one int per image; return `[N,H,W]`, detached.
#
# **Off limits** (they raise while your function is graded, and a wrapper around them scores 0):
# everything in `labkit.saliency` (`grad_cam`, `guided_grad_cam`, ...) and captum.

# %% kind="solution" id="grad_cam_map"
import torch.nn.functional as F


def grad_cam_map(model, x, target, layer):
    """Grad-CAM: a conv layer's channels weighted by the mean gradient of the target score.

    Args:
        model: a classifier, [N,3,H,W] -> [N,classes] pre-softmax scores.
        x: [N,3,H,W] preprocessed batch.
        target: an int (the same class for every image) or a list of N ints.
        layer: the dotted name of a conv layer of ``model``.

    Returns:
        [N,H,W] tensor >= 0 (score units), the class activation map upsampled to the input size.
    """
    ### BEGIN SOLUTION
    store = {}

    def keep(module, args, output):
        store["A"] = output.detach().requires_grad_(True)  # a leaf: the gradient stops here
        return store["A"].clone()  # the rest of the pass reads a copy (an in-place ReLU overwrites it, not A)

    handle = model.get_submodule(layer).register_forward_hook(keep)
    try:
        with torch.enable_grad():
            scores = model(x.detach())
    finally:
        handle.remove()
    t = torch.as_tensor(target, device=scores.device).reshape(-1).expand(len(x))
    chosen = scores[torch.arange(len(x), device=scores.device), t]
    (grad,) = torch.autograd.grad(chosen.sum(), store["A"])
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * store["A"]).sum(dim=1, keepdim=True))
    return F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[:, 0].detach()
    ### END SOLUTION


# %% kind="tests" id="test_grad_cam_map" points=3
# A tiny network: 1x1 conv -> ReLU -> global average -> linear. For it Grad-CAM has a closed form:
# d score_k / d A_c[i,j] = W[k,c] * [A_c[i,j] > 0] / (h*w), so w_c = W[k,c] * (share of A_c > 0) / (h*w).
def _toy_net(inplace, stride=1):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, stride, stride=stride), torch.nn.ReLU(inplace=inplace),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3))


def _toy_cam(net, inputs, targets):
    with torch.no_grad():
        a = net[0](inputs)  # [N,4,h,w]
        w = net[4].weight[targets] * (a > 0).float().mean(dim=(2, 3)) / (a.shape[2] * a.shape[3])
        cam = torch.relu((w[:, :, None, None] * a).sum(dim=1, keepdim=True))
        return torch.nn.functional.interpolate(cam, size=inputs.shape[-2:], mode="bilinear", align_corners=False)[:, 0]


_xt = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
_net = _toy_net(inplace=False)
_got = grad_cam_map(_net, _xt, [2, 0], "0")
assert isinstance(_got, torch.Tensor), f"return a torch.Tensor, not {type(_got).__name__}"
assert tuple(_got.shape) == (2, 8, 8), f"expected shape [N,H,W] = (2, 8, 8), got {tuple(_got.shape)}"
assert torch.allclose(_got, _toy_cam(_net, _xt, [2, 0]), atol=1e-6), (
    "On conv -> ReLU -> average -> linear your map differs from the closed form relu(sum_k w_k A_k) with "
    "w_k = mean gradient of the target logit over the grid. Check the target indexing and the mean over dims 2, 3.")
assert not _net[0]._forward_hooks, "your function left a hook on the layer"
_got = grad_cam_map(_toy_net(inplace=True), _xt, 1, "0")
assert torch.allclose(_got, _toy_cam(_toy_net(inplace=False), _xt, [1, 1]), atol=1e-6), (
    "With an in-place ReLU after the layer your map is wrong: the ReLU overwrote the output you kept. "
    "Keep A = output.detach().requires_grad_(True) and return A.clone() from the hook.")
_strided = _toy_net(inplace=False, stride=2)  # a 4x4 grid: the map must be upsampled to 8x8
assert torch.allclose(grad_cam_map(_strided, _xt, [0, 1], "0"), _toy_cam(_strided, _xt, [0, 1]), atol=1e-6), (
    "On a 4x4 grid the map must be upsampled to the input size (bilinear, align_corners=False).")
print("grad_cam_map: visible tests passed")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["grad_cam_map"], forbid=["labkit.saliency", "captum"])
_xr = images.preprocess([e.path for e in duke_examples()], model)
_tr = [e.target for e in duke_examples()]
for _layer in (layers.last_conv(model), layers.conv_layers(model)[len(layers.conv_layers(model)) // 2].name):
    _ref = saliency.grad_cam(model, _xr, _tr, _layer)
    _mine = grad_cam_map(model, _xr, _tr, _layer)
    _err = float((_mine.to(_ref.device) - _ref).abs().max())
    assert _err <= 1e-4 * float(_ref.abs().max()) + 1e-6, (
        f"On the three example photos at layer {_layer} your map differs from the reference by up to {_err:.3g}.")
_two = _toy_net(inplace=True, stride=2)
assert torch.allclose(grad_cam_map(_two, _xt[:1], 2, "0"), _toy_cam(_toy_net(False, 2), _xt[:1], [2]), atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Your code: shares (1 of 6 pts, autograded)
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
_grading = dict(calls=["saliency_share"], forbid=[])
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
    "Grad-CAM (yours)": grad_cam_map(model, pair, two_targets, layers.last_conv(model)),
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
# ### Your answer (2 of 6 pts)
#
# For the composite image the CNN pays different attention to the dog and the cat. To the best of
# your knowledge, what could be the reason for the difference? Use the figure and the shares above.

# %% [markdown] kind="answer" id="answer_1c" points=2
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
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) Uses the printed numbers: the two logits/probabilities (which animal the model believes
#    in, by how much) and the shares on the dog's half for each method and target; notes which
#    method's map moves with the target (Grad-CAM's share changes a lot, the gradient maps' less).
#    On either model family the claims must match the printed shares.
# 2. (1 pt) At least two sound reasons: competition between classes under one-label training,
#    many more dog than cat classes in ImageNet, the dog's size/contrast/pose vs the partly hidden
#    kitten, gradient maps not being class-discriminative vs Grad-CAM, the composite being out of
#    distribution.
