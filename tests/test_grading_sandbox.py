"""The grading sandbox (course/grading/sandbox.py + isolation.py): bubblewrap, what it mounts, its limits.

The kernel-level tests run only where bwrap can create namespaces here (`make setup` installs Debian's
bubblewrap as root); elsewhere they skip with that reason, and the honest fallback (mode none) is tested.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from course.grading import isolation, sandbox  # noqa: E402
from course.grading.settings import Settings  # noqa: E402

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the grading sandbox is Linux-only")


def bwrap_available():
    return sandbox.bwrap_works(sandbox.find_bwrap(), as_root=os.geteuid() == 0)


needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot create namespaces here "
                                                                "(bash tools/install_sandbox.sh)")

PROBE = r'''
import json, os, socket, sys
out = {"uid": os.getuid(), "pid": os.getpid(), "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
       "processes": len([p for p in os.listdir("/proc") if p.isdigit()])}
for key, path in json.loads(sys.argv[1]).items():
    try:
        if os.path.isdir(path):
            out[key] = "listed" if os.listdir(path) else "empty"
        else:
            with open(path, "rb") as fh:
                fh.read(1)
            out[key] = "read"
    except OSError as err:
        out[key] = type(err).__name__
s = socket.socket(); s.settimeout(3)
try:
    s.connect(("127.0.0.1", int(sys.argv[2]))); out["net"] = "connected"
except OSError as err:
    out["net"] = type(err).__name__
print(json.dumps(out))
'''


def _run_sandboxed(tmp_path, mode, code_args, limits=None):
    """Run python code through sandbox.py with a config like grading's; returns (process, scratch, course)."""
    course = tmp_path / "course"
    (course / "notebooks").mkdir(parents=True, exist_ok=True)
    (course / "gradebook.db").write_text("secret grades")
    scratch = tmp_path / "scratch" / "students" / "s1"
    (scratch / "state").mkdir(parents=True, exist_ok=True)
    (tmp_path / "scratch" / "students" / "s2").mkdir(exist_ok=True)
    (tmp_path / "scratch" / "students" / "s2" / "other.txt").write_text("another student")
    runtime = isolation.make_runtime_dir()
    settings = Settings(lab="unit", course=course, scratch=tmp_path / "scratch", out=tmp_path / "out", sandbox=mode,
                        memory_mb=1024)
    cfg = isolation.sandbox_config(settings, scratch, runtime)
    (scratch / "seed" / "work" / "mine.txt").write_text("my own file")
    if limits:
        cfg["limits"].update(limits)
    (scratch / "sandbox.json").write_text(json.dumps(cfg))
    try:
        proc = subprocess.run([sys.executable, str(Path(sandbox.__file__)), "--config", str(scratch / "sandbox.json"),
                               "--", isolation.kernel_python(), "-c", *code_args], capture_output=True, text=True,
                              timeout=300, cwd=str(scratch / "seed" / "work"))
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    return proc, scratch, course


def test_kernel_env_keeps_course_settings_and_drops_secrets():
    env = sandbox.kernel_env({"PATH": "/bin", "LABKIT_FAST": "1", "AWS_SECRET_ACCESS_KEY": "x", "GITHUB_TOKEN": "y",
                              "SSH_AUTH_SOCK": "/s", "OMP_NUM_THREADS": "8", "PYTHONPATH": "/work/main/course"},
                             {"HOME": "/h", "OMP_NUM_THREADS": "1"})
    assert env == {"PATH": "/bin", "LABKIT_FAST": "1", "OMP_NUM_THREADS": "1", "HOME": "/h"}


def test_bwrap_command_mounts_only_what_the_kernel_needs(tmp_path):
    settings = Settings(lab="unit", course=tmp_path / "course", scratch=tmp_path / "scratch")
    scratch = tmp_path / "scratch" / "students" / "s1"
    cfg = isolation.sandbox_config(settings, scratch, tmp_path / "rt")
    args = sandbox.bwrap_args(cfg, ["/venv/bin/python", "-m", "ipykernel_launcher"], "/usr/bin/bwrap", as_root=True)
    for flag in ("--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"):
        assert flag in args
    binds = [args[i + 1] for i, a in enumerate(args) if a in ("--ro-bind", "--bind")]
    assert all(os.path.realpath(p) == p and p in binds for p in cfg["ro"])  # resolved before the sandbox is built
    assert str(ROOT / "labkit") in binds and str(ROOT / "course") in binds
    for secret in (ROOT, ROOT / "notebooks", ROOT / ".git", settings.course, settings.scratch, Path.home()):
        assert str(secret) not in binds
    covered = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
    assert str(ROOT / "course" / "labs") in covered  # the lab scripts hold solutions and hidden tests
    assert {"/tmp", sandbox.HOME} <= set(covered)
    assert "/etc/shadow" not in binds and "/etc" not in binds
    # as root the kernel becomes nobody inside; as a user, bwrap's user namespace
    assert args[args.index("--") + 5:args.index("--") + 7] == [str(isolation.nobody()[0]), str(isolation.nobody()[1])]
    user_args = sandbox.bwrap_args(cfg, ["/venv/bin/python"], "/usr/bin/bwrap", as_root=False)
    assert "--unshare-user" in user_args and "CAP_SETUID" not in user_args


