"""An open batch of a writer (``with store.batch():``): its records, pending in memory
until the commit writes them at once, between a batch-begin and a batch-end line (see
FORMAT.md), and what to undo if it is discarded."""

from __future__ import annotations

from typing import Any, Callable, Container

from ..segments import record
from ..segments.index import OFFSET_MASK, OFFSET_SHIFT, SEGMENT_SHIFT


class Batch:
    __slots__ = ("pending", "undo", "events", "live_bytes_before", "discarded", "segment", "start", "deadline_undo")

    def __init__(self, live_bytes: int | None, segment: int, start: int):
        self.pending = bytearray(record.BATCH_BEGIN_LINE)
        self.undo: list[tuple[Any, int | None]] = []
        self.events: list[Callable[[], None]] = []
        self.live_bytes_before = live_bytes
        self.discarded = False
        self.deadline_undo: list[tuple[Any, float | None]] = []  # (key, its deadline before)
        self.segment, self.start = segment, start  # where the pending bytes go on commit

    def restore(self, index: dict, open_segments: Container[int]) -> list:
        """Put ``index`` back as it was before this batch, which is discarded; return the
        keys whose record a compaction adopted meanwhile dropped as expired (it moved the
        others: see :meth:`moved`): they are absent now, as the files say."""
        for key, old in reversed(self.undo):
            if old is None:
                index.pop(key, None)
            else:
                index[key] = old
        gone = [key for key, old in self.undo if old is not None and not _in(old, open_segments)]
        for key in gone:
            index.pop(key, None)
        if gone:
            self.live_bytes_before = None  # (recounted)
        return gone

    def keys_in(self, segments: set[int]) -> set:
        """The keys this batch wrote whose location before it lies in one of ``segments``."""
        return {key for key, old in self.undo if old is not None and _in(old, segments)}

    def moved(self, locations: dict, retired: set[int]) -> None:
        """A compaction adopted while this batch is open copied records of keys it wrote out
        of the ``retired`` segments: a discard must restore the copies' ``locations``."""
        self.undo = [(key, locations.get(key, old) if old is not None and _in(old, retired) else old)
                     for key, old in self.undo]

    def retarget(self, location: int) -> int:
        """A location a snapshot took while this batch was open, to read now: once the batch
        is discarded, its pending bytes are gone, so a location into them becomes -1, which
        names no segment: :meth:`Store.read_snapshot` then reads the key as it is now."""
        if (
            self.discarded
            and location >> SEGMENT_SHIFT == self.segment
            and (location >> OFFSET_SHIFT) & OFFSET_MASK >= self.start
        ):
            return -1
        return location


def _in(location: int, segments: Container[int]) -> bool:
    """Whether ``location`` lies in one of ``segments`` (numbers)."""
    return location >> SEGMENT_SHIFT in segments
