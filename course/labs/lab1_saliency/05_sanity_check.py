# %% [markdown]
# ## Question 1(d) - Do the maps explain the model? A sanity check (2 pts)
#
# Kira's lecture ends with a warning: saliency maps "can be misleading or uninformative" (Adebayo et
# al. 2018). Their **cascading randomisation** test replaces the trained weights by random ones,
# from the top (the classifier) downwards, one layer at a time, and recomputes the map. A method
# that explains the *model* must change as the model is destroyed; one that keeps looking the same
# is mostly showing the image (edges), whatever the weights. The curve shows the Spearman rank
# correlation with the original map (of `|map|`): 1 = the same ranking of pixels, 0 = unrelated,
# negative = the ranking turned round (what was most salient is now least). One photo proves
# little, so the check runs on the bee and a fixed random choice of the course's labelled photo set
# (`images.labelled_images()`, each photo explained for its own class; the cell prints how many):
# the curve is the mean over the photos, the shaded band the middle half of them. An `x` marks a
# step where the map became constant (all zero) on every photo, so no ranking exists; the printed
# rows say on how many photos it did. labkit works on a copy of the model, so `model` itself is
# untouched. Below the curves are the bee's maps, one row per method, as the layers are randomised
# (left: the trained model).

# %% id="fig_sanity"
labelled = images.labelled_images()  # (path, class index) of every labelled photo
bee_path = next(path for path, target in labelled if path.name == "bee.jpg")
others = [pair for pair in labelled if pair[0] != bee_path]
chosen = [(bee_path, targets[2])] + [others[i] for i in np.random.default_rng(0).permutation(len(others))[:SANITY_PHOTOS - 1]]
sanity_x = images.preprocess([path for path, _ in chosen], model)  # [N,3,H,W], the bee first
sanity_targets = [target for _, target in chosen]
print(f"sanity check on {len(chosen)} of the {len(labelled)} labelled photos "
      f"({len(set(sanity_targets))} classes; each map explains the photo's own class)")
SANITY_METHODS = {"vanilla": saliency.vanilla, "guided_backprop": saliency.guided_backprop,
                  "grad_cam": saliency.grad_cam}
randomised_maps = {}  # method -> the bee's map at each step (step 0: the trained model), [H,W] each


def recording(name, method, n_images):
    """The method, keeping a copy of the bee's map (image 0) at every step (so that we can look at it).

    sanity_check gives the method the n_images photos in order (in chunks), once per step."""
    seen = 0

    def run(net, inputs, target):
        nonlocal seen
        out = method(net, inputs, target)
        if seen % n_images == 0:  # this chunk starts with image 0, the bee
            randomised_maps.setdefault(name, []).append(out[0].detach().abs().reshape(-1, *out.shape[-2:]).amax(0).cpu())
        seen += inputs.shape[0]
        return out
    run.__name__ = name
    return run


checks = {name: saliency.sanity_check(model, sanity_x, sanity_targets, recording(name, method, len(chosen)),
                                      max_steps=SANITY_STEPS, seed=0, progress=not FAST)
          for name, method in SANITY_METHODS.items()}
fig = plot.plot_sanity(checks, title=f"Cascading randomisation, mean over {len(chosen)} photos")
lines = {line.get_label(): line for line in fig.axes[0].lines}
for name, result in checks.items():
    per_image = np.array([r["spearman_per_image"] for r in result], dtype=float)  # [steps, photos]
    if np.isfinite(per_image).any(axis=1).all():
        low, high = np.nanpercentile(per_image, [25, 75], axis=1)
        fig.axes[0].fill_between(range(len(result)), low, high, color=lines[name].get_color(), alpha=0.15, linewidth=0)
        fig.axes[0].set_ylim(min(fig.axes[0].get_ylim()[0], float(np.nanmin(low)) - 0.05), 1.05)
plt.show()
print("mean Spearman over the photos at each step (shaded: the middle half of the photos);"
      " 'constant' counts photos whose map became all zero")
for name, result in checks.items():
    rho = [float(r["spearman"]) for r in result]
    defined = [(r["layer"], v) for r, v in zip(result, rho) if v == v][1:]
    constant = [(r["layer"], sum(v != v for v in r["spearman_per_image"])) for r in result]
    constant = [(layer, n) for layer, n in constant if n]
    lowest = min(defined, key=lambda lv: lv[1]) if defined else None
    print(f"{name:>16}: " + " ".join("  x  " if v != v else f"{v:+.2f}" for v in rho)
          + (f" | lowest {lowest[1]:+.2f} (at {lowest[0]})" if lowest else "")
          + (f" | constant on up to {max(n for _, n in constant)} of {len(chosen)} photos (first at {constant[0][0]})"
             if constant else ""))
assert layers.forward_hooks_count(model) == 0

# %% id="fig_sanity_maps"
steps = len(next(iter(checks.values())))
shown = sorted(set(np.linspace(0, steps - 1, min(steps, 6)).round().astype(int).tolist()))
fig, axes = plt.subplots(len(checks), len(shown) + 1, figsize=(2.3 * (len(shown) + 1), 2.5 * len(checks)),
                         squeeze=False, layout="constrained")
