"""Autograding real, broken, hostile and forging submissions end to end (course/grading).

The zoo of submissions is built here from a real lab: its source notebook is trimmed to the cells up to its
first graded block (the solutions and tests before the first figure, plus one written answer) so a kernel needs
seconds, released with nbgrader in a scratch course, and the student versions are derived from that release
(the "correct" student gets the source's solutions). Expected scores come from the gradebook's own point
values, never from hard-coded numbers.

Three kinds of hand-ins are graded in one run (2 workers): broken ones (invalid files, loops, memory hogs,
deleted or rewritten tests), snooping ones (files, network, hidden tests), and *forging* ones: an untouched
release plus a few lines that change how the interpreter reports errors, compares values, traces code or
talks to the grader. Under nbgrader's own design each of those could pass tests; here test cells run in the
trusted grader (course/grading/verdicts.py), so each scores 0 while the honest solution keeps full marks.
"""
from __future__ import annotations

import copy
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from course.grading import autograde, execution, gradebook, integrity, isolation, scrub  # noqa: E402
from course.grading.settings import Settings  # noqa: E402
from grading_zoo import (FORGERS, _bwrap, _env_with_venv, _is_code_solution, _is_test, _meta,  # noqa: E402
                         _nbgrader, build_zoo, expected_auto, expected_for, html_text, notebook_outputs, pick_lab,
                         sandbox_processes, solved, submit, tree_hashes, trimmed_source)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grading sandbox is Linux-only")


