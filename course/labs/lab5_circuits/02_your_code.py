# %% [markdown]
# ## Question 3 — Analyse the input channels of the filter (9 pts)
#
# *Handout:* extract the filter coefficients for each input channel of the multi-channel filter
# (a 3x3 filter over 256 input channels gives 256 input filters of 3x3). Keep the six with the
# "strongest" weights, by the L2 norm of each input filter, and call each of them *mostly
# excitatory* or *mostly inhibitory* (mostly positive or mostly negative coefficients).
#
# A unit's kernels are the slice `weight[unit]` of its layer's weight tensor `[C_out, C_in, kh, kw]`:
# one `kh x kw` kernel per channel of the tensor the unit reads. What that tensor is, and the
# shape of the kernels, depend on the model:

# %% id="extract"
W = model.get_submodule(L_C).weight.detach()[U_C].cpu().float()  # [C_in, kh, kw]
print(f"{L_C} unit {U_C} has {W.shape[0]} input kernels of {W.shape[1]}x{W.shape[2]}, one per channel of {READ}.")
TERMS = cs.sum_terms(model, READ)
if len(TERMS) > 1:
    print(f"{READ} is a residual sum: {' + '.join(TERMS)} (each block's projection, plus the block's input).")
if tuple(W.shape[1:]) == (1, 1):
    print("1x1 kernels: one number per input channel and no spatial structure; Step 3 finds the spatial "
          "structure one block further down.")

# %% [markdown]
# ### Step 1 — `top_k_inputs` (2 pts, autograded)
#
# Write `top_k_inputs(weight, k)`: given a unit's kernels `weight` `[C_in, kh, kw]`, return the
# indices of the `k` kernels with the largest L2 norm (the square root of the sum of squares of
# a kernel's `kh*kw` coefficients), **strongest first**, as a list of `int`.
#
# ### Step 2 — `polarity` with a "mixed" class (2 pts, autograded)
#
# "Mostly" positive or negative is by **mass**, not by count. With `P` the sum of a kernel's
# positive coefficients and `N` the sum of the absolute values of its negative ones, the kernel's
# *balance* is `(P - N) / (P + N)` (0 for an all-zero kernel), between -1 (all negative) and +1 (all
# positive). Write `polarity(kernel, margin=0.25)` that returns `"excitatory"` if the balance is
# greater than `margin`, `"inhibitory"` if it is less than `-margin`, and `"mixed"` otherwise. A kernel
# `[[5, -1], [-1, -1]]` has more negative coefficients but balance (5 - 3) / 8 = 0.25: mixed at the
# default margin. A centre-surround kernel whose positive centre and negative surround nearly cancel
# is mixed too: calling it excitatory or inhibitory would hide that it does both. Every label in
# this lab's figures uses this rule with the margin 0.25.
#
# ### Step 3 — `compose_kernels` (5 pts, autograded)
#
# A unit's input channels are made by a conv themselves. Reading the non-linearities in between as
# the identity (and BatchNorm as its scale), the unit is one linear filter of the tensor *before*
# that conv: its **expanded weights**. For a unit with kernels `outer` `[M, kh2, kw2]` over the `M`
# channels made by a stride-1 conv `inner` `[M, C, kh1, kw1]`, the effective kernel over the `C`
# input channels is `[C, kh1 + kh2 - 1, kw1 + kw2 - 1]` with
#
# $$K[c,\ y_2 + y_1,\ x_2 + x_1] \mathrel{+}= \sum_m \text{outer}[m, y_2, x_2]\ \text{inner}[m, c, y_1, x_1]$$
#
# over all offsets `(y2, x2)` of `outer` and `(y1, x1)` of `inner` (each offset of the outer kernel
# places a weighted sum of the inner kernels into the bigger window). With `residual=True` the
# tensor is `inner(x) + x` (`M == C`), and the skip adds `outer[c, y2, x2]` at the centre of the
# inner window: `K[c, y2 + kh1 // 2, x2 + kw1 // 2] += outer[c, y2, x2]`. On VGG, `inner` is the
# previous 3x3 conv (3x3 then 3x3 gives 5x5); on EfficientNet it is a whole inverted-residual
# block folded into one conv (`course.circuit_study.block_kernel`: expand, depthwise and project
# multiplied out), which turns the unit's flat 1x1 weights into 3x3 or 5x5 kernels.
#
# **Off limits** in all three steps (the hidden tests make them raise while your functions run, so a
# wrapper earns nothing): `labkit.circuits` (`strongest`, `kernel_norms`, `input_norms`, `polarity`,
# `expanded_weights`), `course.circuit_study`, `course.experiments`, `torch.autograd.grad` and
# `torch.autograd.functional`. Plain torch operations
# (`reshape`, `norm`, `argsort`, `clamp`, `sum`, `einsum`, slicing) are what you need.

