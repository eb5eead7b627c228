"""Autograding real, broken and hostile submissions: course/grading (sandbox, integrity, driver).

The zoo of submissions is built here from a real lab: its source notebook is trimmed to the cells up to the
first autograded test (plus one written answer) so a kernel needs seconds, released with nbgrader in a scratch
course, and the student versions are derived from that release (the "correct" student gets the source's
solutions). Expected scores come from the gradebook's own point values, never from hard-coded numbers.

Everything runs for real: nbgrader, the sandboxed kernels (namespaces when the tests run as root or with
user namespaces; otherwise the tests check the loud fallback instead), the parallel driver and its merge.
"""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.grading import autograde, integrity, preprocessors, sandbox  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grading sandbox is Linux-only")

LAB_PREFERENCE = ("lab4_quantization", "lab1_saliency", "lab3_relu", "lab2_filters", "lab5_circuits")
CELL_TIMEOUT = 60  # s: the lab's setup cell loads a model and photos on a busy 2-core CI machine
NOTEBOOK_TIMEOUT = 240
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
    """The lab's source up to its first test cell (locked, ungraded code between the first solution and that
    test dropped: figures nobody grades), plus the first written answer cell."""
    nb = nbformat.read(str(ROOT / "notebooks" / lab / f"{lab}.ipynb"), as_version=4)
    first_sol = next(i for i, c in enumerate(nb.cells) if _is_code_solution(c))
    first_test = next(i for i, c in enumerate(nb.cells) if i > first_sol and _is_test(c))
    keep = [c for i, c in enumerate(nb.cells[:first_test + 1])
            if not (first_sol < i < first_test and c.cell_type == "code" and _meta(c).get("locked")
                    and not _meta(c).get("grade"))]
    answers = [c for c in nb.cells if c.cell_type == "markdown" and _meta(c).get("grade") and _meta(c).get("solution")]
    nb.cells = keep + answers[:1]
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
                "Quantisation trades accuracy for size; my figures show where it breaks."
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
    unleash = f"\nif _leaks:  # a leak must cost the points: the test cell then fails\n    for _n in {names!r}:\n" \
              f"        globals().pop(_n, None)\n"
    big = ("\nimport base64 as _b64, os as _os\nfrom IPython.display import display as _display\n"
           "_display({'image/png': _b64.b64encode(_os.urandom(50_000_000)).decode()}, raw=True)\n")

    # prints every later cell (the hidden tests included) into its output: must not reach the feedback
    leak_hook = "get_ipython().events.register('pre_run_cell', lambda info: print(info.raw_cell))\n"

    def delete_test(nb):
        del nb.cells[test_idx]

    def neuter_test(nb):
        nb.cells[test_idx].source = "pass"

    good_text = nbformat.writes(good)
    return {
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


def expected_auto(course, broken_first_test):
    """Autograded points a student gets: all test points, minus the first test's when that test must fail."""
    tests = [c for c in course["release"].cells if _is_test(c)]
    total = sum(float(_meta(c)["points"]) for c in tests)
    return total - (float(_meta(tests[0])["points"]) if broken_first_test else 0.0), total


def html_text(path):
    """Visible text of an HTML page: tags dropped (syntax highlighting splits lines into spans), entities decoded."""
    import html

    return html.unescape(re.sub(r"<[^>]+>", "", Path(path).read_text(encoding="utf-8")))


def notebook_outputs(path, grade_id):
    nb = nbformat.read(str(path), as_version=4)
    cell = next(c for c in nb.cells if _meta(c).get("grade_id") == grade_id)
    return cell.get("outputs", [])


def tree_hashes(folder):
    return autograde.snapshot(Path(folder))


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


# --------------------------------------------------------------------------- unit: sandbox


def test_plan_mounts_covers_roots_once_and_puts_kept_paths_back_shallow_first(tmp_path):
    (tmp_path / "repo" / "notebooks").mkdir(parents=True)
    (tmp_path / "repo" / ".venv" / "lib").mkdir(parents=True)
    (tmp_path / "repo" / "build" / "grading" / "s1" / "work").mkdir(parents=True)
    repo = str(tmp_path / "repo")
    roots, keeps = sandbox.plan_mounts(
        [repo, repo + "/build/grading", str(tmp_path / "missing")],
        [repo + "/.venv", repo + "/.venv/lib"], [repo + "/build/grading/s1/work"])
    assert roots == [repo]  # the nested root is covered by its parent; missing paths are skipped
    assert [k for k, _ in keeps] == [repo + "/.venv", repo + "/.venv/lib", repo + "/build/grading/s1/work"]
    assert dict(keeps)[repo + "/build/grading/s1/work"] is True and dict(keeps)[repo + "/.venv"] is False


def test_kernel_env_keeps_course_settings_and_drops_secrets():
    env = sandbox.kernel_env({"PATH": "/bin", "LABKIT_FAST": "1", "AWS_SECRET_ACCESS_KEY": "x", "GITHUB_TOKEN": "y",
                              "SSH_AUTH_SOCK": "/s", "OMP_NUM_THREADS": "8", "PYTHONPATH": "/work/main/course"},
                             {"HOME": "/h", "OMP_NUM_THREADS": "1"})
    assert env == {"PATH": "/bin", "LABKIT_FAST": "1", "OMP_NUM_THREADS": "1", "HOME": "/h"}


def test_candidate_modes_prefer_isolation_and_never_offer_root_only_modes_to_users():
    modes = sandbox.candidate_modes("auto")
    assert modes[-1] == "none"
    if os.geteuid() == 0:
        assert modes[0] == "namespaces"
    else:
        assert "namespaces" not in modes and "user" not in modes
    assert sandbox.candidate_modes("userns") == ["userns"]


SANDBOX_PROBE = r'''
import json, os, socket, sys
out = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "files": sorted(os.listdir("."))}
for key, path in json.loads(sys.argv[1]).items():
    try:
        with open(path, "rb") as fh:
            fh.read(1)
        out[key] = "read"
    except OSError as err:
        out[key] = type(err).__name__
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", int(sys.argv[2]))); out["net"] = "connected"
except OSError as err:
    out["net"] = type(err).__name__
print(json.dumps(out))
'''


def _run_sandboxed(tmp_path, mode, code_args, limits=None, extra_keep=()):
    """Run python code through sandbox.py with a config like grading's; returns (exit code, stdout, stderr)."""
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True, exist_ok=True)
    (course / "gradebook.db").write_text("secret grades")
    scratch = tmp_path / "scratch" / "students" / "s1"
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    (scratch / "state").mkdir(exist_ok=True)
    (scratch / "work" / "mine.txt").write_text("my own file")
    (tmp_path / "scratch" / "students" / "s2").mkdir(exist_ok=True)
    (tmp_path / "scratch" / "students" / "s2" / "other.txt").write_text("another student")
    runtime = Path(tempfile_short())
    settings = autograde.Settings(lab="unit", course=course, scratch=tmp_path / "scratch", out=tmp_path / "out",
                                  sandbox=mode, memory_mb=1024)
    cfg = autograde.sandbox_config(settings, scratch, runtime)
    if limits:
        cfg["limits"].update(limits)
    cfg["keep_ro"] += list(extra_keep)
    (scratch / "sandbox.json").write_text(json.dumps(cfg))
    proc = subprocess.run([sys.executable, str(Path(sandbox.__file__)), "--config", str(scratch / "sandbox.json"),
                           "--", sys.executable, "-c", *code_args], capture_output=True, text=True, timeout=120,
                          cwd=str(scratch / "work"))
    shutil.rmtree(runtime, ignore_errors=True)
    return proc, scratch, course


