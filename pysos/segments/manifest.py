"""The MANIFEST: which segments make up the store, in order, and what kind of store it is.

One line of JSON, replaced atomically (temp file, fsync, rename, fsync of the directory)::

    {"crc":"89abcdef","format":"pysos","generation":7,"kind":"dict",
     "segments":["seg-00000003.jsonl","seg-00000009.jsonl"],"version":1}

``crc`` is the CRC-32 of the object without its ``crc`` member, encoded as compact JSON
with sorted keys. The last listed segment is the one the writer appends to.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field

import orjson

from ..errors import CorruptionError, FormatError
from . import files

NAME = "MANIFEST"
FORMAT = "pysos"
VERSION = 1
KINDS = ("dict", "list")


@dataclass(frozen=True)
class Manifest:
    kind: str
    generation: int
    segments: tuple[str, ...] = field(default_factory=tuple)

    def with_segments(self, segments) -> "Manifest":
        return Manifest(self.kind, self.generation + 1, tuple(segments))


def _body(manifest: Manifest) -> dict:
    return {
        "format": FORMAT,
        "generation": manifest.generation,
        "kind": manifest.kind,
        "segments": list(manifest.segments),
        "version": VERSION,
    }


def _checksum(body: dict) -> str:
    return "%08x" % zlib.crc32(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


def encode(manifest: Manifest) -> bytes:
    body = _body(manifest)
    body["crc"] = _checksum(body)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode(data: bytes, path: str) -> Manifest:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(f"{path}: MANIFEST is not valid JSON ({exc}) at byte 0") from None
    if type(body) is not dict or body.get("format") != FORMAT:
        raise FormatError(f"{path}: not a pysos MANIFEST")
    if body.get("version") != VERSION:
        raise FormatError(
            f"{path}: unknown pysos format version {body.get('version')!r} (this pysos reads {VERSION})"
        )
    crc = body.pop("crc", None)
    if crc != _checksum(body):
        raise CorruptionError(f"{path}: MANIFEST checksum mismatch at byte 0")
    kind, generation, segments = body.get("kind"), body.get("generation"), body.get("segments")
    if kind not in KINDS or type(generation) is not int or type(segments) is not list:
        raise CorruptionError(f"{path}: MANIFEST fields are malformed at byte 0")
    return Manifest(kind, generation, tuple(segments))


def read(directory: str) -> Manifest:
    """The MANIFEST of ``directory``; ``FileNotFoundError`` if it has none."""
    path = os.path.join(directory, NAME)
    with open(path, "rb") as f:
        data = f.read()
    return decode(data, path)


def is_current(directory: str, expected: Manifest) -> bool:
    """True if the MANIFEST on disk is ``expected`` (after a failed write: did the rename happen?)."""
    try:
        return read(directory) == expected
    except Exception:
        return False


def write(directory: str, manifest: Manifest) -> None:
    files.atomic_write(os.path.join(directory, NAME), encode(manifest))


def stamp(directory: str) -> tuple[int, int, int] | None:
    """A cheap fingerprint that changes whenever the MANIFEST is replaced (one ``stat``)."""
    try:
        st = os.stat(os.path.join(directory, NAME))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
