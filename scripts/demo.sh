#!/usr/bin/env bash
# The main job: an unchanged C program built with dlmcc and a Rust #[dlm] program, each with
# 1 GiB of data through a 256 MiB local budget, paging to the two local memory servers named in
# memfile.example. Both are started without mpirun: they spawn their servers themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/demo
release=$(scripts/release-dir)
export DLM_MEMFILE=memfile.example DLM_LOCAL_MEM=256M DLM_STATS=1
echo "== C: dlmcc examples/c/legacy_grid.c (a 1 GiB static array, no DLM calls), through 256 MiB"
"$release/dlmcc" -O2 --dlm-report examples/c/legacy_grid.c -o target/demo/legacy_grid
target/demo/legacy_grid | tee target/demo/legacy_grid.out
echo "== the same C program built with cc, all in local memory: the output must be the same"
cc -O2 examples/c/legacy_grid.c -o target/demo/legacy_grid_native
target/demo/legacy_grid_native | diff - target/demo/legacy_grid.out && echo "same output"
echo "== Rust: cargo run --release --example attributes (#[dlm] arrays, 1.06 GiB), through 256 MiB"
cargo run --release -q --example attributes | tee target/demo/attributes.out
echo "== the same Rust computation in ordinary memory: the digest must be the same"
cargo run --release -q --example attributes -- --native | diff - target/demo/attributes.out && echo "same output"
