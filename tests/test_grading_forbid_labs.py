"""Every graded function of every lab: the honest solution passes the no-wrapper check, a wrapper fails it.

For each test cell that declares ``_grading = dict(calls=[...], forbid=[...])``, a submission whose
graded function only forwards to one of the forbidden library implementations is built from the
lab's own source and must be rejected by the trusted grader's static check
(``course.grading.forbid.violations``), while the lab's solution cells pass it untouched. The
end-to-end version (a wrapper scoring 0 through the sandboxed kernel) is in test_grading_zoo.py and
test_lab6.py; this covers every declared cell of every lab, cheaply.
"""
import ast
from typing import List

import pytest

from course import nbbuild
from course.grading import forbid
from course.grading.verdicts import test_spec as parse_spec

LABS = nbbuild.lab_names()


def _cells(lab: str):
    nb = nbbuild.read_lab(lab)
    code = [c for c in nb.cells if c.cell_type == "code"]
    solutions = [c.source for c in code if c.metadata.get("nbgrader", {}).get("solution")]
    tests = [c for c in code if c.metadata.get("nbgrader", {}).get("grade")]
    return [c.source for c in code], solutions, tests


def _states_forbid(test_source: str) -> bool:
    """Whether the cell's ``_grading = dict(...)`` declaration has a ``forbid`` entry (empty or not)."""
    tree = ast.parse(forbid.python_source(test_source))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_grading" for t in node.targets):
            if isinstance(node.value, ast.Call):
                return any(kw.arg == "forbid" for kw in node.value.keywords)
            if isinstance(node.value, ast.Dict):
                return any(getattr(k, "value", None) == "forbid" for k in node.value.keys)
    return False


def _wrapper(call: str, forbidden: str) -> str:
    """A solution cell defining ``call`` as a thin wrapper around the forbidden name."""
    parts = forbidden.split(".")
    if len(parts) >= 3 and parts[-2][:1].isupper():  # a method: torch.Tensor.relu, labkit.layers.PrePost.zeroed
        body = f"return args[0].{parts[-1]}()"
        head = ""
    else:
        head = f"import {parts[0]}\n"
        body = f"return {forbidden}(*args, **kwargs)"
    return f"{head}def {call}(*args, **kwargs):\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION\n"


def _declared(lab: str):
    all_cells, solutions, tests = _cells(lab)
    specs = [(t.metadata["nbgrader"]["grade_id"], parse_spec(t.source)) for t in tests]
    return all_cells, solutions, [(gid, s) for gid, s in specs if s.calls]


@pytest.mark.parametrize("lab", LABS)
def test_every_graded_function_names_what_is_off_limits(lab):
    """Each declaration states its forbid list; an empty one says no library computes that quantity."""
    _, _, tests = _cells(lab)
    declared = {t.metadata["nbgrader"]["grade_id"]: t.source for t in tests if "_grading" in t.source}
    assert declared, f"{lab}: no test cell declares `_grading = dict(calls=[...], forbid=[...])`"
    bare = [gid for gid, src in declared.items() if not _states_forbid(src)]
    assert not bare, f"{lab}: graded tests that do not say what is off limits (forbid=[...]): {bare}"
    library_wide = ["labkit", "torch", "course"]  # whole packages an honest solution needs
    for gid, src in declared.items():
        spec = parse_spec(src)
        assert not any(f in library_wide for f in spec.forbid), (
            f"{lab}/{gid}: forbid names a whole library {spec.forbid}; name the implementations of the quantity")


@pytest.mark.parametrize("lab", LABS)
def test_honest_solution_passes_and_each_wrapper_fails_the_static_check(lab):
    all_cells, solutions, specs = _declared(lab)
    aliases = forbid.import_aliases(all_cells)
    problems: List[str] = []
    for gid, spec in specs:
        honest = forbid.violations(solutions, spec.forbid, aliases)
        if honest:
            problems.append(f"{gid}: the lab's own solution is flagged: {honest}")
        for call in spec.calls:
            for forbidden in spec.forbid:
                wrapper = _wrapper(call, forbidden)
                if not forbid.violations([wrapper], spec.forbid, aliases):
                    problems.append(f"{gid}: a wrapper of {forbidden} as {call}() is not caught")
    assert not problems, f"{lab}:\n  " + "\n  ".join(problems)
