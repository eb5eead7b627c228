"""Build the labelled photo set: ``data/images/labelled/*.jpg`` and ``data/images/labels.csv``.

Called by ``data/make_images.py`` (run that one). The photos and their classes are listed in
``data/labelled_photos.py``; this module reads each from its package, checks its licence,
resizes it (short side at most :data:`SHORT_SIDE` px, LANCZOS), saves it as JPEG quality
:data:`QUALITY` without metadata, and returns the rows for ``ATTRIBUTION.md``.

``labels.csv`` has one row per photo: ``file`` (relative to ``data/images/``), ``class_index``
(ImageNet-1k, torchvision's order) and ``class_name``.
"""
from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Dict, List

from PIL import Image, ImageOps

from labelled_photos import GCOMPRIS, LOMIRI, SAMPLES, SKIMAGE
from make_images import (GCOMPRIS_RCC, Source, Wheels, _check_licence, _deb_version, gcompris_readme_entry,
                         read_rcc, skimage_photo)

SHORT_SIDE = 320
QUALITY = 85
LOMIRI_PACKAGE = "lomiri-wallpapers-16.04"
LOMIRI_DIR = Path("/usr/share/backgrounds")
LOMIRI_COPYRIGHT = Path(f"/usr/share/doc/{LOMIRI_PACKAGE}/copyright")
SUBDIR = "labelled"
LABELS_CSV = "labels.csv"
INDEPENDENT_CHECK = "explore_world_animals"  # kept out of the labelled set on purpose


@dataclass
class Row:
    """One labelled photo: where it is (relative to ``data/images``), its class and its source."""

    file: str
    class_index: int
    class_name: str
    src: Source
    how: str


def _classes() -> List[str]:
    from torchvision.models import VGG16_Weights  # the same list as labkit.models.imagenet_class_names

    return list(VGG16_Weights.IMAGENET1K_V1.meta["categories"])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


_RCC: Dict[str, Dict[str, bytes]] = {}


def gcompris_resource_photo(activity: str, inner: str) -> Source:
    """A photo of a GCompris activity, with author/licence from the nearest README that lists it."""
    if activity == INDEPENDENT_CHECK:
        raise SystemExit(f"{activity} stays an independent check; do not add its photos to the labelled set")
    if activity not in _RCC:
        _RCC[activity] = read_rcc(GCOMPRIS_RCC / f"{activity}.rcc")
    files = _RCC[activity]
    root = f"/gcompris/src/activities/{activity}/resource"
    full = f"{root}/{inner}"
    folder = PurePosixPath(full).parent
    meta = None
    while meta is None:
        readme = files.get(f"{folder}/README")
        if readme is not None:
            try:
                meta = gcompris_readme_entry(readme.decode("utf-8"), full[len(str(folder)) + 1:])
            except KeyError:
                pass
        if meta is None and str(folder) == root:
            raise SystemExit(f"no README lists {full}")
        folder = folder.parent
    return Source(f"Debian gcompris-qt-data {_deb_version('gcompris-qt-data')}", f"{GCOMPRIS_RCC}/{activity}.rcc:{full}",
                  meta["author"], meta["licence"], meta["url"], Image.open(io.BytesIO(files[full])),
                  "author/licence from the README of its resource folder"
                  + (f"; GCompris' changes to the original: {meta['comment']}" if meta.get("comment") else ""))


def lomiri_photo(name: str) -> Source:
    """A wallpaper of lomiri-wallpapers-16.04, with author/licence from the package's copyright file."""
    text = LOMIRI_COPYRIGHT.read_text(encoding="utf-8")
    for block in re.split(r"\n\s*\n", text):
        if re.search(rf"^Files:.*/{re.escape(name)}\s*$", block, re.M):
            fields = dict(re.findall(r"^(Copyright|License):\s*(.+)$", block, re.M))
            return Source(f"Debian {LOMIRI_PACKAGE} {_deb_version(LOMIRI_PACKAGE)}", str(LOMIRI_DIR / name),
                          fields.get("Copyright", "?").strip(), fields.get("License", "unknown").strip(), "",
                          Image.open(LOMIRI_DIR / name), f"author/licence from `{LOMIRI_COPYRIGHT}`")
    raise SystemExit(f"{name} is not listed in {LOMIRI_COPYRIGHT}")


