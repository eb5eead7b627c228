"""Check a submitted notebook against the gradebook before it is graded, and repair a copy of it.

nbgrader's own sanitising (``OverwriteCells``) puts back the gradebook's source of every *locked* cell that
is still in the notebook, but a *deleted* graded cell simply is not graded (and its ``add_missing_cells``
option fails on our labs, whose graded cells follow locked markdown cells). So before autograding, on the
scratch copy only:

* cells of the gradebook (by ``grade_id``) missing from the submission are put back where they belong
  (after the nearest earlier gradebook cell still present), from the gradebook's source;
* locked cells whose checksum differs from the gradebook's (edited tests, edited instructions), cells that
  changed type or lost their lock, duplicated ids and graded cells unknown to the gradebook are reported.

Everything is returned as a list of flags that ends up in the grade report.
"""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import nbformat
from nbgrader import utils as nbutils


class UnreadableSubmission(ValueError):
    """The file is not a notebook (empty, not JSON, not nbformat 4)."""


@dataclass
class SourceCell:
    """One gradebook cell: what the instructor released (hidden tests included)."""
    name: str
    cell_type: str
    source: str
    locked: bool
    checksum: Optional[str]
    points: Optional[float] = None  # graded cells only
    solution: bool = False
    task: bool = False
    release_checksum: Optional[str] = None  # the checksum of the released cell (hidden tests removed)


@dataclass
class Check:
    flags: List[str] = field(default_factory=list)
    restored: List[str] = field(default_factory=list)
    tampered: List[str] = field(default_factory=list)

    def as_dict(self) -> Dict:
        return {"flags": self.flags, "restored": self.restored, "tampered": self.tampered}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_cells(db_url: str, notebook: str, assignment: str) -> List[SourceCell]:
    """The gradebook's cells of one notebook, in notebook order (the order nbgrader stored them in)."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url) as gb:
        nb = gb.find_notebook(notebook, assignment)
        points = {g.name: float(g.max_score) for g in nb.grade_cells}
        solutions = {s.name for s in nb.solution_cells}
        tasks = {t.name for t in getattr(nb, "task_cells", [])}
        cells = [SourceCell(c.name, c.cell_type, c.source or "", bool(c.locked), c.checksum, points.get(c.name),
                            c.name in solutions, c.name in tasks) for c in nb.source_cells]
    for cell in cells:
        cell.release_checksum = _release_checksum(cell)
    return cells


def _release_checksum(src: "SourceCell") -> Optional[str]:
    """What nbgrader's generate_assignment computed for the student version of the cell."""
    from nbgrader.preprocessors import ClearHiddenTests

    cell = _new_cell(src)
    try:
        ClearHiddenTests(enforce_metadata=False)._remove_hidden_test_region(cell)
    except RuntimeError:  # unbalanced markers: the gradebook checksum is the only reference
        return src.checksum
    return _checksum(cell)


def read_submission(path: Path, max_mb: float = 200.0) -> nbformat.NotebookNode:
    """The notebook at ``path``; raises UnreadableSubmission with the reason."""
    size = path.stat().st_size
    if size == 0:
        raise UnreadableSubmission("the file is empty")
    if size > max_mb * 1e6:
        raise UnreadableSubmission(f"the file is {size / 1e6:.0f} MB, over the {max_mb:g} MB limit")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableSubmission(f"not a notebook: invalid JSON ({err})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list) or raw.get("nbformat") != 4:
        raise UnreadableSubmission("not a notebook: no nbformat-4 cell list")
    try:
        nb = nbformat.reads(json.dumps(raw), as_version=4)
    except Exception as err:
        raise UnreadableSubmission(f"not a notebook: {type(err).__name__}: {err}") from None
    for i, cell in enumerate(nb.cells):
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise UnreadableSubmission(f"not a notebook: cell {i} has no valid cell_type")
        if not isinstance(cell.get("source", ""), str):
            raise UnreadableSubmission(f"not a notebook: cell {i} has an invalid source")
    return nb


def _grade_id(cell) -> Optional[str]:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) else None


