"""The graded lab notebooks and the nbgrader pipeline, checked with nbgrader itself.

Every lab found in ``notebooks/<lab>/<lab>.ipynb`` is checked (parametrised at collection time).

* Static checks (fast): nbgrader cell metadata (unique grade ids, solution delimiters, points,
  locked test cells, nbgrader's own CheckCellMetadata), no outputs in the sources, sources up to
  date with ``course/labs/<lab>.py``, the question map / points headings, the settings and Colab cells.
* The pipeline, built ONCE per session in a temporary copy of the course (``course`` fixture), with
  the real ``nbgrader`` commands that ``course/assignments.py`` runs: ``generate_assignment`` ->
  ``generate_solution`` -> two hand-ins (alice: the solutions; bob: the untouched release) ->
  ``autograde`` -> ``generate_feedback`` -> ``export``. Each notebook is executed by ``autograde``
  (nbclient with a per-cell timeout, ``LABKIT_FAST=1``, this Python's kernel), twice per lab: alice's
  run is the "source executes top to bottom with the solutions in place" check, bob's the
  "untouched release" one (the two students are graded in parallel, in two copies of the course). ``nbgrader validate`` is nbgrader's :class:`~nbgrader.validator.Validator`
  applied to those executed notebooks (the CLI would execute each notebook once more).
"""
from __future__ import annotations

import copy
import csv
import html
import os
import re
import runpy
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


from course import assignments as A  # noqa: E402
LABS = A.lab_names(ROOT)
if os.environ.get("LABKIT_TEST_LABS"):  # e.g. LABKIT_TEST_LABS=lab1_saliency,lab3_relu while working on two labs
    LABS = [lab for lab in LABS if lab in os.environ["LABKIT_TEST_LABS"].split(",")]
STUDENTS = {"alice": A.SOLUTION_DIR, "bob": A.RELEASE_DIR}
SOLVED_LAB = "lab3_relu" if "lab3_relu" in LABS else (LABS or [""])[0]  # the quickest lab, executed as a solution  # hand-in: the solutions / the untouched release
QUESTION_HEADING = re.compile(r"^(#{2,3})\s+(Question\s+(\S+).*)$", re.M)
POINTS = re.compile(r"\((\d+(?:\.\d+)?)\s*(?:of\s+\d+(?:\.\d+)?\s*)?pts?\b", re.I)


def _source(lab: str) -> nbformat.NotebookNode:
    return nbformat.read(str(A.notebook_path(ROOT, A.SOURCE_DIR, lab)), as_version=4)


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


def _normalise(text: str) -> str:
    """HTML or code -> plain text with single spaces (pygments splits code into many spans)."""
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


def _significant_lines(text: str, minimum: int = 16) -> List[str]:
    return [line.strip() for line in text.splitlines() if len(line.strip()) >= minimum]


# --------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("lab", LABS)
def test_source_nbgrader_metadata(lab):
    from nbgrader.preprocessors import CheckCellMetadata

    nb = _source(lab)
    ids = [_meta(c)["grade_id"] for c in nb.cells if _meta(c)]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert not duplicates, f"{lab}: grade_ids used twice: {duplicates}"
    graded = 0.0
    for cell in nb.cells:
        meta = _meta(cell)
        hidden = "BEGIN HIDDEN TESTS" in cell.source
        if not meta:
            assert "### BEGIN SOLUTION" not in cell.source and not hidden, (
                f"{lab}: a cell without nbgrader metadata has solution/hidden-test markers:\n{cell.source[:200]}")
            continue
        gid = meta["grade_id"]
        assert meta.get("schema_version") == 3, f"{lab}/{gid}: nbgrader schema_version must be 3"
        if meta.get("solution") and cell.cell_type == "code":
            begins = cell.source.count("### BEGIN SOLUTION")
            assert begins >= 1 and begins == cell.source.count("### END SOLUTION"), (
                f"{lab}/{gid}: a solution cell needs matching ### BEGIN SOLUTION / ### END SOLUTION")
        if meta.get("grade"):
            assert float(meta.get("points", 0)) > 0, f"{lab}/{gid}: a graded cell needs points > 0"
            graded += float(meta["points"])
        if meta.get("grade") and not meta.get("solution"):
            assert cell.cell_type == "code" and meta.get("locked"), f"{lab}/{gid}: test cells must be locked code cells"
        if hidden:
            assert meta.get("grade") and not meta.get("solution"), f"{lab}/{gid}: hidden tests belong in test cells"
            assert cell.source.count("### BEGIN HIDDEN TESTS") == cell.source.count("### END HIDDEN TESTS")
    assert graded > 0, f"{lab}: no graded cells"
    autograded = [c for c in nb.cells if _meta(c).get("grade") and c.cell_type == "code"]
    assert autograded, f"{lab}: students implement something: at least one autograded test cell"
    CheckCellMetadata().preprocess(copy.deepcopy(nb), {})  # nbgrader's own checks; raises on bad metadata


