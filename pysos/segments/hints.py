"""Hint files: a segment's index, so that opening a store reads no values.

``seg-NNNNNNNN.hint`` sits beside ``seg-NNNNNNNN.jsonl``::

    {"c":"ed2c253f","records":4,"segment":"seg-00000004.jsonl","segment_bytes":579,"version":2}
    [[2,98],[4,110]]                  [i, n]: n bytes no listed record covers, just before record i
    ["apple","pear","plum","fig"]     the key of each record described, in segment order
    [120,96,-45,110]                  its length in bytes; negative: a tombstone

A segment holding an expiring record gets a version 3 hint: each pair of lines is followed
by a third, the records' deadlines (``null``: the record never expires; always so for a
tombstone), so that opening and a compaction's adoption parse no record to learn them::

    {"c":"...","records":2,"segment":"seg-00000007.jsonl","segment_bytes":230,"version":3}
    []
    ["session:1","config"]
    [131,99]
    [1764489600.25,null]

The keys and lengths come in pairs of lines of up to 8,192 records each, so that no line
is big: opening parses and indexes one pair at a time (:func:`stream_prefix`), never
holding the whole hint beside the index (one giant line made opening's peak memory grow
by the allocator's response to the parser's big buffers; pairs of 65,536 records still
left ~6 MB more than a scan for a million keys, pairs of 8,192 none). A record starts where the
one before it ends, plus the gap listed before it, so offsets cost no bytes on disk, and
records and gaps add up to the segment's size, which the reader checks. ``c`` is the
CRC-32 of every line after the header (line feeds included). A hint is trusted only if it
is whole and consistent (see :func:`decode`); otherwise the segment itself is scanned.
Hints are an optimisation: deleting them loses nothing. Version 1 hints (offsets packed
with lengths) are not read: their segments are scanned until a compaction rewrites them.

Who writes them: a compaction, beside each output; the writer, for each segment it seals
by rotation and for the newest segment on a clean close (:mod:`.hint_writer`). A hint may describe only the first
``segment_bytes`` bytes of its segment, with ``segment_crc``, the CRC-32 of those bytes:
the newest segment grows, and opening reads the hint (:func:`read_prefix`, which checks
that CRC) and scans only the rest. FORMAT.md says why a size alone would not do.
"""

from __future__ import annotations

import errno
import io
import os
import zlib
from itertools import compress
from typing import Any, Callable, Iterator

import orjson

from ..errors import CorruptionError
from . import files
from . import segment as segment_names  # (``segment`` is a parameter name here)
from .hint_model import _IS_SOME, _IS_TOMBSTONE, Builder, Hint, from_records

__all__ = ["Builder", "Hint", "from_records", "encode", "write", "read", "examine", "decode", "read_prefix",
           "examine_prefix", "stream_prefix", "BadHint", "segment_crc", "VERSION", "DEADLINES_VERSION"]

VERSION = 2           # hints of segments with no expiring record: read by every pysos 2
DEADLINES_VERSION = 3  # with a line of deadlines after each pair (older readers ignore it: scan)
VERSIONS = (VERSION, DEADLINES_VERSION)
RECORDS_PER_LINE = 8192  # keys (and lengths) per line that pysos writes; readers take any
_SCALARS = {str, int, float, bool, type(None)}
_DEADLINE_TYPES = {int, float, type(None)}
_CHUNK = 1 << 20  # bytes read at a time for a segment's CRC


def encode(segment: str, segment_bytes: int, hint: Hint, segment_crc: str | None = None) -> bytes:
    """The hint file's bytes: version 3 if a record has a deadline, else version 2."""
    deadlines = hint.deadlines if hint.deadlines is not None and any(map(_IS_SOME, hint.deadlines)) else None
    if deadlines is not None and len(deadlines) != len(hint.keys):
        raise ValueError("a hint needs a deadline (or None) for each record")
    lines = [orjson.dumps(hint.gaps)]
    for at in range(0, len(hint.keys), RECORDS_PER_LINE):
        lines.append(orjson.dumps(hint.keys[at : at + RECORDS_PER_LINE]))
        lines.append(orjson.dumps(hint.lengths[at : at + RECORDS_PER_LINE]))
        if deadlines is not None:
            lines.append(orjson.dumps(deadlines[at : at + RECORDS_PER_LINE]))
    body = b"".join(line + b"\n" for line in lines)
    version = VERSION if deadlines is None else DEADLINES_VERSION
    header = {
        "c": "%08x" % zlib.crc32(body),
        "records": len(hint.keys),
        "segment": segment,
        "segment_bytes": segment_bytes,
        "version": version,
    }
    if segment_crc is not None:  # keys stay sorted: after segment_bytes, before version
        header = {**{k: header[k] for k in ("c", "records", "segment", "segment_bytes")},
                  "segment_crc": segment_crc, "version": version}
    return orjson.dumps(header) + b"\n" + body


