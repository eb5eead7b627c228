"""labkit.saliency and labkit.plot.saliency on the bundled EfficientNet-Lite0 and the shipped photos.

captum is the independent reference (imported only here). Its GuidedBackprop only gates ``nn.ReLU``
modules, so the reference for Lite0 is a copy whose ``nn.ReLU6`` modules are replaced by an ``nn.ReLU``
subclass computing relu6 (same forward values; captum then applies the guided rule there).
"""
import copy
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit import saliency as S
from labkit.images import deprocess, preprocess
from labkit.layers import forward_hooks_count, last_conv

captum_attr = pytest.importorskip("captum.attr")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # captum's "Setting backward hooks" notice

GERMAN_SHEPHERD = 235
CAT_CLASSES = (281, 282, 285)  # tabby, tiger cat, Egyptian cat


def assert_close(actual, expected, rtol=1e-5):
    """Equal up to float32 round-off, relative to the map's own scale."""
    assert actual.shape == expected.shape
    scale = expected.abs().max().item()
    assert scale > 0, "reference map is all zeros: the comparison would prove nothing"
    err = (actual - expected).abs().max().item()
    assert err <= rtol * scale + 1e-12, f"max abs diff {err:.3g} vs scale {scale:.3g}"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pair(lite0):
    """Two real photos with one target each: the cat close-up and the dog/cat composite."""
    return preprocess(["cat", "dog_and_cat"], lite0), [285, GERMAN_SHEPHERD]


@pytest.fixture(scope="module")
def four(lite0):
    return preprocess(["cat", "dog", "dog_and_cat", "cat2"], lite0), [285, GERMAN_SHEPHERD, 282, 281]


class ReLU6AsReLU(nn.ReLU):
    """relu6 forward in an nn.ReLU subclass, so captum's GuidedBackprop hooks it."""

    def forward(self, x):
        return F.relu6(x)


def relu_modules_for_captum(model):
    ref = copy.deepcopy(model)
    replaced = 0
    for parent in ref.modules():
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, child_name, ReLU6AsReLU())
                replaced += 1
    assert replaced > 0
    return ref


@pytest.fixture(scope="module")
def lite0_captum_ref(lite0):
    return relu_modules_for_captum(lite0)


def relu_flags(model):
    return [(name, m.inplace) for name, m in model.named_modules() if hasattr(m, "inplace")]


# --------------------------------------------------------------------------- captum cross-checks


def test_vanilla_matches_captum_saliency(lite0, pair):
    x, t = pair
    sal, grad = S.vanilla(lite0, x, t), S.gradient(lite0, x, t)
    ref_abs = captum_attr.Saliency(lite0).attribute(x, target=t, abs=True)
    ref_signed = captum_attr.Saliency(lite0).attribute(x, target=t, abs=False)
    assert sal.shape == (2, 224, 224) and grad.shape == (2, 3, 224, 224)
    assert_close(sal, ref_abs.amax(dim=1))
    assert_close(grad, ref_signed)
    assert_close(S.gradient(lite0, x, t), ref_signed)
    assert forward_hooks_count(lite0) == 0


def test_guided_backprop_matches_captum(lite0, lite0_captum_ref, pair):
    x, t = pair
    before = relu_flags(lite0)
    gb = S.guided_backprop(lite0, x, t)
    ref = captum_attr.GuidedBackprop(lite0_captum_ref).attribute(x, target=t)
    assert_close(gb, ref)
    # the guidance really acts: it is not the plain gradient
    plain = S.gradient(lite0, x, t)
    assert (gb - plain).abs().max() > 0.1 * plain.abs().max()
    assert relu_flags(lite0) == before and any(flag for _, flag in before)  # in-place ReLU6 flags untouched
    assert forward_hooks_count(lite0) == 0


def test_grad_cam_matches_captum(lite0, pair):
    x, t = pair
    assert last_conv(lite0) == "conv_head"
    for layer, relu in ((None, True), ("blocks.5.0.conv_pw", False)):
        module = lite0.get_submodule(layer or "conv_head")
        cam = S.grad_cam(lite0, x, t, layer, relu=relu)
        ref = captum_attr.LayerGradCam(lite0, module).attribute(x, target=t, relu_attributions=relu)
        ref = captum_attr.LayerAttribution.interpolate(ref, (224, 224), "bilinear")[:, 0]
        assert cam.shape == (2, 224, 224)
        assert_close(cam, ref)
        if relu:
            assert cam.min() >= 0
        else:
            assert cam.min() < 0  # the signed map keeps negative evidence
    assert forward_hooks_count(lite0) == 0


