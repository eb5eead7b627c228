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

The PDF is written atomically: Chromium prints into a private temporary folder and the result
replaces the target only when it is a complete PDF. When no browser can print, the HTML is
written next to the requested path instead and :class:`RenderError` says what to install.
"""
from __future__ import annotations

import ast
import copy
import dataclasses
import datetime as _dt
import glob
import html as _html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Union

__all__ = [
    "BrowserNotFoundError",
    "RenderError",
    "ReportInfo",
    "convert",
    "export",
    "find_browser",
    "html_to_pdf",
    "is_question_cell",
    "read_notebook",
    "render_html",
    "report_info",
    "running_notebook",
    "select_questions",
]

FORMATS = ("pdf", "html")
STUDENT_VARIABLES = ("STUDENT_NAME", "STUDENT_NAMES", "TEAM_NAME", "TEAM_NAMES")
QUESTION_TAG = "question"
_MARK_TAG = "labkit-question"  # added to question cells in the rendered copy; CSS hooks on it
_QUESTION_WORDS = r"(?:question|exercise|problem|assignment|task|q\s*\d)"
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_QUESTION_HEADING = re.compile(r"^ {0,3}(#{1,3})\s+" + _QUESTION_WORDS + r"\b", re.IGNORECASE)
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
DEFAULT_TIMEOUT_S = 120.0

PathLike = Union[str, "os.PathLike[str]"]


class BrowserNotFoundError(FileNotFoundError):
    """No Chromium-family browser was found to print the PDF; the message says what to install."""

    def __init__(self, reason: str):
        super().__init__(f"{reason}. {_install_hint()}")
        self.reason = reason


class RenderError(RuntimeError):
    """The PDF could not be rendered. ``html_path`` is the HTML written instead (or ``None``)."""

    def __init__(self, message: str, html_path: Optional[Path] = None):
        super().__init__(message)
        self.html_path = html_path


# --------------------------------------------------------------------------- reading notebooks


def read_notebook(path: PathLike):
    """Read an ``.ipynb`` file as an nbformat-4 ``NotebookNode``.

    Raises ``FileNotFoundError`` when it is missing and ``ValueError`` when it is not notebook JSON,
    each naming the file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"notebook not found: {path}")
    if path.is_dir():
        raise FileNotFoundError(f"{path} is a folder, not a notebook file (.ipynb)")
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not a Jupyter notebook: not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or "cells" not in data and "worksheets" not in data:
        raise ValueError(f"{path} is not a Jupyter notebook: JSON without 'cells'")
    return _as_notebook_node(data, str(path))


def _as_notebook_node(data: dict, name: str):
    import nbformat

    try:
        return nbformat.reads(json.dumps(data), as_version=4)
    except Exception as err:  # nbformat raises several types for malformed notebooks
        raise ValueError(f"{name} is not a readable Jupyter notebook ({err})") from None


# --------------------------------------------------------------------------- title block


@dataclasses.dataclass(frozen=True)
class ReportInfo:
    """What the title block shows: ``lab`` and ``student`` (``""`` when not set), with their sources."""

    lab: str
    student: str
    lab_source: str  # "metadata", "heading" or "filename"
    student_source: str  # "metadata", "STUDENT_NAME" (the variable found) or "not set"


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line
    return ""


def _heading(cell):
    """``(level, text)`` of a markdown cell that starts with an ATX heading, else ``None``."""
    if cell.get("cell_type") != "markdown":
        return None
    match = _HEADING.match(_first_line(_source(cell)))
    return (len(match.group(1)), match.group(2)) if match else None