@needs_bwrap
def test_sandbox_hides_course_and_other_students_and_cuts_the_network(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    targets = {"gradebook": str(tmp_path / "course" / "gradebook.db"),
               "other_student": str(tmp_path / "scratch" / "students" / "s2" / "other.txt"),
               "lab_script": str(next((ROOT / "course" / "labs").glob("*.py"))), "labs": str(ROOT / "course" / "labs"),
               "notebooks": str(ROOT / "notebooks"), "git": str(ROOT / ".git" / "HEAD"),
               "course_pkg": str(ROOT / "course" / "grading" / "sandbox.py"),
               "labkit": str(ROOT / "labkit" / "__init__.py"), "shadow": "/etc/shadow", "root": "/root"}
    try:
        proc, scratch, _ = _run_sandboxed(tmp_path, "bwrap", [PROBE, json.dumps(targets), str(port)])
        server.settimeout(0.5)
        with pytest.raises(socket.timeout):
            server.accept()  # nothing ever connected
    finally:
        server.close()
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["gradebook"] == out["other_student"] == out["lab_script"] == out["git"] == "FileNotFoundError"
    assert out["notebooks"] == "FileNotFoundError" and out["shadow"] in ("FileNotFoundError", "PermissionError")
    assert out["labs"] == "empty"  # course/labs is covered; the installed packages the labs import stay
    assert out["labkit"] == out["course_pkg"] == "read"
    assert out["net"] in ("OSError", "ConnectionRefusedError") and out["net"] != "connected"
    assert out["processes"] <= 3  # own pid namespace: bwrap's init, the kernel (and its child)
    assert out["files"] == ["mine.txt"] and out["cwd"] == f"{sandbox.HOME}/work"  # own tmpfs home, seeded
    if os.geteuid() == 0:
        assert out["uid"] == isolation.nobody()[0]
    assert [json.loads(p.read_text())["mode"] for p in (scratch / "state").glob("*.json")] == ["bwrap"]


@needs_bwrap
def test_sandbox_limits_memory_and_cpu_time(tmp_path):
    hog = ("import sys\nblocks = []\ntry:\n    while True:\n        blocks.append(bytearray(50_000_000))\n"
           "except MemoryError:\n    print(len(blocks))\n")
    proc, _, _ = _run_sandboxed(tmp_path, "bwrap", [hog], limits={"memory_mb": 600})
    assert proc.returncode == 0, proc.stderr
    assert 0 < int(proc.stdout) * 50 <= 600  # stopped at the data limit, far below the machine's memory
    proc, _, _ = _run_sandboxed(tmp_path, "bwrap", ["while True: pass"], limits={"cpu_seconds": 1})
    assert proc.returncode in (128 + signal.SIGXCPU, 128 + signal.SIGKILL, -signal.SIGXCPU, -signal.SIGKILL,
                               1), proc.returncode
    assert proc.returncode != 0


def test_sandbox_fallback_mode_none_is_honest_about_what_it_does_not_protect(tmp_path):
    targets = {"gradebook": str(tmp_path / "course" / "gradebook.db")}
    proc, scratch, _ = _run_sandboxed(tmp_path, "none", [PROBE, json.dumps(targets), "9"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["gradebook"] == "read"  # the reason the driver warns loudly in this mode
    assert [json.loads(p.read_text())["mode"] for p in (scratch / "state").glob("*.json")] == ["none"]


def test_require_sandbox_refuses_mode_none(tmp_path):
    from course.grading.settings import GradingError

    with pytest.raises(GradingError):
        Settings(lab="unit", course=tmp_path, sandbox="none", require_sandbox=True)
    cfg = {"mode": "bwrap", "bwrap": str(tmp_path / "no-such-bwrap")}
    if not bwrap_available():
        with pytest.raises(sandbox.SandboxError, match="bubblewrap"):
            sandbox.choose_mode(cfg)


@needs_bwrap
def test_a_course_whose_venv_is_a_symlink_grades_normally(tmp_path):
    """The venv reached through a symlink (a course folder linking a shared environment): the probe starts a
    real sandboxed kernel with that python, runs a cell, and finds nothing it should not."""
    link = tmp_path / "linked" / ".venv"
    link.parent.mkdir()
    link.symlink_to(os.path.realpath(sys.prefix))
    python = link / "bin" / Path(sys.executable).name
    course = tmp_path / "course"
    course.mkdir()
    shutil.copy2(ROOT / "nbgrader_config.py", course / "nbgrader_config.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(link / "bin") + os.pathsep + env.get("PATH", "")
    proc = subprocess.run([str(python), "-m", "course.grading.autograde", "probe", "--course", str(course),
                           "--require-sandbox"], cwd=str(tempfile.gettempdir()), env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Sandbox: bwrap" in proc.stdout
    found = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    assert found["mode"] == "bwrap" and found["leaks"] == []