def test_guided_grad_cam_matches_captum(lite0, lite0_captum_ref, pair):
    x, t = pair
    ggc = S.guided_grad_cam(lite0, x, t)
    ref = captum_attr.GuidedGradCam(lite0_captum_ref, lite0_captum_ref.conv_head).attribute(
        x, target=t, interpolate_mode="bilinear")
    assert ggc.shape == (2, 3, 224, 224)
    assert_close(ggc, ref)
    assert forward_hooks_count(lite0) == 0


def test_occlusion_matches_captum(lite0, pair):
    x, t = pair
    # 112-px window, stride 64 (3x3 positions): captum's last window hangs over the edge and is cut there
    occ = S.occlusion(lite0, x, t, window=112, stride=64, baseline=-1.0, batch_size=5)
    ref = captum_attr.Occlusion(lite0).attribute(x, target=t, sliding_window_shapes=(3, 112, 112),
                                                 strides=(3, 64, 64), baselines=-1.0,
                                                 perturbations_per_eval=9)
    assert torch.equal(ref[:, 0], ref[:, 2])  # captum repeats the value in every channel
    assert occ.shape == (2, 224, 224)
    assert_close(occ, ref[:, 0], rtol=1e-4)
    assert forward_hooks_count(lite0) == 0


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid"])
def test_integrated_gradients_matches_captum(lite0, pair, method):
    x, t = pair
    if method == "riemann_trapezoid":  # one image is enough for the second rule
        x, t = x[:1], t[:1]
    steps = 4
    black = torch.full_like(x[:1], -1.0)  # lite0: mean = std = 0.5, so -1 is black
    res = S.integrated_gradients(lite0, x, t, baseline=black, steps=steps, method=method, batch_size=5)
    assert isinstance(res, S.IGResult)
    ref, delta = captum_attr.IntegratedGradients(lite0).attribute(
        x, baselines=black.expand_as(x), target=t, n_steps=steps, method=method, return_convergence_delta=True)
    attr, err = res.attributions, res.error
    assert attr.shape == x.shape and err.shape == (len(t),)
    if method == "riemann_trapezoid":
        # captum's trapezoid weights are 1/n (halved at the ends); the trapezoid rule's are 1/(n-1)
        ref = ref * steps / (steps - 1)
        with torch.no_grad():
            scores = lite0(torch.cat([x, black]))[[0, 1], t + t]
        assert torch.allclose(res.delta_score, scores[:1] - scores[1:], rtol=1e-5, atol=1e-4)
        assert torch.allclose(err, (attr.sum(dim=(1, 2, 3)) - res.delta_score).abs())
    else:
        assert torch.allclose(err, delta.abs(), rtol=1e-3, atol=1e-3)
    assert_close(attr, ref, rtol=1e-4)
    assert forward_hooks_count(lite0) == 0


def test_smoothgrad_averages_captum_saliency_over_the_documented_noise(lite0, pair):
    x, t = pair[0][:1], 285
    samples, sigma, seed = 2, 0.2, 7
    sg = S.smoothgrad(lite0, x, t, samples=samples, sigma=sigma, seed=seed)
    noise = torch.randn((samples, 3, 224, 224), generator=torch.Generator().manual_seed(seed))
    noisy = x + noise * (sigma * (x.max() - x.min()))  # same float operations as smoothgrad
    grads = captum_attr.Saliency(lite0).attribute(noisy, target=t, abs=True)
    assert_close(sg, grads.mean(0, keepdim=True).amax(dim=1))
    signed = captum_attr.Saliency(lite0).attribute(noisy, target=t, abs=False)
    assert_close(S.smoothgrad(lite0, x, t, samples=samples, sigma=sigma, seed=seed, magnitude=False, batch_size=1),
                 signed.mean(0, keepdim=True).abs().amax(dim=1), rtol=1e-4)
    assert not torch.allclose(sg, S.smoothgrad(lite0, x, t, samples=samples, sigma=sigma, seed=seed + 1))
    # without noise both variants reduce to the vanilla map
    vanilla = S.vanilla(lite0, x, t)
    assert_close(S.smoothgrad(lite0, x, t, samples=1, sigma=0.0, seed=0), vanilla)
    assert forward_hooks_count(lite0) == 0


# --------------------------------------------------------------------------- other architectures