def write(directory: str, segment: str, segment_bytes: int, hint: Hint, name: str,
          segment_crc: str | None = None) -> None:
    """Write and fsync a hint file (not atomically: a torn hint fails its checksum).

    ``segment_crc`` (:func:`segment_crc` of the segment's first ``segment_bytes`` bytes)
    lets the hint describe a segment that may grow past them: the newest one.
    """
    if not segment_names.is_hint_name(name):
        raise ValueError(f"{name!r} is not a hint file name")
    path = os.path.join(directory, name)
    fd = files.create_fresh(path)
    try:
        files.write_all(fd, encode(segment, segment_bytes, hint, segment_crc))
        files.fsync(fd)
    except BaseException:
        files.close(fd)
        try:  # a hint cut short would only be ignored, but check() would warn about it
            files.unlink(path)
        except OSError:
            pass
        raise
    files.close(fd)


def read(path: str, segment: str, segment_bytes: int, kind: str) -> Hint | None:
    """The hint at ``path`` if it is whole and matches the segment (of a store of ``kind``,
    ``"dict"`` or ``"list"``), else ``None``."""
    found = examine(path, segment, segment_bytes, kind)
    return found if isinstance(found, Hint) else None


def examine(path: str, segment: str, segment_bytes: int, kind: str) -> Hint | str | None:
    """The hint at ``path``; or why it cannot be used; ``None`` if there is none."""
    try:
        f = _open(path)
    except CorruptionError as exc:
        return _why(exc)
    if f is None:
        return None
    with f:  # line by line: never the whole file in memory at once
        return _decode_lines(f, segment, segment_bytes, kind)


def _open(path: str):
    """The hint file at ``path`` for reading, ``None`` if there is none. A link, a FIFO...
    raise ``CorruptionError`` (:func:`files.open_read`: never followed, never blocked on)."""
    try:
        return os.fdopen(files.open_read(path), "rb")
    except FileNotFoundError:
        return None


def _why(exc: CorruptionError) -> str:
    return str(exc).split(": ", 1)[-1]  # without the path


def decode(data: bytes, segment: str, segment_bytes: int, kind: str) -> Hint | str:
    """The hint in ``data``, or a sentence saying why it is not usable for this segment."""
    return _decode_lines(iter(io.BytesIO(data)), segment, segment_bytes, kind)  # lines end at b"\\n" only


def read_prefix(path: str, segment: str, fd: int, size: int, kind: str, *, sealed: bool) -> tuple[Hint, int] | None:
    """``(hint, bytes it covers)`` if the hint at ``path`` describes the first bytes of the
    segment open at ``fd`` (``size`` bytes long, ``sealed`` or the newest one), else ``None``.

    A hint of a sealed segment's exact size is trusted as :func:`read` trusts it (sealed
    segments never change). Any other hint must carry ``segment_crc``, cover at most
    ``size`` bytes, and those bytes must have that CRC: the newest segment is appended
    to, cut after a crash, and after a power loss may hold other bytes where the hint's
    records were, so only its checksum proves them unchanged.
    """
    found = examine_prefix(path, segment, size, kind, sealed=sealed, crc_of=lambda n: segment_crc(fd, n))
    return found if type(found) is tuple else None


def examine_prefix(path: str, segment: str, size: int, kind: str, *, sealed: bool,
                   crc_of: Callable[[int], str]) -> tuple[Hint, int] | str | None:
    """Like :func:`read_prefix` (``crc_of(n)``: the CRC of the segment's first ``n`` bytes);
    a sentence saying why the hint is unusable; ``None`` if there is none."""
    try:
        f = _open(path)
    except CorruptionError as exc:
        return _why(exc)
    if f is None:
        return None
    with f:
        head = _header(f, segment, size, _prefix_check(size, sealed, crc_of))
        if isinstance(head, str):
            return head
        hint = _collect(f, head[0], head[1], kind)
    return (hint, head[1]) if isinstance(hint, Hint) else hint


