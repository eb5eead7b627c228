"""labkit.scores: the one target parser and the one input gradient."""
import numpy as np
import pytest
import torch

from labkit import scores
from labkit.models import imagenet_class_names, load_model, model_device


@pytest.fixture(scope="module")
def model():
    return load_model("efficientnet_lite0")


def test_model_device_parameters_buffers_and_empty():
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.BatchNorm2d(2).requires_grad_(False)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")


def test_class_list_is_torchvisions():
    from torchvision.models import ResNet18_Weights

    names = imagenet_class_names()
    assert names == list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"]) and len(names) == 1000
    names.append("x")  # a copy: callers cannot change the shared list
    assert len(imagenet_class_names()) == 1000


@pytest.mark.parametrize("target, expected", [
    (281, [281, 281]), ("tabby", [281, 281]), ("TABBY", [281, 281]), ("281", [281, 281]),
    ([1, "tabby"], [1, 281]), (torch.tensor(5), [5, 5]), (torch.tensor([3, 4]), [3, 4]), (np.array([7, 8]), [7, 8]),
    ("German shepherd", [235, 235]), ("german-shepherd", [235, 235]),
])
def test_resolve_targets_forms(model, target, expected):
    t = scores.resolve_targets(model, target, 2)
    assert t.dtype == torch.long and t.tolist() == expected and t.device == model_device(model)
    names = imagenet_class_names()
    assert names[281] == "tabby" and names[235] == "German shepherd" and names[1] == "goldfish"


def test_resolve_targets_errors(model):
    with pytest.raises(ValueError, match="Close matches: 'tabby'"):
        scores.resolve_targets(model, "tabyy", 1)
    with pytest.raises(IndexError, match="0..999"):
        scores.resolve_targets(model, 1000, 1)
    with pytest.raises(IndexError, match="0..999"):
        scores.resolve_targets(model, torch.tensor([0, -1]), 2)
    with pytest.raises(ValueError, match="3 entries but the batch has 2"):
        scores.resolve_targets(model, [1, 2, 3], 2)
    for bad in (True, 1.5, torch.tensor([1.0]), [1, 2.0], None):
        with pytest.raises(TypeError):
            scores.resolve_targets(model, bad, 1)


def test_input_gradient_matches_autograd_and_leaves_x(model):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    before = x.clone()
    grad = scores.input_gradient(model, x, [281, "goldfish"])
    assert torch.equal(x, before) and not x.requires_grad and not grad.requires_grad
    # independent reference: one image at a time, plain backward
    for i, cls in enumerate([281, 1]):
        xi = x[i:i + 1].clone().requires_grad_(True)
        model(xi)[0, cls].backward()
        torch.testing.assert_close(grad[i], xi.grad[0], rtol=1e-4, atol=1e-6)
