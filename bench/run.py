#!/usr/bin/env python3
"""DLM benchmark suite: every workload under every configuration, side by side in one run.

    python3 bench/run.py            # full run (about 15-20 minutes), writes docs/bench/
    python3 bench/run.py --quick    # under 2 minutes, for development and the CI smoke test

Workloads: sequential read, write and read-modify-write sweeps, random 4 KiB pages, GUPS-like
random 8-byte updates, a STREAM-style triad (examples/dlmbench.rs), the Himeno-style stencil in
legacy C with static grids, rewritten by dlmcc (examples/c/himeno.c), and in Rust with #[dlm]
statics (examples/himeno.rs).
Configurations: native; DLM with 100, 50, 25 and 12.5 % of the data local; kernel swap on zram
inside a memory cgroup with the same budget (root only, set up and torn down here); and the
raw ceilings (the pager's fault path without transfers: fault, install, evict; MPI round trip). Output: a table on stdout, results.json,
results.md and PNG plots in the output directory. Nothing here asserts timings.
"""
import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = REPO / "target" / "release"
DLMBENCH = RELEASE / "examples" / "dlmbench"
HIMENO_RS = RELEASE / "examples" / "himeno"
MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
    "OMPI_MCA_pml": "ucx",
    "OMPI_MCA_pml_ucx_tls": "any",
    "OMPI_MCA_pml_ucx_devices": "any",
}
CGROUP = Path("/sys/fs/cgroup/memory/dlmbench")
ZRAM = Path("/sys/block/zram0")
RUST_HIMENO_BYTES = 14 * 129 * 129 * 257 * 4  # fixed by the example's consts


def parse_results(text):
    results = {}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            _, name, value, unit = line.split()
            results[name] = (float(value), unit)
        elif line.startswith("MFLOPS: "):
            results["MFLOPS"] = (float(line.split()[1]), "MFLOPS")
        elif line.startswith("validation (gosa): "):
            results["gosa"] = (line.split(": ")[1], "")
    return results


