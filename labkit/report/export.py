"""Writing reports: a saved notebook (:func:`convert`) or the running one (:func:`export`).

Files are written atomically (a temporary file in the same folder, then ``os.replace``), the
notebook is never overwritten, and when no PDF can be printed the HTML goes next to the
requested path and :class:`~labkit.report.browser.RenderError` says what to install.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Optional, Union

from labkit.report.browser import BrowserNotFoundError, RenderError, _install_hint
from labkit.report.html import render_html
from labkit.report.notebook import _as_notebook_node, read_notebook
from labkit.report.pdf import DEFAULT_TIMEOUT_S, html_to_pdf

PathLike = Union[str, "os.PathLike[str]"]
FORMATS = ("pdf", "html")


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
