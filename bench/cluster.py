#!/usr/bin/env python3
"""DLM over the emulated cluster: paging to memory servers on other hosts, against the links' ceiling.

    sudo python3 bench/cluster.py                  # links shaped to 1gbit, 512 MiB of data
    sudo python3 bench/cluster.py --rate none      # unshaped links (bare veth pairs)
    sudo python3 bench/cluster.py --quick          # small sizes, under 2 minutes
    sudo python3 bench/cluster.py --rounds 3       # every configuration 3 times, interleaved; medians

Root only: it brings up three emulated hosts, dlmh1..3, with `scripts/cluster.sh up 3` (network
namespaces on a bridge; this host is 10.213.0.254 there) and always takes them down again, also
when a measurement fails or the run is interrupted. It does not start while a cluster is already
up, since someone else may be using it.

Measured in one run, each configuration `--rounds` times, interleaved:
- link ceilings: one TCP stream (bench/tcp_probe.c; the receiver's rate) from dlmh1 to here
  (the way fetched pages go), from here to dlmh1, and three at once from dlmh1..3 to here
  (their sum: the ceiling of the 3-server row);
- paging throughput: `dlmbench fetch` (sequential reads of data 4 times the local budget; the
  bytes fetched per second of its timed passes) with its memory servers (a) on this host,
  (b) on dlmh1, (c) on dlmh1..3;
- mixed traffic: the sequential read-modify-write sweep (`dlmbench rmw`) in the same three
  placements: the workload's GB/s, the paging throughput (bytes fetched + written back, from
  DLM_STATS_JSON, over the process's wall time) and the fetched bytes alone over that time;
- the C stencil (examples/c/himeno.c built by dlmcc, as bench/run.py builds it) at 25 % local
  with its server here and on dlmh1.
Output: a table on stdout, cluster.json and cluster.md in the output directory (docs/bench/).
Nothing here asserts timings; a measurement that fails is shown as "—" and makes the exit
status 1.
"""
import argparse
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True  # importing run.py leaves no bench/__pycache__ behind
sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DLMBENCH, REPO, build, build_c_tool, fmt, machine, median, ratio, run  # noqa: E402

CLUSTER = REPO / "scripts" / "cluster.sh"
HOSTS = ["dlmh1", "dlmh2", "dlmh3"]
HERE_ADDRESS = "10.213.0.254"  # this host on the cluster's bridge (scripts/cluster.sh)
LOCAL_FRACTION = 0.25
QUICK_GRID, FULL_GRID = (129, 129, 257), (193, 193, 385)  # bench/run.py's grids
TIMEOUT = 1800  # seconds for one program: shaped links can make a run slow
THREE_STREAMS = "dlmh1..3 → here (3 streams, sum)"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (under 2 minutes)")
    parser.add_argument("--rate", default="1gbit",
                        help="each emulated host's link rate, tc syntax (500mbit, 10gbit...), or none: unshaped")
    parser.add_argument("--mib", type=int, help="data of the rmw sweep, MiB (default 512; 128 with --quick)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run every configuration this many times, interleaved, and report medians")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where cluster.json and cluster.md go")
    return parser.parse_args()


def require_root():
    if os.geteuid() != 0:
        sys.exit("bench/cluster.py needs root: it makes an emulated cluster of network namespaces "
                 "(scripts/cluster.sh); run it with sudo")


