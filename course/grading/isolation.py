"""The grader's side of the sandbox: what the kernel may see, its kernel spec, its processes, the probe.

``sandbox.py`` is the launcher that runs in front of the kernel; this module writes its configuration.
Every path the kernel needs is resolved here, before the sandbox is built (a symlinked virtual
environment, a conda environment elsewhere, an editable install): the sandbox mounts real paths, and
links the unresolved ones to them.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from course.grading import sandbox
from course.grading.settings import ROOT, GradingError, Settings, base_env, db_path, tail

SANDBOX_KERNEL = "labkit-sandbox"
STRONG_MODES = sandbox.ISOLATING


def nobody() -> tuple:
    try:
        pw = pwd.getpwnam("nobody")
        return pw.pw_uid, pw.pw_gid
    except KeyError:
        return 65534, 65534


def _package_dir(name: str) -> Optional[Path]:
    if name == "course":  # this package's own folder (a folder named course on sys.path must not shadow it)
        return Path(__file__).resolve().parents[1]
    spec = importlib.util.find_spec(name)
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    return None


def _torch_home() -> Optional[Path]:
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    home = os.environ.get("TORCH_HOME") or os.path.join(cache, "torch")
    return Path(home).resolve() if os.path.isdir(home) else None


def _matplotlib_cache() -> Optional[str]:
    try:
        import matplotlib

        return matplotlib.get_cachedir()
    except Exception:
        return None


def kernel_python() -> str:
    """The kernel's interpreter: the environment's ``bin/python`` under its *resolved* prefix (a venv's python
    must be started through the venv's own link, or the venv is not found)."""
    exe = Path(os.path.realpath(sys.prefix)) / "bin" / Path(sys.executable).name
    return str(exe if exe.exists() else Path(os.path.realpath(sys.executable)))


def readable_paths(settings: Settings) -> tuple:
    """(read-only mounts, symlinks [target, link]) for the kernel: Python, the environment, the packages the
    labs import, the photos, the weights cache. All resolved; course/labs is covered separately."""
    ro, links = [], []

    def add(path, link_too=True):
        if not path:
            return
        real = os.path.realpath(path)
        if os.path.exists(real) and real not in ro:
            ro.append(real)
        if link_too and os.path.abspath(path) != real and [real, os.path.abspath(path)] not in links:
            links.append([real, os.path.abspath(path)])

    for path in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))):
        add(path)
    for path in sys.path:  # site-packages, .pth-added folders of a conda or system installation
        if path and os.path.isdir(path) and not _under(os.path.realpath(path), ROOT) and "site-packages" in path:
            add(path)
    for name in ("labkit", "course"):
        pkg = _package_dir(name)
        if pkg:
            add(str(pkg), link_too=False)
            if (pkg.parent / "data").is_dir():
                add(str(pkg.parent / "data"), link_too=False)
            if (pkg.parent / "pyproject.toml").is_file():
                add(str(pkg.parent / "pyproject.toml"), link_too=False)
    if os.environ.get("LABKIT_DATA"):
        add(os.environ["LABKIT_DATA"])
    torch_home = _torch_home()
    if torch_home:
        add(str(torch_home))
    for path in settings.allow:
        add(path)
    ro.sort(key=len)
    return ro, links


def _under(path: str, root) -> bool:
    root = str(root).rstrip("/")
    return path == root or path.startswith(root + "/")


def hidden_inside(settings: Settings, ro: Sequence[str], course_url: Optional[str] = None) -> List[str]:
    """Folders inside the mounted ones that the kernel must not see: course/labs (solutions and hidden
    tests), and the course, scratch area, gradebook and ``--hide`` paths if a mount happens to hold them."""
    course_pkg = _package_dir("course")
    secret = [str(course_pkg / "labs")] if course_pkg else []
    secret += [str(settings.course), str(settings.scratch), str(settings.out), *settings.hide]
    if course_url:
        secret.append(str(db_path(course_url).parent))
    out = []
    for path in secret:
        real = os.path.realpath(path)
        if os.path.isdir(real) and any(_under(real, r) for r in ro) and real not in out:
            out.append(real)
    return out


