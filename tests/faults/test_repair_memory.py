"""repair() streams: its peak memory does not grow with the size of the store."""

import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

import repair_rss  # noqa: E402


def test_repair_peak_rss_stays_far_below_the_store_size(tmp_path):
    """Repairing a damaged 128 MiB store takes < 32 MiB above a bare import (was ~3.5x the store)."""
    size = repair_rss.build(str(tmp_path / "store"), mib=128, value_kib=16, segment_mib=32)
    assert size > 128 * 2**20
    floor = repair_rss.child("import")["vmhwm_kib"]
    done = repair_rss.child("repair", str(tmp_path / "store"))
    assert done["lost"] == 1 and done["salvaged"] == 128 * 1024 // 16 - 1
    assert done["vmhwm_kib"] - floor < 32 * 1024, (done, floor)
