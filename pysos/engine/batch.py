"""An open batch of a writer (``with store.batch():``): its records, pending in memory
until the commit writes them at once, between a batch-begin and a batch-end line (see
FORMAT.md), and what to undo if it is discarded."""

from __future__ import annotations

from typing import Any, Callable

from ..segments import record
from ..segments.index import OFFSET_MASK, OFFSET_SHIFT, SEGMENT_SHIFT


class Batch:
    __slots__ = ("pending", "count", "undo", "events", "live_bytes_before", "discarded", "segment", "start", "deadline_undo")

    def __init__(self, live_bytes: int | None, segment: int, start: int):
        self.pending = bytearray(record.BATCH_BEGIN_LINE)
        self.count = 0
        self.undo: list[tuple[Any, int | None]] = []
        self.events: list[Callable[[], None]] = []
        self.live_bytes_before = live_bytes
        self.discarded = False
        self.deadline_undo: list[tuple[Any, float | None]] = []  # (key, its deadline before)
        self.segment, self.start = segment, start  # where the pending bytes go on commit

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