for row, (name, result) in enumerate(checks.items()):
    assert len(randomised_maps[name]) == len(result), "one map per randomisation step"
    axes[row, 0].imshow(photos[2])
    axes[row, 0].set_title(f"{name}\n(photo 1 of {len(chosen)})", fontsize=9)
    for col, step in enumerate(shown, start=1):
        m = randomised_maps[name][step]
        top = float(m.flatten().quantile(0.99))
        axes[row, col].imshow(torch.minimum(m, torch.tensor(top)) if top > 0 else m, cmap="gray")
        label = "trained" if step == 0 else f"random to {result[step]['layer']}"
        rho = float(result[step]["spearman_per_image"][0])  # the bee's own correlation (the curve: the mean)
        axes[row, col].set_title(f"{label}\n" + ("constant" if rho != rho else f"rho {rho:+.2f}"), fontsize=8)
for ax in axes.flat:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# How to read the printed rows (one number per step, from the trained model on the left): a method
# **passes** when its correlation drops well below 1 as soon as the top layers are random, and its
# maps visibly change; it **fails** when the correlation stays high and the maps keep showing the
# same picture while the weights that make the decision are gone. A correlation that goes
# *negative* is also a change: the ranking turned round. A curve that *rises again* deeper down does
# not mean the learned weights are back: once the layers a method reads are random, its map can
# follow whatever the image's low-level structure drives through random weights (edges, bright
# regions), which is the same for any weights. A constant map (`x`) means the method returned all
# zeros, e.g. Grad-CAM's ReLU once no channel has positive evidence. Adebayo et al. found that
# guided backprop stays high: its pictures look like an edge detector applied to the photo, even
# for a network with random weights. Check which of these your printed numbers and maps show.
#
# ### Your answer (2 pts)
#
# Which methods pass the sanity check on this model, and which do not? Explain each method's curve
# with the printed numbers and the maps. What does it mean for a saliency method if its map barely
# changes when the network's weights are randomised?

# %% [markdown] kind="answer" id="answer_1d" points=2
# *Model answer (instructors).* Judge by the printed rows and the maps, not by the expectation.
# What the literature leads us to expect, and what the bundled models show:
#
# * **Vanilla gradient:** the correlation drops as soon as the classifier is random and the maps
#   turn into different speckle: it depends on the learned weights and passes.
# * **Grad-CAM:** it reads the last conv layer and the gradient of the class score, so randomising
#   the classifier alone changes it strongly (on EfficientNet-Lite0 the mean correlation over the
#   printed number of photos falls to about zero at the first step, with a wide band: on many photos
#   it is negative, the map turned round). Once its own layer is random the map may correlate again
#   (it then follows where the random features respond strongly, i.e. the image, not the model),
#   and on some photos it becomes constant (all zero after its ReLU: the printed count, or `x` once
#   every photo's is). The first step is what the test is about: it passes. A student who reads the
#   rise as "Grad-CAM fails" has misread the test.
# * **Guided backprop:** the correlation stays high far down the cascade and the maps keep
#   showing the bee's edges: it fails. With negative gradients stopped at every ReLU the map is
#   dominated by the input's edges and the low layers, like an edge detector, whatever the weights.
#
# On VGG16/VGG19 the same ordering is expected (Adebayo et al. used VGG-16 and Inception v3);
# the exact numbers differ. A method insensitive to the model's parameters cannot tell us what the
# model learned, nor detect a broken model; it draws the image, not an explanation. Sanity checks
# should come before trusting an attribution method.
#
# **Rubric (2 pts; half points allowed):**
# 1. (1 pt) For each of the three methods, pass or fail with the reason *taken from this
#    notebook's printed numbers and maps* (a verdict that contradicts them earns 0 for that method;
#    one method wrong: 1/2).
# 2. (1 pt) What an insensitive map means: it reflects the input (edges), not the learned function,
#    so it cannot explain or debug the model; the map may still look convincing.

# %% [markdown]
# ## Explore (ungraded): every method, every photo, every class
#
# Pick a photo, a class (the model's five most likely classes for that photo, with their
# probabilities; for the three examples also the handout's target) and a method. The map is drawn
# over the photo with its colour range. Each map is computed once (SmoothGrad and occlusion take a
# few seconds, with a progress bar) and then cached; the opacity slider only redraws. Try the
# composite with the dog and then a cat class, or the same class with all four methods. In an
# exported report the explorer appears as the picture of its current setting.

# %% id="explorer"
from course.explorers.lab1 import SaliencyExplorer

SaliencyExplorer(model, [e.name for e in examples] + ["cat", "coffee", "flower", "rocket"],
                 extra_targets={e.name: e.target for e in examples}, smoothgrad_samples=SMOOTHGRAD_SAMPLES,
                 occlusion=OCCLUSION, photo=examples[1].name)

# %% [markdown]
# ## Before you hand in
#
# *Kernel > Restart & Run All*, check that every figure appears and every visible test prints
# "passed", and that your name is in the settings cell. To make the PDF report the Duke handout
# asks for, run `labkit report lab1_saliency.ipynb --to pdf` in a terminal (or
# `labkit.report.export("pdf")` in a cell).
