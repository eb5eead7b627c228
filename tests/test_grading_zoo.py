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

import ast
import copy
import json
import os
import re
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

from course.grading import autograde, execution, gradebook, integrity, isolation, scrub, submission  # noqa: E402
from course.grading.settings import Settings  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grading sandbox is Linux-only")

LAB_PREFERENCE = ("lab3_relu", "lab4_quantization", "lab1_saliency", "lab2_filters", "lab5_circuits")
CELL_TIMEOUT = 60  # s: the lab's setup cell loads a model and photos on a busy 2-core CI machine
NOTEBOOK_TIMEOUT = 300
MEMORY_MB = 2500
SOLUTION_MARKERS = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[^\n]*\n?", re.M)


def _env_with_venv():
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env.setdefault("LABKIT_FAST", "1")
    env.pop("MPLBACKEND", None)
    return env


def _nbgrader(args, course):
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=str(course), env=_env_with_venv(),
                          capture_output=True, text=True)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _meta(cell):
    return cell.metadata.get("nbgrader", {})


def _is_test(cell):
    return cell.cell_type == "code" and _meta(cell).get("grade") and not _meta(cell).get("solution")


def _is_code_solution(cell):
    return cell.cell_type == "code" and _meta(cell).get("solution")


def pick_lab():
    wanted = os.environ.get("LABKIT_AUTOGRADE_LAB")
    labs = [wanted] if wanted else LAB_PREFERENCE
    for lab in labs:
        path = ROOT / "notebooks" / lab / f"{lab}.ipynb"
        if path.is_file():
            nb = nbformat.read(str(path), as_version=4)
            if any(_is_code_solution(c) for c in nb.cells) and any(_is_test(c) for c in nb.cells):
                return lab
    pytest.skip("no lab with a solution and a test cell in notebooks/")


def trimmed_source(lab):
    """The lab's source up to its first graded block: every cell before the first solution, then solutions,
    tests and markdown up to the first locked ungraded code cell after it (figures nobody grades), plus the
    first written answer cell."""
    nb = nbformat.read(str(ROOT / "notebooks" / lab / f"{lab}.ipynb"), as_version=4)
    first_sol = next(i for i, c in enumerate(nb.cells) if _is_code_solution(c))
    end = next((i for i, c in enumerate(nb.cells) if i > first_sol and c.cell_type == "code"
                and _meta(c).get("locked") and not _meta(c).get("grade")), len(nb.cells))
    last_test = max(i for i, c in enumerate(nb.cells[:end]) if _is_test(c))
    answers = [c for c in nb.cells if c.cell_type == "markdown" and _meta(c).get("grade") and _meta(c).get("solution")]
    kept = nb.cells[:last_test + 1]
    nb.cells = kept + [c for c in answers[:1] if not any(c is k for k in kept)]
    return nb


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


def solved(release, source):
    """The release with every solution cell filled in from the source (what a perfect student hands in)."""
    nb = copy.deepcopy(release)
    by_id = {_meta(c).get("grade_id"): c for c in source.cells}
    for cell in nb.cells:
        if _meta(cell).get("solution"):
            src = by_id[_meta(cell)["grade_id"]].source
            cell.source = SOLUTION_MARKERS.sub("", src) if cell.cell_type == "code" else \
                "The non-linearity removes the negative responses; my figures show where."
    return nb


def defined_names(code):
    return [n.name for n in ast.parse(code).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]