def sandbox_config(settings: Settings, scratch: Path, runtime: Path, course_url: Optional[str] = None) -> dict:
    """The launcher's JSON config for one scratch course (see sandbox.py); seeds ``scratch/seed``."""
    uid, gid = nobody()
    seed = scratch / "seed"
    (seed / "work").mkdir(parents=True, exist_ok=True)
    mpl = _matplotlib_cache()
    if mpl and os.path.isdir(mpl):  # the font cache: no 10 s font scan in every kernel
        shutil.copytree(mpl, seed / ".cache" / "matplotlib", dirs_exist_ok=True)
    for path in [seed, *seed.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    ro, links = readable_paths(settings)
    home = sandbox.HOME
    threads = str(settings.threads)
    env = {"HOME": home, "USER": "nobody", "LOGNAME": "nobody", "TMPDIR": "/tmp", "XDG_CACHE_HOME": f"{home}/.cache",
           "PYTHONNOUSERSITE": "1", "LABKIT_OFFLINE": "1", "JUPYTER_RUNTIME_DIR": str(runtime),
           "MPLCONFIGDIR": f"{home}/.config/matplotlib", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
           "OPENBLAS_NUM_THREADS": threads,
           "PATH": os.pathsep.join([str(Path(kernel_python()).parent), "/usr/local/bin", "/usr/bin", "/bin"])}
    torch_home = _torch_home()
    if torch_home:
        env["TORCH_HOME"] = str(torch_home)
    mode = "bwrap" if settings.require_sandbox and settings.sandbox == "auto" else settings.sandbox
    return {
        "mode": mode, "ro": ro, "symlinks": links, "empty": hidden_inside(settings, ro, course_url),
        "rw": [str(runtime)], "seed": str(seed), "workdir": str(seed / "work"), "state_dir": str(scratch / "state"),
        "uid": uid, "gid": gid, "env": env,
        "limits": {"memory_mb": settings.memory_mb, "cpu_seconds": settings.cpu_seconds, "file_mb": 512,
                   "open_files": 4096, "processes": 4096},
        "tmpfs_mb": {"home": 768, "tmp": 512},
    }


def write_sandbox(settings: Settings, scratch: Path, runtime: Path, course_url: Optional[str] = None) -> Path:
    """``scratch/sandbox.json`` and the kernel spec that starts ipykernel through the launcher."""
    path = scratch / "sandbox.json"
    path.write_text(json.dumps(sandbox_config(settings, scratch, runtime, course_url), indent=1))
    write_kernel_spec(scratch)
    return path


def write_kernel_spec(scratch: Path) -> Path:
    """``<scratch>/jupyter/kernels/labkit-sandbox/kernel.json``: ipykernel behind sandbox.py.

    Interrupts travel as messages (ipykernel interrupts itself): signals to the launcher's pid reach
    bwrap, which does not pass them on.
    """
    kdir = scratch / "jupyter" / "kernels" / SANDBOX_KERNEL
    kdir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, str(Path(sandbox.__file__).resolve()), "--config", str(scratch / "sandbox.json"),
                 "--", kernel_python(), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (labkit grading sandbox)", "language": "python",
        "interrupt_mode": "message", "metadata": {"debugger": False},
    }
    (kdir / "kernel.json").write_text(json.dumps(spec, indent=1))
    return kdir


def make_runtime_dir() -> Path:
    """A short path for the kernel's IPC sockets (unix socket paths are limited to 107 bytes)."""
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="lkg-", dir=base))


