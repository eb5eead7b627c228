"""labkit.featurevis on the bundled EfficientNet-Lite0 and the shipped photos.

Small sizes and few steps keep this file fast; every optimised picture is checked against
independent measurements (labkit.layers.activations on the returned images, captum's FGSM,
scipy's correlate for the Scharr filter), never against stored numbers.
"""
import numpy as np
import pytest
import torch

from labkit import featurevis as fv
from labkit.images import normalize, preprocess, sample_images, to_tensor01
from labkit.layers import activations, forward_hooks_count, pre_post

LAYER = "blocks.3.0.conv_pw"  # 240 channels, 67 px receptive field, followed by BN + ReLU6
FILTERS = [1, 3, 63]
SIZE = 96
STEPS = 40


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: identical float reductions for batch and single runs, and no OpenMP
    spin-waiting when the 2 CPU cores are shared with other processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _untouched(model):
    assert forward_hooks_count(model) == 0
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())


def _channel_means(model, images01, layer=LAYER, reduce="mean_abs", relu=None):
    """[N, C] spatial mean (|.| for mean_abs) of every channel, measured independently of featurevis."""
    with torch.no_grad():
        act = activations(model, normalize(images01, model), layer, relu=relu)
    return (act.abs() if reduce == "mean_abs" else act).mean(dim=(2, 3))


@pytest.fixture(scope="module")
def handout(lite0):
    """The Duke lab's algorithm (plain Adam on pixels, mean |activation|) for three filters at once."""
    return fv.visualize(lite0, LAYER, FILTERS, preset="handout", steps=STEPS, size=SIZE, seed=0, progress=False,
                        snapshot_every=20)


@pytest.fixture(scope="module")
def quality(lite0):
    return fv.visualize(lite0, LAYER, [1, 63], preset="quality", steps=STEPS, size=64, seed=0, progress=False)


@pytest.fixture(scope="module")
def photos(lite0):
    return [preprocess(list(sample_images().values()), lite0, size=s) for s in (SIZE, 224)]


# --------------------------------------------------------------------------- visualize


def test_result_is_a_batch_of_images_with_measured_activations(lite0, handout):
    r = handout
    assert r.images.shape == (3, 3, SIZE, SIZE) and r.images.device.type == "cpu"
    assert 0 <= float(r.images.min()) and float(r.images.max()) <= 1
    assert r.layer == LAYER and r.channels == FILTERS and r.objective == "mean_abs"
    assert [step for step, _ in r.snapshots] == [20, 40]
    assert torch.equal(r.snapshots[-1][1], r.images)
    # .activations is the objective on the final un-augmented image, measured here independently
    means = _channel_means(lite0, r.images)
    assert torch.allclose(r.activations, means[torch.arange(3), FILTERS], rtol=1e-4)
    assert r.settings["steps"] == STEPS and r.settings["lr"] == 0.1 and r.settings["param"] == "pixel"
    _untouched(lite0)