def stream_prefix(path: str, segment: str, size: int, kind: str, *, sealed: bool,
                  crc_of: Callable[[int], str]) -> tuple[int, Iterator[Hint]] | None:
    """Like :func:`read_prefix`, for opening a store without holding the whole hint:
    ``(bytes covered, parts)``, the parts being :class:`Hint` objects of one pair of lines
    each, read as they are iterated. The header (and ``segment_crc``) is checked before
    this returns; the checks of the whole (the checksum of the lines, the record count,
    the sizes adding up) only after the last part: the iteration raises :class:`BadHint`
    at the first part or at the end, when its caller may have used earlier parts."""
    try:
        f = _open(path)
    except CorruptionError:
        return None
    if f is None:
        return None
    head = _header(f, segment, size, _prefix_check(size, sealed, crc_of))
    if isinstance(head, str):
        f.close()
        return None
    return head[1], _closing(f, _parts(f, head[0], head[1], kind, []))


class BadHint(ValueError):
    """A hint found unusable while it was being read part by part (see :func:`stream_prefix`)."""


def _prefix_check(size: int, sealed: bool, crc_of: Callable[[int], str]) -> Callable[[dict], str | None]:
    def check(header: dict) -> str | None:
        want = header.get("segment_bytes")
        if sealed and want == size:
            return None
        crc = header.get("segment_crc")
        if type(want) is not int or not 0 < want <= size:
            return "it describes another size of the segment"
        if type(crc) is not str:
            return "it covers a segment that may change, with no checksum of the bytes it covers"
        if crc_of(want) != crc:
            return f"the segment's first {want} bytes are not the ones it describes"
        return None

    return check


def segment_crc(fd: int, length: int) -> str:
    """CRC-32 of a file's first ``length`` bytes, as 8 hex digits, read a MiB at a time."""
    crc, at = 0, 0
    while at < length:
        chunk = files.pread(fd, min(_CHUNK, length - at), at)
        if not chunk:
            raise OSError(errno.EIO, f"short read at offset {at}")
        crc = zlib.crc32(chunk, crc)
        at += len(chunk)
    return "%08x" % crc


def _decode_lines(lines: Iterator[bytes], segment: str, segment_bytes: int, kind: str) -> Hint | str:
    head = _header(lines, segment, segment_bytes, None)
    return head if isinstance(head, str) else _collect(lines, head[0], head[1], kind)


def _header(lines: Iterator[bytes], segment: str, segment_bytes: int,
            check_size: Callable[[dict], str | None] | None) -> tuple[dict, int] | str:
    """(the header, the bytes the hint covers), or why the hint is unusable. ``check_size``
    (default: ``segment_bytes`` exactly) judges the header's ``segment_bytes``."""
    try:
        header: Any = orjson.loads(next(lines, b""))
    except orjson.JSONDecodeError:
        return "its first line is not JSON"
    if type(header) is not dict:
        return "its first line is not a header object"
    if header.get("version") not in VERSIONS or type(header.get("version")) is not int:
        return f"it is of format version {header.get('version')!r}, not {VERSION} or {DEADLINES_VERSION}"
    if check_size is None:
        if header.get("segment") != segment or header.get("segment_bytes") != segment_bytes:
            return "it describes another segment, or another size of it"
    else:
        if header.get("segment") != segment:
            return "it describes another segment"
        why = check_size(header)
        if why is not None:
            return why
    return header, header["segment_bytes"]


def _collect(lines: Iterator[bytes], header: dict, covered: int, kind: str) -> Hint | str:
    """The whole hint after its header, or why it is unusable."""
    keys: list = []
    lengths: list = []
    gaps: list = []
    deadlines: list | None = [] if header["version"] == DEADLINES_VERSION else None
    tombstones = False
    try:
        for part in _parts(lines, header, covered, kind, gaps):
            keys += part.keys
            lengths += part.lengths
            if deadlines is not None:
                deadlines += part.deadlines  # (every part of a version 3 hint has its line)
            tombstones = tombstones or bool(part._tombstones)
    except BadHint as exc:
        return str(exc)
    if deadlines is not None and not any(map(_IS_SOME, deadlines)):
        deadlines = None  # as a hint of the same records without deadlines (see Hint.deadlines)
    return Hint(keys, lengths, gaps, deadlines, _tombstones=tombstones)


