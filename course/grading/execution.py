"""Running a submission: nbgrader's Execute made safe for untrusted notebooks.

:class:`SafeExecute` replaces nbgrader's ``Execute``:

* a notebook-wide time limit on top of the per-cell timeout;
* the kernel starts in a scratch folder with the submission's other files, never next to the notebook
  being graded (which holds the hidden tests);
* no lost grades when the kernel dies or stops responding: every code cell that did not finish gets an
  error output (nbgrader gives a graded cell without an error full marks, so "not run" has to be an
  error), and the run carries on to saving the grades;
* **test cells never run in the kernel**: the trusted evaluator (course/grading/verdicts.py) runs them
  in this process, calling the student's functions in the kernel through data-only requests, and writes
  the cell's outputs itself. nbgrader then scores the cell from those outputs as usual.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from typing import Dict, List, Optional

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

from course.grading import integrity, verdicts, wire

NOT_RUN = "NotExecuted"  # ename of the error output given to cells that never finished


def not_run_output(reason: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=NOT_RUN, evalue=reason, traceback=[f"{NOT_RUN}: {reason}"])


class IPCKernelManager(AsyncKernelManager):
    """A kernel manager that talks to its kernel over unix sockets: the sandboxed kernel has no network."""

    def __init__(self, **kwargs):
        kwargs.setdefault("transport", "ipc")
        super().__init__(**kwargs)
        if not self.connection_file:
            # In JUPYTER_RUNTIME_DIR (visible inside the sandbox), not a tempfile in the grader's /tmp; the
            # socket paths derive from it and must be absolute and short (unix sockets: 107 bytes).
            runtime = jupyter_runtime_dir()
            os.makedirs(runtime, exist_ok=True)
            self.connection_file = os.path.join(runtime, f"k-{uuid.uuid4().hex[:12]}.json")
        self.ip = os.path.splitext(self.connection_file)[0] + "-ipc"


class SafeExecute(Execute):
    """nbgrader's Execute with a notebook time limit and zero (not full) marks for cells that never finished."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("kernel_manager_class", IPCKernelManager)
        super().__init__(*args, **kwargs)

    notebook_timeout = Integer(0, help="Seconds for the whole notebook (0: no limit).").tag(config=True)
    work_dir = Unicode("", help="Kernel working directory; non-notebook files of the submission are copied "
                                "there. Empty: the notebook's own directory (nbgrader's default).").tag(config=True)
    report_file = Unicode("", help="JSON file to write what happened during execution to.").tag(config=True)
    skip_execution = Bool(False, help="Start no kernel: every code cell gets a 'not run' error.").tag(config=True)
    skip_reason = Unicode("not executed by the autograder", help="Message for skip_execution.").tag(config=True)
    trusted_tests = Bool(True, help="Evaluate test cells in this (trusted) process with proxies into the kernel "
                                    "(course/grading/verdicts.py) instead of running them in the kernel.").tag(config=True)

    def preprocess(self, nb, resources, km=None):
        self._events: List[Dict] = []
        self._stopped: Optional[str] = None
        self._t0 = time.monotonic()
        self._deadline = self._t0 + self.notebook_timeout if self.notebook_timeout else None
        self._evaluator = None
        self._resources = resources
        try:
            if self.skip_execution:
                self._stop(nb, 0, self.skip_reason, "skipped")
                return nb, resources
            if self.work_dir:
                self._seed_work_dir(resources)
            try:
                return super().preprocess(nb, resources, km)
            except Exception as err:  # kernel did not start, or died outside a cell: nothing more runs
                self.log.error("Execution stopped: %s: %s", type(err).__name__, err)
                self._stop(nb, 0, f"the kernel failed ({type(err).__name__}: {err})", "kernel_failed")
                return nb, resources
        finally:
            self._write_report(nb)

    # -- per cell

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        if self._deadline is None:
            return timeout
        left = max(1, int(self._deadline - time.monotonic()))
        return left if timeout is None else min(timeout, left)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, resources
        self._current_index = index
        if self._stopped:
            self._mark(cell, self._stopped)
            return cell, resources
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._stopped = f"the notebook time limit ({self.notebook_timeout} s) was reached before this cell"
            self._event(cell, index, "notebook_timeout")
            self._mark(cell, self._stopped)
            return cell, resources
        try:
            if self.trusted_tests and _is_test(cell):
                self._evaluate(cell, index)
            else:
                cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            self._event(cell, index, "kernel_died")
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="DeadKernelError",
                evalue="the kernel died while running this cell (out of memory, or the process exited)",
                traceback=["DeadKernelError: the kernel died while running this cell "
                           "(out of memory, or the process exited)"]))
            self._stopped = f"the kernel died in an earlier cell ({self._cell_name(cell, index)})"
            self._kill_kernel()
        except CellTimeoutError:
            self._event(cell, index, "unresponsive")
            cell.outputs.append(nbformat.v4.new_output(
                "error", ename="CellTimeoutError", evalue="no reply from the kernel; it did not stop when interrupted",
                traceback=["CellTimeoutError: no reply from the kernel before the timeout; "
                           "it did not stop when interrupted"]))
            self._stopped = f"the kernel stopped responding in an earlier cell ({self._cell_name(cell, index)})"
            self._kill_kernel()
        else:
            if any(o.get("output_type") == "error" and o.get("ename") == "CellTimeoutError" for o in cell.outputs):
                self._event(cell, index, "cell_timeout")
        return cell, resources

    # -- trusted test cells (course/grading/verdicts.py)

    def _evaluate(self, cell, index: int) -> None:
        """Outputs of a test cell from the trusted evaluation; the cell itself never reaches the kernel."""
        try:
            evaluator = self._trusted_evaluator()
            cell.outputs = evaluator.evaluate(cell.metadata["nbgrader"]["grade_id"])
        except verdicts.KernelLost as lost:
            self.nb.cells[index] = cell
            cell.outputs = []
            raise lost.cause
        except Exception as err:  # the grader could not evaluate it: zero, and say why
            self.log.error("Trusted evaluation of %s failed: %s", self._cell_name(cell, index), err)
            cell.outputs = [verdicts._error("GraderError", f"{type(err).__name__}: {err}")]
        self.nb.cells[index] = cell
        cell.execution_count = None
        self._event(cell, index, "trusted_evaluation")

    def _trusted_evaluator(self) -> verdicts.TrustedEvaluator:
        if self._evaluator is None:
            nbg = self._resources.get("nbgrader", {})
            cells = [verdicts.Cell(c.name, c.source, "test" if c.points is not None and not c.solution else
                                   "solution" if c.solution else "locked")
                     for c in integrity.source_cells(nbg["db_url"], nbg["notebook"], nbg["assignment"])
                     if c.cell_type == "code" and (c.locked or c.solution or c.points is not None)]
            code_cells = [c for c in self.nb.cells if c.cell_type == "code"]
            student = [c.source for c in code_cells if c.metadata.get("nbgrader", {}).get("solution")]
            _trusted_process_settings()
            self._evaluator = verdicts.TrustedEvaluator(cells, self._run_in_kernel, student_cells=student,
                                                        all_cells=[c.source for c in code_cells])
        return self._evaluator

    def _run_in_kernel(self, code: str) -> str:
        """Run one grading request in the kernel (time limits as for a cell); returns the reply's text."""
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise verdicts.StudentCodeError("NotebookTimeout", "the notebook time limit was reached")
        index = self._current_index
        keep = self.nb.cells[index]
        call = nbformat.v4.new_code_cell(code)
        try:
            self.execute_cell(call, index, store_history=False)
        except (DeadKernelError, CellTimeoutError) as err:
            raise verdicts.KernelLost(err) from None
        finally:
            self.nb.cells[index] = keep
        for out in call.outputs:
            if out.get("output_type") == "display_data" and wire.MIME in out.get("data", {}):
                text = out["data"][wire.MIME]
                if not isinstance(text, str) or len(text) > wire.MAX_REPLY_CHARS:
                    raise verdicts.StudentCodeError("NotData", "the reply is over the size limit")
                return text
        errors = [o for o in call.outputs if o.get("output_type") == "error"]
        if errors:
            raise verdicts.StudentCodeError(errors[-1].get("ename", "Error"), str(errors[-1].get("evalue", "")))
        raise verdicts.StudentCodeError("NoReply", "the kernel sent no result")

    # -- helpers

    def _seed_work_dir(self, resources) -> None:
        """Kernel cwd = work_dir holding the submission's other files, never the notebook being graded."""
        src = resources.get("metadata", {}).get("path") or "."
        os.makedirs(self.work_dir, exist_ok=True)
        for name in os.listdir(src):
            path = os.path.join(src, name)
            if name.endswith(".ipynb") or name.startswith(".") or os.path.islink(path):
                continue
            dest = os.path.join(self.work_dir, name)
            if os.path.isdir(path):
                shutil.copytree(path, dest, symlinks=False, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.ipynb", ".*"))
            else:
                shutil.copy2(path, dest)
        resources.setdefault("metadata", {})["path"] = self.work_dir

    def _kill_kernel(self) -> None:
        try:
            if self.km is not None:
                self._run_loop_kill()
        except Exception as err:  # already gone
            self.log.warning("Could not kill the kernel: %s", err)

    def _run_loop_kill(self) -> None:
        from jupyter_core.utils import run_sync

        run_sync(self.km.shutdown_kernel)(now=True)

    def _cell_name(self, cell, index: int) -> str:
        return cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"

    def _event(self, cell, index: int, kind: str) -> None:
        self._events.append({"cell": self._cell_name(cell, index), "index": index, "event": kind,
                             "at_s": round(time.monotonic() - self._t0, 1)})

    def _mark(self, cell, reason: str) -> None:
        cell.outputs = [not_run_output(reason)]
        cell.execution_count = None

    def _stop(self, nb, start: int, reason: str, kind: str) -> None:
        self._stopped = reason
        self._events.append({"cell": None, "index": start, "event": kind, "at_s": 0.0})
        for cell in nb.cells[start:]:
            if cell.cell_type == "code":
                self._mark(cell, reason)

    def _write_report(self, nb) -> None:
        if not self.report_file:
            return
        record = {"events": self._events, "stopped": self._stopped,
                  "elapsed_s": round(time.monotonic() - self._t0, 2),
                  "not_run": sum(1 for c in nb.cells if c.cell_type == "code"
                                 and any(o.get("ename") == NOT_RUN for o in c.get("outputs", [])))}
        tmp = self.report_file + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh)
        os.replace(tmp, self.report_file)


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _trusted_process_settings() -> None:
    """Replayed lab cells in this process: offline like the kernel, no windows, quiet."""
    os.environ["LABKIT_OFFLINE"] = "1"
    try:
        import matplotlib

        matplotlib.use("Agg")
    except Exception:
        pass


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with Execute -> SafeExecute and ScrubOutputs before the grades are saved."""
    from nbgrader.converters import Autograde

    from course.grading.scrub import ScrubOutputs

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        if step is Execute:
            step = SafeExecute
        if getattr(step, "__name__", "") == "SaveAutoGrades":
            steps.append(ScrubOutputs)
        steps.append(step)
    return steps
