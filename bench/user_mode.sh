#!/usr/bin/env bash
# The cost of user-only mode: the same dlmcc builds run as root (kernel-and-user mode) and as a
# plain user (user-only mode, I/O calls hold their DLM buffers), alternately, wall time each.
# Needs root (it creates the user dlm-plain if missing). Usage: bench/user_mode.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
budget=32M
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
release=$(scripts/release-dir)
id dlm-plain >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin dlm-plain
"$release/dlmcc" -O2 -o "$work/fileio" tests/c/fileio.c
"$release/dlmcc" -O2 -o "$work/stencil" tests/c/legacy/stencil/stencil.c
mkdir -p "$work/root" "$work/plain"
chown dlm-plain: "$work/plain"
chmod 755 "$work"

seconds() {
    local start
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    echo "$(date +%s.%N) - $start" | bc
}

as_plain() { setpriv --reuid dlm-plain --regid dlm-plain --init-groups -- env HOME="$work/plain" "$@"; }

echo "program round root_s plain_s root/plain"
for round in $(seq "$rounds"); do
    root=$(seconds env DLM_LOCAL_MEM=$budget "$work/fileio" "$work/root" 64)
    plain=$(seconds as_plain env DLM_LOCAL_MEM=$budget "$work/fileio" "$work/plain" 64)
    echo "fileio $round $root $plain $(echo "scale=3; $root / $plain" | bc)"
    root=$(seconds env DLM_LOCAL_MEM=$budget "$work/stencil")
    plain=$(seconds as_plain env DLM_LOCAL_MEM=$budget "$work/stencil")
    echo "stencil $round $root $plain $(echo "scale=3; $root / $plain" | bc)"
done
