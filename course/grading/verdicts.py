"""Verdicts outside the student's process: test cells run in the trusted grader, never in the kernel.

When the autograder reaches a test cell, it does not send the cell to the student's kernel. It runs the
cell's full source, hidden tests included, taken from the gradebook, here in the grader process, which
never runs student code. In that namespace:

* the **student names** (``calls`` declared by the test, and whatever the lab's solution cells define)
  are proxies: calling one sends the arguments to the sandboxed kernel, calls the student's function
  there, and brings back only data (course/grading/wire.py);
* the **instructor's names** the test uses (``model``, ``images``, ``L_LAST`` ...) come from replaying,
  here, the locked cells of the gradebook that define them (reference computations then use the
  grader's own model); when such an object is passed to student code it travels as a reference to the
  kernel's global of the same name (the kernel ran the same locked cell);
* any other name (the settings a student may change: ``MODEL_NAME``, ``PHOTOS`` ...) is fetched from the
  kernel by value, as data.

Comparisons, references and the verdict happen here; the cell's outputs are written from here (its
prints, or one error line). A student who tampers with the interpreter can only spoil the values their
own functions return. A test declares what it grades with one line, usually first in its hidden part::

    _grading = dict(calls=["fraction_zeroed"], forbid=["labkit.layers.PrePost.zeroed"])

``forbid`` names the library implementations of the same quantity (course/grading/forbid.py).
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import io
import re
import sys
import types
import warnings
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence, Set

import nbformat
import numpy as np
import torch

from course.grading import forbid as forbidding
from course.grading import wire

HIDDEN_START = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS", re.M)
BUILTINS = set(dir(builtins)) | {"__name__", "__file__", "get_ipython", "display"}
MODULE = "__labkit_test__"


class KernelLost(BaseException):
    """The kernel died or stopped answering during a call (a BaseException: no test's ``except Exception``
    may swallow it); ``cause`` is nbclient's DeadKernelError or CellTimeoutError."""

    def __init__(self, cause: BaseException):
        super().__init__(str(cause))
        self.cause = cause


class StudentCodeError(Exception):
    """The student's function raised in the kernel (or returned something that is not data)."""

    def __init__(self, ename: str, evalue: str):
        super().__init__(f"{ename}: {evalue}")
        self.ename, self.evalue = ename, evalue


@dataclass
class Cell:
    """One gradebook cell as the evaluator needs it."""
    name: str
    source: str
    kind: str  # "locked", "solution", "test" (code cells only)


@dataclass
class TestSpec:
    calls: List[str] = field(default_factory=list)
    forbid: List[str] = field(default_factory=list)


def test_spec(source: str) -> TestSpec:
    """The ``_grading = dict(calls=[...], forbid=[...])`` declaration of a test cell (empty if none)."""
    try:
        tree = ast.parse(forbidding.python_source(source))
    except SyntaxError:
        return TestSpec()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_grading" for t in node.targets):
            value = node.value
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "dict":
                found = {kw.arg: ast.literal_eval(kw.value) for kw in value.keywords}
            else:
                found = ast.literal_eval(value)
            return TestSpec(calls=list(found.get("calls", [])), forbid=list(found.get("forbid", [])))
    return TestSpec()


class _Scope(ast.NodeVisitor):
    """Names a cell loads and names it binds (at module level, or anywhere)."""

    def __init__(self):
        self.loaded: Set[str] = set()
        self.bound: Set[str] = set()
        self.top: Set[str] = set()
        self._depth = 0

    def _bind(self, name):
        self.bound.add(name)
        if self._depth == 0:
            self.top.add(name)

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.loaded.add(node.id)
        else:
            self._bind(node.id)

    def _scoped(self, node, name=None):
        if name:
            self._bind(name)
        self._depth += 1
        self.generic_visit(node)
        self._depth -= 1

    def visit_FunctionDef(self, node):
        self._scoped(node, node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        self._scoped(node, node.name)

    def visit_Lambda(self, node):
        self._scoped(node)

    def visit_arg(self, node):
        self.bound.add(node.arg)

    def visit_Import(self, node):
        for a in node.names:
            self._bind(a.asname or a.name.split(".")[0])

    def visit_ImportFrom(self, node):
        for a in node.names:
            self._bind(a.asname or a.name)

    def visit_ExceptHandler(self, node):
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)


