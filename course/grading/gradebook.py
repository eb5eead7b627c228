"""The gradebook side of grading: a student-free template, merging scores, zeros, reading scores back.

Only the merge step writes the course gradebook, one student at a time under a file lock
(``grades/.gradebook.lock``), committed as each student finishes.
"""
from __future__ import annotations

import datetime as _dt
import shutil
from pathlib import Path
from typing import Optional

from course.grading.settings import Settings, db_path, write_json


def lock(settings: Settings):
    """The course gradebook's file lock (one writer at a time, also across cluster jobs)."""
    from filelock import FileLock

    settings.out.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(settings.out.parent / ".gradebook.lock"), timeout=600)


def build_template(db_url: str, template: Path) -> Path:
    """A copy of the course gradebook with every student removed (assignments, cells and checksums only)."""
    import sqlite3

    from nbgrader.api import Gradebook

    template.parent.mkdir(parents=True, exist_ok=True)
    if template.exists():
        template.unlink()
    src = sqlite3.connect(str(db_path(db_url)))
    dst = sqlite3.connect(str(template))
    with dst:
        src.backup(dst)  # a consistent snapshot even if someone is writing
    src.close()
    dst.close()
    with Gradebook("sqlite:///" + str(template)) as gb:
        for student in list(gb.students):
            gb.remove_student(student.id)
    return template


def student_record(db_url: str, lab: str, student: str) -> dict:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            sub = gb.find_submission(lab, student)
        except MissingEntry:
            return {}
        return {"extension": sub.extension.total_seconds() if sub.extension else None}


def copy_grades(scratch_url: str, course_url: str, lab: str, student: str, *, flag: bool = False) -> None:
    """Autograder scores, comments, timestamp and late penalty of one submission: scratch -> course gradebook.

    Manual scores already in the course gradebook stay; like nbgrader, a cell with a manual score or without
    an automatic one needs (re)review.
    """
    from nbgrader.api import Gradebook

    with Gradebook(scratch_url) as sg, Gradebook(course_url) as gb:
        ssub = sg.find_submission(lab, student)
        gb.update_or_create_student(student)
        gb.update_or_create_submission(lab, student, timestamp=ssub.timestamp)
        for snb in ssub.notebooks:
            rnb = gb.find_submission_notebook(snb.name, lab, student)
            rnb.late_submission_penalty = snb.late_submission_penalty
            rnb.flagged = bool(flag)
            for sgrade in snb.grades:
                grade = gb.find_grade(sgrade.name, snb.name, lab, student)
                grade.auto_score = sgrade.auto_score
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            for scomment in snb.comments:
                comment = gb.find_comment(scomment.name, snb.name, lab, student)
                comment.auto_comment = scomment.auto_comment
        gb.db.commit()


def record_zero(course_url: str, lab: str, student: str, reason: str, timestamp: Optional[str] = None) -> None:
    """Zero for every cell of a submission that could not be graded (manual scores stay)."""
    from nbgrader.api import Gradebook

    with Gradebook(course_url) as gb:
        gb.update_or_create_student(student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        sub = gb.update_or_create_submission(lab, student, **kwargs)
        for nb in sub.notebooks:
            nb.flagged = True
            for grade in nb.grades:
                grade.auto_score = 0.0
                grade.needs_manual_grade = grade.manual_score is not None
            for comment in nb.comments:
                comment.auto_comment = f"Not graded: {reason}"
        gb.db.commit()


def scores(db_url: str, lab: str, student: str) -> dict:
    """Per-cell autograder scores of one submission: {notebook: {cell: [auto, max]}} and totals."""
    from nbgrader.api import Gradebook

    cells, auto, auto_max, manual_cells = {}, 0.0, 0.0, 0
    with Gradebook(db_url) as gb:
        sub = gb.find_submission(lab, student)
        for nb in sub.notebooks:
            for grade in nb.grades:
                cells[f"{nb.name}/{grade.name}"] = [grade.auto_score, float(grade.max_score)]
                if grade.cell_type == "code":
                    auto += float(grade.auto_score or 0)
                    auto_max += float(grade.max_score)
                elif grade.needs_manual_grade:
                    manual_cells += 1
    return {"cells": cells, "auto": auto, "auto_max": auto_max, "needs_manual": manual_cells}


# --------------------------------------------------------------------------- merge


def _replace_dir(src: Path, dest: Path) -> None:
    """Put ``src``'s copy at ``dest`` with a rename, so readers never see a half-copied folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.incoming"
    old = dest.parent / f".{dest.name}.old"
    for p in (tmp, old):
        shutil.rmtree(p, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def merge_result(settings: Settings, result: dict, course_url: str) -> dict:
    """Commit one graded scratch copy into the course: gradebook scores, autograded notebook, result JSON."""
    student, lab = result["student"], settings.lab
    scratch = Path(result["scratch"])
    course_autograded = settings.course / "autograded" / student / lab
    with lock(settings):
        if result["status"] in ("unreadable", "ungradable"):
            record_zero(course_url, lab, student, result["reason"] or result["status"], result.get("timestamp"))
            shutil.rmtree(course_autograded, ignore_errors=True)  # no stale notebook for the feedback
            result["scores"] = scores(course_url, lab, student)
        else:
            flagged = bool(result["tampered"] or result["restored"] or result["status"] != "graded")
            copy_grades("sqlite:///" + str(scratch / "gradebook.db"), course_url, lab, student, flag=flagged)
            _replace_dir(scratch / "autograded" / student / lab, course_autograded)
        result["merged_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        write_json(settings.out / "results" / f"{student}.json", result)
    if not settings.keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return result
