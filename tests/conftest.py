"""Shared fixtures: the bundled real model, loaded once per test session."""
import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("LABKIT_FAST", "1")


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
