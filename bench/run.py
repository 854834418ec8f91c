#!/usr/bin/env python3
"""DLM benchmark suite: every workload under every configuration, side by side in one run.

    python3 bench/run.py            # full run (half an hour or so), writes docs/bench/
    python3 bench/run.py --quick    # under 2 minutes, for development and the CI smoke test

Workloads: sequential read, write and read-modify-write sweeps, random 4 KiB pages, GUPS-like
random 8-byte updates, STREAM copy and triad, a CG-like sparse matrix-vector kernel
(examples/dlmbench.rs), the Himeno-style stencil in legacy C with static grids, rewritten by
dlmcc (examples/c/himeno.c), and in Rust with #[dlm] statics (examples/himeno.rs).
Configurations: native; DLM with 100, 50, 25 and 12.5 % of the data local; kernel swap on zram
inside a memory cgroup with the same budget (root only, set up and torn down here).
Ceilings: the machine's own (bench/ceilings.c: memcpy, UFFDIO_MOVE of huge and of 4 KiB pages,
the copy between two processes), the pager's fault path without transfers (fault, install,
evict) at the DLM page size in effect, and an MPI round trip at that size and at 2 MiB.
Output: a table on stdout, results.json, results.md and PNG plots in the output directory.
Nothing here asserts timings; the sparse kernel's checksum must be the same in every
configuration, or the run fails.
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
# Where cargo put the release build (CARGO_TARGET_DIR may move it away from ./target).
RELEASE = Path(subprocess.run([REPO / "scripts" / "release-dir"], check=True, capture_output=True,
                              text=True).stdout.strip())
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
HUGE_PAGE = 2 << 20
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
        elif line.startswith("CHECK "):
            results["CHECK"] = (line.split()[1], "")
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
    """Kernel swap on zram with the process in a memory cgroup (cgroup v1), as NOTES describes.

    Swap is on only while a swap configuration runs: with swap on, the kernel may swap DLM
    pages out too, and DLM then copies pages instead of moving them (docs/DESIGN.md)."""

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
            CGROUP.mkdir(exist_ok=True)
            self.ready = True
        except (OSError, subprocess.CalledProcessError) as e:
            self.reason = f"set-up failed: {e}"
            self.tear_down()

    def limit(self, nbytes):
        (CGROUP / "memory.limit_in_bytes").write_text(str(nbytes))

    def on(self):
        subprocess.run(["swapon", "/dev/zram0"], check=True, capture_output=True)

    def off(self):
        subprocess.run(["swapoff", "/dev/zram0"], capture_output=True)

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
    sized by macros) with dlmcc and with cc, and the physical ceilings with cc."""
    subprocess.run(["cargo", "build", "--release", "--workspace", "--lib", "--bins", "--examples", "--features", "dlm-rt/bench"], cwd=REPO, check=True)
    out = RELEASE / "bench"
    out.mkdir(exist_ok=True)
    sizes = [f"-D{name}={n}" for name, n in zip(("MIMAX", "MJMAX", "MKMAX"), grid)]
    source = REPO / "examples/c/himeno.c"
    subprocess.run([RELEASE / "dlmcc", "-O3", *sizes, "-o", out / "himeno-c", source], check=True)
    subprocess.run(["cc", "-O3", *sizes, "-o", out / "himeno-c-native", source], check=True)
    build_c_tool(out, "ceilings")
    return out


def build_c_tool(out, name):
    """Compiles bench/NAME.c, a measurement without DLM (the physical ceilings, the TCP probe
    of bench/cluster.py), with cc into out/NAME; returns its path."""
    target = out / name
    subprocess.run(["cc", "-O2", "-Wall", "-o", target, REPO / "bench" / f"{name}.c"], check=True)
    return target


def size_text(nbytes):
    """2097152 -> "2M", as DLM_PAGE_SIZE takes it."""
    for suffix, shift in (("G", 30), ("M", 20), ("K", 10)):
        if nbytes % (1 << shift) == 0:
            return f"{nbytes >> shift}{suffix}"
    return str(nbytes)


