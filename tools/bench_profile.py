#!/usr/bin/env python3
"""cProfile of pysos's hot paths, on the workload of tools/bench.py.

    python tools/bench_profile.py                 # inserts, reads, updates, deletes at N = 100,000
    python tools/bench_profile.py --ops read --top 25 --durability fsync
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_stores as stores  # noqa: E402
from bench_workloads import SEED, make_value  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--ops", default="insert,read,update,delete")
    p.add_argument("--durability", default="flush")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--sort", default="tottime")
    args = p.parse_args(argv)
    pysos = stores.load_pysos()
    keys = [f"key_{i}" for i in range(args.n)]
    values = [make_value(i, 0) for i in range(args.n)]
    rng = random.Random(SEED)
    order = keys[:]
    rng.shuffle(order)
    updates = [make_value(i, 100, "updated") for i in range(args.n)]
    ops = {
        "insert": lambda d: [d.__setitem__(k, v) for k, v in zip(keys, values)],
        "read": lambda d: [d[k] for k in order],
        "update": lambda d: [d.__setitem__(k, v) for k, v in zip(order, updates)],
        "delete": lambda d: [d.__delitem__(k) for k in order[: args.n // 2]],
    }
    with tempfile.TemporaryDirectory() as tmp:
        with pysos.Dict(Path(tmp) / "store", durability=args.durability) as d:
            for name in ("insert", "read", "update", "delete"):
                if name not in args.ops.split(","):
                    ops[name](d)  # keep the store in the state the next op expects
                    continue
                profile = cProfile.Profile()
                profile.enable()
                ops[name](d)
                profile.disable()
                print(f"\n===== {name} x {args.n if name != 'delete' else args.n // 2} =====")
                pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
