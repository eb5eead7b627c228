"""Interactive explorers for the labs (ipywidgets), ungraded.

Each lab shows one below the graded work it extends:

* :class:`course.explorers.lab1.SaliencyExplorer` -- photo x class x method, the map over the photo;
* :class:`course.explorers.lab2.FeatureVisExplorer` -- layer x channel, the feature visualisation on demand;
* :class:`course.explorers.lab3.ReluExplorer` -- conv/non-linearity pair, before/after maps and histograms.

They compute lazily, cache, and leave a static picture of their current setting where no widget
frontend runs (see :mod:`course.explorers._common`). Import the lab's module, not this package's
names: ``from course.explorers.lab1 import SaliencyExplorer`` (each pulls in only what it needs).
"""
from course.explorers._common import Explorer, widget_frontend

__all__ = ["Explorer", "widget_frontend"]
