"""Hint files: a sealed segment's index, so that opening a store reads no values.

``seg-NNNNNNNN.hint`` sits beside ``seg-NNNNNNNN.jsonl``::

    {"c":"ed2c253f","records":4,"segment":"seg-00000004.jsonl","segment_bytes":579,"version":2}
    [[2,98],[4,110]]                  [i, n]: n bytes no listed record covers, just before record i
    ["apple","pear","plum","fig"]     the key of each record described, in segment order
    [120,96,-45,110]                  its length in bytes; negative: a tombstone

The keys and lengths come in pairs of lines of up to 65,536 records each, so that no line
is big: a reader parses one at a time (one giant line also made opening's peak memory
grow by the allocator's response to the parser's big buffers). A record starts where the
one before it ends, plus the gap listed before it, so offsets cost no bytes on disk, and
records and gaps add up to the segment's size, which the reader checks. ``c`` is the
CRC-32 of every line after the header (line feeds included). A hint is trusted only if it
is whole and consistent (see :func:`decode`); otherwise the segment itself is scanned.
Hints are an optimisation: deleting them loses nothing. Version 1 hints (offsets packed
with lengths) are not read: their segments are scanned until a compaction rewrites them.
"""

from __future__ import annotations

import io
import os
import zlib
from dataclasses import dataclass, field, replace
from itertools import accumulate, compress, repeat
from operator import lshift, or_
from typing import Any, Iterable, Iterator

import orjson

from . import files, record
from .index import OFFSET_SHIFT

VERSION = 2
RECORDS_PER_LINE = 65536  # keys (and lengths) per line that pysos writes; readers take any
_SCALARS = {str, int, float, bool, type(None)}
_IS_SET, _IS_TOMBSTONE = (0).__lt__, (0).__gt__  # applied to a length: its sign


@dataclass
class Hint:
    """The newest record of each key in a segment, in segment order (see the module doc)."""

    keys: list
    lengths: list[int]       # line feed included; negative for a tombstone
    gaps: list[list[int]]    # [i, n], i ascending: n undescribed bytes just before record i
    # Whether any length is negative: known to decode(), else found on first use. Opening
    # asks twice (live records, tombstones); a pass over a million lengths costs ~15 ms.
    _tombstones: bool | None = field(default=None, compare=False, repr=False)

    def live(self, base: int = 0) -> Iterable[tuple[Any, int]]:
        """``(key, base | offset << OFFSET_SHIFT | length)`` of each set record, in segment order.

        ``base`` is :func:`pysos.segments.index.segment_base` of the segment (0 gives the
        location within the segment). Built from C iterators: opening a million keys runs
        no Python code per key.
        """
        tombstones = self._has_tombstones()
        steps, first = self._steps(tombstones)
        # Offsets are summed in units of 2**OFFSET_SHIFT above ``base``: shifting back gives
        # ``base | offset << OFFSET_SHIFT`` at once (offsets never reach base's bits).
        starts = accumulate(steps, initial=(base >> OFFSET_SHIFT) + first)
        # ``|`` rather than ``+``: the same here (the length's low bits are free), and cheaper.
        locations = map(or_, map(lshift, starts, repeat(OFFSET_SHIFT)), self.lengths)
        pairs = zip(self.keys, locations)
        return compress(pairs, map(_IS_SET, self.lengths)) if tombstones else pairs

    def tombstones(self) -> Iterable:
        """The keys whose newest record in the segment is a tombstone."""
        if not self._has_tombstones():  # the usual case: one C pass instead of a call per key
            return ()
        return compress(self.keys, map(_IS_TOMBSTONE, self.lengths))

    def live_count_and_bytes(self) -> tuple[int, int]:
        """How many set records the hint lists, and their bytes."""
        if not self._has_tombstones():
            return len(self.lengths), sum(self.lengths)
        sets = list(filter(_IS_SET, self.lengths))
        return len(sets), sum(sets)

    def with_keys(self, keys: list) -> "Hint":
        """The same records under other keys (decoded ones: a List's arrays as tuples)."""
        return replace(self, keys=keys)

    def _has_tombstones(self) -> bool:
        if self._tombstones is None:
            self._tombstones = bool(self.lengths) and min(self.lengths) < 0
        return self._tombstones

    def _steps(self, tombstones: bool) -> tuple[list[int], int]:
        """(bytes from each record's start to the next one's, offset of the first record)."""
        if not self.gaps and not tombstones:
            return self.lengths, 0
        steps = list(map(abs, self.lengths))
        first = 0
        for i, n in self.gaps:
            if i == 0:
                first = n
            else:  # the gap before record i follows record i - 1
                steps[i - 1] += n
        return steps, first