def tempfile_short():
    import tempfile

    return tempfile.mkdtemp(prefix="lkg-", dir="/tmp")


def _modes_available():
    modes = []
    if os.geteuid() == 0 and sandbox.namespaces_work():
        modes.append("namespaces")
    if sandbox.userns_works():
        modes.append("userns")
    return modes


@pytest.mark.parametrize("mode", ["namespaces", "userns"])
def test_sandbox_hides_course_and_other_students_and_cuts_the_network(tmp_path, mode):
    if mode not in _modes_available():
        pytest.skip(f"sandbox mode {mode} is not available on this machine (see test_sandbox_fallback_*)")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    targets = {"gradebook": str(tmp_path / "course" / "gradebook.db"),
               "other_student": str(tmp_path / "scratch" / "students" / "s2" / "other.txt"),
               "tools": str(ROOT / "course" / "assignments.py"), "git": str(ROOT / ".git" / "HEAD"),
               "labkit": str(ROOT / "labkit" / "__init__.py"), "shadow": "/etc/shadow"}
    try:
        proc, scratch, _ = _run_sandboxed(tmp_path, mode, [SANDBOX_PROBE, json.dumps(targets), str(port)])
        server.settimeout(0.5)
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["gradebook"] == out["other_student"] == out["tools"] == "FileNotFoundError"
    if (ROOT / ".git").exists():
        assert out["git"] == "FileNotFoundError"
    assert out["labkit"] == "read"  # what the labs need stays
    assert out["net"] in ("OSError", "ConnectionRefusedError") and out["net"] != "connected"
    assert out["pid"] == 1 and out["files"] == ["mine.txt"]  # own pid namespace; own (tmpfs) work dir
    if mode == "namespaces":
        assert out["uid"] == autograde.nobody()[0] and out["shadow"] == "PermissionError"
    state = [json.loads(p.read_text()) for p in (scratch / "state").glob("*.json")]
    assert [s["mode"] for s in state] == [mode]
    # what the kernel wrote stayed in its tmpfs: nothing new in the scratch work dir on disk
    assert sorted(os.listdir(scratch / "work")) == ["mine.txt"]