# %% kind="solution" id="circuit_functions"
def top_k_inputs(weight, k=6):
    """Indices of the ``k`` input kernels with the largest L2 norm, strongest first.

    Args:
        weight: [C_in, kh, kw] tensor, one kernel per input channel.
        k: how many to return (1 <= k <= C_in).

    Returns:
        list of ``k`` Python ints (input-channel indices).
    """
    ### BEGIN SOLUTION
    norms = weight.reshape(weight.shape[0], -1).norm(dim=1)
    return [int(i) for i in torch.argsort(norms, descending=True, stable=True)[:k]]
    ### END SOLUTION


def polarity(kernel, margin=0.25):
    """``"excitatory"``, ``"inhibitory"`` or ``"mixed"`` by the kernel's balance (P - N) / (P + N).

    Args:
        kernel: [kh, kw] tensor.
        margin: balances in [-margin, margin] are "mixed".
    """
    ### BEGIN SOLUTION
    positive = float(kernel.clamp(min=0).sum())
    negative = float((-kernel).clamp(min=0).sum())
    balance = (positive - negative) / (positive + negative) if positive + negative > 0 else 0.0
    if balance > margin:
        return "excitatory"
    if balance < -margin:
        return "inhibitory"
    return "mixed"
    ### END SOLUTION


def compose_kernels(outer, inner, residual=False):
    """Expanded kernels of a unit through one more stride-1 conv.

    Args:
        outer: [M, kh2, kw2], the unit's kernels over the M channels it reads.
        inner: [M, C, kh1, kw1], the conv that makes those channels from C earlier channels.
        residual: the channels are inner(x) + x (then M == C).

    Returns:
        [C, kh1 + kh2 - 1, kw1 + kw2 - 1] tensor.
    """
    ### BEGIN SOLUTION
    m, kh2, kw2 = outer.shape
    _, c, kh1, kw1 = inner.shape
    out = inner.new_zeros(c, kh1 + kh2 - 1, kw1 + kw2 - 1)
    for y in range(kh2):
        for x in range(kw2):
            out[:, y:y + kh1, x:x + kw1] += torch.einsum("m,mcij->cij", outer[:, y, x], inner)
            if residual:
                out[:, y + kh1 // 2, x + kw1 // 2] += outer[:, y, x]
    return out
    ### END SOLUTION

# %% kind="tests" id="test_top_k_inputs" points=2
# Visible tests for top_k_inputs: hand-made kernels, then this unit's real weights vs labkit.
import torch
from labkit.circuits import kernel_norms as labkit_kernel_norms

hand = torch.zeros(5, 3, 3)
hand[0, 1, 1] = 1.0   # norm 1
hand[1] = 0.5         # norm 1.5
hand[2, 0, 0] = -3.0  # norm 3: sign must not matter
hand[3, :, 0] = 1.0   # norm sqrt(3)
hand[4, 2, 2] = 0.1   # norm 0.1
got = top_k_inputs(hand, 3)
assert isinstance(got, (list, tuple)), f"top_k_inputs must return a list of ints, got {type(got).__name__}"
got = [int(i) for i in got]
assert got == [2, 3, 1], (f"for kernels with L2 norms [1, 1.5, 3, 1.73, 0.1] the top 3 strongest first are "
                          f"[2, 3, 1], you returned {got}. Use the L2 norm of each whole kernel, largest first.")
assert [int(i) for i in top_k_inputs(hand, 1)] == [2], "k=1 must return only the strongest kernel"

expected = torch.argsort(labkit_kernel_norms(W), descending=True, stable=True)[:K].tolist()
got = [int(i) for i in top_k_inputs(W, K)]
assert got == expected, f"{L_C} unit {U_C}: labkit's {K} strongest inputs are {expected}, you returned {got}"
print(f"top_k_inputs agrees with labkit: the {K} strongest inputs of {L_C} unit {U_C} are {got}")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["top_k_inputs"], forbid=["labkit.circuits", "course.circuit_study", "course.experiments"])
weight_all = model.get_submodule(L_C).weight.detach().cpu().float()
for unit in sorted({0, (U_C + 7) % weight_all.shape[0], weight_all.shape[0] - 1}):
    w = weight_all[unit]
    for k in (1, 4, 10):
        k = min(k, w.shape[0])
        expected = torch.argsort(labkit_kernel_norms(w), descending=True, stable=True)[:k].tolist()
        got = [int(i) for i in top_k_inputs(w, k)]
        assert got == expected, f"another unit/k: expected {expected}, got {got}"
