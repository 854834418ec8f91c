#!/usr/bin/env python3
"""DLM through a memory pool: one program through the pool against the same program with its own
server, and four programs at once against one, on the emulated cluster.

    sudo python3 bench/pool.py                  # links shaped to 1gbit, 256 MiB per program
    sudo python3 bench/pool.py --quick          # 64 MiB per program, one round
    sudo python3 bench/pool.py --rounds 3       # every configuration 3 times, interleaved; medians

Root only, like bench/cluster.py (whose cluster helpers it uses): dlmh1..3 come up, and always go
down again. Measured in one run, each configuration `--rounds` times, interleaved:
- the links' ceiling: one TCP stream from dlmh1 to here, and three at once from dlmh1..3
  (bench/tcp_probe.c, as bench/cluster.py measures them);
- `dlmbench fetch` (sequential reads of data 4 times the local budget; its RESULT is the bytes
  fetched per second of its timed passes) and `dlmbench rmw` (read-modify-write sweep; paging =
  bytes fetched + written back over the wall time) with (a) its own server spawned on dlmh1
  (a memfile) and (b) a pool of one resident server on dlmh1 (`dlm pool up`): the ratio b/a is
  the pool's cost;
- the rmw sweep through a pool of three servers on dlmh1..3: one program alone, then four at
  once (each its own data): aggregate paging throughput (all bytes over the longest wall time)
  and each program's share.
Output: a table on stdout, pool.json and pool.md in the output directory (docs/bench/).
Nothing here asserts timings; a failed program shows as "—" and makes the exit status 1.
"""
import argparse
import os
import json
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import THREE_STREAMS, cluster_down, cluster_in_use, cluster_up, link_ceilings, require_root  # noqa: E402
from run import DLMBENCH, RELEASE, REPO, build_c_tool, fmt, machine, median, run  # noqa: E402

DLM = RELEASE / "dlm"
LOCAL_FRACTION = 0.25
PORT = 7470  # a port of its own, away from an administrator's pool on 7450
TIMEOUT = 1800


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB per program")
    parser.add_argument("--rate", default="1gbit", help="each host's link rate (tc syntax), or none")
    parser.add_argument("--mib", type=int, help="data per program, MiB (default 256; 64 with --quick)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; medians are reported")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where pool.json and pool.md go")
    return parser.parse_args()


class Pool:
    """`dlm pool up` of POOLCONF lines in a scratch directory; `down` stops it."""

    def __init__(self, lines, env, scratch):
        self.dir = Path(tempfile.mkdtemp(prefix="pool-", dir=scratch))
        (self.dir / "pool.conf").write_text("\n".join(lines) + "\n")
        self.socket, self.env = self.dir / "pool.sock", env
        up = subprocess.run([DLM, "pool", "up", self.dir / "pool.conf", "--listen", f"0.0.0.0:{PORT}",
                             "--socket", self.socket, "--run-dir", self.dir / "run"],
                            env=env, capture_output=True, text=True, timeout=120)
        if up.returncode != 0:
            raise RuntimeError(f"dlm pool up failed:\n{up.stderr.strip()}")

    def down(self):
        subprocess.run([DLM, "pool", "down", "--force", "-s", self.socket], env=self.env, capture_output=True)
        deadline = time.monotonic() + 60
        while self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.2)


def program_env(env, mib, scratch, name, pool=None, memfile=None):
    """A program's environment: its budget, statistics file, and its servers (pool or memfile)."""
    budget = int((mib << 20) * LOCAL_FRACTION)
    stats = scratch / f"{name}.json"
    stats.unlink(missing_ok=True)
    dlm = {"DLM_LOCAL_MEM": str(budget), "DLM_STATS_JSON": str(stats)}
    if pool:
        dlm.update({"DLM_POOL": f"127.0.0.1:{PORT}", "DLM_POOL_MEM": str((mib << 20) + budget + (64 << 20))})
    else:
        path = scratch / f"{name}.memfile"
        path.write_text(memfile + "\n")
        dlm["DLM_MEMFILE"] = str(path)
    return {**env, **dlm}, stats


def paging(stats, wall):
    counters = json.loads(stats.read_text())
    moved = counters["bytes_fetched"] + counters["bytes_written_back"]
    return moved, {"paging": (moved / wall / 1e9, "GB/s"), "wall": (wall, "s")}


def one(workload, mib, env, scratch, **servers):
    """One program alone; its RESULT values and paging rate, or None if it failed."""
    program_env_, stats = program_env(env, mib, scratch, "one", **servers)
    started = time.monotonic()
    results = run([DLMBENCH, workload, str(mib)], program_env_, timeout=TIMEOUT)
    if results is None or not stats.exists():
        return None
    results.update(paging(stats, time.monotonic() - started)[1])
    return results


def four_at_once(mib, env, scratch):
    """Four rmw programs at once through the pool: aggregate and each one's paging rate."""
    started, programs = time.monotonic(), []
    for k in range(4):
        program_env_, stats = program_env(env, mib, scratch, f"four{k}", pool=True)
        process = subprocess.Popen([DLMBENCH, "rmw", str(mib)], env=program_env_, stdout=subprocess.DEVNULL)
        programs.append((process, stats))
    walls, moved = [], []
    for process, stats in programs:
        if process.wait(timeout=TIMEOUT) != 0 or not stats.exists():
            return None
        walls.append(time.monotonic() - started)
        moved.append(json.loads(stats.read_text()))
    total = sum(c["bytes_fetched"] + c["bytes_written_back"] for c in moved)
    each = [(c["bytes_fetched"] + c["bytes_written_back"]) / w / 1e9 for c, w in zip(moved, walls)]
    return {"paging": (total / max(walls) / 1e9, "GB/s"), "slowest": (min(each), "GB/s"),
            "fastest": (max(each), "GB/s"), "wall": (max(walls), "s")}


