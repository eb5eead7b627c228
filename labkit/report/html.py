"""A notebook as one self-contained HTML report: nbconvert's ``lab`` template, images embedded,
a title block, print CSS (a page per question, figures kept whole, footer), and formulas
typeset by a local MathJax.

**Formulas offline.** nbconvert loads MathJax from a CDN. The report loads it from the
``jupyter-server-mathjax`` package instead (MathJax 2.7, installed with the course extra), as a
``file://`` URL, and falls back to the CDN only when that file is not there (the HTML opened on
another machine). The page marks ``<html data-labkit-mathjax="done">`` once MathJax has
typeset every formula (``"unavailable"`` when no MathJax could be loaded); the PDF printer waits
for that mark before printing.
"""
from __future__ import annotations

import copy
import datetime as _dt
import html as _html
import os
import re
from pathlib import Path
from typing import Optional, Union

from labkit.report.notebook import ReportInfo, is_question_cell, report_info, select_questions

PathLike = Union[str, "os.PathLike[str]"]
_MARK_TAG = "labkit-question"  # added to question cells in the rendered copy; CSS hooks on it
MATHJAX_CDN = "https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/MathJax.js"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the configuration jupyter-server-mathjax ships
MATHJAX_STATE = "data-labkit-mathjax"  # attribute of <html>: "done" or "unavailable" once settled
_NBCONVERT_MATHJAX = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)


def local_mathjax() -> Optional[Path]:
    """``MathJax.js`` of the installed ``jupyter-server-mathjax`` package, or ``None`` when it is not installed."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    path = Path(jupyter_server_mathjax.__file__).resolve().parent / "static" / "MathJax.js"
    return path if path.is_file() else None


def mathjax_html(local: Optional[Path] = None) -> str:
    """The ``<script>`` that configures and loads MathJax: the local copy first, then the CDN.

    The configuration is nbconvert's (``$...$``/``\\(...\\)`` inline, ``$$...$$``/``\\[...\\]`` display,
    AMS equation numbers) with the HTML-CSS output in the STIX-Web fonts that the local copy ships.
    When MathJax has typeset the page it sets ``<html data-labkit-mathjax="done">``.
    """
    local = local if local is not None else local_mathjax()
    sources = ([local.as_uri() + "?config=" + MATHJAX_CONFIG] if local else []) + [
        MATHJAX_CDN + "?config=" + MATHJAX_CONFIG]
    sources_js = "[" + ", ".join('"' + s.replace('"', "%22") + '"' for s in sources) + "]"
    return f"""<!-- labkit: MathJax, local copy first (works offline), CDN as a fallback -->
