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

import collections
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
_second = operator.itemgetter(1)


class Deadlines:
    """When keys expire: ``by_key`` (key -> deadline, Unix seconds, only keys whose indexed
    record expires), and the deadlines in order to find the next one: ``queue``, a FIFO of
    ``(deadline, key)`` for deadlines no earlier than its last (the usual case: a store
    default ``expire`` gives ever later deadlines, so an append and, once passed or stale,
    a popleft: no heap work per write), and ``heap`` of ``(deadline, n, key)`` for the
    others. An entry whose deadline is no longer its key's is stale and skipped. Stores
    without expiry keep ``by_key`` empty, and their hot paths test only that."""

    __slots__ = ("by_key", "queue", "heap", "_seq")

    def __init__(self) -> None:
        self.by_key: dict = {}
        self.queue: collections.deque = collections.deque()
        self.heap: list = []
        self._seq = itertools.count()  # ties on a deadline never compare keys (1 vs "a")

    def set(self, key: Any, deadline: float) -> bool:
        """Give ``key`` its ``deadline``; True if that is now the earliest of all (whoever
        waits for the next deadline must be told: see ``Writer.write_expiring``)."""
        self.by_key[key] = deadline
        queue, heap = self.queue, self.heap
        if queue:
            if deadline >= queue[-1][0]:  # the usual case: not the earliest
                queue.append((deadline, key))
                if not len(queue) & 1023:
                    self._compact_if_stale()
                return False
            earlier = deadline < queue[0][0] and (not heap or deadline < heap[0][0])
            _heappush(heap, (deadline, next(self._seq), key))
            if not len(heap) & 1023:
                self._compact_if_stale()
            return earlier
        queue.append((deadline, key))
        return not heap or deadline < heap[0][0]

    def _compact_if_stale(self) -> None:
        """Mostly stale entries (keys rewritten or deleted): start again from ``by_key``."""
        if len(self.queue) + len(self.heap) > 2 * len(self.by_key) + 1024:
            self.queue = collections.deque((t, k) for k, t in sorted(self.by_key.items(), key=_second))
            self.heap = []

    def pop(self, key: Any) -> float | None:
        return self.by_key.pop(key, None)

    def clear(self) -> None:
        self.by_key.clear()
        self.queue.clear()
        self.heap.clear()

    def take_due(self, now: float) -> list:
        """Remove and return the keys whose deadline is ``<= now``."""
        queue, heap, by_key, due = self.queue, self.heap, self.by_key, []
        while queue and queue[0][0] <= now:
            deadline, key = queue.popleft()
            if by_key.get(key) == deadline:
                del by_key[key]
                due.append(key)
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if by_key.get(key) == deadline:
                del by_key[key]
                due.append(key)
        return due

    def first_passed(self, now: float) -> bool:
        """Whether the first entry (stale or not) of the queue or the heap is ``<= now``."""
        queue, heap = self.queue, self.heap
        return bool(queue and queue[0][0] <= now or heap and heap[0][0] <= now)

    def next(self) -> float | None:
        """The earliest deadline still pending, or ``None``."""
        queue, heap, by_key = self.queue, self.heap, self.by_key
        while queue:
            deadline, key = queue[0]
            if by_key.get(key) == deadline:
                break
            queue.popleft()
        while heap:
            deadline, _, key = heap[0]
            if by_key.get(key) == deadline:
                break
            heapq.heappop(heap)
        if queue and (not heap or queue[0][0] <= heap[0][0]):
            return queue[0][0]
        return heap[0][0] if heap else None