def test_optimised_image_beats_random_noise_tenfold_and_every_photo(lite0, handout, photos):
    # "random noise": the handout's own random start (uniform grey levels 150..180), fresh draws
    gens = [torch.Generator().manual_seed(1000 + i) for i in range(8)]
    start_noise = fv.pixel().build(8, (SIZE, SIZE), gens=gens, model=lite0, device="cpu")().detach()
    full_noise = torch.rand(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    for i, f in enumerate(FILTERS):
        own = float(handout.activations[i])
        assert own >= 10 * float(_channel_means(lite0, start_noise)[:, f].max())
        assert own > float(_channel_means(lite0, full_noise)[:, f].max())
        for batch in photos:  # the 13 shipped photos, at the image's size and at the model's 224 px
            with torch.no_grad():
                photo = activations(lite0, batch, LAYER)[:, f].abs().mean(dim=(1, 2))
            assert own > float(photo.max())


def test_each_image_excites_its_own_channel_most(lite0, handout, quality):
    for result in (handout, quality):
        reduce = "mean_abs" if result.objective == "mean_abs" else "mean"
        means = _channel_means(lite0, result.images, reduce=reduce)[:, result.channels]  # [image, channel]
        for j in range(len(result.channels)):
            others = [means[i, j] for i in range(len(result.channels)) if i != j]
            assert means[j, j] > max(others)


def test_batched_run_matches_one_channel_runs(lite0, handout):
    alone = fv.visualize(lite0, LAYER, FILTERS[1], preset="handout", steps=STEPS, size=SIZE, seed=0, progress=False)
    assert alone.images.shape == (1, 3, SIZE, SIZE)
    assert torch.allclose(alone.images[0], handout.images[1], atol=1e-4)
    assert torch.allclose(alone.activations[0], handout.activations[1], rtol=1e-4)
    other_seed = fv.visualize(lite0, LAYER, FILTERS[1], preset="handout", steps=2, size=32, seed=1, progress=False)
    same_seed = fv.visualize(lite0, LAYER, FILTERS[1], preset="handout", steps=2, size=32, seed=1, progress=False)
    assert torch.equal(other_seed.images, same_seed.images)
    first_seed = fv.visualize(lite0, LAYER, FILTERS[1], preset="handout", steps=2, size=32, seed=0, progress=False)
    assert not torch.allclose(first_seed.images, other_seed.images)


def test_quality_preset_is_smooth_and_beats_photos(lite0, handout, quality, photos):
    def tv(x):
        return ((x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()).item()

    assert tv(quality.images) < 0.5 * tv(handout.images)  # clean pictures, not pixel noise
    means = _channel_means(lite0, quality.images, reduce="mean")
    assert torch.allclose(quality.activations, means[torch.arange(2), quality.channels], rtol=1e-4)
    for i, f in enumerate(quality.channels):
        for batch in photos:
            with torch.no_grad():
                photo = activations(lite0, batch, LAYER)[:, f].mean(dim=(1, 2))
            assert float(quality.activations[i]) > float(photo.max())
    _untouched(lite0)


def test_forward_pass_stops_at_the_layer(lite0, monkeypatch):
    calls = []
    block = lite0.blocks[4]

    def boom(*args, **kwargs):
        calls.append(1)
        raise AssertionError("a layer after the target ran")

    monkeypatch.setattr(block, "forward", boom)
    monkeypatch.setattr(lite0.classifier, "forward", boom)
    r = fv.visualize(lite0, LAYER, [1, 2], steps=2, size=32, progress=False)
    assert calls == [] and r.images.shape == (2, 3, 32, 32)
    # the class objective genuinely needs the whole network, so it does run the later layers
    with pytest.raises(AssertionError, match="after the target"):
        fv.visualize(lite0, LAYER, [1], steps=1, size=32, objective=fv.class_logit("goldfish"), progress=False)
    assert calls
    monkeypatch.undo()
    _untouched(lite0)


def test_bad_channels_layers_and_settings_say_what_is_valid(lite0, vgg16_random):
    with pytest.raises(IndexError, match="240 channels"):
        fv.visualize(lite0, LAYER, [1, 255, 240], steps=1, size=32, progress=False)
    with pytest.raises(IndexError, match="64 channels"):  # the Duke handout's mistake: 255 on conv1
        fv.visualize(vgg16_random, 0, 255, preset="handout", steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="Did you mean"):
        fv.visualize(lite0, "blocks.3.0.conv_pww", 1, steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="not followed by a non-linearity"):
        fv.visualize(lite0, "blocks.3.0.conv_pwl", 1, relu="after", steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="Valid choices: handout, quality|Valid choices: quality, handout"):
        fv.visualize(lite0, LAYER, 1, preset="pretty", progress=False)
    with pytest.raises(ValueError, match="mean_abs"):
        fv.visualize(lite0, LAYER, 1, objective="max", steps=1, size=32, progress=False)
    with pytest.raises(ValueError, match="pixel, fft"):
        fv.visualize(lite0, LAYER, 1, param="wavelet", steps=1, size=32, progress=False)
    _untouched(lite0)


def test_handout_index_addresses_vgg_layers(vgg16_random):
    r = fv.visualize(vgg16_random, 10, [1, 3], preset="handout", steps=2, size=32, progress=False)
    assert r.layer == "features.10" and r.images.shape == (2, 3, 32, 32)
    _untouched(vgg16_random)


def test_relu_before_and_after(lite0):
    before = fv.visualize(lite0, LAYER, [1, 63], relu="before", steps=10, size=48, progress=False)
    after = fv.visualize(lite0, LAYER, [1, 63], relu="after", steps=10, size=48, progress=False)
    assert before.relu == "before" and after.relu == "after"
    for r in (before, after):
        both = pre_post(lite0, normalize(r.images, lite0), LAYER)
        act = both.before if r.relu == "before" else both.after
        assert torch.allclose(r.activations, act[torch.arange(2), r.channels].mean(dim=(1, 2)), rtol=1e-4, atol=1e-5)
    assert float(after.activations.min()) >= 0 and float(after.activations.max()) <= 6  # ReLU6
    _untouched(lite0)


def test_presets_and_fast_mode(monkeypatch):
    monkeypatch.delenv("LABKIT_FAST", raising=False)
    handout = fv.preset_settings("handout")
    assert (handout["steps"], handout["size"], handout["lr"], handout["param"], handout["objective"]) == (
        30, 224, 0.1, "pixel", "mean_abs")
    assert tuple(handout["transforms"]) == () and tuple(handout["regularizers"]) == ()
    quality = fv.preset_settings("quality")
    monkeypatch.setenv("LABKIT_FAST", "1")
    fast = fv.preset_settings("quality")
    assert fast["steps"] < quality["steps"] and fast["size"] <= quality["size"]
    assert fv.preset_settings("handout")["steps"] < 30


def test_explicit_arguments_override_the_preset(lite0):
    r = fv.visualize(lite0, LAYER, [1], preset="handout", steps=3, size=40, lr=0.02, objective="mean",
                     param="fft", octaves=2, octave_scale=1.5, progress=False, snapshot_every=1)
    assert r.settings["steps"] == 3 and r.settings["lr"] == 0.02 and r.objective == "mean"
    assert r.settings["param"].startswith("fft")
    assert r.images.shape[-1] == 60  # second octave: 40 * 1.5
    assert [s for s, _ in r.snapshots] == list(range(1, 7))
    assert r.snapshots[2][1].shape[-1] == 40 and r.snapshots[3][1].shape[-1] == 60


def test_start_from_a_photo_keeps_it_recognisable(lite0):
    photo = to_tensor01("cat", 64, interpolation="bicubic")
    r = fv.visualize(lite0, LAYER, [1, 63], start="cat", size=64, steps=5, lr=0.01, preset="quality",
                     progress=False)
    other = to_tensor01("rocket", 64, interpolation="bicubic")
    for img in r.images:
        corr = np.corrcoef(img.flatten().numpy(), photo.flatten().numpy())[0, 1]
        assert corr > 0.9
        assert corr > np.corrcoef(img.flatten().numpy(), other.flatten().numpy())[0, 1]
    assert not torch.allclose(r.images, photo.expand(2, -1, -1, -1), atol=1e-3)  # but it did change


def test_schneider_normalized_step_and_penalties_work(lite0):
    start = fv.visualize(lite0, LAYER, [63], preset="handout", steps=1, size=48, lr=1e-6, progress=False)
    ascent = fv.visualize(lite0, LAYER, [63], preset="handout", optimizer="normalized", lr=0.05, steps=8, size=48,
                          progress=False)
    assert float(ascent.activations[0]) > 2 * float(start.activations[0])
    smooth = fv.visualize(lite0, LAYER, [63], preset="handout", optimizer="normalized", lr=0.05, steps=8, size=48,
                          regularizers=[fv.scharr_edges(2000.0), fv.blur_every(2, sigma=1.0)], progress=False)

    def edges(x):
        return fv.regularizers.scharr_gradients(x).pow(2).mean().item()

    assert edges(smooth.images) < 0.5 * edges(ascent.images)
    with pytest.raises(ValueError, match="adam, normalized"):
        fv.visualize(lite0, LAYER, [63], optimizer="sgd", steps=1, size=32, progress=False)
    with pytest.raises(TypeError, match="regulariser"):
        fv.visualize(lite0, LAYER, [63], regularizers=[0.1], steps=1, size=32, progress=False)


# --------------------------------------------------------------------------- parts


def _state(acts, channels, images=None, model=None):
    images = torch.rand(len(channels), 3, 8, 8) if images is None else images
    return fv.StepState(acts={(None, None): acts}, channels=torch.tensor(channels), images=images, logits=None,
                        model=model)


def test_objectives_compose_by_adding_and_scaling():
    acts = torch.randn(2, 4, 5, 5)
    s = _state(acts, [3, 1])
    mean = torch.stack([acts[0, 3].mean(), acts[1, 1].mean()])
    mean_abs = torch.stack([acts[0, 3].abs().mean(), acts[1, 1].abs().mean()])
    centre = torch.stack([acts[0, 3, 2, 2], acts[1, 1, 2, 2]])
    combo = fv.mean() + 2 * fv.neuron() - fv.mean_abs() * 0.5
    assert torch.allclose(combo(s), mean + 2 * centre - 0.5 * mean_abs)
    assert torch.allclose((-fv.mean())(s), -mean)
    assert torch.allclose(sum([fv.mean(), fv.center()])(s), mean + centre)
    assert torch.allclose(fv.mean(channel=0)(s), acts[:, 0].mean(dim=(1, 2)))
    assert fv.as_objective("center").name == "neuron"
    with pytest.raises(TypeError):
        fv.mean() + 1.5


def test_diversity_penalises_look_alikes():
    same = torch.rand(1, 4, 5, 5).expand(3, -1, -1, -1)
    assert torch.allclose(fv.diversity(2.0)(_state(same, [0, 1, 2])), torch.full((3,), -2.0), atol=1e-5)
    apart = torch.zeros(2, 2, 3, 3)
    apart[0, 0] = 1.0
    apart[1, 1] = 1.0  # disjoint channels: orthogonal gram matrices
    assert torch.allclose(fv.diversity(1.0)(_state(apart, [0, 1])), torch.zeros(2))
    assert fv.diversity().couples_batch and not fv.mean().couples_batch


def test_fft_and_pixel_parameterisations(lite0):
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    x = torch.rand(2, 3, 20, 17, generator=torch.Generator().manual_seed(3)) * 0.9 + 0.05
    for spec in (fv.fft(), fv.fft(decorrelate=False), fv.pixel(), fv.pixel(sigmoid=True)):
        p = spec.build(2, (20, 17), gens=gens, model=lite0, device="cpu", init01=x)
        assert torch.allclose(p(), x, atol=1e-4), spec  # set_images is the exact inverse
    noise = fv.fft().build(2, (16, 16), gens=gens, model=lite0, device="cpu")()
    assert noise.shape == (2, 3, 16, 16) and (noise - 0.5).abs().max() < 0.05  # lucid starts near grey
    pix = fv.pixel().build(2, (16, 16), gens=gens, model=lite0, device="cpu")
    start = pix().detach()
    assert 150 / 255 - 1e-6 <= float(start.min()) and float(start.max()) <= 180 / 255 + 1e-6
    with torch.no_grad():
        pix.parameters()[0].add_(100.0)
    pix.project()
    assert torch.allclose(pix(), torch.ones(2, 3, 16, 16), atol=1e-6)  # clamped to white, not beyond


def test_transforms_draw_randomness_per_image():
    x = torch.rand(3, 3, 24, 24, generator=torch.Generator().manual_seed(0))
    seq = fv.Compose(fv.standard_transforms())

    def gens(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    batched = seq(x, gens([5, 6, 7]))
    assert batched.shape == x.shape  # one resampling at the image's own size
    assert fv.Compose(fv.lucent_transforms())(x, gens([5, 6, 7])).shape == (3, 3, 48, 48)  # lucent pads by 12
    for i, s in enumerate([5, 6, 7]):
        assert torch.allclose(seq(x[i:i + 1], gens([s]))[0], batched[i], atol=1e-6)
    assert not torch.allclose(batched[0], seq(x[:1], gens([8]))[0])
    shifted = fv.Jitter(3)(x, gens([1]))  # whole-pixel shifts keep the pixel values
    assert torch.equal(torch.sort(shifted.flatten())[0], torch.sort(x[:1].flatten())[0])
    rotated = fv.RandomRotate([90])(x, gens([0, 0, 0]))
    assert torch.allclose(rotated[:, :, 4:-4, 4:-4], torch.rot90(x, 1, dims=(2, 3))[:, :, 4:-4, 4:-4], atol=1e-5) or \
        torch.allclose(rotated[:, :, 4:-4, 4:-4], torch.rot90(x, -1, dims=(2, 3))[:, :, 4:-4, 4:-4], atol=1e-5)


def test_random_affine_matches_exact_shifts_rotations_and_zooms():
    x = torch.rand(2, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    gens = [torch.Generator().manual_seed(s) for s in (3, 4)]
    shifted = fv.RandomAffine([1.0], [0], shift=5, fill=0.25)(x, gens)
    for i, s in enumerate((3, 4)):  # the same draws as the transform: scale, angle, then (dy, dx)
        g = torch.Generator().manual_seed(s)
        torch.randint(1, (1,), generator=g), torch.randint(1, (1,), generator=g)
        dy, dx = (int(v) for v in torch.randint(-5, 6, (2,), generator=g))
        want = torch.full_like(x[i], 0.25)  # an exact whole-pixel shift, grey where nothing comes in
        want[:, max(dy, 0):20 + min(dy, 0), max(dx, 0):20 + min(dx, 0)] = \
            x[i][:, max(-dy, 0):20 + min(-dy, 0), max(-dx, 0):20 + min(-dx, 0)]
        assert torch.allclose(shifted[i], want, atol=1e-5), (dy, dx)
    turned = fv.RandomAffine([1.0], [90], shift=0)(x, gens)
    assert torch.allclose(turned, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5) or \
        torch.allclose(turned, torch.rot90(x, -1, dims=(2, 3)), atol=1e-5)
    zoomed = fv.RandomAffine([1.25], [0], shift=0)(x, gens)  # the separate zoom, inside the borders
    assert torch.allclose(zoomed[..., 3:-3, 3:-3], fv.RandomScale([1.25])(x, gens)[..., 3:-3, 3:-3], atol=1e-5)
    x.requires_grad_(True)
    fv.RandomAffine([0.9, 1.1], range(-10, 11), shift=12)(x, gens).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="shift"):
        fv.RandomAffine([1.0], [0], shift=-1)


def test_regularizers_match_independent_formulas():
    from scipy.ndimage import correlate

    x = torch.rand(2, 3, 12, 10, generator=torch.Generator().manual_seed(0))
    s = _state(torch.zeros(2, 1, 1, 1), [0, 0], images=x)
    tv = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1) + (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
    assert torch.allclose(fv.total_variation(0.3)(s), -0.3 * tv)
    kernel = np.array([[3, 0, -3], [10, 0, -10], [3, 0, -3]], dtype=np.float64) / 32
    g = fv.regularizers.scharr_gradients(x).double().numpy()  # [N,2,3,H,W]
    for n in range(2):
        for c in range(3):
            img = x[n, c].double().numpy()
            assert np.allclose(g[n, 0, c], correlate(img, kernel, mode="nearest"), atol=1e-6)
            assert np.allclose(g[n, 1, c], correlate(img, kernel.T, mode="nearest"), atol=1e-6)
    ramp = torch.arange(8.0).mul(0.1).expand(1, 3, 8, 8)  # brightness rises 0.1 per pixel to the right
    edge = fv.regularizers.scharr_gradients(ramp)[0, :, 0]
    assert torch.allclose(edge[0, :, 1:-1].abs(), torch.full((8, 6), 0.1)) and float(edge[1].abs().max()) < 1e-6
    flat = _state(torch.zeros(1, 1, 1, 1), [0], images=torch.full((1, 3, 8, 8), 0.5))
    assert float(fv.scharr_edges(5.0)(flat)) == 0 and float(fv.total_variation(1.0)(flat)) == 0
    blurred = fv.regularizers.gaussian_blur(x, 1.0)
    assert torch.allclose(blurred.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=0.05) and blurred.std() < x.std()


# --------------------------------------------------------------------------- related tools


def test_dataset_examples_rank_the_shipped_photos(lite0):
    photos = sample_images()
    ex = fv.dataset_examples(lite0, LAYER, 63, photos, k=3, batch_size=5, progress=False)
    names = list(photos.values())
    # independent check: one truncated forward per photo, strongest position of the channel
    scores = []
    for path in names:
        with torch.no_grad():
            scores.append(float(activations(lite0, preprocess(path, lite0), LAYER)[0, 63].max()))
    assert torch.allclose(ex.all_scores, torch.tensor(scores), rtol=1e-4, atol=1e-4)
    assert ex.indices == list(np.argsort(scores)[::-1][:3])
    assert ex.sources == [str(names[i]) for i in ex.indices]
    assert ex.receptive_field == 67 and ex.images.shape == (3, 3, 224, 224)
    for (t, l, b, r), crop, (y, x) in zip(ex.boxes, ex.crops, ex.positions):
        assert crop.shape == (3, b - t, r - l) and max(b - t, r - l) <= 67
        cy, cx = (y + 0.5) * 224 / 28, (x + 0.5) * 224 / 28  # 28x28 feature map
        assert t <= cy <= b and l <= cx <= r
    _untouched(lite0)


@pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")
def test_fgsm_matches_captum(lite0):
    from captum.robust import FGSM

    x = preprocess(["cat", "dog"], lite0, size=96)
    r = fv.fgsm(lite0, x, target=None, eps=2 / 255)
    with torch.no_grad():
        labels = lite0(x).argmax(dim=1)
    # captum ascends the loss; ours descends the label's logit, so the loss is minus that logit
    attack = FGSM(lite0, loss_func=lambda out, t: -out.gather(1, t[:, None]).squeeze(1), lower_bound=-1.0,
                  upper_bound=1.0)  # lite0 normalises [0,1] to [-1,1]
    attack.zero_thresh = 0.0
    reference = attack.perturb(x.clone(), epsilon=2 * (2 / 255), target=labels)  # std 0.5: eps doubles
    assert torch.allclose(r.x_adv, reference, atol=1e-5)
    assert torch.equal(r.target, labels) and float(r.linf.max()) <= 2 / 255 + 1e-6
    _untouched(lite0)


# --------------------------------------------------------------------------- plots and CLI


def test_figures(lite0, handout):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from labkit import plot

    figs = [plot.visualization_grid(handout), plot.filter_grid(handout.images, titles=["a", "b", "c"], ncols=2),
            plot.snapshot_strip(handout.snapshots, index=1),
            plot.before_after_relu(handout.images, handout.images, FILTERS, layer=LAYER)]
    ex = fv.dataset_examples(lite0, LAYER, 63, ["cat", "dog"], k=2, progress=False)
    figs.append(plot.dataset_examples_figure(ex, visualization=handout.images[2]))
    assert all(isinstance(f, Figure) for f in figs)
    assert len(figs[1].axes) == 4 and figs[1].axes[0].get_title() == "a"
    assert figs[0].axes[0].get_title() == handout.titles()[0] == f"{LAYER} #{FILTERS[0]}"
    with pytest.raises(ValueError, match="titles"):
        plot.filter_grid(handout.images, titles=["a"])
    for f in figs:
        plt.close(f)


def test_cli_writes_a_png_and_refuses_to_overwrite(tmp_path, capsys):
    from PIL import Image

    from labkit.cli import main

    out = tmp_path / "fv.png"
    args = ["featurevis", "--model", "efficientnet_lite0", "--layer", LAYER, "--filters", "1", "63",
            "--steps", "2", "--size", "32", "--octaves", "2", "--outscale", "1.5", "--sharpness", "5",
            "--start", "cat", "--quiet", "-o", str(out)]
    assert main(args) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (2 * 48 + 2, 48)  # two 48 px images, 2 px gap
    data = out.read_bytes()
    assert main(args) == 2 and out.read_bytes() == data
    assert "already exists" in capsys.readouterr().err
    assert main(args + ["--force", "--seed", "3", "--preset", "handout", "--relu", "after"]) == 0
    assert out.read_bytes() != data
    assert main(["featurevis", "--model", "efficientnet_lite0", "--layer", LAYER, "--filters", "999",
                 "--steps", "1", "--quiet", "-o", str(tmp_path / "x.png")]) == 2
    assert "240 channels" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- the loop's fast path


def test_fast_copy_reproduces_the_model_and_leaves_it_alone(lite0):
    from labkit.featurevis.fastpath import Pointwise, inference_copy

    x = preprocess(["cat", "bee"], lite0, size=96)
    want = activations(lite0, x, "blocks.3.1.bn1")
    before = {k: v.clone() for k, v in lite0.state_dict().items()}
    copy = inference_copy(lite0, stop_layer="blocks.3.1.bn1", channels_last=True)
    assert copy.copied and len(copy.folded) > 10 and "blocks.3.1.bn1" in copy.folded
    assert any(isinstance(m, Pointwise) for m in copy.model.modules())
    with torch.no_grad():
        got = activations(copy.model, x.contiguous(memory_format=torch.channels_last), "blocks.3.1.bn1")
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))
    # layers after the stop point are shared with the original, not copied
    assert copy.model.classifier.weight is lite0.classifier.weight
    assert all(torch.equal(v, lite0.state_dict()[k]) for k, v in before.items())
    # a conv whose own output is read keeps its batch norm apart
    kept = inference_copy(lite0, stop_layer=LAYER, hooked_outputs=[LAYER])
    assert "blocks.3.0.bn1" not in kept.folded and "blocks.2.1.bn1" in kept.folded
    _untouched(lite0)


@pytest.mark.parametrize("channels_last", [False, True])
def test_same_depthwise_matches_timm_same_padding_values_and_gradients(channels_last):
    from timm.layers import Conv2dSame

    from labkit.featurevis.fastpath import SameDepthwise

    torch.manual_seed(0)
    for kernel, stride in ((3, 2), (5, 2), (3, 1), (4, 2)):
        conv = Conv2dSame(6, 6, kernel, stride=stride, groups=6, bias=True).eval()
        fast = SameDepthwise(conv)
        for h, w in ((16, 16), (15, 17), (16, 13), (9, 10)):  # both parities: the two sides' pads differ or not
            x = torch.randn(2, 6, h, w)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            xs = [x.clone().requires_grad_(True) for _ in range(2)]
            want, got = conv(xs[0]), fast(xs[1])
            assert got.shape == want.shape, (kernel, stride, h, w)
            assert torch.allclose(got, want, atol=1e-5), (kernel, stride, h, w)
            g = torch.randn_like(want)
            want.backward(g), got.backward(g)
            assert torch.allclose(xs[1].grad, xs[0].grad, atol=1e-5), (kernel, stride, h, w)
    with torch.no_grad():  # a changed weight is used, not a kernel cached from the old one
        fast.weight.mul_(-2)
        conv.weight.mul_(-2)
        x = torch.randn(1, 6, 15, 16)
        assert torch.allclose(fast(x), conv(x), atol=1e-5)


def test_fast_copy_runs_lite0s_strided_depthwise_convolutions_without_padding_copies(lite0):
    from labkit.featurevis.fastpath import SameDepthwise, inference_copy

    copy = inference_copy(lite0, stop_layer="blocks.3.1.bn1", channels_last=True)
    replaced = [n for n, m in copy.model.named_modules() if isinstance(m, SameDepthwise)]
    assert replaced == ["blocks.1.0.conv_dw", "blocks.2.0.conv_dw", "blocks.3.0.conv_dw"]  # beyond the stop: not copied
    assert type(lite0.blocks[1][0].conv_dw).__name__ == "Conv2dSame"  # the original keeps timm's module
    kept = inference_copy(lite0, stop_layer="blocks.3.1.bn1", channels_last=True, unpad_same=False)
    assert not any(isinstance(m, SameDepthwise) for m in kept.model.modules())
    x = preprocess(["cat"], lite0, size=99)  # an odd size: symmetric and one-sided pads both occur
    with torch.no_grad():
        want = activations(lite0, x, "blocks.3.1.bn1")
        got = activations(copy.model, x.contiguous(memory_format=torch.channels_last), "blocks.3.1.bn1")
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4 * float(want.abs().max()))


