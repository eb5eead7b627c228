"""HTML to PDF with headless Chromium, driven over the Chrome DevTools Protocol.

Chromium is started with ``--remote-debugging-pipe`` (no network port: commands go in on file
descriptor 3, replies come out on 4, JSON messages ending in a NUL byte). The printer opens the
report, waits for its ``load`` event, then **waits until MathJax has typeset every formula**
(the page's ``<html data-labkit-mathjax>`` mark, see ``labkit.report.html``) and the fonts are
ready, and only then asks for ``Page.printToPDF``. There is no fixed sleep: each step waits on
the browser's own answer, bounded by one overall ``timeout``.

On systems without POSIX file-descriptor passing (Windows) the plain
``--print-to-pdf`` command line is used instead (MathJax then gets a virtual-time budget).
"""
from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

from labkit.report.browser import RenderError, find_browser
from labkit.report.html import MATHJAX_STATE

PathLike = Union[str, "os.PathLike[str]"]
DEFAULT_TIMEOUT_S = 120.0

#: Resolves once the page's MathJax (if any) has finished and its fonts are loaded; gives the state.
WAIT_FOR_TYPESETTING = f"""new Promise(function (resolve) {{
  var root = document.documentElement;
  function settled() {{
    var state = root.getAttribute("{MATHJAX_STATE}");
    return !document.getElementById("labkit-mathjax") || state === "done" || state === "unavailable";
  }}
  function finish() {{
    var fonts = document.fonts ? document.fonts.ready : Promise.resolve();
    fonts.then(function () {{ resolve(root.getAttribute("{MATHJAX_STATE}") || "no mathjax"); }});
  }}
  if (settled()) {{ finish(); return; }}
  new MutationObserver(function (changes, observer) {{
    if (settled()) {{ observer.disconnect(); finish(); }}
  }}).observe(root, {{ attributes: true, attributeFilter: ["{MATHJAX_STATE}"] }});
}})"""

#: Flags that keep Chromium from phoning home (closed networks refuse those connections) and let it
#: run sandbox-free as root in containers and on Colab.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-extensions", "--mute-audio", "--allow-file-access-from-files")


#: Puts the two pipe ends (argv 1 and 2) on fds 3 and 4, closes the rest, and execs argv[3:]
#: (Chromium reads DevTools commands on fd 3 and writes replies on fd 4). A tiny Python step, not
#: ``preexec_fn`` (unsafe with threads, as in a Jupyter kernel) nor ``sh`` (no fds above 9 in dash).
_ONTO_FDS_3_AND_4 = (
    "import fcntl, os, sys\n"
    "ends = [int(fd) for fd in sys.argv[1:3]]\n"
    "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in ends]\n"
    "os.dup2(high[0], 3)\n"
    "os.dup2(high[1], 4)\n"
    "for fd in set(ends + high) - {3, 4}:\n"
    "    os.close(fd)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n")


class _Exited(Exception):
    """The browser closed its end of the pipe (it exited or crashed)."""