def scope(source: str) -> _Scope:
    s = _Scope()
    s.visit(ast.parse(forbidding.python_source(source)))
    return s


def free_names(source: str) -> Set[str]:
    s = scope(source)
    return s.loaded - s.bound - BUILTINS


def _is_data(value) -> bool:
    return isinstance(value, (bool, int, float, str, complex, type(None), torch.Tensor, np.ndarray, np.generic,
                              torch.device, torch.dtype))


class StudentFunction:
    """Stands for a student's function in the trusted namespace: calling it calls it in the kernel."""

    def __init__(self, name: str, evaluator: "TrustedEvaluator"):
        self.__name__ = self.name = name
        self._evaluator = evaluator

    def __call__(self, *args, **kwargs):
        return self._evaluator.call(self.name, args, kwargs)

    def __repr__(self):
        return f"<student function {self.name} (runs in the sandboxed kernel)>"


class TrustedEvaluator:
    """Evaluate one notebook's test cells against a running kernel (``run_in_kernel(code) -> reply text``)."""

    def __init__(self, cells: Sequence[Cell], run_in_kernel: Callable[[str], str], *,
                 student_cells: Sequence[str] = (), all_cells: Sequence[str] = ()):
        self.cells = list(cells)
        self.run_in_kernel = run_in_kernel
        self.student_sources = list(student_cells)
        self.aliases = forbidding.import_aliases(all_cells)
        self.module = types.ModuleType(MODULE)
        self.ns = self.module.__dict__
        self.ns.update(display=_nothing, get_ipython=_NoShell)  # replayed cells may display or use magics
        self.replayed: Set[int] = set()
        self.instructor_names: Set[str] = set()  # bound by replayed locked cells (also globals of the kernel)
        self.solution_names: Set[str] = set()
        for cell in self.cells:
            if cell.kind == "solution":
                try:
                    self.solution_names |= scope(cell.source).top
                except SyntaxError:
                    pass
        self._forbid: List[str] = []

    # -- the kernel

    def _request(self, kind: str, name: str, **kw) -> dict:
        reply = wire.read_reply(self.run_in_kernel(wire.request_code(kind, name, **kw)))
        if not reply["ok"]:
            raise StudentCodeError(reply["ename"], reply["evalue"])
        return reply

    def call(self, name: str, args, kwargs):
        refs = {id(self.ns[n]): n for n in self.instructor_names if n in self.ns and not _is_data(self.ns[n])}
        classes: List[type] = []
        enc_args = wire.encode_args(list(args), refs, classes)
        enc_kwargs = wire.encode_args(dict(kwargs), refs, classes)
        sys.modules[MODULE] = self.module  # pickling instances of the test's own classes needs it
        try:
            reply = self._request("call", name, args=enc_args, kwargs=enc_kwargs, forbid=self._forbid,
                                  classes=[self._class_source(c) for c in classes])
        finally:
            sys.modules.pop(MODULE, None)
        return reply["value"]

    def fetch(self, name: str):
        """A kernel global: a proxy if it is callable, else its value (data only)."""
        reply = self._request("get", name)
        return StudentFunction(name, self) if reply.get("callable") else reply["value"]

    def _class_source(self, cls: type) -> str:
        for cell in self.cells:
            if cell.kind != "test":
                continue
            src = forbidding.python_source(cell.source)
            hidden = HIDDEN_START.search(src)
            limit = src[:hidden.start()].count("\n") + 1 if hidden else None
            for node in ast.parse(src).body:
                if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
                    if limit is not None and node.lineno >= limit:
                        raise wire.GraderError(f"class {cls.__name__} is defined in hidden tests; objects passed to "
                                               "student code must be built by visible code")
                    return ast.get_source_segment(src, node)
        raise wire.GraderError(f"no source for class {cls.__name__}")

    # -- the instructor's cells

    def _definer(self, name: str, before: int) -> Optional[int]:
        for i in range(before - 1, -1, -1):
            cell = self.cells[i]
            if cell.kind == "locked":
                try:
                    if name in scope(cell.source).top:
                        return i
                except SyntaxError:
                    continue
        return None

    def _plan(self, names: Set[str], before: int, plan: Set[int]) -> Set[str]:
        """Locked cells to replay for ``names`` (into ``plan``); returns the names left for the kernel."""
        left = set()
        for name in sorted(names):
            if name in self.ns or name in self.solution_names:
                continue
            idx = self._definer(name, before)
            if idx is None:
                left.add(name)
            elif idx not in plan and idx not in self.replayed:
                plan.add(idx)
                left |= self._plan(free_names(self.cells[idx].source), idx, plan)
        return left

    def _bind_student(self, names: Set[str], declared: Sequence[str]) -> None:
        for name in sorted(set(names) | set(declared)):
            if name in self.solution_names or name in declared:
                try:
                    self.ns[name] = self.fetch(name)
                except StudentCodeError:
                    self.ns.pop(name, None)  # not defined in the kernel: the test meets a NameError

    def _bind_kernel_values(self, names: Set[str]) -> None:
        for name in sorted(names):
            if name in self.ns:
                continue
            try:
                value = self.fetch(name)
            except StudentCodeError:
                continue
            if isinstance(value, StudentFunction):
                raise wire.GraderError(f"the test uses {name!r}, a function in the student's kernel that the test "
                                       "does not declare in _grading calls")
            self.ns[name] = value

    def _replay(self, index: int) -> None:
        cell = self.cells[index]
        self._bind_kernel_values(self._plan(free_names(cell.source), index, set()) - BUILTINS)
        code = compile(forbidding.python_source(cell.source), f"<{cell.name}>", "exec")
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(code, self.ns)  # noqa: S102 - instructor code from the gradebook
        self.replayed.add(index)
        self.instructor_names |= scope(cell.source).top

    # -- one test

    def evaluate(self, name: str) -> List[nbformat.NotebookNode]:
        """The outputs of test cell ``name``: its prints if it passes, else one error (no traceback frames)."""
        index = next(i for i, c in enumerate(self.cells) if c.name == name)
        cell = self.cells[index]
        spec = test_spec(cell.source)
        found = forbidding.violations(self.student_sources, spec.forbid, self.aliases)
        if found:
            return [_error("ForbiddenCall", "this test does not allow the library's own implementation: your code "
                                            + "; ".join(found))]
        out = io.StringIO()
        try:
            needed = free_names(cell.source)
            plan: Set[int] = set()
            left = self._plan(needed - set(spec.calls), index, plan)
            for idx in sorted(plan):
                self._replay(idx)
            self._bind_student(needed & (self.solution_names | set(spec.calls)), spec.calls)
            self._bind_kernel_values(left - self.solution_names - set(spec.calls))
            self._forbid = spec.forbid
            code = compile(forbidding.python_source(cell.source), f"<{name}>", "exec")
            with contextlib.redirect_stdout(out), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exec(code, self.ns)  # noqa: S102 - the instructor's test, with proxies for student names
        except StudentCodeError as err:
            return _stream(out) + [_error(err.ename, err.evalue)]
        except wire.NotData as err:
            return _stream(out) + [_error("NotData", str(err))]
        except wire.GraderError as err:
            return _stream(out) + [_error("GraderError", str(err))]
        except Exception as err:  # the test failed (AssertionError ...) or broke on the student's values
            return _stream(out) + [_error(type(err).__name__, str(err))]
        finally:
            self._forbid = []
        return _stream(out)


def _nothing(*args, **kwargs):
    return None


class _NoShell:
    """``get_ipython()`` in the grader: every magic and display hook does nothing."""

    def __getattr__(self, name):
        return _nothing


def _stream(buf: io.StringIO) -> List[nbformat.NotebookNode]:
    text = buf.getvalue()
    return [nbformat.v4.new_output("stream", name="stdout", text=text)] if text else []


def _error(ename: str, evalue: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])