class Builder:
    """Collects a segment's described records, in segment order, into a :class:`Hint`."""

    def __init__(self) -> None:
        self.keys: list = []
        self.lengths: list[int] = []
        self.gaps: list[list[int]] = []
        self._end = 0  # where the last added record ends

    def add(self, key: Any, offset: int, length: int, tombstone: bool = False) -> None:
        if offset < self._end or length <= 0:
            raise ValueError(f"record at {offset} ({length} bytes) is not after the one ending at {self._end}")
        if offset > self._end:
            self.gaps.append([len(self.keys), offset - self._end])
        self.keys.append(key)
        self.lengths.append(-length if tombstone else length)
        self._end = offset + length

    def hint(self, segment_bytes: int) -> Hint:
        """The hint of a segment of ``segment_bytes`` bytes (bytes after the last record are a gap)."""
        if segment_bytes < self._end:
            raise ValueError(f"records end at {self._end}, past the segment's {segment_bytes} bytes")
        gaps = self.gaps + ([[len(self.keys), segment_bytes - self._end]] if segment_bytes > self._end else [])
        return Hint(self.keys, self.lengths, gaps)


def from_records(records: Iterable[tuple[str, Any, int, int]], segment_bytes: int) -> Hint:
    """The hint of a segment from its scanned ``(kind, key, offset, length)`` records.

    ``kind`` is ``record.SET`` or ``record.DELETE``; keys must be hashable. Each key's newest record
    is described; older ones, and anything else, fall in the gaps.
    """
    newest: dict = {}
    for kind, key, offset, length in records:
        newest.pop(key, None)  # re-inserted: the dict's order becomes the newest records' order
        newest[key] = (kind, offset, length)
    builder = Builder()
    for key, (kind, offset, length) in newest.items():
        builder.add(key, offset, length, tombstone=kind == record.DELETE)
    return builder.hint(segment_bytes)


def encode(segment: str, segment_bytes: int, hint: Hint) -> bytes:
    lines = [orjson.dumps(hint.gaps)]
    for at in range(0, len(hint.keys), RECORDS_PER_LINE):
        lines.append(orjson.dumps(hint.keys[at : at + RECORDS_PER_LINE]))
        lines.append(orjson.dumps(hint.lengths[at : at + RECORDS_PER_LINE]))
    body = b"".join(line + b"\n" for line in lines)
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


def read(path: str, segment: str, segment_bytes: int, kind: str) -> Hint | None:
    """The hint at ``path`` if it is whole and matches the segment (of a store of ``kind``,
    ``"dict"`` or ``"list"``), else ``None``."""
    found = examine(path, segment, segment_bytes, kind)
    return found if isinstance(found, Hint) else None


