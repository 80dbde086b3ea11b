"""Hint files: a sealed segment's index, so that opening a store reads no values.

``seg-NNNNNNNN.hint`` sits beside ``seg-NNNNNNNN.jsonl`` and has four lines::

    {"c":"0badcafe","records":2,"segment":"seg-00000004.jsonl","segment_bytes":812,"version":1}
    ["apple","pear"]                  keys of the live records, in segment order
    [4294967342,214748364846]         offset << 32 | length of each record, same order
    ["plum"]                          keys whose newest record here is a tombstone

``c`` is the CRC-32 of lines 2-4 (their bytes, line feeds included). A hint is trusted only
if its checksum matches and ``segment_bytes`` equals the segment's size; otherwise the
segment itself is scanned. Hints are an optimisation: deleting them loses nothing.
"""

from __future__ import annotations

import os
import zlib
from typing import Any, NamedTuple

import orjson

from . import files

VERSION = 1


class Hint(NamedTuple):
    keys: list
    local_locations: list[int]
    tombstones: list


def encode(segment: str, segment_bytes: int, hint: Hint) -> bytes:
    body = b"".join(
        orjson.dumps(part) + b"\n" for part in (hint.keys, hint.local_locations, hint.tombstones)
    )
    header = {
        "c": "%08x" % zlib.crc32(body),
        "records": len(hint.keys),
        "segment": segment,
        "segment_bytes": segment_bytes,
        "version": VERSION,
    }
    return orjson.dumps(header) + b"\n" + body


def write(directory: str, segment: str, segment_bytes: int, hint: Hint, name: str) -> None:
    """Write and fsync a hint file (not atomically: a torn hint fails its checksum)."""
    fd = files.create_truncated(os.path.join(directory, name))
    try:
        files.write_all(fd, encode(segment, segment_bytes, hint))
        files.fsync(fd)
    finally:
        files.close(fd)


def read(path: str, segment: str, segment_bytes: int) -> Hint | None:
    """The hint at ``path`` if it is whole and matches the segment, else ``None``."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    return decode(data, segment, segment_bytes)


def decode(data: bytes, segment: str, segment_bytes: int) -> Hint | None:
    first_nl = data.find(b"\n")
    view = memoryview(data)  # slices without copies: a hint can be tens of MB
    try:
        header: Any = orjson.loads(view[:first_nl])
        if (
            type(header) is not dict
            or header.get("version") != VERSION
            or header.get("segment") != segment
            or header.get("segment_bytes") != segment_bytes
            or header.get("c") != "%08x" % zlib.crc32(view[first_nl + 1 :])
        ):
            return None
        parts = []
        start = first_nl + 1
        for _ in range(3):
            end = data.find(b"\n", start)
            if end < 0:
                return None
            parts.append(orjson.loads(view[start:end]))
            start = end + 1
        keys, local_locations, tombstones = parts
    except (orjson.JSONDecodeError, ValueError):
        return None
    if start != len(data) or len(keys) != len(local_locations) or len(keys) != header.get("records"):
        return None
    return Hint(keys, local_locations, tombstones)
