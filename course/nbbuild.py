"""Build the nbgrader source notebooks from the lab sources, jupytext percent scripts.

Each lab is one script, ``course/labs/<lab>.py``, in jupytext's percent format: plain Python that
editors, linters and duplicate-code checks read, with ``# %%`` cell headers. ``python -m course
build`` turns every script into ``notebooks/<lab>/<lab>.ipynb`` (the nbgrader source notebook,
committed, without outputs); ``python -m course build --check`` only compares.

The script starts with a jupytext YAML header holding the lab's title::

    # ---
    # jupyter:
    #   labkit:
    #     title: 'Lab 3 - ReLU: ...'
    # ---

Cell headers (``key=value`` pairs in jupytext's syntax) and the nbgrader cell (schema 3) each gives:

    # %% [markdown]                                        locked markdown cell
    # %%                                                   locked code cell
    # %% kind="free" tags=["parameters"]                   unlocked, ungraded code (settings, scratch)
    # %% kind="solution" id="vanilla_saliency"             student code, ### BEGIN/END SOLUTION
    # %% kind="tests" id="test_vanilla" points=1           autograded test cell (may hold hidden tests)
    # %% [markdown] kind="answer" id="answer_1a" points=2  written answer, graded by hand
    # %% kind="shared" id="colab_setup"                    locked code cell whose body is filled in
                                                           here, the same in every lab (``SHARED``)

``id`` is the nbgrader ``grade_id`` and the cell id; locked cells without one get
``md_NNN``/``code_NNN`` (NNN: the cell's position), free cells the cell id ``cell-NNN``, so an
unchanged script always gives the same notebook, byte for byte. ``tags`` may be given on locked
and free code cells. IPython magics (``%matplotlib inline``, ``!git ...``) are written commented
out (``# %matplotlib inline``), the way jupytext writes them, so the script stays valid Python.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = ROOT / "course" / "labs"
NOTEBOOKS_DIR = ROOT / "notebooks"
SOURCE_FORMAT = "py:percent"

LABKIT_REPO = "https://github.com/labkit-course/labkit"
COLAB_SETUP = f'''
# Google Colab only: fetch and install labkit. Everywhere else (your laptop, JupyterHub, the
# autograder) this cell does nothing.
import sys

LABKIT_REPO = "{LABKIT_REPO}"
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import os

    if not os.path.exists("/content/labkit"):
        !git clone --depth 1 {LABKIT_REPO} /content/labkit
    %pip install -q -e /content/labkit
    sys.path.insert(0, "/content/labkit")
'''.strip("\n")

# The bodies of ``kind="shared"`` cells, by id: one text for every lab.
SHARED: Dict[str, str] = {"colab_setup": COLAB_SETUP}

KINDS = ("locked", "free", "solution", "tests", "answer", "shared")
_HEADER_KEYS = {"kind", "id", "points", "tags"}
_JUPYTEXT_KEYS = {"lines_to_next_cell", "title"}  # layout hints jupytext adds on reading


class LabSourceError(ValueError):
    """A lab source breaks the cell-header convention; the message names the lab and the cell."""


def lab_names() -> List[str]:
    """Every lab: ``course/labs/<lab>.py`` or a folder ``course/labs/<lab>/`` of parts (not ``_*``), sorted."""
    single = {p.stem for p in LABS_DIR.glob("*.py")}
    folders = {p.name for p in LABS_DIR.iterdir() if p.is_dir() and any(p.glob("*.py"))}
    return sorted(n for n in single | folders if not n.startswith("_"))


def lab_parts(name: str) -> List[Path]:
    """The source files of one lab, in cell order.

    A lab is one jupytext script ``course/labs/<name>.py``, or, when it is longer than a file
    should be, a folder ``course/labs/<name>/`` of scripts read in sorted order (``01_setup.py``,
    ``02_gradients.py``, ...): the first carries the YAML header, the rest are cells only.
    """
    single, folder = LABS_DIR / f"{name}.py", LABS_DIR / name
    if single.is_file():
        return [single]
    parts = sorted(p for p in folder.glob("*.py") if not p.name.startswith("_")) if folder.is_dir() else []
    if not parts:
        raise LabSourceError(f"no lab source {_shown(single)} or {_shown(folder)}/*.py; "
                             f"labs: {', '.join(lab_names()) or 'none'}")
    return parts


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def lab_path(name: str) -> Path:
    """The lab's first source file (the one with the YAML header); raises naming the labs if missing."""
    return lab_parts(name)[0]


def lab_source(name: str) -> str:
    """The whole lab as one jupytext text (its parts joined in order): what linters should read."""
    return "\n".join(p.read_text(encoding="utf-8").rstrip("\n") + "\n" for p in lab_parts(name))


def notebook_path(name: str) -> Path:
    """``notebooks/<name>/<name>.ipynb``."""
    return NOTEBOOKS_DIR / name / f"{name}.ipynb"


