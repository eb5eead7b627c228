#!/usr/bin/env bash
# Install what `labkit report --to pdf` and the browser tests need, from Debian's packages:
#   chromium       headless PDF printing and the JupyterLab browser test
#   poppler-utils  pdftotext / pdfimages / pdftoppm, used by tests/test_report.py
#   fonts-dejavu-core  only when the system has no fonts at all
# Idempotent: a no-op when every tool is already on PATH. Quiet unless something is missing.
# Usage: bash tools/install_browser.sh   (as root, or with passwordless sudo)
set -euo pipefail

declare -A PACKAGE_FOR=( [chromium]=chromium [pdftotext]=poppler-utils [pdfimages]=poppler-utils [pdftoppm]=poppler-utils )

# A browser already installed another way (Chrome, chromium-browser, LABKIT_CHROMIUM) counts as present.
have_browser() {
    [[ -n "${LABKIT_CHROMIUM:-}" && -x "${LABKIT_CHROMIUM}" ]] && return 0
    local exe
    for exe in chromium chromium-browser google-chrome google-chrome-stable; do
        command -v "$exe" >/dev/null 2>&1 && return 0
    done
    return 1
}

missing=()
have_browser || missing+=(chromium)
# Chromium prints with system fonts; a bare container may have none.
{ command -v fc-list >/dev/null 2>&1 && [[ -n "$(fc-list 2>/dev/null | head -n 1)" ]]; } || missing+=(fonts-dejavu-core)
for tool in pdftotext pdfimages pdftoppm; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_FOR[$tool]}")
done
# Unique package names, in order.
packages=$(printf '%s\n' "${missing[@]+"${missing[@]}"}" | awk 'NF && !seen[$0]++' | tr '\n' ' ')
packages=${packages% }
[[ -z "$packages" ]] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: missing: $packages, and this system has no apt-get." >&2
    echo "  Install Chromium (or Google Chrome) and poppler-utils with your package manager," >&2
    echo "  or point labkit at a browser with LABKIT_CHROMIUM=/path/to/chromium." >&2
    exit 1
fi

if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "install_browser.sh: missing: $packages. Installing them needs root; run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
    exit 1
fi

echo "install_browser.sh: installing $packages (apt-get)"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # $packages is a space-separated list on purpose
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends $packages >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update -qq >/dev/null
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends $packages >/dev/null
fi
have_browser || { echo "install_browser.sh: chromium installed but not found on PATH" >&2; exit 1; }
echo "install_browser.sh: done ($(command -v chromium || command -v chromium-browser || command -v google-chrome))"
