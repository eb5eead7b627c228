"""Feature visualisation: what a filter responds to, found by optimising the input image.

Composable parts, lucent-style:

* :mod:`~labkit.featurevis.objectives`: what to maximise (``mean``, ``mean_abs``, ``neuron``,
  ``class_logit``, ``diversity``; add and scale them);
* :mod:`~labkit.featurevis.param`: how images are parameterised (``pixel``, ``fft``);
* :mod:`~labkit.featurevis.transforms`: random augmentations (``Jitter``, ``RandomScale``, ...);
* :mod:`~labkit.featurevis.regularizers`: priors (``total_variation``, ``l2``, ``scharr_edges``,
  ``color_penalty``, ``blur_every``, ``weight_decay``);
* :func:`visualize`: the optimisation loop with presets ("quality", "handout"), octaves, photo starts;
* related tools: :func:`dataset_examples`, :func:`invert` (model inversion), :func:`fgsm` and
  :func:`targeted_attack` (adversarial images).

Example::

    from labkit import featurevis as fv
    result = fv.visualize(model, "features.10", [1, 3, 15, 63, 255], preset="handout")
    result.show()
"""
from . import objectives, param, regularizers, transforms  # noqa: F401
from .attacks import AttackResult, fgsm, targeted_attack
from .core import PRESETS, FeatureVisResult, image_grid, preset_settings, save_image, visualize
from .dataset import DatasetExamples, dataset_examples
from .inversion import InversionResult, invert
from .objectives import Objective, StepState, as_objective, center, class_logit, diversity, mean, mean_abs, neuron
from .param import FFTImage, ImageParam, PixelImage, as_param, fft, pixel
from .regularizers import ImageOp, blur_every, color_penalty, l2, scharr_edges, total_variation, weight_decay
from .transforms import Compose, Jitter, Pad, RandomRotate, RandomScale, standard_transforms

__all__ = [
    "visualize", "FeatureVisResult", "PRESETS", "preset_settings", "image_grid", "save_image",
    "Objective", "StepState", "as_objective", "mean", "mean_abs", "neuron", "center", "class_logit", "diversity",
    "ImageParam", "PixelImage", "FFTImage", "pixel", "fft", "as_param",
    "Compose", "Pad", "Jitter", "RandomScale", "RandomRotate", "standard_transforms",
    "ImageOp", "l2", "total_variation", "scharr_edges", "color_penalty", "blur_every", "weight_decay",
    "dataset_examples", "DatasetExamples", "invert", "InversionResult", "fgsm", "targeted_attack", "AttackResult",
]