def _plain(text: str) -> str:
    # Heading text without inline markdown markup, for a title.
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[*_`]+", "", text).strip()


def _student_from_code(nb):
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        try:
            tree = ast.parse(_source(cell))
        except SyntaxError:  # IPython magics etc.: parse the plain assignment lines alone
            lines = [line for line in _source(cell).splitlines() if re.match(r"[A-Z_]+\s*=", line)]
            try:
                tree = ast.parse("\n".join(lines))
            except SyntaxError:
                continue
        for node in tree.body:
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in STUDENT_VARIABLES:
                    try:
                        value = ast.literal_eval(node.value)
                    except ValueError:
                        continue
                    if isinstance(value, (list, tuple)):
                        value = ", ".join(str(v).strip() for v in value if str(v).strip())
                    return str(value).strip(), target.id
    return None


def report_info(nb, fallback_name: str = "notebook") -> ReportInfo:
    """Read the lab name and student name for the title block (rules in the module docstring)."""
    meta = nb.metadata.get("labkit")
    meta = meta if isinstance(meta, dict) else {}
    h1 = next((h for h in map(_heading, nb.cells) if h and h[0] == 1), None)
    if str(meta.get("title", "")).strip():
        lab, lab_source = str(meta["title"]).strip(), "metadata"
    elif h1:
        lab, lab_source = _plain(h1[1]), "heading"
    elif str(meta.get("lab", "")).strip():
        lab, lab_source = str(meta["lab"]).strip(), "metadata"
    else:
        lab, lab_source = fallback_name, "filename"
    student = meta.get("student", "")
    if isinstance(student, (list, tuple)):
        student = ", ".join(map(str, student))
    if str(student).strip():
        return ReportInfo(lab, str(student).strip(), lab_source, "metadata")
    found = _student_from_code(nb)
    if found and found[0]:
        return ReportInfo(lab, found[0], lab_source, found[1])
    return ReportInfo(lab, "", lab_source, "not set")


# --------------------------------------------------------------------------- questions


def is_question_cell(cell) -> bool:
    """True for a markdown cell that opens a question: a question heading or the ``question`` tag."""
    if cell.get("cell_type") != "markdown":
        return False
    if QUESTION_TAG in (cell.get("metadata", {}).get("tags") or []):
        return True
    return bool(_QUESTION_HEADING.match(_first_line(_source(cell))))


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _is_autograder_test(cell) -> bool:
    meta = _nbgrader(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def select_questions(nb):
    """A copy of ``nb`` with only the question sections and the student's nbgrader solution cells.

    A section runs from a question cell up to the next question cell or the next heading of the
    same or a higher level; nbgrader autograder test cells are dropped.
    """
    kept, level = [], None  # level: heading level of the open section; None outside sections
    for cell in nb.cells:
        heading = _heading(cell)
        if is_question_cell(cell):
            level = heading[0] if heading else 6
        elif heading and level is not None and heading[0] <= level:
            level = None
        if _is_autograder_test(cell):
            continue
        if level is not None or _nbgrader(cell).get("solution"):
            kept.append(cell)
    out = copy.deepcopy(nb)
    out.cells = copy.deepcopy(kept)
    return out


# --------------------------------------------------------------------------- HTML


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
  /* each question starts a page (the rule for a question is in labkit/report.py) */
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
    ``data:`` URIs, so the file stands alone.
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
    body = body.replace("</head>", _print_css(info) + "</head>", 1)
    match = re.search(r"<body[^>]*>", body)
    if match is None:  # nbconvert's lab template always has one; fail loudly if that changes
        raise RuntimeError("nbconvert produced HTML without a <body> tag")
    return body[: match.end()] + "\n" + _title_html(info, name) + body[match.end():]


# --------------------------------------------------------------------------- browser


def _playwright_browsers() -> List[Path]:
    roots = [os.environ.get("PLAYWRIGHT_BROWSERS_PATH", ""),
             "~/.cache/ms-playwright", "~/Library/Caches/ms-playwright",
             os.path.join(os.environ.get("LOCALAPPDATA", "~"), "ms-playwright")]
    patterns = ["chromium-*/chrome-linux*/chrome", "chromium-*/chrome-mac*/Chromium.app/Contents/MacOS/Chromium",
                "chromium-*/chrome-mac*/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
                "chromium-*/chrome-win*/chrome.exe",
                "chromium_headless_shell-*/chrome-*/headless_shell",
                "chromium_headless_shell-*/chrome-*/chrome-headless-shell"]
    found = []
    for root in filter(None, roots):
        for pattern in patterns:
            found += glob.glob(os.path.join(os.path.expanduser(root), pattern))

    def version(path: str) -> int:  # newest build first
        match = re.search(r"-(\d+)", path)
        return int(match.group(1)) if match else 0

    return [Path(p) for p in sorted(set(found), key=version, reverse=True)]


_SYSTEM_BROWSERS = ("/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
                    "/Applications/Chromium.app/Contents/MacOS/Chromium",
                    r"C:\Program Files\Google\Chrome\Application\chrome.exe")


def _install_hint() -> str:
    return ("To print PDFs install Chromium: Debian/Ubuntu `sudo apt-get install chromium` "
            "(or `bash tools/install_browser.sh` in the course repo); Colab `!pip install playwright && "
            "playwright install --with-deps chromium`; macOS/Windows: install Google Chrome. "
            "Or point labkit at a browser: --browser PATH, browser=PATH, or LABKIT_CHROMIUM=PATH.")


