#!/usr/bin/env bash
# Make PostgreSQL >= 15 server binaries present for the test suite (idempotent).
# The tests start their own throw-away server; no system cluster is left running.
# Never fails the build: when it cannot install, it says so loudly and exits 0.
set -euo pipefail

PG_LIBDIR="${MLYARD_PG_LIBDIR:-/usr/lib/postgresql}"   # both overridable for testing this script
PG_ETCDIR="${MLYARD_PG_ETCDIR:-/etc/postgresql}"
MIN_MAJOR=15

find_postgres() {  # prints the newest .../<major>/bin/postgres with major >= MIN_MAJOR
    local best="" best_major=0 bin major
    for bin in "$PG_LIBDIR"/*/bin/postgres; do
        [[ -x "$bin" ]] || continue
        major="$(basename "$(dirname "$(dirname "$bin")")")"
        major="${major%%.*}"
        [[ "$major" =~ ^[0-9]+$ ]] || continue
        if (( major >= MIN_MAJOR && major > best_major )); then best="$bin"; best_major="$major"; fi
    done
    [[ -n "$best" ]] && echo "$best"
}

loud_skip() {
    cat >&2 <<EOF

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!! PostgreSQL ${MIN_MAJOR} could not be installed ($1).
!! The PostgreSQL store tests will be SKIPPED; only SQLite will be tested.
!! Install it manually, then re-run the tests:
!!     sudo apt-get update && sudo apt-get install -y postgresql-${MIN_MAJOR}
!! (or any PostgreSQL >= ${MIN_MAJOR} with 'initdb' and 'postgres' on PATH / pg_config).
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
    exit 0
}

if found="$(find_postgres)"; then
    echo "install-postgres: PostgreSQL found at $found"
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

clusters() {  # "version name status" of every Debian cluster (none when postgresql-common is absent)
    if command -v pg_lsclusters >/dev/null 2>&1; then pg_lsclusters -h 2>/dev/null | awk '{print $1, $2, $4}'; fi
}
before="$(clusters | awk '{print $1, $2}')"

# Keep package scripts from starting services during the install (standard Debian mechanism).
made_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
    "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
cleanup() { if [[ "$made_policy" -eq 1 ]]; then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

echo "install-postgres: installing PostgreSQL ${MIN_MAJOR} with apt-get..."
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq || loud_skip "apt-get update failed"
pkg="postgresql-${MIN_MAJOR}"
if ! apt-cache show "$pkg" >/dev/null 2>&1; then pkg=postgresql; fi
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" \
    || loud_skip "apt-get install $pkg failed"

# Stop, and switch to manual start, any cluster the package created: the tests run their own server.
while read -r ver name status; do
    if [[ -z "${ver:-}" ]] || grep -qx "$ver $name" <<<"$before"; then continue; fi
    if [[ "$status" == online ]]; then "${SUDO[@]}" pg_ctlcluster "$ver" "$name" stop || true; fi
    conf="$PG_ETCDIR/$ver/$name/start.conf"
    if [[ -f "$conf" ]]; then "${SUDO[@]}" sed -i -E 's/^[[:space:]]*auto\b/manual/' "$conf"; fi
done <<<"$(clusters)"

if found="$(find_postgres)"; then
    echo "install-postgres: PostgreSQL installed at $found"
else
    loud_skip "package $pkg installed no server >= ${MIN_MAJOR} under $PG_LIBDIR"
fi
