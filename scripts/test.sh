#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the end-to-end tests (real C and Rust programs
# paged through userfaultfd to MPI memory servers, under mpirun and standalone).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target
# Style first, as CI enforces it: formatting, and clippy with warnings as errors (the
# workspace lints include clippy::undocumented_unsafe_blocks), over every crate, target and feature.
cargo fmt --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
# A short fuzzing budget for the memfile and option parsers: any input must parse or be
# rejected, never panic. (cargo fuzz uses nightly-only flags; RUSTC_BOOTSTRAP allows them.)
for target in memfile options; do
    if ! (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="${FUZZ_SECONDS:-20}") \
        >"target/fuzz-$target.log" 2>&1; then
        tail -40 "target/fuzz-$target.log"
        echo "fuzz target $target failed (log: target/fuzz-$target.log)" >&2
        exit 1
    fi
    echo "fuzz $target: $(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "target/fuzz-$target.log")"
done
# The end-to-end tests use dlmcc, libdlm.a and the examples from target/release.
cargo build --release --workspace --lib --bins --examples --features dlm-rt/bench
# The benchmark suite's quick mode, as a smoke test: it must run; its timings are not checked.
python3 bench/run.py --quick --out target/bench-quick >target/bench-quick.log 2>&1 \
    || { tail -40 target/bench-quick.log; echo "bench/run.py --quick failed" >&2; exit 1; }
echo "benchmark quick mode: ok (table in target/bench-quick/results.md)"
python3 bench/pool.py --quick --out target/bench-quick >target/bench-pool-quick.log 2>&1 \
    || { tail -40 target/bench-pool-quick.log; echo "bench/pool.py --quick failed" >&2; exit 1; }
echo "pool benchmark quick mode: ok (table in target/bench-quick/pool.md)"
cargo test --release --workspace
