#!/usr/bin/env python3
"""The cost of the small-block heap with all data local: bench/small_blocks.c built three ways
and run alternately, side by side in one run.

    python3 bench/small_blocks.py [--rounds 7] [--n 160] [--pool 200000] [--churn 40]

Builds: `native` (cc, glibc's malloc), `mimalloc` (cc, with the same mimalloc source the runtime
vendors linked in as the process's malloc: what the allocator alone changes) and `dlmcc` (every
block in DLM memory; DLM_LOCAL_MEM far above the data, so nothing pages: every DLM page is first
touched, zero-filled by the pager, and stays). Prints, per phase (as the program times itself,
from the start of main; DLM's own start before main shows in the wall time of the whole run),
the median seconds of each build and the ratios dlmcc / native and dlmcc / mimalloc (what DLM
itself adds), with the spread of the per-round ratios. Nothing here asserts timings; the builds
must print the same checksum, or the run fails. Needs `cargo build --release --workspace`.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # importing run.py leaves no bench/__pycache__ behind
from run import RELEASE, REPO  # noqa: E402

DLMCC = RELEASE / "dlmcc"
SOURCE = REPO / "bench" / "small_blocks.c"
PHASES = ["build", "churn", "sweep", "free", "total"]


def mimalloc_source():
    """The mimalloc sources libmimalloc-sys built (its build script names the include dir)."""
    for output in sorted((RELEASE / "build").glob("libmimalloc-sys-*/output")):
        for line in output.read_text().splitlines():
            if line.startswith("cargo:INCLUDE_DIR="):
                return Path(line.split("=", 1)[1]).parent
    sys.exit("no libmimalloc-sys build output: run `cargo build --release --workspace` first")


def build(directory):
    directory = Path(directory)
    native, with_mimalloc, dlm = directory / "native", directory / "mimalloc", directory / "dlm"
    subprocess.run(["cc", "-O2", "-o", native, SOURCE], check=True)
    mi = mimalloc_source()
    # As libmimalloc-sys compiles it, plus MI_MALLOC_OVERRIDE: malloc, free & co. are mimalloc's.
    subprocess.run(["cc", "-O2", "-DMI_MALLOC_OVERRIDE", "-DMI_DEBUG=0", "-DMI_BUILD_RELEASE", "-DNDEBUG",
                    "-ftls-model=initial-exec", f"-I{mi / 'include'}", f"-I{mi / 'src'}", "-o", with_mimalloc,
                    SOURCE, mi / "src" / "static.c", "-lpthread"], check=True)
    subprocess.run([DLMCC, "-O2", "-o", dlm, SOURCE], check=True)
    return {"native": native, "mimalloc": with_mimalloc, "dlmcc": dlm}


def run(exe, args, env):
    started = time.monotonic()
    out = subprocess.run([exe, *args], env=env, check=True, capture_output=True, text=True).stdout
    wall = time.monotonic() - started
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    times = {phase: float(lines[phase]) for phase in PHASES}
    times["wall"] = wall
    return lines["checksum"], times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--n", type=int, default=160, help="grid size (three n^3 grids of doubles)")
    parser.add_argument("--pool", type=int, default=200000, help="blocks in the churn pool")
    parser.add_argument("--churn", type=int, default=40, help="churn rounds over the pool")
    options = parser.parse_args()
    if not DLMCC.is_file():
        sys.exit(f"{DLMCC} is missing: run `cargo build --release --workspace` first")
    args = [str(options.n), str(options.pool), str(options.churn)]
    env = dict(os.environ, DLM_LOCAL_MEM="8G")
    builds = None
    results = {"native": [], "mimalloc": [], "dlmcc": []}
    with tempfile.TemporaryDirectory() as directory:
        builds = build(directory)
        for round_ in range(options.rounds):
            for name, exe in builds.items():
                checksum, times = run(exe, args, env)
                results[name].append(times)
                if name == "native":
                    expected = checksum
                elif checksum != expected:
                    sys.exit(f"round {round_ + 1}: checksums differ: native {expected}, {name} {checksum}")
            print(f"round {round_ + 1}: total " + ", ".join(f"{name} {results[name][-1]['total']:.3f} s"
                                                          for name in builds), flush=True)
    print(f"\n{'phase':6} {'native s':>9} {'mimalloc s':>10} {'dlmcc s':>8}   {'dlmcc/native':>21}"
          f"   {'dlmcc/mimalloc':>21}")
    for phase in PHASES + ["wall"]:
        median = {name: statistics.median(r[phase] for r in results[name]) for name in results}
        cells = []
        for base in ("native", "mimalloc"):
            ratios = [d[phase] / b[phase] for d, b in zip(results["dlmcc"], results[base]) if b[phase] > 0]
            cells.append(f"{median['dlmcc'] / median[base]:5.3f} ({min(ratios):.2f}..{max(ratios):.2f})")
        print(f"{phase:6} {median['native']:9.3f} {median['mimalloc']:10.3f} {median['dlmcc']:8.3f}   "
              f"{cells[0]:>21}   {cells[1]:>21}")

if __name__ == "__main__":
    main()