g = torch.Generator().manual_seed(3)
rand = torch.randn(40, 5, 5, generator=g) * torch.linspace(0.1, 2, 40).view(40, 1, 1)
norms = rand.flatten(1).norm(dim=1)
expected = torch.argsort(norms, descending=True)[:8].tolist()
assert [int(i) for i in top_k_inputs(rand, 8)] == expected, "5x5 random kernels: wrong order"
ones = torch.randn(12, 1, 1, generator=g)
expected = torch.argsort(ones.abs().flatten(), descending=True)[:5].tolist()
assert [int(i) for i in top_k_inputs(ones, 5)] == expected, "1x1 kernels: wrong order (negative weights count by size)"
### END HIDDEN TESTS

# %% kind="tests" id="test_polarity" points=2
# Visible tests for polarity: hand-made kernels, then the strongest real kernels vs the course's rule.
import torch
from course.circuit_study import polarity as course_polarity

cases = [
    (torch.tensor([[1.0, 2.0], [0.5, 0.0]]), "excitatory"),
    (torch.tensor([[-1.0, -0.2], [-0.5, -3.0]]), "inhibitory"),
    (torch.tensor([[5.0, -1.0], [-1.0, -1.0]]), "mixed"),        # balance exactly 0.25: within the margin
    (torch.tensor([[6.0, -1.0], [-1.0, -1.0]]), "excitatory"),   # fewer positives, but balance 1/3
    (torch.tensor([[-4.0, 1.0], [1.0, 1.0]]), "mixed"),          # balance -1/7
    (torch.tensor([[-8.0, 1.0], [1.0, 1.0]]), "inhibitory"),
    (torch.tensor([[0.3]]), "excitatory"),
    (torch.zeros(3, 3), "mixed"),
]
for kernel, want in cases:
    got = polarity(kernel)
    assert got in ("excitatory", "inhibitory", "mixed"), f"polarity must return one of the three labels, got {got!r}"
    assert got == want, (f"polarity({kernel.tolist()}) should be {want!r}, got {got!r}: compute the balance "
                         f"(P - N) / (P + N) and compare it with +-margin")
assert polarity(torch.tensor([[5.0, -1.0], [-1.0, -1.0]]), margin=0.2) == "excitatory", "use the margin argument"
for c in top_k_inputs(W, K):
    assert polarity(W[c]) == course_polarity(W[c]), f"input channel {c}: the rule says {course_polarity(W[c])}"
print("polarity agrees with the course's rule on hand-made kernels and the strongest real kernels.")
### BEGIN HIDDEN TESTS
_grading = dict(calls=["polarity"], forbid=["labkit.circuits", "course.circuit_study", "course.experiments"])
g = torch.Generator().manual_seed(11)
for shape in [(3, 3), (1, 1), (5, 5), (7, 1)]:
    for _ in range(30):
        kernel = torch.randn(*shape, generator=g) + 0.3 * torch.randn(1, generator=g)
        for margin in (0.0, 0.1, 0.25, 0.5):
            want = course_polarity(kernel, margin)
            assert polarity(kernel, margin) == want, f"a random {shape} kernel, margin {margin}: expected {want}"
weight_all = model.get_submodule(L_C).weight.detach().cpu().float()
w = weight_all[(U_C + 1) % weight_all.shape[0]]
for c in range(min(w.shape[0], 64)):
    assert polarity(w[c]) == course_polarity(w[c]), "another unit's real kernels: wrong polarity"
### END HIDDEN TESTS

# %% kind="tests" id="test_compose_kernels" points=5
# Visible tests for compose_kernels: hand-made cases, then this unit against labkit's expanded weights,
# which are computed in a completely different way (the gradient of the linearised network).
import torch
from labkit.circuits import expanded_weights as labkit_expanded_weights

