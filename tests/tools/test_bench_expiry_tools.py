"""Tiny runs of the expiry benchmarks quoted in the README: each runs to its end and prints
its figures (the figures themselves are measured, never asserted)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_bench_expiry_open_reopens_both_stores():
    """Both stores reopen with every key (the tool checks len()), and each has a hint per segment."""
    out = _run("tools/bench_expiry_open.py", "--n", "300", "--opens", "2")
    for name in ("plain", "expire"):
        found = re.search(rf"{name}\s*: reopen \+ len\(\) median [0-9.]+ s \((\d+) segments, (\d+) hints\)", out)
        assert found, out
        assert found.group(1) == found.group(2), out  # every segment hinted, the expiring store's too
    assert re.search(r"expire / plain: [0-9.]+x", out), out


def test_bench_expiry_cpu_with_padded_values():
    """--value-bytes pads the values; the run prints a median ratio for reads and updates, by
    CPU time and by the wall clock, and the ratio of all threads' CPU over the whole run."""
    out = _run("tools/bench_expiry_cpu.py", "--n", "300", "--rounds", "2", "--value-bytes", "100")
    assert "value padding 100 bytes" in out, out
    by_cpu, _, by_wall = out.partition("by the wall clock")
    for part in (by_cpu, by_wall):  # each figure twice: by CPU time, then by the wall clock
        assert re.search(r"read\s+median [0-9.]+", part) and re.search(r"update\s+median [0-9.]+", part), out
    assert re.search(r"whole run, all threads: plain / the other [0-9.]+", out), out


def test_bench_expiry_cpu_bytes_only_matches_the_deadlines_bytes():
    """--bytes-only gives the second store (no expiry) records as long as the expiring
    store's: within a byte of the live bytes a key of a run with expire=3600 (a deadline's
    repr is 15 to 18 digits: one sample can be 2 bytes short of the mean)."""
    def extra(out):
        found = re.search(r"live bytes a key: plain ([0-9.]+), the other ([0-9.]+)", out)
        assert found, out
        return float(found.group(2)) - float(found.group(1))

    with_deadlines = _run("tools/bench_expiry_cpu.py", "--n", "300", "--rounds", "2")
    padded = _run("tools/bench_expiry_cpu.py", "--n", "300", "--rounds", "2", "--bytes-only")
    assert "records as long as with a deadline, no expiry" in padded, padded
    assert 20 <= extra(with_deadlines) <= 25 and abs(extra(padded) - extra(with_deadlines)) <= 1