CELL_TIMEOUT = 60  # s: the lab's setup cell loads a model and photos on a busy 2-core CI machine
NOTEBOOK_TIMEOUT = 300
MEMORY_MB = 2500


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A scratch course with the trimmed lab released (gradebook + release/), and its solutions."""
    lab = pick_lab()
    root = tmp_path_factory.mktemp("course")
    shutil.copy2(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    src = root / "notebooks" / lab / f"{lab}.ipynb"
    src.parent.mkdir(parents=True)
    source = trimmed_source(lab)
    nbformat.write(source, str(src))
    _nbgrader(["generate_assignment", lab, "--force"], root)
    release = nbformat.read(str(root / "release" / lab / f"{lab}.ipynb"), as_version=4)
    return {"root": root, "lab": lab, "source": source, "release": release}


def _db(course):
    return "sqlite:///" + str(course["root"] / "gradebook.db")


def test_integrity_restores_deleted_cells_and_reports_edited_ones(course):
    cells = integrity.source_cells(_db(course), course["lab"], course["lab"])
    untouched = copy.deepcopy(course["release"])
    assert integrity.check_and_repair(untouched, cells).as_dict() == {"flags": [], "restored": [], "tampered": []}
    assert untouched == course["release"]

    test_ids = [_meta(c)["grade_id"] for c in course["release"].cells if _is_test(c)]
    order = [_meta(c).get("grade_id") for c in course["release"].cells]
    nb = copy.deepcopy(course["release"])
    nb.cells = [c for c in nb.cells if _meta(c).get("grade_id") != test_ids[0]]
    check = integrity.check_and_repair(nb, cells)
    assert check.restored == [test_ids[0]] and any("deleted" in f for f in check.flags)
    assert [_meta(c).get("grade_id") for c in nb.cells] == order  # back in its place
    restored = next(c for c in nb.cells if _meta(c).get("grade_id") == test_ids[0])
    assert restored.source == next(c.source for c in cells if c.name == test_ids[0])  # the gradebook's

    nb = copy.deepcopy(course["release"])
    test = next(c for c in nb.cells if _is_test(c))
    test.source = "pass"
    test.metadata.nbgrader["points"] = 100
    dup = copy.deepcopy(test)
    nb.cells.append(dup)
    check = integrity.check_and_repair(nb, cells)
    assert check.tampered == [test_ids[0], test_ids[0]]
    assert any("content edited" in f and "points" in f for f in check.flags)
    assert any("appears 2 times" in f for f in check.flags)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"), (b'{"cells": [', "invalid JSON"), (b"[1, 2]", "nbformat-4"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"cell_type": "nonsense"}]}', "not a notebook"),
])
def test_unreadable_submissions_are_recognised(tmp_path, content, reason):
    path = tmp_path / "x.ipynb"
    path.write_bytes(content)
    with pytest.raises(integrity.UnreadableSubmission, match=reason):
        integrity.read_submission(path)


def test_scrub_outputs_removes_hidden_test_quotes_and_huge_outputs_but_keeps_error_names():
    hidden = scrub.hidden_test_lines(
        ["assert f(1) == 1\n### BEGIN HIDDEN TESTS\nassert f(12345) == secret_value(12345)\n### END HIDDEN TESTS\n"],
        ["assert f(1) == 1\n"])
    assert hidden == {"assert f(12345) == secret_value(12345)"}
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="ok\nassert f(12345) == secret_value(12345)\n"),
        nbformat.v4.new_output("display_data", data={"image/png": "A" * 3_000_000}),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="assert f(12345) == secret_value(12345)",
                               traceback=["..."]),
        nbformat.v4.new_output("stream", name="stdout", text="fine\n"),
        nbformat.v4.new_output("error", ename="AssertionError", evalue="f(12345) is wrong: check the sign",
                               traceback=["----> 3 assert f(12345) == secret_value(12345)", "AssertionError: ..."]),
    ]
    nb.cells.append(cell)
    before = json.dumps(nb.cells[0].outputs)
    removed = scrub.ScrubOutputs(max_output_mb=2.0).scrub(nb, hidden)
    outs = nb.cells[0].outputs
    assert "secret_value" in before and "secret_value" not in json.dumps(outs)
    assert removed == {"too_large": [{"cell": "cell 0", "mb": 3.0}], "hidden_tests": ["cell 0"] * 3}
    assert [o["output_type"] for o in outs] == ["stream", "display_data", "error", "stream", "error"]
    assert outs[2]["ename"] == "AssertionError"  # the cell still failed: its grade cannot change
    assert "over the 2 MB" in outs[1]["data"]["text/plain"] and outs[3]["text"] == "fine\n"
    # a failing hidden test keeps its helpful message, only the quoting traceback goes
    assert outs[4]["evalue"] == "f(12345) is wrong: check the sign"
    assert outs[4]["traceback"] == ["AssertionError: f(12345) is wrong: check the sign"]


def _settings(course, **kw):
    base = dict(lab=course["lab"], course=course["root"], workers=2, cell_timeout=CELL_TIMEOUT,
                notebook_timeout=NOTEBOOK_TIMEOUT, memory_mb=MEMORY_MB, quiet=True)
    base.update(kw)
    return Settings(**base)


@pytest.fixture(scope="module")
def zoo_run(course):
    """Every zoo submission handed in, then `run` with 2 workers: grading, merge, feedback, export."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    root, lab = course["root"], course["lab"]
    secrets = [root / "notebooks" / lab / f"{lab}.ipynb", root / "gradebook.db", root / "nbgrader_config.py",
               ROOT / "course" / "labs" / f"{lab}.py", ROOT / "notebooks" / lab / f"{lab}.ipynb", ROOT / ".git" / "HEAD",
               root / "submitted" / "alice_correct" / lab / f"{lab}.ipynb"]
    zoo = build_zoo(course, secrets, port)
    assert set(zoo) == set(expected_for(course))
    for student, content in zoo.items():
        submit(root, lab, student, content)
    hashes = tree_hashes(root / "submitted")
    settings = _settings(course, workers=2)
    t0 = time.time()
    results = {r["student"]: r for r in autograde.grade_all(settings, log=lambda *a: None)}
    rows = {r["student"]: r for r in autograde.finish(settings, log=lambda *a: None)}
    seconds = time.time() - t0
    server.settimeout(0.2)
    connections = 0
    try:
        while True:
            server.accept()[0].close()
            connections += 1
    except socket.timeout:
        pass
    server.close()
    return {"results": results, "rows": rows, "hashes": hashes, "seconds": seconds, "connections": connections,
            "settings": settings}


