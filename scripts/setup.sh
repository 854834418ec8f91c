#!/usr/bin/env bash
# Installs what DLM needs on Debian (Open MPI, libclang for the bindings, a C compiler), writes
# DLM's defaults into Open MPI's own parameter file (scripts/mpi-defaults.sh: a plain mpirun
# then ends within seconds of losing a host) and builds the workspace in release mode. Needs
# root (or sudo) for apt-get and that file.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(build-essential pkg-config libopenmpi-dev openmpi-bin libclang-dev clang iproute2 groff-base man-db)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
if ((${#missing[@]})); then
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
$SUDO scripts/mpi-defaults.sh system
if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install Rust (https://rustup.rs) and run this again" >&2
    exit 1
fi
# The benchmark's plots (bench/run.py) use matplotlib.
python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install --quiet matplotlib \
    || echo "setup: matplotlib not installed; bench/run.py will skip its plots" >&2
# The fuzz targets of the test suite run under cargo fuzz.
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo build --release --workspace --lib --bins --examples --features dlm-rt/bench