def measure_round(samples, mib, env, scratch, probe):
    def measure(part, label, how):
        print(f"{part}: {label}", file=sys.stderr)
        samples.setdefault(part, {}).setdefault(label, []).append(how())

    ceilings = link_ceilings(probe, mib)
    for label in ("dlmh1 → here", THREE_STREAMS):
        measure("links", label, ceilings[label])
    for workload in ("fetch", "rmw"):
        measure(workload, "own server on dlmh1", lambda: one(workload, mib, env, scratch, memfile="dlmh1 4G"))
        pool = Pool(["dlmh1 4G"], env, scratch)
        try:
            measure(workload, "pool server on dlmh1", lambda: one(workload, mib, env, scratch, pool=True))
        finally:
            pool.down()
    pool = Pool([f"dlmh{k} 4G" for k in (1, 2, 3)], env, scratch)
    try:
        measure("shared", "1 program", lambda: one("rmw", mib, env, scratch, pool=True))
        measure("shared", "4 programs at once", lambda: four_at_once(mib, env, scratch))
    finally:
        pool.down()


def value(report, part, label, key):
    row = (report.get(part) or {}).get(label)
    return row[key][0] if row and key in row else None


def render(report):
    fetch = [value(report, "fetch", c, "fetch") for c in ("own server on dlmh1", "pool server on dlmh1")]
    rmw = [value(report, "rmw", c, "paging") for c in ("own server on dlmh1", "pool server on dlmh1")]
    one_, four = value(report, "shared", "1 program", "paging"), value(report, "shared", "4 programs at once", "paging")
    ratio = lambda a, b: fmt(a / b) if a and b else "—"  # noqa: E731
    lines = [
        f"# DLM through a pool — {report['date']}, {report['machine']}",
        "",
        f"`{report['command']}`: {report['data_mib']} MiB per program, 25 % local, links {report['rate']}, "
        f"{report['rounds']} round(s), medians; {report['seconds']} s.",
        "",
        "| workload | own server (dlmh1) | pool server (dlmh1) | pool / own |",
        "|---|---|---|---|",
        f"| fetch, GB/s fetched | {fmt(fetch[0])} | {fmt(fetch[1])} | {ratio(fetch[1], fetch[0])} |",
        f"| rmw, GB/s paged | {fmt(rmw[0])} | {fmt(rmw[1])} | {ratio(rmw[1], rmw[0])} |",
        "",
        "| pool of 3 servers (dlmh1..3), rmw | GB/s paged, all | slowest program | fastest program |",
        "|---|---|---|---|",
        f"| 1 program | {fmt(one_)} | {fmt(one_)} | {fmt(one_)} |",
        f"| 4 programs at once | {fmt(four)} | {fmt(value(report, 'shared', '4 programs at once', 'slowest'))} | "
        f"{fmt(value(report, 'shared', '4 programs at once', 'fastest'))} |",
        f"| 4 at once / 1 alone | {ratio(four, one_)} | | |",
        "",
        "| ceiling (bench/tcp_probe.c, same run) | GB/s |",
        "|---|---|",
        f"| one TCP stream dlmh1 → here | {fmt(value(report, 'links', 'dlmh1 → here', 'tcp_stream'))} |",
        f"| {THREE_STREAMS} | {fmt(value(report, 'links', THREE_STREAMS, 'tcp_stream'))} |",
        "",
    ]
    return "\n".join(lines)


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args = parse_args()
    require_root()
    mib = args.mib or (64 if args.quick else 256)
    busy = cluster_in_use()
    if busy:
        sys.exit(f"an emulated cluster is already up, and someone may be using it:\n{busy}")
    samples, started = {}, time.time()
    probe = build_c_tool(Path(tempfile.mkdtemp(prefix="dlm-pool-bench-tools-")), "tcp_probe")
    try:
        env = cluster_up(None if args.rate == "none" else args.rate)
        env = {**os.environ, **env}
        with tempfile.TemporaryDirectory(prefix="dlm-pool-bench-") as scratch:
            for _ in range(args.rounds):
                measure_round(samples, mib, env, Path(scratch), probe)
    except RuntimeError as e:
        sys.exit(str(e))
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        cluster_down()
    report = {
        "command": shlex.join(["python3", "bench/pool.py"] + sys.argv[1:]),
        "rounds": args.rounds, "machine": machine(), "host": socket.gethostname(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(time.time() - started),
        "rate": args.rate, "data_mib": mib,
        "failed": sum(r is None for part in samples.values() for runs in part.values() for r in runs),
    }
    report.update({part: {label: median(runs) for label, runs in row.items()} for part, row in samples.items()})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pool.json").write_text(json.dumps(report, indent=1, default=str, ensure_ascii=False) + "\n")
    table = render(report)
    (out / "pool.md").write_text(table)
    print(table)
    sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
