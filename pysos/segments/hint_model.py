"""A hint's records in memory: :class:`Hint` (what a hint file says) and :class:`Builder`
(how the writers of hints assemble one, record by record, in segment order).

The file format, and its reading and writing, are in :mod:`.hints` (which exports these
names too); FORMAT.md describes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
from itertools import accumulate, compress, repeat
from operator import is_not, lshift, or_
from typing import Any, Iterable

from . import record
from .index import OFFSET_SHIFT

_IS_SET, _IS_TOMBSTONE = (0).__lt__, (0).__gt__  # applied to a length: its sign
_IS_SOME = partial(is_not, None)  # applied to a deadline: whether the record expires


@dataclass
class Hint:
    """The newest record of each key in a segment, in segment order (see the module doc)."""

    keys: list
    lengths: list[int]       # line feed included; negative for a tombstone
    gaps: list[list[int]]    # [i, n], i ascending: n undescribed bytes just before record i
    # Each record's deadline (None: never expires), or None when no record has one (a
    # version 2 hint): a hint with deadlines always has at least one.
    deadlines: list | None = None
    # Whether any length is negative: known to decode(), else found on first use. Opening
    # asks twice (live records, tombstones); a pass over a million lengths costs ~15 ms.
    _tombstones: bool | None = field(default=None, compare=False, repr=False)
    # Where record 0 (and the gap before it) starts: 0, or a later part of a hint read a
    # pair of lines at a time (see stream_prefix).
    start: int = field(default=0, compare=False, repr=False)

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
        starts = accumulate(steps, initial=(base >> OFFSET_SHIFT) + self.start + first)
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

    def expiring(self) -> Iterable[tuple[Any, float]]:
        """``(key, deadline)`` of each set record that expires, in segment order."""
        if self.deadlines is None:
            return ()
        return compress(zip(self.keys, self.deadlines), map(_IS_SOME, self.deadlines))

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
        self.deadlines: list = []
        self._expiring = False  # whether a deadline was added
        self._end = 0  # where the last added record ends

    def add(self, key: Any, offset: int, length: int, tombstone: bool = False,
            deadline: float | None = None) -> None:
        """Describe the next record (``deadline``: a set record's, if it expires)."""
        if offset < self._end or length <= 0:
            raise ValueError(f"record at {offset} ({length} bytes) is not after the one ending at {self._end}")
        if tombstone and deadline is not None:
            raise ValueError("a tombstone has no deadline")
        if offset > self._end:
            self.gaps.append([len(self.keys), offset - self._end])
        self.keys.append(key)
        self.lengths.append(-length if tombstone else length)
        self.deadlines.append(deadline)
        if deadline is not None:
            self._expiring = True
        self._end = offset + length

    def hint(self, segment_bytes: int) -> Hint:
        """The hint of a segment of ``segment_bytes`` bytes (bytes after the last record are a gap)."""
        if segment_bytes < self._end:
            raise ValueError(f"records end at {self._end}, past the segment's {segment_bytes} bytes")
        gaps = self.gaps + ([[len(self.keys), segment_bytes - self._end]] if segment_bytes > self._end else [])
        return Hint(self.keys, self.lengths, gaps, self.deadlines if self._expiring else None)


def from_records(records: Iterable[tuple], segment_bytes: int) -> Hint:
    """The hint of a segment from its scanned ``(kind, key, offset, length[, deadline])``
    records (``deadline``: a set record's :func:`record.expiry_of`, ``None`` or left out
    if it never expires).

    ``kind`` is ``record.SET`` or ``record.DELETE``; keys must be hashable. Each key's newest record
    is described; older ones, and anything else, fall in the gaps.
    """
    newest: dict = {}
    for kind, key, offset, length, *deadline in records:
        newest.pop(key, None)  # re-inserted: the dict's order becomes the newest records' order
        newest[key] = (kind, offset, length, deadline[0] if deadline else None)
    builder = Builder()
    for key, (kind, offset, length, deadline) in newest.items():
        builder.add(key, offset, length, tombstone=kind == record.DELETE, deadline=deadline)
    return builder.hint(segment_bytes)
