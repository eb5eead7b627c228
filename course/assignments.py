"""The nbgrader pipeline behind `make assignments` and `make autograde-demo`.

    python -m course build [LAB ...]           notebooks/ from course/labs/ (--check: only compare)
    python -m course release [LAB ...]         build, then release/<lab>/ (nbgrader generate_assignment)
    python -m course all [LAB ...]             release, then solutions/<lab>/ executed + .html
    python -m course autograde-demo [LAB ...]  a fake class graded end to end in build/autograde-demo/

Every step calls nbgrader itself (``python -m nbgrader ...`` in the course root, configured by
``nbgrader_config.py``), so what runs here is what an instructor runs by hand. Solutions are
executed by ``nbgrader generate_solution`` with this Python's kernel, at full quality unless
``LABKIT_FAST=1`` is set (CI sets it: every lab then runs in a few minutes on a laptop CPU). Each
executed solution records how it was made (model, fast, seconds, labkit version, device) in its
metadata under ``labkit`` (``course.solution_run``).

The functions are importable: tests/test_notebooks.py drives the same pipeline in a temporary
copy of the course.
"""
from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIR = "notebooks"
RELEASE_DIR = "release"
SOLUTION_DIR = "solutions"
DEMO_DIR = ROOT / "build" / "autograde-demo"
DEMO_STUDENTS = {"alice": "solutions", "bob": "release"}  # who hands in what in the demo

SOLUTION_RE = re.compile(r"^[ \t]*### BEGIN SOLUTION[^\n]*\n(.*?)^[ \t]*### END SOLUTION", re.M | re.S)
HIDDEN_RE = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS", re.M | re.S)


class PipelineError(RuntimeError):
    """A pipeline step failed; the message says which lab and step, and nbgrader's log tail."""


# --------------------------------------------------------------------------- helpers


def _nbbuild():
    from course import nbbuild

    return nbbuild


def lab_scripts() -> List[str]:
    """Labs with a source in course/labs/ (``course/labs/*.py``, sorted)."""
    return _nbbuild().lab_names()


def lab_names(course: Path = ROOT) -> List[str]:
    """Labs present as nbgrader sources: ``notebooks/<lab>/<lab>.ipynb``, sorted."""
    src = Path(course) / SOURCE_DIR
    return sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").is_file()) if src.is_dir() else []


def _pick(labs: Sequence[str], course: Path) -> List[str]:
    known = lab_names(course)
    if not labs:
        return known
    unknown = [lab for lab in labs if lab not in known]
    if unknown:
        raise SystemExit(f"Unknown lab(s) {', '.join(unknown)}. Labs in {SOURCE_DIR}/: {', '.join(known) or 'none'}.")
    return list(labs)


def kernel_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment for nbgrader and the kernels it starts.

    This Python's ``bin`` folder goes first on PATH (nbgrader calls ``alembic``; kernels run here),
    and MPLBACKEND is dropped so ipykernel picks its inline backend (a CI-wide ``MPLBACKEND=Agg``
    would otherwise leave the executed notebooks without figures).
    """
    env = dict(os.environ)
    # nbgrader runs the `alembic` script of this environment to create the gradebook
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.pop("MPLBACKEND", None)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning")
    if extra:
        env.update(extra)
    return env


def nbgrader(args: Sequence[str], course: Path, *, env: Optional[Dict[str, str]] = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m nbgrader ARGS`` in ``course`` (its nbgrader_config.py applies). Raises on failure."""
    cmd = [sys.executable, "-m", "nbgrader", *args]
    proc = subprocess.run(cmd, cwd=str(course), env=env or kernel_env(), capture_output=True, text=True)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-40:])
        raise PipelineError(f"`nbgrader {' '.join(args)}` failed in {course} (exit {proc.returncode}):\n{tail}")
    return proc


def notebook_path(course: Path, step: str, lab: str, student: Optional[str] = None) -> Path:
    """Where nbgrader keeps ``lab`` at ``step`` (notebooks/release/solutions/submitted/autograded/feedback)."""
    base = Path(course) / step
    if student is not None:
        base = base / student
    return base / lab / f"{lab}.ipynb"