def tiny_net(functional: bool):
    """conv-relu-conv-relu-pool-linear; relus as modules (captum's reference) or functional and in-place."""

    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
            self.relu1, self.relu2 = nn.ReLU(), nn.ReLU()
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            if functional:
                x = F.relu(self.conv1(x), inplace=True)
                x = self.conv2(x)
                x.relu_()  # result ignored: only the in-place effect counts
            else:
                x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
            return self.fc(x.mean(dim=(2, 3)))

    torch.manual_seed(3)
    return Tiny().eval()


def test_guided_backprop_handles_functional_and_inplace_relus():
    x = torch.randn(2, 3, 12, 12)
    functional, modules = tiny_net(True), tiny_net(False)
    gb = S.guided_backprop(functional, x, [0, 3])
    ref = captum_attr.GuidedBackprop(modules).attribute(x, target=[0, 3])
    assert_close(gb, ref)
    assert (gb - S.gradient(functional, x, [0, 3])).abs().max() > 0.01 * ref.abs().max()


@pytest.mark.parametrize("name", ["googlenet", "resnet18"])
def test_registry_architectures_match_captum(name):
    """GoogLeNet calls F.relu(inplace=True) (no ReLU modules); ResNet reuses one in-place ReLU per block."""
    from torchvision.models.googlenet import BasicConv2d

    from labkit.models import load_model

    model = load_model(name, pretrained=False, device="cpu")
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    t = [1, 500]
    before = relu_flags(model)
    gb = S.guided_backprop(model, x, t)
    cam = S.grad_cam(model, x, t, relu=False)
    assert relu_flags(model) == before and forward_hooks_count(model) == 0

    ref_model = copy.deepcopy(model)
    for m in ref_model.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
        if isinstance(m, BasicConv2d):  # route GoogLeNet's functional relu through a module captum can hook
            m.act = nn.ReLU()
            m.forward = types.MethodType(lambda self, z: self.act(self.bn(self.conv(z))), m)
    assert_close(gb, captum_attr.GuidedBackprop(ref_model).attribute(x, target=t))
    layer = ref_model.get_submodule(last_conv(model))
    ref_cam = captum_attr.LayerGradCam(ref_model, layer).attribute(x, target=t, relu_attributions=False)
    assert_close(cam, captum_attr.LayerAttribution.interpolate(ref_cam, (64, 64), "bilinear")[:, 0])


def test_grad_cam_reads_the_conv_output_before_an_inplace_relu():
    """AlexNet's last conv feeds ReLU(inplace=True), which would overwrite a naively captured output."""
    from labkit.models import load_model

    model = load_model("alexnet", pretrained=False, device="cpu")
    assert model.features[11].inplace
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    cam = S.grad_cam(model, x, [3, 4], "features.10", relu=False)
    try:
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = False
        ref = captum_attr.LayerGradCam(model, model.features[10]).attribute(x, target=[3, 4])
    finally:
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = True
    assert_close(cam, captum_attr.LayerAttribution.interpolate(ref, (96, 96), "bilinear")[:, 0])


# --------------------------------------------------------------------------- behaviour on real photos


def test_grad_cam_separates_dog_and_cat(lite0):
    x = preprocess("dog_and_cat", lite0)  # German shepherd on the left half, kitten on the right
    with torch.no_grad():
        logits = lite0(x)[0]
    cat = max(CAT_CLASSES, key=lambda c: logits[c].item())
    cams = S.grad_cam(lite0, x.expand(2, -1, -1, -1), [GERMAN_SHEPHERD, cat])
    left = cams[:, :, :112].sum(dim=(1, 2)) / cams.sum(dim=(1, 2))
    assert left[0] > 0.65, f"dog map: only {left[0]:.2f} of the mass on the dog's half"
    assert 1 - left[1] > 0.6, f"cat map ({cat}): only {1 - left[1]:.2f} of the mass on the cat's half"


