"""The dependency lists in pyproject.toml and environment.yml agree."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# conda names some packages differently
CONDA_TO_PYPI = {"pytorch": "torch"}


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(req):
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return _norm(m.group(1)), m.group(2).replace(" ", "")


def pyproject_requirements():
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        tomli = pytest.importorskip("tomli")
        tomllib = tomli
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = list(data["project"]["dependencies"])
    for extra in data["project"].get("optional-dependencies", {}).values():
        reqs += extra
    return dict(_split(r) for r in reqs)


def environment_requirements():
    import yaml

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    reqs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for pipdep in dep.get("pip", []):
                if not pipdep.startswith("-e"):
                    name, spec = _split(pipdep)
                    reqs[name] = spec
            continue
        name, spec = _split(dep)
        if name in {"python", "pip"}:
            continue
        reqs[CONDA_TO_PYPI.get(name, name)] = spec
    return reqs


def test_pyproject_and_environment_list_the_same_dependencies():
    py, env = pyproject_requirements(), environment_requirements()
    assert set(py) == set(env), (
        f"only in pyproject.toml: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"
    )
    differing = {k: (py[k], env[k]) for k in py if py[k] != env[k]}
    assert not differing, f"version ranges differ (pyproject, environment.yml): {differing}"


def test_dependencies_are_ranges_not_pins():
    pins = {k: v for k, v in pyproject_requirements().items() if v.startswith("==")}
    assert not pins, f"pin-free on purpose (Colab brings its own torch): {pins}"


def _imported_modules(path: Path):
    """Every module a file imports, at any depth (function-level imports count)."""
    import ast

    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_labkit_never_imports_the_course():
    offenders = [f"{path.relative_to(ROOT)}: {module}" for path in sorted((ROOT / "labkit").rglob("*.py"))
                 for module in _imported_modules(path) if module == "course" or module.startswith("course.")]
    assert not offenders, f"imports run course -> labkit only: {offenders}"


def test_importing_labkit_and_its_modules_loads_no_course_module():
    import subprocess
    import sys

    code = ("import sys, labkit, labkit.models, labkit.layers, labkit.scores, labkit.saliency, labkit.quantize, "
            "labkit.circuits, labkit.cli, labkit.plot; "
            "print(sorted(m for m in sys.modules if m == 'course' or m.startswith('course.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