@pytest.mark.parametrize("lab", LABS)
def test_source_has_no_outputs(lab):
    for i, cell in enumerate(_source(lab).cells):
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{lab}: cell {i} has outputs; rebuild it"


@pytest.mark.parametrize("lab", LABS)
def test_source_is_built_from_its_lab_script(lab):
    """A lab is course/labs/<lab>.py or a folder course/labs/<lab>/ of parts; either way it must build."""
    assert A.build_in_memory(lab) == _source(lab), (
        f"notebooks/{lab}/{lab}.ipynb differs from what course/labs/{lab}[.py|/] builds: "
        f"run `python -m course build {lab}`")


@pytest.mark.parametrize("lab", LABS)
def test_question_map_and_points(lab):
    """Each question heading is listed in the map at the top and states the points its section carries."""
    nb = _source(lab)
    headings = []  # (cell index, label, heading text)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            headings += [(i, m.group(3), m.group(2)) for m in QUESTION_HEADING.finditer(cell.source)]
    assert headings, f"{lab}: no '## Question ...' headings"
    first = headings[0][0]
    intro = "\n".join(c.source for c in nb.cells[:first] if c.cell_type == "markdown")
    assert re.search(r"^\|.*\|\s*$", intro, re.M), f"{lab}: the top of the notebook needs a question -> cell table"
    for pos, (index, label, text) in enumerate(headings):
        assert f"Question {label}" in intro, f"{lab}: 'Question {label}' is missing from the map at the top"
        stated = POINTS.search(text)
        if not stated:
            continue
        end = headings[pos + 1][0] if pos + 1 < len(headings) else len(nb.cells)
        section = sum(float(_meta(c).get("points", 0)) for c in nb.cells[index:end] if _meta(c).get("grade"))
        assert section == pytest.approx(float(stated.group(1))), (
            f"{lab}: '{text}' states {stated.group(1)} pts but its cells carry {section:g}")


@pytest.mark.parametrize("lab", LABS)
def test_settings_and_colab_cells(lab):
    nb = _source(lab)
    settings = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(settings) == 1, f"{lab}: exactly one settings cell tagged 'parameters'"
    src = settings[0].source
    assert not _meta(settings[0]).get("locked"), f"{lab}: the settings cell must be editable"
    assert re.search(r'^STUDENT_NAME = ""', src, re.M), f"{lab}: the settings cell sets STUDENT_NAME = \"\""
    assert re.search(r"^MODEL_NAME = None\b", src, re.M), f"{lab}: the settings cell sets MODEL_NAME = None"
    assert src.startswith("%matplotlib inline\n"), f"{lab}: the settings cell starts with %matplotlib inline"
    # the shared rule for quick mode ($LABKIT_FAST) and the device lives in labkit.notebook.lab_settings
    assert re.search(r"^FAST, DEVICE = lab_settings\(\)", src, re.M), f"{lab}: FAST, DEVICE = lab_settings()"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"load_model\([^)]*default=\"vgg1[69]\"", code), f"{lab}: load_model(..., default='vgg16'/'vgg19')"
    colab = [c for c in nb.cells if c.cell_type == "code" and '"google.colab" in sys.modules' in c.source]
    assert colab and "git clone --depth 1 https://github.com/labkit-course/labkit" in colab[0].source, (
        f"{lab}: a Colab install cell (git clone + %pip install -e) near the top")
    assert nb.cells.index(colab[0]) < nb.cells.index(settings[0]), f"{lab}: the Colab cell comes first"


