"""A tiny run of tools/bench.py: every selected row is measured and written to JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("pysos", "pysos-batch", "raw", "dict")
OPS = ("insert_ops", "read_ops", "update_ops", "delete_ops")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bench.py"), "--n", "200", "--only", ",".join(ROWS),
         "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=str(ROOT),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


@pytest.mark.parametrize("name", ROWS)
def test_row_has_positive_throughput(report, name):
    """Each selected store gets a dict row whose four operation rates are positive numbers."""
    data, _ = report
    rows = [r for r in data["dict"] if r["row"] == name]
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "ok", row.get("reason")
    for op in OPS:
        assert isinstance(row[op], (int, float)) and row[op] > 0, (op, row[op])
    assert row["peak_rss"] > 0


@pytest.mark.parametrize("name", ("pysos", "pysos-batch", "raw"))
def test_persistent_rows_reopen_with_the_surviving_keys(report, name):
    """A persistent row is reopened in a fresh process and finds N - N/2 keys on disk."""
    data, _ = report
    row = next(r for r in data["dict"] if r["row"] == name)
    assert row["len"] == 100
    assert row["reopen_s"] > 0 and row["disk_bytes"] > 0 and row["disk_compacted"] > 0
    assert row["kill9_tested"] == "yes"


def test_only_selects_rows(report):
    """--only runs the named rows and no other store."""
    data, _ = report
    assert {r["row"] for r in data["dict"]} == set(ROWS)


def test_other_sections_ran(report):
    """The List, reader and latency sections produce rows with positive figures."""
    data, markdown = report
    lists = {(r["store"], r["size"]): r for r in data["list"]}
    assert set(lists) == {("pysos", 20), ("list", 20), ("pysos", 2000), ("list", 2000)}
    for row in lists.values():
        assert row["status"] == "ok", row.get("reason")
        assert all(row[k] > 0 for k in ("append_ops", "getitem_ops", "pop_ops", "pop0_ops", "insert0_ops"))
    for row in data["readers"] + data["latency"]:
        assert row["status"] == "ok", row.get("reason")
    assert all(r["busy_read_ops"] > 0 for r in data["readers"])
    assert all(r["p99_us"] > 0 for r in data["latency"])
    assert "| pysos-batch |" in markdown and "## Issue 6 targets" in markdown
