"""Expiry on against off, by CPU time, in alternating rounds of one process.

    python tools/bench_expiry_cpu.py                     # 100,000 keys, 30 rounds
    python tools/bench_expiry_cpu.py --autocompact       # with the background compactor (default settings)
    python tools/bench_expiry_cpu.py --autocompact --value-bytes 200   # bigger records
    python tools/bench_expiry_cpu.py --autocompact --bytes-only        # the deadline's bytes alone

Two stores of the same keys and values, one opened with ``expire=3600`` (nothing expires
during the run), the other without. Each round reads every key of each store, then writes
every key again, the two stores taking turns (which goes first alternates), and times each
with ``time.process_time()`` (the process's CPU time: its compaction thread's too) and
by the wall clock. The ratio of each round is expire's ops/s over plain's; the median and
the quartiles of the rounds are printed, by CPU time and by the wall clock (what the
caller sees: on a machine with a core to spare, the compactor's work outside the GIL runs
beside it). On a shared machine the wall clock of one run moves by ±30 %; rounds
that alternate within one process see the same noise on both sides, so their median is
the steadier figure (``tools/bench_instructions.py`` counts instructions instead).

Last, the CPU seconds by thread for each store (Linux: from ``/proc/self/task``): the
caller's reads and writes of the rounds, its compaction thread and the thread that writes
the hints of sealed segments (these two: the whole run): where expiry's cost lies. Their
sum over the whole run, plain's over the other's, is the figure least moved by which
round a merge falls in.

``--bytes-only`` opens the second store without expiry too, but gives each of its values a
member that makes its record as long as the record with a deadline (on average: a
deadline's shortest repr is 15 to 18 digits, so the padding is the mean over many), what the
deadline's bytes alone cost (written, checksummed, copied by the compactor), apart from the
rest of what expiry does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pysos  # noqa: E402
from pysos.segments import record  # noqa: E402



def _deadline_bytes(key: str, value: object) -> float:
    """The bytes a deadline adds to the record of ``key -> value``, averaged over deadlines
    spread across a second: ``repr`` of a float drops trailing zeros, so one sample can be
    2 bytes short of what the expiring store writes on average."""
    plain = len(record.encode_item(key, value))
    now = time.time() + 3600
    return statistics.mean(len(record.encode_item(key, value, now + i / 4093)) - plain for i in range(4093))

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="keys per store (default 100,000)")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--autocompact", action="store_true", help="leave the background compactor on (pysos's default)")
    p.add_argument("--value-bytes", type=int, default=0,
                   help='pad each value with a string of this many bytes (default 0: {"some": "object_<i>"}, '
                        "records of ~60 bytes, to which a deadline adds ~22)")
    p.add_argument("--bytes-only", action="store_true",
                   help="the second store without expiry, its records as long as with a deadline (see above)")
    args = p.parse_args(argv)
    keys = [f"key_{i}" for i in range(args.n)]
    pad = "x" * args.value_bytes
    values = [{"some": f"object_{i}", **({"pad": pad} if pad else {})} for i in range(args.n)]
    second = values
    if args.bytes_only:  # ,"p":"yy..." makes up the bytes "x":<deadline>, adds (7 + its y's)
        extra = round(_deadline_bytes(keys[0], values[0]))
        second = [{**value, "p": "y" * (extra - 7)} for value in values]
    with tempfile.TemporaryDirectory(prefix="pysos-expiry-cpu-") as tmp:
        stores = {name: pysos.Dict(os.path.join(tmp, name), autocompact=args.autocompact, expire=expire)
                  for name, expire in (("plain", None), ("expire", None if args.bytes_only else 3600))}
        contents = {"plain": values, "expire": second}
        for name, d in stores.items():
            for key, value in zip(keys, contents[name]):
                d[key] = value
        ratios: dict[str, list[float]] = {"read": [], "update": []}
        wall_ratios: dict[str, list[float]] = {"read": [], "update": []}
        caller = dict.fromkeys(stores, 0.0)  # the main thread's CPU seconds per store
        for n in range(args.rounds):
            spent, waited = {}, {}
            for name, d in (list(stores.items()) if n % 2 else list(reversed(stores.items()))):
                mine = time.thread_time()
                start, began = time.process_time(), time.perf_counter()
                for key in keys:
                    d[key]
                spent[name, "read"] = time.process_time() - start
                waited[name, "read"] = time.perf_counter() - began
                start, began = time.process_time(), time.perf_counter()
                for key, value in zip(keys, contents[name]):
                    d[key] = value
                spent[name, "update"] = time.process_time() - start
                waited[name, "update"] = time.perf_counter() - began
                caller[name] += time.thread_time() - mine
            for op, got in ratios.items():
                got.append(spent["plain", op] / spent["expire", op])
                wall_ratios[op].append(waited["plain", op] / waited["expire", op])
        by_thread = _threads_cpu(tmp)
        per_key = {name: d.stats()["live_bytes"] / len(d) for name, d in stores.items()}
        for d in stores.values():
            d.close()
    what = "records as long as with a deadline, no expiry" if args.bytes_only else "expire=3600"
    print(f"{args.n:,} keys, {args.rounds} rounds, autocompact={args.autocompact}, value padding "
          f"{args.value_bytes} bytes: ops/s with {what} / without")
    print(f"  live bytes a key: plain {per_key['plain']:.1f}, the other {per_key['expire']:.1f}")
    for op, got in ratios.items():
        print(f"  {op:7s} median {_spread(got)}")
    print("by the wall clock of the same rounds (the caller's ops/s; the compactor's C work beside it not counted):")
    for op, got in wall_ratios.items():
        print(f"  {op:7s} median {_spread(got)}")
    print("CPU seconds by thread:")
    total = {}
    for name in stores:
        threads = "  ".join(f"{kind} {by_thread[kind, name]:.2f}" if (kind, name) in by_thread else f"{kind} (none)"
                            for kind in ("compactor", "hints"))
        total[name] = caller[name] + sum(by_thread.get((kind, name), 0.0) for kind in ("compactor", "hints"))
        print(f"  {name:7s} caller {caller[name]:.2f}  {threads}  all {total[name]:.2f}")
    print(f"  whole run, all threads: plain / the other {total['plain'] / total['expire']:.3f}")
    return 0


def _spread(ratios: list[float]) -> str:
    ratios = sorted(ratios)
    q = len(ratios) // 4
    return f"{statistics.median(ratios):.3f}  (quartiles {ratios[q]:.3f} .. {ratios[-q - 1]:.3f})"


def _threads_cpu(tmp: str) -> dict[tuple[str, str], float]:
    """CPU seconds so far of each pysos thread of a store under ``tmp``, by (kind, store name)."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    for thread in threading.enumerate():
        if not thread.name.startswith("pysos-") or thread.native_id is None:
            continue
        kind, _, directory = thread.name[len("pysos-"):].partition(" ")
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # not Linux, or the thread just ended
            continue
        found[kind, os.path.relpath(directory, tmp)] = (int(fields[11]) + int(fields[12])) / tick
    return found


if __name__ == "__main__":
    raise SystemExit(main())
