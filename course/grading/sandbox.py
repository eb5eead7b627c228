"""Start one command (a student's Jupyter kernel) in a sandbox, using only what Linux gives.

    python course/grading/sandbox.py --config SANDBOX.json -- python -m ipykernel_launcher -f CONN.json

The grading kernel spec (written by ``course/grading/autograde.py`` for each submission) puts this
launcher in front of ipykernel, so the student's code never runs with the grader's view of the machine:

* **mount namespace**: every directory in ``hide`` (the course root, the repository, the grading
  scratch area, /tmp, /root, /home ...) is covered by an empty tmpfs; only the ``keep_ro`` paths
  (the virtual environment, the Python installation, labkit, data/) and ``keep_rw`` paths (the
  kernel's runtime dir) are put back, at the same paths. So the kernel cannot see the source notebooks,
  tools/ (lab scripts with solutions), solutions/, .git, the gradebook or other students' files.
  The working directory, $HOME, /tmp and /dev/shm are fresh size-limited tmpfs (no disk filling).
* **network namespace**: no interface but a down loopback: no network at all. The kernel talks to
  the grader over ZMQ IPC sockets (unix sockets in the runtime dir), never TCP.
* **pid and IPC namespaces**: the kernel is pid 1 of its own namespace; it cannot see or signal other
  students' kernels, and everything it starts dies with it.
* **user**: as root, the kernel drops to ``nobody`` (no capabilities, no_new_privs); without root,
  an unprivileged user namespace gives the same mounts and the kernel drops every capability.
* **resource limits**: data segment (memory), CPU seconds, file size, processes, open files, no core.

Modes (``mode`` in the config): ``auto`` picks the strongest that works: ``namespaces`` (root),
``userns`` (unprivileged user namespaces), ``user`` (root without namespaces: only the user switch),
``none`` (a plain process with resource limits). Each start records the mode it reached in
``state_dir`` so the grader can warn loudly about a weak one. Standard library only; Linux only.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

MODES = ("auto", "namespaces", "userns", "user", "none")

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
# statvfs flags that a read-only remount must keep (the kernel refuses to clear locked ones)
_KEEP_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | 1024 | 2048 | 4096  # + noatime, nodiratime, relatime

PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT = 1, 24, 38, 47

# Environment variables the kernel may inherit (names or prefixes ending in "_"); everything else
# (tokens, cloud keys, SSH agents, the grader's paths) is dropped.
ENV_ALLOW = ("PATH", "LANG", "LANGUAGE", "TERM", "TZ", "PYTHONWARNINGS", "PYTHONHASHSEED", "PYTHONIOENCODING",
             "PYTHONUTF8", "VIRTUAL_ENV", "CUDA_VISIBLE_DEVICES", "SOURCE_DATE_EPOCH", "MPLBACKEND",
             "LC_", "LABKIT_", "JPY_", "OMP_", "MKL_", "OPENBLAS_", "TORCH_", "NUMEXPR_")

_libc = None


class SandboxError(RuntimeError):
    """The sandbox could not be set up as configured."""


def libc():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return _libc


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(libc().unshare(flags), "unshare")


def mount(source: Optional[str], target: str, fstype: Optional[str], flags: int, data: Optional[str] = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(libc().mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, arg2: int = 0) -> int:
    return libc().prctl(option, ctypes.c_ulong(arg2), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets."""
    prctl(PR_CAP_AMBIENT, 4)  # PR_CAP_AMBIENT_CLEAR_ALL
    for cap in range(64):
        if prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3
    _check(libc().capset(ctypes.byref(header), data), "capset")


# --------------------------------------------------------------------------- configuration