def test_feedback_preprocessor_hides_hidden_tests_and_tracebacks():
    """nbgrader_config.py's feedback step, on a hand-made autograded cell (no execution needed)."""
    from traitlets.config import Config

    namespace = runpy.run_path(str(ROOT / "nbgrader_config.py"), init_globals={"get_config": Config})
    cell = nbformat.v4.new_code_cell("x = 1\n### BEGIN HIDDEN TESTS\nassert secret_check(x), 'wrong x'\n"
                                     "### END HIDDEN TESTS\nprint('done')")
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "t", "points": 1}
    cell.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="wrong x",
                                           traceback=["\x1b[31m----> 3 assert secret_check(x), 'wrong x'\x1b[0m"])]
    nb = nbformat.v4.new_notebook(cells=[cell])
    out, _ = namespace["HideHiddenTestsInFeedback"]().preprocess(nb, {})
    text = nbformat.writes(out)
    assert "secret_check" not in text, "hidden test source or traceback lines reach the feedback"
    assert "wrong x" in text and "print('done')" in text, "the error message and visible code must stay"
    assert namespace["HideHiddenTestsInFeedback"] in namespace["c"].GenerateFeedback.preprocessors


# --------------------------------------------------------------------------- the pipeline, once


@dataclass
class Course:
    roots: Dict[str, Path]  # student -> that student's course copy (alice's also holds release/ and solutions/)
    grades: Dict[tuple, dict] = field(default_factory=dict)  # (student, lab) -> gradebook row
    log: str = ""
    seconds: float = 0.0
    solved: Dict[str, object] = field(default_factory=dict)  # one lab's executed solution: lab, path, seconds

    def path(self, step: str, lab: str, student: str = "alice") -> Path:
        if step in ("submitted", "autograded"):
            return A.notebook_path(self.roots[student], step, lab, student)
        return A.notebook_path(self.roots[student], step, lab)

    def read(self, step: str, lab: str, student: str = "alice") -> nbformat.NotebookNode:
        path = self.path(step, lab, student)
        if not path.is_file():
            pytest.fail(f"{path} was not produced. nbgrader said:\n{self.log[-4000:]}")
        return nbformat.read(str(path), as_version=4)