def scratch_env(scratch: Path, runtime: Path, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Environment of an nbgrader process grading in ``scratch``: it finds the sandbox kernel spec there."""
    env = {"JUPYTER_PATH": str(scratch / "jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime),
           "JUPYTER_DATA_DIR": str(scratch / "jupyter-data")}
    env.update(extra or {})
    return base_env(env)


# --------------------------------------------------------------------------- processes


def die_with_parent_cmd(cmd: Sequence[str]) -> List[str]:
    """``cmd`` behind a tiny exec wrapper that asks the kernel to SIGKILL it when the thread that started it dies
    (a killed driver leaves no nbgrader behind; bwrap's --die-with-parent then ends the kernel)."""
    code = ("import ctypes,os,sys;"
            "ctypes.CDLL(None).prctl(1,9,0,0,0);"
            "os.getppid()==int(sys.argv[1]) or os._exit(1);"
            "os.execvp(sys.argv[2],sys.argv[2:])")
    return [sys.executable, "-c", code, str(os.getpid()), *cmd]


def run_limited(cmd: Sequence[str], *, cwd: Path, env: Dict[str, str], timeout: float, log: Path) -> tuple:
    """Run ``cmd`` in its own session with a wall-clock limit; returns (exit code, timed out)."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(die_with_parent_cmd(cmd), cwd=str(cwd), env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            return proc.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            return proc.returncode, True


def kill_sandboxes(state_dir: Path) -> int:
    """SIGKILL every launcher/bwrap/kernel recorded in ``state_dir`` that still runs. Returns how many."""
    killed = 0
    for rec in sorted(Path(state_dir).glob("*.json")) if Path(state_dir).is_dir() else []:
        try:
            data = json.loads(rec.read_text())
        except (OSError, ValueError):
            continue
        for pid in {data.get("kernel"), data.get("launcher")} - {None}:
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if any(mark in cmdline for mark in (b"ipykernel", b"sandbox.py", b"bwrap")):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
    return killed


def cleanup_stale(scratch: Path) -> None:
    """After a killed run: end the kernels a student's scratch course recorded and remove its runtime dir."""
    kill_sandboxes(Path(scratch) / "state")
    try:
        runtime = Path((Path(scratch) / "runtime-dir").read_text().strip())
    except OSError:
        return
    if runtime.name.startswith("lkg-"):
        shutil.rmtree(runtime, ignore_errors=True)


def sandbox_modes(state_dir: Path) -> List[str]:
    """The modes the kernels of one scratch course started in (from the launcher's state files)."""
    modes = set()
    for rec in Path(state_dir).glob("*.json") if Path(state_dir).is_dir() else []:
        try:
            modes.add(json.loads(rec.read_text()).get("mode"))
        except (OSError, ValueError):
            pass
    return sorted(m for m in modes if m)


# --------------------------------------------------------------------------- probe


PROBE_CODE = r'''
import json, os, socket
targets = json.loads(__TARGETS__)
out = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "read": {}, "net": {},
       "processes": len([p for p in os.listdir("/proc") if p.isdigit()])}
for path in targets["paths"]:
    try:
        if os.path.isdir(path):
            found = [f for base, dirs, files in os.walk(path) for f in files]
            out["read"][path] = "listed" if found else "empty"
        else:
            with open(path, "rb") as fh:
                fh.read(16)
            out["read"][path] = "read"
    except Exception as err:
        out["read"][path] = type(err).__name__
for host, port in targets["net"]:
    s = socket.socket()
    s.settimeout(3)
    try:
        s.connect((host, port))
        out["net"][f"{host}:{port}"] = "connected"
    except Exception as err:
        out["net"][f"{host}:{port}"] = type(err).__name__
    finally:
        s.close()
print("PROBE" + json.dumps(out))
'''


def secret_paths(settings: Settings, course_url: Optional[str] = None) -> List[Path]:
    """What no kernel may read: the course's sources, solutions, hand-ins, gradebook; the lab scripts; .git."""
    course = settings.course
    paths = [course / "nbgrader_config.py", course / "notebooks", course / "solutions", course / "submitted",
             settings.scratch, settings.out, ROOT / "course" / "labs", ROOT / ".git", ROOT / "notebooks"]
    if course_url:
        paths.append(db_path(course_url))
    return [p for p in paths if p.exists()]


def probe(settings: Settings, course_url: Optional[str] = None, timeout: int = 180) -> dict:
    """Start one sandboxed kernel the way grading does and check what it can reach.

    Returns {"mode", "leaks": [...], "result": {...}}; ``leaks`` lists hidden paths the kernel could read
    and network connections that worked.
    """
    import nbformat

    scratch = settings.scratch / "students" / "_probe"
    if scratch.exists():
        kill_sandboxes(scratch / "state")
        shutil.rmtree(scratch)
    (scratch / "state").mkdir(parents=True)
    os.chmod(scratch, 0o700)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    targets = {"paths": [str(p) for p in secret_paths(settings, course_url)],
               "net": [["127.0.0.1", server.getsockname()[1]], ["1.1.1.1", 53]]}
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(PROBE_CODE.replace("__TARGETS__", repr(json.dumps(targets)))))
    nb.metadata["kernelspec"] = {"name": SANDBOX_KERNEL, "display_name": "sandbox", "language": "python"}
    nb_path = scratch / "probe.ipynb"
    nbformat.write(nb, str(nb_path))
    runtime = make_runtime_dir()
    try:
        write_sandbox(settings, scratch, runtime, course_url)
        env = scratch_env(scratch, runtime, {"PYTHONPATH": str(ROOT)})
        cmd = [sys.executable, "-m", "nbconvert", "--to", "notebook", "--execute", "--output", "probe.out.ipynb",
               f"--ExecutePreprocessor.kernel_name={SANDBOX_KERNEL}", "--ExecutePreprocessor.timeout=120",
               "--ExecutePreprocessor.kernel_manager_class=course.grading.execution.IPCKernelManager",
               str(nb_path)]
        rc, timed_out = run_limited(cmd, cwd=scratch / "seed" / "work", env=env, timeout=timeout,
                                    log=scratch / "probe.log")
        kill_sandboxes(scratch / "state")
        out_path = scratch / "probe.out.ipynb"
        if rc != 0 or not out_path.exists():
            raise GradingError(f"the sandboxed kernel did not start (exit {rc}{', timed out' if timed_out else ''}):\n"
                               f"{tail(scratch / 'probe.log', 20)}")
        text = "".join(o.get("text", "") for o in nbformat.read(str(out_path), as_version=4).cells[0].outputs)
        data = json.loads(text.split("PROBE", 1)[1])
        modes = sandbox_modes(scratch / "state")
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)
    leaks = [f"read {p}" for p, how in data["read"].items() if how in ("read", "listed")]
    leaks += [f"connected to {a}" for a, how in data["net"].items() if how == "connected"]
    shutil.rmtree(scratch, ignore_errors=True)
    return {"mode": modes[0] if modes else "none", "leaks": leaks, "result": data}


