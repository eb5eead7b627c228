"""labkit.report: notebooks to HTML and PDF reports, checked by reading the files back.

PDFs are printed by the real headless Chromium and read with poppler (pdftotext, pdfimages,
pdftoppm); both come from `tools/install_browser.sh` (run by `make setup`).
"""
import base64
import glob
import io
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import matplotlib.pyplot as plt
import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from PIL import Image

from labkit import cli, report

REPO = Path(__file__).resolve().parents[1]
PHOTO = REPO / "data" / "images" / "dog.jpg"
LAB = "Lab 1: Saliency maps"
STUDENT = "Ada Lovelace"
QUESTIONS = ["Question 1(a) Saliency of your photo (3 pts)", "Question 1(b) Smoothing the gradient (2 pts)"]
CODE_MARKER = "marker_in_code_cell"  # appears only in code input
OUTPUT_MARKER = "printed by the student cell"  # appears only in an output


def _poppler_and_browser():
    missing = [tool for tool in ("pdftotext", "pdfimages", "pdftoppm", "pdfinfo") if shutil.which(tool) is None]
    try:
        report.find_browser()
    except report.BrowserNotFoundError:
        missing.append("chromium")
    return missing


_MISSING = _poppler_and_browser()
needs_pdf_tools = pytest.mark.skipif(
    bool(_MISSING), reason=f"PDF tests need {', '.join(_MISSING)}: run `bash tools/install_browser.sh` (make setup)")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _saliency_figure_png() -> bytes:
    """A real photo with a heat-map overlay, as a notebook's matplotlib output would be."""
    photo = np.asarray(Image.open(PHOTO).convert("RGB").resize((224, 224))) / 255.0
    heat = np.abs(np.gradient(photo.mean(axis=2))[0])
    fig, axes = plt.subplots(1, 2, figsize=(6, 3), dpi=100)
    axes[0].imshow(photo)
    axes[1].imshow(photo)
    axes[1].imshow(heat, cmap="jet", alpha=0.5)
    for ax in axes:
        ax.axis("off")
    return _png(fig)


def _image_output(png: bytes):
    return new_output("display_data", data={"image/png": base64.b64encode(png).decode(), "text/plain": "<Figure>"})


def _student_notebook(student=STUDENT, metadata=None):
    png = _saliency_figure_png()
    nb = new_notebook()
    nb.metadata.update(metadata or {})
    nb.cells = [
        new_markdown_cell(f"# {LAB}\nIn this lab you compute saliency maps.\n\n![photo](photo.png)"),
        new_code_cell(f"# settings\nSTUDENT_NAME = {student!r}\nSEED = 0"),
        new_markdown_cell("## Setup\nRun the next cell."),
        new_code_cell("import labkit\nprint('setup section output')",
                      outputs=[new_output("stream", name="stdout", text="setup section output\n")]),
        new_markdown_cell(f"## {QUESTIONS[0]}\nCompute the vanilla-gradient saliency of your photo."),
        new_code_cell(f"{CODE_MARKER} = saliency(model, x)\nprint('{OUTPUT_MARKER}')\nshow({CODE_MARKER})",
                      metadata={"nbgrader": {"solution": True, "grade": False, "grade_id": "q1a_code",
                                             "locked": False, "schema_version": 3}},
                      outputs=[new_output("stream", name="stdout", text=OUTPUT_MARKER + "\n"), _image_output(png)]),
        new_markdown_cell("The dog's face and ears light up; the background stays dark.",
                          metadata={"nbgrader": {"solution": True, "grade": True, "points": 3, "grade_id": "q1a",
                                                 "locked": False, "schema_version": 3}}),
        new_markdown_cell(f"## {QUESTIONS[1]}\nExplain why SmoothGrad looks less noisy."),
        new_code_cell("assert autograder_check()",
                      metadata={"nbgrader": {"solution": False, "grade": True, "points": 2, "grade_id": "q1b_test",
                                             "locked": True, "schema_version": 3}}),
        new_markdown_cell("## Appendix: references\nappendix text is not part of a question"),
    ]
    return nb, png