@pytest.fixture(scope="session")
def course(tmp_path_factory) -> Course:
    """The whole pipeline, built once for every test below.

    One course is released and laid out; a copy of it (gradebook included) grades bob while the
    original grades alice, and a third copy executes one lab's solutions the way `make assignments`
    does (``SOLVED_LAB``), in parallel with few CPU threads per kernel: on two cores this overlaps
    the single-threaded parts (kernel start, imports, plotting) of the runs.
    """
    if not LABS:
        pytest.skip("no labs in notebooks/")
    os.environ["LABKIT_FAST"] = "1"
    os.environ.setdefault("LABKIT_MODEL", "efficientnet_lite0")  # CI has no VGG16 weights; skip the download try
    os.environ.setdefault("LABKIT_CELL_TIMEOUT", "600")
    t0 = time.time()
    base = tmp_path_factory.mktemp("course")
    roots = {"alice": A.make_course_copy(base / "alice", LABS)}
    A.generate_release(roots["alice"], "*")
    A.generate_solution(roots["alice"], "*", execute=False)  # autograde executes alice's copy
    roots["bob"] = Path(shutil.copytree(roots["alice"], base / "bob"))
    for lab in LABS:
        for student, step in STUDENTS.items():
            A.submit(roots[student], student, lab, A.notebook_path(roots["alice"], step, lab))
    solver = A.make_course_copy(base / "solver", [SOLVED_LAB])
    A.generate_release(solver, SOLVED_LAB)
    threads = str(max(1, (os.cpu_count() or 2) // (len(roots) + 1)))
    # MPLBACKEND=Agg, as on a hub that sets it: each lab's own `%matplotlib inline` must still show figures
    env = A.kernel_env({"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "MPLBACKEND": "Agg"})

    def grade(student):  # check=False: one lab failing must not hide the others' results
        procs = [step(roots[student], "*", check=False, env=env) for step in (A.autograde, A.generate_feedback)]
        A.export_grades(roots[student], roots[student] / "grades.csv")
        return "\n".join(p.stdout + p.stderr for p in procs)

    def solve():  # `make assignments`' step for one lab: generate_solution, executed
        start = time.time()
        try:
            (path,) = A.generate_solution(solver, SOLVED_LAB, env=env)
        except A.PipelineError as err:
            return {"lab": SOLVED_LAB, "error": str(err)}
        return {"lab": SOLVED_LAB, "path": path, "seconds": time.time() - start}

    with ThreadPoolExecutor(len(roots) + 1) as pool:
        solving = pool.submit(solve)
        logs = list(pool.map(grade, roots))
        solved = solving.result()
    built = Course(roots, log="\n".join(logs), seconds=time.time() - t0, solved=solved)
    for student, root in roots.items():
        built.grades.update({(r["student"], r["assignment"]): r for r in A.grade_table(root, LABS)})
    print(f"\nnotebook pipeline for {len(LABS)} lab(s): {built.seconds:.0f} s")
    return built


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_release_has_no_solutions_or_hidden_tests(lab, course):
    source, release = _source(lab), course.read(A.RELEASE_DIR, lab)
    text = nbformat.writes(release)
    released = "\n".join(c.source for c in release.cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{lab}: '{marker}' left in the release"
    # Instructor-only text: whole regions, and each substantial line that appears nowhere else in the source.
    public = "\n".join(c.source for c in source.cells if not _meta(c).get("solution"))
    public = re.sub(A.HIDDEN_RE, "", public)
    secret = A.solution_regions(source) + A.hidden_test_regions(source)
    assert secret, f"{lab}: the source has no solutions or hidden tests to strip"
    for region in secret:
        assert region.strip() not in released, f"{lab}: solution/hidden text left in the release:\n{region[:300]}"
        for line in _significant_lines(region):
            if line not in public:
                assert line not in released, f"{lab}: this instructor-only line is in the release: {line!r}"
    stubs = [c for c in release.cells if _meta(c).get("solution")]
    assert stubs and all("YOUR CODE HERE" in c.source or "YOUR ANSWER HERE" in c.source for c in stubs), (
        f"{lab}: every solution cell of the release should be a stub for the student")


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solutions_execute_top_to_bottom(lab, course):
    """alice's hand-in is the source with its solutions: autograde ran it with LABKIT_FAST=1."""
    nb = course.read("autograded", lab, "alice")
    errors = A.error_cells(nb)
    assert not errors, f"{lab}: cells raised with the solutions in place:\n  " + "\n  ".join(errors)
    code = [c for c in nb.cells if c.cell_type == "code"]
    unexecuted = [i for i, c in enumerate(code) if c.source.strip() and c.execution_count is None]
    assert not unexecuted, f"{lab}: code cells {unexecuted} did not run (a timeout?)"
    figures = sum(1 for c in code for o in c.outputs if "image/png" in o.get("data", {}))
    assert figures >= 1, f"{lab}: no figure was drawn (matplotlib backend?)"
    assert course.path(A.SOLUTION_DIR, lab).is_file(), "generate_solution produced no solutions notebook"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_nbgrader_validate_passes_on_the_source(lab, course):
    from nbgrader.preprocessors import CheckCellMetadata
    from nbgrader.validator import Validator

    # nbgrader validate = execute + these checks; the notebook was executed by autograde already.
    results = Validator(preprocessors=[CheckCellMetadata]).validate(str(course.path("autograded", lab, "alice")))
    assert not results, f"{lab}: nbgrader validate on the solutions reports {results}"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_nbgrader_validate_invert_on_the_release(lab, course):
    from nbgrader.preprocessors import CheckCellMetadata
    from nbgrader.validator import Validator

    validator = Validator(preprocessors=[CheckCellMetadata], invert=True)
    results = validator.validate(str(course.path("autograded", lab, "bob")))
    assert not results.get("passed"), (
        f"{lab}: these tests pass on the untouched release (they cannot fail):\n"
        + "\n---\n".join(r["source"][:300] for r in results["passed"]))
    assert not results.get("changed") and not results.get("type_changed"), f"{lab}: {results}"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_submission_earns_every_autograded_point(lab, course):
    row = course.grades.get(("alice", lab))
    assert row, f"{lab}: no gradebook entry for alice. nbgrader said:\n{course.log[-3000:]}"
    source_points = sum(float(_meta(c)["points"]) for c in _source(lab).cells
                        if _meta(c).get("grade") and c.cell_type == "code")
    assert row["auto_max"] == pytest.approx(source_points) and source_points > 0
    assert row["auto"] == pytest.approx(row["auto_max"]), (
        f"{lab}: the solutions earn {row['auto']:g}/{row['auto_max']:g} autograded points")


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_untouched_release_earns_zero_without_crashing(lab, course):
    row = course.grades.get(("bob", lab))
    assert row, f"{lab}: no gradebook entry for bob: the autograder crashed? nbgrader said:\n{course.log[-3000:]}"
    nb = course.read("autograded", lab, "bob")
    assert any(c.execution_count for c in nb.cells if c.cell_type == "code"), f"{lab}: bob's notebook never ran"
    assert row["auto"] == 0 and row["auto_max"] > 0, f"{lab}: an untouched release earns {row['auto']:g} points"
    assert row["written"] == 0, f"{lab}: unchanged written answers earn {row['written']:g} points"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("student", list(STUDENTS))
def test_feedback_shows_no_hidden_tests(lab, student, course):
    page = course.roots[student] / "feedback" / student / lab / f"{lab}.html"
    assert page.is_file(), f"no feedback page {page}. nbgrader said:\n{course.log[-3000:]}"
    text = _normalise(page.read_text(encoding="utf-8"))
    source = _source(lab)
    visible = re.sub(A.HIDDEN_RE, "", "\n".join(c.source for c in source.cells))
    tests = [re.sub(A.HIDDEN_RE, "", c.source) for c in source.cells if _meta(c).get("grade") and c.cell_type == "code"]
    shown = [line for t in tests for line in _significant_lines(t)]
    # control: the same normalisation does find the visible test code, so absence below means something
    assert shown and any(_normalise(line) in text for line in shown), f"{lab}: visible tests not found in the page"
    for region in A.hidden_test_regions(source):
        for line in _significant_lines(region):
            if line not in visible:
                assert _normalise(line) not in text, f"{lab}: {student}'s feedback shows a hidden test line: {line!r}"


@pytest.mark.slow
def test_grades_export_lists_every_hand_in(course):
    got = set()
    for student, root in course.roots.items():
        with open(root / "grades.csv", newline="") as fh:
            got |= {(r["student_id"], r["assignment"]) for r in csv.DictReader(fh) if r["student_id"] == student}
    want = {(student, lab) for student in STUDENTS for lab in LABS}
    assert want <= got, f"missing from nbgrader export: {sorted(want - got)}"


def test_lab_settings_reads_labkit_fast_and_picks_a_device(monkeypatch):
    """The settings every lab starts from (labkit.notebook.lab_settings), as the labs' settings cell calls it."""
    import torch

    from labkit.models import resolve_device
    from labkit.notebook import lab_settings

    for value, fast in (("1", True), ("true", True), ("YES", True), ("0", False), ("", False)):
        monkeypatch.setenv("LABKIT_FAST", value)
        assert lab_settings().fast is fast, f"LABKIT_FAST={value!r}"
    monkeypatch.delenv("LABKIT_FAST")
    FAST, DEVICE = lab_settings()  # noqa: N806 - the names the labs use
    assert FAST is False and DEVICE == resolve_device()
    assert lab_settings("cpu").device == torch.device("cpu")


@pytest.mark.slow
def test_executed_solution_records_how_it_ran(course):
    """`make assignments`' solutions say in their metadata what made them: model, fast, seconds, labkit, device."""
    import labkit
    from labkit.models import model_names, resolve_device

    solved = course.solved
    assert "error" not in solved, f"{solved['lab']}: generate_solution failed: {solved.get('error')}"
    nb = nbformat.read(str(solved["path"]), as_version=4)
    run = nb.metadata.get("labkit", {})
    assert run.get("lab") == solved["lab"], "the source's labkit metadata (lab, title, points) must stay"
    assert run.get("model") in model_names(), f"recorded model {run.get('model')!r}"
    if os.environ["LABKIT_MODEL"] == "efficientnet_lite0":  # bundled: no fallback, so it is the one asked for
        assert run["model"] == "efficientnet_lite0"
    assert run.get("fast") is True, "the fixture runs with LABKIT_FAST=1, so the record must say fast: true"
    assert run.get("labkit_version") == labkit.__version__
    assert run.get("device") == str(resolve_device()), f"recorded device {run.get('device')!r}"
    assert 0 < run.get("seconds", 0) <= solved["seconds"], (
        f"recorded {run.get('seconds')} s; the whole generate_solution took {solved['seconds']:.0f} s")
    # the record's probe cell is gone again: the solution has exactly the source's cells
    assert [c.get("id") for c in nb.cells] == [c.get("id") for c in _source(solved["lab"]).cells]
    assert not A.error_cells(nb), f"{solved['lab']}: the executed solution raised: {A.error_cells(nb)}"
