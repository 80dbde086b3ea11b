"""Merge planning: *when* to compact a store and *which* segments to merge.

Everything here is a pure function of numbers and key sets, so it is unit-tested without
files. The two compactors feed it differently:

- the writer's background thread knows every live record's location (its index), so
  :func:`dead_from_locations` gives each segment's dead bytes exactly;
- the daemon has no index; it keeps a :class:`KeySummary` per segment (the newest record
  of each key in the segment, from the segment's hint file when it has a good one, else
  from one scan) and :func:`estimate_dead` walks them newest to oldest: a record is dead
  when a later segment holds a record (set or tombstone) of its key. Sealed segments
  never change, so each is read once per daemon and cached by name; the newest segment
  is scanned incrementally from where the last look stopped. Batch markers, records
  shadowed within their own segment and tombstones count as dead, except a tombstone
  an older segment still needs (its length comes from the hint, or from the scan).
  A summary also keeps the deadlines of its expiring records (from the scan, or from a
  version 3 hint's line of deadlines), so a record counts as dead once its deadline has
  passed, however long ago the segment was summarized (less the tombstone a merge
  writes for it while an older segment holds its key).

Both estimates can call bytes dead that a merge must keep (the writer's index does not
see tombstones at all). A merge that reclaims less than half of what it was chosen for
is *fruitless*; its outputs are then marked clean (:func:`mark_clean`) with the bytes
their estimate calls dead that no merge can drop (the thread: the tombstones the merge
kept; the daemon: its estimate of the outputs right after the merge). Until a segment
before them changes (:func:`still_clean`) only the dead bytes beyond those count
(:func:`discount`): no compactor rewrites the same bytes in a loop, garbage added to a
marked segment later (its keys rewritten, deleted or expired) is reclaimed as in any
other, and tombstones kept alive by an older segment go once that segment is merged.

The policy: compact when the dead bytes of the *sealed* segments (the only ones a merge
can reclaim) pass both ``ratio`` of the store's disk bytes and ``min_dead_bytes``. A
merge takes a contiguous run of sealed segments (never the newest, which the writer
appends to) of at most ``max_merge_bytes`` input bytes, so the extra disk a merge needs
while it runs is bounded by that, never by the size of the store. One exception, for the
thread only (its figures are exact): sealed segments from the oldest that hold no live
record are dropped whatever the policy says (:func:`dead_prefix`), since that copies
nothing.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from itertools import islice, repeat
from operator import and_
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from ..segments import index, record

DEFAULT_RATIO = 0.5
DEFAULT_MIN_DEAD_BYTES = 4 * 2**20
DEFAULT_MAX_MERGE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Policy:
    """When to compact and how much to merge at once."""

    ratio: float = DEFAULT_RATIO
    min_dead_bytes: int = DEFAULT_MIN_DEAD_BYTES
    max_merge_bytes: int = DEFAULT_MAX_MERGE_BYTES

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError(f"ratio must be between 0 and 1, not {self.ratio!r}")
        if self.min_dead_bytes < 0:
            raise ValueError(f"min_dead_bytes cannot be negative, not {self.min_dead_bytes!r}")
        if self.max_merge_bytes < 1:
            raise ValueError(f"max_merge_bytes must be positive, not {self.max_merge_bytes!r}")

    def due(self, disk_bytes: int, dead_bytes: int) -> bool:
        """True when ``dead_bytes`` (reclaimable) pass both the ratio and the floor."""
        return dead_bytes > 0 and dead_bytes >= self.min_dead_bytes and dead_bytes >= self.ratio * disk_bytes


class SegmentEstimate(NamedTuple):
    name: str
    size: int   # bytes on disk
    dead: int   # bytes a merge would drop (an estimate)


def choose_run(segments: Sequence[SegmentEstimate], max_merge_bytes: int) -> tuple[int, int] | None:
    """The run ``(start, stop)`` of sealed segments to merge, or ``None`` if none is worth it.

    ``segments`` is the MANIFEST's order; the last one is the writer's and never taken.
    Among contiguous runs whose sizes add up to at most ``max_merge_bytes`` (a single
    segment is always allowed, however big), take the one with the most dead bytes; on a
    tie the earliest (older garbage first); then trim segments without dead bytes off
    both ends (rewriting them would reclaim nothing).
    """
    sealed = list(segments[:-1])
    best: tuple[int, int, int] | None = None  # (dead, start, stop)
    start = 0
    size_sum = dead_sum = 0
    for stop, seg in enumerate(sealed, start=1):
        size_sum += seg.size
        dead_sum += seg.dead
        while stop - start > 1 and size_sum > max_merge_bytes:
            size_sum -= sealed[start].size
            dead_sum -= sealed[start].dead
            start += 1
        if best is None or dead_sum > best[0]:
            best = (dead_sum, start, stop)
    if best is None or best[0] <= 0:
        return None
    _, start, stop = best
    while start < stop and sealed[start].dead <= 0:
        start += 1
    while stop > start and sealed[stop - 1].dead <= 0:
        stop -= 1
    return start, stop


def plan(segments: Sequence[SegmentEstimate], policy: Policy) -> tuple[int, int] | None:
    """The run to merge now under ``policy``, or ``None`` if the store is not due."""
    disk = sum(seg.size for seg in segments)
    dead = sum(seg.dead for seg in segments[:-1])
    if not policy.due(disk, dead):
        return None
    return choose_run(segments, policy.max_merge_bytes)


def dead_prefix(segments: Sequence[SegmentEstimate]) -> tuple[int, int] | None:
    """The run of sealed segments from the oldest that holds no live byte, or ``None``.

    Only exact figures will do: the writer's (:func:`dead_from_locations`), or the daemon's
    from whole key summaries (:func:`estimate_dead`, whose oldest segment has no tombstone
    to keep): ``dead >= size`` there means no record of the segment is live (an estimate
    that is lowered, :func:`discount`, only makes this rarer). Dropping such a run
    copies nothing, and no tombstone in it has anything left to hide (no segment is older),
    so it is worth doing whatever the policy's floor says: under a churn of short-lived
    keys a merge's output is all expired a TTL later, yet often smaller than the floor.
    """
    stop = 0
    for seg in segments[:-1]:
        if seg.dead < seg.size:
            break
        stop += 1
    return (0, stop) if stop else None


def next_full_run(
    names: Sequence[str], sizes: Sequence[int], todo: set[str], max_merge_bytes: int
) -> tuple[int, int] | None:
    """For a full compaction done as bounded merges: the next run of ``todo`` segments.

    ``todo`` is the set of sealed segments there were when the compaction began; the
    run is the oldest stretch of them that is contiguous in ``names`` (outputs of the
    previous merges are not in ``todo`` and end a stretch), cut to ``max_merge_bytes``.
    Merging oldest first reclaims everything: each merge drops records any later
    segment overrides, and tombstones no earlier segment needs.
    """
    last = len(names) - 1  # the writer's segment
    for start in range(last):
        if names[start] in todo:
            stop = start + 1
            total = sizes[start]
            while stop < last and names[stop] in todo and total + sizes[stop] <= max_merge_bytes:
                total += sizes[stop]
                stop += 1
            return start, stop
    return None


_SLICE = 1 << 16  # locations per sort in dead_from_locations


def dead_from_locations(
    locations: Iterable[int], sizes: dict[int, int]
) -> dict[int, int]:
    """Dead bytes per segment number, exactly, from the index's live locations.

    C loops, no Python code per location (the thread runs this at every merge it plans,
    over the whole index: a Python loop was ~0.2 s at 100,000 keys): a slice of locations
    at a time is sorted, and each segment's live lengths are one stretch of it to sum.
    Slices bound the time one C call holds the GIL (the writer waits meanwhile)."""
    live = Counter()
    bounds = [(number, index.segment_base(number), index.segment_base(number + 1)) for number in sizes]
    mask = repeat(index.LENGTH_MASK)
    locations = iter(locations)
    while True:
        some = sorted(islice(locations, _SLICE))
        if not some:
            break
        for number, lo, hi in bounds:
            start = bisect_left(some, lo)
            if start < len(some) and some[start] < hi:
                live[number] += sum(map(and_, some[start : bisect_left(some, hi, start)], mask))
    return {number: max(size - live.get(number, 0), 0) for number, size in sizes.items()}


@dataclass
class KeySummary:
    """The newest record of each key within one segment, up to byte ``end``."""

    end: int = 0
    lengths: dict[Any, int] = field(default_factory=dict)      # key -> length of its newest set
    tombstones: dict[Any, int] = field(default_factory=dict)   # key -> length of its delete
    deadlines: dict[Any, float] = field(default_factory=dict)  # key -> deadline of its newest set, if it expires

    def add(self, kind: str, key: Any, length: int, deadline: float | None = None) -> None:
        if kind == record.SET:
            self.lengths[key] = length
            self.tombstones.pop(key, None)
            if deadline is not None:
                self.deadlines[key] = deadline
                return
        else:
            self.lengths.pop(key, None)
            self.tombstones[key] = length
        if self.deadlines:
            self.deadlines.pop(key, None)

    def expired_by(self, now: float) -> bool:
        """True if a record of this summary has expired by ``now``."""
        return bool(self.deadlines) and min(self.deadlines.values()) <= now

    @classmethod
    def from_hint(cls, size: int, keys: Iterable, lengths: Iterable[int],
                  deadlines: Iterable[float | None] | None = None) -> "KeySummary":
        """From a hint file's keys, record lengths (negative for a tombstone) and deadlines
        (``None``: no record expires)."""
        summary = cls(size)
        for key, length, deadline in zip(keys, lengths, repeat(None) if deadlines is None else deadlines):
            if length > 0:
                summary.lengths[key] = length
                if deadline is not None:
                    summary.deadlines[key] = deadline
            else:
                summary.tombstones[key] = -length
        return summary


def estimate_dead(summaries: Sequence[KeySummary], sizes: Sequence[int], now: float | None = None) -> list[int]:
    """Dead bytes of each segment (same order as the MANIFEST), from their key summaries.

    Live in a segment: its keys' newest records that no later segment overrides, and its
    tombstones that are their key's newest record while an older segment still holds a
    record of that key (a merge must keep those). Everything else in its ``size`` bytes
    is dead. With ``now`` (wall clock), a newest record whose deadline is at or before
    ``now`` is dead too, but for the tombstone a merge writes in its place while an older
    segment holds its key.
    """
    n = len(summaries)
    live = [0] * n
    last_word: list[list[tuple[Any, int]]] = [[] for _ in range(n)]  # tombstones nothing overrides
    seen: set = set()
    for i in range(n - 1, -1, -1):
        summary = summaries[i]
        last_word[i] = [(key, length) for key, length in summary.tombstones.items() if key not in seen]
        if now is None or not summary.expired_by(now):
            live[i] = sum(length for key, length in summary.lengths.items() if key not in seen)
        else:
            deadlines = summary.deadlines
            for key, length in summary.lengths.items():
                if key in seen:
                    continue
                deadline = deadlines.get(key)
                if deadline is not None and deadline <= now:
                    last_word[i].append((key, len(record.encode_tombstone(key))))
                else:
                    live[i] += length
        seen.update(summary.lengths)
        seen.update(summary.tombstones)
    earlier: set = set()
    for i in range(n):
        live[i] += sum(length for key, length in last_word[i] if key in earlier)
        earlier.update(summaries[i].lengths)
        earlier.update(summaries[i].tombstones)
    return [max(size - alive, 0) for size, alive in zip(sizes, live)]


class CleanMark(NamedTuple):
    """A fruitless merge's output (see :func:`mark_clean`)."""

    before: tuple[str, ...]  # the segments before it when it was marked
    kept: int                # bytes its estimate called dead then that no merge could drop