def test_vanilla_saliency_concentrates_on_the_cat(lite0):
    """cat2: a kitten on a plain red carpet. Box rows 25..170, cols 35..224 holds the kitten and its ball of
    wool (checked by eye on the 224x224 input); below and to the left is bare carpet and the loose thread.
    (The `cat` photo is a close-up that fills ~83% of the frame, so a box there cannot tell a real map from
    a uniform one.) The kitten must get most of the mass and clearly more per pixel than the carpet."""
    x = preprocess("cat2", lite0)
    with torch.no_grad():
        logits = lite0(x)[0]
    cat = max(CAT_CLASSES, key=lambda c: logits[c].item())
    sal = S.vanilla(lite0, x, cat)[0]
    inside = torch.zeros_like(sal, dtype=torch.bool)
    inside[25:170, 35:224] = True
    mass = sal[inside].sum() / sal.sum()
    density_ratio = sal[inside].mean() / sal[~inside].mean()
    assert mass > 0.6, f"only {mass:.2f} of the saliency is on the kitten"
    assert density_ratio > 1.5, f"kitten pixels are only {density_ratio:.2f}x as salient as carpet pixels"


def test_sanity_check_vanilla_decorrelates(lite0):
    x = preprocess("cat2", lite0)
    state = {k: v.clone() for k, v in lite0.state_dict().items()}
    result = S.sanity_check(lite0, x, 285, "vanilla", layers=["conv_head", "classifier", "blocks.6"], seed=0)
    assert [r["step"] for r in result] == [0, 1, 2, 3]
    assert [r["layer"] for r in result] == ["(original)", "classifier", "conv_head", "blocks.6"]  # top-down
    assert result[0]["spearman"] == pytest.approx(1.0)
    assert result[-1]["spearman"] < 0.5
    assert "classifier" in str(result) and "<table>" in result._repr_html_()
    # Adebayo et al.'s contrast: guided backprop barely changes when the logits layer is random
    guided = S.sanity_check(lite0, x, 285, "guided_backprop", layers=["classifier"])
    assert guided.spearman[-1] > 0.9
    assert result.spearman[1] < 0.5
    # the original model is untouched
    assert all(torch.equal(state[k], v) for k, v in lite0.state_dict().items())
    assert forward_hooks_count(lite0) == 0


def test_sanity_check_options(lite0):
    x = preprocess("cat2", lite0)
    calls = []

    def my_method(model, x, target, scale=1.0):
        calls.append(model)
        return S.grad_cam(model, x, target) * scale

    result = S.sanity_check(lite0, x, 285, my_method, max_steps=1, method_kwargs={"scale": 2.0})
    assert [r["layer"] for r in result] == ["(original)", "classifier"]  # default: every conv/linear, top-down
    assert calls[0] is lite0 and calls[1] is not lite0  # randomised on a copy
    with pytest.raises(ValueError, match="vanilla"):
        S.sanity_check(lite0, x, 285, "no_such_method")
    with pytest.raises(ValueError, match="No layer named"):
        S.sanity_check(lite0, x, 285, "vanilla", layers=["blocks.99"])
    assert set(S.METHODS) >= {"vanilla", "guided_backprop", "grad_cam", "smoothgrad", "integrated_gradients",
                              "occlusion"}


# --------------------------------------------------------------------------- batching, errors, hooks


METHOD_CASES = {
    "vanilla": {},
    "guided_backprop": {},
    "grad_cam": {},
    "guided_grad_cam": {},
    "occlusion": {"window": 112, "stride": 112},
    "smoothgrad": {"samples": 2, "seed": 0},
    "integrated_gradients": {"steps": 2, "batch_size": 3},
}


def as_map(result):
    return result.attributions if isinstance(result, S.IGResult) else result


@pytest.mark.parametrize("name", list(METHOD_CASES))
def test_batch_equals_single_images(lite0, four, name):
    x, t = four
    fn, kwargs = S.METHODS[name], METHOD_CASES[name]
    batch = as_map(fn(lite0, x, t, **kwargs))
    singles = torch.cat([as_map(fn(lite0, x[i:i + 1], t[i], **kwargs)) for i in range(4)])
    assert batch.shape == singles.shape and batch.shape[0] == 4 and batch.shape[-2:] == (224, 224)
    assert batch.device == x.device
    assert not batch.requires_grad
    assert torch.allclose(batch, singles, rtol=1e-4, atol=1e-5 * singles.abs().max().item())
    assert forward_hooks_count(lite0) == 0


@pytest.mark.parametrize("name", list(METHOD_CASES))
def test_bad_inputs_raise_clear_errors(lite0, four, name):
    x, _ = four
    fn, kwargs = S.METHODS[name], METHOD_CASES[name]
    with pytest.raises(IndexError, match=r"0\.\.999"):
        fn(lite0, x[:1], 1000, **kwargs)
    with pytest.raises(IndexError, match=r"0\.\.999"):
        fn(lite0, x[:2], [3, -1], **kwargs)
    with pytest.raises(ValueError, match="one per image"):
        fn(lite0, x[:2], [3, 4, 5], **kwargs)
    with pytest.raises(ValueError, match=r"\[N,3,H,W\].*\[3, 224, 224\]"):
        fn(lite0, x[0], 3, **kwargs)
    with pytest.raises(ValueError, match=r"\[1, 1, 224, 224\]"):
        fn(lite0, x[:1, :1], 3, **kwargs)
    assert forward_hooks_count(lite0) == 0


