#!/usr/bin/env python3
"""Replacement on cyclic sweeps: DLM's traffic against the optimum (Belady) for the same faults.

    python3 bench/loops.py                    # stencil, triad and rmw at 25 % and 50 % local
    python3 bench/loops.py --only rmw --ratios 0.25
    python3 bench/loops.py --baseline DIR     # the optimum also from another build's traces
    python3 bench/loops.py --compare RELEASE --rounds 3   # speed against another build, ABBA

Each workload runs once per budget with DLM_STATS_JSON (DLM's bytes fetched and written back)
and DLMBENCH_FAULT_TRACE (the page of every missing fault, a build with the `bench` feature).
The optimum is Belady's replacement over that page sequence with the budget's pages: every
fault on a page seen before that it cannot keep is a fetch of a whole page. A policy that keeps
pages resident sees fewer faults, so its own trace under-counts the program's references and
its optimum is a lower bound; with --baseline the larger of the two optima is used (the
baseline's trace, from FIFO replacement, misses the fewest references). Traffic is
deterministic; the timings printed are not, on a busy machine. With --compare (another
build's release directory, e.g. a worktree of an earlier commit built with the same features),
each workload runs natively once per round and under both builds in ABBA order; the speeds
printed are medians, with this build's over the other's and over native.

The dlmcc stencil (examples/c/himeno.c) and dlmbench must be built first, as bench/run.py
does: cargo build --release --workspace --lib --bins --examples --features dlm-rt/bench.
"""

import argparse
import os
import heapq
import json
import statistics
import subprocess
import sys
import tempfile
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import RELEASE, REPO, parse_results  # noqa: E402

GRID = (193, 193, 385)


def belady_fetches(trace, capacity):
    """Fetches of Belady's optimal replacement over the page sequence `trace` with room for
    `capacity` pages: misses on pages referenced before (a first touch fetches nothing)."""
    pages = [p for i, p in enumerate(trace) if i == 0 or p != trace[i - 1]]
    never = len(pages)
    next_use = [never] * len(pages)
    last = {}
    for i in range(len(pages) - 1, -1, -1):
        next_use[i] = last.get(pages[i], never)
        last[pages[i]] = i
    resident = {}  # page -> its next use
    heap = []  # (-next use, page): the resident page used farthest ahead first
    seen = set()
    fetches = 0
    for i, page in enumerate(pages):
        if page not in resident:
            if page in seen:
                fetches += 1
            seen.add(page)
            if len(resident) >= capacity:
                while True:
                    far, victim = heapq.heappop(heap)
                    if resident.get(victim) == -far:
                        del resident[victim]
                        break
        resident[page] = next_use[i]
        heapq.heappush(heap, (-next_use[i], page))
    return fetches


def read_trace(path):
    trace = array("I")
    trace.frombytes(Path(path).read_bytes())
    return trace.tolist()


# dlmbench's workloads that are no loops: with --compare --only, to check the loop policy
# costs them nothing.
OTHERS = ("seqread", "seqwrite", "rand4k", "gups", "copy", "sparse")


def workloads(release, mib, iterations, native=False, others=()):
    dlmbench = [release / "examples" / "dlmbench"]
    flag = ["--native"] if native else []
    himeno = release / "bench" / ("himeno-native" if native else "himeno-c")
    loops = {
        "stencil": ([himeno, str(iterations)], 14 * 4 * GRID[0] * GRID[1] * GRID[2]),
        "triad": (dlmbench + ["triad", str(mib)] + flag, mib << 20),
        "rmw": (dlmbench + ["rmw", str(mib)] + flag, mib << 20),
    }
    return loops | {w: (dlmbench + [w, str(mib)] + flag, mib << 20) for w in others}


def build_stencil(release, native=False):
    out = release / "bench"
    out.mkdir(exist_ok=True)
    sizes = [f"-D{name}={n}" for name, n in zip(("MIMAX", "MJMAX", "MKMAX"), GRID)]
    compiler, name = (["cc"], "himeno-native") if native else ([release / "dlmcc"], "himeno-c")
    subprocess.run([*compiler, "-O3", *sizes, "-o", out / name, REPO / "examples/c/himeno.c"], check=True)


