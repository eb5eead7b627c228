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
