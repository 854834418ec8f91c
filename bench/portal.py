#!/usr/bin/env python3
"""The web portal under load: does a crowd polling a job's live view slow the job's paging?

    sudo python3 bench/portal.py                 # 20 users, 3 rounds
    sudo python3 bench/portal.py --users 50 --rounds 5

Root only (a throwaway account logs in through PAM; the pool and the WAN manager run as root).
On this host: a pool (`dlm pool up`: one resident server here, this host as its one compute
node), a WAN manager and `dlm portal` in front of it. Each round runs the same paging job twice,
interleaved: alone, and with USERS sessions of the job's owner polling its live view
(`/api/jobs/ID?after=T`, every second, as the job page does). The job is the Himeno-style stencil
of the WAN tests (tests/c/wan/stencil_job.c, built by dlmcc on the node), paging through the
pool at a quarter of its data local. Its time is its own: the last line of its live statistics
(`t_ms` at shutdown), so staging and building do not count. Also reported: the polls answered
and their median latency. Output: a table on stdout and portal.json / portal.md in --out.
Nothing here asserts timings.
"""
import argparse
import http.cookiejar
import json
import re
import socket
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
from run import RELEASE, REPO, machine, median  # noqa: E402

DLM = RELEASE / "dlm"
SOURCE = REPO / "tests" / "c" / "wan" / "stencil_job.c"
CFLAGS = "-DNX=128 -DNY=128 -DNZ=1024"  # two 64 MiB grids
MEMORY = "192M"
COMPUTE_CAP = "48M"  # so the job pages through the pool (a quarter of its 128 MiB local)
SWEEPS = "6"
POOL_PORT, WAN_PORT, PORTAL_PORT = 7476, 7477, 7478
USER = "dlm-bench-portal"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20, help="sessions polling the live view")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are reported")
    parser.add_argument("--out", default=str(REPO / "docs" / "bench"), help="where portal.json and portal.md go")
    return parser.parse_args()


def sh(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True, **kw).stdout


def account():
    subprocess.run(["userdel", "-r", USER], capture_output=True)
    sh("useradd", "-m", "-s", "/bin/sh", USER)
    password = f"bench-{int(time.time())}"
    subprocess.run(["chpasswd"], input=f"{USER}:{password}\n", text=True, check=True)
    return password


def wait_port(port, what):
    for _ in range(200):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} does not listen on {port}")


class Stack:
    """The pool, the WAN manager and the portal on this host, in a scratch directory."""

    def __init__(self, scratch):
        self.scratch = scratch
        host = socket.gethostname()
        conf = scratch / "pool.conf"
        conf.write_text(f"{host} 1G\ncompute {host} {COMPUTE_CAP}\n")
        env = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
               "OMPI_MCA_rmaps_base_oversubscribe": "1", "PATH": f"{RELEASE}:/usr/bin:/bin:/usr/sbin:/sbin"}
        self.env = env
        self.pool_socket = scratch / "pool.sock"
        sh(DLM, "pool", "up", conf, "--listen", f"0.0.0.0:{POOL_PORT}", "--socket", self.pool_socket,
           "--run-dir", scratch / "run", env=env)
        (scratch / "hostconf").write_text(f"local {host}:{POOL_PORT}\n")
        sh(DLM, "wan", "up", scratch / "hostconf", "--listen", f"127.0.0.1:{WAN_PORT}", "--spool", scratch / "wan",
           env=env)
        self.portal = subprocess.Popen([str(DLM), "portal", "--listen", f"127.0.0.1:{PORTAL_PORT}", "-w",
                                        f"127.0.0.1:{WAN_PORT}"], stdout=subprocess.DEVNULL,
                                       stderr=open(scratch / "portal.log", "w"))
        wait_port(PORTAL_PORT, "dlm portal")

    def submit(self):
        out = sh(DLM, "submit", "-w", f"127.0.0.1:{WAN_PORT}", "-u", USER, "-m", MEMORY, "--dlmcc", "--cflags", CFLAGS,
                 "--out", "r.txt", "--detach", "--", SOURCE, SWEEPS, "r.txt", env=self.env)
        return int(out.strip())

    def job(self, job_id):
        jobs = json.loads(sh(DLM, "jobs", "-w", f"127.0.0.1:{WAN_PORT}", "--json", env=self.env))
        return next(j for j in jobs if j["id"] == job_id)

    def stats(self, job_id):
        credential = sh("munge", "-s", "dlm-pool").strip()
        request = urllib.request.Request(f"http://127.0.0.1:{WAN_PORT}/v1/jobs/{job_id}/stats",
                                         headers={"Authorization": f"MUNGE {credential}"})
        return json.load(urllib.request.urlopen(request, timeout=10))

    def stop(self):
        self.portal.terminate()
        self.portal.wait()
        subprocess.run([str(DLM), "wan", "down", "--force", "-w", f"127.0.0.1:{WAN_PORT}"], capture_output=True)
        subprocess.run([str(DLM), "pool", "down", "--force", "-s", str(self.pool_socket)], capture_output=True)


