#!/usr/bin/env python3
"""Random 8-byte updates of a table bigger than the budget, DLM against kernel swap, side by side.

    sudo python3 bench/updates.py [--rounds 3] [--mib 1024] [--budget 256M] [--updates 2000000]
                                  [--save DIR] [--before DIR]

bench/updates.c (fill a table in order, update it at random places, read it back) built three
ways: `native` (cc), `dlmcc` (its malloc in DLM memory) and `api` (dlmcc -DDLM_API: dlm_alloc).
Configurations, interleaved per round: native with all memory; native under kernel swap on zram
in a memory cgroup of the budget (+16 MiB, as bench/run.py); the two DLM builds with
DLM_LOCAL_MEM=budget and default settings, and with `--before DIR` the same two builds saved
earlier (`--save DIR` copies this run's builds there; dlmcc links libdlm.a statically, so a
saved build keeps the runtime it was built with). Prints medians of the update phase and of the
whole run, the ratio swap / DLM (above 1: DLM faster) and DLM's traffic (DLM_STATS_JSON).
The builds must print the same checksum, or the run fails. Needs `cargo build --release`.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # importing run.py leaves no bench/__pycache__ behind
from run import CGROUP, RELEASE, REPO, Swap  # noqa: E402

DLMCC = RELEASE / "dlmcc"
SOURCE = REPO / "bench" / "updates.c"
BUILDS = ("dlmcc", "api")


def build(directory):
    directory = Path(directory)
    exes = {"native": directory / "updates-native", "dlmcc": directory / "updates-dlmcc",
            "api": directory / "updates-api"}
    subprocess.run(["cc", "-O2", "-o", exes["native"], SOURCE], check=True)
    subprocess.run([DLMCC, "-O2", "-o", exes["dlmcc"], SOURCE], check=True)
    subprocess.run([DLMCC, "-O2", "-DDLM_API", "-o", exes["api"], SOURCE], check=True)
    return exes


def parse_size(text):
    units = {"K": 10, "M": 20, "G": 30}
    return int(text[:-1]) << units[text[-1]] if text[-1] in units else int(text)


def run(exe, args, env=None, cgroup=None):
    """One run: its phases' seconds, the whole run's, its checksum and DLM's statistics."""
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        full_env = dict(os.environ, DLM_STATS_JSON=str(stats), **(env or {}))
        cmd = [str(exe), *args]
        if cgroup:
            cmd = ["sh", "-c", f'echo $$ > {cgroup}/tasks && exec "$@"', "sh"] + cmd
        started = time.monotonic()
        out = subprocess.run(cmd, env=full_env, check=True, capture_output=True, text=True, timeout=900).stdout
        wall = time.monotonic() - started
        lines = dict(line.split(" ", 1) for line in out.splitlines())
        result = {"update": float(lines["update"]), "wall": wall, "check": lines["CHECK"]}
        if stats.exists():
            counters = json.loads(stats.read_text())
            result["fetched_gb"] = counters["bytes_fetched"] / 1e9
            result["written_gb"] = counters["bytes_written_back"] / 1e9
        return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--budget", default="256M")
    parser.add_argument("--updates", type=int, default=2000000)
    parser.add_argument("--save", help="copy this run's builds into DIR (to compare later with --before)")
    parser.add_argument("--before", help="also run the dlmcc and api builds saved in DIR")
    parser.add_argument("--no-swap", action="store_true", help="skip the kernel-swap configuration")
    args = parser.parse_args()
    budget = parse_size(args.budget)
    program_args = [str(args.mib), str(args.updates)]
    with tempfile.TemporaryDirectory() as tmp:
        exes = build(tmp)
        if args.save:
            Path(args.save).mkdir(parents=True, exist_ok=True)
            for b in BUILDS:
                shutil.copy2(exes[b], Path(args.save) / exes[b].name)
        configs = [("native", exes["native"], None)]
        if args.before:
            configs += [(f"{b} before", Path(args.before) / exes[b].name, budget) for b in BUILDS]
        configs += [(b, exes[b], budget) for b in BUILDS]
        swap = Swap()
        if not args.no_swap:
            swap.set_up()
            if not swap.ready:
                print(f"kernel swap skipped: {swap.reason}", file=sys.stderr)
        samples = {}
        try:
            for r in range(args.rounds):
                for label, exe, limit in configs:
                    print(f"round {r + 1}: {label}", file=sys.stderr)
                    env = {"DLM_LOCAL_MEM": str(limit)} if limit else None
                    samples.setdefault(label, []).append(run(exe, program_args, env))
                if swap.ready:
                    print(f"round {r + 1}: swap", file=sys.stderr)
                    swap.limit(budget + (16 << 20))
                    swap.on()
                    try:
                        samples.setdefault("swap", []).append(run(exes["native"], program_args, cgroup=CGROUP))
                    finally:
                        swap.off()
        finally:
            swap.tear_down()
    report(args, samples)


def report(args, samples):
    checks = {s["check"] for runs in samples.values() for s in runs}
    med = {label: {k: statistics.median(s[k] for s in runs) for k in runs[0] if k != "check"}
           for label, runs in samples.items()}
    swap = med.get("swap", {}).get("update")
    print(f"{args.mib} MiB, {args.updates} updates, budget {args.budget}; medians of {args.rounds}")
    print("| configuration | update s | whole run s | swap / this (update) | fetched GB | written back GB |")
    print("|---|---|---|---|---|---|")
    for label, m in med.items():
        ratio = f"{swap / m['update']:.2f}" if swap else "—"
        traffic = (f"{m['fetched_gb']:.2f} | {m['written_gb']:.2f}" if "fetched_gb" in m else "— | —")
        print(f"| {label} | {m['update']:.2f} | {m['wall']:.2f} | {ratio} | {traffic} |")
        rounds = ", ".join(f"{s['update']:.2f}" for s in samples[label])
        print(f"  {label}, update s per round: {rounds}", file=sys.stderr)
    if len(checks) != 1:
        sys.exit(f"checksums differ: {sorted(checks)}")


if __name__ == "__main__":
    main()
