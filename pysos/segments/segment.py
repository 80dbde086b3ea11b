"""Segment files: their names, and scanning them record by record.

A segment is ``seg-NNNNNNNN.jsonl`` (at least 8 decimal digits). Only the newest segment
named by the MANIFEST is appended to; the others are sealed and never change until the
compactor retires them. The number in the name only makes names unique: the order of
segments, which decides which record of a key wins, is the order the MANIFEST lists them.
"""

from __future__ import annotations

import errno
import os
import re
import zlib
from typing import Any, Iterator

import orjson

from . import files, record

_SEGMENT_RE = re.compile(r"^seg-(\d{8,})\.jsonl$")
_HINT_RE = re.compile(r"^seg-(\d{8,})\.hint$")
# Bytes read at a time by a scan. Small enough that the chunk, its split lines and the
# carried-over partial line stay a few hundred KiB beside the index being built (a 4 MiB
# chunk made opening peak at ~2x the index's memory), large enough to make syscalls rare.
_CHUNK = 1 << 18


def segment_name(number: int) -> str:
    return f"seg-{number:08d}.jsonl"


def hint_name(segment: str) -> str:
    return segment[: -len(".jsonl")] + ".hint"


def segment_number(name: str) -> int | None:
    match = _SEGMENT_RE.match(name)
    return int(match.group(1)) if match else None


def is_hint_name(name: str) -> bool:
    return _HINT_RE.match(name) is not None


def delete_with_hint(directory: str, name: str) -> None:
    """Remove a segment file and its hint file, whichever of them exist."""
    for leftover in (name, hint_name(name)):
        try:
            files.unlink(os.path.join(directory, leftover))
        except FileNotFoundError:
            pass


def create_new(directory: str, at_least: int) -> tuple[str, int]:
    """Create an empty segment whose number is ``>= at_least`` and not taken; return (name, fd).

    ``O_EXCL`` makes the name ours even if a compactor in another process allocates at the
    same moment; the directory is fsync'ed so the file survives a crash once named.
    """
    number = at_least
    while True:
        name = segment_name(number)
        try:
            fd = files.create_exclusive(os.path.join(directory, name))
        except FileExistsError:
            number += 1
            continue
        files.fsync_dir(directory)
        return name, fd


class Scanner:
    """Iterate the whole units (a record, or a complete batch) of a segment's byte range.

    Yields ``(kind, key, offset, length)`` for each SET and DELETE record, a batch's
    records only once its end marker has been read and checked. Stops at the first
    problem or at an incomplete unit; then ``good_end`` is the offset just past the last
    whole unit and ``problem`` is ``None`` (clean end, or an unfinished unit at EOF) or
    ``(offset of the bad line, reason)``. ``incomplete_tail`` is true when bytes after ``good_end`` form
    an unfinished unit (a line without its line feed, or a batch without its end).
    """

    def __init__(self, fd: int, start: int = 0, end: int | None = None):
        self.fd = fd
        self.start = start
        self.end = files.size(fd) if end is None else end
        self.good_end = start
        self.problem: tuple[int, str] | None = None
        self.incomplete_tail = False

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(offset, line without its \\n) for each whole line; sets ``incomplete_tail`` on a partial one."""
        pos, buf, buf_start, want = self.start, b"", self.start, _CHUNK
        while pos < self.end:
            chunk = files.pread(self.fd, min(want, self.end - pos), pos)
            if not chunk:
                break
            pos += len(chunk)
            buf = buf + chunk if buf else chunk
            lines = buf.split(b"\n")
            buf = lines.pop()  # the bytes after the last line feed: part of the next line
            # A line longer than a chunk: read twice what we hold next, so that it costs
            # O(its length) in copies, not O(length^2 / chunk).
            want = max(_CHUNK, 2 * len(buf))
            for line in lines:
                yield buf_start, line
                buf_start += len(line) + 1
        if buf:
            self.incomplete_tail = True

    def __iter__(self) -> Iterator[tuple[str, Any, int, int]]:
        # The hot loop of opening a store: record.verify and record.classify, inlined.
        batch: list[tuple[str, Any, int, int]] | None = None
        crc32, loads, prefix_len = zlib.crc32, orjson.loads, record.PREFIX_LEN
        for offset, line in self._lines():  # line without its \n
            length = len(line) + 1
            obj = None
            if line.startswith(b'{"c":"') and line[14:16] == b'",' and line[6:14] == b"%08x" % crc32(line[prefix_len:]):
                try:
                    obj = loads(line)
                except ValueError:  # JSON that does not parse
                    obj = None
            if type(obj) is not dict:
                self.problem = (offset, "checksum mismatch or malformed record")
                return
            if "k" in obj:
                if "v" in obj:
                    kind = record.SET
                elif obj.get("d") == 1:
                    kind = record.DELETE
                else:
                    self.problem = (offset, "unknown record type")
                    return
                if batch is None:
                    yield kind, obj["k"], offset, length
                    self.good_end = offset + length
                else:
                    batch.append((kind, obj["k"], offset, length))
                continue
            marker = obj.get("batch")
            if marker == "begin" and batch is None:
                batch = []
            elif marker == "end" and batch is not None and obj.get("n") == len(batch):
                yield from batch
                batch = None
                self.good_end = offset + length
            elif marker in ("begin", "end"):
                self.problem = (offset, "batch marker does not match its batch")
                return
            else:
                self.problem = (offset, "unknown record type")
                return
        if batch is not None:
            self.incomplete_tail = True


def valid_line_after(fd: int, offset: int, end: int) -> int | None:
    """Offset of the first line after the one at ``offset`` that is a valid record, else None.

    Tells a torn tail (the writer died mid-write: nothing valid follows) from damage
    in the middle of a segment (valid records follow the bad bytes).
    """
    data = files.pread(fd, end - offset, offset)
    first_nl = data.find(b"\n")
    if first_nl < 0:
        return None
    at = first_nl + 1
    while at < len(data):
        nl = data.find(b"\n", at)
        if nl < 0:
            return None
        if record.verify(data[at : nl + 1]):
            return offset + at
        at = nl + 1
    return None


def read_line(fd: int, offset: int, length: int) -> bytes:
    data = files.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(errno.EIO, f"short read: {len(data)} of {length} bytes at offset {offset}")
    return data
