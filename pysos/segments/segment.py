"""Segment files: their names, and the one scanner that reads them record by record.

A segment is ``seg-NNNNNNNN.jsonl`` (at least 8 decimal digits). Only the newest segment
named by the MANIFEST is appended to; the others are sealed and never change until the
compactor retires them. The number in the name only makes names unique: the order of
segments, which decides which record of a key wins, is the order the MANIFEST lists them.

:class:`Scanner` and :func:`torn` are the only code that decides what is a whole unit,
what is damage and what is a torn tail: opening and following (the engine), ``check`` and
``repair``, and the compactor all scan with them.
"""

from __future__ import annotations

import errno
import os
import re
from typing import Any, Iterator


from . import files, record

# Names read from disk (MANIFEST entries, directory listings) are untrusted: only these
# exact forms are accepted (ASCII digits; ``fullmatch``, so no trailing newline either),
# which also makes them plain names of this directory: no separator, no "..".
_SEGMENT_RE = re.compile(r"seg-([0-9]{8,})\.jsonl")
_HINT_RE = re.compile(r"seg-([0-9]{8,})\.hint")
# Bytes read at a time by a scan. Small enough that the chunk, its split lines and the
# carried-over partial line stay a few hundred KiB beside the index being built (a 4 MiB
# chunk made opening peak at ~2x the index's memory), large enough to make syscalls rare.
_CHUNK = 1 << 18


def segment_name(number: int) -> str:
    return f"seg-{number:08d}.jsonl"


def hint_name(segment: str) -> str:
    return segment[: -len(".jsonl")] + ".hint"


def segment_number(name: str) -> int | None:
    """The number of a well-formed segment name, else ``None`` (for anything else, of any type).

    The one check every segment name from disk passes before pysos opens or deletes it.
    """
    match = _SEGMENT_RE.fullmatch(name) if type(name) is str else None
    return int(match.group(1)) if match else None


def is_hint_name(name: str) -> bool:
    return type(name) is str and _HINT_RE.fullmatch(name) is not None


def delete_with_hint(directory: str, name: str) -> None:
    """Remove a segment file and its hint file, whichever of them exist."""
    if segment_number(name) is None:  # every caller passes a checked name; never a path
        raise ValueError(f"{name!r} is not a segment file name: not deleting it")
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


DAMAGED, LOST = "damaged", "lost"  # what a salvage scan yields besides record.SET / DELETE


def _bad_deadline(deadline: Any, line: bytes) -> str | None:
    """Why a set record's ``"x"`` member (``deadline``, as the JSON parse reads it: the last
    one, if given twice) is not what :func:`record.expiry_of` reads from its bytes (a
    number, the first member after ``"c"``), or ``None`` if it is."""
    if type(deadline) is not float and type(deadline) is not int:
        return "expiry is not a number"
    try:
        first = record.expiry_of(line)
    except record.BadRecord as exc:
        return str(exc)
    if first is None:
        return 'expiry is not the first member after "c"'
    if first != float(deadline):  # (orjson reads ints past 64 bits as floats: no overflow)
        return "expiry given twice"
    return None


