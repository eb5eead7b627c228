"""Student reports: a notebook to a self-contained HTML file or a PDF, offline.

Two routes, one look:

* **HTML** -- nbconvert's ``lab`` template with every image embedded as a ``data:`` URI, so the
  file can be handed in alone (the SMU lab asks for the rendered notebook as HTML).
* **PDF** -- the same HTML printed by a headless Chromium (Debian's ``chromium``, Chrome, or
  Playwright's downloaded Chromium). No TeX and no browser download at export time, so it
  works offline and on Colab (the Duke handout asks for a PDF).

Conventions a lab notebook follows (the report reads them, nothing else is required):

* **Title block** -- lab name from notebook metadata ``{"labkit": {"title": "..."}}``, else the
  notebook's first level-1 markdown heading, else metadata ``{"labkit": {"lab": "..."}}`` (the
  course's lab id, e.g. ``lab1_saliency``), else the file name. Student name from metadata
  ``{"labkit": {"student": "..."}}``, else a code-cell assignment ``STUDENT_NAME = "Ada"``
  (also ``STUDENT_NAMES``/``TEAM_NAME``/``TEAM_NAMES``; a list or tuple of strings is joined
  with commas, for team hand-ins). Lab notebooks carry ``STUDENT_NAME = ""`` in their settings
  cell; an empty name is reported as *not set* and :func:`report_info` says so.
* **Question heading** -- a markdown cell whose *first line* is a heading of level 1-3 whose text
  starts with ``Question``, ``Exercise``, ``Problem``, ``Assignment``, ``Task`` or ``Q<digit>``
  (case-insensitive; e.g. ``## Question 1(a) Saliency of your own image (3 pts)``), or a
  markdown cell tagged ``question``. Each question starts on a new page (unless it is the very
  first cell, right under the title block).
* **Question section** (for ``questions_only``) -- from a question heading up to, not including,
  the next question heading or the next heading of the same or a higher level (fewer ``#``).
  ``questions_only`` keeps the title block, every question section, and every nbgrader solution
  cell (``metadata.nbgrader.solution``: the student's answers) wherever it is; it drops nbgrader
  autograder test cells, which are not the student's work.

Figures never break across pages, code is hidden with ``code=False`` (outputs stay), and the
page footer names the lab and the student, with page numbers.

Formulas (``$...$``, ``$$...$$``) are typeset by MathJax from the local ``jupyter-server-mathjax``
package, so they render offline; the PDF printer waits until MathJax has finished.

The PDF is written atomically: Chromium prints into a private temporary folder and the result
replaces the target only when it is a complete PDF. When no browser can print, the HTML is
written next to the requested path instead and :class:`RenderError` says what to install.

Modules: ``notebook`` (reading, title block, questions), ``html`` (the HTML report, MathJax),
``browser`` (finding Chromium, errors), ``pdf`` (printing over the DevTools pipe), ``export``
(writing files, the running notebook).
"""
from labkit.report.browser import _SYSTEM_BROWSERS, BROWSER_NAMES, BrowserNotFoundError, RenderError, find_browser
from labkit.report.export import (FORMATS, _kernel_id, _notebook_from_server, convert, export,
                                  running_notebook)
from labkit.report.html import local_mathjax, mathjax_html, render_html
from labkit.report.notebook import (QUESTION_TAG, STUDENT_VARIABLES, ReportInfo, is_question_cell, read_notebook,
                                    report_info, select_questions)
from labkit.report.pdf import DEFAULT_TIMEOUT_S, chromium_print_command, html_to_pdf

__all__ = [
    "BrowserNotFoundError",
    "RenderError",
    "ReportInfo",
    "convert",
    "export",
    "find_browser",
    "html_to_pdf",
    "is_question_cell",
    "local_mathjax",
    "read_notebook",
    "render_html",
    "report_info",
    "running_notebook",
    "select_questions",
]
# Also importable from here, for callers and tests: BROWSER_NAMES, DEFAULT_TIMEOUT_S, FORMATS,
# QUESTION_TAG, STUDENT_VARIABLES, chromium_print_command, mathjax_html, and the private helpers
# _SYSTEM_BROWSERS, _kernel_id, _notebook_from_server.
_REEXPORTED = (BROWSER_NAMES, DEFAULT_TIMEOUT_S, FORMATS, QUESTION_TAG, STUDENT_VARIABLES, chromium_print_command,
               mathjax_html, _SYSTEM_BROWSERS, _kernel_id, _notebook_from_server)