def fit_short(im: Image.Image, short: int = SHORT_SIDE) -> Image.Image:
    """RGB, EXIF orientation applied, short side <= ``short`` px (LANCZOS; never upscaled)."""
    im = ImageOps.exif_transpose(im).convert("RGB")
    scale = short / min(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return im


def build_labelled(wheels: Wheels, out_dir: Path) -> List[Row]:
    """Write ``labelled/*.jpg`` and ``labels.csv`` under ``out_dir``; return the attribution rows."""
    classes = _classes()
    index = {name: i for i, name in enumerate(classes)}
    sub = out_dir / SUBDIR
    sub.mkdir(parents=True, exist_ok=True)
    for old in sub.glob("*.jpg"):
        old.unlink()
    jobs = [(f"gcompris_{_slug(PurePosixPath(inner).stem)}", lambda a=act, i=inner: gcompris_resource_photo(a, i), cls)
            for act, inner, cls in GCOMPRIS]
    jobs += [(f"lomiri_{_slug(name.split('_by_')[0])}", lambda n=name: lomiri_photo(n), cls) for name, cls in LOMIRI]
    jobs += [(f"skimage_{_slug(func)}", lambda f=fname, g=func: skimage_photo(wheels, f, g), cls)
             for fname, func, cls in SKIMAGE]
    rows: List[Row] = []
    for stem, get, cls in jobs:
        if cls not in index:
            raise SystemExit(f"{cls!r} is not an ImageNet-1k class name")
        src = _check_licence(get())
        out = fit_short(src.image)
        fname = f"{SUBDIR}/{_slug(cls)}__{stem}.jpg"
        if any(r.file == fname for r in rows):
            raise SystemExit(f"two labelled photos would be written to {fname}")
        out.save(out_dir / fname, "JPEG", quality=QUALITY, optimize=True)
        w, h = src.image.size
        how = (f"{w}x{h} resized (LANCZOS) to {out.width}x{out.height}" if out.size != (w, h)
               else f"{w}x{h}, kept at full size") + f"; JPEG q{QUALITY}, metadata dropped"
        rows.append(Row(fname, index[cls], cls, src, how))
        print(f"{fname:60s} {out.width}x{out.height}  {src.licence}", file=sys.stderr)
    with open(out_dir / LABELS_CSV, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "class_index", "class_name"])
        for name, cls in SAMPLES:
            if not (out_dir / name).is_file():
                raise SystemExit(f"sample photo {name} missing from {out_dir}")
            writer.writerow([name, index[cls], cls])
        for row in rows:
            writer.writerow([row.file, row.class_index, row.class_name])
    return rows


def attribution_lines(rows: List[Row]) -> List[str]:
    """The ``ATTRIBUTION.md`` section for the labelled photos (same columns as the sample table)."""
    n_classes = len({r.class_name for r in rows} | {cls for _, cls in SAMPLES})
    lines = [
        "## Labelled photos (`labkit.images.labelled_images()`)",
        "",
        f"`labels.csv` lists {len(rows) + len(SAMPLES)} photos of {n_classes} ImageNet classes: the {len(rows)} files",
        f"below (short side at most {SHORT_SIDE} px, JPEG quality {QUALITY}, no metadata) and {len(SAMPLES)} sample photos",
        f"from the table above ({', '.join(f'`{n}`' for n, _ in SAMPLES)}). Each class was assigned by looking at",
        "the photo; the model's guesses were a hint only. GCompris' `explore_world_animals` is not used here (it stays",
        "an independent check). Listed in `data/labelled_photos.py`, built by `data/make_labelled.py`.",
        "",
        "| file | ImageNet class (index) | source package | original path | author | licence | original URL | modification |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| `{r.file}` | {r.class_name} ({r.class_index}) | {r.src.package} | `{r.src.path}` | "
                     f"{r.src.author.replace('|', '/')} | {r.src.licence} | {r.src.url or '-'} | {r.how} ({r.src.notes}) |")
    lines.append("")
    return lines