def page_in_effect(samples):
    """The DLM page size (bytes) that the DLM runs reported (dlmbench prints the runtime's)."""
    for row in samples.values():
        for label, runs in row.items():
            for r in runs:
                if r and label.startswith("dlm") and "page_size" in r:
                    return int(r["page_size"][0])
    return None


def checksum_mismatches(samples):
    """Every run's CHECK against the native runs' of the same workload: results computed in
    DLM memory (or under swap) must be the same bit for bit."""
    problems = []
    for name, row in samples.items():
        expected = {r["CHECK"][0] for r in row.get("native", []) if r and "CHECK" in r}
        if len(expected) > 1:
            problems.append(f"{name}: native runs disagree: {sorted(expected)}")
        for label, runs in row.items():
            for r in runs:
                if r and "CHECK" in r and expected and r["CHECK"][0] not in expected:
                    problems.append(f"{name} {label}: CHECK {r['CHECK'][0]}, native {min(expected)}")
    return problems


def main():
    # Ctrl-C or SIGTERM still runs the swap tear-down in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer configurations (< 2 minutes)")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where results and plots go")
    parser.add_argument("--page", help="DLM page size (DLM_PAGE_SIZE; default: the runtime's)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration this many times, interleaved, and report medians")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Quick sizes are small, but at 25 % local still leave room for more 2 MiB pages than the
    # stencil's inner loop touches arrays (14): with fewer, every fault evicts a page it needs.
    if args.quick:
        mib, ratios, grid, iterations, ceiling_mib = 128, [1.0, 0.25], (129, 129, 257), "3", 64
        workloads = ["rmw", "rand4k", "copy", "triad", "sparse"]
    else:
        mib, ratios, grid, iterations, ceiling_mib = 2048, [1.0, 0.5, 0.25, 0.125], (193, 193, 385), "10", 512
        workloads = ["seqread", "seqwrite", "rmw", "rand4k", "gups", "copy", "triad", "sparse"]
    bin_dir = build(grid)
    page_env = {"DLM_PAGE_SIZE": args.page} if args.page else {}
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

    started = time.time()
    try:
        for name, cmd, nbytes in jobs:
            for _ in range(args.rounds):
                measure(name, "native", cmd(True))
                for ratio in ratios:
                    # All local: a budget the data cannot fill whatever the page size (each of
                    # up to 14 allocations rounds up to whole DLM pages).
                    budget = 2 * nbytes if ratio >= 1 else int(nbytes * ratio)
                    measure(name, f"dlm{ratio * 100:g}", cmd(False), {"DLM_LOCAL_MEM": str(budget), **page_env})
                    if swap.ready and ratio in (0.5, 0.25):
                        swap.limit(budget + (16 << 20))
                        swap.on()
                        try:
                            measure(name, f"swap{ratio * 100:g}", cmd(True), cgroup=True, timeout=900)
                        finally:
                            swap.off()
        page_bytes = page_in_effect(samples)
        for _ in range(args.rounds):
            measure("ceilings", "physical", [bin_dir / "ceilings", str(ceiling_mib)])
            if page_bytes:
                page = size_text(page_bytes)
                measure("ceilings", f"uffd {page}", [DLMBENCH, "uffd", str(min(mib, 1024)), str(page_bytes)])
                measure("ceilings", f"mpi {page}", ["mpirun", "-np", "2", DLMBENCH, "mpi", str(page_bytes)], MPI_ENV)
            if page_bytes != HUGE_PAGE:
                measure("ceilings", "mpi 2M", ["mpirun", "-np", "2", DLMBENCH, "mpi", str(HUGE_PAGE)], MPI_ENV)
    finally:
        swap.tear_down()
    mismatches = checksum_mismatches(samples)
    results = {name: {label: median(runs) for label, runs in row.items()} for name, row in samples.items()}
    ceilings = results.pop("ceilings")

    report = {
        "command": "python3 bench/run.py" + (" --quick" if args.quick else "") + (f" --page {args.page}" if args.page else "")
        + (f" --rounds {args.rounds}" if args.rounds != 1 else ""),
        "rounds": args.rounds,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.time() - started),
        "data_mib": mib,
        "page": size_text(page_bytes) if page_bytes else "unknown (no DLM run reported it)",
        "swap": "zram + memory cgroup" if swap.ready else f"skipped: {swap.reason or 'quick mode'}",
        "results": {w: {c: v for c, v in row.items()} for w, row in results.items()},
        "ceilings": ceilings,
        "checksum_mismatches": mismatches,
    }
    report["targets"] = targets(report)
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    table = render(report)
    (out / "results.md").write_text(table)
    print(table)
    plot(report, out)
    if mismatches:
        sys.exit("checksums differ from native:\n  " + "\n  ".join(mismatches))