def _new_cell(src: SourceCell) -> nbformat.NotebookNode:
    meta = {"grade": src.points is not None and not src.task, "grade_id": src.name, "locked": src.locked,
            "schema_version": 3, "solution": src.solution, "task": src.task}
    if src.points is not None:
        meta["points"] = src.points
    if src.checksum:
        meta["checksum"] = src.checksum
    if src.cell_type == "code":
        cell = nbformat.v4.new_code_cell(src.source)
    else:
        cell = nbformat.v4.new_markdown_cell(src.source)
    cell.metadata["nbgrader"] = meta
    if src.locked:
        cell.metadata.update({"editable": False, "deletable": False})
    return cell


def _checksum(cell) -> Optional[str]:
    try:
        return nbutils.compute_checksum(cell)
    except Exception:  # metadata broken beyond computing (e.g. points removed)
        return None


def check_and_repair(nb: nbformat.NotebookNode, cells: List[SourceCell]) -> Check:
    """Compare ``nb`` (a submission, modified in place) with the gradebook cells; put back missing ones."""
    result = Check()
    by_name = {c.name: c for c in cells}
    seen: Dict[str, int] = {}
    for cell in nb.cells:
        gid = _grade_id(cell)
        if gid is None:
            continue
        seen[gid] = seen.get(gid, 0) + 1
        meta = cell.metadata.nbgrader
        src = by_name.get(gid)
        if src is None:
            if meta.get("grade"):
                result.flags.append(f"graded cell {gid!r} is not in the gradebook (not graded)")
            continue
        changed = []
        if cell.cell_type != src.cell_type:
            changed.append(f"type {src.cell_type}->{cell.cell_type}")
        if bool(meta.get("locked")) != src.locked:
            changed.append("lock removed" if src.locked else "lock added")
        if src.points is not None and not src.solution:
            try:
                if float(meta.get("points")) != src.points:
                    changed.append(f"points {src.points:g}->{meta.get('points')}")
            except (TypeError, ValueError):
                changed.append("points removed")
        if src.locked and cell.cell_type == src.cell_type and _checksum(cell) not in (src.checksum,
                                                                                      src.release_checksum):
            changed.append("content edited")
        if changed:
            result.tampered.append(gid)
            kind = "test cell" if src.points is not None and not src.solution else "locked cell"
            result.flags.append(f"{kind} {gid!r} was changed ({', '.join(changed)}): the gradebook version is used")
    for gid, count in seen.items():
        if count > 1:
            result.flags.append(f"cell id {gid!r} appears {count} times: only the first is treated as {gid!r}")
    # put back the gradebook cells the submission lost, after the nearest earlier one still present
    present = set(seen)
    for i, src in enumerate(cells):
        if src.name in present or src.task:
            continue
        position = 0
        for prev in reversed(cells[:i]):
            if prev.name in present:
                idx = next(j for j, c in enumerate(nb.cells) if _grade_id(c) == prev.name)
                position = idx + 1
                break
        nb.cells.insert(position, _new_cell(src))
        present.add(src.name)
        result.restored.append(src.name)
        if src.points is not None and not src.solution:
            what = "test cell"
        elif src.solution:
            what = "answer cell" if src.cell_type == "markdown" else "solution cell"
        else:
            what = "locked cell"
        if src.cell_type == "code" or src.points is not None:
            result.flags.append(f"{what} {src.name!r} was deleted: restored from the gradebook")
    return result


def prepare_copy(path: Path, cells: List[SourceCell], *, max_mb: float = 200.0) -> Check:
    """Check and repair the (scratch) notebook at ``path`` in place. Raises UnreadableSubmission."""
    nb = read_submission(path, max_mb)
    original = copy.deepcopy(nb)
    result = check_and_repair(nb, cells)
    if nb != original:
        nbformat.write(nb, str(path))
    return result
