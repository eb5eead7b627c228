"""Output scrubbing before grades are saved: size caps, and no quotes of hidden tests.

:class:`ScrubOutputs` replaces outputs over a size limit (a 50 MB image does not go into the gradebook's
notebook or the feedback) and outputs that quote hidden-test code (a student hook that prints cells).
Error outputs keep their ``ename``, so the grades nbgrader computes are unchanged by the scrubbing.
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, Set

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Float, Unicode

HIDDEN_RE = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS[^\n]*\n(.*?)^[ \t]*### END HIDDEN TESTS[^\n]*\n?", re.M | re.S)


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
