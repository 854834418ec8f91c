#!/usr/bin/env python3
"""The portal under load: does a crowd polling a job's live view slow the job's paging?

    sudo python3 bench/portal.py                # 3 rounds, 20 pollers
    sudo python3 bench/portal.py --rounds 1 --pollers 5

Root only (it makes a PAM account with a password, and the emulated hosts of bench/cluster.py).
Up come dlmh1..3 (unshaped links), a pool whose one memory server is dlmh1 and whose compute node
is this host, a WAN manager in front of it and `dlm portal` in front of that. The same dlmcc
stencil (tests/c/wan/stencil_job.c, 256 MiB asked, half of it through the pool) is submitted
for the account, alternately with nobody watching and with POLLERS logged-in sessions each
asking for the job's live view once a second as the job page's script does (`/api/jobs/ID?after=`).
The job's own figure is its sweeps' time, which it prints; medians over the rounds, side by side.
Output: a table on stdout, portal.json and portal.md in the output directory (docs/bench/).
Nothing here asserts timings.
"""
import argparse
import http.cookiejar
import json
import os
import re
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import cluster_down, cluster_in_use, cluster_up, require_root  # noqa: E402
from run import RELEASE, REPO, machine  # noqa: E402

DLM = RELEASE / "dlm"
STENCIL = REPO / "tests/c/wan/stencil_job.c"
CFLAGS = "-O2 -DNX=128 -DNY=128 -DNZ=1024"
USER = "dlm-bench-web"
LAN_PORT, WAN_PORT, PORTAL_PORT = 7472, 7473, 7474
PORTAL = f"http://127.0.0.1:{PORTAL_PORT}"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each one job unwatched and one watched (in turn first)")
    parser.add_argument("--pollers", type=int, default=20, help="sessions polling the live view at once")
    parser.add_argument("--sweeps", type=int, default=24, help="the stencil's sweeps")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where portal.json and portal.md go")
    return parser.parse_args()


