"""Grade every submission of one lab safely, in parallel, and produce feedback, a CSV export and a report.

    python -m course.grading.autograde run --lab LAB [--workers N] [--course DIR]     # what `make autograde` runs
    python -m course.grading.autograde prepare --lab LAB [--scratch DIR]              # probe + template (clusters)
    python -m course.grading.autograde grade --lab LAB --student S [--scratch DIR]    # one student, no merge (clusters)
    python -m course.grading.autograde merge --lab LAB [--scratch DIR]                # merge graded scratch copies
    python -m course.grading.autograde finish --lab LAB                               # feedback + export + table
    python -m course.grading.autograde probe [--course DIR]                           # what the sandbox hides

How one submission is graded (docs/GRADING.md has the threat model):

1. ``submitted/<student>/<lab>/`` is *copied* into a private scratch course
   ``build/grading/<lab>/students/<student>/`` (regular files only; the original is never written) holding
   nothing but that copy, a copy of the gradebook without any student in it, and the course's
   ``nbgrader_config.py`` with grading overrides appended.
2. The copy is checked against the gradebook (``integrity``): unreadable files are recorded as zero,
   deleted graded cells are put back, edited test cells are reported (nbgrader restores them).
3. ``nbgrader autograde LAB --student S`` runs there in its own process (own session) under a wall-clock
   limit; its kernel starts through ``sandbox.py`` (no network, hidden course/repository, ``nobody``,
   memory/CPU limits) and talks to nbgrader over ZMQ IPC sockets. ``SafeExecute`` enforces the per-cell and
   per-notebook time limits and gives zero to every cell that did not finish. If nbgrader itself fails or
   is killed, a second pass without execution still produces the notebook and zero autograded marks.
4. The driver merges the scratch gradebook's scores into the course gradebook (under a file lock, one
   student at a time, committed as each finishes) and moves the autograded notebook into place.

After all students: ``nbgrader generate_feedback`` and ``nbgrader export`` in the course, and a report
(``grades/<lab>/report.csv`` + one JSON per student) with the status and integrity flags of every hand-in.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
from course.grading import integrity, sandbox

SANDBOX_KERNEL = "labkit-sandbox"
STRONG_MODES = ("namespaces", "userns")
MAX_UNGRADABLE_STREAK = 5
STATUS_TEXT = {
    "graded": "graded",
    "stopped": "graded; execution stopped early (unfinished cells score zero)",
    "not_executed": "not executed (nbgrader failed or hit the hard time limit): autograded cells score zero",
    "unreadable": "unreadable submission: zero",
    "ungradable": "could not be graded: zero",
}


class GradingError(RuntimeError):
    """A problem with the course or the machine (not with one submission): grading stops."""


@dataclass
class Settings:
    lab: str
    course: Path = ROOT
    workers: int = 1
    cell_timeout: int = 120  # s per cell
    notebook_timeout: int = 1200  # s per notebook (kernel start included)
    memory_mb: int = 4096  # RLIMIT_DATA of the kernel
    cpu_seconds: int = 0  # RLIMIT_CPU of the kernel; 0: notebook_timeout * threads + 60
    threads: int = 0  # OMP/MKL/torch threads per kernel; 0: cores // workers
    sandbox: str = "auto"
    require_sandbox: bool = False
    scratch: Optional[Path] = None  # default: <course>/build/grading/<lab>
    out: Optional[Path] = None  # default: <course>/grades/<lab>
    keep_scratch: bool = False
    students: Optional[List[str]] = None
    hide: List[str] = field(default_factory=list)
    allow: List[str] = field(default_factory=list)
    max_output_mb: float = 2.0
    max_submission_mb: float = 200.0
    feedback: bool = True
    quiet: bool = False
    hard_grace: int = 120  # s on top of notebook_timeout before the driver kills a student's nbgrader

    def __post_init__(self):
        self.course = Path(self.course).resolve()
        self.scratch = Path(self.scratch or self.course / "build" / "grading" / self.lab).resolve()
        self.out = Path(self.out or self.course / "grades" / self.lab).resolve()
        self.workers = max(1, int(self.workers))
        if not self.threads:
            self.threads = max(1, (os.cpu_count() or 1) // self.workers)
        if not self.cpu_seconds:
            self.cpu_seconds = self.notebook_timeout * self.threads + 60

    @property
    def hard_limit(self) -> int:
        """Wall-clock seconds for one student's whole nbgrader process (the notebook limit + overhead)."""
        return self.notebook_timeout + self.hard_grace


