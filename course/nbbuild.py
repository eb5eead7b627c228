"""Build nbgrader source notebooks from plain Python lab scripts (`course/labs/<lab>.py`).

Why: .ipynb JSON is hard to review and edit; the lab scripts are readable and diffable, and
`python -m course build` regenerates `notebooks/<lab>/<lab>.ipynb` (the nbgrader sources,
committed, without outputs). Each lab script defines ``build(nb: LabNotebook) -> None``.

Cell kinds (nbgrader metadata, schema 3):
- ``md`` / ``code``: read-only, locked cells (students cannot break them).
- ``solution``: code the student writes, with ``### BEGIN SOLUTION`` / ``### END SOLUTION``.
- ``tests``: autograded test cell worth ``points``; may contain ``### BEGIN HIDDEN TESTS``.
- ``answer``: manually graded written answer (markdown) worth ``points``.
- ``free``: an unlocked, ungraded code cell (settings, scratch).
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import List, Optional

import nbformat

ROOT = Path(__file__).resolve().parent.parent
LABS_DIR = ROOT / "course" / "labs"
NOTEBOOKS_DIR = ROOT / "notebooks"
LAB_NAMES = ["lab1_saliency", "lab2_filters", "lab3_relu", "lab4_quantization", "lab5_circuits"]


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
'''


class LabNotebook:
    """Accumulates cells with unique nbgrader grade ids."""

    def __init__(self, name: str, title: str):
        self.name = name
        self.title = title
        self.cells: List[nbformat.NotebookNode] = []
        self._ids: set = set()
        self.points = 0.0

    def _meta(self, grade_id: str, *, solution: bool, grade: bool, locked: bool, points: Optional[float] = None):
        if grade_id in self._ids:
            raise ValueError(f"duplicate grade_id {grade_id!r} in {self.name}")
        self._ids.add(grade_id)
        meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                "solution": solution, "task": False}
        if points is not None:
            meta["points"] = points
            self.points += points
        return {"nbgrader": meta}

    def _auto_id(self, prefix: str) -> str:
        return f"{prefix}_{len(self.cells):03d}"

    def md(self, source: str, grade_id: Optional[str] = None) -> None:
        cell = nbformat.v4.new_markdown_cell(_dedent(source))
        cell.metadata.update(self._meta(grade_id or self._auto_id("md"), solution=False, grade=False, locked=True))
        cell.metadata.update({"editable": False, "deletable": False})
        self.cells.append(cell)

    def code(self, source: str, grade_id: Optional[str] = None, tags: Optional[list] = None) -> None:
        cell = nbformat.v4.new_code_cell(_dedent(source))
        cell.metadata.update(self._meta(grade_id or self._auto_id("code"), solution=False, grade=False, locked=True))
        cell.metadata.update({"editable": False, "deletable": False})
        if tags:
            cell.metadata["tags"] = list(tags)
        self.cells.append(cell)

    def free(self, source: str, grade_id: Optional[str] = None, tags: Optional[list] = None) -> None:
        cell = nbformat.v4.new_code_cell(_dedent(source))
        if tags:
            cell.metadata["tags"] = list(tags)
        self.cells.append(cell)

    def solution(self, source: str, grade_id: str) -> None:
        src = _dedent(source)
        if "### BEGIN SOLUTION" not in src:
            raise ValueError(f"solution cell {grade_id} needs ### BEGIN SOLUTION / ### END SOLUTION")
        cell = nbformat.v4.new_code_cell(src)
        cell.metadata.update(self._meta(grade_id, solution=True, grade=False, locked=False))
        self.cells.append(cell)

    def tests(self, source: str, grade_id: str, points: float) -> None:
        cell = nbformat.v4.new_code_cell(_dedent(source))
        cell.metadata.update(self._meta(grade_id, solution=False, grade=True, locked=True, points=points))
        cell.metadata.update({"editable": False, "deletable": False})
        self.cells.append(cell)

    def answer(self, grade_id: str, points: float, source: str = "YOUR ANSWER HERE") -> None:
        cell = nbformat.v4.new_markdown_cell(_dedent(source))
        cell.metadata.update(self._meta(grade_id, solution=True, grade=True, locked=False, points=points))
        self.cells.append(cell)

    def colab_setup(self) -> None:
        """The first code cell of every lab: installs labkit on Colab, does nothing anywhere else."""
        self.code(COLAB_SETUP, grade_id="colab_setup")

    def notebook(self) -> nbformat.NotebookNode:
        nb = nbformat.v4.new_notebook()
        # Deterministic cell ids (nbformat draws random ones): rebuilding an unchanged lab gives the
        # same file, so git diffs stay clean and `course/assignments.py build --check` can compare.
        for i, cell in enumerate(self.cells):
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            cell.id = (gid or f"cell-{i:03d}").replace(".", "-")[:64]
        nb.cells = self.cells
        nb.metadata.update({
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "labkit": {"lab": self.name, "title": self.title, "points": self.points},
        })
        return nb


def _dedent(source: str) -> str:
    import textwrap

    return textwrap.dedent(source).strip("\n")


def build_lab(name: str) -> Path:
    """Run ``course/labs/<name>.py`` and write ``notebooks/<name>/<name>.ipynb``."""
    script = LABS_DIR / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"labkit_lab_{name}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    nb = LabNotebook(name, module.TITLE)
    module.build(nb)
    out = NOTEBOOKS_DIR / name / f"{name}.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    notebook = nb.notebook()
    nbformat.validate(notebook)
    tmp = out.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, str(tmp))
    tmp.replace(out)
    return out


def main(argv: Optional[list] = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or [n for n in LAB_NAMES if (LABS_DIR / f"{n}.py").exists()]
    for name in names:
        print(f"built {build_lab(name).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
