"""Finding a Chromium-family browser to print PDFs, and the errors the report raises."""
from __future__ import annotations

import glob
import os
import re
import shutil
from pathlib import Path
from typing import List, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]
BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


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