def discount(segments: Sequence[SegmentEstimate], clean: Mapping[str, CleanMark]) -> list[SegmentEstimate]:
    """The estimates, less each clean segment's ``kept`` bytes.

    ``clean`` holds the outputs of *fruitless* merges (see :func:`fruitless`): what the
    estimate called dead there when they were marked was not reclaimable (e.g. tombstones
    an older segment still needs, which the writer's index cannot see). Without this, a
    compactor could rewrite the same bytes again and again; only the dead bytes beyond
    those (records of the segment overwritten, deleted or expired since) count.
    """
    return [seg._replace(dead=max(seg.dead - clean[seg.name].kept, 0)) if seg.name in clean else seg
            for seg in segments]


def mark_clean(clean: dict[str, CleanMark], names: Sequence[str], kept: Mapping[str, int]) -> None:
    """Remember the outputs of a fruitless merge (``kept``: each one's bytes that its
    estimate calls dead but no merge can drop) as clean, with the segments before them."""
    names = list(names)
    for name, nbytes in kept.items():
        if name in names:
            clean[name] = CleanMark(tuple(names[: names.index(name)]), nbytes)


def still_clean(clean: dict[str, CleanMark], names: Sequence[str]) -> dict[str, CleanMark]:
    """The marks that still hold: a segment stays clean while every segment before it is
    unchanged (once an older segment is merged, the tombstones it kept alive may go)."""
    names = list(names)
    position = {name: i for i, name in enumerate(names)}
    return {
        name: mark for name, mark in clean.items()
        if name in position and tuple(names[: position[name]]) == mark.before
    }


def fruitless(estimated_dead: int, reclaimed: int) -> bool:
    """True when a merge reclaimed less than half of the dead bytes it was chosen for."""
    return reclaimed * 2 < estimated_dead


__all__ = [
    "CleanMark",
    "DEFAULT_MAX_MERGE_BYTES",
    "DEFAULT_MIN_DEAD_BYTES",
    "DEFAULT_RATIO",
    "KeySummary",
    "Policy",
    "SegmentEstimate",
    "choose_run",
    "dead_from_locations",
    "dead_prefix",
    "discount",
    "estimate_dead",
    "fruitless",
    "mark_clean",
    "next_full_run",
    "plan",
    "still_clean",
]