def _executable(candidate: str) -> Optional[str]:
    path = shutil.which(candidate) if os.sep not in candidate and "/" not in candidate else candidate
    return path if path and os.path.isfile(path) and os.access(path, os.X_OK) else None


def find_browser(browser: Optional[PathLike] = None) -> str:
    """Path of a Chromium-family browser that can print PDFs.

    Looks at, in order: ``browser`` (a path or a command name), env ``LABKIT_CHROMIUM``, the
    commands ``chromium``, ``chromium-browser``, ``google-chrome``(``-stable``), ``chrome``, the usual
    macOS/Windows install paths, and Playwright's browser cache. Raises
    :class:`BrowserNotFoundError` with install instructions when none is found.
    """
    if browser is not None:
        path = _executable(str(browser))
        if path is None:
            raise BrowserNotFoundError(f"browser {str(browser)!r} is not an executable file")
        return path
    env = os.environ.get("LABKIT_CHROMIUM", "").strip()
    if env:
        path = _executable(env)
        if path is None:
            raise BrowserNotFoundError(f"LABKIT_CHROMIUM={env!r} is not an executable file")
        return path
    for candidate in [*BROWSER_NAMES, *_SYSTEM_BROWSERS, *map(str, _playwright_browsers())]:
        path = _executable(candidate)
        if path:
            return path
    raise BrowserNotFoundError("no Chromium or Chrome found (looked for LABKIT_CHROMIUM, "
                               f"{', '.join(BROWSER_NAMES)} and Playwright's browser cache)")


def chromium_print_command(browser: str, html_file: Path, pdf_file: Path, profile_dir: Path) -> List[str]:
    """The headless-Chromium command line that prints ``html_file`` to ``pdf_file``.

    Flags keep Chromium from phoning home (closed networks refuse those connections) and
    sandbox-free so it runs as root in containers and on Colab.
    """
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--mute-audio",
            f"--user-data-dir={profile_dir}", "--no-pdf-header-footer", "--print-to-pdf-no-header",
            "--virtual-time-budget=5000",  # lets MathJax typeset before printing when it is reachable
            f"--print-to-pdf={pdf_file}", html_file.resolve().as_uri()]