# --------------------------------------------------------------------------- course and environment


def _assignments_module():
    from course import assignments

    return assignments


def base_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for nbgrader processes: the course pipeline's (course/assignments.py), the venv first on PATH
    (nbgrader's gradebook calls the ``alembic`` command)."""
    try:
        env = _assignments_module().kernel_env()
    except Exception:  # the pipeline module is optional here
        env = dict(os.environ)
        env.pop("MPLBACKEND", None)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    # A broken grading config must stop nbgrader: by default it logs the error and grades unsandboxed.
    env["TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR"] = "1"
    if extra:
        env.update(extra)
    return env


def _ensure_path() -> None:
    # nbgrader's gradebook API warns about its own session handling when it creates a submission
    warnings.filterwarnings("ignore", message=".*not in session.*")
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def course_config(course: Path):
    """(course_id, db_url) from the course's nbgrader_config.py."""
    from traitlets.config.loader import PyFileConfigLoader

    path = Path(course) / "nbgrader_config.py"
    if not path.is_file():
        raise GradingError(f"{course} has no nbgrader_config.py: is it the course root? (use --course / COURSE=)")
    cfg = PyFileConfigLoader(path.name, path=str(course)).load_config()
    course_id = cfg.CourseDirectory.get("course_id", "default_course")
    db_url = cfg.CourseDirectory.get("db_url", "sqlite:///" + str(Path(course) / "gradebook.db"))
    return course_id, db_url


def db_path(db_url: str) -> Path:
    if not db_url.startswith("sqlite:///"):
        raise GradingError(f"only sqlite gradebooks are supported here, not {db_url}")
    return Path(db_url[len("sqlite:///"):])


def find_students(course: Path, lab: str) -> List[str]:
    base = Path(course) / "submitted"
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if (p / lab).is_dir() and not p.name.startswith("."))


def notebook_names(db_url: str, lab: str) -> List[str]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gb:
        try:
            return [nb.name for nb in gb.find_assignment(lab).notebooks]
        except MissingEntry:
            known = ", ".join(a.name for a in gb.assignments) or "none"
            raise GradingError(f"the gradebook has no assignment {lab!r} (assignments: {known}); release it first: "
                               f"python course/assignments.py release {lab}") from None


def _lock(settings: Settings):
    from filelock import FileLock

    settings.out.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(settings.out.parent / ".gradebook.lock"), timeout=600)


# --------------------------------------------------------------------------- sandbox configuration


def nobody() -> tuple:
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


def _labkit_dir() -> Optional[Path]:
    spec = importlib.util.find_spec("labkit")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    return None


def _torch_home() -> Optional[Path]:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    home = os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")
    return Path(home).resolve() if os.path.isdir(home) else None


def _matplotlib_cache() -> Optional[str]:
    try:
        import matplotlib

        return matplotlib.get_cachedir()
    except Exception:
        return None


def sandbox_config(settings: Settings, scratch: Path, runtime: Path) -> dict:
    """The launcher's JSON config for one scratch course (see sandbox.py)."""
    uid, gid = nobody()
    home = scratch / "home"
    keep_ro = [sys.prefix, sys.base_prefix, str(Path(os.path.realpath(sys.executable)).parent),
               str(ROOT / "data"), str(ROOT / "pyproject.toml")]
    labkit_dir = _labkit_dir()
    if labkit_dir:
        keep_ro += [str(labkit_dir), str(labkit_dir.parent / "data")]
    if os.environ.get("LABKIT_DATA"):
        keep_ro.append(os.environ["LABKIT_DATA"])
    env = {"HOME": str(home), "USER": "nobody", "LOGNAME": "nobody", "TMPDIR": "/tmp",
           "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONNOUSERSITE": "1", "LABKIT_OFFLINE": "1",
           "JUPYTER_RUNTIME_DIR": str(runtime), "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
           "OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads),
           "OPENBLAS_NUM_THREADS": str(settings.threads)}
    torch_home = _torch_home()
    if torch_home:
        keep_ro.append(str(torch_home))
        env["TORCH_HOME"] = str(torch_home)
    keep_ro += settings.allow
    seed = {}
    mpl = _matplotlib_cache()
    if mpl and os.path.isdir(mpl):
        seed[mpl] = ".cache/matplotlib"  # the font cache: no 10 s font scan in every kernel
    hide = [str(settings.course), str(ROOT), str(settings.scratch), str(settings.out), "/root", "/home", "/var/tmp",
            os.path.expanduser("~")] + settings.hide
    return {
        "mode": settings.sandbox, "hide": hide, "keep_ro": keep_ro, "keep_rw": [str(runtime)],
        "workdir": str(scratch / "work"), "home": str(home), "home_seed": seed, "state_dir": str(scratch / "state"),
        "uid": uid, "gid": gid, "env": env,
        "limits": {"memory_mb": settings.memory_mb, "cpu_seconds": settings.cpu_seconds, "file_mb": 512,
                   "open_files": 4096, "processes": 4096},
        "tmpfs_mb": {"work": 512, "home": 256, "tmp": 512},
    }


