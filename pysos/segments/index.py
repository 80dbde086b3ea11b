"""The in-memory index: key -> location of the key's newest record. Values never live in RAM.

A location is one int packing (segment number, byte offset, record length), so each key
costs one dict slot and one int object::

    location = segment << SEGMENT_SHIFT | offset << OFFSET_SHIFT | length

The index itself is a plain ``dict`` (the read path's one lookup); this module holds its
layout and the operations that fill it from a segment: :func:`apply_scan` (records read
by a :class:`~.segment.Scanner`), :func:`apply_hint` (a sealed segment's hint),
:func:`remap` (keys moved by a compaction) and :func:`live_bytes`.

Live bytes (the sum of the lengths of the records the index points to) are an ``int`` or
``None`` when unknown: a scan that replaced keys cannot tell which lengths it dropped, and
the sum is then taken again over the index (one pass, no Python call per key) when needed.
"""

from __future__ import annotations

import heapq
import itertools
import operator
from typing import Any, Callable, Iterable

from . import record

SEGMENT_SHIFT = 72
OFFSET_SHIFT = 32  # fixed: hint files store offset << 32 | length
LENGTH_MASK = (1 << OFFSET_SHIFT) - 1
OFFSET_MASK = (1 << (SEGMENT_SHIFT - OFFSET_SHIFT)) - 1


def pack(segment: int, offset: int, length: int) -> int:
    return (segment << SEGMENT_SHIFT) | (offset << OFFSET_SHIFT) | length


def unpack(location: int) -> tuple[int, int, int]:
    """(segment number, offset, length)."""
    return location >> SEGMENT_SHIFT, (location >> OFFSET_SHIFT) & OFFSET_MASK, location & LENGTH_MASK


def segment_of(location: int) -> int:
    return location >> SEGMENT_SHIFT


def length_of(location: int) -> int:
    return location & LENGTH_MASK


def segment_base(segment: int) -> int:
    """``pack(segment, 0, 0)``: OR it with ``offset << OFFSET_SHIFT | length`` to get a location."""
    return segment << SEGMENT_SHIFT


def local_part(location: int) -> int:
    """``offset << OFFSET_SHIFT | length``: the location within its segment, as hint files store it."""
    return location & ((1 << SEGMENT_SHIFT) - 1)


def live_bytes(index: dict) -> int:
    """The sum of the lengths of the records ``index`` points to."""
    return sum(map(LENGTH_MASK.__and__, index.values()))  # no Python call per key


def apply_scan(
    index: dict, number: int, scanned: Iterable[tuple[str, Any, int, bytes]], decode_key: Callable[[Any], Any],
    changed: Callable[[list, list], None] | None = None, expires: "Deadlines | None" = None,
) -> None:
    """Point ``index`` at the records a scan of segment ``number`` yields, in order.

    ``changed(added, removed)``, if given, hears the net change of keys: a key set and
    deleted again within one scan was neither added nor removed. ``expires`` (the
    store's :class:`Deadlines`) is kept in step.
    """
    base = segment_base(number)
    present_before: dict | None = {} if changed is not None else None
    expiring = expires.by_key if expires is not None else None
    mark, mark_end = record.EXPIRES_MARK, record.PREFIX_LEN + len(record.EXPIRES_MARK)
    for kind, key, offset, line in scanned:
        key = decode_key(key)
        if present_before is not None and key not in present_before:
            present_before[key] = key in index
        if kind == record.SET:
            index[key] = base | (offset << OFFSET_SHIFT) | len(line)
            if line[record.PREFIX_LEN : mark_end] == mark and expires is not None:
                expires.set(key, record.expiry_of(line))
            elif expiring:
                expiring.pop(key, None)
        else:
            if key in index:
                del index[key]
            if expiring:
                expiring.pop(key, None)
    if present_before:
        added = [k for k, was in present_before.items() if not was and k in index]
        removed = [k for k, was in present_before.items() if was and k not in index]
        if added or removed:
            changed(added, removed)


def apply_hint(index: dict, number: int, hint, live: int | None, expires: "Deadlines | None" = None) -> int | None:
    """Point ``index`` at the records a hint of segment ``number`` lists (keys already
    decoded, see :func:`decode_hint`); return the live bytes after (``None``: unknown).
    ``expires`` (see :func:`apply_scan`) forgets the deadlines of keys the hint sets again
    (a hint never describes an expiring record: segments that hold one have no hint)."""
    before = len(index)
    if expires is not None and expires.by_key:  # keys set again lose their older record's deadline
        forget = expires.by_key.pop
        for key in hint.keys:
            forget(key, None)
    index.update(hint.live(segment_base(number)))
    if live is not None:
        count, total = hint.live_count_and_bytes()
        # Every key new to the index (the usual case: compaction outputs hold disjoint
        # keys): the live bytes grow by the hint's, with no pass over the index.
        live = live + total if len(index) - before == count else None
    for key in hint.tombstones():
        old = index.pop(key, None)
        if old is not None and live is not None:
            live -= old & LENGTH_MASK
    return live


def decode_hint(hint, decode_key: Callable[[Any], Any]):
    """The hint with its keys as the index holds them (a List's arrays become tuples)."""
    if decode_key is record.same_key:  # JSON scalars are their own keys: no copy of a big list
        return hint
    return hint.with_keys(list(map(decode_key, hint.keys)))


