"""Expiry across processes, on the real wall clock: a reader in another process and the
writer hide a key at the same deadline, and a daemon compaction in another process
reclaims expired records while the writer keeps serving."""

import json
import subprocess
import sys
import time

import pysos

READER = r"""
import json, sys, time
import pysos
r = pysos.Dict(sys.argv[1], readonly=True)
print("ready", flush=True)
deadline = float(sys.stdin.readline())
seen = []
while time.time() < deadline + 1.0:
    now = time.time()
    present = "tok" in r
    seen.append((now, present, len(r)))
    time.sleep(0.01)
print(json.dumps(seen))
"""


def test_reader_process_hides_key_at_its_deadline(store_path):
    """A reader in another process sees an expiring key before its wall-clock deadline and never after it (len too)."""
    with pysos.Dict(store_path) as d:
        d["keep"] = 1
        reader = subprocess.Popen([sys.executable, "-c", READER, str(store_path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert reader.stdout.readline() == "ready\n"
        d.set("tok", "abc", expire=2)
        deadline = time.time() + 2  # at or after the stored deadline
        out, _ = reader.communicate(f"{deadline}\n", timeout=60)
        seen = json.loads(out)
        assert "tok" not in d and len(d) == 1
    assert any(present for _, present, _ in seen)  # the reader saw it while it lived
    for now, present, count in seen:
        if now >= deadline:
            assert not present and count == 1, (now, deadline)
        assert count == (2 if present else 1)


def test_daemon_compaction_reclaims_expired_records(store_path):
    """`python -m pysos.compactor --once` in another process drops expired records; the writer adopts it and keeps its keys."""
    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        for i in range(200):
            d.set(f"s{i}", "x" * 50, expire=0.5)
        d["keep"] = "yes"
        d._store.seal()
        time.sleep(0.6)
        subprocess.run([sys.executable, "-m", "pysos.compactor", "--once", str(store_path)],
                       capture_output=True, timeout=120, check=True)
        d.refresh()
        assert dict(d) == {"keep": "yes"}
        stats = d.stats()
        assert stats["disk_bytes"] < 1000, stats
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r) == {"keep": "yes"}
