"""Feature visualisation: what a channel responds to, found by optimising the input image.

Composable parts, lucent-style, and one loop that runs them:

* :func:`render`: the optimisation loop (parameterisation -> transforms -> truncated forward ->
  objective -> step) that everything below calls;
* :mod:`~labkit.featurevis.objectives`: what to maximise (``mean``, ``mean_abs``, ``neuron``,
  ``class_logit``, ``diversity``; add and scale them);
* :mod:`~labkit.featurevis.param`: how images are parameterised (``pixel``, ``fft``);
* :mod:`~labkit.featurevis.transforms`: random augmentations (``RandomAffine``, ``Jitter``, ``RandomScale``, ...);
* :mod:`~labkit.featurevis.regularizers`: priors (``total_variation``, ``l2``, ``scharr_edges``,
  ``color_penalty``, ``blur_every``, ``weight_decay``);
* :func:`visualize` (channels of a layer, with presets "quality" and "handout", octaves, photo
  starts), :func:`class_visualization`, :func:`invert` (model inversion): thin callers of :func:`render`;
* related tools: :func:`dataset_examples`, :func:`fgsm` and :func:`targeted_attack` (adversarial
  images), :func:`gram` (style statistics).

Figures are in :mod:`labkit.plot.featurevis` (``labkit.plot.visualization_grid(result)``).

Example::

    from labkit import featurevis as fv
    result = fv.visualize(model, "features.10", [1, 3, 15, 63, 255], preset="handout")
    labkit.plot.visualization_grid(result)
"""
from . import fastpath, objectives, param, regularizers, transforms  # noqa: F401
from .attacks import AttackResult, fgsm, targeted_attack
from .classvis import ClassVisResult, class_visualization
from .core import PRESETS, FeatureVisResult, image_grid, load_start_image, preset_settings, save_image, visualize
from .dataset import DatasetExamples, dataset_examples
from .inversion import InversionResult, invert
from .objectives import Objective, StepState, as_objective, center, class_logit, diversity, mean, mean_abs, neuron
from .param import FFTImage, ImageParam, PixelImage, as_param, fft, pixel
from .regularizers import ImageOp, blur_every, color_penalty, l2, scharr_edges, total_variation, weight_decay
from .render import RenderResult, render, sample_generators
from .style import gram
from .transforms import (Compose, Jitter, Pad, RandomAffine, RandomRotate, RandomScale, lucent_transforms,
                         standard_transforms)

__all__ = [
    "render", "RenderResult", "sample_generators",
    "visualize", "FeatureVisResult", "PRESETS", "preset_settings", "image_grid", "save_image", "load_start_image",
    "class_visualization", "ClassVisResult", "invert", "InversionResult", "gram",
    "Objective", "StepState", "as_objective", "mean", "mean_abs", "neuron", "center", "class_logit", "diversity",
    "ImageParam", "PixelImage", "FFTImage", "pixel", "fft", "as_param",
    "Compose", "Pad", "Jitter", "RandomScale", "RandomRotate", "RandomAffine", "standard_transforms",
    "lucent_transforms",
    "ImageOp", "l2", "total_variation", "scharr_edges", "color_penalty", "blur_every", "weight_decay",
    "dataset_examples", "DatasetExamples", "fgsm", "targeted_attack", "AttackResult",
]