def write_kernel_spec(scratch: Path) -> Path:
    """``<scratch>/jupyter/kernels/labkit-sandbox/kernel.json``: ipykernel behind sandbox.py."""
    kdir = scratch / "jupyter" / "kernels" / SANDBOX_KERNEL
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, str(Path(sandbox.__file__).resolve()), "--config", str(scratch / "sandbox.json"), "--",
                 sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit grading sandbox)", "language": "python",
        "interrupt_mode": "signal", "metadata": {"debugger": False},
    }
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return kdir


def make_runtime_dir() -> Path:
    """A short path for the kernel's IPC sockets (unix socket paths are limited to 107 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="lkg-", dir=base))


def scratch_config(course: Path, scratch: Path, settings: Settings) -> str:
    """The course's nbgrader_config.py followed by the grading overrides for this scratch course."""
    text = (Path(course) / "nbgrader_config.py").read_text()
    return text + f'''

# ---- appended by course/grading/autograde.py: a per-submission scratch course ----
import sys as _grading_sys
_grading_sys.path.insert(0, {str(ROOT)!r})
from course.grading.preprocessors import autograde_preprocessors as _grading_steps
c.CourseDirectory.root = {str(scratch)!r}
c.CourseDirectory.db_url = {"sqlite:///" + str(scratch / "gradebook.db")!r}
c.Autograde.autograde_preprocessors = _grading_steps()
c.Execute.kernel_name = {SANDBOX_KERNEL!r}
c.Execute.timeout = {int(settings.cell_timeout)}
c.Execute.interrupt_on_timeout = True
c.Execute.raise_on_iopub_timeout = True
c.Execute.startup_timeout = 120
c.SafeExecute.notebook_timeout = {int(settings.notebook_timeout)}
c.SafeExecute.work_dir = {str(scratch / "work")!r}
c.SafeExecute.report_file = {str(scratch / "execution.json")!r}
c.ScrubOutputs.max_output_mb = {float(settings.max_output_mb)}
c.ScrubOutputs.report_file = {str(scratch / "scrub.json")!r}
c.KernelManager.transport = "ipc"  # SafeExecute's IPCKernelManager does this too
c.KernelManager.shutdown_wait_time = 2.0
'''


# --------------------------------------------------------------------------- processes


def _die_with_parent_cmd(cmd: Sequence[str]) -> List[str]:
    """``cmd`` behind a tiny exec wrapper that asks the kernel to SIGKILL it when the thread that started it dies
    (a killed driver leaves no nbgrader behind; the sandbox launcher then kills its kernel)."""
    code = ("import ctypes,os,sys;"
            "ctypes.CDLL(None).prctl(1,9,0,0,0);"
            "os.getppid()==int(sys.argv[1]) or os._exit(1);"
            "os.execvp(sys.argv[2],sys.argv[2:])")
    return [sys.executable, "-c", code, str(os.getpid()), *cmd]