def test_sandbox_limits_memory_and_cpu_time(tmp_path):
    if not _modes_available():
        pytest.skip("no namespaces here; limits are applied the same way in mode none")
    hog = ("import sys\nblocks = []\ntry:\n    while True:\n        blocks.append(bytearray(50_000_000))\n"
           "except MemoryError:\n    print(len(blocks))\n")
    proc, _, _ = _run_sandboxed(tmp_path, "auto", [hog], limits={"memory_mb": 600})
    assert proc.returncode == 0, proc.stderr
    assert 0 < int(proc.stdout) * 50 <= 600  # stopped at the data limit, far below the machine's memory
    proc, _, _ = _run_sandboxed(tmp_path, "auto", ["while True: pass"], limits={"cpu_seconds": 1})
    # SIGXCPU at the limit (ignored by a pid-1 kernel without a handler), SIGKILL 5 s later
    assert proc.returncode in (128 + signal.SIGXCPU, 128 + signal.SIGKILL), proc.returncode


def test_sandbox_fallback_mode_none_is_honest_about_what_it_does_not_protect(tmp_path):
    targets = {"gradebook": str(tmp_path / "course" / "gradebook.db")}
    proc, scratch, _ = _run_sandboxed(tmp_path, "none", [SANDBOX_PROBE, json.dumps(targets), "9"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gradebook"] == "read"  # the reason the driver warns loudly in this mode
    assert [json.loads(p.read_text())["mode"] for p in (scratch / "state").glob("*.json")] == ["none"]


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
    hidden = preprocessors.hidden_test_lines(
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
    removed = preprocessors.ScrubOutputs(max_output_mb=2.0).scrub(nb, hidden)
    outs = nb.cells[0].outputs
    assert "secret_value" in before and "secret_value" not in json.dumps(outs)
    assert removed == {"too_large": [{"cell": "cell 0", "mb": 3.0}], "hidden_tests": ["cell 0"] * 3}
    assert [o["output_type"] for o in outs] == ["stream", "display_data", "error", "stream", "error"]
    assert outs[2]["ename"] == "AssertionError"  # the cell still failed: its grade cannot change
    assert "over the 2 MB" in outs[1]["data"]["text/plain"] and outs[3]["text"] == "fine\n"
    # a failing hidden test keeps its helpful message, only the quoting traceback goes
    assert outs[4]["evalue"] == "f(12345) is wrong: check the sign"
    assert outs[4]["traceback"] == ["AssertionError: f(12345) is wrong: check the sign"]


def _safe_execute(tmp_path, monkeypatch, sources, **traits):
    """Run SafeExecute (sandboxed kernel, as in grading) on a small notebook; returns (nb, report)."""
    settings = autograde.Settings(lab="unit", course=tmp_path / "course", scratch=tmp_path / "scratch",
                                  out=tmp_path / "out", memory_mb=1024)
    scratch = tmp_path / "scratch" / "students" / "s1"
    (scratch / "work").mkdir(parents=True)
    (scratch / "state").mkdir()
    runtime = Path(tempfile_short())
    (scratch / "sandbox.json").write_text(json.dumps(autograde.sandbox_config(settings, scratch, runtime)))
    autograde.write_kernel_spec(scratch)
    monkeypatch.setenv("JUPYTER_PATH", str(scratch / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    ex = preprocessors.SafeExecute(kernel_name=autograde.SANDBOX_KERNEL, work_dir=str(scratch / "work"),
                                   report_file=str(scratch / "execution.json"), startup_timeout=60, **traits)
    try:
        ex.preprocess(nb, {"metadata": {"path": str(scratch / "work")}})
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    time.sleep(0.5)
    assert not sandbox_processes(str(scratch)), "a kernel outlived its notebook"
    return nb, json.loads((scratch / "execution.json").read_text())


def test_safe_execute_interrupts_a_loop_carries_on_and_gives_no_credit_after_the_kernel_dies(tmp_path, monkeypatch):
    nb, report = _safe_execute(tmp_path, monkeypatch, [
        "print('start')", "while True:\n    pass", "print(41 + 1)", "import os\nos._exit(3)", "print('never')"],
        timeout=4)
    enames = [[o.get("ename") for o in c.outputs if o.output_type == "error"] for c in nb.cells]
    assert enames[0] == [] and nb.cells[0].outputs[0]["text"] == "start\n"
    assert "CellTimeoutError" in enames[1]  # interrupted after the cell timeout...
    assert nb.cells[2].outputs[0]["text"] == "42\n"  # ...and the next cell still ran
    assert enames[3] == ["DeadKernelError"]
    assert enames[4] == [preprocessors.NOT_RUN]  # an error, so a graded cell here would score zero
    assert [e["event"] for e in report["events"]] == ["cell_timeout", "kernel_died"] and report["not_run"] == 1


def test_safe_execute_stops_at_the_notebook_time_limit(tmp_path, monkeypatch):
    nb, report = _safe_execute(tmp_path, monkeypatch, ["import time\ntime.sleep(2)"] * 12,
                               timeout=60, notebook_timeout=12)
    last = nb.cells[-1].outputs
    assert [o.get("ename") for o in last] == [preprocessors.NOT_RUN] and "time limit" in last[0]["evalue"]
    assert any(not c.outputs for c in nb.cells)  # some cells finished normally (sleep prints nothing)
    assert report["elapsed_s"] < 12 + 10 and report["not_run"] >= 1
    assert {e["event"] for e in report["events"]} & {"notebook_timeout", "cell_timeout"}


# --------------------------------------------------------------------------- the zoo, graded for real

# student -> (status, first test must fail, flag text expected in the report or None)
EXPECTED = {
    "alice_correct": ("graded", False, None),
    "ben_invalid_json": ("unreadable", True, None),
    "cara_empty": ("unreadable", True, None),
    "dan_syntax_error": ("graded", True, None),
    "eve_raises": ("graded", True, None),
    "fay_infinite_loop": ("stopped", True, None),
    "hal_memory_hog": ("graded", True, None),
    "jon_deletes_test": ("graded", False, "was deleted: restored from the gradebook"),
    "kim_rewrites_test": ("graded", True, "was changed (content edited)"),
    "lea_snoops": ("graded", False, None),
    "max_big_output": ("graded", False, "outputs over the size limit removed"),
    "nia_leaks_tests": ("graded", False, "outputs quoting hidden tests removed"),
}


def _settings(course, **kw):
    base = dict(lab=course["lab"], course=course["root"], workers=2, cell_timeout=CELL_TIMEOUT,
                notebook_timeout=NOTEBOOK_TIMEOUT, memory_mb=MEMORY_MB, quiet=True)
    base.update(kw)
    return autograde.Settings(**base)


@pytest.fixture(scope="module")
def zoo_run(course):
    """Every zoo submission handed in, then `run` with 2 workers: grading, merge, feedback, export."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    root, lab = course["root"], course["lab"]
    secrets = [root / "notebooks" / lab / f"{lab}.ipynb", root / "gradebook.db", root / "nbgrader_config.py",
               ROOT / "course" / "labs" / f"{lab}.py", ROOT / "course" / "assignments.py", ROOT / ".git" / "HEAD",
               root / "submitted" / "alice_correct" / lab / f"{lab}.ipynb"]
    zoo = build_zoo(course, secrets, port)
    assert set(zoo) == set(EXPECTED)
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
    rows, results = zoo_run["rows"], zoo_run["results"]
    assert set(rows) == set(EXPECTED)
    with open(zoo_run["settings"].out / "grades.csv", newline="") as fh:
        exported = {r["student_id"]: float(r["score"]) for r in __import__("csv").DictReader(fh)}
    for student, (status, broken, flag) in EXPECTED.items():
        want, total = expected_auto(course, broken)
        row = rows[student]
        assert row["status"] == status, (student, row["reason"])
        assert (row["auto"], row["auto_max"]) == (want, total), (student, row)
        assert exported[student] == want, student  # nbgrader's own export agrees (written answers ungraded)
        if flag:
            assert any(flag in f for f in row["flags"]), (student, row["flags"])
        if status in ("graded", "stopped"):
            assert results[student]["sandbox"] and set(results[student]["sandbox"]) <= {"namespaces", "userns", "none"}
    full, _ = expected_auto(course, False)
    assert rows["alice_correct"]["auto"] == full > 0  # the correct student keeps full marks beside the zoo
    assert rows["kim_rewrites_test"]["auto"] < full  # her `pass` test did not count


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
    assert enames("fay_infinite_loop", test) == [preprocessors.NOT_RUN]
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
    full, _ = expected_auto(course, False)
    assert zoo_run["rows"]["lea_snoops"]["auto"] == full  # her code deletes her solution if anything leaked
    if os.geteuid() == 0:
        assert zoo_run["results"]["lea_snoops"]["sandbox"] == ["namespaces"]


@pytest.mark.slow
def test_zoo_feedback_shows_no_hidden_tests(course, zoo_run):
    from nbconvert import HTMLExporter

    root, lab = course["root"], course["lab"]
    hidden = preprocessors.gradebook_hidden_lines(_db(course), lab, lab)
    assert hidden, "the lab under test has no hidden tests: pick another (LABKIT_AUTOGRADE_LAB)"
    pages = sorted((root / "feedback").glob(f"*/{lab}/{lab}.html"))
    graded = {s for s, (status, _, _) in EXPECTED.items() if status != "unreadable"}
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
    # serially, and in the unprivileged (user namespace) sandbox where this machine has it
    mode = "userns" if "userns" in _modes_available() else "auto"
    settings = _settings(course, workers=1, students=subset, sandbox=mode)
    again = {r["student"]: r for r in autograde.grade_all(settings, log=lambda *a: None)}
    autograde.finish(settings, log=lambda *a: None)
    for student in subset:
        assert again[student]["scores"]["cells"] == zoo_run["results"][student]["scores"]["cells"], student
        assert again[student]["status"] == zoo_run["results"][student]["status"]
    if mode == "userns":
        assert again["alice_correct"]["sandbox"] == ["userns"]
    with Gradebook(_db(course)) as gb:
        subs = gb.find_assignment(course["lab"]).submissions
        assert sorted(s.student.id for s in subs) == sorted(EXPECTED)  # one submission each, none added
    with open(settings.out / "grades.csv", newline="") as fh:
        ids = [r["student_id"] for r in __import__("csv").DictReader(fh)]
    assert sorted(ids) == sorted(EXPECTED)  # no duplicate rows
    assert sorted(p.stem for p in (settings.out / "results").glob("*.json")) == sorted(EXPECTED)


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
    assert [o.get("ename") for o in notebook_outputs(nb, test)] == [preprocessors.NOT_RUN]
    assert not sandbox_processes(str(settings.scratch))


@pytest.mark.slow
def test_a_killed_driver_leaves_earlier_grades_intact_and_no_kernels_behind(course, zoo_run):
    import sqlite3

    lab, root = course["lab"], course["root"]
    settings = _settings(course)
    before = {s: autograde.scores(_db(course), lab, s)["cells"] for s in EXPECTED}
    results = settings.out / "results"
    stamp = {s: json.loads((results / f"{s}.json").read_text())["merged_at"] for s in EXPECTED}
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
    gone = time.time() + 15  # the launcher polls for its parent every 0.2 s
    while sandbox_processes(str(settings.scratch)) and time.time() < gone:
        time.sleep(0.3)
    assert not sandbox_processes(str(settings.scratch)), "kernels outlived the driver"
    assert {s: autograde.scores(_db(course), lab, s)["cells"] for s in EXPECTED} == before
    assert not fresh("alice_correct")  # her earlier result stands, untouched
    with sqlite3.connect(str(root / "gradebook.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # what the killed run left (alice's scratch course, its socket dir) goes with the next run's sweep
    alice = settings.scratch / "students" / "alice_correct"
    runtime = Path((alice / "runtime-dir").read_text())
    assert runtime.is_dir()
    autograde.cleanup_stale(alice)
    assert not runtime.exists()