def test_speed_settings_change_speed_not_results(lite0):
    kw = dict(preset="handout", steps=6, size=48, seed=0, progress=False)
    ref = fv.visualize(lite0, LAYER, [1, 63, 7], fast=False, channels_last=False, batch_size=None, **kw)
    for speed in (dict(batch_size=1), dict(batch_size=2, channels_last=True), dict(batch_size=None, channels_last=False)):
        r = fv.visualize(lite0, LAYER, [1, 63, 7], **speed, **kw)
        assert torch.allclose(r.images, ref.images, atol=2e-3), speed
        assert torch.allclose(r.activations, ref.activations, rtol=1e-3), speed
    assert r.settings["folded"] > 0 and ref.settings["folded"] == 0
    _untouched(lite0)


def test_render_is_the_one_loop_and_takes_any_objective(lite0):
    # an objective on an explicit layer and channel, no "layer being visualised"
    obj = fv.mean("blocks.2.0.conv_pw", channel=3) + fv.total_variation(0.01)  # a penalty: negative score
    r = fv.render(lite0, obj, param="pixel", transforms=[fv.Jitter(2)], lr=0.05, steps=4, size=40, n=2,
                  seed=1, progress=False)
    assert isinstance(r, fv.RenderResult) and r.images.shape == (2, 3, 40, 40) and len(r.history) == 4
    with torch.no_grad():
        act = activations(lite0, normalize(r.images, lite0), "blocks.2.0.conv_pw")[:, 3].mean(dim=(1, 2))
    tv = fv.total_variation(0.01)(_state(torch.zeros(2, 1, 1, 1), [0, 1], images=r.images))
    assert torch.allclose(r.scores, act + tv, rtol=1e-4, atol=1e-5)  # scores: the objective, measured again
    with pytest.raises(ValueError, match="adam, normalized"):
        fv.render(lite0, obj, optimizer="sgd", n=1, steps=1, size=16)
    with pytest.raises(ValueError, match="bf16"):
        fv.render(lite0, obj, autocast="int8", n=1, steps=1, size=16)
    with pytest.raises(ValueError, match="no layer was given"):
        fv.render(lite0, fv.mean(), n=1, steps=1, size=16)
    _untouched(lite0)