@pytest.mark.slow
def test_zoo_every_submission_gets_its_score_and_the_run_never_stops(course, zoo_run):
    rows, results, expected = zoo_run["rows"], zoo_run["results"], expected_for(course)
    assert set(rows) == set(expected)
    with open(zoo_run["settings"].out / "grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in __import__("csv").DictReader(fh)}
    for student, (statuses, failing, flag) in expected.items():
        total = expected_auto(course, "none")[1]
        wants = {expected_auto(course, f)[0] for f in failing}
        row = rows[student]
        assert row["status"] in statuses, (student, row["reason"])
        assert row["auto"] in wants and row["auto_max"] == total, (student, row)
        assert exported[student] == row["auto"], student  # nbgrader's own export agrees (answers ungraded)
        if flag:
            assert any(flag in f for f in row["flags"]), (student, row["flags"])
        if row["status"] in ("graded", "stopped"):
            assert results[student]["sandbox"] and set(results[student]["sandbox"]) <= {"bwrap", "none"}
            if _bwrap():
                assert results[student]["sandbox"] == ["bwrap"] and row["sandbox"] == "bwrap"  # the report says so
    full, _ = expected_auto(course, "none")
    assert rows["alice_correct"]["auto"] == full > 0  # the correct student keeps full marks beside the zoo
    assert rows["kim_rewrites_test"]["auto"] == 0  # her `pass` test did not count


@pytest.mark.slow
def test_forgeries_score_zero_and_their_tests_were_judged_by_the_grader(course, zoo_run):
    """Every interpreter-tampering hand-in gets 0; the honest one full marks. The test cells' outputs come from
    the trusted evaluation: the kernel never ran them (no execution count), so nothing it did there counts."""
    lab, root = course["lab"], course["root"]
    tests = [_meta(c)["grade_id"] for c in course["release"].cells if _is_test(c)]
    for student in FORGERS + ["alice_correct"]:
        nb = nbformat.read(str(root / "autograded" / student / lab / f"{lab}.ipynb"), as_version=4)
        for cell in nb.cells:
            if _meta(cell).get("grade_id") in tests:
                assert cell.execution_count is None, (student, _meta(cell)["grade_id"])
                errors = [o for o in cell.outputs if o["output_type"] == "error"]
                assert bool(errors) == (student != "alice_correct"), (student, cell.outputs)
        events = [e["event"] for e in zoo_run["results"][student]["events"]]
        if zoo_run["rows"][student]["status"] == "graded":
            assert events.count("trusted_evaluation") == len(tests), (student, events)
        assert zoo_run["rows"][student]["auto"] == (expected_auto(course, "none")[0] if student == "alice_correct"
                                                    else 0), student


@pytest.mark.slow
def test_a_wrapper_of_the_library_implementation_scores_zero_on_that_test(course, zoo_run):
    if "wendy_wrapper" not in zoo_run["rows"]:
        pytest.skip("the lab under test has no forbidden-name test in its first block")
    lab = course["lab"]
    nb = course["root"] / "autograded" / "wendy_wrapper" / lab / f"{lab}.ipynb"
    outs = notebook_outputs(nb, "test_relu_fractions")
    assert [o.get("ename") for o in outs if o["output_type"] == "error"] == ["ForbiddenCall"], outs
    assert "labkit.layers.PrePost" in outs[-1]["evalue"] or ".zeroed()" in outs[-1]["evalue"]
    full, _ = expected_auto(course, "none")
    assert zoo_run["rows"]["alice_correct"]["auto"] == full


@pytest.mark.slow
def test_zoo_failures_are_recorded_in_the_autograded_notebooks(course, zoo_run):
    root, lab = course["root"], course["lab"]
    sol = next(_meta(c)["grade_id"] for c in course["release"].cells if _is_code_solution(c))
    test = next(_meta(c)["grade_id"] for c in course["release"].cells if _is_test(c))
    path = lambda s: root / "autograded" / s / lab / f"{lab}.ipynb"  # noqa: E731
    enames = lambda s, g: [o.get("ename") for o in notebook_outputs(path(s), g) if o["output_type"] == "error"]  # noqa: E731
    assert enames("dan_syntax_error", sol) == ["SyntaxError"]
    assert enames("eve_raises", sol) == ["RuntimeError"]
    assert enames("hal_memory_hog", sol) == ["MemoryError"]  # the data limit, not the machine, stopped it
    assert enames("fay_infinite_loop", sol) == ["CellTimeoutError"]  # she ignored SIGINT: the kernel was killed
    assert enames("fay_infinite_loop", test) == [execution.NOT_RUN]
    assert [e["event"] for e in zoo_run["results"]["fay_infinite_loop"]["events"]] == ["unresponsive"]
    assert enames("alice_correct", test) == []
    assert not path("ben_invalid_json").exists() and not path("cara_empty").exists()
    assert path("max_big_output").stat().st_size < 2_000_000  # the 67 MB image did not go in


@pytest.mark.slow
def test_zoo_snooping_student_could_read_nothing_and_reach_no_network(course, zoo_run):
    lab = course["lab"]
    nb = course["root"] / "autograded" / "lea_snoops" / lab / f"{lab}.ipynb"
    sol = next(_meta(c)["grade_id"] for c in course["release"].cells if _is_code_solution(c))
    text = "".join(o.get("text", "") for o in notebook_outputs(nb, sol))
    assert "SNOOP []" in text, text  # every read and connect failed (she recorded each attempt)
    assert zoo_run["connections"] == 0  # the grader-side server never saw her
    full, _ = expected_auto(course, "none")
    assert zoo_run["rows"]["lea_snoops"]["auto"] == full  # her code deletes her solution if anything leaked
    if _bwrap():
        assert zoo_run["results"]["lea_snoops"]["sandbox"] == ["bwrap"]


@pytest.mark.slow
def test_no_hidden_test_ever_reaches_the_kernel(course, zoo_run):
    """nia's hook prints every cell her kernel receives: no hidden-test line is among them (nothing needed
    scrubbing), because test cells are evaluated in the grader."""
    lab = course["lab"]
    hidden = scrub.gradebook_hidden_lines(_db(course), lab, lab)
    nb = nbformat.read(str(course["root"] / "autograded" / "nia_leaks_tests" / lab / f"{lab}.ipynb"), as_version=4)
    printed = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" and not _is_test(c)
                        for o in c.get("outputs", []))
    assert "print(info.raw_cell)" in printed or "def " in printed  # her hook did print what she received
    assert not [line for line in hidden if line in printed]
    assert not any("hidden tests" in f for f in zoo_run["rows"]["nia_leaks_tests"]["flags"])