def account():
    """The benchmark's account, with a new random password."""
    if subprocess.run(["id", USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
    password = secrets.token_hex(12)
    subprocess.run(["chpasswd"], input=f"{USER}:{password}\n", text=True, check=True)
    return password


def start_services(env, scratch):
    """The pool, the WAN manager and the portal; returns the portal's process."""
    conf = scratch / "pool.conf"
    conf.write_text("dlmh1 512M\ncompute localhost 128M\n")
    subprocess.run([DLM, "pool", "up", conf, "--listen", f"0.0.0.0:{LAN_PORT}", "--socket", scratch / "pool.sock",
                    "--run-dir", scratch / "run"], env=env, check=True, capture_output=True, timeout=120)
    hostconf = scratch / "hostconf"
    hostconf.write_text(f"c1 127.0.0.1:{LAN_PORT}\n")
    subprocess.run([DLM, "wan", "up", hostconf, "--listen", f"127.0.0.1:{WAN_PORT}", "--spool", scratch / "wan"],
                   env=env, check=True, capture_output=True, timeout=120)
    portal = subprocess.Popen([DLM, "portal", "-w", f"127.0.0.1:{WAN_PORT}", "--listen", f"127.0.0.1:{PORTAL_PORT}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = portal.stderr.readline()
    if PORTAL not in line:
        raise RuntimeError(f"dlm portal did not start: {line}")
    threading.Thread(target=portal.stderr.read, daemon=True).start()
    return portal


def stop_services(env, scratch, portal):
    if portal:
        portal.terminate()
        portal.wait(timeout=30)
    subprocess.run([DLM, "wan", "down", "--force"], env={**env, "DLM_WAN": f"127.0.0.1:{WAN_PORT}"},
                   capture_output=True)
    subprocess.run([DLM, "pool", "down", "--force", "-s", scratch / "pool.sock"], env=env, capture_output=True)


def session(password):
    """A logged-in portal session (an opener with its cookies)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    page = opener.open(f"{PORTAL}/login", timeout=30).read().decode()
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"user": USER, "password": password, "token": token, "next": "/jobs"}).encode()
    opener.open(f"{PORTAL}/login", data=form, timeout=30).read()
    return opener


def poll(opener, job, stop, latencies):
    """What a job page's script does: the live view once a second, only the new points."""
    after = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            live = json.loads(opener.open(f"{PORTAL}/api/jobs/{job}?after={after}", timeout=30).read())
            latencies.append(time.monotonic() - started)
            after = (live.get("stats") or {}).get("last_t_ms", after)
        except OSError:
            latencies.append(float("nan"))
        stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))


def submit(env, sweeps):
    cmd = [DLM, "submit", "-m", "256M", "-u", USER, "--dlmcc", "--cflags", CFLAGS, "--out", "result.txt",
           "--detach", "--", STENCIL, str(sweeps), "result.txt"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, timeout=120)
    return int(done.stdout.strip())


def wait_and_time(env, job, scratch):
    """Waits for the job; the seconds its sweeps took (from its standard output), or None."""
    while True:
        status = json.loads(subprocess.run([DLM, "jobs", "--json"], env=env, capture_output=True, text=True).stdout)
        mine = next(j for j in status if j["id"] == job)
        if mine["state"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.5)
    out = scratch / f"fetched-{job}"
    subprocess.run([DLM, "fetch", str(job), "--dir", out], env=env, capture_output=True)
    text = (out / f"job-{job}.stdout").read_text() if (out / f"job-{job}.stdout").exists() else ""
    found = re.search(r"done in ([0-9.]+) s", text)
    return float(found.group(1)) if mine["state"] == "done" and found else None


def service_pids():
    """The portal, the WAN manager and munged: the processes that a poll costs CPU in."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if " portal -w " in cmdline or " wan manager " in cmdline or cmdline.startswith("/usr/sbin/munged"):
            pids.append(pid)
    return pids


def cpu_seconds(pids):
    """User + system CPU seconds the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def one_job(env, scratch, sweeps, sessions):
    """One job, watched by `sessions` (possibly none): its time, the polls' latencies, and the
    CPU the services (portal, WAN manager, munged) and the pollers used per second meanwhile."""
    pids = service_pids()
    job = submit(env, sweeps)
    stop, latencies = threading.Event(), []
    pollers = [threading.Thread(target=poll, args=(s, job, stop, latencies)) for s in sessions]
    started, services, own = time.monotonic(), cpu_seconds(pids), sum(os.times()[:2])
    for p in pollers:
        p.start()
    seconds = wait_and_time(env, job, scratch)
    stop.set()
    for p in pollers:
        p.join()
    wall = time.monotonic() - started
    cpu = {"services": (cpu_seconds(pids) - services) / wall, "pollers": (sum(os.times()[:2]) - own) / wall}
    return seconds, latencies, cpu


def render(report):
    fmt = lambda v, d=3: "—" if v is None else f"{v:.{d}f}"  # noqa: E731
    return "\n".join([
        f"# Portal under load ({report['date']}, {report['machine']})", "",
        f"`{report['command']}`: {report['rounds']} rounds; each the same dlmcc stencil (256 MiB, half through "
        "a pool on dlmh1) unwatched and watched, in turn first.", "",
        "| | sweeps' time (median, s) | / unwatched | live-view requests | request latency p50 / p95 (ms) "
        "| CPU of portal + WAN manager + munged (cores) | CPU of the pollers (cores) |",
        "|---|---|---|---|---|---|---|",
        f"| unwatched | {fmt(report['unwatched_s'])} | 1 | 0 | — | {fmt(report['cpu']['unwatched']['services'])} | — |",
        f"| {report['pollers']} sessions polling each second | {fmt(report['watched_s'])} | "
        f"{fmt(report['ratio'])} | {report['requests']} | {fmt(report['p50_ms'], 1)} / {fmt(report['p95_ms'], 1)} "
        f"| {fmt(report['cpu']['watched']['services'])} | {fmt(report['cpu']['watched']['pollers'])} |",
        "", f"Each run: unwatched {report['unwatched_runs']}, watched {report['watched_runs']}.", ""])


def measure(args, env, scratch, password):
    sessions = [session(password) for _ in range(args.pollers)]
    unwatched, watched, latencies, cpu = [], [], [], {"unwatched": [], "watched": []}
    # ABBA: odd rounds watched first, so that neither kind always runs second.
    for n in range(args.rounds):
        for watching in ([False, True] if n % 2 == 0 else [True, False]):
            print(f"round {n + 1}: {f'{args.pollers} pollers' if watching else 'unwatched'}", file=sys.stderr)
            seconds, lat, used = one_job(env, scratch, args.sweeps, sessions if watching else [])
            (watched if watching else unwatched).append(seconds)
            cpu["watched" if watching else "unwatched"].append(used)
            latencies += lat
    return unwatched, watched, latencies, cpu


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args = parse_args()
    require_root()
    busy = cluster_in_use()
    if busy:
        sys.exit(f"an emulated cluster is already up, and someone may be using it:\n{busy}")
    password, started = account(), time.time()
    scratch = Path(tempfile.mkdtemp(prefix="dlm-portal-bench-"))
    portal, env = None, None
    try:
        env = {**os.environ, **cluster_up(None), "DLM_WAN": f"127.0.0.1:{WAN_PORT}", "PATH": f"{RELEASE}:{os.environ['PATH']}"}
        portal = start_services(env, scratch)
        unwatched, watched, latencies, cpu = measure(args, env, scratch, password)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        sys.exit(str(e))
    finally:
        if env:
            stop_services(env, scratch, portal)
        cluster_down()
    good = sorted(x for x in latencies if x == x)
    med = lambda runs: statistics.median(r for r in runs if r is not None) if any(r is not None for r in runs) else None  # noqa: E731
    report = {
        "command": " ".join(["python3", "bench/portal.py"] + sys.argv[1:]), "rounds": args.rounds,
        "pollers": args.pollers, "machine": machine(), "host": socket.gethostname(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": round(time.time() - started),
        "unwatched_runs": unwatched, "watched_runs": watched, "unwatched_s": med(unwatched), "watched_s": med(watched),
        "requests": len(latencies), "failed_requests": len(latencies) - len(good),
        "p50_ms": good[len(good) // 2] * 1e3 if good else None,
        "p95_ms": good[int(len(good) * 0.95)] * 1e3 if good else None,
        "cpu": {k: {part: statistics.median(r[part] for r in runs) for part in ("services", "pollers")}
                for k, runs in cpu.items()},
    }
    report["ratio"] = report["watched_s"] / report["unwatched_s"] if report["watched_s"] and report["unwatched_s"] else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "portal.json").write_text(json.dumps(report, indent=1) + "\n")
    table = render(report)
    (out / "portal.md").write_text(table)
    print(table)
    sys.exit(1 if None in unwatched + watched or report["failed_requests"] else 0)


if __name__ == "__main__":
    main()
