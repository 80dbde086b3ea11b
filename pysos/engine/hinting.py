"""The writer's hints of its own segments: at rotation and on a clean close.

The hints are built by :mod:`pysos.segments.hint_writer` from a copy of the writer's index
and of its deadlines. One more thing is needed where records expire: the index forgets a
key once its deadline passes, yet that key's expired record may still be its newest in the
segment, and a hint that left it out would let an *older* record of the key, in an earlier
segment, come back on the next open. So the writer notes where the records of the keys it
drops by expiry lie in its newest segment (:meth:`WriterHints._note_expired`, called by
``Expiry._drop``), and hands the notes to the segment's hint, which describes each record
unless a later one of its key is newer (``hint_writer.from_index``).

The notes are two lists appended in C loops (a key per expired key: under a churn, about
one per write). They are bounded: past a quarter of the index plus :data:`_NOTES_BEYOND`
entries the writer stops noting, and that segment gets no hint (opening scans it, as it
did before hints carried deadlines; a segment so full of expired records is mostly garbage
the compactor soon rewrites, with a hint).
"""

from __future__ import annotations

import functools
import logging
from itertools import compress
from operator import and_

from ..segments import files, hint_writer, segment
from ..segments.index import SEGMENT_SHIFT

log = logging.getLogger("pysos")

# A segment sealed with fewer than this many bytes per key of the index gets its hint from a
# scan (in the background) rather than from a copy of the index taken by the writer.
_SCAN_TO_HINT_BELOW = 4
_NOTES_BEYOND = 4096  # notes kept past a quarter of the index before the segment goes unhinted


class WriterHints:
    """Mixed into :class:`pysos.engine.writer.Writer` (before ``Store``, whose attributes it uses)."""

    _sealer: hint_writer.Sealer | None = None

    def _start_expired_notes(self) -> None:
        """Forget the notes (a new newest segment, or one sealed without a hint)."""
        self._expired_keys: list = []
        self._expired_locations: list[int] = []
        self._notes_overflowed = False

    def _note_expired(self, keys: list, locations: list[int]) -> None:
        """``keys`` were dropped by expiry; ``locations`` were theirs: note those in the newest segment."""
        if self._notes_overflowed:
            return
        lowest = self._active << SEGMENT_SHIFT  # the newest segment's locations: [lowest, highest)
        highest = lowest + (1 << SEGMENT_SHIFT)
        inside = list(map(and_, map(lowest.__le__, locations), map(highest.__gt__, locations)))
        self._expired_keys += compress(keys, inside)
        self._expired_locations += compress(locations, inside)
        if len(self._expired_keys) > len(self.index) // 4 + _NOTES_BEYOND:
            self._start_expired_notes()
            self._notes_overflowed = True

    def _take_expired_notes(self) -> list | None:
        """``(key, location)`` of each record noted, oldest first (``None``: too many to
        keep, no hint), and start again."""
        notes = None if self._notes_overflowed else list(zip(self._expired_keys, self._expired_locations))
        self._start_expired_notes()
        return notes

    def _hint_sealed(self, name: str, size: int) -> None:
        """A hook of rotation: have the segment just sealed get its hint.

        The hint comes from a copy of the index (and of the deadlines) taken now (nothing after
        the sealed bytes is indexed yet), or, for a segment small beside the index, from a scan:
        copying the index costs ~10 ns a key, scanning ~40 ns a byte. With a compaction
        thread (``compactor``) the rest runs in a thread beside the writer's writes (a 1M-key
        store's worst write around a rotation: ~0.5 s instead of ~4.5 s inline, on a busy
        machine: tools/rotation_latency.py); without one, here. A failure costs a scan on open.
        """
        notes = self._take_expired_notes()
        if size >= _SCAN_TO_HINT_BELOW * len(self.index) and not self._torn:  # (torn: the files say, see .torn)
            keys, locations = list(self.index), list(self.index.values())
            deadlines = dict(self._expiring) if notes is not None else None  # (None: no hint if any expire)
        else:
            keys = locations = deadlines = notes = None
        job = functools.partial(hint_writer.write_sealed, self.directory, name, size, self.kind, self._decode_key,
                                keys, locations, deadlines, notes, files.file_identity(self._fds[segment.segment_number(name)]))
        if self.compactor is None:
            try:
                job()
            except Exception:
                log.warning("pysos: could not write the hint of %s", self._path(name), exc_info=True)
            return
        if self._sealer is None:
            self._sealer = hint_writer.Sealer(self.directory)
        self._sealer.submit(job)

    def _hint_newest(self) -> None:
        """A hook of a clean close: write the newest segment's hint, from the index, unless
        the one it was opened with covers it all already. A failure costs only a scan."""
        if self._active_end == 0 or self._active_end == self._newest_hinted or self._dirty_tail or self._torn:
            return  # (torn: an interrupted change left the index unsure, see pysos.engine.torn)
        notes = None if self._notes_overflowed else zip(self._expired_keys, self._expired_locations)
        try:
            hint_writer.write_newest(self.directory, segment.segment_name(self._active), self._fds[self._active],
                                     self._active_end, self.index.keys(), self.index.values(), self._decode_key,
                                     self._expiring if notes is not None else None, notes)
        except Exception:
            log.warning("pysos: could not write the hint of %s", self.directory, exc_info=True)
