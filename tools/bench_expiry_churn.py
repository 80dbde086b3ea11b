#!/usr/bin/env python3
"""Disk under a churn of short-lived keys, at default settings (issue 19's bound).

    python tools/bench_expiry_churn.py                       # 60 s, TTL 2 s, 2,000 live keys
    python tools/bench_expiry_churn.py --seconds 20 --ttl 1 --keys 500 --value-bytes 200

A writer opened with ``pysos.Dict(path, expire=TTL)`` and nothing else (background
compaction on, default segment size) writes session-like items under fresh keys as fast
as it can while keeping about ``--keys`` of them alive (each lives TTL seconds). Every
second it prints the store's disk bytes, its live bytes and the bound 2 x live + 8 MiB;
it compares disk and bound every ``--sample`` seconds (0.1: a merge's inputs and outputs
are on disk together for a fraction of a second); the last line gives the peak disk (and
the bound at that moment), the last second's disk, live and bound, and says whether the
disk ever passed the bound (after the first TTL).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pysos  # noqa: E402

MIB = 2**20


def disk_bytes(directory: str) -> int:
    total = 0
    for entry in os.scandir(directory):
        try:
            if entry.is_file():
                total += entry.stat().st_size
        except FileNotFoundError:  # deleted by a merge since the listing
            pass
    return total


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--ttl", type=float, default=2.0)
    p.add_argument("--keys", type=int, default=2000, help="live keys to keep (writes per TTL)")
    p.add_argument("--value-bytes", type=int, default=100)
    p.add_argument("--sample", type=float, default=0.1, help="seconds between comparisons of disk and bound")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="pysos-expiry-churn-")
    path = os.path.join(tmp, "store")
    value = {"user": "x" * args.value_bytes}
    worst = 0.0
    over = False
    peak = peak_bound = 0
    last = (0, 0, 0)
    try:
        with pysos.Dict(path, expire=args.ttl) as d:
            start = next_report = next_sample = time.monotonic()
            pace = args.ttl / args.keys  # seconds between writes: about --keys alive at once
            n = 0
            while time.monotonic() - start < args.seconds:
                d[f"session:{n}"] = value
                n += 1
                sleep = start + n * pace - time.monotonic()
                if sleep > 0:
                    time.sleep(sleep)
                now = time.monotonic()
                if now < next_sample:
                    continue
                next_sample = max(next_sample + args.sample, now + args.sample / 2)  # (not every write when behind)
                stats = d.stats()
                disk = disk_bytes(path)
                bound = 2 * stats["live_bytes"] + 8 * MIB
                if time.monotonic() - start > args.ttl:
                    worst = max(worst, disk / bound)
                    over = over or disk > bound
                    if disk > peak:
                        peak, peak_bound = disk, bound
                if time.monotonic() >= next_report:
                    next_report += 1.0
                    last = (disk, stats["live_bytes"], bound)
                    print(f"{time.monotonic() - start:6.1f} s  writes {n:8d}  keys {stats['keys']:6d}  "
                          f"live {stats['live_bytes'] / MIB:7.2f} MiB  disk {disk / MIB:7.2f} MiB  "
                          f"bound {bound / MIB:7.2f} MiB", flush=True)
        print(f"writes {n}, peak disk {peak / MIB:.2f} MiB (bound then {peak_bound / MIB:.2f} MiB), last: disk "
              f"{last[0] / MIB:.2f} MiB, live {last[1] / MIB:.2f} MiB, bound {last[2] / MIB:.2f} MiB; "
              f"worst disk / bound {worst:.2f}: {'OVER the bound' if over else 'within the bound'}")
        return 1 if over else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
