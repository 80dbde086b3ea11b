"""Hints of the writer's own segments, built from its index: at rotation and on a clean close.

A writer's index, as it is when a segment's last byte was written, says where the newest
record of each key whose newest record is a set lies; a key located in the segment has its
newest record of the segment there. The keys whose newest record there is a tombstone are
found by reading the segment once, which also gives its CRC (``segment_crc``): tombstone
lines are the only ones that end in :data:`record.TOMBSTONE_END`. So no value is parsed,
and no Python code runs per set record of a segment written in key order.

- :func:`write_sealed`: the hint of a segment just sealed (from a copy of the index taken
  at the rotation, or by a scan when the segment is small beside the index); run by the
  writer, or by a :class:`Sealer` thread beside it.
- :func:`write_newest`: the newest segment's hint on a clean close, covering it up to its end.

The file format and the reading side are in :mod:`.hints`.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import queue
import re
import threading
import zlib
from itertools import compress, islice, repeat
from operator import add, and_, itemgetter, lt, rshift, sub
from typing import Any, Callable, Iterable, Mapping

from . import files, index, manifest, record, segment
from .hints import Hint, from_records, write
from .index import OFFSET_SHIFT

log = logging.getLogger("pysos")

_CHUNK = 1 << 20  # bytes read at a time for a segment's CRC and its tombstones
_EXPIRING = re.compile(rb'\{"c":"[0-9a-f]{8}","x":')  # the first bytes of an expiring record
_SLICE = 1 << 16  # index entries looked at per C call (see from_index)


def from_index(keys: Iterable, locations: Iterable[int], number: int, fd: int, size: int,
               decode_key: Callable[[Any], Any], deadlines: Mapping[Any, float] | None = None,
               expired: Iterable[tuple[Any, int]] | None = None) -> tuple[Hint | None, str]:
    """``(hint, segment_crc)`` of the first ``size`` bytes of segment ``number``, open at ``fd``.

    ``keys`` and ``locations`` are a writer's index (as two lists, in the same order) taken
    while ``size`` was the segment's end and nothing after it was indexed: then a key whose
    location lies in the segment has its newest record of the segment there, a set. The
    other keys whose newest record there is a tombstone are found by reading the segment
    once (which also gives its CRC): tombstone lines are the only ones that end in
    :data:`record.TOMBSTONE_END`. No value is parsed, and no Python code runs per set record
    of a segment written in key order.

    A segment holding expiring records gets a hint with their deadlines (version 3) only if
    the caller gives ``deadlines`` (the writer's ``Deadlines.by_key``, taken with the index:
    the deadline of each indexed record that expires) and ``expired`` (``(key, location)``,
    oldest first, of each key the writer dropped by expiry from a record in this segment:
    the index no longer has those, yet the hint must describe them, or an older record of
    the key would come back on the next open). Each of those is read back and checked to be
    that key's expiring record; if one is not (a batch discarded after it expired), or
    without ``deadlines``, there is no hint (``None``): opening scans the segment.

    Everything runs a slice of :data:`_SLICE` entries per C call: a C call holds the GIL
    throughout, and the writer beside this thread waits for it (one call over a million
    entries stalled its writes for ~0.4 s on a busy machine).
    """
    base = index.segment_base(number)
    limit = index.segment_base(number + 1)
    all_keys, all_locations = iter(keys), iter(locations)
    keys, locations = [], []
    while True:
        some_keys, some = list(islice(all_keys, _SLICE)), list(islice(all_locations, _SLICE))
        if not some:
            break
        inside = list(map(and_, map(base.__le__, some), map(limit.__gt__, some)))
        keys += compress(some_keys, inside)
        locations += compress(some, inside)
    if not _ascending(locations):  # not in segment order (updates of older keys): sort
        pairs = heapq.merge(*(sorted(zip(locations[at : at + _SLICE], keys[at : at + _SLICE]))
                              for at in range(0, len(locations), _SLICE)))  # locations are unique
        keys, locations = [], []
        while True:
            ordered = list(islice(pairs, _SLICE))
            if not ordered:
                break
            locations += map(itemgetter(0), ordered)
            keys += map(itemgetter(1), ordered)
    starts: list[int] = []
    lengths: list[int] = []
    for at in range(0, len(locations), _SLICE):
        some = locations[at : at + _SLICE]
        starts += map(and_, map(rshift, some, repeat(OFFSET_SHIFT)), repeat(index.OFFSET_MASK))
        lengths += map(and_, some, repeat(index.LENGTH_MASK))
    del locations
    tombstones, crc, expiring = _tombstones(fd, size)
    times = None
    others: dict = {}
    if expiring:
        if deadlines is None:
            return None, crc
        times = list(map(deadlines.get, keys))
        found = _expired_records(fd, size, number, dict(expired or ()), keys, decode_key)
        if found is None:
            return None, crc
        others = found
    if tombstones or others:
        keys, starts, lengths, times = _with_others(keys, starts, lengths, times, tombstones, others, decode_key)
    if times is not None and times.count(None) == len(times):
        times = None  # (its records that expire were all overwritten or deleted since)
    return Hint(keys, lengths, _gaps(starts, lengths, size), times), crc


def _ascending(values: list[int]) -> bool:
    return all(
        all(map(lt, values[at : at + _SLICE], values[at + 1 : at + 1 + _SLICE]))
        for at in range(0, len(values), _SLICE)
    )


def _tombstones(fd: int, size: int) -> tuple[list[tuple[int, int, Any]], str, bool]:
    """``([(offset, length, key) of each tombstone line], CRC, whether a record may expire)``
    of a file's first ``size`` bytes (a value that happens to hold an expiring record's
    first bytes counts too: the segment then merely goes without a hint)."""
    found = []
    expiring = False
    crc, at, carry = 0, 0, b""
    while at < size:
        chunk = files.pread(fd, min(_CHUNK, size - at), at)
        if not chunk:
            raise OSError(errno.EIO, f"short read at offset {at}")
        crc = zlib.crc32(chunk, crc)
        data = carry + chunk if carry else chunk
        expiring = expiring or _EXPIRING.search(data) is not None
        origin = at - len(carry)  # file offset of data[0], the start of a line
        hit = data.find(record.TOMBSTONE_END)
        while hit >= 0:
            end = hit + len(record.TOMBSTONE_END)
            start = data.rfind(b"\n", 0, hit) + 1
            obj = record.load(data[start:end])
            if obj is None or obj.get("d") != 1 or "k" not in obj:
                raise ValueError(f"no tombstone record at byte {origin + start}, though the line ends like one")
            found.append((origin + start, end - start, obj["k"]))
            hit = data.find(record.TOMBSTONE_END, end)
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        at += len(chunk)
    return found, "%08x" % crc, expiring


def _expired_records(fd: int, size: int, number: int, expired: Mapping[Any, int],
                     keys: list, decode_key: Callable[[Any], Any]) -> dict | None:
    """``{key: (offset, length, deadline)}`` of the ``expired`` records (key -> location of
    its newest noted, see :func:`from_index`) that lie in segment ``number``'s first
    ``size`` bytes, for keys not among ``keys`` (the index's, newer); ``None`` if one is
    not its key's expiring set record."""
    base, limit = index.segment_base(number), index.segment_base(number + 1)
    found: dict = {}
    listed: set | None = None  # (a set of every listed key: only once a note lies in the segment)
    for key, location in expired.items():
        if not base <= location < limit:
            continue
        if listed is None:
            listed = set(keys)
        if key in listed:
            continue
        offset, length = (location >> OFFSET_SHIFT) & index.OFFSET_MASK, location & index.LENGTH_MASK
        line = files.pread(fd, length, offset) if offset + length <= size else b""
        obj = record.load(line)
        if type(obj) is not dict or "k" not in obj or "d" in obj or decode_key(obj["k"]) != key:
            return None
        deadline = record.expiry_of(line)
        if deadline is None:
            return None
        found[key] = (offset, length, deadline)
    return found


def _with_others(keys: list, starts: list[int], lengths: list[int], times: list | None,
                 tombstones: list[tuple[int, int, Any]], expired: dict, decode_key) -> tuple[list, list, list, list | None]:
    """Add each key's newest record that the index does not list (the index's are newer):
    its last tombstone, or its ``expired`` record (see :func:`_expired_records`), whichever
    is later in the segment."""
    listed = set(keys)
    last: dict = dict(expired)
    for offset, length, key in tombstones:
        key = decode_key(key)
        if key not in listed and offset > last.get(key, (-1,))[0]:
            last[key] = (offset, -length, None)
    merged = sorted(
        [*zip(starts, lengths, range(len(keys))), *((o, n, -1 - i) for i, (o, n, _) in enumerate(last.values()))]
    )
    others, other_times = list(last), [deadline for _, _, deadline in last.values()]
    return (
        [keys[i] if i >= 0 else others[-1 - i] for _, _, i in merged],
        [start for start, _, _ in merged],
        [length for _, length, _ in merged],
        None if times is None else [times[i] if i >= 0 else other_times[-1 - i] for _, _, i in merged],
    )


def _gaps(starts: list[int], lengths: list[int], size: int) -> list[list[int]]:
    """The gaps (see :class:`Hint`) between records at ``starts`` of ``lengths`` (signed)."""
    if not starts:
        return [[0, size]] if size else []
    gaps = [[0, starts[0]]] if starts[0] else []
    for at in range(0, len(starts), _SLICE):  # a slice per C call (see from_index)
        ends = list(map(add, starts[at : at + _SLICE], map(abs, lengths[at : at + _SLICE])))
        between = list(map(sub, starts[at + 1 : at + 1 + _SLICE], ends))  # bytes before record i + 1
        # [i + 1, bytes] where some: C iterators, as a segment of updates has a gap per record
        gaps += map(list, zip(compress(range(at + 1, at + 1 + len(between)), between), filter(None, between)))
    end = abs(lengths[-1]) + starts[-1]
    if end < size:
        gaps.append([len(starts), size - end])
    return gaps


def write_newest(directory: str, name: str, fd: int, size: int, keys: Iterable, locations: Iterable[int],
                 decode_key: Callable[[Any], Any], deadlines: Mapping[Any, float] | None = None,
                 expired: Iterable[tuple[Any, int]] | None = None) -> None:
    """Write the hint of the first ``size`` bytes of the newest segment ``name`` (open at
    ``fd``) from the writer's index (see :func:`from_index`): on a clean close. Not if
    ``name`` in ``directory`` leads to another file than ``fd`` (a swapped directory whose
    store has a sealed segment of that name and size, which readers would index by this
    hint unread; see :func:`write_sealed`), and removed if the swap came while it wrote."""
    path = os.path.join(directory, name)
    if not files.same_file(fd, path):
        return
    hint, crc = from_index(keys, locations, _number(name), fd, size, decode_key, deadlines, expired)
    if hint is not None:
        write(directory, name, size, hint, segment.hint_name(name), segment_crc=crc)
        if not files.same_file(fd, path):
            _unlink_if_there(os.path.join(directory, segment.hint_name(name)))


def write_sealed(directory: str, name: str, size: int, kind: str, decode_key: Callable[[Any], Any],
                 keys: list | None = None, locations: list[int] | None = None,
                 deadlines: Mapping[Any, float] | None = None,
                 expired: Iterable[tuple[Any, int]] | None = None,
                 segment_id: tuple[int, int] | None = None) -> None:
    """Write the hint of segment ``name``, sealed at ``size`` bytes: from the index as it was
    at the rotation (``keys``, ``locations``: see :func:`from_index`), or without them by
    scanning the segment. If a compaction retired the segment meanwhile, write nothing, or
    remove what was written (whoever retired it may have deleted the hint's place already).

    ``segment_id``: (device, inode) of the segment the writer sealed. This runs in a thread
    a while after the rotation; if ``directory`` no longer holds that file under ``name``
    (the directory was swapped for another store's, whose segment may have that name and
    size), write nothing there, or remove what was written: readers trust a sealed
    segment's hint without reading the segment, so a hint of another file would index it wrongly."""
    path = os.path.join(directory, name)
    try:
        fd = files.open_read(path)
    except FileNotFoundError:
        return
    try:
        if segment_id is not None and files.file_identity(fd) != segment_id:
            return
        if keys is not None and locations is not None:
            hint, crc = from_index(keys, locations, _number(name), fd, size, decode_key, deadlines, expired)
        else:
            hint, crc = _from_scan(fd, size, decode_key), None
        del keys, locations, deadlines, expired
        if hint is None:  # it holds expiring records the writer could not describe
            return
        hint_path = os.path.join(directory, segment.hint_name(name))
        write(directory, name, size, hint, segment.hint_name(name), segment_crc=crc)
        if name not in manifest.read(directory).segments or not files.same_file(fd, path):
            _unlink_if_there(hint_path)
    finally:
        files.close(fd)


def _unlink_if_there(path: str) -> None:
    try:
        files.unlink(path)
    except FileNotFoundError:
        pass


def _from_scan(fd: int, size: int, decode_key: Callable[[Any], Any]) -> Hint:
    scanner = segment.Scanner(fd, 0, size)
    hint = from_records(
        ((kind, decode_key(key), offset, len(line), record.expiry_of(line) if kind == record.SET else None)
         for kind, key, offset, line in scanner),
        size,
    )
    if scanner.damage() is not None or scanner.good_end != size:
        raise ValueError(f"segment does not scan cleanly to byte {size}: {scanner.damage()}")
    return hint


class Sealer:
    """Writes the hints of segments the writer seals, one at a time, in a thread of its own.

    A rotation then costs the writer at most a copy of its index (two lists of pointers);
    the rest (picking the segment's keys, sorting, reading it for tombstones, writing) runs
    beside its writes. :meth:`close` waits for the hints queued so far.
    """

    def __init__(self, directory: str):
        self.directory = directory
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=f"pysos-hints {self.directory}", daemon=True)
            self._thread.start()
        self._jobs.put(job)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            if self._thread is not threading.current_thread():
                self._thread.join()
        self._thread = None

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except Exception:  # a hint is an optimisation: its segment is scanned instead
                log.warning("pysos: could not write a hint in %s", self.directory, exc_info=True)
            del job


def _number(name: str) -> int:
    number = segment.segment_number(name)
    if number is None:  # the engine names only well-formed segments
        raise ValueError(f"not a segment name: {name!r}")
    return number
