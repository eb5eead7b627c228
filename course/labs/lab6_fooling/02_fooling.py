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
