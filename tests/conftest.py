"""Shared fixtures: the bundled real model, loaded once per test session; a stand-in grading kernel."""
import os
import sys
import types

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_FAST", "1")


@pytest.fixture(autouse=True)
def _close_widgets():
    """Close the widgets a test made (the explorers') right after it: left for exit, they print a
    traceback after the summary once a later test has imported ipykernel (the report tests do)."""
    yield
    widgets = sys.modules.get("ipywidgets")
    if widgets is not None:
        widgets.Widget.close_all()


@pytest.fixture(scope="session")
def lite0():
    """The offline EfficientNet-Lite0 with real ImageNet weights, on the CPU."""
    from labkit.models import load_model

    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def vgg16_random():
    """VGG16's architecture with random weights (no download): for layer-indexing tests."""
    from labkit.models import load_model

    return load_model("vgg16", pretrained=False, device="cpu")


@pytest.fixture
def kernel(monkeypatch):
    """A stand-in kernel for the grading protocol: a fresh __main__ module; run(code) returns the reply
    text the trusted grader would read (course/grading/wire.py)."""
    from course.grading import wire

    main = types.ModuleType("__main__")
    monkeypatch.setitem(sys.modules, "__main__", main)
    replies = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw=False: replies.append(obj[wire.MIME]))

    def run(code):
        exec(code, main.__dict__)  # noqa: S102 - test stand-in for the kernel
        return replies.pop()

    return main, run