def cluster_in_use():
    """`scripts/cluster.sh status` if an emulated cluster (any dlmhN namespace) is up, else None."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    if not any(re.fullmatch(r"dlmh[0-9]+", line.split()[0]) for line in listed.splitlines() if line.strip()):
        return None
    return subprocess.run([CLUSTER, "status"], capture_output=True, text=True).stdout.strip()


def exported(text):
    """The variables that the `export A=1 B=2` lines of `text` set."""
    env = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            env.update(word.split("=", 1) for word in words[1:])
    return env


def cluster_up(rate):
    """Brings up dlmh1..3, links limited to `rate` (None: unshaped); returns the environment
    that `cluster.sh up` says to export (Open MPI's launch agent and its settings)."""
    cmd = [CLUSTER, "up", str(len(HOSTS))] + (["--rate", rate] if rate else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/cluster.sh up failed ({done.returncode}):\n{done.stderr.strip()}")
    print(done.stdout.splitlines()[0], file=sys.stderr)
    return exported(done.stdout)


def cluster_down():
    """`scripts/cluster.sh down`, which a second Ctrl-C or SIGTERM cannot interrupt (the script
    inherits the ignored signals too); says so if something was left."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if subprocess.run([CLUSTER, "down"]).returncode != 0:
            print("scripts/cluster.sh down failed: see `scripts/cluster.sh status`", file=sys.stderr)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def in_host(host, cmd):
    """`cmd` run on emulated host `host` (in its network namespace), or here if host is None."""
    return (["ip", "netns", "exec", host] if host else []) + [str(word) for word in cmd]


def listening_port(server):
    """The port a `tcp_probe serve 0` prints once it listens (None if it ended instead)."""
    words = server.stdout.readline().split()
    return int(words[1]) if words[:1] == ["listening"] else None


def tcp_streams(probe, streams, mib):
    """One TCP stream of `mib` MiB per (receiver's host, sender's host, address the sender
    connects to) in `streams`, all at once; returns the sum of the receivers' GB/s as
    {"tcp_stream": (GB/s, unit)}, or None if a stream failed."""
    servers, senders = [], []
    try:
        for receiver, _, _ in streams:
            servers.append(subprocess.Popen(in_host(receiver, [probe, "serve", 0]), stdout=subprocess.PIPE, text=True))
        ports = [listening_port(server) for server in servers]
        if None in ports:
            raise RuntimeError("a receiver did not start")
        for (_, sender, address), port in zip(streams, ports):
            senders.append(subprocess.Popen(in_host(sender, [probe, "send", address, port, mib])))
        if any(sender.wait(timeout=TIMEOUT) != 0 for sender in senders):
            raise RuntimeError("a sender failed")
        outputs = [server.communicate(timeout=60)[0] for server in servers]
        if any(server.returncode != 0 for server in servers):
            raise RuntimeError("a receiver failed")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"  TCP probe {streams}: {e}", file=sys.stderr)
        return None
    finally:
        for process in servers + senders:
            if process.poll() is None:
                process.kill()
                process.wait()
    rates = [float(line.split()[2]) for text in outputs for line in text.splitlines() if line.startswith("RESULT ")]
    return {"tcp_stream": (sum(rates), "GB/s")} if len(rates) == len(streams) else None


def link_ceilings(probe, mib):
    """One stream each way between here and dlmh1, and three at once from dlmh1..3 to here."""
    return {
        "dlmh1 → here": lambda: tcp_streams(probe, [(None, "dlmh1", HERE_ADDRESS)], mib),
        "here → dlmh1": lambda: tcp_streams(probe, [("dlmh1", None, "dlmh1")], mib),
        THREE_STREAMS: lambda: tcp_streams(probe, [(None, h, HERE_ADDRESS) for h in HOSTS], mib),
    }


def paged_run(cmd, memfile_lines, budget, env, scratch):
    """Runs a DLM program with its memory servers on `memfile_lines` and `budget` bytes local;
    returns its RESULT values plus the paging counters and rates over its wall time, or None
    if it failed."""
    memfile, stats = scratch / "memfile", scratch / "stats.json"
    memfile.write_text("\n".join(memfile_lines) + "\n")
    stats.unlink(missing_ok=True)
    dlm_env = {"DLM_MEMFILE": str(memfile), "DLM_LOCAL_MEM": str(budget), "DLM_STATS_JSON": str(stats)}
    started = time.monotonic()
    results = run(cmd, {**env, **dlm_env}, timeout=TIMEOUT)
    wall = time.monotonic() - started
    if results is None:
        return None
    if not stats.exists():
        print(f"  no statistics from {' '.join(map(str, cmd))} (DLM_STATS_JSON)", file=sys.stderr)
        return None
    counters = json.loads(stats.read_text())
    fetched, written = counters["bytes_fetched"], counters["bytes_written_back"]
    results.update({
        "paging": ((fetched + written) / wall / 1e9, "GB/s"),
        "fetched_rate": (fetched / wall / 1e9, "GB/s"),
        "fetched": (fetched / 2**20, "MiB"),
        "written_back": (written / 2**20, "MiB"),
        "wall": (wall, "s"),
        "page_size": (float(counters["page_size"]), "B"),
    })
    return results


def memfiles():
    """Where the servers run, by configuration: one memfile's lines each."""
    return {
        "here": [f"{socket.gethostname()} 2G"],
        "dlmh1": ["dlmh1 2G"],
        "dlmh1..3": [f"{h} 1G" for h in HOSTS],
    }


def value(report, section, config, key):
    row = report[section].get(config)
    return row.get(key, (None,))[0] if row else None


def ratios(report):
    """The comparisons the run is for, each with its value (None: a part was not measured)."""
    v = lambda *a: value(report, *a)
    rows = [
        ("paging throughput (fetch), server on dlmh1 / one TCP stream dlmh1 → here (target >= 0.8)",
         ratio(v("fetch", "dlmh1", "fetch"), v("links", "dlmh1 → here", "tcp_stream"))),
        ("paging throughput (fetch), servers on dlmh1..3 / server on dlmh1 (target >= 2.0)",
         ratio(v("fetch", "dlmh1..3", "fetch"), v("fetch", "dlmh1", "fetch"))),
        ("paging throughput (fetch), servers on dlmh1..3 / three TCP streams dlmh1..3 → here",
         ratio(v("fetch", "dlmh1..3", "fetch"), v("links", THREE_STREAMS, "tcp_stream"))),
        ("rmw fetched throughput, dlmh1..3 / dlmh1",
         ratio(v("rmw", "dlmh1..3", "fetched_rate"), v("rmw", "dlmh1", "fetched_rate"))),
        ("rmw GB/s, dlmh1..3 / dlmh1", ratio(v("rmw", "dlmh1..3", "rmw"), v("rmw", "dlmh1", "rmw"))),
        ("rmw GB/s, dlmh1 / here", ratio(v("rmw", "dlmh1", "rmw"), v("rmw", "here", "rmw"))),
        ("himeno-c MFLOPS, server on dlmh1 / server here (target >= 0.8)",
         ratio(v("himeno-c", "dlmh1", "MFLOPS"), v("himeno-c", "here", "MFLOPS"))),
        ("its ceiling: paging throughput (fetch), server on dlmh1 / server here",
         ratio(v("fetch", "dlmh1", "fetch"), v("fetch", "here", "fetch"))),
    ]
    return [{"ratio": text, "value": x} for text, x in rows]


def render(report):
    """The report as markdown: the set-up, then one table per part."""
    mib_local = int(report["data_mib"] * LOCAL_FRACTION)
    grid = "x".join(map(str, report["himeno_grid"]))
    lines = [
        f"Command: `{report['command']}`  ",
        f"Machine: {report['machine']}; {report['date']}; emulated hosts dlmh1..3, links {report['rate']}; "
        f"took {report['seconds']} s"
        + (f"; each value is the median of {report['rounds']} interleaved rounds." if report["rounds"] > 1 else "."),
        "",
        f"Link ceilings (bench/tcp_probe.c, {report['probe_mib']} MiB per stream, the receiver's rate):",
        "",
        "| link | GB/s |",
        "|---|---|",
    ]
    lines += [f"| {label} | {fmt(value(report, 'links', label, 'tcp_stream'))} |" for label in report["links"]]
    lines += [
        "",
        f"Paging throughput: `dlmbench fetch {report['data_mib']}`, {mib_local} MiB local; GB/s fetched "
        "during its timed passes:",
        "",
        "| servers (memfile) | fetch GB/s | page |",
        "|---|---|---|",
    ]
    for config in report["fetch"]:
        page = value(report, "fetch", config, "page_size")
        lines.append(f"| {config} (`{'; '.join(report['memfiles'][config])}`) | "
                     f"{fmt(value(report, 'fetch', config, 'fetch'))} | {int(page) >> 10 if page else '—'} KiB |")
    lines += [
        "",
        f"Mixed traffic: `dlmbench rmw {report['data_mib']}`, {mib_local} MiB local (DLM_LOCAL_MEM); paging = "
        "(fetched + written back) / wall time of the process, fetched = fetched bytes / the same time:",
        "",
        "| servers (memfile) | rmw GB/s | paging GB/s | fetched GB/s | fetched MiB | written back MiB | wall s | page |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for config in report["rmw"]:
        cells = [fmt(value(report, "rmw", config, key))
                 for key in ("rmw", "paging", "fetched_rate", "fetched", "written_back", "wall")]
        page = value(report, "rmw", config, "page_size")
        lines.append(f"| {config} (`{'; '.join(report['memfiles'][config])}`) | " + " | ".join(cells)
                     + f" | {int(page) >> 10 if page else '—'} KiB |")
    lines += [
        "",
        f"C stencil: examples/c/himeno.c by dlmcc, grid {grid}, {report['himeno_iterations']} iterations, "
        f"{int(LOCAL_FRACTION * 100)} % local:",
        "",
        "| server (memfile) | MFLOPS | paging GB/s | fetched GB/s | wall s |",
        "|---|---|---|---|---|",
    ]
    for config in report["himeno-c"]:
        cells = [fmt(value(report, "himeno-c", config, key)) for key in ("MFLOPS", "paging", "fetched_rate", "wall")]
        lines.append(f"| {config} (`{'; '.join(report['memfiles'][config])}`) | " + " | ".join(cells) + " |")
    lines += ["", "| ratio | value |", "|---|---|"]
    lines += [f"| {r['ratio']} | {fmt(r['value'])} |" for r in report["ratios"]]
    if report["failed"]:
        lines += ["", f"{report['failed']} measurement(s) failed (—); see the run's stderr."]
    return "\n".join(lines) + "\n"


def main():
    # Ctrl-C or SIGTERM still runs `scripts/cluster.sh down` in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args = parse_args()
    require_root()
    rate = None if args.rate == "none" else args.rate
    if args.quick:
        mib, probe_mib, grid, iterations = args.mib or 128, 128, QUICK_GRID, "3"
    else:
        mib, probe_mib, grid, iterations = args.mib or 512, 1024, FULL_GRID, "10"
    bin_dir = build(grid)
    probe = build_c_tool(bin_dir, "tcp_probe")
    himeno_bytes = 14 * 4 * grid[0] * grid[1] * grid[2]
    servers = memfiles()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    busy = cluster_in_use()
    if busy:
        sys.exit("an emulated cluster is already up, and someone may be using it:\n"
                 f"{busy}\nwait for it, or remove it with `scripts/cluster.sh down`")

    samples = {"links": {}, "fetch": {}, "rmw": {}, "himeno-c": {}}  # part -> configuration -> one result per round

    def measure(part, label, how):
        print(f"{part}: {label}", file=sys.stderr)
        samples[part].setdefault(label, []).append(how())

    started = time.time()
    try:
        env = cluster_up(rate)
        with tempfile.TemporaryDirectory(prefix="dlm-cluster-bench-") as scratch:
            scratch = Path(scratch)
            for _ in range(args.rounds):
                for label, how in link_ceilings(probe, probe_mib).items():
                    measure("links", label, how)
                for workload in ("fetch", "rmw"):
                    for label, lines in servers.items():
                        measure(workload, label, lambda: paged_run(
                            [DLMBENCH, workload, str(mib)], lines, int((mib << 20) * LOCAL_FRACTION), env, scratch))
                for label in ("here", "dlmh1"):
                    measure("himeno-c", label, lambda: paged_run(
                        [bin_dir / "himeno-c", iterations], servers[label], int(himeno_bytes * LOCAL_FRACTION),
                        env, scratch))
    except RuntimeError as e:
        sys.exit(str(e))  # after `finally`
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        cluster_down()

    report = {
        "command": shlex.join(["python3", "bench/cluster.py"] + sys.argv[1:]),
        "rounds": args.rounds,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.time() - started),
        "rate": rate or "unshaped",
        "data_mib": mib,
        "probe_mib": probe_mib,
        "himeno_grid": grid,
        "himeno_iterations": int(iterations),
        "memfiles": servers,
        "failed": sum(r is None for part in samples.values() for runs in part.values() for r in runs),
    }
    report.update({part: {label: median(runs) for label, runs in row.items()} for part, row in samples.items()})
    report["ratios"] = ratios(report)
    (out / "cluster.json").write_text(json.dumps(report, indent=1, default=str, ensure_ascii=False) + "\n")
    table = render(report)
    (out / "cluster.md").write_text(table)
    print(table)
    if report["failed"]:
        sys.exit(f"{report['failed']} measurement(s) failed")


if __name__ == "__main__":
    main()