def _closing(f, parts: Iterator[Hint]) -> Iterator[Hint]:
    with f:
        yield from parts


def _parts(lines: Iterator[bytes], header: dict, covered: int, kind: str, gaps: list) -> Iterator[Hint]:
    """The records after the header, one pair of lines at a time (a triple in version 3:
    with deadlines), each as a :class:`Hint` that knows where it starts; raise
    :class:`BadHint` as soon as something is wrong, the checks of the whole after the last
    part. ``gaps`` receives the hint's gaps."""
    crc = 0
    keys = lengths = None
    per_part = 3 if header["version"] == DEADLINES_VERSION else 2  # lines
    records = 0  # described by the parts so far
    at = 0       # where the next part starts
    g = 0        # the first gap not yet given to a part
    seen_gaps = False
    for number, line in enumerate(lines):
        if not line.endswith(b"\n"):
            raise BadHint("its last line is cut short")
        crc = zlib.crc32(line, crc)
        try:
            part = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise BadHint("a line is not JSON") from None
        if type(part) is not list:
            raise BadHint("a line is not an array")
        if number == 0:
            gaps += _checked_gaps(part)
            seen_gaps = True
            continue
        which = (number - 1) % per_part
        if which == 0:  # a line of keys
            if not _keys_fit(line, part, kind):
                raise BadHint(f"a key is not one a {kind} store holds")
            keys = part
            continue
        if keys is None or len(part) != len(keys):
            raise BadHint(f"a line of {'lengths' if which == 1 else 'deadlines'} does not match its line of keys")
        if which == 1:
            lengths = part
            lowest, described = _lengths(part)
            if per_part == 3:
                continue
            deadlines = None
        else:
            deadlines = _checked_deadlines(part, lengths)
        end = records + len(keys)
        first = g
        while g < len(gaps) and gaps[g][0] < end:
            g += 1
        own = [[i - records, n] for i, n in gaps[first:g]]
        yield Hint(keys, lengths, own, deadlines, _tombstones=lowest < 0, start=at)
        at += described + sum(n for _, n in own)
        records = end
        keys = lengths = None
    if keys is not None or not seen_gaps:
        raise BadHint("a line is missing")
    if header.get("c") != "%08x" % crc:
        raise BadHint("checksum mismatch")
    if records != header.get("records"):
        raise BadHint("its keys and its record count disagree")
    if g < len(gaps) and (gaps[g][0] != records or g + 1 != len(gaps)):
        raise BadHint(f"a gap is not [record index, bytes] in ascending order: {gaps[g]!r}")
    if at + (gaps[g][1] if g < len(gaps) else 0) != covered:
        raise BadHint("its records and gaps do not add up to the segment's size")


def _checked_gaps(gaps: list) -> list:
    previous = -1
    for gap in gaps:
        if not (type(gap) is list and len(gap) == 2 and type(gap[0]) is int and type(gap[1]) is int
                and previous < gap[0] and gap[1] > 0):
            raise BadHint(f"a gap is not [record index, bytes] in ascending order: {gap!r}")
        previous = gap[0]
    return gaps


def _checked_deadlines(deadlines: list, lengths: list) -> list:
    """``deadlines`` if each is a number or null, and null for every tombstone."""
    if not set(map(type, deadlines)) <= _DEADLINE_TYPES:  # (a bool's type is bool, not int)
        raise BadHint("a deadline is not a number or null")
    if min(lengths, default=1) < 0 and any(map(_IS_SOME, compress(deadlines, map(_IS_TOMBSTONE, lengths)))):
        raise BadHint("a tombstone has a deadline")
    return deadlines


def _lengths(lengths: list) -> tuple[int, int]:
    """(the smallest length, the sum of their absolute values), if all are integers."""
    try:
        lowest = min(lengths, default=1)
        described = sum(lengths) if lowest > 0 else sum(map(abs, lengths))
    except TypeError:  # a string, null, an array...
        raise BadHint("a length is not an integer") from None
    if type(described) is not int or type(lowest) is not int:  # a float somewhere
        raise BadHint("a length is not an integer")
    return lowest, described


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
