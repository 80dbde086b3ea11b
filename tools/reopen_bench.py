"""Reopen time of a large pysos store with hint files vs without.

    python tools/reopen_bench.py [--keys 1000000] [--repeat 3] [--dir DIR] [--keep] [--reuse]

Builds a Dict of ``--keys`` keys (values like ``{"n": 17, "name": "item-17", "tags": [..]}``),
compacts it (the merge writes a hint file per segment), closes it, then times opening it
in fresh processes (Python start and import excluded; the OS page cache is warm, as it
is for a service restarting), with the growth of each one's peak RSS while it opens:

1. with the hint files (the index is read from hints, no value is parsed);
2. after deleting every ``.hint`` file (each segment is scanned and every record parsed).

Both as a writer (``pysos.Dict(path)``) and as a reader (``readonly=True``). Prints one
line per case: best and median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # this checkout's pysos, in this process and its children
sys.path.insert(0, str(ROOT))

# Peak RSS from /proc (Linux): ru_maxrss would carry over the parent's peak through fork + exec.
_CHILD = r"""
import sys, time
import pysos
def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
path, readonly = sys.argv[1], sys.argv[2] == "1"
before = peak_rss()
t = time.perf_counter()
d = pysos.Dict(path, readonly=readonly, autocompact=False)
elapsed = time.perf_counter() - t
assert len(d) == int(sys.argv[3]), len(d)
peak = peak_rss() - before
d.close()
print(elapsed, peak)
"""


def build(path: str, keys: int) -> None:
    import pysos

    started = time.perf_counter()
    with pysos.Dict(path, autocompact=False) as d:
        chunk = 10_000
        for base in range(0, keys, chunk):
            with d.batch():
                for n in range(base, min(base + chunk, keys)):
                    d[f"key-{n:08d}"] = {"n": n, "name": f"item-{n}", "tags": ["a", "b", n % 7]}
        result = d.compact()
        stats = d.stats()
    print(f"built {keys} keys in {time.perf_counter() - started:.1f} s: {stats['segments']} segments, "
          f"{stats['disk_bytes'] / 2**20:.1f} MiB; compaction wrote {result['segments_out']} segment(s) with hints")


def time_open(path: str, keys: int, readonly: bool, repeat: int) -> tuple[list[float], int]:
    """Seconds of each open, and the largest peak-RSS growth an open caused, in bytes."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    times, peaks = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", _CHILD, path, "1" if readonly else "0", str(keys)],
                             check=True, capture_output=True, text=True, env=env)
        elapsed, peak = out.stdout.split()
        times.append(float(elapsed))
        peaks.append(int(peak))
    return times, max(peaks)


def report(label: str, times: list[float], peak: int) -> None:
    print(f"{label:<34} best {min(times):7.3f} s   median {statistics.median(times):7.3f} s   "
          f"peak RSS +{peak / 2**20:.0f} MiB   runs {' '.join(f'{t:.3f}' for t in times)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", help="where to build the store (default: a temp dir, removed after)")
    parser.add_argument("--keep", action="store_true", help="keep the store")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a store kept in --dir by an earlier run (re-compacted for its hints)")
    args = parser.parse_args(argv)
    parent = args.dir or tempfile.mkdtemp(prefix="pysos-reopen-bench-")
    path = os.path.join(parent, "store")
    try:
        if args.reuse and os.path.exists(os.path.join(path, "MANIFEST")):
            import pysos

            with pysos.Dict(path, autocompact=False) as d:
                d.compact()  # writes the hint files again
        else:
            build(path, args.keys)
        hints = sorted(n for n in os.listdir(path) if n.endswith(".hint"))
        hint_bytes = sum(os.path.getsize(os.path.join(path, n)) for n in hints)
        print(f"{len(hints)} hint file(s), {hint_bytes / 2**20:.1f} MiB")
        results = {}
        for readonly in (False, True):
            results[("hints", readonly)] = time_open(path, args.keys, readonly, args.repeat)
        for name in hints:
            os.unlink(os.path.join(path, name))
        for readonly in (False, True):
            results[("no hints", readonly)] = time_open(path, args.keys, readonly, args.repeat)
        for (what, readonly), (times, peak) in results.items():
            report(f"open {'reader' if readonly else 'writer'} with {what}", times, peak)
        for readonly in (False, True):
            ratio = min(results[("no hints", readonly)][0]) / min(results[("hints", readonly)][0])
            print(f"{'reader' if readonly else 'writer'}: hints make opening {ratio:.1f}x faster")
    finally:
        if not args.keep:
            shutil.rmtree(parent if not args.dir else path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
