"""Expiry on against off, by CPU time, in alternating rounds of one process.

    python tools/bench_expiry_cpu.py                     # 100,000 keys, 30 rounds
    python tools/bench_expiry_cpu.py --autocompact       # with the background compactor (default settings)
    python tools/bench_expiry_cpu.py --autocompact --value-bytes 200   # bigger records

Two stores of the same keys and values, one opened with ``expire=3600`` (nothing expires
during the run), the other without. Each round reads every key of each store, then writes
every key again, the two stores taking turns (which goes first alternates), and times each
with ``time.process_time()`` (the process's CPU time: its compaction thread's too). The
ratio of each round is expire's ops/s over plain's; the median and the quartiles of the
rounds are printed. On a shared machine the wall clock of one run moves by ±30 %; rounds
that alternate within one process see the same noise on both sides, so their median is
the steadier figure (``tools/bench_instructions.py`` counts instructions instead).
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
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--autocompact", action="store_true", help="leave the background compactor on (pysos's default)")
    p.add_argument("--value-bytes", type=int, default=0,
                   help='pad each value with a string of this many bytes (default 0: {"some": "object_<i>"}, '
                        "records of ~60 bytes, to which a deadline adds ~22)")
    args = p.parse_args(argv)
    keys = [f"key_{i}" for i in range(args.n)]
    pad = "x" * args.value_bytes
    values = [{"some": f"object_{i}", **({"pad": pad} if pad else {})} for i in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="pysos-expiry-cpu-") as tmp:
        stores = {name: pysos.Dict(os.path.join(tmp, name), autocompact=args.autocompact, expire=expire)
                  for name, expire in (("plain", None), ("expire", 3600))}
        for d in stores.values():
            for key, value in zip(keys, values):
                d[key] = value
        ratios: dict[str, list[float]] = {"read": [], "update": []}
        for n in range(args.rounds):
            spent = {}
            for name, d in (list(stores.items()) if n % 2 else list(reversed(stores.items()))):
                start = time.process_time()
                for key in keys:
                    d[key]
                spent[name, "read"] = time.process_time() - start
                start = time.process_time()
                for key, value in zip(keys, values):
                    d[key] = value
                spent[name, "update"] = time.process_time() - start
            for op, got in ratios.items():
                got.append(spent["plain", op] / spent["expire", op])
        for d in stores.values():
            d.close()
    print(f"{args.n:,} keys, {args.rounds} rounds, autocompact={args.autocompact}, value padding "
          f"{args.value_bytes} bytes: ops/s with expire=3600 / without")
    for op, got in ratios.items():
        got.sort()
        q = len(got) // 4
        print(f"  {op:7s} median {statistics.median(got):.3f}  (quartiles {got[q]:.3f} .. {got[-q - 1]:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
