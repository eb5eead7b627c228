# %% [markdown]
# The table ranks the unit's inputs with the L2 norm and labels them with the polarity rule above;
# the histogram shows how the strength is spread over all input channels (does a handful dominate,
# or is the unit a broad mix?). The kernels are drawn below: as images when they have spatial
# extent, as **signed bars** when they are 1x1 (a 1x1 kernel is a single number, and a flat colour
# square would hide its size).

# %% id="strongest_table"
TOP = cs.top_k(W, K)
LABELS = [cs.polarity(W[c]) for c in TOP]
print(f"{'rank':>4}  {'channel':>7}  {'L2 norm':>8}  {'balance':>8}  polarity (|balance| <= {cs.MARGIN}: mixed)")
for rank, (c, label) in enumerate(zip(TOP, LABELS), start=1):
    print(f"{rank:>4}  {c:>7}  {float(W[c].norm()):>8.4f}  {cs.balance(W[c]):>+8.3f}  {label}")
norm_histogram(W.flatten(1).norm(dim=1), k=K, polarities=LABELS,
               title=f"{L_C} unit {U_C}: strength of its {W.shape[0]} input kernels (grey: mixed)")
plt.show()
if tuple(W.shape[1:]) == (1, 1):
    fig, ax = plt.subplots(figsize=(10, 3.2), constrained_layout=True)
    cs.bars(ax, W, TOP, LABELS, title=f"{L_C} unit {U_C}: its true 1x1 weights, one per channel of {READ}")
else:
    cs.kernel_cards(W, TOP, LABELS, title=f"{L_C} unit {U_C}: its {K} strongest kernels over {READ}")
plt.show()

# %% [markdown]
# **Expanded weights.** The same unit read one block further down, with the composition of Step 3
# (here computed by `course.circuit_study`, which your function was just checked against): each
# kernel now says where, in a window of the earlier tensor, each channel raises or lowers the unit.

# %% id="expanded"
PATH = cs.expansion_path(model, L_C)
if PATH is None:
    print(f"No stride-1 conv or block feeds {L_C}, so there are no expanded weights to read.")
else:
    BLOCK, SOURCE = PATH
    INNER, RESIDUAL = cs.block_kernel(model, BLOCK)
    EXPANDED = cs.compose_kernels(W.to(INNER), INNER, RESIDUAL).cpu()
    TOP_E = cs.top_k(EXPANDED, K)
    LABELS_E = [cs.polarity(EXPANDED[c]) for c in TOP_E]
    print(f"{L_C} unit {U_C} through {BLOCK}" + (" (and its skip connection)" if RESIDUAL else "")
          + f": {EXPANDED.shape[0]} kernels of {EXPANDED.shape[1]}x{EXPANDED.shape[2]} over the channels of {SOURCE}")
    for rank, (c, label) in enumerate(zip(TOP_E, LABELS_E), start=1):
        print(f"{rank:>4}  channel {c:>4}  L2 {float(EXPANDED[c].norm()):.4f}  balance {cs.balance(EXPANDED[c]):+.3f}  {label}")
    cs.kernel_cards(EXPANDED, TOP_E, LABELS_E, title=f"{L_C} unit {U_C}: expanded weights from {SOURCE}")
    plt.show()

# %% [markdown]
# ## Question 4 — What the six strongest inputs respond to, and how the circuit works (4 pts)
#
# *Handout:* for each of the six strongest input filters, use image-gradient techniques to
# visualise what it is most excited by. Use these visualisations with the circuit weights to
# explain how the circuit works, in the style of Distill's weight explorer, and describe its
# properties with the vocabulary of [Zoom In](https://distill.pub/2020/circuits/zoom-in/)
# (polysemantic, pose-invariant, ...).
#
# The weight explorer below shows, for the unit's strongest inputs, what each input channel
# responds to (its feature visualisation: gradient ascent on the channel's mean activation, on the
# tensor the unit actually reads, a residual sum included) next to the weight that connects it to
# the unit, framed and labelled with the polarity rule of Step 2 (orange excitatory, blue
# inhibitory, grey mixed; one colour scale for all kernels), and the unit's own picture on the
# right. The first figure reads the unit's true weights, the second its expanded weights.

# %% id="weight_explorer"
UNIT_PICTURE = unit_vis.images[0].permute(1, 2, 0).numpy()
pictures = cs.visualize_read(model, READ, TOP, steps=FV_STEPS, size=FV_SIZE, seed=0).images.permute(0, 2, 3, 1).numpy()
cs.kernel_cards(W, TOP, LABELS, pictures=pictures, source=READ, unit_picture=UNIT_PICTURE,
                title=f"{L_C} unit {U_C}: true weights from {READ}")
