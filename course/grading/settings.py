"""What one grading run is set to, and the course it grades: limits, paths, the gradebook's address.

Every other grading module takes a :class:`Settings`; nothing here starts a process or writes a file
except the small JSON helpers at the end.
"""
from __future__ import annotations

import json
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]  # the repository (labkit/, course/, data/)

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
    sandbox: str = "auto"  # auto | bwrap | none (course/grading/sandbox.py)
    require_sandbox: bool = False
    scratch: Optional[Path] = None  # default: <course>/build/grading/<lab>
    out: Optional[Path] = None  # default: <course>/grades/<lab>
    keep_scratch: bool = False
    students: Optional[List[str]] = None
    hide: List[str] = field(default_factory=list)  # more paths inside mounted folders the kernel must not see
    allow: List[str] = field(default_factory=list)  # more paths the kernel may read
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
        if self.require_sandbox and self.sandbox == "none":
            raise GradingError("--require-sandbox and --sandbox none contradict each other")

    @property
    def hard_limit(self) -> int:
        """Wall-clock seconds for one student's whole nbgrader process (the notebook limit + overhead)."""
        return self.notebook_timeout + self.hard_grace


def base_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for nbgrader processes: this Python's bin first on PATH (nbgrader's gradebook calls
    ``alembic``), no MPLBACKEND (kernels pick their inline backend), no PYTHONPATH."""
    env = dict(os.environ)
    env.pop("MPLBACKEND", None)
    env.pop("PYTHONPATH", None)
    env.setdefault("LABKIT_FAST", "1")
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # A broken grading config must stop nbgrader: by default it logs the error and grades with defaults.
    env["TRAITLETS_APPLICATION_RAISE_CONFIG_FILE_ERROR"] = "1"
    if extra:
        env.update(extra)
    return env


def ensure_path() -> None:
    """This Python's bin on PATH for in-process nbgrader API calls; quiet nbgrader's session warning."""
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
                               f"python -m course release {lab}") from None


def read_json(path: Path, default=None):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def write_json(path: Path, data) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    tmp.replace(path)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