def run_limited(cmd: Sequence[str], *, cwd: Path, env: Dict[str, str], timeout: float, log: Path) -> tuple:
    """Run ``cmd`` in its own session with a wall-clock limit; returns (exit code, timed out)."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(_die_with_parent_cmd(cmd), cwd=str(cwd), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return proc.returncode, True


def kill_sandboxes(state_dir: Path) -> int:
    """SIGKILL every launcher/kernel recorded in ``state_dir`` that still runs. Returns how many."""
    killed = 0
    for rec in sorted(Path(state_dir).glob("*.json")) if Path(state_dir).is_dir() else []:
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        for pid in {data.get("kernel"), data.get("launcher")} - {None}:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ipykernel" in cmdline or b"sandbox.py" in cmdline:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
    return killed


def cleanup_stale(scratch: Path) -> None:
    """After a killed run: end the kernels a student's scratch course recorded and remove its runtime dir."""
    kill_sandboxes(Path(scratch) / "state")
    try:
        runtime = Path((Path(scratch) / "runtime-dir").read_text().strip())
    except OSError:
        return
    if runtime.name.startswith("lkg-"):
        shutil.rmtree(runtime, ignore_errors=True)


def sandbox_modes(state_dir: Path) -> List[str]:
    modes = set()
    for rec in Path(state_dir).glob("*.json") if Path(state_dir).is_dir() else []:
        try:
            modes.add(json.loads(rec.read_text()).get("mode"))
        except (OSError, ValueError):
            pass
    return sorted(m for m in modes if m)


# --------------------------------------------------------------------------- gradebook


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


def _student_record(db_url: str, lab: str, student: str) -> dict:
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


# --------------------------------------------------------------------------- one submission


