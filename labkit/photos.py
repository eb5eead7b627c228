"""The photos labkit ships in ``data/images/``: named sample photos and a labelled photo set.

* :func:`sample_images`: short name -> path of the 13 sample photos (``"cat"``, ``"dog"``, ...).
* :func:`labelled_images`: ``(path, ImageNet class index)`` pairs, at least 100 photos of at least
  30 classes, each class assigned by looking at the photo (``data/images/labels.csv``).

Sources and licences of every file: ``data/images/ATTRIBUTION.md``; ``data/make_images.py``
rebuilds the folder from the Debian and PyPI packages the photos come from. ``labkit.images``
re-exports everything here.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Dict, List, NamedTuple

__all__ = [
    "SAMPLE_FILES",
    "LABELS_FILE",
    "LabelledImage",
    "images_dir",
    "sample_images",
    "sample_names",
    "labelled_images",
]

#: short name -> file in the photo folder (sources and licences: data/images/ATTRIBUTION.md).
SAMPLE_FILES: Dict[str, str] = {
    "cat": "cat.jpg",  # Chelsea the tabby (scikit-image)
    "coffee": "coffee.jpg",
    "rocket": "rocket.jpg",
    "grace_hopper": "grace_hopper.jpg",
    "china": "china.jpg",
    "flower": "flower.jpg",
    "bee": "bee.jpg",
    "chameleon": "chameleon.jpg",
    "citrus": "citrus.jpg",
    "bridge": "bridge.jpg",
    "dog": "dog.jpg",  # German shepherd (GCompris)
    "cat2": "cat2.jpg",  # kitten with a ball of wool (GCompris)
    "dog_and_cat": "dog_and_cat.jpg",  # dog left, cat right
}

#: The labelled set's index, in the photo folder: columns ``file`` (relative to the folder),
#: ``class_index`` (ImageNet-1k, torchvision's order) and ``class_name``.
LABELS_FILE = "labels.csv"


def images_dir() -> Path:
    """The folder holding the shipped photos.

    ``$LABKIT_DATA`` when set (either the photo folder itself or a folder with an ``images/``
    subfolder), else ``<repository>/data/images`` next to the ``labkit`` package.

    Raises:
        FileNotFoundError: the folder is missing or lacks the photos (says where it looked).
    """
    env = os.environ.get("LABKIT_DATA")
    if env:
        base = Path(env).expanduser()
        candidates = [base / "images", base]
        origin = f"$LABKIT_DATA={env}"
    else:
        candidates = [Path(__file__).resolve().parent.parent / "data" / "images"]
        origin = "the labkit repository"
    probe = SAMPLE_FILES["cat"]
    for folder in candidates:
        if (folder / probe).is_file():
            return folder
    raise FileNotFoundError(
        f"The labkit sample photos were not found in {' or '.join(str(c) for c in candidates)} (from {origin}). "
        "Use a checkout of the labkit repository (the photos are in data/images/), or set LABKIT_DATA to a "
        "folder holding them (rebuild them with `python data/make_images.py`)."
    )


def sample_names() -> List[str]:
    """Short names accepted by ``labkit.images.load_image`` and ``preprocess`` for the shipped photos."""
    return list(SAMPLE_FILES)


def sample_images() -> Dict[str, Path]:
    """Short name -> path of each shipped sample photo (RGB JPEG, at most 512 px on the long side).

    Names: ``cat`` (Chelsea the tabby), ``coffee`` (espresso cup), ``rocket``, ``grace_hopper``,
    ``china`` (a temple), ``flower``, ``bee``, ``chameleon`` (a garden lizard), ``citrus``,
    ``bridge``, ``dog`` (German shepherd), ``cat2`` (kitten) and ``dog_and_cat`` (the two
    side by side, dog left). Sources and licences: ``data/images/ATTRIBUTION.md``.

    Raises:
        FileNotFoundError: the photo folder or one of its files is missing.
    """
    folder = images_dir()
    paths = {name: folder / fname for name, fname in SAMPLE_FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"Sample photos missing from {folder}: {', '.join(missing)}")
    return paths


class LabelledImage(NamedTuple):
    """One photo of the labelled set: ``(path, target)``, target its ImageNet-1k class index (0..999)."""

    path: Path
    target: int


def labelled_images() -> List[LabelledImage]:
    """The labelled photo set: ``(path, ImageNet class index)`` pairs, in the order of ``labels.csv``.

    At least 100 photos of at least 30 ImageNet classes (animals, tools, buildings, household
    objects, landscapes), public domain, CC0 or CC-BY, from Debian and PyPI packages. Each class
    was assigned by looking at the photo; a photo whose subject has no ImageNet-1k class was left
    out. The class name of ``target`` is ``labkit.models.imagenet_class_names()[target]``.
    Photos differ in size (short side at most 320 px, sample photos at most 512 px on the long
    side): batch them with ``labkit.images.preprocess(paths, model)``.

    Returns:
        list of :class:`LabelledImage` ``(path, target)`` named tuples (plain tuples too).

    Raises:
        FileNotFoundError: the photo folder, ``labels.csv`` or a photo it lists is missing.
        ValueError: ``labels.csv`` is malformed (the message names the line).
    """
    folder = images_dir()
    index = folder / LABELS_FILE
    if not index.is_file():
        raise FileNotFoundError(f"{index} is missing; rebuild the photo folder with `python data/make_images.py`.")
    out: List[LabelledImage] = []
    with open(index, newline="", encoding="utf-8") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                path, target = folder / row["file"], int(row["class_index"])
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"{index}:{line}: expected columns file,class_index,class_name ({err})") from None
            if not 0 <= target < 1000:
                raise ValueError(f"{index}:{line}: class_index {target} is not an ImageNet-1k index (0..999)")
            if not path.is_file():
                raise FileNotFoundError(f"{index}:{line} lists {path}, which is missing")
            out.append(LabelledImage(path, target))
    return out
