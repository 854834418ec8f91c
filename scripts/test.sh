#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the end-to-end tests (real C and Rust programs
# paged through userfaultfd to MPI memory servers, under mpirun and standalone).
set -euo pipefail
cd "$(dirname "$0")/.."
# The end-to-end tests use dlmcc, libdlm.a and the examples from target/release.
cargo build --release --workspace --lib --bins --examples
cargo test --release --workspace