<script type="text/javascript" id="labkit-mathjax">
(function () {{
  var root = document.documentElement;
  function mark(state) {{ if (!root.getAttribute("{MATHJAX_STATE}")) root.setAttribute("{MATHJAX_STATE}", state); }}
  window.MathJax = {{
    TeX: {{ equationNumbers: {{ autoNumber: "AMS", useLabelIds: true }} }},
    tex2jax: {{ inlineMath: [["$", "$"], ["\\\\(", "\\\\)"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
               processEscapes: true, processEnvironments: true }},
    displayAlign: "center", messageStyle: "none", showMathMenu: false,
    "HTML-CSS": {{ availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null,
                  linebreaks: {{ automatic: true }} }},
    AuthorInit: function () {{
      MathJax.Hub.Register.StartupHook("End", function () {{ mark("done"); }});
    }}
  }};
  var sources = {sources_js};
  function load(i) {{
    if (i >= sources.length) {{ mark("unavailable"); return; }}
    var script = document.createElement("script");
    script.src = sources[i];
    script.onerror = function () {{ load(i + 1); }};
    document.head.appendChild(script);
  }}
  load(0);
}})();
</script>
<!-- labkit: end of MathJax -->"""


def _css_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _print_css(info: ReportInfo) -> str:
    footer = f"{info.lab} \u2014 {info.student or 'student name not set'}"
    return f"""
<style type="text/css" id="labkit-report">
/* labkit report: title block and print layout */
.labkit-title {{ border-bottom: 2px solid #444; margin: 0 0 1.2em 0; padding: 0 0 .6em 0; }}
.labkit-title h1 {{ font-size: 1.8em; margin: 0 0 .3em 0; }}
.labkit-title p {{ margin: .15em 0; font-size: 1.05em; }}
.labkit-title .labkit-missing {{ color: #b00; font-style: italic; }}
@page {{
  margin: 16mm 14mm 18mm 14mm;
  @bottom-left {{ content: {_css_string(footer)}; font-size: 9pt; color: #555; }}
  @bottom-right {{ content: "page " counter(page) " / " counter(pages); font-size: 9pt; color: #555; }}
}}
@media print {{
  body {{ margin: 0; padding: 0; }}
  .jp-Notebook {{ padding: 0 !important; }}
  /* each question starts a page (the rule for a question is in labkit/report/notebook.py) */
  .jp-Cell:has(.celltag_{_MARK_TAG}), .celltag_{_MARK_TAG} {{ break-before: page; page-break-before: always; }}
  h1, h2, h3, h4 {{ break-after: avoid; page-break-after: avoid; }}
  /* figures are never split across pages */
  .jp-OutputArea-child:has(img), .jp-OutputArea-child:has(svg), .jp-RenderedImage,
  .jp-OutputArea-output img, .jp-RenderedMarkdown img, img, svg, figure, table {{
    break-inside: avoid; page-break-inside: avoid;
  }}
  img {{ max-width: 100% !important; max-height: 230mm; height: auto; object-fit: contain; }}
  /* long code lines wrap instead of being cut at the page edge */
  pre {{ white-space: pre-wrap !important; word-break: break-word; }}
  .jp-InputArea, .jp-OutputArea {{ overflow: visible !important; }}
}}
</style>
"""


def _title_html(info: ReportInfo, notebook_name: str) -> str:
    esc = _html.escape
    student = (esc(info.student) if info.student
               else '<span class="labkit-missing">not set (fill in STUDENT_NAME in the settings cell)</span>')
    label = "Students" if "," in info.student else "Student"
    today = _dt.date.today().isoformat()
    return (f'<header class="labkit-title">\n<h1 class="labkit-lab">{esc(info.lab)}</h1>\n'
            f'<p class="labkit-student"><b>{label}:</b> {student}</p>\n'
            f'<p class="labkit-meta">Notebook: {esc(notebook_name)} &middot; exported {today}</p>\n</header>\n')


def render_html(nb, *, code: bool = True, questions_only: bool = False, name: str = "notebook",
                resource_dir: Optional[PathLike] = None) -> str:
    """Render a notebook as one self-contained HTML report (a ``str``).

    Args:
        nb: an nbformat-4 ``NotebookNode`` (see :func:`read_notebook`); not modified.
        code: show code cells' input (``False``: only their outputs, like nbconvert's ``--no-input``).
        questions_only: keep only question sections and solution cells (see :func:`select_questions`).
        name: the notebook's file name, shown in the title block and used when the lab has no name.
        resource_dir: folder that relative image links in markdown are read from (the notebook's).

    Images (outputs, attachments and markdown links to local files) are embedded as
    ``data:`` URIs, so the file stands alone. Formulas are typeset by MathJax from the local
    ``jupyter-server-mathjax`` copy when it is installed, else from the CDN (module docstring).
    """
    from nbconvert import HTMLExporter

    info = report_info(nb, fallback_name=Path(name).stem)
    nb = select_questions(nb) if questions_only else copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        if is_question_cell(cell) and index > 0:  # a first question follows the title block directly
            tags = list(cell.metadata.get("tags") or [])
            cell.metadata["tags"] = tags + [_MARK_TAG]
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=not code,
                            exclude_input_prompt=not code, exclude_output_prompt=not code)
    resources = {"metadata": {"name": info.lab, "path": str(resource_dir or os.getcwd())}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    body, found = _NBCONVERT_MATHJAX.subn(lambda _: mathjax_html(), body, count=1)
    if not found:  # nbconvert changed its template: add ours anyway (its own loader stays harmless)
        body = body.replace("</head>", mathjax_html() + "\n</head>", 1)
    body = body.replace("</head>", _print_css(info) + "</head>", 1)
    match = re.search(r"<body[^>]*>", body)
    if match is None:  # nbconvert's lab template always has one; fail loudly if that changes
        raise RuntimeError("nbconvert produced HTML without a <body> tag")
    return body[: match.end()] + "\n" + _title_html(info, name) + body[match.end():]