def error_cells(nb: nbformat.NotebookNode) -> List[str]:
    """Short descriptions of the code cells of an executed notebook that raised."""
    bad = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "error":
                gid = cell.metadata.get("nbgrader", {}).get("grade_id", f"cell {i}")
                bad.append(f"{gid}: {out.get('ename')}: {str(out.get('evalue'))[:300]}")
    return bad


def solution_regions(nb: nbformat.NotebookNode) -> List[str]:
    """Instructor-only text of a source notebook: code between BEGIN/END SOLUTION, model written answers."""
    regions = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if not meta.get("solution"):
            continue
        if cell.cell_type == "code":
            regions += [m.group(1) for m in SOLUTION_RE.finditer(cell.source)]
        else:
            regions.append(cell.source)
    return regions


def hidden_test_regions(nb: nbformat.NotebookNode) -> List[str]:
    """Source text between BEGIN/END HIDDEN TESTS in a notebook's cells."""
    return [m.group(1) for cell in nb.cells if cell.cell_type == "code" for m in HIDDEN_RE.finditer(cell.source)]


# --------------------------------------------------------------------------- steps


def build_notebooks(labs: Sequence[str] = (), *, check: bool = False) -> List[str]:
    """Regenerate ``notebooks/<lab>/<lab>.ipynb`` from the jupytext script ``course/labs/<lab>.py``.

    With ``check=True`` nothing is written; returns the labs whose committed notebook differs
    from what its source builds (empty = up to date).
    """
    nbbuild = _nbbuild()
    names = list(labs) or lab_scripts()
    if check:
        return nbbuild.stale_labs(names)
    for name in names:
        nbbuild.build_lab(name)
        print(f"  built   {SOURCE_DIR}/{name}/{name}.ipynb from course/labs/{name}.py", flush=True)
    return []


def build_in_memory(name: str) -> nbformat.NotebookNode:
    """The notebook ``course/labs/<name>.py`` builds, without writing it (normalised like a read)."""
    return _nbbuild().read_lab(name)


def generate_release(course: Path, lab: str = "*") -> None:
    """``nbgrader generate_assignment LAB --force`` (creates the gradebook entry): release/<lab>/.

    ``lab`` may be a glob (``"*"``: every lab in one nbgrader run).
    """
    nbgrader(["generate_assignment", lab, "--force"], course)


# generate_solution's own preprocessors, with Execute replaced by one that records how the notebook ran
# (course.solution_run), or left out for hand-ins that are executed anyway (autograde)
_SOLUTION_STEPS = ("nbgrader.preprocessors.IncludeHeaderFooter", "nbgrader.preprocessors.LockCells",
                   "nbgrader.preprocessors.ClearOutput", "nbgrader.preprocessors.ClearMarkScheme")


def _solution_preprocessors(execute: bool) -> str:
    steps = _SOLUTION_STEPS + (("course.solution_run.RecordedExecute",) if execute else ())
    return "--GenerateSolution.preprocessors=[" + ",".join(repr(s) for s in steps) + "]"


def generate_solution(course: Path, lab: str = "*", *, execute: bool = True,
                      env: Optional[Dict[str, str]] = None) -> List[Path]:
    """``nbgrader generate_solution LAB --force``: solutions/<lab>/<lab>.ipynb, executed.

    Args:
        lab: a lab name or a glob.
        execute: run the notebooks (nbgrader's Execute preprocessor, recording model, fast, seconds,
            labkit version and device in the metadata under ``labkit``). ``False`` only lays them out.
        env: the environment of nbgrader and its kernels (default :func:`kernel_env`).

    Raises:
        PipelineError: nbgrader failed, or a cell raised while executing (nbgrader records cell
            errors and goes on; we don't).
    """
    args = ["generate_solution", lab, "--force", _solution_preprocessors(execute)]
    nbgrader(args, course, env=env)
    paths = sorted((Path(course) / SOLUTION_DIR).glob(f"{lab}/*.ipynb"))
    for path in paths if execute else []:
        errors = error_cells(nbformat.read(str(path), as_version=4))
        if errors:
            raise PipelineError(f"{path.parent.name}: the solution notebook raised in {len(errors)} cell(s):\n  "
                                + "\n  ".join(errors))
    return paths


