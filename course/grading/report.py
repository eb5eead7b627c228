"""The grading report: one row per hand-in (status, scores, the sandbox that ran, time, flags), as a CSV,
a JSON per student and a table on the terminal."""
from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import List

from course.grading import gradebook
from course.grading.settings import Settings, read_json


def report_rows(settings: Settings, course_url: str) -> List[dict]:
    """One row per student with a result file, scores read back from the course gradebook."""
    rows = []
    for path in sorted((settings.out / "results").glob("*.json")):
        res = read_json(path)
        if not res:
            continue
        try:
            sc = gradebook.scores(course_url, settings.lab, res["student"])
        except Exception:
            sc = res.get("scores") or {"auto": 0.0, "auto_max": 0.0, "needs_manual": 0}
        rows.append({"student": res["student"], "status": res["status"], "auto": sc["auto"],
                     "auto_max": sc["auto_max"], "needs_manual": sc["needs_manual"],
                     "sandbox": "+".join(res.get("sandbox", [])) or "-", "seconds": res.get("seconds", 0),
                     "reason": res.get("reason", ""), "flags": res.get("flags", []), "cells": sc.get("cells", {})})
    return rows


def write_report(settings: Settings, rows: List[dict]) -> Path:
    path = settings.out / "report.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["student", "lab", "status", "autograded", "autograded_max", "written_to_grade", "sandbox",
                         "seconds", "reason", "flags"])
        for r in rows:
            reason = r["reason"].splitlines()[0] if r["reason"] else ""
            writer.writerow([r["student"], settings.lab, r["status"], f"{r['auto']:g}", f"{r['auto_max']:g}",
                             r["needs_manual"], r["sandbox"], r["seconds"], reason, " | ".join(r["flags"])])
    return path


def print_table(rows: List[dict], file=None) -> None:
    file = file or sys.stdout
    width = max([7] + [len(r["student"]) for r in rows]) + 2
    print(f"\n{'student':<{width}}{'autograded':>12}  {'written':>8}  {'status':<13}flags", file=file)
    for r in rows:
        flags = "; ".join(r["flags"])
        note = (r["reason"].splitlines()[0][:70] if r["reason"] else "")
        extra = " | ".join(x for x in (note, flags) if x)
        print(f"{r['student']:<{width}}{r['auto']:>6g}/{r['auto_max']:<5g}  {r['needs_manual']:>3} todo  "
              f"{r['status']:<13}{extra}", file=file)