def remap(index: dict, entries: Iterable[tuple[Any, int]], retired: set[int]) -> None:
    """A compaction copied records into a new segment: keys whose location is in a
    ``retired`` segment move to their copy's location (``entries``: key -> location)."""
    for key, location in entries:
        current = index.get(key)
        if current is not None and current >> SEGMENT_SHIFT in retired:
            index[key] = location


def scanned_sets(scanned: Iterable[tuple[str, Any, int, bytes]], number: int, decode_key) -> Iterable[tuple[Any, int]]:
    """(key, location) of each SET record of a scan of segment ``number``."""
    base = segment_base(number)
    return (
        (decode_key(key), base | (offset << OFFSET_SHIFT) | len(line))
        for kind, key, offset, line in scanned
        if kind == record.SET
    )


_heappush = heapq.heappush
_INF = float("inf")
_second = operator.itemgetter(1)


class Deadlines:
    """When keys expire: ``by_key`` (key -> deadline, Unix seconds, only keys whose indexed
    record expires), and the deadlines in order, to find the next one.

    Most deadlines arrive in order (a store default ``expire`` gives ever later ones), so
    they go to a FIFO kept as two parallel lists, ``times`` and ``keys``, from ``head`` on:
    a write appends a float and a key, no tuple and no heap work (see
    ``Writer.write_expiring``, which does that append inline while ``deadline >= last``).
    ``last`` is the last queued deadline, ``inf`` while the queue is empty, so that the
    first entry always takes :meth:`set`'s other branch, which tells whether the gate must be
    aimed (deadlines are finite: JSON has no infinity, and ``expire`` is checked finite).
    ``first`` is the first queued deadline (``inf`` when empty). The others go to ``heap``
    of ``(deadline, n, key)``. An entry whose deadline is no longer its key's is stale
    and skipped; :meth:`next` (called at least once a second by a handle that writes or
    follows) starts again from ``by_key`` when most entries are stale. Stores without
    expiry keep ``by_key`` empty, and their hot paths test only that."""

    __slots__ = ("by_key", "times", "keys", "head", "first", "last", "heap", "_seq")

    def __init__(self) -> None:
        self.by_key: dict = {}
        self.heap: list = []
        self._seq = itertools.count()  # ties on a deadline never compare keys (1 vs "a")
        self._empty_queue()

    def _empty_queue(self) -> None:
        self.times: list = []
        self.keys: list = []
        self.head = 0
        self.first = self.last = _INF

    def set(self, key: Any, deadline: float) -> bool:
        """Give ``key`` its ``deadline``; True if that is now the earliest of all (whoever
        waits for the next deadline must be told: see ``Writer.write_expiring``)."""
        self.by_key[key] = deadline
        if deadline >= self.last:  # the usual case: queued after the last, not the earliest
            self.times.append(deadline)
            self.keys.append(key)
            self.last = deadline
            return False
        heap = self.heap
        if self.head == len(self.times):  # an empty queue (``last`` is inf): this starts it
            self.times.append(deadline)
            self.keys.append(key)
            self.first = self.last = deadline
            return not heap or deadline < heap[0][0]
        earlier = deadline < self.first and (not heap or deadline < heap[0][0])
        _heappush(heap, (deadline, next(self._seq), key))
        return earlier

    def queued(self) -> int:
        """How many entries (stale or not) wait in the queue and the heap."""
        return len(self.times) - self.head + len(self.heap)

    def pop(self, key: Any) -> float | None:
        return self.by_key.pop(key, None)

    def clear(self) -> None:
        self.by_key.clear()
        self.heap.clear()
        self._empty_queue()

    def take_due(self, now: float) -> list:
        """Remove and return the keys whose deadline is ``<= now``."""
        times, keys, heap, by_key, due = self.times, self.keys, self.heap, self.by_key, []
        head, end = self.head, len(times)
        while head < end and times[head] <= now:
            key = keys[head]
            if by_key.get(key) == times[head]:
                del by_key[key]
                due.append(key)
            head += 1
        self._advance(head)
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if by_key.get(key) == deadline:
                del by_key[key]
                due.append(key)
        return due

    def _advance(self, head: int) -> None:
        """Drop the queue's entries before ``head`` (their memory once they are most of it)."""
        times = self.times
        if head >= len(times):
            self._empty_queue()
            return
        if head > 1024 and 2 * head > len(times):
            del times[:head], self.keys[:head]
            head = 0
        self.head = head
        self.first = times[head]

    def first_passed(self, now: float) -> bool:
        """Whether the first entry (stale or not) of the queue or the heap is ``<= now``."""
        heap = self.heap
        return self.first <= now or bool(heap) and heap[0][0] <= now

    def next(self) -> float | None:
        """The earliest deadline still pending, or ``None``."""
        if self.queued() > 2 * len(self.by_key) + 1024:  # mostly stale (keys rewritten or deleted)
            self._rebuild()
        times, keys, heap, by_key = self.times, self.keys, self.heap, self.by_key
        head, end = self.head, len(times)
        while head < end and by_key.get(keys[head]) != times[head]:
            head += 1
        self._advance(head)
        while heap:
            deadline, _, key = heap[0]
            if by_key.get(key) == deadline:
                break
            heapq.heappop(heap)
        first = min(self.first, heap[0][0] if heap else _INF)
        return None if first == _INF else first

    def _rebuild(self) -> None:
        """Start again from ``by_key``: every deadline queued once, in order."""
        pending = sorted(self.by_key.items(), key=_second)
        self.heap = []
        self._empty_queue()
        if pending:
            self.keys = [key for key, _ in pending]
            self.times = [deadline for _, deadline in pending]
            self.first, self.last = self.times[0], self.times[-1]
