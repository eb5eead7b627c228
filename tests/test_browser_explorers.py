"""The lab explorers in a real browser: JupyterLab on loopback, headless Chromium driven by Playwright.

One notebook shows the explorers of Labs 1 to 6 on the bundled EfficientNet-Lite0 (at small, cheap
settings: few steps, no feature-visualisation pictures in Labs 4 and 5). After Run All the kernel
knows it has a widget frontend (the explorers show their controls, not the static picture); then one
control per explorer is changed the way a student does it (a toggle button, a number box, a
dropdown) and the explorer's picture must change in the page, and the kernel must report the new
setting. Uses the JupyterLab server and Chromium helpers of tests/test_browser.py.
"""
import re
import shutil
import time

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from test_browser import ARTIFACTS, CHROMIUM_ARGS, LabServer, _chromium, _wait_all_executed, playwright_sync

pytestmark = pytest.mark.slow

CELLS = [
    "from labkit.models import load_model\n"
    "from course.explorers import widget_frontend\n"
    "from course.explorers.lab1 import SaliencyExplorer\n"
    "from course.explorers.lab2 import FeatureVisExplorer\n"
    "from course.explorers.lab3 import ReluExplorer\n"
    "from course.explorers.lab4 import QuantExplorer\n"
    "from course.explorers.lab5 import UnitExplorer\n"
    "from course.explorers.lab6 import FoolingExplorer\n"
    "from course import quant_study\n"
    "from course.roles import roles_for\n"
    "from labkit import images\n"
    "model = load_model('efficientnet_lite0', device='cpu')\n"
    "roles = roles_for(model)",
    "ex1 = SaliencyExplorer(model, ['bee', 'dog_and_cat'], smoothgrad_samples=2, occlusion=dict(window=112, stride=56))\n"
    "ex1",
    "ex2 = FeatureVisExplorer(model, ['conv_stem', 'blocks.3.0.conv_pw'], settings=dict(preset='handout', steps=3, size=48))\n"
    "ex2",
    "ex3 = ReluExplorer(model, ['dog'], layers=['conv_stem', 'conv_head'])\n"
    "ex3",
    "x4 = images.preprocess(['bee', 'dog'], model)\n"
    "ref4 = quant_study.reference(model, x4, roles.quant_layer, roles.quant_channel, visualise=False)\n"
    "ex4 = QuantExplorer(model, x4, ref4, bits=4)\n"
    "ex4",
    "ex5 = UnitExplorer(model, roles.circuit_layer, unit=0, k=3, settings=dict(visualize=False))\n"
    "ex5",
    "ex6 = FoolingExplorer(model, ['bee'], ['goldfish', 'flamingo'], eps=2, steps=3)\n"
    "ex6",
    "import time\n"
    "exs = [ex1, ex2, ex3, ex4, ex5, ex6]\n"
    "print('STATE', widget_frontend(), ex1.setting['method'], ex2.setting['channel'], ex3.setting['layer'], "
    "ex4.setting['scale'], ex5.setting['unit'], model.labkit.classes[ex6.setting['target']], "
    "*[e.computed for e in exs], *[e.error is None for e in exs], time.perf_counter_ns())",
]


