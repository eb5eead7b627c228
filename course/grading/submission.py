"""One submission, graded in a private scratch course: copy, integrity check, sandboxed autograde.

Nothing in the course is written here (the merge does that, course/grading/gradebook.py). A problem
with the submission never raises: it becomes a status (``unreadable``, ``not_executed``, ``ungradable``);
a problem with the machine or the configuration raises :class:`GradingError`.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from course.grading import gradebook, integrity, isolation
from course.grading.settings import ROOT, GradingError, Settings, read_json, tail


def scratch_config(course: Path, scratch: Path, settings: Settings) -> str:
    """The course's nbgrader_config.py followed by the grading overrides for this scratch course."""
    text = (Path(course) / "nbgrader_config.py").read_text()
    return text + f'''

# ---- appended by course/grading/submission.py: a per-submission scratch course ----
import sys as _grading_sys
_grading_sys.path.insert(0, {str(ROOT)!r})
from course.grading.execution import autograde_preprocessors as _grading_steps
c.CourseDirectory.root = {str(scratch)!r}
c.CourseDirectory.db_url = {"sqlite:///" + str(scratch / "gradebook.db")!r}
c.Autograde.autograde_preprocessors = _grading_steps()
c.Execute.kernel_name = {isolation.SANDBOX_KERNEL!r}
c.Execute.timeout = {int(settings.cell_timeout)}
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = True
c.Execute.startup_timeout = 120
c.SafeExecute.notebook_timeout = {int(settings.notebook_timeout)}
c.SafeExecute.work_dir = {str(scratch / "seed" / "work")!r}
c.SafeExecute.report_file = {str(scratch / "execution.json")!r}
c.ScrubOutputs.max_output_mb = {float(settings.max_output_mb)}
c.ScrubOutputs.report_file = {str(scratch / "scrub.json")!r}
c.KernelManager.transport = "ipc"  # SafeExecute's IPCKernelManager does this too
c.KernelManager.shutdown_wait_time = 2.0
'''


def snapshot(folder: Path) -> Dict[str, str]:
    """sha256 of every regular file under ``folder`` (relative path -> hash)."""
    out = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and not path.is_symlink():
            out[str(path.relative_to(folder))] = integrity.sha256(path)
    return out


def _copy_submission(src: Path, dest: Path) -> List[str]:
    """Regular files and folders only: symlinks could point anywhere the grader can read."""
    skipped = []
    dest.mkdir(parents=True, exist_ok=True)
    for base, dirs, files in os.walk(src):
        rel = Path(base).relative_to(src)
        for name in list(dirs):
            if os.path.islink(os.path.join(base, name)):
                skipped.append(str(rel / name))
                dirs.remove(name)
            else:
                (dest / rel / name).mkdir(exist_ok=True)
        for name in files:
            path = os.path.join(base, name)
            if os.path.islink(path) or not os.path.isfile(path):
                skipped.append(str(rel / name))
                continue
            shutil.copyfile(path, dest / rel / name)
    return skipped


def _timestamp(folder: Path) -> Optional[str]:
    try:
        return (Path(folder) / "timestamp.txt").read_text().strip() or None
    except OSError:
        return None


