#!/usr/bin/env bash
# Make Azurite (Microsoft's Azure Storage emulator) present for the object storage tests (idempotent).
# It is installed from the npm registry into .tools/azurite/ (ignored by git); the tests start their own
# throw-away Azurite on free loopback ports and stop it. Node.js comes from Debian's packages when missing.
# Never fails the build: when it cannot install, it says so loudly and exits 0 (those tests then skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${MLYARD_AZURITE_DIR:-$ROOT/.tools/azurite}"
VERSION="${MLYARD_AZURITE_VERSION:-3}"
BIN="$DEST/node_modules/.bin/azurite-blob"

loud_skip() {
    cat >&2 <<MSG

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! Azurite could not be installed ($1).
!! The Azure Blob datastore tests will be SKIPPED.
!! Install Node.js >= 18 and npm, then re-run:  make azurite
!!     (npm install --prefix .tools/azurite azurite@${VERSION})
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

MSG
    exit 0
}

if [[ -x "$BIN" ]]; then
    echo "install-azurite: Azurite found at $BIN"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    if [[ "$(id -u)" -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "install-azurite: installing Node.js and npm with apt-get..."
        apt-get update -qq || loud_skip "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm \
            || loud_skip "apt-get install nodejs npm failed"
    else
        loud_skip "npm not found"
    fi
fi

echo "install-azurite: npm install azurite@${VERSION} into $DEST ..."
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --silent "azurite@${VERSION}" || loud_skip "npm install failed"
[[ -x "$BIN" ]] || loud_skip "npm installed no $BIN"
echo "install-azurite: Azurite installed at $BIN"
