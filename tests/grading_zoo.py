"""The grading zoo's hand-ins and helpers (tests/test_grading_zoo.py): a real lab trimmed to its first graded
block, released in a scratch course, and every kind of broken, hostile and forging submission built from it."""
from __future__ import annotations

import ast
import copy
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.grading import submission  # noqa: E402


LAB_PREFERENCE = ("lab3_relu", "lab4_quantization", "lab1_saliency", "lab2_filters", "lab5_circuits")


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


def _bwrap():
    from course.grading import sandbox

    return sandbox.bwrap_works(sandbox.find_bwrap(), as_root=os.geteuid() == 0)
