"""Opening a store of expiring keys against one without expiry: reopen + len(), medians.

    python tools/bench_expiry_open.py                 # 100,000 keys, 9 opens of each

Two stores of the same keys and values, one opened with ``expire=3600`` (nothing expires
during the run), the other without, each written three times over at default settings
(the compactor thread on) and closed cleanly. Then a readonly handle is opened on each and
``len()`` taken, the stores taking turns; the median wall time of each is printed, with
how many segments and hint files each store has. Hints carry the deadlines of expiring
records (FORMAT.md, "Deadlines in hints"): without them, opening scanned every segment
holding an expiring record.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pysos  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="keys per store (default 100,000)")
    p.add_argument("--opens", type=int, default=9, help="opens of each store (default 9)")
    args = p.parse_args(argv)
    keys = [f"key_{i}" for i in range(args.n)]
    values = [{"some": f"object_{i}"} for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="pysos-expiry-open-") as tmp:
        paths = {}
        for name, expire in (("plain", None), ("expire", 3600)):
            path = paths[name] = os.path.join(tmp, name)
            with pysos.Dict(path, expire=expire) as d:
                for _ in range(3):
                    for key, value in zip(keys, values):
                        d[key] = value
        times: dict[str, list[float]] = {"plain": [], "expire": []}
        for round_ in range(args.opens):
            for name in ("plain", "expire") if round_ % 2 else ("expire", "plain"):
                began = time.perf_counter()
                with pysos.Dict(paths[name], readonly=True) as d:
                    if len(d) != args.n:
                        raise AssertionError(f"{name}: {len(d)} keys, not {args.n}")
                times[name].append(time.perf_counter() - began)
        for name, path in paths.items():
            files = os.listdir(path)
            print(f"{name:6}: reopen + len() median {statistics.median(times[name]):.3f} s "
                  f"({sum(f.endswith('.jsonl') for f in files)} segments, {sum(f.endswith('.hint') for f in files)} hints)")
        ratio = statistics.median(times["expire"]) / statistics.median(times["plain"])
        print(f"expire / plain: {ratio:.2f}x the time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
