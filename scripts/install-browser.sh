#!/usr/bin/env bash
# Make Debian's headless Chromium present for the studio's browser tests (idempotent). Playwright drives
# this system browser (executable_path); no browser is ever downloaded by Playwright itself.
# Never fails the build: when it cannot install, it says so loudly and exits 0 (the browser tests then skip).
set -euo pipefail

find_chromium() {
    local bin
    for bin in "${MLYARD_CHROMIUM:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
        if [[ -n "$bin" && -x "$bin" ]]; then echo "$bin"; return 0; fi
    done
    return 1
}

loud_skip() {
    cat >&2 <<EOF2

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! Chromium could not be installed ($1).
!! The studio's browser tests will be SKIPPED.
!! Install it manually, then re-run the tests:
!!     sudo apt-get update && sudo apt-get install -y chromium
!! (or point MLYARD_CHROMIUM at a Chromium or Chrome binary).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF2
    exit 0
}

if found="$(find_chromium)"; then
    echo "install-browser: Chromium found at $found"
    exit 0
fi

if [[ "$(id -u)" -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    loud_skip "not root and no passwordless sudo"
fi
command -v apt-get >/dev/null 2>&1 || loud_skip "apt-get not found"

echo "install-browser: installing Debian's chromium with apt-get..."
"${SUDO[@]}" apt-get update -qq || loud_skip "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium || loud_skip "apt-get install chromium failed"

if found="$(find_chromium)"; then
    echo "install-browser: Chromium installed at $found"
else
    loud_skip "the chromium package installed no /usr/bin/chromium"
fi
