#!/usr/bin/env python3
"""User-space instructions per operation of pysos's hot paths, counted by callgrind.

    python tools/bench_instructions.py                    # write, read, reader-read, raw loops
    python tools/bench_instructions.py --ops write --n 20000
    python tools/bench_instructions.py --run write --n 100  # one workload, no valgrind (what the
                                                           # counter runs; also the smoke test)

Wall-clock rates on a shared VM move by 10-40 % between runs; instruction counts of the same
code and inputs repeat exactly, so they show what a change of the Python path saved. Each
count is (instructions of a run that does the operation 3 x N times) minus (instructions
of a run that only sets up), divided by 3 x N. System calls run in the kernel and are not
counted: a change that removes one (a memory map instead of pread) shows in bench.py, not
here. Needs valgrind (Debian package ``valgrind``).

Operations (values ``{"some": "object_<i>"}``, keys ``"key_<i>"``):
  write        d[k] = v on a writer
  read         d[k] on the writer, keys written beforehand
  reader-read  d[k] on a readonly handle in the same process (default refresh: follows the
               files on every read)
  write-expire d[k] = v on a writer opened with expire=3600 (every item expires)
  set-expire   d.set(k, v, expire=3600) on a writer opened without a default expire
  set-never    d.set(k, v, expire=None) on such a writer (set-expire's call with expiry off)
  churn-expire d[k] = v on a writer opened with expire=5, under a fake clock that moves 1 ms
               a write: from the 5,000th write on, each write also sees one key expire (the
               other -expire ops see none expire: a service's steady state is this one)
  churn-still  the same with expire=3600 (nothing expires): churn-expire minus churn-still is
               the cost of expiring, per write, without the fake clock's own cost
  churn-mixed-expire, churn-mixed-still  the same, but each step also reads the key it
               wrote (counts are per step: a write and a read); a deadline passed
               before nearly every read, which then checks its own key's deadline
  read-expire  d[k] on the writer, keys written beforehand with expire=3600
  write-tagged d[k] = v on a writer opened with codec="tagged" (the same plain values)
  read-tagged  d[k] on such a writer, keys written beforehand
  reader-read-expire  reader-read of keys written with expire=3600
  raw-write    orjson.dumps + os.write + an index dict (the raw limit row of bench.py)
  raw-read     os.pread + orjson.loads (the raw limit row's read)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PASSES = 3
OPS = ("write", "read", "reader-read", "write-expire", "set-expire", "set-never", "churn-expire", "churn-still",
       "churn-mixed-expire", "churn-mixed-still",
       "read-expire", "reader-read-expire", "write-tagged", "read-tagged", "raw-write", "raw-read")


def run(op: str, n: int, setup_only: bool) -> None:
    """The workload, in this process (the counter runs it under valgrind)."""
    directory = tempfile.mkdtemp(prefix="pysos-instr-")
    try:
        _workload(op, n, setup_only, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _workload(op: str, n: int, setup_only: bool, directory: str) -> None:
    sys.path.insert(0, str(ROOT))
    import orjson

    import pysos

    keys = [f"key_{i}" for i in range(n)]
    values = [{"some": f"object_{i}"} for i in range(n)]
    if op.startswith("raw"):
        fd = os.open(os.path.join(directory, "raw.jsonl"), os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        index, end = {}, 0

        def raw_write(key, value):
            nonlocal end
            line = orjson.dumps({"k": key, "v": value}) + b"\n"
            os.write(fd, line)
            index[key] = (end, len(line))
            end += len(line)

        if op == "raw-read":
            for key, value in zip(keys, values):
                raw_write(key, value)
        if setup_only:
            return
        for _ in range(PASSES):
            if op == "raw-write":
                for key, value in zip(keys, values):
                    raw_write(key, value)
            else:
                for key in keys:
                    offset, length = index[key]
                    orjson.loads(os.pread(fd, length, offset))["v"]
        return
    expire = 3600 if op.endswith("-expire") and op != "set-expire" else None
    fake = None
    if op.startswith("churn"):
        expire, fake = (5 if op.endswith("-expire") else 3600), _FakeClock()
    codec = "tagged" if op.endswith("-tagged") else None
    store = pysos.Dict(os.path.join(directory, "store"), autocompact=False, expire=expire, codec=codec)
    writes = op.startswith(("write", "set", "churn"))
    expire_of_set = 3600 if op == "set-expire" else None
    if not writes:
        for key, value in zip(keys, values):
            store[key] = value
    handle = pysos.Dict(os.path.join(directory, "store"), readonly=True) if op.startswith("reader") else store
    if setup_only:
        return
    for _ in range(PASSES):
        if op.startswith("set"):
            for key, value in zip(keys, values):
                store.set(key, value, expire=expire_of_set)
        elif op.startswith("churn-mixed"):
            for key, value in zip(keys, values):
                fake.now += 0.001
                store[key] = value
                store[key]
        elif fake is not None:
            for key, value in zip(keys, values):
                fake.now += 0.001
                store[key] = value
        elif writes:
            for key, value in zip(keys, values):
                store[key] = value
        else:
            for key in keys:
                handle[key]


class _FakeClock:
    """Replaces pysos's wall and monotonic clocks (as tests/fake_clock.py does) with one
    that moves only when the workload says: the real one, under valgrind, moves ~50x faster
    per operation than outside it, which would change what expires per write."""

    def __init__(self) -> None:
        import pysos.dict
        import pysos.list
        from pysos.segments import clock

        self.now = 1000.0
        clock.wall = self.wall
        clock.monotonic = pysos.dict.monotonic = pysos.list.monotonic = self.monotonic

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now

    def monotonic(self) -> float:
        return self.now


def count(op: str, n: int, setup_only: bool) -> int:
    """Instructions callgrind counts for one run of ``op`` (setup only, or all of it)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
            sys.executable, __file__, "--run", op, "--n", str(n),
        ] + (["--setup-only"] if setup_only else [])
        env = dict(os.environ, PYTHONHASHSEED="0")  # the same dict layouts every run
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        found = re.search(r"Collected : (\d+)", done.stderr)
        if done.returncode != 0 or not found:
            raise SystemExit(f"valgrind failed for {op}: {done.stderr[-2000:]}")
        return int(found.group(1))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ops", default=",".join(OPS), help="comma list among " + ", ".join(OPS))
    p.add_argument("--n", type=int, default=20_000, help="keys; each is operated on 3 times")
    p.add_argument("--run", choices=OPS, help=argparse.SUPPRESS)
    p.add_argument("--setup-only", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.run:
        run(args.run, args.n, args.setup_only)
        return
    ops = args.ops.split(",")
    for op in ops:
        if op not in OPS:
            p.error(f"unknown op {op!r}; choose among {', '.join(OPS)}")
    print(f"user-space instructions per operation (callgrind), {args.n:,} keys x {PASSES}")
    for op in ops:
        total, setup = count(op, args.n, False), count(op, args.n, True)
        print(f"{op:12} {(total - setup) / (PASSES * args.n):10,.0f}")


if __name__ == "__main__":
    main()
