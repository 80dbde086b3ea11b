"""Reopening a big store, and a reader beside a paced writer, side by side in one run.

    python tools/fastopen_bench.py [--keys 1000000] [--further 100000] [--repeat 3]
                                   [--reader-seconds 3] [--writer-rate 10000] [--dir DIR]

Builds ``--keys`` keys ``key_<i>`` -> ``{"some": "object_<i>"}`` in a pysos Dict (this
checkout, default settings, written in batches of 10,000, closed cleanly) and the same
data in a pysos 1.3 file (from PyPI, installed once into ``bench-out/_pysos13`` by pip
``--target``: a package cannot list another version of itself as a dependency). Then,
each in a fresh process (Python start and imports excluded; warm page cache, as for a
service restarting), times ``open`` + ``len()`` and reads that process's peak RSS
(``VmHWM``):

1. pysos after a clean close;
2. pysos after a process that opened it made ``--further`` more writes (updates of
   ``key_0``...) and was killed with SIGKILL (before any close);
3. pysos 1.3 on the same data, and after the same further writes and SIGKILL;
4. pysos on the clean store with its hint files deleted (how it opened before the writer
   wrote hints; one run): the peak RSS opening must not exceed.

Each reopen of a killed store runs on a fresh copy of it, so that no run sees what an
earlier one repaired or wrote. Then :mod:`reader_bench` gives reads/s of a reader process
alone and beside a writer process paced at ``--writer-rate`` updates/s (default
``refresh_interval=0``: read-after-write), with the reader's staleness. One table at the
end, with the ratios the targets of issue 14 name.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import bench_stores  # noqa: E402
import reader_bench  # noqa: E402

_PEAK = r"""
def peak_rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
"""

_LOAD13 = r"""
import os, sys
def load13(directory):
    import importlib.util, types
    sys.modules.setdefault("chardet", types.ModuleType("chardet"))  # 1.3 imports it for csv2sos only
    spec = importlib.util.spec_from_file_location("pysos13", os.path.join(directory, "pysos.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
"""

# argv: which ("pysos" | "pysos13"), path, expected len, pysos 1.3's directory
_OPEN = _PEAK + _LOAD13 + r"""
import time
which, path, expect = sys.argv[1], sys.argv[2], int(sys.argv[3])
if which == "pysos":
    import pysos
    Dict = pysos.Dict
else:
    Dict = load13(sys.argv[4]).Dict
t, cpu = time.perf_counter(), time.process_time()
d = Dict(path)
n = len(d)
elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
assert n == expect, (n, expect)
print(elapsed, cpu, peak_rss(), flush=True)
os._exit(0)  # no close: a close would write (pysos: the newest segment's hint)
"""

# argv: which, path, further writes, pysos 1.3's directory
_WRITE_THEN_WAIT = _LOAD13 + r"""
import time
which, path, further = sys.argv[1], sys.argv[2], int(sys.argv[3])
if which == "pysos":
    import pysos
    d = pysos.Dict(path)
else:
    d = load13(sys.argv[4]).Dict(path)
for i in range(further):
    d[f"key_{i}"] = {"some": f"object_{i}", "again": 1}
print("written", flush=True)
time.sleep(3600)
"""


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _child_args(which: str, pysos13_dir: str) -> list[str]:
    return [pysos13_dir] if which == "pysos13" else []


def build_pysos(path: str, keys: int) -> float:
    """Write the store; return the seconds its close took (it writes the newest segment's hint)."""
    import pysos

    d = pysos.Dict(path)
    for base in range(0, keys, 10_000):
        with d.batch():
            for i in range(base, min(base + 10_000, keys)):
                d[f"key_{i}"] = {"some": f"object_{i}"}
    started = time.perf_counter()
    d.close()
    return time.perf_counter() - started


def build_pysos13(path: str, keys: int, pysos13_dir: str) -> None:
    mod = bench_stores.load_pysos13(pysos13_dir)
    d = mod.Dict(path)
    for i in range(keys):
        d[f"key_{i}"] = {"some": f"object_{i}"}
    d.close()


def kill_during_writes(which: str, path: str, further: int, pysos13_dir: str) -> None:
    """A process opens ``path``, makes ``further`` writes, and is killed with SIGKILL."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_THEN_WAIT, which, path, str(further),
                             *_child_args(which, pysos13_dir)],
                            stdout=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline()
        if line.strip() != "written":
            raise RuntimeError(f"the writing child of {which} failed")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def time_open(which: str, path: str, expect: int, repeat: int, pysos13_dir: str,
              fresh_copy_of: str | None = None) -> tuple[list[float], list[float], int]:
    """Seconds of each open + len() (wall, CPU), and the largest peak RSS (VmHWM) of the processes."""
    times, cpus, peaks = [], [], []
    for _ in range(repeat):
        if fresh_copy_of is not None:
            _copy(fresh_copy_of, path)
        out = subprocess.run([sys.executable, "-c", _OPEN, which, path, str(expect),
                              *_child_args(which, pysos13_dir)],
                             check=True, capture_output=True, text=True, env=_env())
        elapsed, cpu, peak = out.stdout.split()
        times.append(float(elapsed))
        cpus.append(float(cpu))
        peaks.append(int(peak))
    return times, cpus, max(peaks)


def _copy(source: str, target: str) -> None:
    if os.path.isdir(target):
        shutil.rmtree(target)
    elif os.path.exists(target):
        os.unlink(target)
    if os.path.isdir(source):
        shutil.copytree(source, target)
    else:
        shutil.copy2(source, target)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--further", type=int, default=100_000, help="writes before the SIGKILL")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reader-seconds", type=float, default=3.0)
    parser.add_argument("--writer-rate", type=float, default=10_000)
    parser.add_argument("--dir", help="where to build the stores (default: a temp dir, removed after)")
    parser.add_argument("--pysos13-dir", default=str(ROOT / "bench-out" / "_pysos13"))
    args = parser.parse_args(argv)
    if bench_stores.install_pysos13(args.pysos13_dir) is None:
        print("fastopen_bench: could not install pysos 1.3 from PyPI", file=sys.stderr)
        return 2
    parent = tempfile.mkdtemp(prefix="pysos-fastopen-bench-", dir=args.dir)
    rows: dict[str, tuple[list[float], list[float], int]] = {}
    try:
        started = time.perf_counter()
        clean = os.path.join(parent, "pysos")
        old = os.path.join(parent, "pysos13.sos")
        close_seconds = build_pysos(clean, args.keys)
        build_pysos13(old, args.keys, args.pysos13_dir)
        print(f"built {args.keys:,} keys twice in {time.perf_counter() - started:.0f} s; pysos's close "
              f"(writing the newest segment's hint) took {close_seconds:.2f} s", flush=True)
        killed, old_killed = clean + "-killed", old + "-killed"
        for which, source, target in (("pysos", clean, killed), ("pysos13", old, old_killed)):
            _copy(source, target)
            kill_during_writes(which, target, args.further, args.pysos13_dir)
        scratch = os.path.join(parent, "scratch")
        rows["pysos, clean close"] = time_open("pysos", clean, args.keys, args.repeat, args.pysos13_dir)
        rows["pysos 1.3"] = time_open("pysos13", old, args.keys, args.repeat, args.pysos13_dir)
        rows["pysos, SIGKILL"] = time_open("pysos", scratch, args.keys, args.repeat, args.pysos13_dir, killed)
        rows["pysos 1.3, SIGKILL"] = time_open("pysos13", scratch + ".sos", args.keys, args.repeat,
                                               args.pysos13_dir, old_killed)
        unhinted = clean + "-no-hints"  # as every store opened before the writer wrote hints
        _copy(clean, unhinted)
        for name in os.listdir(unhinted):
            if name.endswith(".hint"):
                os.unlink(os.path.join(unhinted, name))
        rows["pysos, no hints"] = time_open("pysos", scratch, args.keys, 1, args.pysos13_dir, unhinted)
    finally:
        shutil.rmtree(parent, ignore_errors=True)

    reader_args = reader_bench.parser().parse_args(
        ["--seconds", str(args.reader_seconds), "--writer-rate", str(args.writer_rate)])
    alone, beside = reader_bench.run(reader_args, [("alone", 0.0), ("writer", 0.0)])

    best = {name: min(times) for name, (times, _, _) in rows.items()}
    best_cpu = {name: min(cpus) for name, (_, cpus, _) in rows.items()}
    print(f"\n{args.keys:,} keys key_<i> -> {{\"some\": \"object_<i>\"}}; open + len() in a fresh process, "
          f"best of {args.repeat} (median); CPU: that process's CPU seconds (steadier on a busy machine); "
          f"peak RSS = VmHWM of that process")
    print(f"| {'case':<48} | {'seconds':>15} | {'CPU s':>6} | {'peak RSS':>9} | {'vs pysos 1.3':>12} | target |")
    print(f"|{'-' * 50}|{'-' * 17}|{'-' * 8}|{'-' * 11}|{'-' * 14}|--------|")
    for name, against, target in (("pysos, clean close", "pysos 1.3", "≤ 0.3×"),
                                   ("pysos, SIGKILL", "pysos 1.3", "≤ 0.5×"),
                                   ("pysos, no hints", "pysos 1.3", ""),
                                   ("pysos 1.3", None, ""),
                                   ("pysos 1.3, SIGKILL", None, "")):
        times, cpus, peak = rows[name]
        label = {"pysos, clean close": "pysos, reopen after a clean close",
                 "pysos, SIGKILL": f"pysos, after SIGKILL during {args.further:,} more writes",
                 "pysos, no hints": "pysos, same store without hint files (1 run)",
                 "pysos 1.3": "pysos 1.3, same data",
                 "pysos 1.3, SIGKILL": f"pysos 1.3, after SIGKILL during {args.further:,} more"}[name]
        ratio = f"{best[name] / best[against]:.2f}× ({best_cpu[name] / best_cpu[against]:.2f}×)" if against else ""
        print(f"| {label:<48} | {min(times):6.3f} ({statistics.median(times):6.3f}) | {min(cpus):6.3f} | "
              f"{peak / 2**20:5.0f} MiB | {ratio:>12} | {target:<6} |")
    ratio = beside["reads_per_s"] / alone["reads_per_s"]
    print(f"| {'reader alone, reads/s':<48} | {alone['reads_per_s']:>15,.0f} | {'':>6} | {'':>9} | {'':>12} |        |")
    print(f"| {f'reader beside a writer at {args.writer_rate:,.0f}/s':<48} | {beside['reads_per_s']:>15,.0f} | "
          f"{'':>6} | {'':>9} | {f'{ratio:.2f}× alone':>12} | ≥ 0.5× |")
    print(f"| {'  its staleness p50 / p99 (ms)':<48} | "
          f"{beside['stale_p50_ms']:6.1f} / {beside['stale_p99_ms']:6.1f} | {'':>6} | {'':>9} | {'':>12} | ≤ 50 ms |")
    print(f"(the writer reached {beside['writes_per_s']:,.0f} writes/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
