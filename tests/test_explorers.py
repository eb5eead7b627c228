"""The lab explorers (course.explorers) without a browser: controls, lazy computing, caching, the
static picture where no widget frontend runs, and the numbers they draw, on the bundled real model.

The browser side (JupyterLab renders them, a control change changes the picture) is
tests/test_browser_explorers.py.
"""
import base64
import io
import math

import pytest
import torch
from PIL import Image
from torch import nn

from course.examples import duke_examples
from course.explorers import widget_frontend
from course.explorers.lab1 import METHODS, SaliencyExplorer
from course.explorers.lab2 import FeatureVisExplorer
from course.explorers.lab3 import ReluExplorer, rectifier_range, relu_pairs
from labkit import images
from labkit.layers import hook_count

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _decoded(png: bytes):
    picture = Image.open(io.BytesIO(png))
    picture.load()
    return picture


def _assert_static(explorer):
    """No frontend: the display is only a picture (+ text), and it is a real, non-blank PNG."""
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {"image/png", "text/plain"}, sorted(bundle)
    picture = _decoded(base64.b64decode(bundle["image/png"]))
    assert picture.width > 200 and picture.height > 100
    colours = picture.convert("L").getextrema()
    assert colours[1] - colours[0] > 50, "the picture is blank"
    return bundle


def test_no_widget_frontend_outside_a_kernel():
    assert widget_frontend() is False


# --------------------------------------------------------------------------- Lab 1


@pytest.fixture(scope="module")
def saliency_explorer(lite0):
    duke = {e.name: e.target for e in duke_examples()}
    return SaliencyExplorer(lite0, ["bee", "dog_and_cat"], extra_targets=duke, smoothgrad_samples=2,
                            occlusion=dict(window=112, stride=56), live=False)


def test_saliency_explorer_computes_lazily_and_caches(saliency_explorer, lite0):
    ex = saliency_explorer
    assert ex.computed == 0, "nothing may be computed before the explorer is shown"
    bundle = _assert_static(ex)
    assert "bee" in bundle["text/plain"] and "Grad-CAM" in bundle["text/plain"]
    assert ex.computed == 1
    first = ex.png()
    ex.set(method="vanilla")
    assert ex.computed == 2 and ex.png() != first
    ex.set(opacity=0.9)  # display only: redrawn, not recomputed
    assert ex.computed == 2
    ex.set(method="Grad-CAM", opacity=0.5)
    assert ex.computed == 2 and ex.png() == first, "a setting seen before comes from the cache"
    assert hook_count(lite0) == 0


def test_saliency_explorer_maps_are_labkits(saliency_explorer, lite0):
    from labkit import saliency

    ex = saliency_explorer
    x = images.preprocess(["bee"], lite0)
    target = duke_examples()[2].target
    for method, reference in (("vanilla", saliency.vanilla(lite0, x, target)[0]),
                              ("Grad-CAM", saliency.grad_cam(lite0, x, target)[0])):
        got = ex.result({"photo": "bee", "target": target, "method": method, "opacity": 0.5})
        assert torch.allclose(got, reference.cpu(), rtol=1e-4, atol=1e-6)


def test_saliency_explorer_offers_each_photos_own_classes(saliency_explorer, lite0):
    ex = saliency_explorer
    ex.set(photo="dog_and_cat")
    values = [value for _, value in ex.controls["target"].options]
    with torch.no_grad():
        top = lite0(images.preprocess(["dog_and_cat"], lite0))[0].topk(ex.top).indices.tolist()
    assert values[:ex.top] == top, "the class choices are the model's top classes for this photo, best first"
    german_shepherd = duke_examples()[1].target
    assert german_shepherd in values and ex.controls["target"].value == german_shepherd
    ex.set(method="occlusion")
    _assert_static(ex)
    assert set(ex.controls["method"].options) == set(METHODS)


def test_saliency_explorer_rejects_bad_choices(lite0):
    with pytest.raises(ValueError, match="valid: bee"):
        SaliencyExplorer(lite0, ["bee"], photo="zebra", live=False)
    with pytest.raises(ValueError, match="Grad-CAM"):
        SaliencyExplorer(lite0, ["bee"], method="LRP", live=False)


def test_live_display_carries_the_widget_and_the_picture(lite0):
    ex = SaliencyExplorer(lite0, ["bee"], live=True)
    bundle = ex._repr_mimebundle_()
    assert WIDGET_VIEW in bundle and bundle[WIDGET_VIEW]["model_id"] == ex.widget.model_id
    assert "image/png" in bundle, "HTML/PDF exports without widget state fall back to the picture"
    assert ex.image.value == base64.b64decode(bundle["image/png"]), "the widget shows the same picture"
    ex.controls["method"].value = "vanilla"  # what a click in the browser does
    assert ex.image.value != base64.b64decode(bundle["image/png"]) and ex.error is None
    assert "vanilla" in ex.status.value


# --------------------------------------------------------------------------- Lab 2


