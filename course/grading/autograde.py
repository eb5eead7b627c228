"""Grade every submission of one lab safely, in parallel, then feedback, a CSV export and a report.

    python -m course.grading.autograde run --lab LAB [--workers N] [--course DIR]     # what `make autograde` runs
    python -m course.grading.autograde prepare --lab LAB [--scratch DIR]              # probe + template (clusters)
    python -m course.grading.autograde grade --lab LAB --student S [--scratch DIR]    # one student, no merge (clusters)
    python -m course.grading.autograde merge --lab LAB [--scratch DIR]                # merge graded scratch copies
    python -m course.grading.autograde finish --lab LAB                               # feedback + export + table
    python -m course.grading.autograde probe [--course DIR]                           # what the sandbox hides

The grading code, one job per module (docs/GRADING.md has the protocol and the threat model):

* ``settings``: the run's settings and the course's paths;
* ``sandbox`` (the kernel's launcher: bubblewrap) and ``isolation`` (its configuration, the probe);
* ``integrity``: a submission checked and repaired against the gradebook;
* ``submission``: one student in a private scratch course; ``execution`` (nbgrader's Execute made safe),
  ``verdicts`` + ``wire`` + ``forbid`` (test cells evaluated in the trusted grader, never in the kernel),
  ``scrub`` (output limits, no hidden-test quotes);
* ``gradebook``: template, merge, scores; ``report``: the CSV, JSON and table; this module: the commands.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import List, Optional, Sequence

from course.grading import gradebook, isolation, report, sandbox, submission
from course.grading.settings import (ROOT, GradingError, Settings, base_env, course_config, ensure_path, find_students,
                                     notebook_names, read_json, tail, write_json)

MAX_UNGRADABLE_STREAK = 5


def check_scratch_config(settings: Settings) -> None:
    """Load the config a scratch course gets (course config + grading overrides) before grading anyone."""
    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "nbgrader_config.py").write_text(submission.scratch_config(settings.course, Path(tmp), settings))
        try:
            cfg = PyFileConfigLoader("nbgrader_config.py", path=tmp).load_config()
        except Exception as err:
            raise GradingError(f"the grading config does not load: {type(err).__name__}: {err}") from None
    steps = [getattr(x, "__name__", str(x)) for x in cfg.Autograde.autograde_preprocessors]
    if "SafeExecute" not in steps or cfg.Execute.kernel_name != isolation.SANDBOX_KERNEL:
        raise GradingError(f"the grading config does not use the sandboxed executor (steps: {steps})")


# --------------------------------------------------------------------------- commands


def _progress(total: int, quiet: bool):
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="grading", unit="student")
    except ImportError:
        return None


def grade_all(settings: Settings, log=print) -> List[dict]:
    """Grade, merge as each finishes, in ``settings.workers`` parallel processes. Returns the merged results."""
    ensure_path()
    course_id, course_url = course_config(settings.course)
    notebooks = notebook_names(course_url, settings.lab)
    students = settings.students or find_students(settings.course, settings.lab)
    missing = sorted(set(settings.students or []) - set(find_students(settings.course, settings.lab)))
    if missing:
        raise GradingError(f"no submitted/<student>/{settings.lab}/ for: {', '.join(missing)}")
    if not students:
        raise GradingError(f"nothing to grade: no {settings.course}/submitted/<student>/{settings.lab}/")
    settings.scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.scratch, 0o700)
    for stale in (settings.scratch / "students").glob("*/") if (settings.scratch / "students").is_dir() else []:
        isolation.cleanup_stale(stale)  # kernels and socket dirs left by a killed run
    check_scratch_config(settings)
    isolation.check_sandbox(settings, course_url, log)
    with gradebook.lock(settings):
        template = gradebook.build_template(course_url, settings.scratch / "template.db")
        extensions = {s: gradebook.student_record(course_url, settings.lab, s).get("extension") for s in students}
    log(f"Grading {len(students)} submission(s) of {settings.lab} with {settings.workers} worker(s), "
        f"{settings.threads} thread(s) each; limits: {settings.cell_timeout} s/cell, "
        f"{settings.notebook_timeout} s/notebook, {settings.memory_mb} MB.")
    results = []
    bar = _progress(len(students), settings.quiet)
    abort = threading.Event()

    def job(student):
        if abort.is_set():
            return None
        return submission.grade_submission(settings, student, template=template, course_url=course_url, notebooks=notebooks,
                                extension=extensions.get(student))

    streak = []  # consecutive students nbgrader could not even open: a broken setup, not broken students
    try:
        with ThreadPoolExecutor(max_workers=settings.workers) as pool:
            futures = {pool.submit(job, s): s for s in students}
            for fut in as_completed(futures):
                try:
                    res = fut.result()
                except GradingError:
                    abort.set()
                    raise
                if res is None:
                    continue
                results.append(gradebook.merge_result(settings, res, course_url))
                streak = streak + [res] if res["status"] == "ungradable" else []
                if len(streak) >= MAX_UNGRADABLE_STREAK:
                    abort.set()
                    raise GradingError(f"{len(streak)} submissions in a row could not be graded at all; last: "
                                       f"{res['student']}: {res['reason']}\n(check the course setup; the students "
                                       f"graded so far are committed)")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(f"{res['student']}: {res['status']}")
    finally:
        if bar is not None:
            bar.close()
    return sorted(results, key=lambda r: r["student"])


def merge_scratch(settings: Settings, log=print) -> List[dict]:
    """Merge every ``students/<s>/result.json`` left by ``grade`` tasks (a cluster job array) into the course."""
    ensure_path()
    _, course_url = course_config(settings.course)
    merged = []
    for path in sorted((settings.scratch / "students").glob("*/result.json")):
        res = read_json(path)
        if res:
            merged.append(gradebook.merge_result(settings, res, course_url))
            log(f"  merged {res['student']}: {res['status']}")
    return merged


def finish(settings: Settings, log=print) -> List[dict]:
    """Feedback (nbgrader generate_feedback), the CSV export (nbgrader export) and the report table."""
    ensure_path()
    _, course_url = course_config(settings.course)
    env = base_env()
    settings.out.mkdir(parents=True, exist_ok=True)
    log_path = settings.out / "nbgrader.log"
    if settings.feedback and (settings.course / "autograded").is_dir():
        rc, _ = isolation.run_limited([sys.executable, "-m", "nbgrader", "generate_feedback", settings.lab, "--force"],
                            cwd=settings.course, env=env, timeout=3600, log=log_path)
        if rc != 0:
            log(f"WARNING: nbgrader generate_feedback failed (exit {rc}); see {log_path}:\n{tail(log_path, 8)}")
    export = settings.out / "grades.csv"
    rc, _ = isolation.run_limited([sys.executable, "-m", "nbgrader", "export", "--to", str(export),
                         "--assignment", settings.lab], cwd=settings.course, env=env, timeout=600, log=log_path)
    if rc != 0:
        log(f"WARNING: nbgrader export failed (exit {rc}); see {log_path}")
    rows = report.report_rows(settings, course_url)
    path = report.write_report(settings, rows)
    report.print_table(rows)
    weak = sorted({r["sandbox"] for r in rows} - set(isolation.STRONG_MODES) - {"-"})
    if weak:
        log(f"\nWARNING: some kernels ran without isolation (sandbox: {', '.join(weak)}).")
    log(f"\nReport: {path}\nnbgrader export: {export}\nFeedback: {settings.course / 'feedback'}/<student>/"
        f"{settings.lab}/\nAutograded notebooks: {settings.course / 'autograded'}/<student>/{settings.lab}/")
    return rows


def grade_one(settings: Settings, student: str, log=print) -> dict:
    """Cluster task: grade one student into its scratch course and leave ``result.json`` there (no merge)."""
    ensure_path()
    _, course_url = course_config(settings.course)
    notebooks = notebook_names(course_url, settings.lab)
    check_scratch_config(settings)
    template = settings.scratch / "template.db"
    if not template.exists():
        with gradebook.lock(settings):
            if not template.exists():
                gradebook.build_template(course_url, template)
    ext = gradebook.student_record(course_url, settings.lab, student).get("extension")
    res = submission.grade_submission(settings, student, template=template, course_url=course_url, notebooks=notebooks,
                           extension=ext)
    write_json(Path(res["scratch"]) / "result.json", res)
    sc = res.get("scores", {})
    log(f"{student}: {res['status']} {sc.get('auto', 0):g}/{sc.get('auto_max', 0):g}")
    return res


def prepare(settings: Settings, log=print) -> Path:
    """Before a cluster job array: check the sandbox on this node and write the gradebook template once."""
    ensure_path()
    _, course_url = course_config(settings.course)
    notebook_names(course_url, settings.lab)
    settings.scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.scratch, 0o700)
    check_scratch_config(settings)
    isolation.check_sandbox(settings, course_url, log)
    with gradebook.lock(settings):
        template = gradebook.build_template(course_url, settings.scratch / "template.db")
    log(f"Template gradebook: {template}\nStudents: {len(find_students(settings.course, settings.lab))} "
        f"(array indices 0-{max(0, len(find_students(settings.course, settings.lab)) - 1)})")
    return template


def _settings_from(args) -> Settings:
    return Settings(lab=args.lab, course=Path(args.course or ROOT), workers=args.workers,
                    cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout, memory_mb=args.memory_mb,
                    cpu_seconds=args.cpu_seconds, threads=args.threads, sandbox=args.sandbox,
                    require_sandbox=args.require_sandbox, scratch=args.scratch, out=args.out,
                    keep_scratch=args.keep_scratch, students=args.students or None, hide=args.hide, allow=args.allow,
                    max_output_mb=args.max_output_mb, feedback=not args.no_feedback, quiet=args.quiet)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("command", choices=["run", "prepare", "grade", "merge", "finish", "probe"])
    parser.add_argument("--lab", help="assignment name, e.g. lab1_saliency")
    parser.add_argument("--course", help="course root (folder with nbgrader_config.py); default: the repository")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1") or 1))
    parser.add_argument("--student", action="append", dest="students", default=[],
                        help="only these students (repeat); `grade` needs exactly one")
    parser.add_argument("--cell-timeout", type=int, default=int(os.environ.get("LABKIT_CELL_TIMEOUT", "120")))
    parser.add_argument("--notebook-timeout", type=int, default=int(os.environ.get("LABKIT_NOTEBOOK_TIMEOUT", "1200")))
    parser.add_argument("--memory-mb", type=int, default=4096, help="kernel data-segment limit (RLIMIT_DATA)")
    parser.add_argument("--cpu-seconds", type=int, default=0, help="kernel CPU-time limit; 0: from the notebook limit")
    parser.add_argument("--threads", type=int, default=0, help="BLAS/torch threads per kernel; 0: cores // workers")
    parser.add_argument("--sandbox", choices=sandbox.MODES, default=os.environ.get("LABKIT_SANDBOX", "auto"))
    parser.add_argument("--require-sandbox", action="store_true", help="refuse to grade without bubblewrap")
    parser.add_argument("--scratch", type=Path, help="scratch area (default <course>/build/grading/<lab>)")
    parser.add_argument("--out", type=Path, help="report folder (default <course>/grades/<lab>)")
    parser.add_argument("--keep-scratch", action="store_true", help="keep each student's scratch course")
    parser.add_argument("--hide", action="append", default=[], help="another path the kernel must not see")
    parser.add_argument("--allow", action="append", default=[], help="another path the kernel may read")
    parser.add_argument("--max-output-mb", type=float, default=2.0)
    parser.add_argument("--no-feedback", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command != "probe" and not args.lab:
        parser.error("--lab is required")
    args.lab = args.lab or "probe"
    settings = _settings_from(args)
    t0 = time.time()
    try:
        if args.command == "run":
            grade_all(settings)
            finish(settings)
            if not settings.keep_scratch:
                shutil.rmtree(settings.scratch, ignore_errors=True)
        elif args.command == "prepare":
            prepare(settings)
        elif args.command == "grade":
            if len(args.students) != 1:
                parser.error("grade needs exactly one --student")
            settings.keep_scratch = True
            grade_one(settings, args.students[0])
        elif args.command == "merge":
            merge_scratch(settings)
        elif args.command == "finish":
            finish(settings)
        else:
            ensure_path()
            _, url = course_config(settings.course)
            found = isolation.check_sandbox(settings, url)
            print(json.dumps(found, indent=1))
    except GradingError as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1
    print(f"Done in {time.time() - t0:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