def export_html(nb_path: Path, html_path: Optional[Path] = None) -> Path:
    """An HTML copy of an executed notebook with its figures embedded.

    Uses ``labkit.report`` (the students' report look: title block, question page breaks) and falls
    back to nbconvert's HTMLExporter should that fail.
    """
    html_path = Path(html_path or Path(nb_path).with_suffix(".html"))
    try:
        from labkit import report

        return Path(report.convert(nb_path, "html", html_path))
    except Exception as err:  # the HTML copy is a convenience; never lose the solutions over it
        print(f"  note: labkit.report could not render {Path(nb_path).name} ({type(err).__name__}: {err}); "
              "using nbconvert", flush=True)
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nbformat.read(str(nb_path), as_version=4))
    html_path.write_text(body, encoding="utf-8")
    return html_path


def make_course_copy(dest: Path, labs: Sequence[str] = (), *, source: Path = ROOT) -> Path:
    """A scratch course: nbgrader_config.py and the source notebooks of ``labs``, nothing generated."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    (dest / SOURCE_DIR).mkdir(parents=True)
    shutil.copy2(Path(source) / "nbgrader_config.py", dest / "nbgrader_config.py")
    for lab in labs or lab_names(source):
        shutil.copytree(Path(source) / SOURCE_DIR / lab, dest / SOURCE_DIR / lab,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return dest


def submit(course: Path, student: str, lab: str, notebook: Path) -> Path:
    """Hand in ``notebook`` for ``student`` the way ``nbgrader collect`` lays it out."""
    dest = notebook_path(course, "submitted", lab, student)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(str(notebook), as_version=4)
    nbformat.write(nb, str(dest))
    (dest.parent / "timestamp.txt").write_text(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()))
    return dest


def autograde(course: Path, lab: str = "*", *, check: bool = True,
              env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``nbgrader autograde LAB --force`` for every submission of ``lab`` (a name or a glob)."""
    return nbgrader(["autograde", lab, "--force"], course, check=check, env=env)


def safe_autograde(course: Path, lab: str, *, workers: int = 2) -> None:
    """Grade every submission of ``lab`` the way ``make autograde`` does (course.grading: sandboxed
    kernels, verdicts in the trusted grader, feedback and export); raises if the run fails."""
    from course.grading import autograde as grading

    env_path = os.environ.get("PATH", "")
    os.environ["PATH"] = kernel_env()["PATH"]  # nbgrader and the kernel from this environment
    try:
        rc = grading.main(["run", "--lab", lab, "--course", str(course), "--workers", str(workers), "--quiet"])
    finally:
        os.environ["PATH"] = env_path
    if rc != 0:
        raise PipelineError(f"{lab}: safe autograding failed (exit {rc}); see {course}/grades/{lab}/")


