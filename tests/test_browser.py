"""A student's session in a real browser: JupyterLab on loopback, driven by Playwright in headless Chromium.

The student opens the lab, replaces the ``# YOUR CODE HERE`` stub with working code, runs all
cells (Run menu), and saves (Ctrl+S). Checked: widgets render, plots show, nbgrader's locked cells
refuse typing, and the notebook saved on disk carries outputs with images.

Needs Debian's ``chromium`` (``tools/install_browser.sh``) and the ``playwright`` package; Playwright
drives the system Chromium, it never downloads its own. A screenshot goes to ``tests/artifacts/``.
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "tests" / "artifacts"
RELEASE_LAB1 = REPO / "release" / "lab1_saliency" / "lab1_saliency.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LOCKED_TEXT = "LOCKED_SETUP = 'instructor code'"
SOLUTION = "def saliency_strength(values):\n    return float(np.abs(values).sum())\n"

playwright_sync = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")


def _chromium():
    from labkit.report import BrowserNotFoundError, find_browser

    try:
        return find_browser()
    except BrowserNotFoundError as err:
        pytest.skip(f"no Chromium: {err.reason}; run `bash tools/install_browser.sh`")


def _nbgrader(grade_id, *, solution=False, grade=False, locked=False, points=None):
    meta = {"grade_id": grade_id, "solution": solution, "grade": grade, "locked": locked, "schema_version": 3}
    if points is not None:
        meta["points"] = points
    cell_meta = {"nbgrader": meta}
    if locked:  # what nbgrader's LockCells writes into the student version
        cell_meta.update(editable=False, deletable=False)
    return cell_meta


def _self_built_lab():
    """A small student version in nbgrader's shape: locked cells, a stub to fill, a test, a plot, a widget."""
    nb = new_notebook(cells=[
        new_markdown_cell("# Lab 0: browser check\nFill in the function, then Run > Run All Cells.",
                          metadata=_nbgrader("intro", locked=True)),
        new_code_cell(f"STUDENT_NAME = \"\"\n{LOCKED_TEXT}\nimport numpy as np\nimport matplotlib.pyplot as plt",
                      metadata=_nbgrader("setup", locked=True)),
        new_markdown_cell("## Question 1 Saliency strength (1 pt)"),
        new_code_cell("def saliency_strength(values):\n    # YOUR CODE HERE\n    raise NotImplementedError()",
                      metadata=_nbgrader("q1_code", solution=True)),
        new_code_cell("assert saliency_strength(np.array([1.0, -2.0])) == 3.0",
                      metadata=_nbgrader("q1_test", grade=True, locked=True, points=1)),
        new_code_cell("x = np.linspace(-3, 3, 50)\nfig, ax = plt.subplots(figsize=(4, 3))\n"
                      "ax.plot(x, [saliency_strength(x[:i]) for i in range(50)])\n"
                      "ax.set_title('strength')\nplt.show()"),
        new_code_cell("import ipywidgets as widgets\nwidgets.IntSlider(value=3, min=0, max=10, description='layer')"),
        # the hand-in step: labkit finds this notebook's file from inside the kernel
        new_code_cell("from labkit import report\nreport_path = report.export('html')\n"
                      "print('server lookup:', report._notebook_from_server(report._kernel_id()))"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nb


def _source_solutions(release_nb: Path):
    """grade_id -> the instructor's solution cell (markers removed), from the lab's source notebook."""
    for source in (REPO / "notebooks" / release_nb.parent.name / release_nb.name,
                   REPO / "source" / release_nb.parent.name / release_nb.name):
        if source.exists():
            nb = nbformat.read(source, as_version=4)
            return {c.metadata["nbgrader"]["grade_id"]: re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "",
                                                                   c.source, flags=re.M)
                    for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("solution")
                    and c.cell_type == "code"}
    return {}


def _labs():
    labs = ["self_built"]
    if RELEASE_LAB1.exists() and _source_solutions(RELEASE_LAB1):
        labs.append("release_lab1")
    return labs


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LabServer:
    """JupyterLab on 127.0.0.1 with a random token, serving a temporary copy of the lab."""

    def __init__(self, root: Path):
        self.root, self.token, self.port = root, secrets.token_hex(16), _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        jupyter = Path(sys.executable).with_name("jupyter")
        command = [str(jupyter), "lab"] if jupyter.exists() else [sys.executable, "-m", "jupyterlab"]
        home = root.parent / "jupyter-home"
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "JUPYTER_TOKEN")}
        env.update(LABKIT_FAST="1", JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_RUNTIME_DIR=str(home / "runtime"),
                   IPYTHONDIR=str(home / "ipython"), PYTHONUNBUFFERED="1")
        # every cell rendered, whatever is scrolled into view (JupyterLab 4's default renders only visible cells)
        tracker = home / "settings" / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True, exist_ok=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        self.log = open(root.parent / "jupyter-lab.log", "w")
        self.proc = subprocess.Popen(
            [*command, "--no-browser", f"--ServerApp.token={self.token}", "--ServerApp.ip=127.0.0.1",
             f"--port={self.port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={root}",
             f"--LabApp.workspaces_dir={home / 'workspaces'}", f"--LabApp.user_settings_dir={home / 'settings'}",
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             *(["--ServerApp.allow_root=True"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout=600.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited ({self.proc.returncode}):\n{self.log_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}api/status?token={self.token}", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"jupyter lab not ready after {timeout:.0f} s:\n{self.log_text()}")

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-3000:]

    def stop(self):
        """Shut down through the API (kernels too), then make sure the whole process group is gone."""
        if self.proc.poll() is None:
            try:
                request = urllib.request.Request(f"{self.url}api/shutdown", method="POST",
                                                 headers={"Authorization": f"token {self.token}"})
                urllib.request.urlopen(request, timeout=5).close()
                self.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers: kernels, terminals
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=20)
        self.log.close()


@pytest.fixture(params=_labs())
def lab(request, tmp_path):
    """(server, notebook path on disk, working code keyed by the stub cell's grade_id)."""
    root = tmp_path / "course"
    if request.param == "release_lab1":
        shutil.copytree(RELEASE_LAB1.parent, root)
        notebook, solutions = root / RELEASE_LAB1.name, _source_solutions(RELEASE_LAB1)
    else:
        root.mkdir()
        notebook, solutions = root / "lab0_browser.ipynb", {"q1_code": SOLUTION}
        nbformat.write(_self_built_lab(), notebook)
    server = LabServer(root)
    request.addfinalizer(server.stop)
    server.wait_ready()
    return server, notebook, solutions


def _stub_cells(nb, solutions):
    """{cell index: working code} for every '# YOUR CODE HERE' cell (all must be filled for Run All to finish)."""
    stubs = {}
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and "YOUR CODE HERE" in cell.source:
            grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            assert grade_id in solutions, f"no solution known for stub cell {index} ({grade_id})"
            stubs[index] = solutions[grade_id]
    assert stubs, "no '# YOUR CODE HERE' cell"
    return stubs


def _locked_cell(nb):
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.metadata.get("editable") is False:
            return index
    raise AssertionError("no locked (editable: false) code cell")


PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt"


def _wait_all_executed(page, n_code_cells, stall_s=600.0):
    """Until every code cell has an execution count and the kernel is idle; returns the prompts.

    Reads the prompts' text *content* (JupyterLab renders only the cells in view; ``inner_text`` of a cell
    scrolled away is ''), and windowing is off in this test's settings anyway. It waits on progress, not on a
    fixed wall time: it gives up only when no further cell finished for ``stall_s`` seconds.
    """
    prompts, done, last_progress = [], -1, time.monotonic()
    while True:
        prompts = [p.strip() for p in page.locator(PROMPTS).all_text_contents()]
        finished = sum(1 for p in prompts if re.search(r"\[\d+\]", p))
        busy = any("*" in p for p in prompts)
        if len(prompts) == n_code_cells and finished == n_code_cells and not busy and _kernel_idle(page):
            return prompts
        if finished != done:
            done, last_progress = finished, time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            raise AssertionError(f"no cell finished for {stall_s:.0f} s: prompts {prompts}")
        page.wait_for_timeout(500)


def _kernel_idle(page) -> bool:
    return page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).count() > 0


def _wait_saved(path: Path, stubs: dict, timeout_s=300.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            nb = nbformat.read(path, as_version=4)
        except (json.JSONDecodeError, nbformat.reader.NotJSONError):  # mid-write
            nb = None
        if nb is not None and all(nb.cells[i].source.strip() == code.strip() for i, code in stubs.items()) and any(
                c.get("outputs") for c in nb.cells if c.cell_type == "code"):
            return nb
        time.sleep(0.5)
    raise AssertionError(f"{path.name} was not saved with the solutions and outputs within {timeout_s} s")


def test_student_fills_runs_and_saves_in_jupyterlab(lab, request, tmp_path):
    server, notebook, solutions = lab
    original = nbformat.read(notebook, as_version=4)
    stubs = _stub_cells(original, solutions)
    locked_index = _locked_cell(original)
    uses_widgets = any("ipywidgets" in c.source or "interact" in c.source for c in original.cells)
    n_code = sum(1 for c in original.cells if c.cell_type == "code")

    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(300_000)  # an upper bound on waits for a condition, never a sleep
            page.goto(f"{server.url}lab/tree/{notebook.name}?token={server.token}")
            # loaded: every cell on the page and the kernel idle
            page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n",
                                   arg=len(original.cells))
            page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for()
            news = page.locator(".jp-toast-button", has_text=re.compile(r"^No$"))
            if news.count():  # JupyterLab's news prompt: not part of the lab
                news.first.click()
            cells = page.locator(".jp-Notebook .jp-Cell")

            # the locked cell ignores typing
            locked_editor = cells.nth(locked_index).locator(".cm-content")
            locked_before = locked_editor.inner_text()
            locked_editor.click()
            page.keyboard.press("End")
            page.keyboard.type("\nbroken = True")
            page.keyboard.press("Escape")
            assert cells.count() == len(original.cells)  # keys went to the editor, not to notebook shortcuts
            assert locked_editor.inner_text() == locked_before

            # the student replaces each stub with working code
            for index, code in stubs.items():
                stub_editor = cells.nth(index).locator(".cm-content")
                stub_editor.scroll_into_view_if_needed()
                stub_editor.click()
                page.keyboard.press("Control+a")
                page.keyboard.press("Delete")
                page.keyboard.insert_text(code)  # insert, not type: no auto-closed brackets or auto-indent
                assert "YOUR CODE HERE" not in stub_editor.inner_text()
                page.keyboard.press("Escape")

            # Run > Run All Cells
            page.keyboard.press("Escape")
            page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
            _wait_all_executed(page, n_code)
            errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                  has_text="Error")
            assert errors.count() == 0, errors.all_inner_texts()

            # plots show, widgets render
            plot = page.locator(".jp-OutputArea-output img").first
            plot.scroll_into_view_if_needed()
            plot.wait_for(state="visible")
            assert plot.evaluate("img => img.naturalWidth") > 0
            if uses_widgets:
                slider = page.locator(".jp-OutputArea-output .jupyter-widgets.widget-slider, "
                                      ".jp-OutputArea-output .widget-slider").first
                slider.scroll_into_view_if_needed()
                slider.wait_for(state="visible")
                assert slider.bounding_box()["width"] > 50

            # Ctrl+S in command mode
            first_stub = cells.nth(min(stubs)).locator(".jp-InputPrompt")
            first_stub.scroll_into_view_if_needed()
            first_stub.click()
            page.keyboard.press("Control+s")
            saved = _wait_saved(notebook, stubs)

            shot = tmp_path / f"{notebook.stem}.png"
            page.screenshot(path=str(shot), full_page=False)
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(shot, ARTIFACTS / f"browser_{notebook.stem}.png")
        except BaseException:
            page.screenshot(path=str(tmp_path / "failure.png"))
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(tmp_path / "failure.png", ARTIFACTS / f"browser_{notebook.stem}_failure.png")
            raise
        finally:
            browser.close()

    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert all(c.execution_count for c in saved.cells if c.cell_type == "code")
    assert any("image/png" in o.get("data", {}) for o in outputs)
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert saved.cells[locked_index].source == original.cells[locked_index].source
    assert saved.cells[locked_index].metadata.get("editable") is False
    if uses_widgets:
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    if notebook.name.startswith("lab0"):  # report.export() found the notebook from the kernel
        exported = notebook.with_suffix(".html")
        assert exported.exists() and "Lab 0: browser check" in exported.read_text()
        printed = "".join(o.get("text", "") for o in outputs)
        assert str(exported) in printed
        # the fallback lookup (Jupyter's sessions API with this kernel's id) agrees
        assert f"server lookup: {notebook}" in printed