def examine(path: str, segment: str, segment_bytes: int, kind: str) -> Hint | str | None:
    """The hint at ``path``; or why it cannot be used; ``None`` if there is none."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return None
    with f:  # line by line: never the whole file in memory at once
        return _decode_lines(f, segment, segment_bytes, kind)


def decode(data: bytes, segment: str, segment_bytes: int, kind: str) -> Hint | str:
    """The hint in ``data``, or a sentence saying why it is not usable for this segment."""
    return _decode_lines(iter(io.BytesIO(data)), segment, segment_bytes, kind)  # lines end at b"\\n" only


def _decode_lines(lines: Iterator[bytes], segment: str, segment_bytes: int, kind: str) -> Hint | str:
    try:
        header: Any = orjson.loads(next(lines, b""))
    except orjson.JSONDecodeError:
        return "its first line is not JSON"
    if type(header) is not dict:
        return "its first line is not a header object"
    if header.get("version") != VERSION:
        return f"it is of format version {header.get('version')!r}, not {VERSION}"
    if header.get("segment") != segment or header.get("segment_bytes") != segment_bytes:
        return "it describes another segment, or another size of it"
    parsed = _parse_body(lines, kind)
    if type(parsed) is str:
        return parsed
    crc, (keys, lengths, gaps) = parsed
    if header.get("c") != "%08x" % crc:
        return "checksum mismatch"
    if len(keys) != header.get("records"):
        return "its keys and its record count disagree"
    lowest = _check_lengths(lengths, gaps, segment_bytes)
    if type(lowest) is str:
        return lowest
    return Hint(keys, lengths, gaps, _tombstones=lowest < 0)


def _parse_body(lines: Iterator[bytes], kind: str) -> tuple[int, tuple[list, list, list]] | str:
    """(CRC-32 of the lines, (keys, lengths, gaps) in them), or why they hold none."""
    crc = 0
    gaps = None
    keys: list = []
    lengths: list = []
    for number, line in enumerate(lines):
        if not line.endswith(b"\n"):
            return "its last line is cut short"
        crc = zlib.crc32(line, crc)
        try:
            part = orjson.loads(line)
        except orjson.JSONDecodeError:
            return "a line is not JSON"
        if type(part) is not list:
            return "a line is not an array"
        if number == 0:
            gaps = part
        elif number % 2:  # a line of keys
            if not _keys_fit(line, part, kind):
                return f"a key is not one a {kind} store holds"
            keys.extend(part)
            unmatched = len(part)
        elif len(part) != unmatched:
            return "a line of lengths does not match its line of keys"
        else:
            lengths.extend(part)
    if gaps is None or len(keys) != len(lengths):
        return "a line is missing"
    return crc, (keys, lengths, gaps)


def _check_lengths(lengths: list, gaps: list, segment_bytes: int) -> int | str:
    """The smallest length, if the lengths and gaps describe exactly ``segment_bytes``
    bytes (so every location they give lies inside the segment); else why not."""
    previous = -1
    for gap in gaps:
        if not (type(gap) is list and len(gap) == 2 and type(gap[0]) is int and type(gap[1]) is int
                and previous < gap[0] <= len(lengths) and gap[1] > 0):
            return f"a gap is not [record index, bytes] in ascending order: {gap!r}"
        previous = gap[0]
    try:
        lowest = min(lengths, default=1)
        described = sum(lengths) if lowest > 0 else sum(map(abs, lengths))
    except TypeError:  # a string, null, an array...
        return "a length is not an integer"
    if type(described) is not int or type(lowest) is not int:  # a float somewhere
        return "a length is not an integer"
    if described + sum(n for _, n in gaps) != segment_bytes:
        return "its records and gaps do not add up to the segment's size"
    return lowest


def _keys_fit(line: bytes, keys: list, kind: str) -> bool:
    """Dict keys are JSON scalars; List position keys are integers or non-empty arrays of them."""
    if kind == "dict":
        if line.find(b"[", 1) < 0 and line.find(b"{") < 0:  # no array or object inside: all scalars
            return True
        return set(map(type, keys)) <= _SCALARS
    if line.translate(None, b"0123456789-,").strip() == b"[]":  # parsed JSON of only these: integers
        return True
    types = set(map(type, keys))
    if not types <= {int, list}:
        return False
    return list not in types or all(
        key and all(type(part) is int for part in key) for key in keys if type(key) is list
    )
