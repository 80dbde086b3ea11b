"""tools/bench_instructions.py: the workloads it counts run and do what they say (the
counting itself needs valgrind and minutes; it is not part of the suite)."""

import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[2] / "tools" / "bench_instructions.py"
sys.path.insert(0, str(TOOL.parent))

import bench_instructions  # noqa: E402


@pytest.mark.parametrize("op", bench_instructions.OPS)
@pytest.mark.parametrize("setup_only", [False, True])
def test_each_workload_runs(op, setup_only):
    cmd = [sys.executable, str(TOOL), "--run", op, "--n", "50"] + (["--setup-only"] if setup_only else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_read_workloads_read_what_was_written(monkeypatch, tmp_path):
    """A read workload that read nothing (or the wrong store) would count the wrong thing:
    every read must find its key, so a missing key raises KeyError here."""
    import pysos

    reads = []
    real = pysos.Dict.__getitem__

    def counting(self, key):
        value = real(self, key)
        reads.append((key, value))
        return value

    monkeypatch.setattr(pysos.Dict, "__getitem__", counting)
    bench_instructions._workload("reader-read", 20, False, str(tmp_path))
    assert len(reads) == 20 * bench_instructions.PASSES
    assert all(value == {"some": f"object_{key[4:]}"} for key, value in reads)


def test_unknown_op_is_refused():
    done = subprocess.run([sys.executable, str(TOOL), "--ops", "nope"], capture_output=True, text=True)
    assert done.returncode == 2 and "unknown op" in done.stderr