class DevToolsPipe:
    """A minimal Chrome DevTools Protocol client over Chromium's ``--remote-debugging-pipe``.

    ``send`` waits for the reply to its own command; events that arrive meanwhile are kept for
    ``wait_event``. Every read is bounded by ``deadline`` (``time.monotonic()`` seconds).
    """

    def __init__(self, write_fd: int, read_fd: int, deadline: float):
        self.write_fd, self.read_fd, self.deadline = write_fd, read_fd, deadline
        self._buffer = b""
        self._events: List[Dict] = []
        self._next_id = 0

    def _read_message(self) -> Dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired("chromium", 0)
            ready, _, _ = select.select([self.read_fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise _Exited()
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw.decode("utf-8"))

    def send(self, method: str, params: Optional[Dict] = None, session: Optional[str] = None) -> Dict:
        """Send one command and return its ``result``; raises :class:`RenderError` on a protocol error."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode("utf-8") + b"\0"
        try:
            while data:
                data = data[os.write(self.write_fd, data):]
        except BrokenPipeError:
            raise _Exited() from None
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RenderError(f"Chromium refused {method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str, session: Optional[str] = None) -> Dict:
        """Wait for (or take an already received) event ``method`` of ``session``."""
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i).get("params", {})
            reply = self._read_message()
            if "method" in reply:
                self._events.append(reply)


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # own process group: Chromium's helpers go too
        except ProcessLookupError:
            pass
    proc.wait()


def _print_over_pipe(exe: str, html_file: Path, tmp: Path, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    command = [sys.executable, "-c", _ONTO_FDS_3_AND_4, str(to_browser_r), str(from_browser_w), exe, *CHROMIUM_FLAGS,
               f"--user-data-dir={tmp / 'profile'}", "--remote-debugging-pipe", "about:blank"]
    log = open(tmp / "chromium.log", "wb")
    try:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                pass_fds=(to_browser_r, from_browser_w), start_new_session=True)
    except OSError as err:
        raise RenderError(f"could not start {exe}: {err}") from None
    finally:
        log.close()
        os.close(to_browser_r)
        os.close(from_browser_w)
    pipe = DevToolsPipe(to_browser_w, from_browser_r, deadline)
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        pipe.send("Page.enable", session=session)
        pipe.send("Page.navigate", {"url": html_file.resolve().as_uri()}, session=session)
        pipe.wait_event("Page.loadEventFired", session)
        pipe.send("Runtime.evaluate", {"expression": WAIT_FOR_TYPESETTING, "awaitPromise": True,
                                       "returnByValue": True}, session=session)
        printed = pipe.send("Page.printToPDF", {"printBackground": True, "preferCSSPageSize": True,
                                                "displayHeaderFooter": False}, session=session)
        try:
            pipe.send("Browser.close")
        except (_Exited, subprocess.TimeoutExpired):
            pass
        return base64.b64decode(printed["data"])
    except subprocess.TimeoutExpired:
        raise RenderError(f"{exe} did not finish printing within {timeout:.0f} s") from None
    except _Exited:
        _kill(proc)
        tail = (tmp / "chromium.log").read_bytes().decode("utf-8", "replace").strip().splitlines()[-3:]
        detail = f" ({' | '.join(tail)})" if tail else ""
        raise RenderError(f"{exe} exited with status {proc.returncode} without writing a complete PDF{detail}") from None
    finally:
        _kill(proc)
        os.close(to_browser_w)
        os.close(from_browser_r)


def chromium_print_command(browser: str, html_file: Path, pdf_file: Path, profile_dir: Path) -> List[str]:
    """The plain ``--print-to-pdf`` command line (used where the DevTools pipe is not available)."""
    return [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "--no-pdf-header-footer",
            "--print-to-pdf-no-header", "--virtual-time-budget=10000",  # MathJax's timers run in virtual time
            f"--print-to-pdf={pdf_file}", html_file.resolve().as_uri()]


def _print_command_line(exe: str, html_file: Path, tmp: Path, timeout: float) -> bytes:
    pdf_file = tmp / "report.pdf"
    command: Sequence[str] = chromium_print_command(exe, html_file, pdf_file, tmp / "profile")
    try:
        done = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RenderError(f"{exe} did not finish printing within {timeout:.0f} s") from None
    except OSError as err:
        raise RenderError(f"could not start {exe}: {err}") from None
    if done.returncode != 0:
        tail = (done.stderr or b"").decode("utf-8", "replace").strip().splitlines()[-3:]
        detail = f" ({' | '.join(tail)})" if tail else ""
        raise RenderError(f"{exe} exited with status {done.returncode} without writing a complete PDF{detail}")
    return pdf_file.read_bytes() if pdf_file.exists() else b""


def html_to_pdf(html: str, browser: Optional[PathLike] = None, *, timeout: float = DEFAULT_TIMEOUT_S) -> bytes:
    """Print an HTML document to PDF bytes with headless Chromium (see ``find_browser``).

    The page is printed once it has loaded, MathJax has typeset its formulas and its fonts are
    ready (module docstring).

    Raises ``BrowserNotFoundError`` when there is no browser and :class:`RenderError` when it
    fails or runs past ``timeout`` seconds.
    """
    exe = find_browser(browser)
    with tempfile.TemporaryDirectory(prefix="labkit-report-") as tmp:
        tmp = Path(tmp)
        html_file = tmp / "report.html"
        html_file.write_text(html, encoding="utf-8")
        if os.name == "posix":
            data = _print_over_pipe(exe, html_file, tmp, timeout)
        else:
            data = _print_command_line(exe, html_file, tmp, timeout)
        if not data.startswith(b"%PDF-") or b"%%EOF" not in data[-1024:]:
            raise RenderError(f"{exe} did not produce a complete PDF")
        return data