def test_bad_layer_and_options(lite0, four):
    x = four[0][:1]
    with pytest.raises(ValueError, match="No layer named 'conv_hed'.*conv_head"):
        S.grad_cam(lite0, x, 1, "conv_hed")
    with pytest.raises(IndexError, match="valid indices"):
        S.guided_grad_cam(lite0, x, 1, 10_000)
    with pytest.raises(ValueError, match="spatial"):
        S.grad_cam(lite0, x, 1, "classifier")
    with pytest.raises(ValueError, match="gausslegendre"):
        S.integrated_gradients(lite0, x, 1, method="simpson")
    with pytest.raises(ValueError, match="window"):
        S.occlusion(lite0, x, 1, window=300)
    with pytest.raises(ValueError, match="stride"):
        S.occlusion(lite0, x, 1, window=8, stride=16)
    assert forward_hooks_count(lite0) == 0


@pytest.mark.parametrize("name", ["vanilla", "guided_backprop", "grad_cam", "guided_grad_cam", "occlusion",
                                  "integrated_gradients"])
def test_cleanup_after_an_exception_mid_call(lite0, four, name):
    """The classifier fails half-way through the call: no hooks, no guided mode, flags left as they were."""
    x, t = four[0][:1], 285
    fn, kwargs = S.METHODS[name], METHOD_CASES[name]
    flags, training = relu_flags(lite0), [m.training for m in lite0.modules()]

    def broken(inputs):
        raise RuntimeError("classifier exploded")

    lite0.classifier.forward = broken  # an instance attribute shadows nn.Linear.forward
    try:
        with pytest.raises(RuntimeError, match="exploded"):
            fn(lite0, x, t, **kwargs)
    finally:
        del lite0.classifier.forward
    assert forward_hooks_count(lite0) == 0
    assert torch._C._len_torch_function_stack() == 0  # guided_relus was exited
    assert relu_flags(lite0) == flags and [m.training for m in lite0.modules()] == training
    assert "forward" not in vars(lite0.classifier)


def test_train_mode_is_restored_and_ignored(lite0, four):
    x, t = four[0][:1], 285
    expected = S.vanilla(lite0, x, t)
    lite0.train()
    try:
        got = S.vanilla(lite0, x, t)
        assert all(m.training for m in lite0.modules())
    finally:
        lite0.eval()
    assert_close(got, expected)


def test_tensor_numpy_and_class_name_targets(lite0, four):
    x = four[0][:2]
    expected = S.grad_cam(lite0, x, [285, 235])
    for target in (torch.tensor([285, 235]), np.array([285, 235]), ["Egyptian cat", "German shepherd"]):
        assert torch.equal(S.grad_cam(lite0, x, target), expected)
    with pytest.raises(TypeError):
        S.grad_cam(lite0, x, 2.5)
    with pytest.raises(ValueError, match="Close matches"):
        S.vanilla(lite0, x, "Egyptian kat")


# --------------------------------------------------------------------------- memory budget


def test_chunk_size_follows_the_budget(lite0, four):
    x = four[0][:1]
    per_image = S.per_image_bytes(lite0, x, backward=True)
    assert per_image > S.per_image_bytes(lite0, x, backward=False) > x[0].numel() * 4
    assert S.chunk_size(lite0, x, 10 * per_image / 2 ** 20, backward=True) == 10
    assert S.chunk_size(lite0, x, 1e-6, backward=True) == 1  # never below one image
    assert S.chunk_size(lite0, x, 1e-6, backward=True, batch_size=7) == 7  # an explicit count wins
    with pytest.raises(ValueError, match="memory_mb"):
        S.chunk_size(lite0, x, 0, backward=True)
    with pytest.raises(ValueError, match="batch_size"):
        S.smoothgrad(lite0, x, 1, samples=2, batch_size=0)


CHUNKED_CASES = {
    "smoothgrad": {"samples": 5, "seed": 3},
    "integrated_gradients": {"steps": 5},
    "occlusion": {"window": 112, "stride": 56},
}