def _nbgrader(grade_id: str, *, solution: bool, grade: bool, locked: bool,
              points: Optional[float] = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if points is not None:
        meta["points"] = points
    return meta


def _cell(index: int, cell, lab: str) -> nbformat.NotebookNode:
    """One jupytext cell (its header in ``cell.metadata``) -> the nbgrader cell."""
    header = dict(cell.metadata)
    unknown = set(header) - _HEADER_KEYS - _JUPYTEXT_KEYS
    where = f"{lab}: cell {index} ({cell.cell_type}, {cell.source[:40]!r})"
    if unknown:
        raise LabSourceError(f"{where}: unknown header key(s) {sorted(unknown)}; valid: {sorted(_HEADER_KEYS)}")
    kind = header.get("kind", "locked")
    if kind not in KINDS:
        raise LabSourceError(f"{where}: kind={kind!r}; valid kinds: {', '.join(KINDS)}")
    markdown = cell.cell_type == "markdown"
    allowed = ("locked", "answer") if markdown else ("locked", "free", "solution", "tests", "shared")
    if kind not in allowed:
        raise LabSourceError(f"{where}: a {cell.cell_type} cell's kind is one of {', '.join(allowed)}, not {kind!r}")
    grade_id, points, tags = header.get("id"), header.get("points"), header.get("tags")
    if kind in ("solution", "tests", "answer", "shared") and not grade_id:
        raise LabSourceError(f"{where}: kind={kind!r} needs id=\"...\"")
    if (points is not None) != (kind in ("tests", "answer")):
        raise LabSourceError(f"{where}: points= goes on (and only on) kind=\"tests\" and kind=\"answer\" cells")
    if tags is not None and (markdown or kind not in ("locked", "free")):
        raise LabSourceError(f"{where}: tags= goes on locked or free code cells only")

    source = cell.source
    if kind == "shared":
        if grade_id not in SHARED:
            raise LabSourceError(f"{where}: no shared cell {grade_id!r}; shared cells: {', '.join(SHARED)}")
        if source.strip():
            raise LabSourceError(f"{where}: a shared cell's body comes from course/nbbuild.py; leave it empty")
        source = SHARED[grade_id]
    if kind == "solution" and "### BEGIN SOLUTION" not in source:
        raise LabSourceError(f"{where}: a solution cell needs ### BEGIN SOLUTION / ### END SOLUTION")

    out = nbformat.v4.new_markdown_cell(source) if markdown else nbformat.v4.new_code_cell(source)
    if kind == "free":
        out.id = f"cell-{index:03d}"
    else:
        if kind in ("locked", "shared"):
            gid = grade_id or f"{'md' if markdown else 'code'}_{index:03d}"
            out.metadata["nbgrader"] = _nbgrader(gid, solution=False, grade=False, locked=True)
        elif kind == "solution":
            out.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=False, locked=False)
        elif kind == "tests":
            out.metadata["nbgrader"] = _nbgrader(grade_id, solution=False, grade=True, locked=True, points=points)
        else:  # answer
            out.metadata["nbgrader"] = _nbgrader(grade_id, solution=True, grade=True, locked=False, points=points)
        if out.metadata["nbgrader"]["locked"]:
            out.metadata.update({"editable": False, "deletable": False})
        out.id = out.metadata["nbgrader"]["grade_id"].replace(".", "-")[:64]
    if tags:
        out.metadata["tags"] = list(tags)
    return out


def read_lab(name: str) -> nbformat.NotebookNode:
    """The nbgrader source notebook that ``course/labs/<name>.py`` describes (nothing written)."""
    import jupytext

    text = jupytext.reads(lab_source(name), fmt=SOURCE_FORMAT)
    title = (text.metadata.get("labkit") or {}).get("title")
    if not title:
        raise LabSourceError(f"{name}: the jupytext header needs `labkit: {{title: ...}}`")
    cells = [_cell(i, c, name) for i, c in enumerate(text.cells)]
    ids = [c.metadata["nbgrader"]["grade_id"] for c in cells if "nbgrader" in c.metadata]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise LabSourceError(f"{name}: grade ids used twice: {dup}")
    points = sum((c.metadata["nbgrader"].get("points", 0) for c in cells if "nbgrader" in c.metadata), 0.0)
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata.update({
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "labkit": {"lab": name, "title": title, "points": points},
    })
    nbformat.validate(nb)
    return nbformat.reads(nbformat.writes(nb), as_version=4)  # normalised as a read-back file is


def build_lab(name: str) -> Path:
    """Write ``notebooks/<name>/<name>.ipynb`` from ``course/labs/<name>.py``; returns its path."""
    notebook = read_lab(name)
    out = notebook_path(name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, str(tmp))
    tmp.replace(out)
    return out


def stale_labs(names: Sequence[str] = ()) -> List[str]:
    """Labs whose committed notebook differs from what their source builds (empty: up to date)."""
    stale = []
    for name in names or lab_names():
        path = notebook_path(name)
        if not path.is_file() or nbformat.read(str(path), as_version=4) != read_lab(name):
            stale.append(name)
    return stale


def main(argv: Optional[list] = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or lab_names()
    for name in names:
        print(f"built {build_lab(name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