def check_sandbox(settings: Settings, course_url: Optional[str] = None, log=print) -> dict:
    """Run the probe, print what protects the students' kernels; raise if it is weaker than required."""
    found = probe(settings, course_url)
    mode = found["mode"]
    if mode in STRONG_MODES and found["leaks"]:
        raise GradingError(f"sandbox mode {mode} leaks: {'; '.join(found['leaks'])}")
    if mode in STRONG_MODES:
        who = "nobody" if found["result"]["uid"] == nobody()[0] else f"uid {found['result']['uid']} (user namespace)"
        log(f"Sandbox: {mode} (kernel runs as {who}; course, sources, gradebook and other students not mounted; "
            f"no network; own pid namespace; {settings.memory_mb} MB data, {settings.cpu_seconds} s CPU)")
    else:
        banner = "!" * 78
        msg = (f"{banner}\nWARNING: the kernels are NOT isolated (sandbox mode '{mode}').\n"
               f"Student code can read: {', '.join(found['leaks']) or 'whatever this user can read'}.\n"
               "Only resource limits apply. Install bubblewrap (bash tools/install_sandbox.sh; "
               "docs/GRADING.md).\n" + banner)
        if settings.require_sandbox:
            raise GradingError(msg + "\n--require-sandbox was given: not grading.")
        log(msg)
    return found