@pytest.mark.parametrize("name", list(CHUNKED_CASES))
def test_chunked_equals_unchunked(lite0, four, name):
    """A tiny budget (one copy per pass) gives the same maps as no budget at all (everything in one pass)."""
    x, t = four[0][:2], four[1][:2]
    fn, kwargs = S.METHODS[name], CHUNKED_CASES[name]
    calls = []
    handle = lite0.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        whole = as_map(fn(lite0, x, t, memory_mb=None, **kwargs))
        n_whole, calls[:] = len(calls), []
        chunked = as_map(fn(lite0, x, t, memory_mb=1e-6, **kwargs))
    finally:
        handle.remove()
    assert max(calls) == 1 and len(calls) > n_whole  # really one copy per pass
    assert_close(chunked, whole, rtol=1e-4)


def test_sanity_check_chunked_equals_unchunked(lite0, four):
    x, t = four[0][:3], four[1][:3]
    kwargs = {"max_steps": 2, "seed": 0, "method_kwargs": {"samples": 2, "seed": 1}}
    whole = S.sanity_check(lite0, x, t, "smoothgrad", memory_mb=None, **kwargs)
    chunked = S.sanity_check(lite0, x, t, "smoothgrad", memory_mb=1e-6, **kwargs)
    assert [r["layer"] for r in whole] == [r["layer"] for r in chunked]
    np.testing.assert_allclose([r["spearman_per_image"] for r in chunked], [r["spearman_per_image"] for r in whole],
                               atol=1e-5)


# --------------------------------------------------------------------------- plots


@pytest.fixture(scope="module")
def cat2_maps(lite0):
    x = preprocess("cat2", lite0)
    return deprocess(x[0], lite0), {
        "vanilla": S.vanilla(lite0, x, 285)[0],
        "grad_cam": S.grad_cam(lite0, x, 285)[0],
        "guided_backprop": S.guided_backprop(lite0, x, 285)[0],
    }


def test_overlay_and_compare_methods(cat2_maps):
    import matplotlib.pyplot as plt

    from labkit.plot import compare_methods, overlay

    image, maps = cat2_maps
    fig = overlay(image, maps["grad_cam"], alpha=0.4)
    ax = fig.axes[0]
    assert len(ax.images) == 2 and ax.images[1].get_alpha() == 0.4
    np.testing.assert_allclose(ax.images[1].get_array(), maps["grad_cam"].numpy())
    plt.close(fig)

    fig = compare_methods(image, maps, normalize="each", clip_percentile=100)
    titles = [a.get_title() for a in fig.axes if a.get_visible()]
    assert titles == ["image", "vanilla", "grad_cam", "guided_backprop"]
    heat = {a.get_title(): a.images[-1] for a in fig.axes if a.get_title() in ("vanilla", "grad_cam")}
    for name in ("vanilla", "grad_cam"):
        assert heat[name].get_clim() == pytest.approx((maps[name].min().item(), maps[name].max().item()))
    plt.close(fig)

    fig = compare_methods(image, maps, normalize="shared", clip_percentile=100)
    clims = {a.images[-1].get_clim() for a in fig.axes if a.get_title() in ("vanilla", "grad_cam")}
    assert len(clims) == 1
    plt.close(fig)
    with pytest.raises(ValueError, match="each"):
        compare_methods(image, maps, normalize="global")


def test_signed_gradient_image_is_gray_at_zero():
    from labkit.plot import signed_gradient_image

    g = torch.zeros(3, 4, 5)
    g[0, 1, 2], g[1, 3, 4] = 2.0, -4.0
    img = signed_gradient_image(g)
    assert img.shape == (4, 5, 3)
    assert img[0, 0, 0] == 0.5 and img[3, 4, 1] == 0.0 and img[1, 2, 0] == 0.75
    assert (signed_gradient_image(torch.zeros(4, 5)) == 0.5).all()


def test_plot_sanity(lite0):
    import matplotlib.pyplot as plt

    from labkit.plot import plot_sanity

    records = S.SanityResult([{"step": 0, "layer": "(original)", "spearman": 1.0},
                              {"step": 1, "layer": "classifier", "spearman": 0.3}])
    fig = plot_sanity({"vanilla": records, "grad_cam": records})
    ax = fig.axes[0]
    assert len(ax.lines) >= 2
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [1.0, 0.3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["(original)", "classifier"]
    plt.close(fig)