def _read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


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
        cleanup_stale(scratch)
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    os.chmod(scratch, 0o700)
    (scratch / "state").mkdir(mode=0o700)
    (scratch / "work").mkdir()
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
        _grade_copy(settings, scratch, student, template, extension, result)
    after = snapshot(original)
    if after != before:
        result["flags"].append("the submission changed on disk while it was graded (a student re-submitted?)")
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _grade_copy(settings: Settings, scratch: Path, student: str, template: Path, extension: Optional[float],
                result: dict) -> None:
    from nbgrader.api import Gradebook

    lab = settings.lab
    shutil.copyfile(template, scratch / "gradebook.db")
    scratch_url = "sqlite:///" + str(scratch / "gradebook.db")
    if extension:  # late penalties are computed in the scratch course: it needs the student's extension
        with Gradebook(scratch_url) as gb:
            gb.update_or_create_student(student)
            gb.update_or_create_submission(lab, student, extension=_dt.timedelta(seconds=extension))
    (scratch / "nbgrader_config.py").write_text(scratch_config(settings.course, scratch, settings))
    write_kernel_spec(scratch)
    runtime = make_runtime_dir()
    (scratch / "runtime-dir").write_text(str(runtime))  # for cleanup_stale after a killed run
    try:
        (scratch / "sandbox.json").write_text(json.dumps(sandbox_config(settings, scratch, runtime), indent=1))
        env = base_env({"JUPYTER_PATH": str(scratch / "jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime),
                        "JUPYTER_DATA_DIR": str(scratch / "jupyter-data")})
        cmd = [sys.executable, "-m", "nbgrader", "autograde", lab, "--student", student, "--force"]
        log = scratch / "nbgrader.log"
        rc, timed_out = run_limited(cmd, cwd=scratch, env=env, timeout=settings.hard_limit, log=log)
        kill_sandboxes(scratch / "state")
        autograded = scratch / "autograded" / student / lab
        execution = _read_json(scratch / "execution.json", {}) or {}
        result["events"] = execution.get("events", [])
        if rc == 0 and autograded.is_dir() and not timed_out:
            stopped = execution.get("stopped")
            result["status"] = "stopped" if stopped else "graded"
            result["reason"] = stopped or ""
        else:
            why = (f"the hard time limit ({settings.hard_limit} s) was reached" if timed_out
                   else f"nbgrader failed (exit {rc}): {_tail(log, 6)}")
            result["reason"] = why
            shutil.rmtree(scratch / "autograded", ignore_errors=True)
            rc2, _ = run_limited(cmd + ["--SafeExecute.skip_execution=True",
                                        f"--SafeExecute.skip_reason=not executed: {why.splitlines()[0][:200]}"],
                                 cwd=scratch, env=env, timeout=300, log=log)
            result["status"] = "not_executed" if rc2 == 0 and autograded.is_dir() else "ungradable"
        result["sandbox"] = sandbox_modes(scratch / "state")
        if result["status"] == "graded" and not result["sandbox"]:
            raise GradingError(f"{student}: the kernel did not start through the sandbox launcher "
                               f"(check JUPYTER_PATH / kernel name); stopping")
        scrub = _read_json(scratch / "scrub.json", {}) or {}
        if scrub.get("too_large"):
            result["flags"].append("outputs over the size limit removed: " + ", ".join(
                f"{x['cell']} ({x['mb']} MB)" for x in scrub["too_large"]))
        if scrub.get("hidden_tests"):
            cells = ", ".join(sorted(set(scrub["hidden_tests"])))
            result["flags"].append(f"outputs quoting hidden tests removed: {cells}")
        if result["status"] != "ungradable":
            result["scores"] = scores(scratch_url, lab, student)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


# --------------------------------------------------------------------------- merge and report


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


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def merge_result(settings: Settings, result: dict, course_url: str) -> dict:
    """Commit one graded scratch copy into the course: gradebook scores, autograded notebook, result JSON."""
    student, lab = result["student"], settings.lab
    scratch = Path(result["scratch"])
    course_autograded = settings.course / "autograded" / student / lab
    with _lock(settings):
        if result["status"] in ("unreadable", "ungradable"):
            record_zero(course_url, lab, student, result["reason"] or result["status"], result.get("timestamp"))
            shutil.rmtree(course_autograded, ignore_errors=True)  # no stale notebook for the feedback
            result["scores"] = scores(course_url, lab, student)
        else:
            flagged = bool(result["tampered"] or result["restored"] or result["status"] != "graded")
            copy_grades("sqlite:///" + str(scratch / "gradebook.db"), course_url, lab, student, flag=flagged)
            _replace_dir(scratch / "autograded" / student / lab, course_autograded)
        result["merged_at"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        _write_json(settings.out / "results" / f"{student}.json", result)
    if not settings.keep_scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def report_rows(settings: Settings, course_url: str) -> List[dict]:
    """One row per student with a result file, scores read back from the course gradebook."""
    rows = []
    for path in sorted((settings.out / "results").glob("*.json")):
        res = _read_json(path)
        if not res:
            continue
        try:
            sc = scores(course_url, settings.lab, res["student"])
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


# --------------------------------------------------------------------------- probe


PROBE_CODE = r'''
import json, os, socket
targets = json.loads(__TARGETS__)
out = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "read": {}, "net": {}}
own = {os.path.realpath(os.getcwd()), os.path.realpath(os.environ.get("HOME", os.getcwd()))}
for path in targets["paths"]:
    try:
        if os.path.isdir(path):  # only the skeleton leading to our own work dir and home may show
            found = []
            for base, dirs, files in os.walk(path):
                dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(base, d)) not in own]
                found += files
            out["read"][path] = "listed" if found else "empty"
        else:
            with open(path, "rb") as fh:
                fh.read(16)
            out["read"][path] = "read"
    except Exception as err:
        out["read"][path] = type(err).__name__
for host, port in targets["net"]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        out["net"][f"{host}:{port}"] = "connected"
    except Exception as err:
        out["net"][f"{host}:{port}"] = type(err).__name__
    finally:
        s.close()
print("PROBE" + json.dumps(out))
'''


def probe(settings: Settings, course_url: Optional[str] = None, timeout: int = 180) -> dict:
    """Start one sandboxed kernel the way grading does and check what it can reach.

    Returns {"mode", "leaks": [...], "result": {...}}; ``leaks`` lists hidden paths the kernel could read
    and network connections that worked.
    """
    import nbformat

    scratch = settings.scratch / "students" / "_probe"
    if scratch.exists():
        kill_sandboxes(scratch / "state")
        shutil.rmtree(scratch)
    (scratch / "state").mkdir(parents=True)
    os.chmod(scratch, 0o700)
    (scratch / "work").mkdir()
    course = settings.course
    secret_paths = [course / "nbgrader_config.py", course / "notebooks", course / "solutions",
                    settings.course / "submitted", settings.scratch, ROOT / "course", ROOT / ".git", settings.out]
    if course_url:
        secret_paths.append(db_path(course_url))
    paths = [str(p) for p in secret_paths if p.exists()]
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    targets = {"paths": paths, "net": [["127.0.0.1", port], ["1.1.1.1", 53]]}
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_CODE.replace("__TARGETS__", repr(json.dumps(targets)))))
    nb.metadata["kernelspec"] = {"name": SANDBOX_KERNEL, "display_name": "sandbox", "language": "python"}
    nb_path = scratch / "work" / "probe.ipynb"
    nbformat.write(nb, str(nb_path))
    write_kernel_spec(scratch)
    runtime = make_runtime_dir()
    try:
        (scratch / "sandbox.json").write_text(json.dumps(sandbox_config(settings, scratch, runtime), indent=1))
        env = base_env({"JUPYTER_PATH": str(scratch / "jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime),
                        "JUPYTER_DATA_DIR": str(scratch / "jupyter-data"), "PYTHONPATH": str(ROOT)})
        cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", "probe.out.ipynb",
               f"--ExecutePreprocessor.kernel_name={SANDBOX_KERNEL}", "--ExecutePreprocessor.timeout=120",
               "--ExecutePreprocessor.kernel_manager_class=course.grading.preprocessors.IPCKernelManager",
               str(nb_path)]
        rc, timed_out = run_limited(cmd, cwd=scratch / "work", env=env, timeout=timeout, log=scratch / "probe.log")
        kill_sandboxes(scratch / "state")
        out_path = scratch / "work" / "probe.out.ipynb"
        if rc != 0 or not out_path.exists():
            raise GradingError(f"the sandboxed kernel did not start (exit {rc}{', timed out' if timed_out else ''}):\n"
                               f"{_tail(scratch / 'probe.log', 20)}")
        text = "".join(o.get("text", "") for o in nbformat.read(str(out_path), as_version=4).cells[0].outputs)
        data = json.loads(text.split("PROBE", 1)[1])
        modes = sandbox_modes(scratch / "state")
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)
    leaks = [f"read {p}" for p, how in data["read"].items() if how in ("read", "listed")]
    leaks += [f"connected to {a}" for a, how in data["net"].items() if how == "connected"]
    shutil.rmtree(scratch, ignore_errors=True)
    return {"mode": modes[0] if modes else "none", "leaks": leaks, "result": data}


