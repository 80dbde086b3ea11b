"""Rotation: a writer seals its newest segment and starts the next one.

:meth:`Rotation._checkpoint` runs after a write once the newest segment reached
``_seal_at`` (every ~1 MiB): it rotates a full segment, seals one early once garbage
dominates it, or tells the compaction thread how much garbage there is. The new segment is
named by a new MANIFEST, written under the MANIFEST lock (FORMAT.md).
"""

from __future__ import annotations

import logging

from ..errors import Error
from ..segments import files, locks, manifest, segment
from ..segments.manifest import Manifest
from .core import _number
from .torn import cut_short

log = logging.getLogger("pysos")


class Rotation:
    """The rotation part of :class:`pysos.engine.writer.Writer`."""

    def _checkpoint(self, written: float | None = None) -> None:
        """After a write that is already done, once the newest segment reached ``_seal_at``:
        rotate if it is full, or seal it early if garbage dominates it; else tell the
        compaction thread how much garbage there is, and set the next checkpoint.

        Early sealing makes the garbage of a small, churning store reclaimable without
        waiting for a 64 MiB segment to fill: at least ``end - live bytes`` of the segment's
        ``end`` bytes are dead (all the live data could sit in it, no more), so once that
        passes both the floor and half of the segment, it is sealed. O(1), and only every
        ``_check_step`` bytes. A failure to rotate must not make the caller believe the
        write failed, so it is logged and retried on the next write (a refusal, too: the
        next call raises it).
        """
        if self._expiring:
            self.expire_at_checkpoint(written)
        end = self._active_end
        dead_here = end - self._live_bytes
        if end >= self.segment_size or (dead_here >= self._seal_floor and 2 * dead_here >= end):
            try:
                self._rotate()
            except OSError as exc:
                log.warning("pysos: could not start a new segment in %s (%s); will retry", self.directory, exc)
            except Error:
                if self._refusal is None:
                    raise
                log.warning("pysos: %s", self._refusal)  # the write is done; the next call raises
            return
        self._seal_at = min(self.segment_size, end + self._check_step)
        if self.compactor is not None:
            self.compactor.garbage(self._disk_bytes, self._disk_bytes - self._live_bytes)

    def _rotate(self, hint: bool = True) -> None:
        """Seal the newest segment and start a new one, named by a new MANIFEST (and have
        the sealed segment's hint written, unless a compaction is about to merge it)."""
        try:
            self._seal_and_switch(hint)
        except BaseException as exc:
            if cut_short(exc):  # (a failure is handled below: no switch, or a whole one)
                self.tear()
            raise

    def _seal_and_switch(self, hint: bool) -> None:
        self._cut_dirty_tail()
        sealed, sealed_size = segment.segment_name(self._active), self._active_end
        files.fdatasync(self._fds[self._active])
        with locks.FileLock(self.directory, locks.MANIFEST):
            self._check_identity()  # never name a new segment in another store's MANIFEST
            current = manifest.read(self.directory)
            self._adopt(current)
            name, fd = segment.create_new(self.directory, current.next_number)
            self._fds[_number(name)] = fd
            new = current.rotated(self._active_end, name)
            try:
                manifest.write(self.directory, new)
            except BaseException:
                if manifest.is_current(self.directory, new):
                    # renamed into place, only the directory fsync failed: the new
                    # segment is named now, so it must be kept and used
                    self._switch_to(new, name)
                else:
                    files.close(self._fds.pop(_number(name)))
                    files.unlink(self._path(name))
                raise
            # Under the MANIFEST lock: the stamp taken after releasing it could be that of
            # a compaction's newer MANIFEST, which follow() would then never adopt.
            self._switch_to(new, name)
        if hint:
            self._hint_sealed(sealed, sealed_size)
        else:  # (what was noted of the sealed segment is of no use now)
            self._start_expired_notes()

    def _switch_to(self, new: Manifest, name: str) -> None:
        self._manifest = new
        self._manifest_stamp = manifest.stamp(self.directory)
        self._active = _number(name)
        self._active_end = 0
        self._newest_hinted = 0
        self._seal_at = min(self.segment_size, self._check_step)
        if self.compactor is not None:
            self.compactor.poke()

    def seal(self) -> None:
        """Rotate if the newest segment holds anything, so that all garbage is compactable
        (no hint: the compaction that follows rewrites the segment with one). Not while a
        batch is open: its records, appended to the newest segment at its commit, are
        indexed there already (``compact()`` in a batch merges the sealed segments only)."""
        self.check_writable()
        if self._active_end > 0 and self._batch is None:
            self._rotate(hint=False)
