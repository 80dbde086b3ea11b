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

import bisect
import collections
import functools
import heapq
import itertools
import operator
from itertools import compress, repeat
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
    or deletes, and learns those of its expiring records (a version 3 hint)."""
    before = len(index)
    if expires is not None and expires.by_key:  # keys set again lose their older record's deadline
        # (those given a new one below need not: only records without one, in a version 3 hint)
        again = hint.keys if hint.deadlines is None else compress(hint.keys, map(_is_none, hint.deadlines))
        _exhaust(map(expires.by_key.pop, again, repeat(None)))
    index.update(hint.live(segment_base(number)))
    if hint.deadlines is not None:
        if expires is None:
            raise ValueError("a hint with deadlines needs the store's Deadlines")
        expires.set_many(hint.keys, hint.deadlines)
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
_is_none = functools.partial(operator.is_, None)
_is_some = functools.partial(operator.is_not, None)
_eq = operator.eq
_exhaust = collections.deque(maxlen=0).extend  # runs an iterator to its end, in C
_INF = float("inf")


class Deadlines:
    """When keys expire: ``by_key`` (key -> deadline, Unix seconds, only keys whose indexed
    record expires), and what finds the next deadline to pass.

    Most deadlines arrive in order (a store default ``expire`` gives ever later ones). Such a
    deadline, no earlier than ``cover``, is only put in ``by_key``: the key waits *outside*
    (see ``Writer.write_expiring``, which does that inline: one dict store, nothing else).
    The keys waiting are sorted by deadline in one go, in C, into a queue once ``cover``
    passes (:meth:`_sort_pending`); ``cover`` is then the queue's last deadline, so every
    key outside is due no sooner than every entry in the queue. The queue is two parallel
    lists ``times`` and ``keys`` from ``head``. A deadline earlier than ``cover`` goes to
    ``heap`` of ``(deadline, n, key)`` instead. An entry whose deadline is no longer its
    key's (written again, deleted) is stale and skipped.

    ``first`` is no later than every deadline outside the heap: the queue's first entry,
    or ``cover`` once the queue is used up; ``cover`` and ``first`` are ``inf`` while
    nothing waits (deadlines are finite: JSON has no infinity, and ``expire`` is checked
    finite), so the first deadline takes :meth:`set`'s other branch, which tells whether
    the gate must be aimed. Stores without expiry keep ``by_key`` empty, and their hot
    paths test only that.

    Each pending key is sorted once per pass of ``cover`` (about once per ``expire``): a
    sort in C of every key pending then, ~100-300 instructions a key, instead of a Python
    append per write."""

    __slots__ = ("by_key", "times", "keys", "head", "first", "cover", "heap", "_seq")

    def __init__(self) -> None:
        self.by_key: dict = {}
        self.heap: list = []
        self._seq = itertools.count()  # ties on a deadline never compare keys (1 vs "a")
        self._empty_queue()
        self.first = self.cover = _INF

    def _empty_queue(self) -> None:
        self.times: list = []
        self.keys: list = []
        self.head = 0

    def set(self, key: Any, deadline: float) -> bool:
        """Give ``key`` its ``deadline``; True if that is now the earliest of all (whoever
        waits for the next deadline must be told: see ``Writer.write_expiring``)."""
        self.by_key[key] = deadline
        if deadline >= self.cover:  # the usual case: waits outside, no sooner than ``first``
            return False
        heap = self.heap
        if self.cover == _INF:  # nothing waits outside the heap: this key starts to
            self.first = self.cover = deadline
            return not heap or deadline < heap[0][0]
        earlier = deadline < self.first and (not heap or deadline < heap[0][0])
        _heappush(heap, (deadline, next(self._seq), key))
        return earlier

    def set_many(self, keys: list, deadlines: list) -> None:
        """:meth:`set` for each key of ``keys`` whose entry in ``deadlines`` is not ``None``
        (a version 3 hint's lines), in C loops while nothing is queued yet (opening): every
        key then waits outside, and ``cover`` (and ``first``) is the lowest deadline. Whoever
        waits for the next deadline is not told: the caller aims the gate afterwards (as
        after a scan)."""
        if None in deadlines:  # (C loops either way: no Python code per key)
            some = list(map(_is_some, deadlines))
            keys, deadlines = list(compress(keys, some)), list(compress(deadlines, some))
        if not deadlines:
            return
        self.by_key.update(zip(keys, deadlines))
        lowest = min(deadlines)
        if lowest >= self.cover:
            return
        if self.head >= len(self.times):  # nothing queued: all wait outside, none due before ``cover``
            self.first = self.cover = lowest
            return
        for key, deadline in zip(keys, deadlines):  # below a queue's cover: the heap (set()'s other case)
            if deadline < self.cover:
                _heappush(self.heap, (deadline, next(self._seq), key))

    def queued(self) -> int:
        """How many entries (stale or not) the queue and the heap hold."""
        return len(self.times) - self.head + len(self.heap)

    def waiting(self) -> bool:
        """Whether any deadline may be pending (stale entries count): the gate must be aimed."""
        return self.first != _INF or bool(self.heap)

    def pop(self, key: Any) -> float | None:
        return self.by_key.pop(key, None)

    def clear(self) -> None:
        self.by_key.clear()
        self.heap.clear()
        self._empty_queue()
        self.first = self.cover = _INF

    def take_due(self, now: float) -> list:
        """Remove and return the keys whose deadline is ``<= now``."""
        by_key, times, keys, head = self.by_key, self.times, self.keys, self.head
        cut = bisect.bisect_right(times, now, head)  # the queue is sorted: [head, cut) is due
        due = []
        if cut > head:  # the live ones (their key's deadline is still this one), in C loops:
            # under a churn of expiring keys this is a key per write
            due = list(compress(keys[head:cut], map(_eq, map(by_key.get, keys[head:cut]), times[head:cut])))
            _exhaust(map(by_key.pop, due, repeat(None)))
        used_up = cut >= len(times)
        self._advance(cut)
        if used_up and self.cover <= now and by_key:  # keys outside may be due: sort them in
            self._sort_pending()  # (every key pending is in the queue now, so this goes one level deep)
            due += self.take_due(now)
            return due
        heap = self.heap
        while heap and heap[0][0] <= now:
            deadline, _, key = heapq.heappop(heap)
            if by_key.get(key) == deadline:
                del by_key[key]
                due.append(key)
        return due

    def _advance(self, head: int) -> None:
        """Drop the queue's entries before ``head`` (their memory once they are most of it),
        and set ``first``."""
        times = self.times
        if head >= len(times):
            self._empty_queue()
            if self.by_key:  # keys wait outside (or in the heap): none is due before ``cover``
                self.first = self.cover
            else:
                self.first = self.cover = _INF
            return
        if head > 1024 and 2 * head > len(times):
            del times[:head], self.keys[:head]
            head = 0
        self.head = head
        self.first = times[head]

    def _sort_pending(self) -> None:
        """Queue every pending key, sorted by deadline (those in the heap too: whichever of
        their two entries comes due first takes the key, the other is stale then)."""
        by_key = self.by_key
        self._empty_queue()
        # No (key, deadline) tuples: C loops only, nothing for the GC to track. A sort is
        # stable and ties are equal, so the sorted deadlines line up with the sorted keys.
        self.keys = sorted(by_key, key=by_key.__getitem__)
        self.times = sorted(by_key.values())
        if self.times:
            self.first, self.cover = self.times[0], self.times[-1]
        else:
            self.first = self.cover = _INF

    def lower_bound(self) -> float:
        """No later than the earliest pending deadline: ``first`` or the heap's first entry
        (stale or not), ``inf`` if nothing waits. O(1), unlike :meth:`next`."""
        heap = self.heap
        return heap[0][0] if heap and heap[0][0] < self.first else self.first

    def first_passed(self, now: float) -> bool:
        """Whether the lower bound (:meth:`lower_bound`) is ``<= now``."""
        heap = self.heap
        return self.first <= now or bool(heap) and heap[0][0] <= now

    def tidy(self) -> None:
        """Start again from ``by_key`` once most entries are stale (keys deleted, or written
        again out of order): their memory goes, in one sort rather than one look per entry."""
        if self.queued() > 2 * len(self.by_key) + 1024:
            self._sort_pending()
            self.heap = []

    def next(self) -> float | None:
        """The earliest deadline still pending, or ``None``. Skips the stale entries
        before it, one dict lookup each, and sorts in the keys outside once the queue is
        used up (see :meth:`lower_bound` for a bound in O(1))."""
        by_key, heap, head = self.by_key, self.heap, self.head
        if not heap and head < len(self.times) and by_key.get(self.keys[head]) == self.times[head]:
            return self.times[head]  # the usual case: the queue's first entry is live, the heap empty
        for _ in range(2):
            times, keys = self.times, self.keys
            head, end = self.head, len(times)
            while head < end and by_key.get(keys[head]) != times[head]:
                head += 1
            self._advance(head)
            if head < end or not by_key or self.cover == _INF:
                break
            self._sort_pending()  # the queue is used up and keys wait outside
        while heap:
            deadline, _, key = heap[0]
            if by_key.get(key) == deadline:
                break
            heapq.heappop(heap)
        if not by_key:  # nothing pending: the stale entries left can go
            self.clear()
            return None
        first = min(self.first, heap[0][0] if heap else _INF)
        return None if first == _INF else first