def _notebook():
    nb = new_notebook(cells=[new_code_cell(source) for source in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    return nb


def _state(page, cells):
    """Run the last cell again (Shift+Enter) and return its printed STATE line, split (the last field is a
    clock reading, so every run prints something new)."""
    last = cells.nth(len(CELLS) - 1)
    before = last.locator(".jp-OutputArea-output").all_inner_texts()
    last.locator(".jp-InputPrompt").click()
    page.keyboard.press("Shift+Enter")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        texts = last.locator(".jp-OutputArea-output").all_inner_texts()
        if texts and texts != before and "STATE" in texts[-1]:
            return texts[-1].split()
        page.wait_for_timeout(300)
    raise AssertionError(f"the state cell did not print: {before}")


def _wait_src_change(image, old, what, timeout_s=120.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        src = image.get_attribute("src")
        if src and src != old:
            return src
        time.sleep(0.3)
    raise AssertionError(f"{what}: the explorer's picture did not change within {timeout_s:.0f} s")


def test_one_control_per_explorer_changes_its_picture(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    notebook = root / "explorers.ipynb"
    nbformat.write(_notebook(), notebook)
    server = LabServer(root)
    try:
        server.wait_ready()
        with playwright_sync.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.set_default_timeout(60_000)
            try:
                page.goto(f"{server.url}lab/tree/{notebook.name}?token={server.token}")
                page.wait_for_function("n => document.querySelectorAll('.jp-Notebook .jp-Cell').length === n",
                                       arg=len(CELLS), timeout=90_000)
                page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"\|\s*Idle")).first.wait_for(timeout=90_000)
                news = page.locator(".jp-toast-button", has_text=re.compile(r"^No$"))
                if news.count():
                    news.first.click()
                page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
                page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
                _wait_all_executed(page, len(CELLS))
                cells = page.locator(".jp-Notebook .jp-Cell")
                explorers = range(1, len(CELLS) - 1)  # cells 1..6: the explorers of Labs 1..6
                images = [cells.nth(i).locator("img.widget-image") for i in explorers]
                for i, image in enumerate(images, start=1):
                    image.wait_for(state="visible", timeout=60_000)
                    assert image.evaluate("img => img.naturalWidth") > 100, f"explorer {i} shows no picture"
                state = _state(page, cells)
                assert state[1:8] == ["True", "Grad-CAM", "0", "conv_stem", "per-tensor", "0", "goldfish"], state

                # Lab 1: a toggle button (the method)
                old = images[0].get_attribute("src")
                cells.nth(1).locator(".widget-toggle-buttons button", has_text=re.compile(r"^vanilla$")).click()
                _wait_src_change(images[0], old, "Lab 1 (method: vanilla)")
                # Lab 2: the channel box (type a number, Enter)
                old = images[1].get_attribute("src")
                box = cells.nth(2).locator(".widget-text input").first
                box.fill("5")
                box.press("Enter")
                _wait_src_change(images[1], old, "Lab 2 (channel 5)")
                # Lab 3: the layer-pair dropdown
                old = images[2].get_attribute("src")
                cells.nth(3).locator(".widget-dropdown select").first.select_option(index=1)  # conv_head -> ...
                _wait_src_change(images[2], old, "Lab 3 (pair: conv_head)")
                # Lab 4: a toggle button (the scale granularity)
                old = images[3].get_attribute("src")
                cells.nth(4).locator(".widget-toggle-buttons button", has_text=re.compile(r"^per-channel$")).click()
                _wait_src_change(images[3], old, "Lab 4 (scale: per-channel)")
                # Lab 5: the unit box (type a number, Enter)
                old = images[4].get_attribute("src")
                box = cells.nth(5).locator(".widget-text input").first
                box.fill("7")
                box.press("Enter")
                _wait_src_change(images[4], old, "Lab 5 (unit 7)")
                # Lab 6: the target-class dropdown (the second dropdown; the first is the photo)
                old = images[5].get_attribute("src")
                cells.nth(6).locator(".widget-dropdown select").nth(1).select_option(label="flamingo")
                _wait_src_change(images[5], old, "Lab 6 (target: flamingo)")

                state = _state(page, cells)
                assert state[1:8] == ["True", "vanilla", "5", "conv_head", "per-channel", "7", "flamingo"], state
                assert state[8:14] == ["2"] * 6, f"each explorer computed its new setting once: {state}"
                assert state[14:20] == ["True"] * 6, f"an explorer reported an error: {state}"
                shot = tmp_path / "explorers.png"
                page.screenshot(path=str(shot), full_page=False)
                ARTIFACTS.mkdir(exist_ok=True)
                shutil.copy(shot, ARTIFACTS / "browser_explorers.png")
            except BaseException:
                page.screenshot(path=str(tmp_path / "failure.png"))
                ARTIFACTS.mkdir(exist_ok=True)
                shutil.copy(tmp_path / "failure.png", ARTIFACTS / "browser_explorers_failure.png")
                raise
            finally:
                browser.close()
    finally:
        server.stop()