def test_featurevis_explorer(lite0):
    from labkit.featurevis import visualize

    settings = dict(preset="handout", steps=3, size=48, seed=0)
    ex = FeatureVisExplorer(lite0, ["conv_stem", "blocks.3.0.conv_pw"], settings=settings, live=False)
    assert ex.computed == 0
    _assert_static(ex)
    first = ex.png()
    ex.set(layer="blocks.3.0.conv_pw", channel=200)
    assert ex.computed == 2 and ex.png() != first
    image, activation, _ = ex.result()
    ref = visualize(lite0, "blocks.3.0.conv_pw", [200], progress=False, **settings)
    assert torch.allclose(image, ref.images[0], atol=1e-5) and math.isclose(activation, float(ref.activations[0]),
                                                                            rel_tol=1e-4)
    ex.set(layer="conv_stem")  # 32 channels: the channel box follows the layer
    assert ex.controls["channel"].max == 31 and ex.controls["channel"].value == 31
    ex.set(channel=0)
    assert ex.computed == 3 and ex.png() == first, "channel 0 of conv_stem was cached"
    assert hook_count(lite0) == 0
    with pytest.raises(IndexError, match="0..31"):
        FeatureVisExplorer(lite0, ["conv_stem"], channel=32, live=False)
    with pytest.raises(ValueError, match="controls choose"):
        FeatureVisExplorer(lite0, ["conv_stem"], settings=dict(progress=True), live=False)


# --------------------------------------------------------------------------- Lab 3


def test_rectifier_range():
    assert rectifier_range(nn.ReLU()) == (0.0, math.inf)
    assert rectifier_range(nn.ReLU(inplace=True)) == (0.0, math.inf)
    assert rectifier_range(nn.ReLU6()) == (0.0, 6.0)
    assert rectifier_range(nn.Hardtanh(-1.0, 2.0)) == (-1.0, 2.0)
    with pytest.raises(ValueError, match="nn.ReLU6"):
        rectifier_range(nn.SiLU())


def test_relu_pairs(lite0, vgg16_random):
    pairs = relu_pairs(lite0)
    assert pairs["conv_stem"] == "bn1.act" and pairs["conv_head"] == "bn2.act"
    assert all(isinstance(lite0.get_submodule(a), nn.ReLU6) for a in pairs.values())
    assert "blocks.0.0.conv_pw" not in pairs, "a projection conv has no non-linearity after it"
    vgg = relu_pairs(vgg16_random)
    assert vgg["features.0"] == "features.1" and vgg["features.28"] == "features.29" and len(vgg) == 13


def _independent_pre_post(model, x, act_name):
    """Input and output of the non-linearity, by a forward pre-hook and a hook of our own."""
    act, store = model.get_submodule(act_name), {}
    handles = [act.register_forward_pre_hook(lambda m, a: store.__setitem__("pre", a[0].clone())),
               act.register_forward_hook(lambda m, a, out: store.__setitem__("post", out.clone()))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return store["pre"][0], store["post"][0]


def test_relu_explorer(lite0):
    ex = ReluExplorer(lite0, ["dog", "bee"], layers=["conv_stem", "conv_head"], live=False)
    assert ex.computed == 1, "one pass to choose the initial channel"
    pre, post = ex.result()
    c = ex.controls["channel"].value
    positive = float((pre[c] > 0).float().mean())
    assert 0.2 < positive < 0.8, f"the initial channel should respond with both signs, {positive:.0%} > 0"
    _assert_static(ex)
    assert ex.computed == 1
    want_pre, want_post = _independent_pre_post(lite0, images.preprocess(["dog"], lite0), "bn1.act")
    assert torch.allclose(pre, want_pre) and torch.allclose(post, want_post)
    assert torch.equal(post, pre.clamp(0, 6)), "Lite0's ReLU6: the floor 0 and the cap 6"
    first = ex.png()
    ex.set(layer="conv_head")
    assert ex.controls["channel"].max == 1279 and ex.computed == 2 and ex.png() != first
    ex.set(photo="bee")
    assert ex.computed == 3
    ex.set(photo="dog", layer="conv_stem")
    assert ex.computed == 3 and ex.png() == first
    assert hook_count(lite0) == 0
    with pytest.raises(ValueError, match="conv_stem"):
        ReluExplorer(lite0, ["dog"], layers=["blocks.0.0.conv_pw"], live=False)


# --------------------------------------------------------------------------- executed, then exported


@pytest.mark.slow
def test_executed_notebook_and_its_report_show_the_picture(tmp_path):
    """nbclient (what nbconvert --execute and nbgrader use) has no widget frontend: the explorer's
    output is a plain picture, and the HTML report shows it."""
    import nbformat
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    from labkit import report

    nb = new_notebook(cells=[new_code_cell(
        "from labkit.models import load_model\n"
        "from course.explorers.lab3 import ReluExplorer\n"
        "model = load_model('efficientnet_lite0', device='cpu')\n"
        "ReluExplorer(model, ['dog'], layers=['conv_stem'])")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    shown = [o for o in outputs if o.output_type in ("execute_result", "display_data")]
    assert len(shown) == 1 and "image/png" in shown[0].data and WIDGET_VIEW not in shown[0].data
    assert "ReluExplorer: conv_stem channel" in shown[0].data["text/plain"]
    path = tmp_path / "explorer.ipynb"
    nbformat.write(nb, str(path))
    html = report.render_html(nbformat.read(str(path), as_version=4), name=path.name)
    assert shown[0].data["image/png"].strip()[:200] in html.replace("\n", "")