def build_zoo(course, secrets, port):
    """student -> notebook (or raw bytes) of every kind of broken submission."""
    lab, release, source = course["lab"], course["release"], course["source"]
    good = solved(release, source)
    sol_idx = next(i for i, c in enumerate(good.cells) if _is_code_solution(c))
    test_idx = next(i for i, c in enumerate(good.cells) if _is_test(c))
    correct_code = good.cells[sol_idx].source
    names = defined_names(correct_code)

    def variant(new_solution=None, edit=None, base=good):
        nb = copy.deepcopy(base)
        if new_solution is not None:
            nb.cells[sol_idx].source = new_solution
        if edit:
            edit(nb)
        return nb

    snoop = f'''
import json as _json, socket as _socket
_leaks = []
for _path in {json.dumps([str(p) for p in secrets])} + ["{lab}.ipynb", "../autograded", "../gradebook.db"]:
    try:
        with open(_path, "rb") as _fh:
            _fh.read(1)
        _leaks.append(_path)
    except OSError:
        pass
for _addr in [("127.0.0.1", {port}), ("1.1.1.1", 53)]:
    _s = _socket.socket()
    _s.settimeout(3)
    try:
        _s.connect(_addr)
        _leaks.append("%s:%d" % _addr)
    except OSError:
        pass
    finally:
        _s.close()
print("SNOOP " + _json.dumps(_leaks))
'''
    unleash = f"\nif _leaks:  # a leak must cost the points: the test cell then fails\n    del {', '.join(names)}\n"
    big = ("\nimport base64 as _b64, os as _os\nfrom IPython.display import display as _display\n"
           "_display({'image/png': _b64.b64encode(_os.urandom(50_000_000)).decode()}, raw=True)\n")

    # prints every later cell (the hidden tests included) into its output: must not reach the feedback
    leak_hook = "get_ipython().events.register('pre_run_cell', lambda info: print(info.raw_cell))\n"

    def delete_test(nb):
        del nb.cells[test_idx]

    def neuter_test(nb):
        nb.cells[test_idx].source = "pass"

    good_text = nbformat.writes(good)
    zoo = {
        "alice_correct": good,
        "ben_invalid_json": good_text[: len(good_text) // 2].encode(),
        "cara_empty": b"",
        "dan_syntax_error": variant(correct_code + "\n\ndef broken(:\n    pass\n"),
        "eve_raises": variant('raise RuntimeError("my code is broken")\n' + correct_code),
        "fay_infinite_loop": variant("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)  # no interrupts\n"
                                     "while True:\n    pass\n" + correct_code),
        "hal_memory_hog": variant("_hog = []\nwhile True:\n    _hog.append(bytearray(100_000_000))\n" + correct_code),
        "nia_leaks_tests": variant(leak_hook + correct_code),
        "jon_deletes_test": variant(edit=delete_test),
        "kim_rewrites_test": variant(edit=neuter_test, base=release),
        "lea_snoops": variant(snoop + correct_code + unleash),
        "max_big_output": variant(correct_code + big),
    }
    release_code = release.cells[sol_idx].source
    every_name = [n for c in good.cells if _is_code_solution(c) for n in defined_names(c.source)]
    for student, (prefix, suffix) in forgeries(every_name).items():
        zoo[student] = variant(prefix + release_code + suffix, base=release)
    if "relu_fractions" in every_name:  # lab3: the library's own implementation, wrapped
        idx = next(i for i, c in enumerate(good.cells) if _is_code_solution(c) and "relu_fractions" in c.source)
        wrapper = ("from labkit.layers import PrePost\n\n\ndef relu_fractions(before, floor=0.0, cap=float('inf')):\n"
                   "    after = before.clamp(min=floor, max=cap)\n"
                   "    record = PrePost('layer', 'relu', before - floor, after - floor, cap - floor)\n"
                   "    return record.zeroed(), record.clipped()\n")

        def wrap(nb):
            nb.cells[idx].source = wrapper
        zoo["wendy_wrapper"] = variant(edit=wrap)
    return zoo


def forgeries(names):
    """student -> (lines before, lines after) the untouched release's first solution cell: each changes how the
    interpreter reports, compares, traces or talks, the way a student would try to make tests pass.
    ``fakes`` defines every graded function to return plausible tensors (shapes and types pass)."""
    fakes = "".join(f"\n\ndef {n}(*args, **kwargs):\n    import torch as _t\n    return (_t.zeros(1), _t.zeros(1))\n"
                    for n in names)
    return {
        # exception display and handling
        "f01_showtraceback": ("_ip = get_ipython()\n_ip.showtraceback = lambda *a, **k: None\n"
                              "_ip._showtraceback = lambda *a, **k: None\n", ""),
        "f02_custom_exc": ("get_ipython().set_custom_exc((BaseException,), "
                           "lambda shell, etype, value, tb, tb_offset=None: None)\n", ""),
        "f03_exception_classes": ("import builtins, sys\nsys.excepthook = lambda *a: None\n"
                                  "class _Quiet(BaseException):\n    pass\n"
                                  "builtins.AssertionError = builtins.NotImplementedError = _Quiet\n", ""),
        # patched comparisons and assertion helpers
        "f04_comparisons": ("import torch as _t, numpy as _np\n_t.allclose = _t.equal = lambda *a, **k: True\n"
                            "_np.allclose = _np.array_equal = lambda *a, **k: True\n"
                            "_np.testing.assert_allclose = _t.testing.assert_close = lambda *a, **k: None\n", fakes),
        # builtins
        "f05_builtins": ("import builtins\nbuiltins.all = builtins.any = lambda *a, **k: True\n"
                         "builtins.AssertionError = type('AssertionError', (Warning,), {})\n", fakes),
        # tracing: jump over every assert and raise in later cells
        "f06_tracing": ("import sys as _s, linecache as _lc, threading as _th\n"
                        "def _skip(frame, event, arg):\n"
                        "    if event == 'line':\n"
                        "        line = _lc.getline(frame.f_code.co_filename, frame.f_lineno).lstrip()\n"
                        "        if line.startswith(('assert', 'raise')):\n"
                        "            try:\n                frame.f_lineno = frame.f_lineno + 1\n"
                        "            except ValueError:\n                pass\n"
                        "    return _skip\n_s.settrace(_skip)\n_th.settrace(_skip)\n"
                        "_s.setprofile(lambda frame, event, arg: None)\n", fakes),
        # IPython hooks: input transformers and AST transformers drop asserts from every later cell
        "f07_input_transformer": ("get_ipython().input_transformers_post.append(\n"
                                  "    lambda lines: [l for l in lines if not l.lstrip().startswith(('assert', 'raise'))])\n",
                                  fakes),
        "f08_ast_and_events": ("import ast as _ast\nclass _NoAsserts(_ast.NodeTransformer):\n"
                               "    def visit_Assert(self, node):\n        return _ast.Pass()\n"
                               "    def visit_Raise(self, node):\n        return _ast.Pass()\n"
                               "get_ipython().ast_transformers.append(_NoAsserts())\n"
                               "get_ipython().events.register('pre_run_cell', lambda info: None)\n", fakes),
        # the kernel's replies to the grader: errors become silence, failed cells report success
        "f09_kernel_messages": ("_kernel = get_ipython().kernel\n_send = _kernel.session.send\n"
                                "def _forge(stream, msg_or_type, content=None, *a, **k):\n"
                                "    kind = msg_or_type if isinstance(msg_or_type, str) else msg_or_type['header']['msg_type']\n"
                                "    if kind == 'error':\n        return None\n"
                                "    if kind == 'execute_reply' and content and content.get('status') == 'error':\n"
                                "        content = {'status': 'ok', 'execution_count': content.get('execution_count'),\n"
                                "                   'user_expressions': {}, 'payload': []}\n"
                                "    return _send(stream, msg_or_type, content, *a, **k)\n"
                                "_kernel.session.send = _forge\n", ""),
    }


def submit(course_root, lab, student, content):
    folder = Path(course_root) / "submitted" / student / lab
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{lab}.ipynb"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        nbformat.write(content, str(path))
    (folder / "timestamp.txt").write_text("2026-01-15 10:00:00.000000 UTC")
    return path


def expected_auto(course, failing):
    """(autograded points a student gets, total): ``failing`` is "none", "all", or the indices of failing tests."""
    tests = [c for c in course["release"].cells if _is_test(c)]
    points = [float(_meta(c)["points"]) for c in tests]
    lost = {"none": (), "all": range(len(tests))}.get(failing, failing)
    return sum(p for i, p in enumerate(points) if i not in lost), sum(points)


def html_text(path):
    """Visible text of an HTML page: tags dropped (syntax highlighting splits lines into spans), entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", Path(path).read_text(encoding="utf-8")))


def notebook_outputs(path, grade_id):
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id)
    return cell.get("outputs", [])


def tree_hashes(folder):
    return submission.snapshot(Path(folder))


def sandbox_processes(marker):
    """Processes whose command line mentions ``marker`` (a scratch path): leftovers of a grading run."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# --------------------------------------------------------------------------- unit: integrity and scrubbing


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


# --------------------------------------------------------------------------- the zoo, graded for real

# student -> (statuses allowed, failing tests allowed: "none" / "all" / indices, flag text expected or None)
EXPECTED = {
    "alice_correct": (("graded",), ("none",), None),
    "ben_invalid_json": (("unreadable",), ("all",), None),
    "cara_empty": (("unreadable",), ("all",), None),
    "dan_syntax_error": (("graded",), ((0,),), None),
    "eve_raises": (("graded",), ((0,),), None),
    "fay_infinite_loop": (("stopped",), ("all",), None),
    # the hog keeps its memory (IPython holds the traceback): the next call fails or the kernel dies
    "hal_memory_hog": (("graded", "stopped"), ((0,), "all"), None),
    "jon_deletes_test": (("graded",), ("none",), "was deleted: restored from the gradebook"),
    "kim_rewrites_test": (("graded",), ("all",), "was changed (content edited)"),
    "lea_snoops": (("graded",), ("none",), None),
    "max_big_output": (("graded",), ("none",), "outputs over the size limit removed"),
    "nia_leaks_tests": (("graded",), ("none",), None),  # her hook prints every cell she receives: no test
}
FORGERS = [f"f0{i}_{n}" for i, n in enumerate(["showtraceback", "custom_exc", "exception_classes", "comparisons",
                                                "builtins", "tracing", "input_transformer", "ast_and_events",
                                                "kernel_messages"], start=1)]
# a forger may also break its own kernel (a tracer slows every line): stopped early, still zero
EXPECTED.update({name: (("graded", "stopped"), ("all",), None) for name in FORGERS})


def expected_for(course):
    """EXPECTED for this lab: lab3 adds the wrapper of the library's implementation (0 on that test only)."""
    expected = dict(EXPECTED)
    tests = [_meta(c)["grade_id"] for c in course["release"].cells if _is_test(c)]
    if "test_relu_fractions" in tests:
        expected["wendy_wrapper"] = (("graded",), ((tests.index("test_relu_fractions"),),), None)
    return expected


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


def _bwrap():
    from course.grading import sandbox

    return sandbox.bwrap_works(sandbox.find_bwrap(), as_root=os.geteuid() == 0)


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