@pytest.mark.slow
def test_zoo_feedback_shows_no_hidden_tests(course, zoo_run):
    from nbconvert import HTMLExporter

    root, lab = course["root"], course["lab"]
    hidden = scrub.gradebook_hidden_lines(_db(course), lab, lab)
    assert hidden, "the lab under test has no hidden tests: pick another (LABKIT_AUTOGRADE_LAB)"
    pages = sorted((root / "feedback").glob(f"*/{lab}/{lab}.html"))
    graded = {s for s, (statuses, _, _) in expected_for(course).items() if "unreadable" not in statuses}
    assert {p.parts[-3] for p in pages} == graded
    for page in pages:
        text = html_text(page)
        assert not [line for line in hidden if line in text], page
    # positive control: the same check finds them in an HTML page of an autograded notebook
    body, _ = HTMLExporter().from_filename(str(root / "autograded" / "nia_leaks_tests" / lab / f"{lab}.ipynb"))
    control = root / "control.html"
    control.write_text(body)
    assert [line for line in hidden if line in html_text(control)]


@pytest.mark.slow
def test_zoo_submissions_are_unchanged_on_disk(course, zoo_run):
    assert tree_hashes(course["root"] / "submitted") == zoo_run["hashes"]
    for res in zoo_run["results"].values():
        assert res["submission_sha256"] == {k[len(res["student"]) + len(course["lab"]) + 2:]: v for k, v in
                                            zoo_run["hashes"].items() if k.startswith(res["student"] + "/")}


@pytest.mark.slow
def test_serial_regrade_matches_parallel_and_is_idempotent(course, zoo_run):
    from nbgrader.api import Gradebook

    subset = ["alice_correct", "kim_rewrites_test", "ben_invalid_json"]  # full marks, a restored test, unreadable
    settings = _settings(course, workers=1, students=subset)
    again = {r["student"]: r for r in autograde.grade_all(settings, log=lambda *a: None)}
    autograde.finish(settings, log=lambda *a: None)
    for student in subset:
        assert again[student]["scores"]["cells"] == zoo_run["results"][student]["scores"]["cells"], student
        assert again[student]["status"] == zoo_run["results"][student]["status"]
    with Gradebook(_db(course)) as gb:
        subs = gb.find_assignment(course["lab"]).submissions
        assert sorted(s.student.id for s in subs) == sorted(expected_for(course))  # one each, none added
    with open(settings.out / "grades.csv", newline="") as fh:
        ids = [r["student_id"] for r in __import__("csv").DictReader(fh)]
    assert sorted(ids) == sorted(expected_for(course))  # no duplicate rows
    assert sorted(p.stem for p in (settings.out / "results").glob("*.json")) == sorted(expected_for(course))


