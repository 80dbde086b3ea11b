#!/usr/bin/env python3
"""Peak RSS of ``pysos.repair`` on a damaged store of a given size.

    python tools/repair_rss.py --mib 400              # build a 400 MiB damaged store, repair it
    python tools/repair_rss.py --mib 400 --keep DIR   # ... in DIR (left there)

Builds a Dict of ``--mib`` MiB (values of ``--value-kib`` KiB, 64 MiB segments), flips
one byte in the middle of its first sealed segment, then repairs it in a fresh child
process and prints the store's size, the child's peak RSS (VmHWM, which a child does not
inherit) and the peak RSS of a child that only imports pysos (the floor).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys
import pysos
if sys.argv[1] == "repair":
    result = pysos.repair(sys.argv[2])
    done = {"salvaged": result["salvaged"], "lost": result["lost"]}
else:
    done = {}
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        done["vmhwm_kib"] = int(line.split()[1])
print(json.dumps(done))
"""


def build(directory: str, mib: int, value_kib: int, segment_mib: int = 64) -> int:
    """A Dict of about ``mib`` MiB with one flipped byte in a sealed segment; its size in bytes."""
    sys.path.insert(0, str(ROOT))
    import pysos

    value = "x" * (value_kib * 1024)
    with pysos.Dict(directory, segment_size=segment_mib * 2**20, autocompact=False) as d:
        for i in range(mib * 1024 // value_kib):
            d[f"key-{i}"] = value
    segments = sorted(n for n in os.listdir(directory) if n.endswith(".jsonl"))
    sealed = max(segments, key=lambda n: os.path.getsize(os.path.join(directory, n)))
    path = os.path.join(directory, sealed)
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(b"y" if byte != b"y" else b"z")
    return sum(os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory))


def child(*args: str) -> dict:
    import json

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, env=env, check=True)
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mib", type=int, default=400, help="store size in MiB (default 400)")
    p.add_argument("--value-kib", type=int, default=16, help="size of each value in KiB (default 16)")
    p.add_argument("--keep", help="build the store in this directory and leave it")
    args = p.parse_args()
    directory = args.keep or tempfile.mkdtemp(prefix="pysos-repair-rss-")
    try:
        size = build(os.path.join(directory, "store"), args.mib, args.value_kib)
        floor = child("import")["vmhwm_kib"]
        done = child("repair", os.path.join(directory, "store"))
        print(f"store {size / 2**20:.0f} MiB ({done['salvaged']} keys salvaged, {done['lost']} lost): "
              f"repair peak RSS {done['vmhwm_kib'] / 1024:.0f} MiB "
              f"(a child that only imports pysos: {floor / 1024:.0f} MiB)")
    finally:
        if not args.keep:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