def measure(name, cmd, budget, traces):
    trace_path = traces / f"{name}-{budget}.trace"
    with tempfile.NamedTemporaryFile(suffix=".json") as stats:
        env = {"DLM_LOCAL_MEM": str(budget), "DLM_STATS_JSON": stats.name, "DLMBENCH_FAULT_TRACE": str(trace_path)}
        done = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True,
                              timeout=1800)
        if done.returncode != 0:
            sys.exit(f"{name} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        counters = json.loads(Path(stats.name).read_text())
    return counters, parse_results(done.stdout), trace_path


def speed_of(results):
    return next(((v, u) for k, (v, u) in results.items() if u in ("GB/s", "MB/s", "MFLOPS", "GFLOP/s", "Mupdates/s")), (0, ""))


def compare(args, traces):
    """Speeds of this build, another one (`args.compare`) and native, ABBA, medians."""
    other = Path(args.compare).resolve()
    build_stencil(other)
    build_stencil(RELEASE, native=True)
    others = [w for w in args.only or [] if w in OTHERS]
    mine = workloads(RELEASE, args.mib, args.iterations, others=others)
    theirs = workloads(other, args.mib, args.iterations, others=others)
    natives = workloads(RELEASE, args.mib, args.iterations, native=True, others=others)
    for name, (cmd, nbytes) in mine.items():
        if args.only and name not in args.only:
            continue
        native = [speed_of(parse_results(subprocess.run(natives[name][0], capture_output=True, text=True,
                                                        check=True).stdout))[0] for _ in range(args.rounds)]
        for ratio in (float(r) for r in args.ratios.split(",")):
            budget = int(nbytes * ratio)
            speeds, unit = {"this": [], "other": []}, ""
            for round in range(args.rounds):
                order = ["other", "this"] if round % 2 == 0 else ["this", "other"]
                for which in order:
                    run = cmd if which == "this" else theirs[name][0]
                    speed, unit = speed_of(measure(name, run, budget, traces)[1])
                    speeds[which].append(speed)
            med = {k: statistics.median(v) for k, v in speeds.items()}
            print(f"{name} {ratio * 100:g}%: this {med['this']:.4g} other {med['other']:.4g} native "
                  f"{statistics.median(native):.4g} {unit}; this/other {med['this'] / med['other']:.3f}, "
                  f"this/native {med['this'] / statistics.median(native):.3f}; per round this {speeds['this']} "
                  f"other {speeds['other']}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="a workload (stencil, triad, rmw; with --compare also "
                        + ", ".join(OTHERS) + "); repeatable")
    parser.add_argument("--ratios", default="0.25,0.5", help="local budgets as fractions of the data")
    parser.add_argument("--mib", type=int, default=1024, help="data of triad and rmw")
    parser.add_argument("--iterations", type=int, default=3, help="the stencil's iterations")
    parser.add_argument("--traces", default=None, help="keep the traces in this folder")
    parser.add_argument("--baseline", help="a --traces folder of another build: its optimum counts too")
    parser.add_argument("--json", help="write the rows here")
    parser.add_argument("--compare", help="another build's release directory: speeds side by side")
    parser.add_argument("--rounds", type=int, default=3, help="ABBA rounds with --compare")
    args = parser.parse_args()
    traces = Path(args.traces or tempfile.mkdtemp(prefix="dlm-loops-"))
    traces.mkdir(parents=True, exist_ok=True)
    if args.compare:
        return compare(args, traces)
    build_stencil(RELEASE)
    rows = []
    for name, (cmd, nbytes) in workloads(RELEASE, args.mib, args.iterations).items():
        if args.only and name not in args.only:
            continue
        for ratio in (float(r) for r in args.ratios.split(",")):
            budget = int(nbytes * ratio)
            counters, results, trace_path = measure(name, cmd, budget, traces)
            page = counters["page_size"]
            capacity = counters["local_budget_bytes"] // page
            optimum = belady_fetches(read_trace(trace_path), capacity) * page
            if args.baseline and (Path(args.baseline) / trace_path.name).exists():
                baseline = read_trace(Path(args.baseline) / trace_path.name)
                optimum = max(optimum, belady_fetches(baseline, capacity) * page)
            speed = speed_of(results)
            row = {"workload": name, "local": ratio, "page": page, "fetched": counters["bytes_fetched"],
                   "written_back": counters["bytes_written_back"], "optimum": optimum,
                   "ratio": counters["bytes_fetched"] / optimum if optimum else None,
                   "speed": speed[0], "unit": speed[1], "check": results.get("CHECK", results.get("gosa", ("",)))[0]}
            rows.append(row)
            print(f"{name} {ratio * 100:g}%: fetched {row['fetched'] / 2**30:.3f} GiB, written back "
                  f"{row['written_back'] / 2**30:.3f} GiB, optimum {optimum / 2**30:.3f} GiB, ratio "
                  f"{row['ratio']:.3f}; {speed[0]} {speed[1]}; check {row['check']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