@pytest.mark.slow
def test_hard_time_limit_kills_nbgrader_and_still_records_zero(course, zoo_run):
    lab = course["lab"]
    submit(course["root"], lab, "olga_hard_limit", solved(course["release"], course["source"]))
    settings = _settings(course, workers=1, students=["olga_hard_limit"], notebook_timeout=60, hard_grace=-50)
    res = autograde.grade_all(settings, log=lambda *a: None)[0]
    assert res["status"] == "not_executed" and "hard time limit" in res["reason"]
    assert res["scores"]["auto"] == 0.0
    test = next(_meta(c)["grade_id"] for c in course["release"].cells if _is_test(c))
    nb = course["root"] / "autograded" / "olga_hard_limit" / lab / f"{lab}.ipynb"
    assert [o.get("ename") for o in notebook_outputs(nb, test)] == [execution.NOT_RUN]
    assert not sandbox_processes(str(settings.scratch))


@pytest.mark.slow
def test_a_killed_driver_leaves_earlier_grades_intact_and_no_kernels_behind(course, zoo_run):
    import sqlite3

    lab, root = course["lab"], course["root"]
    settings = _settings(course)
    everyone = list(expected_for(course)) + ["olga_hard_limit"]
    before = {s: gradebook.scores(_db(course), lab, s)["cells"] for s in everyone}
    results = settings.out / "results"
    stamp = {s: json.loads((results / f"{s}.json").read_text())["merged_at"] for s in everyone}
    cmd = [sys.executable, "-m", "course.grading.autograde", "run", "--lab", lab, "--course", str(root),
           "--student", "ben_invalid_json", "--student", "cara_empty", "--student", "alice_correct",
           "--workers", "1", "--cell-timeout", str(CELL_TIMEOUT), "--quiet"]
    driver = subprocess.Popen(cmd, cwd=str(ROOT), env=_env_with_venv(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    deadline = time.time() + 180
    fresh = lambda s: json.loads((results / f"{s}.json").read_text())["merged_at"] != stamp[s]  # noqa: E731
    alice_state = settings.scratch / "students" / "alice_correct" / "state"
    while time.time() < deadline and not (fresh("ben_invalid_json") and fresh("cara_empty")
                                          and alice_state.is_dir() and any(alice_state.glob("*.json"))):
        assert driver.poll() is None, driver.stdout.read().decode()[-2000:]
        time.sleep(0.3)
    assert driver.poll() is None, "alice was graded before the kill: make her notebook slower"
    driver.kill()  # SIGKILL: no cleanup code runs in the driver
    driver.wait()
    runtime = Path((settings.scratch / "students" / "alice_correct" / "runtime-dir").read_text())
    gone = time.time() + 30  # nbgrader dies with the driver (PDEATHSIG), the kernel with bwrap's parent
    while (sandbox_processes(str(settings.scratch)) or sandbox_processes(str(runtime))) and time.time() < gone:
        time.sleep(0.3)
    assert not sandbox_processes(str(settings.scratch)), "kernels outlived the driver"
    assert not sandbox_processes(str(runtime)), "kernels outlived the driver"
    assert {s: gradebook.scores(_db(course), lab, s)["cells"] for s in everyone} == before
    assert not fresh("alice_correct")  # her earlier result stands, untouched
    with sqlite3.connect(str(root / "gradebook.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # what the killed run left (alice's scratch course, its socket dir) goes with the next run's sweep
    alice = settings.scratch / "students" / "alice_correct"
    runtime = Path((alice / "runtime-dir").read_text())
    assert runtime.is_dir()
    isolation.cleanup_stale(alice)
    assert not runtime.exists()
