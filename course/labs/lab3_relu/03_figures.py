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