a = torch.tensor([[[2.0]], [[3.0]]])                          # outer: M=2, 1x1
b = torch.tensor([[[[1.0]], [[0.0]]], [[[4.0]], [[-1.0]]]])   # inner: [2, 2, 1, 1]
got = compose_kernels(a, b)
assert torch.is_tensor(got) and got.shape == (2, 1, 1), f"1x1 after 1x1 gives [C, 1, 1], got {getattr(got, 'shape', got)}"
assert torch.allclose(got.flatten(), torch.tensor([14.0, -3.0])), f"1x1 after 1x1 is a matrix product: expected [14, -3], got {got.flatten().tolist()}"
assert torch.allclose(compose_kernels(a, b, residual=True).flatten(), torch.tensor([16.0, 0.0])), \
    "with residual=True the skip adds outer at the centre: [14 + 2, -3 + 3]"
delta = torch.zeros(1, 3, 3)
delta[0, 0, 2] = 1.0                                          # outer: pick the top-right offset
inner = torch.arange(9.0).reshape(1, 1, 3, 3)
got = compose_kernels(delta, inner)
assert got.shape == (1, 5, 5), f"3x3 after 3x3 gives 5x5 kernels, got {tuple(got.shape)}"
want = torch.zeros(1, 5, 5)
want[0, 0:3, 2:5] = inner[0, 0]
assert torch.allclose(got, want), "the inner kernel must be placed at offset (y2, x2) of the outer kernel"

PATH = cs.expansion_path(model, L_C)
if PATH is not None:
    BLOCK, SOURCE = PATH
    INNER, RESIDUAL = cs.block_kernel(model, BLOCK)
    got = compose_kernels(W, INNER.cpu().float(), RESIDUAL)
    reference = labkit_expanded_weights(model, SOURCE, L_C, channels=[U_C], progress=False)[0].cpu()
    assert got.shape == reference.shape, f"expected {tuple(reference.shape)}, got {tuple(got.shape)}"
    assert torch.allclose(got, reference, atol=1e-4 * float(reference.abs().max())), \
        f"{L_C} unit {U_C} through {BLOCK}: your expanded kernels differ from labkit's (largest difference " \
        f"{float((got - reference).abs().max()):.3g})"
    print(f"compose_kernels agrees with labkit's expanded weights through {BLOCK}"
          + (" and its skip connection." if RESIDUAL else "."))
### BEGIN HIDDEN TESTS
_grading = dict(calls=["compose_kernels"], forbid=["labkit.circuits", "course.circuit_study", "course.experiments", "torch.autograd.grad", "torch.autograd.functional"])
import torch.nn.functional as _F

g = torch.Generator().manual_seed(5)
for (m, c, k1, k2, res) in [(6, 4, 3, 3, False), (5, 5, 5, 1, True), (3, 3, 1, 3, True), (4, 2, 1, 1, False),
                            (2, 3, 5, 3, False)]:
    inner_r = torch.randn(m, c, k1, k1, generator=g)
    outer_r = torch.randn(m, k2, k2, generator=g)
    side = k1 + k2 + 5
    x = torch.zeros(1, c, side, side, requires_grad=True)
    mid = _F.conv2d(x, inner_r, padding=k1 // 2) + (x if res else 0)
    out = _F.conv2d(mid, outer_r[None], padding=k2 // 2)
    (grad,) = torch.autograd.grad(out[0, 0, side // 2, side // 2], x)
    r = (k1 + k2 - 2) // 2
    want = grad[0, :, side // 2 - r:side // 2 + r + 1, side // 2 - r:side // 2 + r + 1]
    got = compose_kernels(outer_r, inner_r, res)
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), f"random case {(m, c, k1, k2, res)}"
if PATH is not None:
    n_units = model.get_submodule(L_C).out_channels
    for unit in sorted({0, (U_C + 3) % n_units}):
        w = model.get_submodule(L_C).weight.detach()[unit].cpu().float()
        reference = labkit_expanded_weights(model, SOURCE, L_C, channels=[unit], progress=False)[0].cpu()
        got = compose_kernels(w, INNER.cpu().float(), RESIDUAL)
        assert torch.allclose(got, reference, atol=1e-4 * float(reference.abs().max())), f"unit {unit}: wrong"
### END HIDDEN TESTS
