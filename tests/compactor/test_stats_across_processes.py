"""stats() counts compactions made by any process, because the MANIFEST records them."""

import subprocess
import sys

import pysos


def test_writer_and_reader_see_the_daemons_compaction(tmp_path):
    """After `python -m pysos.compactor --once` in another process, a writer's and a reader's
    stats() report the compaction and what it reclaimed."""
    with pysos.Dict(tmp_path, segment_size=512, autocompact=False) as d:
        for i in range(300):
            d[f"k{i % 10}"] = i
        assert d.stats()["compactions"] == 0
        result = subprocess.run(
            [sys.executable, "-m", "pysos.compactor", "--once", "--min-dead-bytes", "0", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        d.refresh()
        stats = d.stats()
        assert stats["compactions"] >= 1 and stats["reclaimed_bytes_total"] > 0
        assert stats["last_compaction"] is None  # this handle made none itself
        with pysos.Dict(tmp_path, readonly=True) as r:
            assert r.stats()["reclaimed_bytes_total"] == stats["reclaimed_bytes_total"]
        total = stats["reclaimed_bytes_total"]
        for i in range(300):
            d[f"k{i % 10}"] = -i
        d.compact()  # rotation and compaction both carry the running totals forward
        assert d.stats()["compactions"] >= stats["compactions"] + 1
        assert d.stats()["reclaimed_bytes_total"] > total
