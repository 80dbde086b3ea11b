"""Field benchmark: a churning session store at DEFAULT settings (issue 13).

    python tools/churn_bench.py [--ops 210000] [--keys 20000] [--repeat 3] [--seed 1]
                                [--modes thread,off,thread+daemon,off+daemon] [--json]
    python tools/churn_bench.py --merge-cost     # CPU of one merge: scanning vs from the index

The workload of a long-running service that keeps sessions in ``pysos.Dict(path)`` with
nothing tuned: ``--keys`` session ids; each operation is, seeded, a set of a ~150-byte
dict (60 %), a delete (25 %, ``pop(key, None)``) or a batch of 20 sets (15 %); about
150 MB are written for the default 210,000 operations. Beside the writer (a process of
its own) runs a ``readonly=True`` reader in another process (a random read every
millisecond, default read-after-write) and, in the ``+daemon`` modes, the compaction
daemon ``python -m pysos.compactor DIR`` with its default options.

Modes: ``thread`` = ``autocompact=True`` (the default); ``off`` = ``autocompact=False``.
The same seed gives every mode the same operations. Reported per mode, medians over
``--repeat`` runs (modes interleaved run by run, so that drift of a shared machine hits
them alike):

- ``ops/s``: the writer's operations per second over the whole run (a batch is one op);
- ``cpu s``: CPU seconds (user + system) of the writer's process over the run, its
  compaction thread included: on a busy machine, where wall time mostly measures the
  scheduler, the ratio of these is the steadier figure of what autocompact costs;
- ``live``: ``stats()["live_bytes"]`` at the end;
- ``peak``: the largest size of the store directory (all its files), sampled every 10 ms
  by this process; ``final``: its size once the writer has closed and the daemon (if any)
  has stopped, as a service leaves it;
- ``compactions``: how many merges the MANIFEST counts (by any process).

The targets of issue 13: ``peak <= 3 x live + 16 MiB`` and ``final <= 2 x live + 8 MiB``
with the thread alone and with a daemon beside the writer; ops/s with autocompact at
least 0.8 x without (``thread`` vs ``off``, ``thread+daemon`` vs ``off+daemon``).
Wall-time numbers on a shared machine are noisy: run it on a quiet one, and compare
medians.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

if __package__ in (None, ""):  # run as a script from a checkout
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pysos  # noqa: E402

MiB = 2**20
MODES = ("thread", "off", "thread+daemon", "off+daemon")
_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (Macintosh)", "curl/8.4.0", "okhttp/4.12")


def session_value(rng: random.Random, i: int) -> dict:
    """A ~150-byte session (as JSON)."""
    return {
        "user": rng.randrange(1_000_000),
        "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
        "agent": rng.choice(_AGENTS),
        "seen": 1_700_000_000 + i,
        "cart": [rng.randrange(10_000) for _ in range(rng.randrange(4))],
        "csrf": "%016x" % rng.getrandbits(64),
    }


def run_writer(path: str, autocompact: bool, ops: int, keys: int, seed: int, ready, go, out) -> None:
    """The service: the seeded operations, as fast as it can."""
    rng = random.Random(seed)
    d = pysos.Dict(path, autocompact=autocompact)
    ready.set()
    go.wait()
    cpu_began = os.times()
    began = time.perf_counter()
    for i in range(ops):
        r = rng.random()
        if r < 0.60:
            d[f"s{rng.randrange(keys):05d}"] = session_value(rng, i)
        elif r < 0.85:
            d.pop(f"s{rng.randrange(keys):05d}", None)
        else:
            with d.batch():
                for _ in range(20):
                    d[f"s{rng.randrange(keys):05d}"] = session_value(rng, i)
    elapsed = time.perf_counter() - began
    cpu_ended = os.times()
    cpu = (cpu_ended.user - cpu_began.user) + (cpu_ended.system - cpu_began.system)
    stats = d.stats()
    d.close()
    out.put({"ops_per_s": ops / elapsed, "seconds": elapsed, "cpu_seconds": cpu, "live": stats["live_bytes"],
             "keys": stats["keys"]})


def run_reader(path: str, keys: int, stop) -> None:
    """A readonly handle in another process: one random read a millisecond."""
    rng = random.Random(7)
    r = pysos.Dict(path, readonly=True)
    while not stop.is_set():
        r.get(f"s{rng.randrange(keys):05d}")
        time.sleep(0.001)
    r.close()


def dir_bytes(path: str) -> int:
    total = 0
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            total += entry.stat(follow_symlinks=False).st_size
        except FileNotFoundError:
            pass
    return total


def run_mode(mode: str, args, base: str, run: int) -> dict:
    autocompact = mode.startswith("thread")
    daemon = mode.endswith("+daemon")
    path = os.path.join(base, f"{mode.replace('+', '-')}-{run}")
    pysos.Dict(path).close()  # an empty store, so that the daemon has something to watch
    ctx = multiprocessing.get_context("spawn")
    ready, go, stop, out = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=run_writer, args=(path, autocompact, args.ops, args.keys, args.seed, ready, go, out))
    writer.start()
    ready.wait(60)
    reader = ctx.Process(target=run_reader, args=(path, args.keys, stop))
    reader.start()
    proc = None
    if daemon:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")])))
        proc = subprocess.Popen([sys.executable, "-m", "pysos.compactor", path], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # let the reader open and the daemon start watching
    peak = [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], dir_bytes(path))
            sampling.wait(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    go.set()
    result = out.get(timeout=3600)
    writer.join(60)
    if proc is not None:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        if proc.returncode != 0:
            sys.stderr.write(err.decode(errors="replace"))
    sampling.set()
    sampler.join()
    stop.set()
    reader.join(60)
    final = dir_bytes(path)
    peak[0] = max(peak[0], final)
    with pysos.Dict(path, readonly=True) as d:
        compactions = d.stats()["compactions"]
    shutil.rmtree(path, ignore_errors=True)
    return dict(result, mode=mode, peak=peak[0], final=final, compactions=compactions)


def merge_cost(args) -> None:
    """CPU seconds of one merge of the same sealed segments by the scanning merge (the
    daemon's, and the thread's before issue 13) and by the thread's merge from the index."""
    from pysos.compactor import index_merge, merge
    from pysos.segments import index, manifest

    base = tempfile.mkdtemp(prefix="pysos-churn-merge-", dir=args.dir)
    try:
        rows = []
        for how in ("merge_run (scan)", "merge_live (index)"):
            path = os.path.join(base, how.split()[0])
            rng = random.Random(args.seed)
            d = pysos.Dict(path, autocompact=False)
            i = 0
            while d.stats()["segments"] < 3:  # two early-sealed segments of churn
                i += 1
                with d.batch():
                    for _ in range(20):
                        d[f"s{rng.randrange(args.keys):05d}"] = session_value(rng, i)
            store = d._store
            current = manifest.read(path)
            newest = int(current.segments[-1][4:-6])  # seg-NNNNNNNN.jsonl
            live = [(k, loc) for k, loc in store.index.items() if loc >> index.SEGMENT_SHIFT != newest]
            bytes_in = sum(current.size_of(n) for n in current.segments[:-1])
            lock = merge._take_compaction_lock(path, 0.0)
            began = time.process_time()
            try:
                if how.startswith("merge_run"):
                    result = merge.merge_run(path, current, 0, 2, segment_size=store.segment_size)
                else:
                    result = index_merge.merge_live(path, current, 2, live, segment_size=store.segment_size)
            finally:
                lock.release()
            cpu = time.process_time() - began
            d.close()
            rows.append((how, bytes_in, result["bytes_out"], cpu))
        print(f"{'merge':<20} {'MiB in':>7} {'MiB out':>8} {'cpu s':>7} {'MiB/cpu s':>10}")
        for how, bytes_in, bytes_out, cpu in rows:
            print(f"{how:<20} {bytes_in / MiB:>7.2f} {bytes_out / MiB:>8.2f} {cpu:>7.3f} {bytes_in / MiB / cpu:>10.1f}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(pysos.__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=210_000, help="writer operations (default 210000: ~150 MB)")
    parser.add_argument("--keys", type=int, default=20_000, help="session ids (default 20000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; medians are reported (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--dir", help="where to put the stores (default: a temp dir)")
    parser.add_argument("--json", action="store_true", help="print every run as JSON lines too")
    parser.add_argument("--merge-cost", action="store_true",
                        help="only measure the CPU time of one merge, scanning vs from the index")
    args = parser.parse_args(argv)
    if args.merge_cost:
        merge_cost(args)
        return 0
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}")
    base = tempfile.mkdtemp(prefix="pysos-churn-bench-", dir=args.dir)
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    try:
        for run in range(args.repeat):
            for mode in modes:
                row = run_mode(mode, args, base, run)
                runs[mode].append(row)
                if args.json:
                    print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"pysos from {_root()}, python {sys.version.split()[0]}, {os.cpu_count()} cpus; "
          f"{args.ops} ops on {args.keys} keys, seed {args.seed}, medians of {args.repeat}")
    print(f"{'mode':<14} {'ops/s':>8} {'cpu s':>7} {'live MiB':>9} {'peak MiB':>9} {'final MiB':>10} "
          f"{'peak<=3L+16':>12} {'final<=2L+8':>12} {'compactions':>12}")
    med = {}
    for mode, rows in runs.items():
        m = {k: statistics.median(r[k] for r in rows)
             for k in ("ops_per_s", "cpu_seconds", "live", "peak", "final", "compactions")}
        med[mode] = m
        live = m["live"]
        print(f"{mode:<14} {m['ops_per_s']:>8,.0f} {m['cpu_seconds']:>7.1f} {live / MiB:>9.2f} {m['peak'] / MiB:>9.2f} {m['final'] / MiB:>10.2f} "
              f"{str(m['peak'] <= 3 * live + 16 * MiB):>12} {str(m['final'] <= 2 * live + 8 * MiB):>12} "
              f"{m['compactions']:>12g}")
    for on, off in (("thread", "off"), ("thread+daemon", "off+daemon")):
        if on in med and off in med:
            print(f"{on} / {off}: ops/s {med[on]['ops_per_s'] / med[off]['ops_per_s']:.2f}x, "
                  f"writer CPU s {med[on]['cpu_seconds'] / med[off]['cpu_seconds']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