def _run_browser(command: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    # Own process group so a timeout ends Chromium's helper processes too.
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=(os.name == "posix"))
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def html_to_pdf(html: str, browser: Optional[PathLike] = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> bytes:
    """Print an HTML document to PDF bytes with headless Chromium (see :func:`find_browser`).

    Raises :class:`BrowserNotFoundError` when there is no browser and :class:`RenderError` when
    it fails or runs past ``timeout`` seconds.
    """
    exe = find_browser(browser)
    with tempfile.TemporaryDirectory(prefix="labkit-report-") as tmp:
        tmp = Path(tmp)
        html_file, pdf_file = tmp / "report.html", tmp / "report.pdf"
        html_file.write_text(html, encoding="utf-8")
        command = chromium_print_command(exe, html_file, pdf_file, tmp / "profile")
        try:
            done = _run_browser(command, timeout)
        except subprocess.TimeoutExpired:
            raise RenderError(f"{exe} did not finish printing within {timeout:.0f} s") from None
        except OSError as err:
            raise RenderError(f"could not start {exe}: {err}") from None
        data = pdf_file.read_bytes() if pdf_file.exists() else b""
        if done.returncode != 0 or not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
            tail = (done.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
            detail = f" ({' | '.join(tail)})" if tail else ""
            raise RenderError(f"{exe} exited with status {done.returncode} without writing a complete PDF{detail}")
        return data


# --------------------------------------------------------------------------- writing files


def _new_file_mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        os.chmod(tmp, _new_file_mode(path))  # mkstemp makes 0600; a report should read like any file
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _check_output(output: Path, to: str, notebook: Optional[Path]) -> Path:
    if output.exists() and output.is_dir():
        raise ValueError(f"output {output} is a folder; give a file name such as {output / ('report.' + to)}")
    if not output.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {output.parent} (create it first)")
    if notebook is not None and output.resolve() == notebook.resolve():
        raise ValueError(f"refusing to overwrite the notebook itself: {output}; choose another -o")
    if output.suffix.lower() == ".ipynb":
        raise ValueError(f"refusing to write a {to.upper()} report to a .ipynb file: {output}")
    other = {"pdf": ".html", "html": ".pdf"}[to]
    if output.suffix.lower() == other:
        raise ValueError(f"output {output.name} ends in {other} but the format is {to!r}; "
                         f"use {output.with_suffix('.' + to).name}")
    return output


def _fallback_html_path(pdf_output: Path) -> Path:
    return pdf_output.with_suffix(".html")  # _check_output has refused a PDF target ending in .html


def _render(nb, *, to: str, output: Path, name: str, resource_dir: Path, code: bool, questions_only: bool,
            browser: Optional[PathLike], timeout: float) -> Path:
    html = render_html(nb, code=code, questions_only=questions_only, name=name, resource_dir=resource_dir)
    if to == "html":
        _write_atomic(output, html.encode("utf-8"))
        return output
    existed = output.exists()
    try:
        pdf = html_to_pdf(html, browser, timeout=timeout)
    except (BrowserNotFoundError, RenderError) as err:
        fallback = _fallback_html_path(output)
        _write_atomic(fallback, html.encode("utf-8"))
        reason = getattr(err, "reason", str(err))  # the install hint goes on its own line below
        raise RenderError(f"could not render the PDF: {reason}\n"
                          f"  wrote the HTML report instead: {fallback} (open it in a browser and print it to PDF)\n"
                          f"  {output} was {'left unchanged' if existed else 'not written'}\n"
                          f"  {_install_hint()}", html_path=fallback) from None
    _write_atomic(output, pdf)
    return output


def _check_format(to: str) -> str:
    to = str(to).lower().lstrip(".")
    if to not in FORMATS:
        raise ValueError(f"unknown report format {to!r}; choose one of {', '.join(FORMATS)}")
    return to


def convert(notebook: PathLike, to: str = "pdf", output: Optional[PathLike] = None, *, code: bool = True,
            questions_only: bool = False, browser: Optional[PathLike] = None,
            timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Export a saved notebook file as a report; returns the path written.

    Args:
        notebook: the ``.ipynb`` file (it is read, never written).
        to: ``"pdf"`` or ``"html"``.
        output: target file; default: the notebook's path with ``.pdf``/``.html``. Its folder must exist.
        code: include code cells' input; ``False`` keeps only outputs.
        questions_only: only question sections and solution cells (module docstring).
        browser: Chromium/Chrome executable for PDFs (default: :func:`find_browser`).
        timeout: seconds the browser may take to print.

    Raises:
        FileNotFoundError / ValueError: missing notebook, not a notebook, bad output path.
        RenderError: no PDF could be made; its ``html_path`` is the HTML written instead.
    """
    to = _check_format(to)
    notebook = Path(notebook)
    nb = read_notebook(notebook)
    output = Path(output) if output is not None else notebook.with_suffix("." + to)
    _check_output(output, to, notebook)
    return _render(nb, to=to, output=output, name=notebook.name, resource_dir=notebook.resolve().parent,
                   code=code, questions_only=questions_only, browser=browser, timeout=timeout)


# --------------------------------------------------------------------------- the running notebook


def _ipython():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _on_colab() -> bool:
    return "google.colab" in sys.modules


def _colab_notebook():
    from google.colab import _message  # type: ignore[import-not-found]

    reply = _message.blocking_request("get_ipynb", request="", timeout_sec=60)
    data = reply.get("ipynb") if isinstance(reply, dict) else None
    if not data:
        raise RuntimeError("Colab did not return the notebook; pass notebook='your_notebook.ipynb' after "
                           "File > Download > Download .ipynb and uploading it")
    nb = _as_notebook_node(data, "the Colab notebook")
    name = ((data.get("metadata") or {}).get("colab") or {}).get("name") or "notebook.ipynb"
    return nb, Path(name).name


def _kernel_id() -> Optional[str]:
    try:
        from ipykernel import get_connection_file

        match = re.search(r"kernel-(.+)\.json$", os.path.basename(get_connection_file()))
    except Exception:  # not in a kernel
        return None
    return match.group(1) if match else None


def _notebook_from_server(kernel_id: str) -> Optional[Path]:
    """Ask running Jupyter servers (loopback) which session owns this kernel."""
    from urllib.request import urlopen

    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    for server in list_running_servers():
        url = f"{server['url'].rstrip('/')}/api/sessions?token={server.get('token', '')}"
        try:
            with urlopen(url, timeout=3) as reply:  # the local Jupyter server
                sessions = json.load(reply)
        except Exception:
            continue
        for session in sessions:
            if (session.get("kernel") or {}).get("id") == kernel_id:
                rel = session.get("path") or (session.get("notebook") or {}).get("path", "")
                root = server.get("root_dir") or server.get("notebook_dir") or os.getcwd()
                path = Path(root) / rel
                if path.suffix == ".ipynb" and path.exists():
                    return path
    return None


def running_notebook() -> Optional[Path]:
    """The saved ``.ipynb`` file of the kernel this runs in, or ``None`` when it cannot be told.

    Tries ipykernel's ``__session__`` / env ``JPY_SESSION_NAME`` (set by Jupyter Server 2),
    VS Code's ``__vsc_ipynb_file__``, then the Jupyter server sessions API with this kernel's id.
    """
    ip = _ipython()
    names = []
    if ip is not None:
        names += [ip.user_ns.get("__session__"), ip.user_ns.get("__vsc_ipynb_file__")]
    names.append(os.environ.get("JPY_SESSION_NAME"))
    for name in filter(None, names):
        path = Path(str(name))
        for candidate in (path, Path.cwd() / path, Path.cwd() / path.name):
            if candidate.suffix == ".ipynb" and candidate.is_file():
                return candidate
    kernel_id = _kernel_id()
    return _notebook_from_server(kernel_id) if kernel_id else None


def export(to: str = "pdf", notebook: Optional[PathLike] = None, output: Optional[PathLike] = None, *,
           code: bool = True, questions_only: bool = False, browser: Optional[PathLike] = None,
           timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Export the notebook this runs in as a report; returns the path written.

    **Save the notebook first** (File > Save, Ctrl+S): the saved file is exported, not what is
    on screen. On Colab the current notebook is fetched from the page, outputs included, and the
    report goes to the working folder (download it from the Files pane).

    Args: as :func:`convert`; ``notebook`` names the file when it cannot be found by itself
    (e.g. ``export("pdf", notebook="lab1_saliency.ipynb")``).
    """
    to = _check_format(to)
    if notebook is not None:
        path = convert(notebook, to, output, code=code, questions_only=questions_only, browser=browser, timeout=timeout)
    elif _on_colab():
        nb, name = _colab_notebook()
        target = Path(output) if output is not None else Path.cwd() / Path(name).with_suffix("." + to).name
        _check_output(target, to, None)
        path = _render(nb, to=to, output=target, name=name, resource_dir=Path.cwd(), code=code,
                       questions_only=questions_only, browser=browser, timeout=timeout)
        print(f"Wrote {path}. Download it: from google.colab import files; files.download({str(path)!r})")
        return path
    else:
        found = running_notebook()
        if found is None:
            raise FileNotFoundError("cannot tell which notebook file this kernel belongs to; save the notebook "
                                    "and pass its file name, e.g. export('pdf', notebook='lab1_saliency.ipynb')")
        saved = _dt.datetime.fromtimestamp(found.stat().st_mtime).strftime("%H:%M:%S")
        print(f"Exporting {found.name} as last saved at {saved} (save first, Ctrl+S, to include recent work).")
        path = convert(found, to, output, code=code, questions_only=questions_only, browser=browser, timeout=timeout)
    print(f"Wrote {path}")
    return path