def value(report, workload, config, key=None):
    row = report["results"].get(workload, {}).get(config)
    if not row:
        return None
    key = key or ("MFLOPS" if workload.startswith("himeno") else workload)
    return row.get(key, (None,))[0]


def ratio(a, b):
    return a / b if a is not None and b else None


def ceiling(report, label, key):
    return ((report["ceilings"].get(label) or {}).get(key) or (None,))[0]


def targets(report):
    """The performance issue's targets (#11), each with the measured value (None: not measured)."""
    v = lambda *a: value(report, *a)
    all_local = [ratio(v(w, "dlm100"), v(w, "native")) for w in ("rmw", "himeno-c")]
    rows = [
        ("C stencil (dlmcc, himeno-c) at 25 % local / native", ">=", 0.80,
         ratio(v("himeno-c", "dlm25"), v("himeno-c", "native"))),
        ("same at 50 % local", ">=", 0.90, ratio(v("himeno-c", "dlm50"), v("himeno-c", "native"))),
        ("STREAM triad at 25 % local / native", ">=", 0.50, ratio(v("triad", "dlm25"), v("triad", "native"))),
        ("random 4 KiB touches (rand4k) at 25 % local, default settings / kernel swap at 25 %", ">=", 2,
         ratio(v("rand4k", "dlm25"), v("rand4k", "swap25"))),
        ("sparse at 25 % local / kernel swap at 25 %", ">=", 1, ratio(v("sparse", "dlm25"), v("sparse", "swap25"))),
        ("sequential rmw at 50 % local / kernel swap at 50 %", ">=", 10, ratio(v("rmw", "dlm50"), v("rmw", "swap50"))),
        ("paging throughput (rmw at 25 %) / transport ceiling (copy_between_processes)", ">=", 0.8,
         ratio(v("rmw", "dlm25"), ceiling(report, "physical", "copy_between_processes"))),
        ("all data local (rmw and himeno-c) / native, the lower of the two", ">=", 0.98,
         min(all_local) if None not in all_local else None),
        ("random remote 4 KiB fault median latency (µs, default settings, 25 % local)", "<=", 15,
         v("rand4k", "dlm25", "rand4k_median_latency")),
    ]
    met = {">=": lambda m, goal: m >= goal, "<=": lambda m, goal: m <= goal}
    return [{"target": t, "goal": f"{op} {goal:g}", "measured": m, "met": met[op](m, goal) if m is not None else None}
            for t, op, goal, m in rows]


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
    lines += ["", "Ceilings: " + "; ".join(f"{label}: " + ", ".join(f"{k} {fmt(val)} {u}" for k, (val, u) in c.items())
                                          for label, c in report["ceilings"].items() if c), ""]
    if report["checksum_mismatches"]:
        lines += ["Checksums differ from native: " + "; ".join(report["checksum_mismatches"]), ""]
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
        points = sorted((float(c[3:]), ratio(value(report, w, c), native)) for c in row if c.startswith("dlm"))
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
    for label, c in report["ceilings"].items():
        bars += [(f"ceiling ({label}): {name}", x) for name, (x, unit) in (c or {}).items() if unit == "GB/s"]
    bars = [(n, x) for n, x in bars if x is not None]
    ax.barh([n for n, _ in bars], [x for _, x in bars])
    ax.set_xscale("log")
    ax.set_xlabel("GB/s (log)")
    ax.set_title("sequential read-modify-write sweep against the ceilings", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "throughput_vs_ceilings.png", dpi=110)


if __name__ == "__main__":
    main()
