#!/usr/bin/env bash
# Installs what DLM needs on Debian (Open MPI, libclang for the bindings, a C compiler, MUNGE
# for the memory pool), writes DLM's defaults into Open MPI's own parameter file
# (scripts/mpi-defaults.sh: a plain mpirun then ends within seconds of losing a host) and
# builds the workspace in release mode. Needs root (or sudo) for apt-get, that file and munged.
# Safe to run again: it installs and starts only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# munge: the pool manager checks callers over TCP with unmunge, clients make credentials with
# munge (dlm-pool/src/identity.rs); curl: the pool's tests speak to the manager as `nobody`;
# iproute2, groff and man: the end-to-end tests (emulated hosts, the man pages); lxcfs: each
# host of the emulated WAN sees its own memory and load (scripts/cluster.sh wan); libpam0g-dev:
# the web portal's logins (dlm-portal links libpam, its bindings are made from the headers with
# libclang); chromium: the portal's test in a real browser (tests/browser, driven by Playwright
# under node).
PACKAGES=(build-essential pkg-config libopenmpi-dev openmpi-bin libclang-dev clang munge curl iproute2 groff-base man-db lxcfs libpam0g-dev chromium)
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
$SUDO scripts/mpi-defaults.sh system
# munged, with a key, unless one already answers (no systemd here to start it).
if ! munge -n >/dev/null 2>&1; then
    if [ ! -s /etc/munge/munge.key ]; then
        $SUDO mungekey --create --keyfile=/etc/munge/munge.key
        $SUDO chown munge:munge /etc/munge/munge.key
        $SUDO chmod 0600 /etc/munge/munge.key
    fi
    $SUDO install -d -o munge -g munge -m 0755 /run/munge
    $SUDO runuser -u munge -- /usr/sbin/munged
    munge -n >/dev/null || { echo "setup: munged does not answer (see /var/log/munge/munged.log)" >&2; exit 1; }
fi
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi
# The benchmark's plots (bench/run.py) use matplotlib.
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install --quiet matplotlib \
    || echo "setup: matplotlib not installed; bench/run.py will skip its plots" >&2
# The fuzz targets of the test suite run under cargo fuzz.
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
# The browser test's one package (playwright-core, pinned by its lock file; it drives the
# chromium installed above and downloads no browser).
[ -d tests/browser/node_modules/playwright-core ] || npm ci --prefix tests/browser --no-audit --no-fund
cargo build --release --workspace --lib --bins --examples --features dlm-rt/bench
