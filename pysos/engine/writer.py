"""The one writer of a store: appends records, rotates segments, and runs batches.

It holds the writer lock (one writer per store, across processes). Each change is one
``pwrite`` at the end of the newest segment, then the index points at it; a batch is one
``pwrite`` of all its records at commit. Compactions by others (the daemon, ``compact()``
from another handle) are adopted once a second; the background compactor, if any, is
given to the writer at construction and talks to it through :meth:`Writer.segment_sizes`,
:meth:`Writer.adopt_compaction` and :attr:`Writer.lock`.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from ..segments import clock, files, index, locks, manifest, record, recovery, segment
from ..segments.index import LENGTH_MASK, OFFSET_SHIFT, SEGMENT_SHIFT
from ..segments.manifest import Manifest
from ..errors import CorruptionError, ObserverError
from . import belonging
from .batch import Batch
from .core import Store
from .hinting import WriterHints
from .rotation import Rotation
from .torn import cut_short

log = logging.getLogger("pysos")

_CHECK_EXTERNAL_SWAP_EVERY = 1.0  # seconds between a writer's looks for an outside compaction
# The writer maps its newest segment again once this many written bytes lie beyond the
# map; reads of the newest bytes meanwhile use pread (see Writer._map).
_REMAP_AFTER = 1 << 20
# Early sealing (see Writer._checkpoint): the writer looks at its garbage every
# _CHECK_STEP bytes written (segment_size / 16, at most 1 MiB), and seals its segment
# before it is full once the segment's dead bytes pass _SEAL_FLOOR (a quarter of
# segment_size, at most 4 MiB, the compaction floor) and half of the segment.
_CHECK_STEP, _SEAL_FLOOR = 1 << 20, 4 << 20


class Writer(WriterHints, Rotation, Store):
    """The writable handle of a store. ``compactor(writer)``, if given, makes the background
    compaction thread (an object with ``poke()``, called after each rotation,
    ``garbage(disk_bytes, dead_bytes)``, called every ~1 MiB written (see
    :meth:`_checkpoint`), and ``stop()``, called by :meth:`close`); it is :attr:`compactor`."""

    readonly = False
    # The write path's (see Store), and one more that must stay out of __dict__'s 30
    __slots__ = ("_batch", "_seal_at", "_dirty_tail", "_fsync_each_write", "_look_at", "_copied_all")

    def __init__(self, path, kind, *, compactor: Callable[["Writer"], Any] | None = None, **options):
        self._batch: Batch | None = None
        self._copied_all = None  # see adopt_compaction
        self._look_at = 0.0  # (monotonic) when follow() next looks at the files: see follow
        self._dirty_tail = False  # bytes of a failed write past _active_end that could not be cut yet
        self.compactor = None
        self._fsync_each_write = options.get("durability") == "fsync"
        self._codec_wanted = options.get("codec")  # a new store records it (see _find_manifest)
        self._start_expired_notes()  # (before the load, which may drop keys: see WriterHints)
        super().__init__(path, kind, **options)
        if compactor is not None:
            self.compactor = compactor(self)

    def _find_manifest(self, kind: str | None, lock_timeout: float) -> Manifest:
        if os.path.isdir(self.directory) and not os.path.exists(self._path(manifest.NAME)):
            recovery.check_not_foreign(self.directory)  # before the lock file is created
        files.makedirs(self.directory)
        self._writer_lock = locks.FileLock(self.directory, locks.WRITER)
        self._writer_lock.acquire(timeout=lock_timeout)
        try:
            return recovery.open_or_create(self.directory, kind, self._codec_wanted)
        except BaseException:
            self._writer_lock.release()
            raise

    def _open_newest(self, path: str) -> int:
        return files.open_rw(path)

    def _loaded(self) -> None:
        if self._live_bytes is None:  # after a scan: a writer keeps them current, so it needs them now
            self._live_bytes = index.live_bytes(self.index)
        self._check_step = max(min(_CHECK_STEP, self.segment_size // 16), 4096)
        self._seal_floor = min(_SEAL_FLOOR, self.segment_size // 4)
        self._seal_at = min(self.segment_size, self._active_end + self._check_step)
        if not self._expiring:  # (a scan that met a deadline, then its key's deletion, leaves a
            self.deadlines.clear()  # cover: the first expiring write must take the path that marks)
        elif self._manifest.version < manifest.VERSION_EXPIRY:
            # Records that expire under a MANIFEST not marked so (written by other hands):
            # mark it now, as our first expiring write would have (write_expiring counts on it).
            self._mark_expiring()

    def _torn_tail(self, fd: int, end: int, size: int) -> None:
        log.warning(
            "pysos: %s: cutting a torn tail of %d bytes at byte %d (a write was interrupted)",
            self._path(segment.segment_name(self._active)), size - end, end,
        )
        files.truncate(fd, end)
        files.fsync(fd)

    def _map(self, number: int, fd: int):
        """Maps cover only bytes that stay as they are while the segment is live: for the
        writer, the whole records of its newest one (a failed write is cut back beyond
        them). Mapping it again after each write would cost more than the preads it saves,
        hence _REMAP_AFTER."""
        if number != self._active:
            return super()._map(number, fd)
        mapped = self._maps.get(number)
        if self._active_end - (len(mapped) if mapped is not None else 0) < _REMAP_AFTER:
            return mapped
        return self.segment_files.map(number, fd, self._active_end)

    def _read_unmapped(self, number: int, offset: int, length: int) -> bytes:
        if self._batch is not None and number == self._active and offset >= self._active_end:
            start = offset - self._active_end  # a record of the open batch, not written yet
            return bytes(self._batch.pending[start : start + length])
        return super()._read_unmapped(number, offset, length)

    # --- following others' compactions -----------------------------------------------------

    def follow(self, force: bool = False) -> None:
        """Adopt a compaction published by someone else (looked for once a second, at
        ``_look_at``: not at every deadline the gate also opens for), and aim the gate."""
        if self._torn:  # see pysos.engine.torn
            if self._batch is not None:  # its records are in the index only: mend once it ends,
                return  # and keep the gates open (at 0) till then
            self.mend()
            force = True
        now = clock.monotonic()
        try:
            if force or now >= self._look_at:
                self._look_at = now + _CHECK_EXTERNAL_SWAP_EVERY
                self._check_written()  # once a second: no write path pays for it
                if manifest.stamp(self.directory) != self._manifest_stamp:
                    with locks.FileLock(self.directory, locks.MANIFEST):
                        self._adopt(manifest.read(self.directory))
                self.deadlines.tidy()  # the stale entries' memory, in bulk, once most are stale
            elif now < self.due:
                return
            self.due = self.look_due = self._look_at
            if self.deadlines.waiting():  # drop the keys due and aim at the next deadline, even
                self.aim(clock.wall())  # with none left (see pysos.engine.expiry)
        except BaseException as exc:
            if cut_short(exc):  # the gate raised but not aimed, an adoption half done
                self.tear()
            raise

    def enter(self, write: bool = False) -> None:
        """:meth:`Store.enter`, but :meth:`follow` drops the keys due already."""
        self.check_writable() if write else self.check_open()
        self.follow()

    def _index_new_records(self, appended: list[str]) -> None:
        if appended:  # only the writer appends; it adopted its own rotation already
            raise CorruptionError(f"{self.directory}: a segment was appended by someone else")

    # --- the compaction thread's interface ----------------------------------------------------

    def segment_sizes(self) -> tuple[list[str], dict[int, int]]:
        """The MANIFEST's segment names, and the size of each segment by number (the newest:
        its whole records). Caller holds :attr:`lock`."""
        sizes = self.segment_files.sizes()
        sizes[self._active] = self._active_end
        return list(self._manifest.segments), sizes

    def adopt_compaction(self, result: dict, merged: Sequence[str] = ()) -> None:
        """A compaction of this store finished: adopt its MANIFEST and keep its figures as
        ``stats()["last_compaction"]``. Caller holds :attr:`lock`.

        ``merged``: the segments of one merge (``result``'s), if the caller knows them. If it
        dropped no expired record, it copied every record our index points to in them (we
        never point a key back into a sealed segment), so adopting exactly its MANIFEST
        skips the search for keys left there (:meth:`_drop_expired_copies`: ~0.5 s under
        this lock for a million expiring keys)."""
        self.check_open()
        if merged and result["records_expired"] == 0:
            self._copied_all = (frozenset(map(segment.segment_number, merged)), result["generation"])
        try:
            self.follow(force=True)
        finally:
            self._copied_all = None
        self.last_compaction = result

    # --- writing ---------------------------------------------------------------------

    def write(self, key: Any, line: bytes, delete: bool) -> None:
        """Append one record (or add it to the open batch) and point the index at it.

        The hot path of every change: one ``pwrite`` and a few dict operations. The caller
        holds the lock and has checked the store is open and writable (see :meth:`enter`).
        """
        if self._batch is not None:
            self._write_in_batch(key, line, delete)
            return
        idx = self.index  # first: a closed store's index refuses (see Store)
        old = idx.get(key)
        end = self._active_end
        try:
            self._append(line)
            length = len(line)
            if delete:
                if old is not None:
                    del idx[key]
            else:
                idx[key] = (self._active << SEGMENT_SHIFT) | (end << OFFSET_SHIFT) | length
            self._live_bytes += (0 if delete else length) - (0 if old is None else old & LENGTH_MASK)
            if self._expiring:  # empty (false) unless this store has expiring keys
                self._expiring.pop(key, None)
        except BaseException:
            self._torn_if_written(end)
            raise
        if end + length >= self._seal_at:
            self._checkpoint()

    def write_expiring(self, key: Any, line: bytes, deadline: float) -> None:
        """:meth:`write` of a set record that carries ``deadline`` (:func:`record.encode_expiring`).

        The usual case inline: no batch, and a deadline no earlier than ``Deadlines.cover``
        (a store default ``expire``): the key only gets its deadline in ``by_key``. ``cover``
        is finite only in a store marked expiring already (:meth:`_expiring_other`,
        :meth:`_loaded`), so this case need not look at the MANIFEST."""
        if deadline < self.deadlines.cover or self._batch is not None:  # (cover: inf until a first deadline)
            self._expiring_other(key, line, deadline)
            return
        idx = self.index
        old = idx.get(key)
        end = self._active_end
        try:
            self._append(line)
            length = len(line)
            idx[key] = (self._active << SEGMENT_SHIFT) | (end << OFFSET_SHIFT) | length
            self._live_bytes += length - (0 if old is None else old & LENGTH_MASK)
            self._expiring[key] = deadline  # Deadlines.set's usual case, inline
        except BaseException:
            self._torn_if_written(end)
            raise
        if end + length >= self._seal_at:
            self._checkpoint(deadline)

    def _expiring_other(self, key: Any, line: bytes, deadline: float) -> None:
        """:meth:`write_expiring`'s other cases: the first deadline (which marks the MANIFEST
        version 2 first: a pysos without expiry must not open it), an earlier one, a batch."""
        if self._manifest.version < manifest.VERSION_EXPIRY:
            self._mark_expiring()
        batch = self._batch
        end = self._active_end
        try:
            if batch is not None:
                self._write_in_batch(key, line, False)  # (forgets the key's older deadline, for undo)
                batch.deadline_undo.append((key, None))
            else:  # write()'s, but its checkpoint waits for the deadline (below)
                idx = self.index
                old = idx.get(key)
                self._append(line)
                idx[key] = (self._active << SEGMENT_SHIFT) | (end << OFFSET_SHIFT) | len(line)
                self._live_bytes += len(line) - (0 if old is None else old & LENGTH_MASK)
            if self.deadlines.set(key, deadline):  # the new earliest: aim the gate at it (else it is already)
                self.watch(deadline, clock.wall())
        except BaseException:
            self._torn_if_written(end, batch is not None)
            raise
        # Only now: a rotation there has the sealed segment's hint copy the deadlines, this one too.
        if batch is None and self._active_end >= self._seal_at:
            self._checkpoint(deadline)

    def _mark_expiring(self) -> None:
        with locks.FileLock(self.directory, locks.MANIFEST):
            current = manifest.read(self.directory)
            self._adopt(current)
            new = current.with_expiry()
            manifest.write(self.directory, new)
            self._manifest = new
            self._manifest_stamp = manifest.stamp(self.directory)

    def _write_in_batch(self, key: Any, line: bytes, delete: bool) -> None:
        """Add a record to the open batch; the index points into its pending bytes (see
        :meth:`_read_unmapped`) until the commit writes them, and is rolled back if it is discarded."""
        batch = self._batch
        idx = self.index
        old = idx.get(key)
        length = len(line)
        try:
            if delete:
                if old is not None:
                    del idx[key]
            else:
                at = self._active_end + len(batch.pending)
                idx[key] = (self._active << SEGMENT_SHIFT) | (at << OFFSET_SHIFT) | length
            batch.pending += line
            batch.undo.append((key, old))
            if self._expiring:
                batch.deadline_undo.append((key, self.deadlines.pop(key)))
            self._live_bytes += (0 if delete else length) - (0 if old is None else old & LENGTH_MASK)
        except BaseException:  # (only an interrupt: the undo lists may miss this change)
            self.tear()
            raise

    def _append(self, data: bytes) -> None:
        """Write ``data`` at the end of the newest segment in one system call, or not at all.

        On any failure (ENOSPC, EIO, a failed fsync) the segment is cut back to where it
        was, so a failed call leaves no bytes behind and the next write starts clean.
        """
        if self._dirty_tail:
            self._cut_dirty_tail()
        fd, end, disk = self._fds[self._active], self._active_end, self._disk_bytes
        try:
            written = files.pwrite(fd, data, end)
            if written != len(data):  # a short write (rare): finish it, still before returning
                files.write_all_at(fd, memoryview(data)[written:], end + written)
            if self._fsync_each_write:
                files.fdatasync(fd)
                self._check_unlinked(fd)  # durable only in a file that still has a name
            self._disk_bytes = disk + len(data)
            self._active_end = end + len(data)  # last: the callers' sign that the bytes are there
        except BaseException:  # (an interrupt too: a write cut back never happened)
            self._disk_bytes = disk
            self._dirty_tail = True  # until cut back (a second interrupt may stop that)
            self._cut_back(fd, end)
            raise

    def _torn_if_written(self, end: int, always: bool = False) -> None:
        """A change raised half-way (an interrupt: see :mod:`.torn`) after its bytes were
        written (``_active_end`` moved from ``end``), or ``always`` (a batch's change, in
        memory only): the index may not say what the files do, so tear the handle."""
        if always or self._active_end != end:
            self.tear()

    def check_writable(self) -> None:
        """:meth:`Store.check_writable`, and mend a torn handle (see :mod:`.torn`) before any
        change: a batch or a seal must not start from a torn index (a rotation cut short
        leaves it appending to a segment the MANIFEST calls sealed)."""
        super().check_writable()
        if self._torn and self._batch is None and self.lock._is_owned():  # (a caller that checks
            self.mend()  # before it takes the lock mends once it has it, in enter or batch)

    def _before_reload(self) -> None:
        self._cut_dirty_tail()  # (bytes of a failed write: never indexed by the rebuild)
        self._start_expired_notes()  # (a rebuild drops no key by expiry: the notes start again)

    def _cut_back(self, fd: int, end: int) -> None:
        """After a failed write (``_dirty_tail`` set by the caller): cut the segment back to
        ``end``, or leave the flag set, for the tail to be cut before anything else is
        written or sealed."""
        try:
            files.truncate(fd, end)
            self._dirty_tail = False
        except OSError:
            log.exception("pysos: could not cut back a failed write in %s", self.directory)

    def _cut_dirty_tail(self) -> None:
        if self._dirty_tail:
            files.truncate(self._fds[self._active], self._active_end)
            self._dirty_tail = False

    # --- batches -------------------------------------------------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one atomic unit (nested batches join the outer one)."""
        with self.lock:
            self.check_writable()
            if self._batch is not None:
                yield
                return
            batch = Batch(self._live_bytes, self._active, self._active_end)
            try:
                self._batch = batch  # (in the try: an interrupt must not leave it open)
                yield
                count = batch.pending.count(b"\n") - 1  # the records pending, counted from their
                if count:  # bytes (a count kept beside them could be one off after an interrupt)
                    batch.pending += record.encode_batch_end(count)
                    self._append(bytes(batch.pending))
                self._batch = None  # (here, in the except and in the finally: one interrupt
            except BaseException:  # may skip one line, and a batch left open would swallow
                self._batch = None  # every later one as nested)
                torn_before, self._torn = self._torn, True  # Torn.tear(), with no call (see _abort)
                if self.due > 0.0:
                    self.due = 0.0
                if self.look_due > 0.0:
                    self.look_due = 0.0
                self._abort(batch, torn_before)
                raise
            finally:
                self._batch = None
            if self._active_end >= self._seal_at:
                self._checkpoint()
            failed = []
            for event in batch.events:  # every one, even if one raises: all were committed
                try:
                    event()
                except Exception as exc:
                    failed.append(exc)
            if failed:
                raise ObserverError.of(failed)

    def _abort(self, batch: Batch, torn_before: bool) -> None:
        """Discard ``batch``: put the index, live bytes and deadlines back as they were.

        The caller tore the handle first, with no call in between (CPython runs a signal
        handler only at a call, a return or a backward jump): a second Ctrl-C that cuts this
        undo short leaves it torn, so the next operation rebuilds the index from the files.
        Done, it is as torn as before (unless the commit was written); its gates stay open,
        so the next operation looks at the files (a discarded batch is rare)."""
        self._undo(batch)
        self._torn = torn_before
        self._torn_if_written(batch.start)  # (an interrupt once the commit was written)

    def _undo(self, batch: Batch) -> None:
        batch.discarded = True
        gone = batch.restore(self.index, self._fds)
        self._live_bytes = batch.live_bytes_before if batch.live_bytes_before is not None else index.live_bytes(self.index)
        for key, deadline in reversed(batch.deadline_undo):
            if deadline is None:
                self.deadlines.pop(key)
            else:
                self.deadlines.set(key, deadline)
        for key in gone:
            self.deadlines.pop(key)
        if batch.deadline_undo:  # a restored deadline may be due, or left a cover with no key
            self.due = min(self.due, 0.0)  # behind it: the next operation aims the gate
        self._on_reload(self.index)

    def _remap(self, name: str, retired: set[int]) -> None:
        """:meth:`Store._remap`, and an open batch's undo too: the locations it would restore
        (its keys' before it) may lie in the ``retired`` segments (we adopt from inside a
        batch: its writes' look at the files, a first expiring write marking the MANIFEST)."""
        batch = self._batch
        stale = batch.keys_in(retired) if batch is not None else None
        if not stale:
            super()._remap(name, retired)
            return
        entries = list(self._output_entries(name))
        batch.moved({key: location for key, location in entries if key in stale}, retired)
        index.remap(self.index, entries, retired)

    def after_commit(self, event: Callable[[], None]) -> None:
        """Run ``event`` now, or when the open batch commits (never if it is discarded)."""
        if self._batch is not None:
            self._batch.events.append(event)
        else:
            event()

    # --- syncing, closing ----------------------------------------------------------------

    def flush(self) -> None:
        self.check_open()
        self._check_written()  # every call reached the OS: but into a file of this store?

    def sync(self) -> None:
        self.check_open()
        files.fsync(self._fds[self._active])
        self._check_written()
        files.fsync_dir(self.directory)

    def close(self) -> None:
        if self._batch is not None and self.lock._is_owned():
            raise RuntimeError("cannot close a pysos store inside an open batch")
        if self.compactor is not None:
            # Outside our lock: the compaction thread may be waiting for it.
            self.compactor.stop()
        if self._sealer is not None:
            self._sealer.close()  # the hints of segments sealed so far
        super().close()

    def _before_close(self) -> None:
        if self._refusal is not None:  # a forked child's copy, or a directory no longer ours: write nothing
            return
        if self._fsync_each_write:
            files.fsync(self._fds[self._active])
        self._hint_newest()

    def _forked(self, torn: bool) -> None:
        """A forked child must never write beside its parent, nor free the parent's lock:
        refuse every operation, give up the files, forget (never unlock) the writer lock."""
        self._refusal = belonging.forked_writer(self.directory, self._pid)
        self.due = self.look_due = float("-inf")
        self.compactor = None  # its thread did not survive the fork
        self.segment_files.close_all()
        self._writer_lock.forget()  # the parent's lock stays the parent's
