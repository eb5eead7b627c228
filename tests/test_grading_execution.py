"""SafeExecute (course/grading/execution.py) on small notebooks in the real sandboxed kernel: time limits,
interrupts (sent as messages: bwrap does not pass signals on), dead kernels, zero for cells that never ran."""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.grading import execution, isolation  # noqa: E402
from course.grading.settings import Settings  # noqa: E402
from grading_zoo import sandbox_processes  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grading sandbox is Linux-only")


def _safe_execute(tmp_path, monkeypatch, sources, **traits):
    """Run SafeExecute (sandboxed kernel, as in grading) on a small notebook; returns (nb, report)."""
    settings = Settings(lab="unit", course=tmp_path / "course", scratch=tmp_path / "scratch", out=tmp_path / "out",
                        memory_mb=1024)
    scratch = tmp_path / "scratch" / "students" / "s1"
    (scratch / "state").mkdir(parents=True)
    runtime = isolation.make_runtime_dir()
    isolation.write_sandbox(settings, scratch, runtime)
    monkeypatch.setenv("JUPYTER_PATH", str(scratch / "jupyter"))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(runtime))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    ex = execution.SafeExecute(kernel_name=isolation.SANDBOX_KERNEL, work_dir=str(scratch / "seed" / "work"),
                                   report_file=str(scratch / "execution.json"), startup_timeout=60, **traits)
    try:
        ex.preprocess(nb, {"metadata": {"path": str(scratch / "seed" / "work")}})
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    gone = time.monotonic() + 30
    while (sandbox_processes(str(scratch)) or sandbox_processes(str(runtime))) and time.monotonic() < gone:
        time.sleep(0.2)
    assert not sandbox_processes(str(scratch)) and not sandbox_processes(str(runtime)), "a kernel outlived its notebook"
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
    assert enames[4] == [execution.NOT_RUN]  # an error, so a graded cell here would score zero
    assert [e["event"] for e in report["events"]] == ["cell_timeout", "kernel_died"] and report["not_run"] == 1


def test_safe_execute_stops_at_the_notebook_time_limit(tmp_path, monkeypatch):
    nb, report = _safe_execute(tmp_path, monkeypatch, ["import time\ntime.sleep(2)"] * 12,
                               timeout=60, notebook_timeout=12)
    last = nb.cells[-1].outputs
    assert [o.get("ename") for o in last] == [execution.NOT_RUN] and "time limit" in last[0]["evalue"]
    assert any(not c.outputs for c in nb.cells)  # some cells finished normally (sleep prints nothing)
    assert report["elapsed_s"] < 12 + 10 and report["not_run"] >= 1
    assert {e["event"] for e in report["events"]} & {"notebook_timeout", "cell_timeout"}


