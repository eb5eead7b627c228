"""nbgrader configuration for the labkit course (read by every `nbgrader ...` run in this folder).

The course root is the folder holding this file, so a copy of the course (course/assignments.py's
autograde demo, the notebook tests) is self-contained. Layout, one folder per lab:

    notebooks/<lab>/<lab>.ipynb        sources (built from course/labs/<lab>.py; solutions + hidden tests)
    release/<lab>/<lab>.ipynb          student version   (`nbgrader generate_assignment`)
    solutions/<lab>/<lab>.ipynb        executed solutions (`nbgrader generate_solution`)
    submitted/<student>/<lab>/...      hand-ins           -> autograded/ -> feedback/

Grading: `make autograde` (course/grading) appends its own settings to a copy of this file for each
submission: a sandboxed kernel (bubblewrap), and test cells evaluated in the trusted grader process,
never in the student's kernel (docs/GRADING.md). Plain `nbgrader autograde` in this folder still works,
with nbgrader's own (unprotected) execution.

Feedback: nbgrader puts hidden tests back into autograded notebooks and shows them in the feedback
HTML by design (jupyter/nbgrader#917). Our hidden tests compare with labkit's reference code, so the
feedback here drops the hidden-test lines and shortens test-cell tracebacks to their final
"Error: message" line (which still carries the test's helpful message).
"""
import os
import re

from nbgrader.preprocessors import ClearHiddenTests, GetGrades, NbGraderPreprocessor
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor

c = get_config()  # noqa: F821 - provided by traitlets when it loads this file

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "labkit"
c.CourseDirectory.root = COURSE_ROOT
c.CourseDirectory.source_directory = "notebooks"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.solution_directory = "solutions"
# The gradebook is an sqlite file next to this config (gitignored), so each course copy has its own.
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(COURSE_ROOT, "gradebook.db")
# Creating the assignment entry on the fly keeps `generate_assignment` re-runnable without `nbgrader db`.
c.GenerateAssignment.create_assignment = True

# Cells on a laptop CPU with a full-size VGG16 (LABKIT_FAST=0) can take minutes; a stuck one still ends.
c.Execute.timeout = int(os.environ.get("LABKIT_CELL_TIMEOUT", "900"))
c.Execute.startup_timeout = 120


class HideHiddenTestsInFeedback(NbGraderPreprocessor):
    """Feedback only: remove ``### BEGIN/END HIDDEN TESTS`` regions and shorten test-cell tracebacks."""

    def preprocess(self, nb, resources):
        hider = ClearHiddenTests(enforce_metadata=False)
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            is_test = cell.metadata.get("nbgrader", {}).get("grade", False)
            hider._remove_hidden_test_region(cell)
            if not is_test:
                continue
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error":
                    # Frames would quote hidden lines; the last line keeps the assert message.
                    out["traceback"] = [f"{out.get('ename', 'Error')}: {_strip_ansi(out.get('evalue', ''))}"]
        return nb, resources


def _strip_ansi(text):
    return re.sub(r"\x1b\[[0-9;]*m", "", str(text))


c.GenerateFeedback.preprocessors = [GetGrades, HideHiddenTestsInFeedback, CSSHTMLHeaderPreprocessor]
