"""The course handouts' example photos, as shipped photos with their target classes.

Course material, not library: the Duke saliency lab names three example images and the class to
explain in each. labkit ships the photos (``labkit.photos``); this module says which ones the
handout means. ``labkit`` never imports this module.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, NamedTuple

from labkit.photos import sample_images
from labkit.scores import class_index

__all__ = ["DukeExample", "DUKE_EXAMPLES", "duke_examples"]

#: (sample photo name, ImageNet class name) of the Duke saliency lab's examples, in the lab's order.
DUKE_EXAMPLES = (("chameleon", "agama"), ("dog_and_cat", "German shepherd"), ("bee", "bee"))


class DukeExample(NamedTuple):
    """One example image of the Duke saliency lab: ``(name, path, target)``, target an ImageNet index."""

    name: str
    path: Path
    target: int


def duke_examples() -> List[DukeExample]:
    """The three examples of the Duke saliency lab, in the lab's order.

    0. ``chameleon`` (the reptile, in place of the handout's king snake), target "agama" (42):
       the photo shows an oriental garden lizard, which is an agamid;
    1. ``dog_and_cat``, target "German shepherd" (235);
    2. ``bee``, target "bee" (309).

    Returns:
        list of :class:`DukeExample` ``(name, path, target)`` tuples.

    Raises:
        FileNotFoundError: the shipped photos are missing (see ``labkit.photos.images_dir``).
    """
    paths = sample_images()
    return [DukeExample(name, paths[name], class_index(label)) for name, label in DUKE_EXAMPLES]
