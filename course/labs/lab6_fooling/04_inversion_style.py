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
