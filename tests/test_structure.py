"""The shape of the repository: which module may import which, file sizes, the lab sources.

* The import graph of ``labkit/`` and ``course/``, read with :mod:`ast` (imports inside functions
  count as much as top-level ones): imports run course -> labkit only, there are no loops, and no
  module imports one from a higher layer (``LAYERS`` below). The only imports left out are
  ``importlib.import_module`` strings, which labkit uses for its lazy attributes.
* No Python file in ``labkit/`` or ``course/`` is longer than about ``MAX_LINES`` lines.
* Every lab source (``course/labs/*.py``) is a jupytext percent script that pyflakes accepts, and
  rebuilding ``notebooks/`` from the sources gives the committed notebooks, byte for byte.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Dict, List, Set

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("labkit", "course")
MAX_LINES = 500  # "about 500" (issue 11)

# Layers, lowest first: a module may import modules of its own layer or lower ones, never higher.
# The first pattern that matches a module's name gives its layer.
LAYERS = [
    ("base", r"labkit\._.*|labkit\.models|labkit\.photos"),  # private helpers, the model registry, photo files
    ("data", r"labkit\.(scores|images|layers|notebook)"),  # targets and gradients, images, layer taps, settings
    # everything else in labkit computes: layers, scores, saliency, featurevis, quantize, circuits, ...
    ("compute", r"labkit\.(?!(plot|report|cli)(\.|$)).*"),
    ("draw", r"labkit\.plot(\..*)?"),
    ("front", r"labkit\.report(\..*)?|labkit\.cli|labkit"),  # labkit/__init__.py re-exports load_model
    ("course", r"course(\..*)?"),
]
# Modules that draw (labkit.plot) are imported only by these: results and computations never import plot.
PLOT_IMPORTERS = r"labkit\.plot(\..*)?|labkit\.cli|labkit\.report|course(\..*)?"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _python_files() -> Dict[str, Path]:
    """Every importable module of the two packages (not the lab sources: they are notebooks)."""
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "labs" in path.relative_to(ROOT).parts:
                continue
            files[_module_name(path)] = path
    return files


MODULES = _python_files()


def _resolve(name: str) -> str:
    """The deepest known module that ``name`` (a dotted import target) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, source: str, *, is_package: bool = False) -> Set[str]:
    """The labkit/course modules that ``module`` (its text: ``source``) imports, anywhere in its body."""
    tree = ast.parse(source, filename=module)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from . import x / from ..y import z
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import sub` imports the submodule pkg.sub when there is one
            targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in MODULES else prefix for a in node.names]
        else:
            continue
        for target in targets:
            if target.split(".")[0] in PACKAGES:
                resolved = _resolve(target)
                if resolved and resolved != module:
                    found.add(resolved)
    return found


GRAPH = {module: _imports(module, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py")
         for module, path in MODULES.items()}


def _layer(module: str) -> int:
    for i, (_, pattern) in enumerate(LAYERS):
        if re.fullmatch(pattern, module):
            return i
    raise AssertionError(f"{module} is in no layer of tests/test_structure.py's LAYERS: add it there")


def _cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# --------------------------------------------------------------------------- the import graph


def test_the_graph_sees_function_level_imports():
    """Control: the parser finds imports inside functions, relative ones, and submodules named in a from."""
    source = ("import os\nfrom labkit.models import load_model\n\n\ndef f():\n    from labkit import plot\n"
              "    import labkit.saliency as s\n    from ..featurevis import core\n    from .. import _table\n")
    assert _imports("labkit.featurevis.x", source) == {
        "labkit.models", "labkit.plot", "labkit.saliency", "labkit.featurevis.core", "labkit._table"}
    assert _imports("labkit.plot", "from . import saliency\n", is_package=True) == {"labkit.plot.saliency"}


def test_labkit_never_imports_course():
    offenders = {m: sorted(t for t in targets if t.startswith("course"))
                 for m, targets in GRAPH.items() if m.split(".")[0] == "labkit"}
    offenders = {m: t for m, t in offenders.items() if t}
    assert not offenders, f"labkit imports course (imports run course -> labkit only): {offenders}"
    # the issue's own check: `grep -r course labkit/*.py` finds no import
    pattern = re.compile(r"^\s*(from\s+course[\s.]|import\s+course\b)", re.M)
    grep = [str(p.relative_to(ROOT)) for p in (ROOT / "labkit").rglob("*.py") if pattern.search(p.read_text())]
    assert not grep, f"these labkit files import course: {grep}"


def test_no_import_loops():
    loops = _cycles(GRAPH)
    assert not loops, "import loops (function-level imports count): " + "; ".join(" <-> ".join(c) for c in loops)


def test_no_module_imports_a_higher_layer():
    upward = [f"{m} ({LAYERS[_layer(m)][0]}) imports {t} ({LAYERS[_layer(t)][0]})"
              for m, targets in sorted(GRAPH.items()) for t in sorted(targets) if _layer(t) > _layer(m)]
    assert not upward, "imports from a lower layer up to a higher one:\n  " + "\n  ".join(upward)


def test_only_drawing_and_front_ends_import_plot():
    """labkit.plot draws results; results and computations never import it."""
    bad = [f"{m} imports {t}" for m, targets in sorted(GRAPH.items()) for t in sorted(targets)
           if t.startswith("labkit.plot") and not re.fullmatch(PLOT_IMPORTERS, m)]
    assert not bad, "modules that compute or hold results import labkit.plot:\n  " + "\n  ".join(bad)


def test_plot_never_takes_a_model():
    """A plot function takes results, never a model (no parameter called model/net)."""
    bad = []
    for module, path in MODULES.items():
        if not module.startswith("labkit.plot"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                args = [a.arg for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs]
                bad += [f"{module}.{node.name}({a})" for a in args if a in ("model", "net", "network")]
    assert not bad, f"plot functions that take a model: {bad}"


# --------------------------------------------------------------------------- sizes


def test_no_python_file_over_about_500_lines():
    files = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))
    long = [f"{p.relative_to(ROOT)}: {n} lines" for p in files
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, f"Python files over {MAX_LINES} lines (split them by job):\n  " + "\n  ".join(long)


# --------------------------------------------------------------------------- lab sources


def _labs() -> List[str]:
    from course import nbbuild

    return nbbuild.lab_names()


LABS = _labs()


def test_every_lab_source_has_its_notebook_and_back():
    from course import nbbuild

    built = sorted(p.name for p in nbbuild.NOTEBOOKS_DIR.iterdir() if (p / f"{p.name}.ipynb").is_file())
    assert LABS, "no lab sources in course/labs/"
    assert built == LABS, f"notebooks/ has {built}, course/labs/ has {LABS}: run `python -m course build`"


@pytest.mark.parametrize("lab", LABS)
def test_lab_source_is_a_jupytext_percent_script(lab):
    from course import nbbuild

    text = nbbuild.lab_source(lab)
    assert text.startswith("# ---\n") and "\n# %%" in text, f"{lab}: not a jupytext percent script with a YAML header"
    assert "def build(" not in text, f"{lab}: lab code belongs in # %% cells, not in a build() function"
    nb = nbbuild.read_lab(lab)  # raises on a header the builder does not know
    assert nb.metadata["labkit"]["title"] and len(nb.cells) > 5


@pytest.mark.parametrize("lab", LABS)
def test_lab_source_passes_pyflakes(lab):
    from pyflakes.api import check
    from pyflakes.reporter import Reporter
    import io

    from course import nbbuild

    out, err = io.StringIO(), io.StringIO()
    path = nbbuild.lab_path(lab)  # a lab in parts is checked whole: later parts use earlier names
    problems = check(nbbuild.lab_source(lab), str(path.relative_to(ROOT)), Reporter(out, err))
    assert problems == 0, f"pyflakes on course/labs/{lab}.py:\n{out.getvalue()}{err.getvalue()}"


@pytest.mark.parametrize("lab", LABS)
def test_notebook_is_rebuilt_byte_for_byte(lab):
    from course import nbbuild

    built = nbformat.writes(nbbuild.read_lab(lab))
    committed = nbbuild.notebook_path(lab).read_text(encoding="utf-8")
    assert committed.rstrip("\n") == built.rstrip("\n"), (
        f"notebooks/{lab}/{lab}.ipynb is not what course/labs/{lab}.py builds: run `python -m course build {lab}`")


def test_shared_cells_are_filled_from_one_place():
    """The Colab cell is written once, in course/nbbuild.py, and is the same in every built lab."""
    from course import nbbuild

    for lab in LABS:
        text = nbbuild.lab_source(lab)
        assert "git clone" not in text, f"{lab}: the Colab setup is a kind=\"shared\" cell, not a copy"
        cells = [c for c in nbbuild.read_lab(lab).cells if c.get("id") == "colab_setup"]
        assert len(cells) == 1 and cells[0].source == nbbuild.SHARED["colab_setup"], lab


def test_builder_reads_every_header_and_finds_new_labs(tmp_path, monkeypatch):
    """A hand-written lab in a scratch folder: every header kind, magics, and discovery by file name."""
    from course import nbbuild

    monkeypatch.setattr(nbbuild, "LABS_DIR", tmp_path)
    (tmp_path / "lab9_new.py").write_text(
        "# ---\n# jupyter:\n#   labkit:\n#     title: 'Lab 9: new'\n# ---\n\n"
        "# %% [markdown]\n# # Lab 9\n\n"
        '# %% kind="shared" id="colab_setup"\n\n'
        '# %% kind="free" tags=["parameters"]\n# %matplotlib inline\nX = 1\n\n'
        '# %% kind="solution" id="f"\ndef f():\n    ### BEGIN SOLUTION\n    return X\n    ### END SOLUTION\n\n'
        '# %% kind="tests" id="test_f" points=1.5\nassert f() == 1\n\n'
        '# %% [markdown] kind="answer" id="answer_1" points=2\n# YOUR ANSWER HERE\n')
    (tmp_path / "_helper.py").write_text("")
    assert nbbuild.lab_names() == ["lab9_new"], "labs are course/labs/*.py without a leading underscore"
    nb = nbbuild.read_lab("lab9_new")
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    assert [c.id for c in nb.cells] == ["md_000", "colab_setup", "cell-002", "f", "test_f", "answer_1"]
    assert nb.cells[1].source == nbbuild.COLAB_SETUP and meta[1]["locked"]
    assert nb.cells[2].source == "%matplotlib inline\nX = 1" and not meta[2] and nb.cells[2].metadata.tags == ["parameters"]
    assert meta[3]["solution"] and not meta[3]["locked"] and not meta[3]["grade"]
    assert meta[4]["grade"] and meta[4]["locked"] and meta[4]["points"] == 1.5
    assert meta[5]["solution"] and meta[5]["grade"] and nb.cells[5].cell_type == "markdown"
    assert nb.metadata.labkit == {"lab": "lab9_new", "title": "Lab 9: new", "points": 3.5}
    assert all(c.metadata.get("editable") is False for c, m in zip(nb.cells, meta) if m.get("locked"))

    (tmp_path / "lab9_new.py").write_text("# ---\n# jupyter:\n#   labkit:\n#     title: t\n# ---\n\n"
                                          '# %% kind="solutoin" id="f"\nx = 1\n')
    with pytest.raises(nbbuild.LabSourceError, match="solution"):
        nbbuild.read_lab("lab9_new")


def test_a_long_lab_can_be_a_folder_of_parts(tmp_path, monkeypatch):
    """course/labs/<lab>/NN_*.py read in order build the same notebook as one script would."""
    from course import nbbuild

    monkeypatch.setattr(nbbuild, "LABS_DIR", tmp_path)
    header = "# ---\n# jupyter:\n#   labkit:\n#     title: 'Lab 8: parts'\n# ---\n\n"
    first = '# %% [markdown]\n# # Lab 8\n\n# %%\nX = 1\n'
    second = '# %% kind="tests" id="test_x" points=1\nassert X == 1\n'
    (tmp_path / "lab8_parts").mkdir()
    (tmp_path / "lab8_parts" / "01_intro.py").write_text(header + first)
    (tmp_path / "lab8_parts" / "02_tests.py").write_text(second)
    (tmp_path / "lab7_single.py").write_text(header + first + "\n" + second)
    assert nbbuild.lab_names() == ["lab7_single", "lab8_parts"]
    assert [p.name for p in nbbuild.lab_parts("lab8_parts")] == ["01_intro.py", "02_tests.py"]
    parts, single = nbbuild.read_lab("lab8_parts"), nbbuild.read_lab("lab7_single")
    assert [c.source for c in parts.cells] == [c.source for c in single.cells] == ["# Lab 8", "X = 1", "assert X == 1"]
    assert parts.metadata.labkit["points"] == 1.0
    with pytest.raises(nbbuild.LabSourceError, match="lab7_single, lab8_parts"):
        nbbuild.lab_parts("lab9_missing")
