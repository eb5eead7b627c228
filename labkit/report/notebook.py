"""Reading a notebook and the conventions a report follows: title block and question sections.

Rules (also in ``labkit.report``'s docstring): the lab name comes from metadata ``labkit.title``,
else the first level-1 heading, else ``labkit.lab``, else the file name; the student from metadata
``labkit.student``, else a code-cell assignment ``STUDENT_NAME = "..."`` (or ``STUDENT_NAMES``,
``TEAM_NAME``, ``TEAM_NAMES``). A question cell is a markdown cell whose first line is a level 1-3
heading starting with Question/Exercise/Problem/Assignment/Task/Q<digit>, or tagged ``question``.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Union

STUDENT_VARIABLES = ("STUDENT_NAME", "STUDENT_NAMES", "TEAM_NAME", "TEAM_NAMES")
QUESTION_TAG = "question"
_QUESTION_WORDS = r"(?:question|exercise|problem|assignment|task|q\s*\d)"
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_QUESTION_HEADING = re.compile(r"^ {0,3}(#{1,3})\s+" + _QUESTION_WORDS + r"\b", re.IGNORECASE)

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- reading notebooks


def read_notebook(path: PathLike):
    """Read an ``.ipynb`` file as an nbformat-4 ``NotebookNode``.

    Raises ``FileNotFoundError`` when it is missing and ``ValueError`` when it is not notebook JSON,
    each naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"notebook not found: {path}")
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder, not a notebook file (.ipynb)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a Jupyter notebook: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise ValueError(f"{path} is not a Jupyter notebook: JSON without 'cells'")
    return _as_notebook_node(data, str(path))


def _as_notebook_node(data: dict, name: str):
    import nbformat

    try:
        return nbformat.reads(json.dumps(data), as_version=4)
    except Exception as err:  # nbformat raises several types for malformed notebooks
        raise ValueError(f"{name} is not a readable Jupyter notebook ({err})") from None


# --------------------------------------------------------------------------- title block


@dataclasses.dataclass(frozen=True)
class ReportInfo:
    """What the title block shows: ``lab`` and ``student`` (``""`` when not set), with their sources."""

    lab: str
    student: str
    lab_source: str  # "metadata", "heading" or "filename"
    student_source: str  # "metadata", "STUDENT_NAME" (the variable found) or "not set"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _heading(cell):
    """``(level, text)`` of a markdown cell that starts with an ATX heading, else ``None``."""
    if cell.get("cell_type") != "markdown":
        return None
    match = _HEADING.match(_first_line(_source(cell)))
    return (len(match.group(1)), match.group(2)) if match else None


def _plain(text: str) -> str:
    # Heading text without inline markdown markup, for a title.
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[*_`]+", "", text).strip()


def _student_from_code(nb):
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_source(cell))
        except SyntaxError:  # IPython magics etc.: parse the plain assignment lines alone
            lines = [line for line in _source(cell).splitlines() if re.match(r"[A-Z_]+\s*=", line)]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in STUDENT_VARIABLES:
                    try:
                        value = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    if isinstance(value, (list, tuple)):
                        value = ", ".join(str(v).strip() for v in value if str(v).strip())
                    return str(value).strip(), target.id
    return None


def report_info(nb, fallback_name: str = "notebook") -> ReportInfo:
    """Read the lab name and student name for the title block (rules in the module docstring)."""
    meta = nb.metadata.get("labkit")
    meta = meta if isinstance(meta, dict) else {}
    h1 = next((h for h in map(_heading, nb.cells) if h and h[0] == 1), None)
    if str(meta.get("title", "")).strip():
        lab, lab_source = str(meta["title"]).strip(), "metadata"
    elif h1:
        lab, lab_source = _plain(h1[1]), "heading"
    elif str(meta.get("lab", "")).strip():
        lab, lab_source = str(meta["lab"]).strip(), "metadata"
    else:
        lab, lab_source = fallback_name, "filename"
    student = meta.get("student", "")
    if isinstance(student, (list, tuple)):
        student = ", ".join(map(str, student))
    if str(student).strip():
        return ReportInfo(lab, str(student).strip(), lab_source, "metadata")
    found = _student_from_code(nb)
    if found and found[0]:
        return ReportInfo(lab, found[0], lab_source, found[1])
    return ReportInfo(lab, "", lab_source, "not set")


# --------------------------------------------------------------------------- questions


def is_question_cell(cell) -> bool:
    """True for a markdown cell that opens a question: a question heading or the ``question`` tag."""
    if cell.get("cell_type") != "markdown":
        return False
    if QUESTION_TAG in (cell.get("metadata", {}).get("tags") or []):
        return True
    return bool(_QUESTION_HEADING.match(_first_line(_source(cell))))


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_autograder_test(cell) -> bool:
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def select_questions(nb):
    """A copy of ``nb`` with only the question sections and the student's nbgrader solution cells.

    A section runs from a question cell up to the next question cell or the next heading of the
    same or a higher level; nbgrader autograder test cells are dropped.
    """
    kept, level = [], None  # level: heading level of the open section; None outside sections
    for cell in nb.cells:
        heading = _heading(cell)
        if is_question_cell(cell):
            level = heading[0] if heading else 6
        elif heading and level is not None and heading[0] <= level:
            level = None
        if _is_autograder_test(cell):
            continue
        if level is not None or _nbgrader(cell).get("solution"):
            kept.append(cell)
    out = copy.deepcopy(nb)
    out.cells = copy.deepcopy(kept)
    return out