def _norm(paths: Sequence[str]) -> List[str]:
    out = []
    for p in paths:
        p = os.path.realpath(p)
        if p not in out:
            out.append(p)
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def plan_mounts(hide: Sequence[str], keep_ro: Sequence[str],
                keep_rw: Sequence[str]) -> Tuple[List[str], List[Tuple[str, bool]]]:
    """Which roots to cover with tmpfs and which kept paths to put back (path, writable), shallow first.

    Roots below another hidden root are covered by it; missing paths are skipped.
    """
    hide = sorted((p for p in _norm(hide) if os.path.isdir(p) and p != "/"), key=len)
    roots: List[str] = []
    for p in hide:
        if not any(_under(p, r) for r in roots):
            roots.append(p)
    keeps = [(p, False) for p in _norm(keep_ro) if os.path.exists(p)]
    keeps += [(p, True) for p in _norm(keep_rw) if os.path.exists(p)]
    keeps.sort(key=lambda kv: len(kv[0]))
    return roots, keeps


def kernel_env(base: Dict[str, str], extra: Dict[str, str], allow: Sequence[str] = ENV_ALLOW) -> Dict[str, str]:
    env = {k: v for k, v in base.items() if any(k == a or (a.endswith("_") and k.startswith(a)) for a in allow)}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# --------------------------------------------------------------------------- setup steps


def _make_mountpoint(path: str, is_dir: bool) -> None:
    if is_dir:
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            open(path, "w").close()


def _readonly_remount(path: str) -> None:
    flags = os.statvfs(path).f_flag & _KEEP_FLAGS
    mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)


def setup_mounts(cfg: dict, owner: Tuple[int, int]) -> None:
    """In a fresh mount namespace: hide, put back, fresh writable tmpfs areas, new /proc."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do here leaks to the host
    size = cfg.get("tmpfs_mb", {})
    scratch_areas = [a for a in ("/tmp", "/dev/shm") if os.path.isdir(a)]
    roots, keeps = plan_mounts(list(cfg.get("hide", [])) + scratch_areas, cfg.get("keep_ro", []),
                               cfg.get("keep_rw", []))
    # O_PATH handles on kept paths stay usable after their parents are covered by tmpfs
    handles = {p: os.open(p, os.O_PATH | os.O_CLOEXEC) for p, _ in keeps}
    workdir = os.path.realpath(cfg["workdir"])
    work_handle = os.open(workdir, os.O_PATH | os.O_CLOEXEC | os.O_DIRECTORY)
    for root in roots:
        if root in scratch_areas:  # a fresh, empty, world-writable /tmp and /dev/shm
            mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={int(size.get('tmp', 256))}m")
        else:
            mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    for path, writable in keeps:
        source = f"/proc/self/fd/{handles[path]}"
        if any(_under(path, r) for r in roots):
            _make_mountpoint(path, os.path.isdir(source))
            mount(source, path, None, MS_BIND | MS_REC)
        elif not writable:
            mount(path, path, None, MS_BIND | MS_REC)
        if not writable:
            _readonly_remount(path)
    uid, gid = owner
    own = f"uid={uid},gid={gid}"
    # The working directory: a fresh tmpfs seeded with the files the grader put there.
    _make_mountpoint(workdir, True)
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0700,{own},size={int(size.get('work', 512))}m")
    _copy_tree(f"/proc/self/fd/{work_handle}", workdir, owner)
    home = cfg.get("home")
    if home:
        _make_mountpoint(home, True)
        mount("tmpfs", home, "tmpfs", MS_NOSUID | MS_NODEV, f"mode=0700,{own},size={int(size.get('home', 256))}m")
        for src, rel in cfg.get("home_seed", {}).items():  # e.g. matplotlib's font cache
            if os.path.exists(src):
                dst = os.path.join(home, rel)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                (shutil.copytree if os.path.isdir(src) else shutil.copy2)(src, dst)
        _chown_tree(home, owner)
    for fd in list(handles.values()) + [work_handle]:
        os.close(fd)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # shows only this pid namespace


def _copy_tree(src: str, dst: str, owner: Tuple[int, int]) -> None:
    for name in os.listdir(src):
        s, d = os.path.join(src, name), os.path.join(dst, name)
        if os.path.islink(s):
            continue
        if os.path.isdir(s):
            shutil.copytree(s, d, symlinks=False)
        else:
            shutil.copy2(s, d)
    _chown_tree(dst, owner)


def _chown_tree(path: str, owner: Tuple[int, int]) -> None:
    uid, gid = owner
    os.chown(path, uid, gid)
    for base, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(base, name), uid, gid, follow_symlinks=False)


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
    if nproc:  # counted per real uid: only meaningful for a uid of the sandbox's own (nobody)
        limit(resource.RLIMIT_NPROC, limits.get("processes", 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _write_state(cfg: dict, record: dict) -> None:
    state = cfg.get("state_dir")
    if not state:
        return
    path = Path(state) / f"{os.getpid()}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def _fix_connection_file(cmd: List[str], owner: Tuple[int, int]) -> None:
    """jupyter_client writes the connection file 0600 for the grader: hand it to the kernel's user."""
    for i, arg in enumerate(cmd[:-1]):
        if arg in ("-f", "--f", "--ConnectionFileMixin.connection_file") and os.path.exists(cmd[i + 1]):
            os.chown(cmd[i + 1], *owner)
    for arg in cmd:
        if arg.startswith("--f=") and os.path.exists(arg[4:]):
            os.chown(arg[4:], *owner)


