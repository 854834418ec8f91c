#!/usr/bin/env bash
# The main job: a C program built with dlmcc and a Rust program, each with 1 GiB of data
# through a 256 MiB local budget, paging to two local memory servers named in memfile.example.
# Both are started without mpirun: they spawn their servers themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/demo
export DLM_MEMFILE=memfile.example DLM_LOCAL_MEM=256M DLM_STATS=1
echo "== C: dlmcc examples/c/bigarray.c, 1 GiB through 256 MiB"
target/release/dlmcc -O2 examples/c/bigarray.c -o target/demo/bigarray
target/demo/bigarray 1024
echo "== Rust: cargo run --release --example bigsweep, 1 GiB through 256 MiB"
cargo run --release -q --example bigsweep -- 1024