def median(samples):
    """One configuration's result over several rounds: the median of each numeric value
    (None if no round succeeded)."""
    samples = [r for r in samples if r]
    if not samples:
        return None
    merged = {}
    for key, (_, unit) in samples[0].items():
        values = [r[key][0] for r in samples if key in r]
        numbers = sorted(v for v in values if isinstance(v, float))
        merged[key] = (numbers[len(numbers) // 2] if numbers else values[0], unit)
    return merged


def run(cmd, env=None, cgroup=False, timeout=600):
    """Runs one measurement; returns its RESULT values, or None if it failed or timed out."""
    full_env = dict(os.environ, **(env or {}))
    if cgroup:
        cmd = ["sh", "-c", f'echo $$ > {CGROUP}/tasks && exec "$@"', "sh"] + cmd
    try:
        done = subprocess.run(cmd, env=full_env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  timeout after {timeout} s: {' '.join(map(str, cmd))}", file=sys.stderr)
        return None
    if done.returncode != 0:
        print(f"  failed ({done.returncode}): {' '.join(map(str, cmd))}\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    return parse_results(done.stdout)


class Swap:
    """Kernel swap on zram with the process in a memory cgroup (cgroup v1), as NOTES describes."""

    def __init__(self):
        self.ready = False
        self.reason = ""

    def set_up(self):
        if os.geteuid() != 0:
            self.reason = "not root"
            return
        if not (ZRAM.exists() and Path("/sys/fs/cgroup/memory").exists()):
            self.reason = "no zram0 or no cgroup v1 memory controller"
            return
        try:
            subprocess.run(["swapoff", "/dev/zram0"], capture_output=True)
            (ZRAM / "reset").write_text("1")
            (ZRAM / "disksize").write_text("8G")
            subprocess.run(["mkswap", "/dev/zram0"], check=True, capture_output=True)
            subprocess.run(["swapon", "/dev/zram0"], check=True, capture_output=True)
            CGROUP.mkdir(exist_ok=True)
            self.ready = True
        except (OSError, subprocess.CalledProcessError) as e:
            self.reason = f"set-up failed: {e}"
            self.tear_down()

    def limit(self, nbytes):
        (CGROUP / "memory.limit_in_bytes").write_text(str(nbytes))

    def tear_down(self):
        subprocess.run(["swapoff", "/dev/zram0"], capture_output=True)
        try:
            (ZRAM / "reset").write_text("1")
        except OSError:
            pass
        if CGROUP.exists():
            try:
                CGROUP.rmdir()
            except OSError:
                pass


def machine():
    mem = next(l for l in open("/proc/meminfo") if l.startswith("MemTotal")).split()[1]
    return f"{os.cpu_count()} cores, {int(mem) // (1 << 20)} GiB, kernel {platform.release()}"


def build(grid):
    """Builds the workspace, then the legacy C stencil for `grid` (its arrays are static and
    sized by macros) with dlmcc and with cc."""
    subprocess.run(["cargo", "build", "--release", "--workspace", "--lib", "--bins", "--examples"], cwd=REPO, check=True)
    out = RELEASE / "bench"
    out.mkdir(exist_ok=True)
    sizes = [f"-D{name}={n}" for name, n in zip(("MIMAX", "MJMAX", "MKMAX"), grid)]
    source = REPO / "examples/c/himeno.c"
    subprocess.run([RELEASE / "dlmcc", "-O3", *sizes, "-o", out / "himeno-c", source], check=True)
    subprocess.run(["cc", "-O3", *sizes, "-o", out / "himeno-c-native", source], check=True)
    return out


def main():
    # Ctrl-C or SIGTERM still runs the swap tear-down in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer configurations (< 2 minutes)")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where results and plots go")
    parser.add_argument("--page", default="256K", help="DLM page size (default 256K)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration this many times, interleaved, and report medians")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        mib, ratios, grid, iterations = 128, [1.0, 0.25], (65, 65, 129), "3"
        workloads = ["rmw", "rand4k", "triad"]
    else:
        mib, ratios, grid, iterations = 2048, [1.0, 0.5, 0.25, 0.125], (193, 193, 385), "10"
        workloads = ["seqread", "seqwrite", "rmw", "rand4k", "gups", "triad"]
    bin_dir = build(grid)
    page = args.page
    data_bytes = mib << 20
    himeno_c_bytes = 14 * 4 * grid[0] * grid[1] * grid[2]
    swap = Swap()
    if not args.quick:
        swap.set_up()
        if not swap.ready:
            print(f"kernel swap configurations skipped: {swap.reason}", file=sys.stderr)

    # (workload, command builder, bytes of data): each builder takes native: bool.
    def dlmbench(w):
        return lambda native: [DLMBENCH, w, str(mib)] + (["--native"] if native else [])

    def himeno_c_cmd(native):
        return [bin_dir / ("himeno-c-native" if native else "himeno-c"), iterations]

    def himeno_rs_cmd(native):
        return [HIMENO_RS, "10" if not args.quick else "3"] + (["--native"] if native else [])

    jobs = [(w, dlmbench(w), data_bytes) for w in workloads]
    jobs.append(("himeno-c", himeno_c_cmd, himeno_c_bytes))
    if not args.quick:
        jobs.append(("himeno-rs", himeno_rs_cmd, RUST_HIMENO_BYTES))

    samples = {}  # workload -> configuration -> one result per round

    def measure(name, label, *how, **options):
        print(f"{name}: {label}", file=sys.stderr)
        samples.setdefault(name, {}).setdefault(label, []).append(run(*how, **options))

    page_bytes = {"K": 1 << 10, "M": 1 << 20}.get(page[-1].upper(), 1) * int(page.rstrip("KkMm"))
    started = time.time()
    try:
        for name, cmd, nbytes in jobs:
            for _ in range(args.rounds):
                measure(name, "native", cmd(True))
                for ratio in ratios:
                    # All local: the budget holds every page, with room for each of up to 14
                    # allocations to round up to whole DLM pages.
                    budget = int(nbytes * ratio) + (16 << 20 if ratio >= 1 else 0)
                    measure(name, f"dlm{ratio * 100:g}", cmd(False), {"DLM_LOCAL_MEM": str(budget), "DLM_PAGE_SIZE": page})
                    if swap.ready and ratio in (0.5, 0.25):
                        swap.limit(budget + (16 << 20))
                        measure(name, f"swap{ratio * 100:g}", cmd(True), cgroup=True, timeout=900)
                if name == "rand4k":
                    measure(name, "dlm25-4k", cmd(False), {"DLM_LOCAL_MEM": str(data_bytes // 4), "DLM_PAGE_SIZE": "4K"})
        for _ in range(args.rounds):
            measure("ceilings", "uffd", [DLMBENCH, "uffd", str(min(mib, 1024)), str(page_bytes)])
            measure("ceilings", "mpi", ["mpirun", "-np", "2", DLMBENCH, "mpi", str(page_bytes)], MPI_ENV)
    finally:
        swap.tear_down()
    results = {name: {label: median(runs) for label, runs in row.items()} for name, row in samples.items()}
    ceilings = results.pop("ceilings")

    report = {
        "command": "python3 bench/run.py" + (" --quick" if args.quick else "") + (f" --page {page}" if page != "256K" else "")
        + (f" --rounds {args.rounds}" if args.rounds != 1 else ""),
        "rounds": args.rounds,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.time() - started),
        "data_mib": mib,
        "page": page,
        "swap": "zram + memory cgroup" if swap.ready else f"skipped: {swap.reason or 'quick mode'}",
        "results": {w: {c: v for c, v in row.items()} for w, row in results.items()},
        "ceilings": ceilings,
    }
    report["targets"] = targets(report, page_bytes)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    table = render(report)
    (out / "results.md").write_text(table)
    print(table)
    plot(report, out)


def value(report, workload, config, key=None):
    row = report["results"].get(workload, {}).get(config)
    if not row:
        return None
    key = key or ("MFLOPS" if workload.startswith("himeno") else workload)
    return row.get(key, (None,))[0]


def ratio(a, b):
    return a / b if a is not None and b else None


def targets(report, page_bytes):
    """The performance issue's targets, each with the measured value (None: not measured)."""
    v = lambda *a: value(report, *a)
    uffd = (report["ceilings"].get("uffd") or {}).get("uffd", (None,))[0]
    mpi = (report["ceilings"].get("mpi") or {}).get("mpi", (None,))[0]
    ceiling = 1 / (1 / uffd + 1 / mpi) if uffd and mpi else None
    rows = [
        ("stencil (C, dlmcc) at 25 % local, DLM / native", ">= 0.80", ratio(v("himeno-c", "dlm25"), v("himeno-c", "native")), 0.80),
        ("stencil (C, dlmcc) at 50 % local, DLM / native", ">= 0.90", ratio(v("himeno-c", "dlm50"), v("himeno-c", "native")), 0.90),
        ("sequential sweep (rmw) at 50 % local, DLM / kernel swap", ">= 10", ratio(v("rmw", "dlm50"), v("rmw", "swap50")), 10),
        ("random 4 KiB at 25 % local, DLM / kernel swap", ">= 2", ratio(v("rand4k", "dlm25"), v("rand4k", "swap25")), 2),
        ("same, DLM with 4 KiB pages (DLM_PAGE_SIZE=4K)", ">= 2", ratio(v("rand4k", "dlm25-4k"), v("rand4k", "swap25")), 2),
        ("sweep (rmw) at 25 % local / userfaultfd + MPI ceiling", ">= 0.9", ratio(v("rmw", "dlm25"), ceiling), 0.9),
        ("all data local (rmw), DLM / native", ">= 0.98", ratio(v("rmw", "dlm100"), v("rmw", "native")), 0.98),
        ("all data local (stencil C), DLM / native", ">= 0.98", ratio(v("himeno-c", "dlm100"), v("himeno-c", "native")), 0.98),
    ]
    out = [{"target": t, "goal": g, "measured": m, "met": (m >= thr) if m is not None else None} for t, g, m, thr in rows]
    latency = v("rand4k", "dlm25-4k", "rand4k_median_latency")
    out.append({"target": "random 4 KiB remote fault, median latency (µs, 4 KiB pages, 25 % local)", "goal": "<= 20",
                "measured": latency, "met": latency <= 20 if latency is not None else None})
    meta = 16 / page_bytes * 100
    out.append({"target": f"pager metadata, % of DLM memory (16 bytes per {report['page']} page)", "goal": "<= 0.1",
                "measured": meta, "met": meta <= 0.1})
    return out


def fmt(x):
    if x is None:
        return "—"
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def render(report):
    configs = []
    for row in report["results"].values():
        for c in row:
            if c not in configs:
                configs.append(c)
    lines = [f"Command: `{report['command']}`  ", f"Machine: {report['machine']}; {report['date']}; "
             f"data {report['data_mib']} MiB for the dlmbench workloads; DLM page {report['page']}; "
             f"kernel swap: {report['swap']}; took {report['seconds']} s"
             + (f"; each value is the median of {report['rounds']} interleaved rounds." if report["rounds"] > 1 else "."), ""]
    lines.append("| workload | " + " | ".join(configs) + " |")
    lines.append("|---|" + "---|" * len(configs))
    for w, row in report["results"].items():
        unit = next((u for r in row.values() if r for k, (val, u) in r.items() if k in (w, "MFLOPS")), "")
        native = value(report, w, "native")
        cells = []
        for c in configs:
            x = value(report, w, c)
            r = ratio(x, native) if c != "native" else None
            cells.append(fmt(x) + (f" ({r:.3f}×)" if r is not None else ""))
        lines.append(f"| {w} ({unit}) | " + " | ".join(cells) + " |")
    lines += ["", "Ceilings: " + ", ".join(f"{k} {fmt(val)} {u}" for c in report["ceilings"].values() if c for k, (val, u) in c.items()), ""]
    lines += ["| target | goal | measured | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        met = {True: "yes", False: "no", None: "not measured"}[t["met"]]
        lines.append(f"| {t['target']} | {t['goal']} | {fmt(t['measured'])} | {met} |")
    return "\n".join(lines) + "\n"


def plot(report, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plots (pip install matplotlib)", file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for w, row in report["results"].items():
        native = value(report, w, "native")
        points = sorted((float(c[3:]), ratio(value(report, w, c), native)) for c in row if c.startswith("dlm") and not c.endswith("k"))
        points = [(x, y) for x, y in points if y is not None]
        if points:
            line, = ax.plot([x for x, _ in points], [y for _, y in points], marker="o", label=f"{w} DLM")
            swaps = [(float(c[4:]), ratio(value(report, w, c), native)) for c in row if c.startswith("swap")]
            swaps = [(x, y) for x, y in swaps if y is not None]
            if swaps:
                ax.scatter([x for x, _ in swaps], [y for _, y in swaps], marker="x", color=line.get_color(), label=f"{w} swap")
    ax.set_xscale("log", base=2)
    ax.set_xticks([12.5, 25, 50, 100], labels=["12.5", "25", "50", "100"])
    ax.set_yscale("log")
    ax.set_xlabel("local memory, % of the data")
    ax.set_ylabel("speed relative to native (log)")
    ax.set_title(f"DLM speed vs local memory ({report['machine']})", fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "speed_vs_local_memory.png", dpi=110)

    fig, ax = plt.subplots(figsize=(7, 4))
    bars = [("native rmw", value(report, "rmw", "native"))]
    bars += [(f"DLM rmw {c[3:]}%", value(report, "rmw", c)) for c in report["results"].get("rmw", {}) if c.startswith("dlm")]
    bars += [(f"swap rmw {c[4:]}%", value(report, "rmw", c)) for c in report["results"].get("rmw", {}) if c.startswith("swap")]
    for c in report["ceilings"].values():
        bars += [(f"ceiling: {name}", x) for name, (x, unit) in (c or {}).items() if unit == "GB/s"]
    bars = [(n, x) for n, x in bars if x is not None]
    ax.barh([n for n, _ in bars], [x for _, x in bars])
    ax.set_xscale("log")
    ax.set_xlabel("GB/s (log)")
    ax.set_title("sequential read-modify-write sweep against the ceilings", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "throughput_vs_ceilings.png", dpi=110)


if __name__ == "__main__":
    main()
