"""nbgrader preprocessors for grading untrusted submissions (loaded by the per-submission scratch config).

* :class:`SafeExecute` replaces nbgrader's ``Execute``: a notebook-wide time limit on top of the per-cell
  timeout, the kernel's working directory moved away from the notebook being graded (so student code
  cannot open it and read the hidden tests), and no lost grades when the kernel dies or stops responding:
  every code cell that did not finish gets an error output (nbgrader gives a graded cell without an error
  full marks, so "not run" has to be an error), and the run carries on to saving the grades.
* :class:`ScrubOutputs` caps output sizes (a 50 MB image does not go into the gradebook's notebook or the
  feedback) and removes outputs that quote hidden-test code (a student hook printing later cells).

Both keep error outputs' ``ename`` so the grades nbgrader computes are unchanged by the scrubbing.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from typing import Dict, List, Optional, Set

import nbformat
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Bool, Float, Integer, Unicode

HIDDEN_RE = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)
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

    def preprocess(self, nb, resources, km=None):
        self._events: List[Dict] = []
        self._stopped: Optional[str] = None
        self._t0 = time.monotonic()
        self._deadline = self._t0 + self.notebook_timeout if self.notebook_timeout else None
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
        if self._stopped:
            self._mark(cell, self._stopped)
            return cell, resources
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self._stopped = f"the notebook time limit ({self.notebook_timeout} s) was reached before this cell"
            self._event(cell, index, "notebook_timeout")
            self._mark(cell, self._stopped)
            return cell, resources
        try:
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


def hidden_test_lines(sources: List[str], visible: List[str], min_len: int = 16) -> Set[str]:
    """Lines (stripped) of hidden-test regions that appear nowhere in the visible text."""
    seen = {line.strip() for text in visible for line in text.splitlines()}
    lines = set()
    for src in sources:
        for region in HIDDEN_RE.findall(src):
            for line in region.splitlines():
                line = line.strip()
                if len(line) >= min_len and not line.startswith("#") and line not in seen:
                    lines.add(line)
    return lines


def gradebook_hidden_lines(db_url: str, notebook: str, assignment: str) -> Set[str]:
    """Hidden-test lines of one notebook, from the gradebook's source cells (which keep the hidden tests)."""
    with Gradebook(db_url) as gb:
        try:
            nb = gb.find_notebook(notebook, assignment)
        except MissingEntry:
            return set()
        sources = [c.source for c in nb.source_cells if c.source]
    visible = [HIDDEN_RE.sub("", s) for s in sources]
    return hidden_test_lines(sources, visible)


def _text_of(output) -> str:
    parts = []
    if "text" in output:
        parts.append(output["text"] if isinstance(output["text"], str) else "".join(output["text"]))
    for value in output.get("data", {}).values():
        parts.append(value if isinstance(value, str) else json.dumps(value))
    if output.get("output_type") == "error":
        parts += [str(output.get("evalue", ""))] + [str(t) for t in output.get("traceback", [])]
    return "\n".join(parts)


def output_size(output) -> int:
    return len(json.dumps(output, default=str))


def leaks_hidden(text: str, hidden: Set[str]) -> bool:
    if not hidden or not text:
        return False
    squashed = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return any(line in squashed for line in hidden)


class ScrubOutputs(NbGraderPreprocessor):
    """Cap output sizes and drop outputs quoting hidden tests; keeps each error's ename (grades unchanged)."""

    max_output_mb = Float(2.0, help="Largest single output kept (MB of JSON).").tag(config=True)
    max_notebook_output_mb = Float(20.0, help="Largest total of all outputs kept (MB).").tag(config=True)
    report_file = Unicode("", help="JSON file to write what was removed to.").tag(config=True)

    def preprocess(self, nb, resources):
        nbg = resources.get("nbgrader", {})
        hidden = set()
        if nbg.get("db_url"):
            hidden = gradebook_hidden_lines(nbg["db_url"], nbg["notebook"], nbg["assignment"])
        removed = self.scrub(nb, hidden)
        if self.report_file:
            with open(self.report_file, "w") as fh:
                json.dump(removed, fh)
        return nb, resources

    def scrub(self, nb, hidden: Set[str]) -> Dict[str, list]:
        """Scrub ``nb``'s outputs in place; returns what was removed, by cell."""
        removed = {"too_large": [], "hidden_tests": []}
        per_output = int(self.max_output_mb * 1e6)
        budget = int(self.max_notebook_output_mb * 1e6)
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            name = cell.metadata.get("nbgrader", {}).get("grade_id") or f"cell {index}"
            kept = []
            for out in cell.get("outputs", []):
                size = output_size(out)
                if (out.get("output_type") == "error" and leaks_hidden(_text_of(out), hidden)
                        and not leaks_hidden(str(out.get("evalue", "")), hidden)):
                    # a failing hidden test quotes its own lines in the traceback: keep the message only
                    removed["hidden_tests"].append(name)
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]
                elif leaks_hidden(_text_of(out), hidden):
                    removed["hidden_tests"].append(name)
                    out = self._replace(out, "[output removed by the autograder: it quoted hidden test code]")
                elif size > per_output or size > budget:
                    removed["too_large"].append({"cell": name, "mb": round(size / 1e6, 1)})
                    out = self._replace(out, f"[output removed by the autograder: {size / 1e6:.1f} MB, over the "
                                             f"{self.max_output_mb:g} MB per output / "
                                             f"{self.max_notebook_output_mb:g} MB per notebook limit]")
                budget -= output_size(out)
                kept.append(out)
            cell.outputs = kept
        return removed

    @staticmethod
    def _replace(out, note: str):
        kind = out.get("output_type")
        if kind == "error":  # keep the ename: the cell still fails and still scores zero
            return nbformat.v4.new_output("error", ename=out.get("ename", "Error"), evalue=note,
                                          traceback=[f"{out.get('ename', 'Error')}: {note}"])
        if kind == "stream":
            return nbformat.v4.new_output("stream", name=out.get("name", "stdout"), text=note + "\n")
        if kind == "execute_result":
            return nbformat.v4.new_output("execute_result", data={"text/plain": note},
                                          execution_count=out.get("execution_count"))
        return nbformat.v4.new_output("display_data", data={"text/plain": note})


def autograde_preprocessors() -> list:
    """nbgrader's autograde steps with Execute -> SafeExecute and ScrubOutputs before the grades are saved."""
    from nbgrader.converters import Autograde

    steps = []
    for step in Autograde.class_traits()["autograde_preprocessors"].default():
        if step is Execute:
            step = SafeExecute
        if getattr(step, "__name__", "") == "SaveAutoGrades":
            steps.append(ScrubOutputs)
        steps.append(step)
    return steps