plt.show()

# %% id="expanded_explorer"
if PATH is not None:
    pictures_e = cs.visualize_read(model, SOURCE, TOP_E, steps=FV_STEPS, size=FV_SIZE, seed=0)
    cs.kernel_cards(EXPANDED, TOP_E, LABELS_E, pictures=pictures_e.images.permute(0, 2, 3, 1).numpy(),
                    source=SOURCE, unit_picture=UNIT_PICTURE, title=f"{L_C} unit {U_C}: expanded weights from {SOURCE}")
    plt.show()

# %% [markdown]
# **How to read it.** An excitatory input adds its pattern to the unit where the kernel's orange
# coefficients sit: if the input detects, say, a curve fragment and the kernel is orange on its
# left, the unit likes that fragment to its left. An inhibitory input subtracts: the unit is
# *suppressed* where that input fires, which often sharpens a detector ("a blob, but not an
# edge"). A mixed kernel does both, in different places (e.g. a positive centre and a negative
# surround). A spatially structured kernel says *where* relative to the unit each input matters; a
# single 1x1 weight says only *whether* and *how much*.

# %% [markdown]
# ### Your answer to Question 4 (4 pts)
#
# Explain how the circuit works. For each of the strongest inputs say what it seems to detect
# (from its picture), whether it excites or inhibits the unit, and where (the kernel's spatial
# pattern). Then combine them: how do these inputs produce the behaviour you hypothesised in
# Question 2? Use at least two terms from *Zoom In* (e.g. polysemantic, pose-invariant, equivariance,
# union of cases, excitation/inhibition) and say what evidence supports or contradicts each. Name one
# limitation of explaining a unit from its six strongest weights alone (hint: look at the histogram).

# %% [markdown] kind="answer" id="answer_q4" points=4
# *Model answer (instructors), per model family.* **VGG19** (3x3 true kernels over ReLU(conv3_2);
# 5x5 expanded kernels over ReLU(conv3_1)): for each of the six inputs, what its picture shows
# (a curved edge, a colour blob, a texture), its printed label and where its kernel is positive or
# negative. For Microscope's unit 195 of the Caffe VGG19, excitatory inputs are curve fragments and
# colour blobs of several hues placed around the centre, inhibitory ones straight lines or flat
# texture: a round shape of any colour. **EfficientNet-Lite0** (1x1 true weights over the residual
# sum, then 5x5 expanded kernels through the block below and its skip): the true weights say only
# which channels of the sum raise or lower the unit and by how much (the bars); the expanded
# kernels add where (a positive centre with a negative ring, or a side preference); the skip
# contributes only at the centre of each window. For torchvision VGG19 and Lite0 there is no fixed
# feature to name: grade whether the explanation follows from the student's own pictures, labels
# and kernels. Vocabulary: a *union of cases* (several hue- or orientation-specific inputs OR-ed
# into an invariant unit), *excitation/inhibition* sharpening selectivity, *polysemantic* judged
# from unrelated dataset examples. Limitations: the histogram shows a long tail of weaker inputs
# whose sum can rival the top six; reading weights ignores the non-linearities, biases and (in
# EfficientNet) the fact that expanded weights linearise the block; a picture shows what maximises
# an input, not everything it responds to.
#
# **Rubric (4 pts, 1 point each; half points allowed):**
# - 1 pt: each of the strongest inputs (at least four) described by its picture, with the label and
#   the kernel's spatial pattern as printed/drawn (a label that contradicts the figure: 0 for this point).
# - 1 pt: a combined mechanism that explains the Question 2 hypothesis from those inputs, using the
#   expanded weights where the true weights are 1x1.
# - 1 pt: two *Zoom In* terms, each with evidence from the figures for or against.
# - 1 pt: one real limitation of reading six weights (tail of the histogram, non-linearities or
#   biases ignored, linearised block, pictures only show the maximum).

# %% [markdown]
# ## Explore (ungraded): any unit of the layer
#
# Pick a unit of the circuit layer and whether to read its true or its expanded weights; the
# explorer computes that unit's circuit and the pictures of its strongest inputs (a progress bar
# shows while it runs), keeps every unit it has computed, and draws the same weight explorer as
# above. Where no widget frontend runs (an exported report), the picture of the current setting
# stays in the output.

# %% id="explorer"
from course.explorers.lab5 import UnitExplorer

UnitExplorer(model, L_C, U_C, k=K, settings={"steps": FV_STEPS, "size": FV_SIZE, "seed": 0})