def check_scratch_config(settings: Settings) -> None:
    """Load the config a scratch course gets (course config + grading overrides) before grading anyone."""
    from traitlets.config.loader import PyFileConfigLoader

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "nbgrader_config.py").write_text(scratch_config(settings.course, Path(tmp), settings))
        try:
            cfg = PyFileConfigLoader("nbgrader_config.py", path=tmp).load_config()
        except Exception as err:
            raise GradingError(f"the grading config does not load: {type(err).__name__}: {err}") from None
    steps = [getattr(x, "__name__", str(x)) for x in cfg.Autograde.autograde_preprocessors]
    if "SafeExecute" not in steps or cfg.Execute.kernel_name != SANDBOX_KERNEL:
        raise GradingError(f"the grading config does not use the sandboxed executor (steps: {steps})")


def check_sandbox(settings: Settings, course_url: str, log=print) -> dict:
    """Run the probe, print what protects the students' kernels; raise if it is weaker than required."""
    found = probe(settings, course_url)
    mode = found["mode"]
    if mode in STRONG_MODES and found["leaks"]:
        raise GradingError(f"sandbox mode {mode} leaks: {'; '.join(found['leaks'])}")
    if mode in STRONG_MODES:
        who = "nobody" if mode == "namespaces" else "the grader's uid without capabilities (user namespace)"
        log(f"Sandbox: {mode} (kernel runs as {who}; course, repository, gradebook and other students hidden; "
            f"no network; {settings.memory_mb} MB data, {settings.cpu_seconds} s CPU)")
    else:
        banner = "!" * 78
        msg = (f"{banner}\nWARNING: the kernels are NOT isolated (sandbox mode '{mode}').\n"
               f"Student code can read: {', '.join(found['leaks']) or 'whatever this user can read'}.\n"
               "Only resource limits apply. Run as root or enable unprivileged user namespaces "
               "(docs/GRADING.md).\n" + banner)
        if settings.require_sandbox:
            raise GradingError(msg + "\n--require-sandbox was given: not grading.")
        log(msg)
    return found


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
    _ensure_path()
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
        cleanup_stale(stale)  # kernels and socket dirs left by a killed run
    check_scratch_config(settings)
    check_sandbox(settings, course_url, log)
    with _lock(settings):
        template = build_template(course_url, settings.scratch / "template.db")
        extensions = {s: _student_record(course_url, settings.lab, s).get("extension") for s in students}
    log(f"Grading {len(students)} submission(s) of {settings.lab} with {settings.workers} worker(s), "
        f"{settings.threads} thread(s) each; limits: {settings.cell_timeout} s/cell, "
        f"{settings.notebook_timeout} s/notebook, {settings.memory_mb} MB.")
    results = []
    bar = _progress(len(students), settings.quiet)
    abort = threading.Event()

    def job(student):
        if abort.is_set():
            return None
        return grade_submission(settings, student, template=template, course_url=course_url, notebooks=notebooks,
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
                results.append(merge_result(settings, res, course_url))
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
    _ensure_path()
    _, course_url = course_config(settings.course)
    merged = []
    for path in sorted((settings.scratch / "students").glob("*/result.json")):
        res = _read_json(path)
        if res:
            merged.append(merge_result(settings, res, course_url))
            log(f"  merged {res['student']}: {res['status']}")
    return merged


def finish(settings: Settings, log=print) -> List[dict]:
    """Feedback (nbgrader generate_feedback), the CSV export (nbgrader export) and the report table."""
    _ensure_path()
    _, course_url = course_config(settings.course)
    env = base_env()
    settings.out.mkdir(parents=True, exist_ok=True)
    log_path = settings.out / "nbgrader.log"
    if settings.feedback and (settings.course / "autograded").is_dir():
        rc, _ = run_limited([sys.executable, "-m", "nbgrader", "generate_feedback", settings.lab, "--force"],
                            cwd=settings.course, env=env, timeout=3600, log=log_path)
        if rc != 0:
            log(f"WARNING: nbgrader generate_feedback failed (exit {rc}); see {log_path}:\n{_tail(log_path, 8)}")
    export = settings.out / "grades.csv"
    rc, _ = run_limited([sys.executable, "-m", "nbgrader", "export", "--to", str(export),
                         "--assignment", settings.lab], cwd=settings.course, env=env, timeout=600, log=log_path)
    if rc != 0:
        log(f"WARNING: nbgrader export failed (exit {rc}); see {log_path}")
    rows = report_rows(settings, course_url)
    report = write_report(settings, rows)
    print_table(rows)
    weak = sorted({r["sandbox"] for r in rows} - {m for m in STRONG_MODES} - {"-"})
    if weak:
        log(f"\nWARNING: some kernels ran without isolation (sandbox: {', '.join(weak)}).")
    log(f"\nReport: {report}\nnbgrader export: {export}\nFeedback: {settings.course / 'feedback'}/<student>/"
        f"{settings.lab}/\nAutograded notebooks: {settings.course / 'autograded'}/<student>/{settings.lab}/")
    return rows


def grade_one(settings: Settings, student: str, log=print) -> dict:
    """Cluster task: grade one student into its scratch course and leave ``result.json`` there (no merge)."""
    _ensure_path()
    _, course_url = course_config(settings.course)
    notebooks = notebook_names(course_url, settings.lab)
    check_scratch_config(settings)
    template = settings.scratch / "template.db"
    if not template.exists():
        with _lock(settings):
            if not template.exists():
                build_template(course_url, template)
    ext = _student_record(course_url, settings.lab, student).get("extension")
    res = grade_submission(settings, student, template=template, course_url=course_url, notebooks=notebooks,
                           extension=ext)
    _write_json(Path(res["scratch"]) / "result.json", res)
    sc = res.get("scores", {})
    log(f"{student}: {res['status']} {sc.get('auto', 0):g}/{sc.get('auto_max', 0):g}")
    return res


def prepare(settings: Settings, log=print) -> Path:
    """Before a cluster job array: check the sandbox on this node and write the gradebook template once."""
    _ensure_path()
    _, course_url = course_config(settings.course)
    notebook_names(course_url, settings.lab)
    settings.scratch.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.scratch, 0o700)
    check_scratch_config(settings)
    check_sandbox(settings, course_url, log)
    with _lock(settings):
        template = build_template(course_url, settings.scratch / "template.db")
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
    parser.add_argument("--require-sandbox", action="store_true", help="refuse to grade without namespaces")
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
            _ensure_path()
            _, url = course_config(settings.course)
            found = check_sandbox(settings, url)
            print(json.dumps(found, indent=1))
    except GradingError as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1
    print(f"Done in {time.time() - t0:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