def _exec(cmd: List[str], env: Dict[str, str], cwd: str) -> None:
    os.chdir(cwd)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execvpe(cmd[0], cmd, env)


# --------------------------------------------------------------------------- modes


def _isolated_child(cfg: dict, cmd: List[str], env: Dict[str, str], mode: str) -> None:
    """Runs as pid 1 of the new pid namespace: mounts, limits, drop privileges, exec. Never returns."""
    try:
        if mode == "namespaces":
            owner = (int(cfg.get("uid", 65534)), int(cfg.get("gid", 65534)))
        else:
            owner = (0, 0)  # root inside the user namespace = the grader's own uid outside
        for path in cfg.get("keep_rw", []):
            if os.path.exists(path) and mode == "namespaces":
                _chown_tree(path, owner)
        _fix_connection_file(cmd, owner)
        setup_mounts(cfg, owner)
        set_limits(cfg.get("limits", {}), nproc=mode == "namespaces")
        if mode == "namespaces":
            os.setgroups([])
            os.setgid(owner[1])
            os.setuid(owner[0])  # all capabilities go with root
        else:
            drop_capabilities()
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # set after the uid change, which clears it
        _exec(cmd, env, cfg["workdir"])
    except BaseException as err:  # report and leave: a half-built sandbox must not run student code
        print(f"labkit sandbox: setup failed in mode {mode}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        os._exit(121)


def _run_namespaced(cfg: dict, cmd: List[str], env: Dict[str, str], mode: str) -> int:
    # The launcher joins only the new pid (and user) namespace; the child, pid 1 there, makes its own
    # mount, network and IPC namespaces, so the launcher keeps the grader's view (and its state_dir).
    if mode == "userns":
        uid, gid = os.getuid(), os.getgid()
        unshare(CLONE_NEWUSER | CLONE_NEWPID)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"0 {uid} 1")
        Path("/proc/self/gid_map").write_text(f"0 {gid} 1")
    else:
        unshare(CLONE_NEWPID)
    child = os.fork()
    if child == 0:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # until the uid change clears it (set again before exec)
        try:
            unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC)
        except OSError as err:
            print(f"labkit sandbox: unshare failed in mode {mode}: {err}", file=sys.stderr, flush=True)
            os._exit(121)
        _isolated_child(cfg, cmd, env, mode)
    # The launcher stays as the kernel's parent: jupyter_client signals the process group (both).
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the kernel gets SIGINT from the group signal itself
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, lambda s, f: os.kill(child, signal.SIGKILL))
    _write_state(cfg, {"mode": mode, "launcher": os.getpid(), "kernel": child})
    parent = cfg.get("_parent", os.getppid())
    while True:  # wait for the kernel; if whoever started us dies (a killed grader), take the kernel down
        try:
            pid, status = os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid:
            code = os.waitstatus_to_exitcode(status)
            return 128 - code if code < 0 else code  # killed by signal N: 128 + N, like a shell
        if os.getppid() != parent:
            os.kill(child, signal.SIGKILL)
            os.waitpid(child, 0)
            return 137
        time.sleep(0.2)


