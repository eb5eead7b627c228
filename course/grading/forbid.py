"""No wrapper shortcuts: find calls of forbidden names in a student's solution source, without running it.

A test may declare ``forbid=[...]`` (dotted names: ``"labkit.saliency.vanilla"``, ``"captum.attr.Saliency"``,
``"torch.Tensor.relu"``): the library implementations of the very quantity the student is asked to
write. The trusted grader parses (never executes) the student's solution cells and rejects:

* any reference that resolves to a forbidden name, through the notebook's imports and aliases
  (``from labkit import saliency`` then ``saliency.vanilla``; ``import labkit.saliency as s``; ``from
  labkit.saliency import vanilla as v``);
* for method entries (``torch.Tensor.relu``, ``labkit.layers.PrePost.zeroed``), any attribute access
  ``.<method>`` (the type of an expression is unknown before running it);
* dynamic lookups that would hide such a call (``getattr``, ``__import__``, ``importlib``, ``eval``,
  ``exec``, ``compile``, ``globals()``, ``vars()``, ``sys.modules``, ``__dict__``, ``__getattribute__``).

The kernel additionally makes the forbidden names raise while the graded function runs
(course/grading/wire.py), which catches helpers defined in other cells.
"""
from __future__ import annotations

import ast
from typing import Dict, Iterable, List

DYNAMIC_CALLS = {"getattr", "__import__", "eval", "exec", "compile", "globals", "vars", "locals"}
DYNAMIC_ATTRS = {"__dict__", "__getattribute__", "__import__", "import_module", "__builtins__", "__globals__",
                 "__code__"}


def python_source(cell_source: str) -> str:
    """A cell's source as plain Python (IPython magics and shell escapes turned into calls)."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(cell_source)
    except Exception:
        return cell_source


def import_aliases(sources: Iterable[str]) -> Dict[str, str]:
    """name -> dotted module path for every import in ``sources`` (later imports win)."""
    aliases: Dict[str, str] = {}
    for src in sources:
        try:
            tree = ast.parse(python_source(src))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    return aliases


def _dotted(node: ast.AST):
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return [node.id] + parts[::-1]
    return None


def _matches(dotted: str, forbidden: str) -> bool:
    return dotted == forbidden or dotted.startswith(forbidden + ".")


def violations(student_sources: Iterable[str], forbid: List[str], aliases: Dict[str, str]) -> List[str]:
    """Human-readable reasons why the student's code uses a forbidden name (empty: none found)."""
    if not forbid:
        return []
    # methods (torch.Tensor.relu, labkit.layers.PrePost.zeroed): the receiver's type is unknown before running
    methods = {f.rsplit(".", 1)[1] for f in forbid if f.count(".") >= 2 and f.split(".")[-2][:1].isupper()}
    found: List[str] = []

    def note(msg):
        if msg not in found:
            found.append(msg)

    for src in student_sources:
        try:
            tree = ast.parse(python_source(src))
        except SyntaxError:
            continue  # it cannot run either
        local = dict(aliases)
        assigned = set()  # names the student binds themselves (a variable called `saliency` is not the module)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                assigned.add(node.id)
            elif isinstance(node, ast.arg):
                assigned.add(node.arg)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assigned.add(node.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    local[a.asname or a.name] = full
                    if any(_matches(full, f) for f in forbid):
                        note(f"imports {full}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    local[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, (ast.Attribute, ast.Name)):
                parts = _dotted(node)
                if parts:
                    head = parts[0] if parts[0] in assigned else local.get(parts[0], parts[0])
                    dotted = ".".join([head] + parts[1:])
                    for f in forbid:
                        if _matches(dotted, f):
                            note(f"uses {f}")
                    if dotted == "sys.modules":
                        note("uses sys.modules (dynamic lookups are not allowed here)")
                if isinstance(node, ast.Attribute):
                    if node.attr in methods:
                        note(f"uses the method .{node.attr}() (not allowed here)")
                    if node.attr in DYNAMIC_ATTRS:
                        note(f"uses .{node.attr} (dynamic lookups are not allowed in a function graded "
                             f"with a forbidden-name list)")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in DYNAMIC_CALLS:
                note(f"calls {node.func.id}() (dynamic lookups are not allowed in a function graded with a "
                     f"forbidden-name list)")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] == "importlib" for n in names):
                    note("imports importlib (dynamic imports are not allowed here)")
    return found