def session(password):
    """A logged-in opener (the login form's token and cookie, then the session cookie)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    base = f"http://127.0.0.1:{PORTAL_PORT}"
    page = opener.open(f"{base}/login", timeout=10).read().decode()
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"user": USER, "password": password, "token": token, "next": "/jobs"}).encode()
    opener.open(f"{base}/login", data=form, timeout=30).read()
    return opener


def poll(opener, job_id, stop, latencies):
    """What the job page does: ask for the points after the last, every second."""
    after = 0
    url = f"http://127.0.0.1:{PORTAL_PORT}/api/jobs/{job_id}"
    while not stop.is_set():
        started = time.monotonic()
        try:
            body = json.load(opener.open(f"{url}?after={after}", timeout=10))
            after = (body.get("stats") or {}).get("last_t_ms", after)
            latencies.append(time.monotonic() - started)
        except Exception:  # noqa: BLE001 - a failed poll is counted as missing
            pass
        stop.wait(1.0)


def run_job(stack, password, users):
    job_id = stack.submit()
    stop, latencies, threads = threading.Event(), [], []
    if users:
        openers = [session(password) for _ in range(users)]
        threads = [threading.Thread(target=poll, args=(o, job_id, stop, latencies)) for o in openers]
        for t in threads:
            t.start()
    while stack.job(job_id)["state"] not in ("done", "failed", "cancelled"):
        time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    job = stack.job(job_id)
    samples = stack.stats(job_id)["samples"]
    if job["state"] != "done" or job["exit_code"] != 0 or not samples:
        raise SystemExit(f"job {job_id}: {job['state']} {job.get('reason')}")
    last = samples[-1]
    return {"seconds": last["t_ms"] / 1000, "fetched": last["bytes_fetched"], "polls": len(latencies),
            "latency_ms": 1000 * median(latencies) if latencies else None}


def main():
    args = parse_args()
    password = account()
    scratch = Path(tempfile.mkdtemp(prefix="dlm-bench-portal-"))
    scratch.chmod(0o755)
    stack = Stack(scratch)
    results = {"alone": [], "polled": []}
    started = time.time()
    try:
        for _ in range(args.rounds):
            results["alone"].append(run_job(stack, password, 0))
            results["polled"].append(run_job(stack, password, args.users))
    finally:
        stack.stop()
        subprocess.run(["userdel", "-r", USER], capture_output=True)
    alone = median([r["seconds"] for r in results["alone"]])
    polled = median([r["seconds"] for r in results["polled"]])
    latency = median([r["latency_ms"] for r in results["polled"] if r["latency_ms"] is not None])
    polls = sum(r["polls"] for r in results["polled"])
    report = {"machine": machine(), "users": args.users, "rounds": args.rounds, "results": results,
              "alone_s": alone, "polled_s": polled, "ratio": polled / alone, "poll_latency_ms": latency,
              "polls": polls, "seconds": time.time() - started}
    table = "\n".join([
        f"# The portal under load — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {machine()}",
        "",
        f"`sudo python3 bench/portal.py --users {args.users} --rounds {args.rounds}`: the stencil "
        f"({CFLAGS}, {SWEEPS} sweeps, {MEMORY}, {COMPUTE_CAP} local) through a pool on this host; medians.",
        "",
        "| job | seconds (its own clock) | polls answered | median poll latency |",
        "|---|---|---|---|",
        f"| alone | {alone:.2f} | — | — |",
        f"| {args.users} users polling its live view | {polled:.2f} | {polls} | {latency:.1f} ms |",
        f"| polled / alone | {polled / alone:.3f} | | |",
    ])
    print(table)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "portal.json").write_text(json.dumps(report, indent=2))
    (out / "portal.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