def _run_plain(cfg: dict, cmd: List[str], env: Dict[str, str], mode: str) -> None:
    owner = (int(cfg.get("uid", 65534)), int(cfg.get("gid", 65534)))
    if mode == "user":
        for path in cfg.get("keep_rw", []) + [cfg["workdir"]] + ([cfg["home"]] if cfg.get("home") else []):
            if os.path.exists(path):
                _chown_tree(path, owner)
        _fix_connection_file(cmd, owner)
    if cfg.get("home"):
        os.makedirs(cfg["home"], exist_ok=True)
    _write_state(cfg, {"mode": mode, "launcher": os.getpid(), "kernel": os.getpid()})
    set_limits(cfg.get("limits", {}), nproc=mode == "user")
    if mode == "user":
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    _exec(cmd, env, cfg["workdir"])


def candidate_modes(requested: str) -> List[str]:
    """Modes to try, strongest first."""
    if requested != "auto":
        return [requested]
    if os.geteuid() == 0:
        return ["namespaces", "userns", "user", "none"]
    return ["userns", "none"]


def userns_works() -> bool:
    """Whether this process may create a user namespace (tried in a throwaway child)."""
    pid = os.fork()
    if pid == 0:
        try:
            unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def namespaces_work() -> bool:
    pid = os.fork()
    if pid == 0:
        try:
            unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def user_can_run(cfg: dict, cmd: List[str]) -> bool:
    """Whether the sandbox user (nobody) can reach the interpreter and the kept paths (tried in a child)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(int(cfg.get("gid", 65534)))
            os.setuid(int(cfg.get("uid", 65534)))
            exe = shutil.which(cmd[0]) or cmd[0]
            ok = os.access(exe, os.X_OK) and all(os.access(p, os.R_OK) for p in cfg.get("keep_ro", [])
                                                 if os.path.exists(p))
            os._exit(0 if ok else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _mode_works(mode: str, cfg: dict, cmd: List[str]) -> bool:
    if mode == "namespaces":
        return os.geteuid() == 0 and namespaces_work()
    if mode == "userns":
        return userns_works()
    if mode == "user":
        return os.geteuid() == 0 and user_can_run(cfg, cmd)
    return True


def run(cfg: dict, cmd: List[str]) -> int:
    """Start ``cmd`` in the strongest working mode allowed by ``cfg['mode']``; returns its exit code."""
    if not sys.platform.startswith("linux"):
        raise SandboxError("the grading sandbox needs Linux (namespaces, rlimits)")
    requested = cfg.get("mode", "auto")
    if requested not in MODES:
        raise SandboxError(f"unknown sandbox mode {requested!r}; choose one of {', '.join(MODES)}")
    env = kernel_env(dict(os.environ), cfg.get("env", {}), tuple(cfg.get("env_allow", ENV_ALLOW)))
    for mode in candidate_modes(requested):
        if not _mode_works(mode, cfg, cmd):
            continue
        if mode in ("namespaces", "userns"):
            return _run_namespaced(cfg, cmd, env, mode)
        _run_plain(cfg, cmd, env, mode)  # exec: does not return
    raise SandboxError(f"sandbox mode {requested!r} is not available here")


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv or argv[:1] != ["--config"] or len(argv) < 4:
        print("usage: sandbox.py --config SANDBOX.json -- COMMAND [ARGS ...]", file=sys.stderr)
        return 2
    cut = argv.index("--")
    cfg = json.loads(Path(argv[1]).read_text())
    # Whoever started us (jupyter_client names itself in JPY_PARENT_PID): if it dies, the kernel goes too.
    cfg["_parent"] = int(os.environ.get("JPY_PARENT_PID") or os.getppid())
    if os.getppid() != cfg["_parent"]:
        print("labkit sandbox: the process that started the kernel is gone; not starting", file=sys.stderr)
        return 121
    cmd = argv[cut + 1:]
    try:
        return run(cfg, cmd)
    except (SandboxError, OSError) as err:
        print(f"labkit sandbox: {err}", file=sys.stderr, flush=True)
        return 121


if __name__ == "__main__":
    sys.exit(main())
