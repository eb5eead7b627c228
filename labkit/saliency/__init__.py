"""Saliency and attribution: which input pixels does a class score depend on?

Every method has one signature, ``method(model, x, target, ...)``:

* ``model``: a classifier returning pre-softmax logits ``[N,C]`` (any :func:`labkit.models.load_model`
  model). It is run in eval mode for the call (the previous train/eval flags are restored); its weights,
  modules and hooks are never changed.
* ``x``: a preprocessed batch ``[N,3,H,W]`` (``labkit.images.preprocess``) on the model's device.
* ``target``: the class to explain: an index or a class name for the whole batch, or one per image
  (list or tensor); the rules are :func:`labkit.scores.resolve_targets`'s, the same everywhere.

The class score is always the pre-softmax logit of ``target``. Maps come back on ``x``'s device,
detached, as float tensors: ``[N,H,W]`` for one value per pixel, ``[N,3,H,W]`` per colour channel.
Each function returns one type.

| function | paper | returns |
|---|---|---|
| :func:`gradient` | - | ``[N,3,H,W]`` signed d score / d x |
| :func:`vanilla` | Simonyan et al. 2014 | ``[N,H,W]`` max over channels of the gradient magnitude |
| :func:`guided_backprop` | Springenberg et al. 2015 | ``[N,3,H,W]`` signed, negative gradients stopped at every ReLU |
| :func:`grad_cam` | Selvaraju et al. 2017 | ``[N,H,W]`` class activation map of a conv layer, upsampled |
| :func:`guided_grad_cam` | Selvaraju et al. 2017 | ``[N,3,H,W]`` guided backprop x Grad-CAM |
| :func:`occlusion` | Zeiler & Fergus 2014 | ``[N,H,W]`` score drop when a patch is covered |
| :func:`smoothgrad` | Smilkov et al. 2017 | ``[N,H,W]`` gradient magnitude averaged over noisy copies |
| :func:`integrated_gradients` | Sundararajan et al. 2017 | :class:`IGResult`: ``[N,3,H,W]`` signed attributions that sum to F(x) - F(baseline), and the error |
| :func:`sanity_check` | Adebayo et al. 2018 | :class:`SanityResult`: rank correlation as weights are randomised top-down |

Memory: SmoothGrad, integrated gradients, occlusion and the sanity check put their many copies
through the model in chunks that fit ``memory_mb`` (default :data:`DEFAULT_MEMORY_MB`, estimated by
:func:`chunk_size` from the layer table); the chunking never changes a result.

The definitions match captum's (the tests cross-check ``Saliency``, ``GuidedBackprop``, ``LayerGradCam``,
``GuidedGradCam``, ``Occlusion`` and ``IntegratedGradients``); the docstrings state the few differences.

Modules: ``gradients`` (gradient, vanilla, guided backprop), ``cam`` (Grad-CAM), ``occlusion``,
``averaged`` (SmoothGrad, integrated gradients), ``sanity`` (sanity check, :data:`METHODS`),
``_common`` (input checks, memory budget).
"""
from ._common import DEFAULT_MEMORY_MB, Target, chunk_size, per_image_bytes
from .averaged import IG_METHODS, IGResult, integrated_gradients, smoothgrad
from .cam import grad_cam, guided_grad_cam
from .gradients import gradient, guided_backprop, guided_relus, vanilla
from .occlusion import occlusion
from .sanity import METHODS, SanityResult, sanity_check

__all__ = [
    "Target",
    "gradient",
    "vanilla",
    "guided_backprop",
    "guided_relus",
    "grad_cam",
    "guided_grad_cam",
    "occlusion",
    "smoothgrad",
    "integrated_gradients",
    "IGResult",
    "IG_METHODS",
    "sanity_check",
    "SanityResult",
    "METHODS",
    "DEFAULT_MEMORY_MB",
    "chunk_size",
    "per_image_bytes",
]