class Scanner:
    """The one reader of a segment's records: open, follow, check, repair and the compactor
    all scan with it, so they agree on what is whole, what is damaged, and what is torn.

    Iterating yields ``(kind, key, offset, line)`` for each SET and DELETE record of a
    whole unit (a record outside a batch, or a batch once its end marker has been read and
    checked). It stops at the first problem or at an unfinished unit: then ``good_end`` is
    the offset just past the last whole unit and ``problem`` is ``None`` (clean end, or an
    unfinished unit at EOF) or ``(offset of the bad line, reason)``; ``incomplete_tail`` is
    true when bytes after ``good_end`` form an unfinished unit (a line without its line
    feed, or a batch without its end). :meth:`salvage` goes on past damage instead.
    """

    def __init__(self, fd: int, start: int = 0, end: int | None = None):
        self.fd = fd
        self.start = start
        self.end = files.size(fd) if end is None else end
        self.good_end = start
        self.problem: tuple[int, str] | None = None
        self.incomplete_tail = False

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        """(offset, line with its \\n) for each whole line; sets ``incomplete_tail`` on a partial one."""
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
                yield buf_start, line + b"\n"
                buf_start += len(line) + 1
        if buf:
            self.incomplete_tail = True
            self._partial = (buf_start, buf)

    _partial: tuple[int, bytes] | None = None  # the unfinished last line, once read

    def __iter__(self) -> Iterator[tuple[str, Any, int, bytes]]:
        return self._units(False)

    def salvage(self) -> Iterator[tuple[str, Any, int, bytes]]:
        """Every line of the range, going on past damage: ``(kind, key, offset, line)`` with
        kind SET or DELETE for the records of whole units, :data:`DAMAGED` (key ``None``) for
        a line that fails the check or breaks the batch framing, :data:`LOST` for each record
        of a batch that never finished. ``good_end`` ends up past the last whole unit."""
        yield from self._units(True)
        if self._partial is not None:
            offset, line = self._partial
            yield DAMAGED, None, offset, line

    def _units(self, salvage: bool) -> Iterator[tuple[str, Any, int, bytes]]:
        # The hot loop of opening a store: one record.load per line, its kind inlined.
        batch: list[tuple[str, Any, int, bytes]] | None = None
        load = record.load
        for offset, line in self._lines():
            obj = load(line)
            problem = None
            if type(obj) is not dict:
                problem = "checksum mismatch or malformed record"
            elif "k" in obj:
                if "v" in obj:
                    kind = record.SET
                    if "x" in obj:  # a deadline: a number, first after "c" (see record.expiry_of)
                        problem = _bad_deadline(obj["x"], line)
                elif obj.get("d") == 1:
                    kind = record.DELETE
                else:
                    problem = "unknown record type"
                if problem is None:
                    if batch is None:
                        yield kind, obj["k"], offset, line
                        self.good_end = offset + len(line)
                    else:
                        batch.append((kind, obj["k"], offset, line))
                    continue
            else:
                marker = obj.get("batch")
                if marker == "begin" and batch is None:
                    batch = []
                    continue
                if marker == "end" and batch is not None and obj.get("n") == len(batch):
                    yield from batch
                    batch = None
                    self.good_end = offset + len(line)
                    continue
                if marker == "begin" and salvage:  # a new batch: the open one never finished
                    yield from ((LOST, None, o, ln) for _, _, o, ln in batch)
                    batch = []
                    continue
                problem = "batch marker does not match its batch" if marker in ("begin", "end") else "unknown record type"
            if not salvage:
                self.problem = (offset, problem)
                return
            if batch is not None:
                yield from ((LOST, None, o, ln) for _, _, o, ln in batch)
                batch = None
            yield DAMAGED, None, offset, line
        if batch is not None:
            self.incomplete_tail = True
            if salvage:
                yield from ((LOST, None, o, ln) for _, _, o, ln in batch)

    def damage(self) -> tuple[int, str] | None:
        """After a scan: ``(offset, reason)`` of the first bytes that are not whole units, or
        ``None``. In a sealed segment any damage is corruption; in the newest, see :func:`torn`."""
        if self.problem is not None:
            return self.problem
        if self.incomplete_tail:
            return self.good_end, "unfinished record or batch"
        return None


def torn(fd: int, good_end: int, end: int) -> bool:
    """The torn-tail rule (FORMAT.md): in the newest segment, the bytes from ``good_end`` (the
    end of the last whole unit before the damage) to ``end`` are a torn tail if no whole
    unit follows in them: a crash interrupted the last write, and nothing in those bytes
    was ever reported done. Otherwise the damage is corruption."""
    rest = Scanner(fd, good_end, end)
    for _ in rest.salvage():
        pass
    return rest.good_end == good_end


def read_line(fd: int, offset: int, length: int) -> bytes:
    data = files.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(errno.EIO, f"short read: {len(data)} of {length} bytes at offset {offset}")
    return data
