"""A codec="tagged" store read from another process: a readonly handle that names no codec
decodes what the writer (still open) wrote, and follows its later writes."""

import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pysos
from strategies import exact

READER = r"""
import sys
sys.path.insert(0, sys.argv[2])
import pysos
from strategies import exact
r = pysos.Dict(sys.argv[1], readonly=True)
for line in sys.stdin:
    key = line.strip()
    print(r.codec, exact(r[key]), flush=True)
"""

VALUES = {
    "a": (datetime(2026, 11, 30, 8, 0, 0, 1, tzinfo=timezone(timedelta(hours=-3))), {1, 2}),
    "b": {"id": uuid.UUID(int=7), "amount": Decimal("9.99"), "raw": b"\x00\xff", "day": date(2026, 1, 1)},
    "c": {"$set": "not a tag"},
}


def test_reader_in_another_process_decodes_the_recorded_codec(store_path):
    """The other process's reader (no codec given) gets the exact values, also of writes made after it opened."""
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with pysos.Dict(store_path, codec="tagged") as d:
        d["a"] = VALUES["a"]
        reader = subprocess.Popen([sys.executable, "-c", READER, str(store_path), tests_dir],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            reader.stdin.write("a\n")
            reader.stdin.flush()
            assert reader.stdout.readline() == f"tagged {exact(VALUES['a'])}\n"
            d["b"] = VALUES["b"]
            d["c"] = VALUES["c"]
            out, _ = reader.communicate("b\nc\n", timeout=60)
        finally:
            reader.kill()
    assert out.splitlines() == [f"tagged {exact(VALUES['b'])}", f"tagged {exact(VALUES['c'])}"]