@pytest.fixture(scope="module")
def lab_notebook(tmp_path_factory):
    """A saved student notebook (with a photo next to it, linked from markdown) and its figure's PNG."""
    folder = tmp_path_factory.mktemp("lab")
    nb, png = _student_notebook()
    path = folder / "lab1_saliency.ipynb"
    nbformat.write(nb, path)
    Image.open(PHOTO).convert("RGB").resize((64, 48)).save(folder / "photo.png")
    return path, png


@pytest.fixture(scope="module")
def full_pdf(lab_notebook, tmp_path_factory):
    if _MISSING:
        pytest.skip(f"needs {', '.join(_MISSING)}")
    notebook, _ = lab_notebook
    out = tmp_path_factory.mktemp("pdf") / "report.pdf"
    assert report.convert(notebook, "pdf", out) == out
    return out


def _pdf_text(pdf: Path, page=None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(["pdftotext", "-layout", *pages, str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout


def _pdf_pages(pdf: Path) -> int:
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def _pdf_images(pdf: Path):
    """[(page, width, height)] of the raster images in a PDF (pdfimages -list)."""
    lines = subprocess.run(["pdfimages", "-list", str(pdf)], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in lines.splitlines()[2:]:
        cols = line.split()
        if len(cols) > 4 and cols[2] == "image":
            rows.append((int(cols[0]), int(cols[3]), int(cols[4])))
    return rows


def _inked_fraction(pdf: Path, page: int, tmp: Path) -> float:
    """Share of a page's pixels that are not near-white, from a pdftoppm rendering."""
    prefix = tmp / f"page{page}"
    subprocess.run(["pdftoppm", "-r", "40", "-f", str(page), "-l", str(page), "-png", "-singlefile", str(pdf),
                    str(prefix)], check=True)
    pixels = np.asarray(Image.open(f"{prefix}.png").convert("L"))
    return float((pixels < 200).mean())


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S | re.I)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#39;", "'").replace("&quot;", '"')


# --------------------------------------------------------------------------- conventions


@pytest.mark.parametrize("source, expected", [
    ("## Question 1(a) Saliency (3 pts)\ntext", True),
    ("# Exercise 2", True),
    ("### Q3. Quantise the weights", True),
    ("\n\n## Assignment: circuits", True),
    ("## Task 4 - bit widths", True),
    ("#### Question 1 (level 4 is too deep)", False),
    ("## Questions and answers", False),
    ("## Setup", False),
    ("Question 1 without a heading", False),
])
def test_question_heading_rule(source, expected):
    assert report.is_question_cell(new_markdown_cell(source)) is expected


def test_question_tag_and_code_cells():
    assert report.is_question_cell(new_markdown_cell("Describe it.", metadata={"tags": ["question"]}))
    assert not report.is_question_cell(new_code_cell("## Question 1"))


def test_report_info_reads_conventions():
    nb, _ = _student_notebook()
    info = report.report_info(nb)
    assert (info.lab, info.student, info.lab_source, info.student_source) == (LAB, STUDENT, "heading", "STUDENT_NAME")

    nb, _ = _student_notebook(student=["Ada Lovelace", "Grace Hopper"])
    assert report.report_info(nb).student == "Ada Lovelace, Grace Hopper"

    nb, _ = _student_notebook(student="", metadata={"labkit": {"title": "ECE590 Lab 1", "lab": "lab1_saliency"}})
    info = report.report_info(nb, fallback_name="lab1")
    assert (info.lab, info.lab_source, info.student, info.student_source) == ("ECE590 Lab 1", "metadata", "", "not set")
    nb.metadata["labkit"].pop("title")
    assert report.report_info(nb).lab == LAB  # the heading names the lab better than its id
    nb.cells.pop(0)
    assert report.report_info(nb).lab == "lab1_saliency"

    nb, _ = _student_notebook(metadata={"labkit": {"student": "Team Rocket"}})
    assert report.report_info(nb).student == "Team Rocket"

    bare = new_notebook(cells=[new_code_cell("%matplotlib inline\nSTUDENT_NAME = 'Alan'")])
    info = report.report_info(bare, fallback_name="lab3_quantize")
    assert (info.lab, info.lab_source, info.student) == ("lab3_quantize", "filename", "Alan")


def test_select_questions_keeps_sections_and_answers():
    nb, _ = _student_notebook()
    nb.cells.insert(2, new_markdown_cell("Outside any question.", metadata={"nbgrader": {"solution": True}}))
    kept = [c.source for c in report.select_questions(nb).cells]
    assert any(QUESTIONS[0] in s for s in kept) and any(QUESTIONS[1] in s for s in kept)
    assert any(CODE_MARKER in s for s in kept) and "Outside any question." in kept
    assert not any("Setup" in s or "Appendix" in s or "autograder_check" in s for s in kept)
    assert len(nb.cells) == 11  # the input notebook is untouched


# --------------------------------------------------------------------------- HTML


def test_html_embeds_images_and_has_title_block(lab_notebook, tmp_path):
    notebook, png = lab_notebook
    out = tmp_path / "report.html"
    assert report.convert(notebook, "html", out) == out
    html = out.read_text(encoding="utf-8")
    sources = re.findall(r"<img\b[^>]*\bsrc\s*=\s*[\"']([^\"']*)", html, flags=re.I)
    assert len(sources) >= 2  # the figure output and the photo linked from markdown
    assert all(src.startswith("data:image/") for src in sources), [s[:40] for s in sources]
    embedded = [base64.b64decode(s.split(",", 1)[1]) for s in sources if s.startswith("data:image/png;base64,")]
    assert png in embedded  # the output figure, byte for byte
    assert Image.open(io.BytesIO(next(e for e in embedded if e != png))).size == (64, 48)  # the linked photo
    text = _visible_text(html)
    assert LAB in text and f"Student: {STUDENT}" in text
    assert all(q in text for q in QUESTIONS) and CODE_MARKER in text
    # each question cell carries the page-break marker, and nothing else does
    body = html[html.index("<body"):]
    assert body.count("celltag_labkit-question") == len(QUESTIONS)
    assert stat.S_IMODE(out.stat().st_mode) & 0o044  # readable like any file, not mkstemp's 0600


def test_html_no_code_and_questions_only(lab_notebook):
    notebook, _ = lab_notebook
    nb = report.read_notebook(notebook)
    no_code = _visible_text(report.render_html(nb, code=False))
    assert CODE_MARKER not in no_code and "STUDENT_NAME" not in no_code
    assert OUTPUT_MARKER in no_code and STUDENT in no_code

    questions_html = report.render_html(nb, questions_only=True)
    # the first question follows the title block on page 1; each later one starts a page
    assert questions_html[questions_html.index("<body"):].count("celltag_labkit-question") == len(QUESTIONS) - 1
    questions = _visible_text(questions_html)
    assert all(q in questions for q in QUESTIONS) and "face and ears" in questions
    assert "setup section output" not in questions and "appendix text" not in questions
    assert "autograder_check" not in questions
    assert f"Student: {STUDENT}" in questions  # the title block stays


def test_missing_student_name_is_flagged(tmp_path, capsys):
    nb, _ = _student_notebook(student="")
    path = tmp_path / "unnamed.ipynb"
    nbformat.write(nb, path)
    assert cli.main(["report", str(path), "--to", "html"]) == 0
    assert "not set" in _visible_text((tmp_path / "unnamed.html").read_text())
    assert "STUDENT_NAME" in capsys.readouterr().err


# --------------------------------------------------------------------------- PDF


@needs_pdf_tools
def test_pdf_pages_text_and_images(full_pdf, lab_notebook, tmp_path):
    _, png = lab_notebook
    assert full_pdf.read_bytes().startswith(b"%PDF-")
    pages = _pdf_pages(full_pdf)
    assert pages >= 1 + len(QUESTIONS)  # intro page, then one page per question at least
    text = _pdf_text(full_pdf)
    assert LAB in text and STUDENT in text and "Student:" in text
    assert all(q in text for q in QUESTIONS) and CODE_MARKER in text and OUTPUT_MARKER in text

    # the figure is a raster image in the PDF at its own pixel size, on the first question's page
    figure_size = Image.open(io.BytesIO(png)).size
    images = _pdf_images(full_pdf)
    figure_pages = [page for page, w, h in images if (w, h) == figure_size]
    assert len(figure_pages) == 1, images
    q1_page = next(p for p in range(1, pages + 1) if QUESTIONS[0] in _pdf_text(full_pdf, p))
    assert figure_pages[0] == q1_page
    # and it is drawn: that page carries far more ink than the text-only last question's page
    q2_page = next(p for p in range(1, pages + 1) if QUESTIONS[1] in _pdf_text(full_pdf, p))
    assert _inked_fraction(full_pdf, q1_page, tmp_path) > 3 * _inked_fraction(full_pdf, q2_page, tmp_path)


@needs_pdf_tools
def test_pdf_each_question_starts_a_page(full_pdf):
    for question in QUESTIONS:
        page = next(p for p in range(1, _pdf_pages(full_pdf) + 1) if question in _pdf_text(full_pdf, p))
        first_line = next(line for line in _pdf_text(full_pdf, page).splitlines() if line.strip())
        assert question in first_line, (page, first_line)
    # every page's footer names the lab and the student
    assert _pdf_text(full_pdf).count(f"{LAB} \u2014 {STUDENT}") == _pdf_pages(full_pdf)


@needs_pdf_tools
def test_pdf_no_code_cli(lab_notebook, tmp_path, capsys):
    notebook, _ = lab_notebook
    out = tmp_path / "nocode.pdf"
    assert cli.main(["report", str(notebook), "--to", "pdf", "-o", str(out), "--no-code"]) == 0
    assert str(out) in capsys.readouterr().out
    text = _pdf_text(out)
    assert CODE_MARKER not in text and "STUDENT_NAME" not in text and "In [" not in text
    assert OUTPUT_MARKER in text and all(q in text for q in QUESTIONS)
    assert _pdf_images(out)  # the figure stays


@needs_pdf_tools
def test_pdf_tall_figure_is_kept_whole(tmp_path):
    """A figure taller than a page is scaled onto one page; the same HTML without our print CSS splits it."""
    fig = plt.figure(figsize=(6, 14), dpi=100)
    fig.add_subplot().imshow(np.linspace(0, 1, 140 * 60).reshape(140, 60))
    lines = "".join(f"result line {i}\n" for i in range(30))
    nb = new_notebook(cells=[new_markdown_cell("# Tall"), new_code_cell("plot()", outputs=[
        new_output("stream", name="stdout", text=lines), _image_output(_png(fig))])])
    html = report.render_html(nb)
    with_css, without_css = tmp_path / "with.pdf", tmp_path / "without.pdf"
    with_css.write_bytes(report.html_to_pdf(html))
    plain = re.sub(r'<style[^>]*id="labkit-report".*?</style>', "", html, flags=re.S)
    without_css.write_bytes(report.html_to_pdf(plain))
    assert len({page for page, _, _ in _pdf_images(with_css)}) == 1
    assert len({page for page, _, _ in _pdf_images(without_css)}) > 1  # the control: CSS is what keeps it whole


@needs_pdf_tools
def test_default_output_and_running_notebook(lab_notebook, tmp_path, monkeypatch, capsys):
    notebook, _ = lab_notebook
    copy = tmp_path / notebook.name
    shutil.copy(notebook, copy)
    monkeypatch.setenv("JPY_SESSION_NAME", str(copy))  # what Jupyter Server sets for the kernel
    path = report.export("pdf")
    assert path == copy.with_suffix(".pdf") and _pdf_pages(path) >= 1
    assert "save first" in capsys.readouterr().out.lower()


# --------------------------------------------------------------------------- formulas, offline


FORMULAS = r"Energy: $E = \frac{m v^2}{2}$ and $$\sum_{i=1}^{n} \alpha_i \leq \beta$$"
TEX_SOURCE = ("\\frac", "\\sum", "\\alpha", "\\leq", "$")


def _formula_notebook():
    return new_notebook(cells=[new_markdown_cell("# Formulas\n" + FORMULAS)])


def test_html_loads_the_local_mathjax_first():
    local = report.local_mathjax()
    assert local is not None and local.name == "MathJax.js"  # jupyter-server-mathjax, a course dependency
    html = report.render_html(_formula_notebook())
    assert "<!-- Load mathjax -->" not in html  # nbconvert's CDN-only loader is replaced
    assert html.index(local.as_uri()) < html.index("cdnjs.cloudflare.com/ajax/libs/mathjax")  # CDN: fallback only
    assert "\\frac{m v^2}{2}" in html  # the TeX stays in the page; MathJax typesets it in the browser


def test_mathjax_falls_back_to_the_cdn_without_the_package(monkeypatch):
    from labkit.report import html as report_html

    monkeypatch.setattr(report_html, "local_mathjax", lambda: None)
    snippet = report_html.mathjax_html()
    assert "file://" not in snippet and "cdnjs.cloudflare.com" in snippet


@needs_pdf_tools
def test_pdf_renders_formulas_offline(tmp_path):
    """The PDF shows typeset formulas, not TeX: printed only after the local MathJax has finished."""
    path = tmp_path / "formulas.ipynb"
    nbformat.write(_formula_notebook(), path)
    text = _pdf_text(report.convert(path, "pdf", tmp_path / "formulas.pdf"))
    assert "Energy" in text
    assert not any(tex in text for tex in TEX_SOURCE), text
    assert "\u2211" in text and "\u2264" in text  # the rendered summation sign and "less or equal"
    assert any(alpha in text for alpha in ("\u03b1", "\U0001d6fc")), text  # alpha, upright or math italic
    # the control: the same page without MathJax prints the raw TeX
    html = report.render_html(_formula_notebook())
    plain = re.sub(r"<!-- labkit: MathJax.*?<!-- labkit: end of MathJax -->", "", html, flags=re.S)
    assert plain != html
    control = tmp_path / "control.pdf"
    control.write_bytes(report.html_to_pdf(plain))
    assert "\\frac" in _pdf_text(control)


# --------------------------------------------------------------------------- failures


def test_export_without_a_notebook_says_what_to_pass(monkeypatch, tmp_path):
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"notebook='lab1_saliency.ipynb'"):
        report.export("html")
    with pytest.raises(ValueError, match="pdf, html"):
        report.export("docx", notebook="x.ipynb")


def _fresh_copy(lab_notebook, tmp_path) -> Path:
    notebook, _ = lab_notebook
    path = tmp_path / notebook.name
    shutil.copy(notebook, path)
    return path


@pytest.mark.parametrize("case", ["missing", "not_json", "no_folder", "onto_notebook", "wrong_suffix"])
def test_cli_bad_input_exits_2_with_one_line(case, lab_notebook, tmp_path, capsys):
    notebook = _fresh_copy(lab_notebook, tmp_path)
    before = notebook.read_bytes()
    args = {
        "missing": [str(tmp_path / "nope.ipynb")],
        "not_json": [str(tmp_path / "broken.ipynb")],
        "no_folder": [str(notebook), "-o", str(tmp_path / "no" / "such" / "report.pdf")],
        "onto_notebook": [str(notebook), "-o", str(notebook)],
        "wrong_suffix": [str(notebook), "--to", "pdf", "-o", str(tmp_path / "report.html")],
    }[case]
    (tmp_path / "broken.ipynb").write_text("{ this is not json")
    if "--to" not in args:
        args += ["--to", "pdf"]
    assert cli.main(["report", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("labkit report: error:")
    expected = {"missing": "not found", "not_json": "not valid JSON", "no_folder": "does not exist",
                "onto_notebook": "refusing to overwrite the notebook", "wrong_suffix": ".html"}[case]
    assert expected in err
    assert notebook.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["broken.ipynb", notebook.name])


def test_renderer_failure_keeps_user_file_and_writes_html(lab_notebook, tmp_path, capsys):
    notebook = _fresh_copy(lab_notebook, tmp_path)
    target = tmp_path / "handin.pdf"
    target.write_bytes(b"%PDF-1.4 the student's earlier hand-in\n%%EOF\n")
    before = target.read_bytes()
    false = shutil.which("false") or "/bin/false"
    assert cli.main(["report", str(notebook), "--to", "pdf", "-o", str(target), "--browser", false]) == 1
    err = capsys.readouterr().err
    assert "could not render the PDF" in err and "apt-get install chromium" in err
    assert target.read_bytes() == before and "left unchanged" in err
    fallback = tmp_path / "handin.html"
    assert str(fallback) in err and "data:image/png;base64," in fallback.read_text()
    assert not list(tmp_path.glob(".*.part")) and not list(tmp_path.glob("*.part"))

    # no earlier file: the PDF must not appear at all
    target.unlink()
    with pytest.raises(report.RenderError) as info:
        report.convert(notebook, "pdf", target, browser=false)
    assert not target.exists() and info.value.html_path == fallback


def test_renderer_timeout_is_bounded(lab_notebook, tmp_path):
    notebook = _fresh_copy(lab_notebook, tmp_path)
    hanging = tmp_path / "hanging-browser"
    hanging.write_text("#!/bin/sh\nsleep 60\n")
    hanging.chmod(0o755)
    with pytest.raises(report.RenderError, match="did not finish printing within 1 s"):
        report.convert(notebook, "pdf", tmp_path / "out.pdf", browser=hanging, timeout=1)
    assert not (tmp_path / "out.pdf").exists()


def test_find_browser_order(tmp_path, monkeypatch):
    fake = tmp_path / "my-chromium"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LABKIT_CHROMIUM", str(fake))
    assert report.find_browser() == str(fake)
    assert report.find_browser("false") == shutil.which("false")  # an explicit choice wins, names use PATH
    monkeypatch.setenv("LABKIT_CHROMIUM", str(tmp_path / "missing"))
    with pytest.raises(report.BrowserNotFoundError, match="LABKIT_CHROMIUM"):
        report.find_browser()
    monkeypatch.delenv("LABKIT_CHROMIUM")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("PLAYWRIGHT_BROWSERS_PATH", raising=False)
    if not any(os.path.exists(p) for p in report._SYSTEM_BROWSERS):
        with pytest.raises(report.BrowserNotFoundError, match="apt-get install chromium"):
            report.find_browser()


# --------------------------------------------------------------------------- the real labs, once they exist


REAL_LABS = sorted(glob.glob(str(REPO / "notebooks" / "*" / "*.ipynb")))


@pytest.mark.skipif(not REAL_LABS, reason="no lab notebooks under notebooks/ yet")
@pytest.mark.parametrize("path", REAL_LABS, ids=lambda p: Path(p).stem)
def test_real_lab_notebooks_render(path):
    nb = report.read_notebook(path)
    info = report.report_info(nb, fallback_name=Path(path).stem)
    assert info.lab and info.student_source in ("STUDENT_NAME", "not set", "metadata")
    html = report.render_html(nb, name=Path(path).name, resource_dir=Path(path).parent)
    body = html[html.index("<body"):]
    assert body.count("celltag_labkit-question") == sum(report.is_question_cell(c) for c in nb.cells[1:]) > 0
    assert not re.findall(r"<img\b[^>]*\bsrc\s*=\s*[\"'](?!data:)", html)
