"""Figures (matplotlib only; no computation lives here).

One submodule per topic; everything is re-exported here, so ``labkit.plot.overlay(...)`` works.
"""
from .saliency import *  # noqa: F401,F403
from .featurevis import *  # noqa: F401,F403
from .quantize import *  # noqa: F401,F403
from .circuits import *  # noqa: F401,F403
