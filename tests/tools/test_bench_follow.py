"""A tiny run of tools/bench_follow.py: every figure is measured and written to JSON."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_bench_follow_measures_lag_and_idle_cpu(tmp_path):
    """Writer, replicate, follow and a reader run for a second: the lag percentiles, the
    follower's CPU and its requests are reported, and the idle polls were answered 304."""
    out = tmp_path / "follow.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench_follow.py"), "--rate", "100", "--seconds", "1",
         "--interval", "0.2", "--poll", "0.1", "--idle", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["samples"] >= 5
    assert 0 < figures["lag_p50"] <= figures["lag_p99"] <= figures["lag_max"]
    assert figures["cpu_per_min_idle"] >= 0 and figures["cpu_per_min_writing"] > 0
    requests = figures["follower_requests"]
    assert requests["not_modified"] > 0 and requests["lists"] == 0 and requests["puts"] == 0
    assert "lag, write returned -> seen by a reader of the follower: p50" in proc.stdout