def generate_feedback(course: Path, lab: str = "*", *, check: bool = True,
                      env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """``nbgrader generate_feedback LAB --force``: feedback/<student>/<lab>/<lab>.html."""
    return nbgrader(["generate_feedback", lab, "--force"], course, check=check, env=env)


def export_grades(course: Path, csv_path: Path) -> Path:
    """``nbgrader export --to CSV``."""
    nbgrader(["export", "--to", str(csv_path)], course)
    return Path(csv_path)


def grade_table(course: Path, labs: Sequence[str]) -> List[Dict]:
    """One row per (student, lab) from the gradebook: autograded (code) and written scores."""
    from nbgrader.api import Gradebook

    url = "sqlite:///" + str(Path(course).resolve() / "gradebook.db")
    rows = []
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = kernel_env()["PATH"]  # Gradebook() runs this environment's `alembic`
    try:
        gb = Gradebook(url, "labkit")
    finally:
        os.environ["PATH"] = old_path
    with gb:
        for lab in labs:
            for sub in gb.submission_dicts(lab):
                rows.append({
                    "student": sub["student"], "assignment": lab,
                    "auto": float(sub["code_score"] or 0), "auto_max": float(sub["max_code_score"] or 0),
                    "written": float(sub["written_score"] or 0), "written_max": float(sub["max_written_score"] or 0),
                    "needs_manual_grade": bool(sub["needs_manual_grade"]),
                })
    return sorted(rows, key=lambda r: (r["assignment"], r["student"]))


def print_grade_table(rows: Iterable[Dict]) -> None:
    print(f"\n{'student':<10}{'assignment':<22}{'autograded':>14}{'written':>14}  manual grading")
    for r in rows:
        auto = f"{r['auto']:g}/{r['auto_max']:g}"
        written = f"{r['written']:g}/{r['written_max']:g}"
        print(f"{r['student']:<10}{r['assignment']:<22}{auto:>14}{written:>14}  "
              f"{'needed' if r['needs_manual_grade'] else '-'}")


# --------------------------------------------------------------------------- commands


def run_release(labs: Sequence[str], course: Path = ROOT) -> List[str]:
    """Rebuild the sources from course/labs/, then release every (or each named) lab."""
    print(f"Source notebooks ({SOURCE_DIR}/) from course/labs/:", flush=True)
    build_notebooks()
    labs = _pick(labs, course)
    for lab in labs:
        t0 = time.time()
        generate_release(course, lab)
        print(f"  release {RELEASE_DIR}/{lab}/ ({time.time() - t0:.0f} s)", flush=True)
    return labs


def run_all(labs: Sequence[str], course: Path = ROOT) -> None:
    """Release, then execute each lab's solutions and save an HTML copy next to them."""
    labs = run_release(labs, course)
    from labkit.notebook import fast_mode

    quality = "LABKIT_FAST=1: small sizes and steps" if fast_mode() else "full quality (LABKIT_FAST=1: quick)"
    print(f"Executed solutions ({SOLUTION_DIR}/, {quality}):", flush=True)
    failed = []
    for lab in labs:
        t0 = time.time()
        try:
            (path,) = generate_solution(course, lab)
        except PipelineError as err:  # go on with the other labs, fail at the end
            print(f"  FAILED  {lab} ({time.time() - t0:.0f} s): {err}", flush=True)
            failed.append(lab)
            continue
        page = export_html(path)
        run = nbformat.read(str(path), as_version=4).metadata.get("labkit", {})
        print(f"  solved  {path.relative_to(course)} + {page.name} ({time.time() - t0:.0f} s; "
              f"model {run.get('model')} on {run.get('device')}, fast={run.get('fast')})", flush=True)
    if failed:
        raise PipelineError(f"solutions failed for: {', '.join(failed)} (see above)")


def run_autograde_demo(labs: Sequence[str], dest: Path = DEMO_DIR) -> List[Dict]:
    """A fake class in a scratch course: alice hands in the solutions, bob the untouched release."""
    labs = _pick(labs, ROOT)
    print(f"Scratch course: {dest}", flush=True)
    course = make_course_copy(dest, labs)
    for lab in labs:
        t0 = time.time()
        generate_release(course, lab)
        generate_solution(course, lab, execute=False)  # autograde runs alice's copy anyway
        for student, step in DEMO_STUDENTS.items():
            submit(course, student, lab, notebook_path(course, step, lab))
        safe_autograde(course, lab)
        print(f"  graded  {lab}: {', '.join(f'{s} ({w})' for s, w in DEMO_STUDENTS.items())} "
              f"({time.time() - t0:.0f} s)", flush=True)
    grades = export_grades(course, course / "grades.csv")
    rows = grade_table(course, labs)
    print_grade_table(rows)
    with open(grades, newline="") as fh:
        print(f"\nnbgrader export: {grades} ({sum(1 for _ in csv.DictReader(fh))} rows); "
              f"feedback pages: {course / 'feedback'}/<student>/<lab>/<lab>.html")
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "release", "all", "autograde-demo"])
    parser.add_argument("labs", nargs="*", help="lab names (default: every lab in notebooks/)")
    parser.add_argument("--check", action="store_true", help="build: fail if a notebook is out of date, write nothing")
    args = parser.parse_args(argv)
    t0 = time.time()
    try:
        if args.command == "build":
            if args.check:
                stale = build_notebooks(args.labs, check=True)
                if stale:
                    print(f"Out of date (run `python -m course build {' '.join(stale)}`): {', '.join(stale)}")
                    return 1
                print("Source notebooks are up to date with course/labs/.")
            else:
                build_notebooks(args.labs)
        elif args.command == "release":
            run_release(args.labs)
        elif args.command == "all":
            run_all(args.labs)
        else:
            run_autograde_demo(args.labs)
    except PipelineError as err:
        print(f"\nERROR: {err}", file=sys.stderr)
        return 1
    print(f"Done in {time.time() - t0:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
