"""labkit: a lab-course kit for teaching how convolutional networks see.

``labkit.load_model`` loads a registry model; the topic modules (``labkit.saliency``,
``labkit.featurevis``, ``labkit.quantize``, ``labkit.circuits``, ``labkit.plot``,
``labkit.report``, ``labkit.images``, ``labkit.layers``, ``labkit.scores``) import on first use.
Nothing in labkit imports the course (``course`` builds on labkit, never the other way).
"""
import importlib

from labkit.models import load_model, model_names

__version__ = "0.1.0"
__all__ = ["load_model", "model_names", "__version__"]

_SUBMODULES = {"models", "layers", "scores", "images", "saliency", "featurevis", "quantize", "circuits", "plot",
               "report", "cli", "notebook"}


def __getattr__(name):
    # Lazy: `import labkit` stays fast, and `labkit.saliency` still works without its own import.
    if name in _SUBMODULES:
        return importlib.import_module(f"labkit.{name}")
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _SUBMODULES)
