"""Write latency of a big store around rotations: what writing sealed segments' hints costs the writer.

    python tools/rotation_latency.py [--keys 1000000] [--writes 400000] [--segment-size 16777216]

Fills a Dict with ``--keys`` keys (in batches), then times each of ``--writes`` further
single writes (updates of random keys), with ``--segment-size`` small enough that several
rotations fall among them. Twice: ``autocompact=False`` (the writer writes each sealed
segment's hint itself, at the rotation) and ``autocompact=True`` (a thread writes it; only
the copy of the index is the writer's). Run it with another checkout's PYTHONPATH to
compare with a pysos that writes no hints at rotation. Prints writes/s and latency
percentiles in microseconds.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

if __package__ in (None, ""):
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pysos  # noqa: E402


def run(path: str, keys: int, writes: int, segment_size: int, autocompact: bool) -> dict:
    with pysos.Dict(path, segment_size=segment_size, autocompact=False) as d:
        for base in range(0, keys, 10_000):
            with d.batch():
                for i in range(base, min(base + 10_000, keys)):
                    d[f"key_{i}"] = {"some": f"object_{i}"}
    rng = random.Random(1)
    names = [f"key_{rng.randrange(keys)}" for _ in range(writes)]
    value = {"some": "object", "again": 1}
    lat = []
    clock = time.perf_counter_ns
    with pysos.Dict(path, segment_size=segment_size, autocompact=autocompact) as d:
        if autocompact:
            d._store._compactor.ratio = 1.0  # measure hints, not merges
            d._store._compactor.min_dead_bytes = 2**62
        rotations = d.stats()["segments"]
        began = clock()
        for name in names:
            t = clock()
            d[name] = value
            lat.append(clock() - t)
        elapsed = (clock() - began) / 1e9
        rotations = d.stats()["segments"] - rotations
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] / 1000  # noqa: E731
    return {"autocompact": autocompact, "writes_per_s": writes / elapsed, "rotations": rotations,
            "p50": pick(0.5), "p99": pick(0.99), "p99.9": pick(0.999), "max": lat[-1] / 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--writes", type=int, default=400_000)
    parser.add_argument("--segment-size", type=int, default=16 * 2**20)
    parser.add_argument("--autocompact", type=lambda v: [x == "1" for x in v.split(",")], default=[False, True],
                        help="which modes: 0 (no thread), 1 (thread), or 0,1 (default)")
    args = parser.parse_args(argv)
    print(f"pysos from {os.path.dirname(pysos.__file__)}; {args.keys:,} keys, {args.writes:,} timed writes, "
          f"segment_size {args.segment_size:,}")
    print(f"{'autocompact':>11} {'writes/s':>9} {'rotations':>9} {'p50 µs':>7} {'p99 µs':>7} {'p99.9 µs':>8} {'max µs':>9}")
    for autocompact in args.autocompact:
        base = tempfile.mkdtemp(prefix="pysos-rotation-latency-")
        try:
            row = run(os.path.join(base, "s"), args.keys, args.writes, args.segment_size, autocompact)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        print(f"{str(row['autocompact']):>11} {row['writes_per_s']:>9,.0f} {row['rotations']:>9} {row['p50']:>7.1f} "
              f"{row['p99']:>7.1f} {row['p99.9']:>8.1f} {row['max']:>9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
