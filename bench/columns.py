#!/usr/bin/env python3
"""Column walks of row-major arrays (bench/columns.c): DLM at 25 % local against native.

    python3 bench/columns.py                 # corr, gemver, symm and bt, each once
    python3 bench/columns.py --timeout 300   # how long a DLM run may take (default 120 s)

Each kernel is built with plain cc (native) and with dlmcc (DLM) and run at a quarter of its
data local (DLM_LOCAL_MEM). Printed: the kernel's seconds natively and through DLM, their
ratio, and the bytes DLM fetched over the kernel's data (DLM_STATS_JSON). The checksums must
agree, or the run fails; a DLM run past the timeout is reported as such. Nothing here asserts
timings. Build first: cargo build --release --workspace --lib --bins.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import RELEASE, REPO  # noqa: E402

# kernel: (N, bytes of data)
KERNELS = {
    "corr": (2600, 2600 * 2600 * 8),
    "gemver": (3000, 3000 * 3000 * 8),
    "symm": (800, 3 * 800 * 800 * 8),
    "bt": (72, 72 ** 3 * 5 * 8),
}


def fields(text):
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="dlm-columns-"))
    source = REPO / "bench" / "columns.c"
    subprocess.run(["cc", "-O2", "-o", out / "native", source, "-lm"], check=True)
    subprocess.run([RELEASE / "dlmcc", "-O2", "-o", out / "dlm", source, "-lm"], check=True)
    for kernel, (n, nbytes) in KERNELS.items():
        native = fields(subprocess.run([out / "native", kernel, str(n)], capture_output=True, text=True,
                                       check=True).stdout)
        stats = out / f"{kernel}.json"
        env = {**os.environ, "DLM_LOCAL_MEM": str(nbytes // 4), "DLM_STATS_JSON": str(stats)}
        try:
            done = subprocess.run([out / "dlm", kernel, str(n)], capture_output=True, text=True, env=env,
                                  timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{kernel} {n}: native {native['seconds']} s; DLM over {args.timeout:g} s", flush=True)
            continue
        if done.returncode != 0:
            sys.exit(f"{kernel} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        dlm = fields(done.stdout)
        if dlm["checksum"] != native["checksum"]:
            sys.exit(f"{kernel}: checksum {dlm['checksum']} through DLM, {native['checksum']} natively")
        fetched = json.loads(stats.read_text())["bytes_fetched"]
        ratio = float(dlm["seconds"]) / float(native["seconds"])
        print(f"{kernel} {n}: native {native['seconds']} s, DLM {dlm['seconds']} s ({ratio:.1f}x); "
              f"fetched {fetched / nbytes:.1f}x the data ({nbytes / 2**20:.1f} MiB)", flush=True)


if __name__ == "__main__":
    main()