def grade_submission(settings: Settings, student: str, *, template: Path, course_url: str,
                     notebooks: Sequence[str], extension: Optional[float] = None) -> dict:
    """Grade one student in its own scratch course (nothing in the course is written). Returns the result dict.

    A problem with this submission never raises (it becomes status ``ungradable``); GradingError (a problem
    with the machine or the configuration, which would hit every student) does.
    """
    try:
        return _grade_submission(settings, student, template=template, course_url=course_url, notebooks=notebooks,
                                 extension=extension)
    except GradingError:
        raise
    except Exception as err:
        import traceback

        scratch = settings.scratch / "students" / student
        return {"student": student, "lab": settings.lab, "status": "ungradable", "flags": [], "restored": [],
                "tampered": [], "sandbox": [], "events": [], "scratch": str(scratch), "seconds": 0.0,
                "reason": f"grader error: {type(err).__name__}: {err}", "traceback": traceback.format_exc(),
                "timestamp": _timestamp(settings.course / "submitted" / student / settings.lab),
                "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _grade_submission(settings: Settings, student: str, *, template: Path, course_url: str,
                      notebooks: Sequence[str], extension: Optional[float] = None) -> dict:
    t0 = time.time()
    lab = settings.lab
    scratch = settings.scratch / "students" / student
    original = settings.course / "submitted" / student / lab
    result = {"student": student, "lab": lab, "status": "ungradable", "reason": "", "flags": [], "restored": [],
              "tampered": [], "sandbox": [], "events": [], "scratch": str(scratch),
              "graded_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if scratch.exists():
        isolation.cleanup_stale(scratch)
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    os.chmod(scratch, 0o700)
    (scratch / "state").mkdir(mode=0o700)
    before = snapshot(original)
    result["submission_sha256"] = before
    copy_dir = scratch / "submitted" / student / lab
    skipped = _copy_submission(original, copy_dir)
    if skipped:
        result["flags"].append(f"links/special files not copied: {', '.join(skipped)}")
    result["timestamp"] = _timestamp(copy_dir)

    cells = {}
    for name in notebooks:
        path = copy_dir / f"{name}.ipynb"
        if not path.is_file():
            found = ", ".join(sorted(p.name for p in copy_dir.glob("*.ipynb"))) or "no notebook"
            result["status"], result["reason"] = "unreadable", f"no {name}.ipynb in the submission ({found})"
            break
        try:
            if not cells:
                cells = {n: integrity.source_cells("sqlite:///" + str(template), n, lab) for n in notebooks}
            check = integrity.prepare_copy(path, cells[name], max_mb=settings.max_submission_mb)
        except integrity.UnreadableSubmission as err:
            result["status"], result["reason"] = "unreadable", f"{name}.ipynb: {err}"
            break
        for key in ("flags", "restored", "tampered"):
            result[key] += getattr(check, key)
    else:
        _grade_copy(settings, scratch, student, template, extension, result, course_url)
    after = snapshot(original)
    if after != before:
        result["flags"].append("the submission changed on disk while it was graded (a student re-submitted?)")
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _grade_copy(settings: Settings, scratch: Path, student: str, template: Path, extension: Optional[float],
                result: dict, course_url: str) -> None:
    from nbgrader.api import Gradebook

    lab = settings.lab
    shutil.copyfile(template, scratch / "gradebook.db")
    scratch_url = "sqlite:///" + str(scratch / "gradebook.db")
    if extension:  # late penalties are computed in the scratch course: it needs the student's extension
        with Gradebook(scratch_url) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(lab, student, extension=_dt.timedelta(seconds=extension))
    (scratch / "nbgrader_config.py").write_text(scratch_config(settings.course, scratch, settings))
    runtime = isolation.make_runtime_dir()
    (scratch / "runtime-dir").write_text(str(runtime))  # for cleanup_stale after a killed run
    try:
        isolation.write_sandbox(settings, scratch, runtime, course_url)
        threads = str(settings.threads)  # the trusted evaluation in nbgrader's process: the kernel's share
        env = isolation.scratch_env(scratch, runtime, {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})
        cmd = [sys.executable, "-m", "nbgrader", "autograde", lab, "--student", student, "--force"]
        log = scratch / "nbgrader.log"
        rc, timed_out = isolation.run_limited(cmd, cwd=scratch, env=env, timeout=settings.hard_limit, log=log)
        isolation.kill_sandboxes(scratch / "state")
        autograded = scratch / "autograded" / student / lab
        execution = read_json(scratch / "execution.json", {}) or {}
        result["events"] = execution.get("events", [])
        if rc == 0 and autograded.is_dir() and not timed_out:
            stopped = execution.get("stopped")
            result["status"] = "stopped" if stopped else "graded"
            result["reason"] = stopped or ""
        else:
            why = (f"the hard time limit ({settings.hard_limit} s) was reached" if timed_out
                   else f"nbgrader failed (exit {rc}): {tail(log, 6)}")
            result["reason"] = why
            shutil.rmtree(scratch / "autograded", ignore_errors=True)
            rc2, _ = isolation.run_limited(cmd + ["--SafeExecute.skip_execution=True",
                                        f"--SafeExecute.skip_reason=not executed: {why.splitlines()[0][:200]}"],
                                 cwd=scratch, env=env, timeout=300, log=log)
            result["status"] = "not_executed" if rc2 == 0 and autograded.is_dir() else "ungradable"
        result["sandbox"] = isolation.sandbox_modes(scratch / "state")
        if result["status"] == "graded" and not result["sandbox"]:
            raise GradingError(f"{student}: the kernel did not start through the sandbox launcher "
                               f"(check JUPYTER_PATH / kernel name); stopping")
        scrub = read_json(scratch / "scrub.json", {}) or {}
        if scrub.get("too_large"):
            result["flags"].append("outputs over the size limit removed: " + ", ".join(
                f"{x['cell']} ({x['mb']} MB)" for x in scrub["too_large"]))
        if scrub.get("hidden_tests"):
            cells = ", ".join(sorted(set(scrub["hidden_tests"])))
            result["flags"].append(f"outputs quoting hidden tests removed: {cells}")
        if result["status"] != "ungradable":
            result["scores"] = gradebook.scores(scratch_url, lab, student)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
