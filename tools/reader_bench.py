"""Reads per second of a pysos reader process, alone or while a writer process writes.

    python tools/reader_bench.py [--seconds 3] [--keys 10000] [--value-size 100]
                                 [--writer-rate 0] [--json]

Modes (each in fresh processes, on the same store):

- ``alone, refresh_interval=0``: no writer; every read still checks the files (one
  ``stat`` of MANIFEST and one ``fstat`` of the newest segment).
- ``alone, refresh_interval=0.5``: no writer; the check runs at most twice a second.
- ``writer, refresh_interval=0``: the default, read-after-write: each read also indexes the
  records the writer appended since the previous read.
- ``writer, refresh_interval=0.5``: bounded staleness (at most 0.5 s behind).

The reader reads random existing keys with ``d[key]``; the writer overwrites random keys
(``--writer-rate`` writes/s, 0 = as fast as it can). Reported: reads/s of the reader,
writes/s of the writer, how many compactions the reader followed, and its staleness: every
10th write of the writer sets the key ``clock`` to ``time.time()``, the reader reads it
after every 256 reads, and how old the time it finds is gives one sample (p50, p99; this
includes up to 10 writes' worth of the writer's pace).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pysos  # noqa: E402

_CLOCK_EVERY = 10  # the writer sets "clock" every this many writes

MODES = [
    ("alone", 0.0),
    ("alone", 0.5),
    ("writer", 0.0),
    ("writer", 0.5),
]


def _writer(path, keys, value, rate, segment_size, started, stop, out):
    rng = random.Random(1)
    d = pysos.Dict(path, segment_size=segment_size)
    started.set()
    n = 0
    began = time.perf_counter()
    while not stop.is_set():
        d[f"k{rng.randrange(keys)}"] = value
        n += 1
        if n % _CLOCK_EVERY == 0:
            d["clock"] = time.time()
        if rate:
            ahead = n / rate - (time.perf_counter() - began)
            if ahead > 0:
                time.sleep(ahead)
    elapsed = time.perf_counter() - began
    d.close()
    out.put(("writer", n / elapsed))


def _reader(path, keys, refresh_interval, seconds, go, out):
    rng = random.Random(2)
    names = [f"k{rng.randrange(keys)}" for _ in range(4096)]
    r = pysos.Dict(path, readonly=True, refresh_interval=refresh_interval)
    end_before = r._store._active_end, r._store._manifest.generation
    go.wait()
    n = 0
    stale = []
    began = time.perf_counter()
    deadline = began + seconds
    while True:
        for at in range(0, len(names), 256):
            for name in names[at : at + 256]:
                r[name]
            clock = r.get("clock")
            if clock is not None:
                stale.append(time.time() - clock)
        n += len(names)
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - began
    stats = r.stats()
    r.close()
    stale.sort()
    staleness = {f"stale_p{p}_ms": stale[min(len(stale) - 1, len(stale) * p // 100)] * 1000 if stale else None
                 for p in (50, 99)}
    out.put(("reader", {"reads_per_s": n / elapsed, "generations_followed": stats["generation"] - end_before[1],
                        **staleness}))


def run_mode(path, mode, refresh_interval, args) -> dict:
    ctx = multiprocessing.get_context("spawn")
    out, stop, go, started = ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Event()
    value = "v" * args.value_size
    procs = []
    if mode == "writer":
        writer = ctx.Process(target=_writer, args=(path, args.keys, value, args.writer_rate,
                                                  args.segment_size, started, stop, out))
        writer.start()
        started.wait(60)
        procs.append(writer)
    reader = ctx.Process(target=_reader, args=(path, args.keys, refresh_interval, args.seconds, go, out))
    reader.start()
    time.sleep(0.5)  # let the reader open and the writer get going
    go.set()
    results = {}
    results.update([out.get(timeout=args.seconds + 120)])
    stop.set()
    for proc in procs:
        results.update([out.get(timeout=120)])
    for proc in [reader, *procs]:
        proc.join(60)
    row = {"mode": mode, "refresh_interval": refresh_interval, **results["reader"]}
    row["writes_per_s"] = results.get("writer")
    return row


def run(args, modes=MODES) -> list[dict]:
    """The rows of ``modes`` on a fresh store (``args``: the options of :func:`parser`)."""
    base = tempfile.mkdtemp(prefix="pysos-reader-bench-", dir=args.dir)
    path = os.path.join(base, "store")
    try:
        with pysos.Dict(path, segment_size=args.segment_size) as d:
            d.update({f"k{i}": "v" * args.value_size for i in range(args.keys)})
        return [run_mode(path, mode, interval, args) for mode, interval in modes]
    finally:
        shutil.rmtree(base, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per mode (default 3)")
    parser.add_argument("--keys", type=int, default=10_000, help="keys in the store (default 10000)")
    parser.add_argument("--value-size", type=int, default=100, help="bytes per value (default 100)")
    parser.add_argument("--writer-rate", type=float, default=0.0,
                        help="writes/s of the writer, 0 = as fast as it can (default)")
    parser.add_argument("--segment-size", type=int, default=64 * 2**20, help="writer's segment_size")
    parser.add_argument("--dir", help="where to put the store (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"pysos {pysos.__version__}, python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          f"{args.keys} keys of {args.value_size} B, {args.seconds:g} s per mode, "
          f"writer rate {'unlimited' if not args.writer_rate else f'{args.writer_rate:g}/s'}")
    print(f"{'mode':<8} {'refresh_interval':>16} {'reads/s':>10} {'writes/s':>10} {'swaps followed':>15} "
          f"{'stale p50 ms':>13} {'stale p99 ms':>13}")
    for row in rows:
        writes = "-" if row["writes_per_s"] is None else f"{row['writes_per_s']:,.0f}"
        p50, p99 = (("-" if row[k] is None else f"{row[k]:.1f}") for k in ("stale_p50_ms", "stale_p99_ms"))
        print(f"{row['mode']:<8} {row['refresh_interval']:>16g} {row['reads_per_s']:>10,.0f} {writes:>10} "
              f"{row['generations_followed']:>15} {p50:>13} {p99:>13}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
