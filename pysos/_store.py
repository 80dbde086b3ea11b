"""The engine under Dict and List: a directory of segments, an in-memory index, one writer.

A ``Store`` maps keys to JSON values. ``Dict`` uses it as it is; ``List`` stores each item
under a *position key* and keeps the order beside it. Everything that touches files or the
index lives here; the collection classes only speak in keys and values.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
import time
import weakref
import zlib
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import orjson

from . import errors
from .errors import CorruptionError, FormatError, ReadOnlyError
from .segments import files, hints, index, locks, manifest, record, recovery, segment
from .segments.manifest import Manifest

log = logging.getLogger("pysos")

DURABILITIES = ("flush", "fsync")
DEFAULT_SEGMENT_SIZE = 64 * 2**20
_CHECK_EXTERNAL_SWAP_EVERY = 1.0  # seconds between a writer's looks for an outside compaction
_RELOAD_RETRIES = 20
_GONE = object()
# The writer maps its newest segment again once this many written bytes lie beyond the
# map; reads of the newest bytes meanwhile use pread (see Store._read_unmapped).
_REMAP_AFTER = 1 << 20
# The location layout of segments/index.py, as module constants for the read and write paths.
_SEGMENT_SHIFT, _OFFSET_MASK, _LENGTH_MASK = index.SEGMENT_SHIFT, index.OFFSET_MASK, index.LENGTH_MASK
_crc32, _loads = zlib.crc32, orjson.loads


class Store:
    """Keys -> JSON values in a directory; see ``FORMAT.md`` for the files."""

    def __init__(
        self,
        path: str | os.PathLike,
        kind: str | None,
        *,
        readonly: bool = False,
        durability: str = "flush",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        autocompact: bool = True,
        lock_timeout: float = 0.0,
        refresh_interval: float = 0.0,
        decode_key: Callable[[Any], Any] = lambda key: key,
    ):
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be 'flush' or 'fsync', not {durability!r}")
        if not isinstance(segment_size, int) or segment_size < 1:
            raise ValueError(f"segment_size must be a positive int, not {segment_size!r}")
        if refresh_interval < 0 or lock_timeout < 0:
            raise ValueError("refresh_interval and lock_timeout cannot be negative")
        self.directory = os.path.abspath(os.fspath(path))
        self.readonly = readonly
        self.durability = durability
        self._fsync_each_write = durability == "fsync"
        self.segment_size = segment_size
        self.autocompact = autocompact and not readonly
        self.refresh_interval = refresh_interval
        self._decode_key = decode_key
        self._lock = threading.RLock()
        self._closed = True
        self._fds: dict[int, int] = {}        # segment number -> fd
        # segment number -> a read-only map of the segment's first len(map) bytes: reads
        # slice it instead of calling pread (see read); only segments in _fds, only bytes
        # that no one ever truncates (sealed segments; a writer's own newest segment)
        self._maps: dict[int, mmap.mmap] = {}
        # fds kept open beyond their segment's life: "manifest" -> the MANIFEST we read
        # (pins its inode, see manifest.read_pinned), segment number -> a retired segment
        # that a running snapshot iteration may still read (see pin_snapshot)
        self._held: dict[Any, int] = {}
        self._snapshots = 0
        self.index: dict[Any, int] = {}       # key -> packed location
        self._live_bytes = 0
        self._disk_bytes = 0
        self._batch: _Batch | None = None
        self._writer_lock: locks.FileLock | None = None
        self._on_reload: Callable[[], None] = lambda: None
        self._on_keys_changed: Callable[[list, list], None] = _ignore_keys
        self.last_compaction: dict | None = None
        # monotonic time from which the next operation must call enter() (follow the files,
        # and check open/readonly): 0 = every operation (readers' default), +1 s for a
        # writer (looking for an outside compaction), -inf once closed (so enter() raises).
        self._due = 0.0
        self._compactor = None

        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise FormatError(
                f"{self.directory!r} is a file, not a pysos store directory "
                "(a pysos 1.3 file? convert it with tools/convert_pysos13.py)"
            )
        if readonly:
            self._manifest = recovery.existing_manifest(self.directory, kind)
        else:
            if os.path.isdir(self.directory) and not os.path.exists(self._path(manifest.NAME)):
                recovery.check_not_foreign(self.directory)  # before the lock file is created
            os.makedirs(self.directory, exist_ok=True)
            self._writer_lock = locks.FileLock(self.directory, locks.WRITER)
            self._writer_lock.acquire(timeout=lock_timeout)
        try:
            if not readonly:
                self._manifest = recovery.open_or_create(self.directory, kind)
            self.kind = self._manifest.kind
            self._load(self._manifest)
        except BaseException:
            self._close_fds()
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._fds, self._writer_lock, self._held)
        if self.autocompact:
            from .compactor.background import BackgroundCompactor

            self._compactor = BackgroundCompactor(self)

    # --- loading ---------------------------------------------------------------------

    def _load(self, first: Manifest) -> None:
        """Build the index from scratch; retry if a compaction retires files under our feet."""
        current = first
        for _ in range(_RELOAD_RETRIES):
            try:
                self._load_once(current)
                return
            except FileNotFoundError as exc:
                # A compaction in another process retired a segment between our reading
                # the MANIFEST and opening it: read the new MANIFEST and start over.
                self._close_fds()
                latest = recovery.existing_manifest(self.directory, first.kind)
                if latest == current:  # no swap happened: the segment is really gone
                    name = os.path.basename(exc.filename or "a segment")
                    raise CorruptionError(
                        f"{self.directory}: the MANIFEST names {name}, which is missing "
                        f"(at byte 0 of {name}); 'python -m pysos repair' salvages the rest"
                    ) from None
                current = latest
        raise CorruptionError(f"{self.directory}: segments keep disappearing while loading")

    def _load_once(self, man: Manifest) -> None:
        tracking, self._tracking_keys = self._tracking_keys, False  # _on_reload rebuilds anyway
        try:
            self._load_files(man)
        finally:
            self._tracking_keys = tracking
        self._on_reload()

    def _load_files(self, man: Manifest) -> None:
        self._unmap_all()
        if self._snapshots:  # running iterations may still read the old files
            for number, fd in self._fds.items():
                self._held.setdefault(number, fd)
            self._fds.clear()
        else:
            self._close_fds()
        self.index = {}
        # ``man`` was read earlier: a stamp taken now may belong to a newer MANIFEST and
        # hide it for good. Leave it unset: the next follow() reads the MANIFEST again.
        stamp = None
        self._disk_bytes = 0
        self._live_bytes = 0  # kept exact by hints, made unknown (None) by a scan
        newest = man.segments[-1]
        for name in man.segments:
            number = _number(name)
            writable = name == newest and not self.readonly
            fd = files.open_rw(self._path(name)) if writable else files.open_read(self._path(name))
            self._fds[number] = fd
            if name == newest:
                self._active = number
                self._active_end = self._index_tail(name, fd, 0, repair=not self.readonly)
                self._disk_bytes += self._active_end
            else:
                self._disk_bytes += self._index_sealed(name, fd, man.size_of(name))
        self._manifest = man
        self._manifest_stamp = stamp
        # Unknown after a scan: a reader sums them on first use (stats()), since a pass
        # over every location costs ~0.1 s per million keys, a tenth of opening from
        # hints; a writer keeps them current on every write, so it needs them now.
        if self._live_bytes is None and not self.readonly:
            self._live_bytes = self._sum_live_bytes()

    def _index_sealed(self, name: str, fd: int, expected_size: int) -> int:
        """Add a sealed segment's records to the index (from its hint when it has a good one)."""
        size = files.size(fd)
        if size != expected_size:
            raise CorruptionError(
                f"{self._path(name)}: sealed segment is {size} bytes, the MANIFEST says {expected_size} "
                f"(at byte {min(size, expected_size)})"
            )
        hint = hints.read(self._path(segment.hint_name(name)), name, size, self.kind)
        if hint is not None:
            self._apply_hint(_number(name), hint)
            return size
        scanner = segment.Scanner(fd, 0, size)
        self._apply_scan(_number(name), scanner)
        if scanner.problem is not None or scanner.incomplete_tail:
            offset, reason = scanner.problem or (scanner.good_end, "unfinished record or batch")
            raise CorruptionError(f"{self._path(name)}: {reason} at byte {offset}")
        return size

    def _index_tail(self, name: str, fd: int, start: int, *, repair: bool) -> int:
        """Index the newest segment from ``start``; return the end of its last whole unit.

        A torn tail (the writer died mid-write: no valid record follows the damage) is cut
        off by a writer and left alone by a reader. Damage followed by valid records is
        corruption wherever it is.
        """
        size = files.size(fd)
        scanner = segment.Scanner(fd, start, size)
        self._apply_scan(_number(name), scanner)
        end = scanner.good_end
        if scanner.problem is not None:
            offset, reason = scanner.problem
            if segment.valid_line_after(fd, offset, size) is not None:
                raise CorruptionError(f"{self._path(name)}: {reason} at byte {offset}")
        if end < size and repair:
            log.warning(
                "pysos: %s: cutting a torn tail of %d bytes at byte %d (a write was interrupted)",
                self._path(name), size - end, end,
            )
            files.truncate(fd, end)
            files.fsync(fd)
        return end

    def _apply_scan(self, number: int, scanner: segment.Scanner) -> None:
        base = index.segment_base(number)
        decode_key, idx = self._decode_key, self.index
        # Whether each touched key was present before, to report the net change: a key
        # set and deleted again within one scan was neither added nor removed.
        present_before: dict | None = {} if self._tracking_keys else None
        for kind, key, offset, length in scanner:
            key = decode_key(key)
            if present_before is not None and key not in present_before:
                present_before[key] = key in idx
            if kind == record.SET:
                idx[key] = base | (offset << 32) | length
            elif key in idx:
                del idx[key]
        if scanner.good_end > scanner.start:  # records replaced others: lengths unknown
            self._live_bytes = None
        if present_before:
            added = [k for k, was in present_before.items() if not was and k in idx]
            removed = [k for k, was in present_before.items() if was and k not in idx]
            if added or removed:
                self._on_keys_changed(added, removed)

    def _apply_hint(self, number: int, hint: hints.Hint) -> None:
        hint = self._decode_hint_keys(hint)
        idx = self.index
        before = len(idx)
        idx.update(hint.live(index.segment_base(number)))
        if self._live_bytes is not None:
            count, total = hint.live_count_and_bytes()
            # Every key new to the index (the usual case: compaction outputs hold disjoint
            # keys): the live bytes grow by the hint's, with no pass over the index.
            self._live_bytes = self._live_bytes + total if len(idx) - before == count else None
        for key in hint.tombstones():
            old = idx.pop(key, None)
            if old is not None and self._live_bytes is not None:
                self._live_bytes -= old & _LENGTH_MASK

    def _decode_hint_keys(self, hint: hints.Hint) -> hints.Hint:
        """The hint with its keys as the index holds them (a List's arrays become tuples)."""
        if self.kind == "dict":  # JSON scalars are their own keys: no copy of a big list
            return hint
        return hint.with_keys(list(map(self._decode_key, hint.keys)))

    _tracking_keys = False  # True once loaded: incremental changes then reach _on_keys_changed

    # --- following other processes ------------------------------------------------------

    def enter(self, write: bool = False) -> None:
        """What every operation does first (caller holds the lock): refuse a closed store
        (and a write on a reader), then :meth:`follow` the files.

        Hot paths call it only when ``time.monotonic() >= self._due`` (and writes also when
        ``self.readonly``): a writer follows once a second, a reader by its refresh_interval.
        """
        if write:
            self.check_writable()
        else:
            self.check_open()
        self.follow()

    def follow(self, force: bool = False) -> None:
        """Bring the index up to date with the files (readers: the writer's latest changes)."""
        if self.readonly:
            if self.refresh_interval:
                now = time.monotonic()
                if not force and now < self._due:
                    return
                self._due = now + self.refresh_interval
            self._follow_reader()
        elif force or time.monotonic() >= self._due:
            self._due = time.monotonic() + _CHECK_EXTERNAL_SWAP_EVERY
            if manifest.stamp(self.directory) != self._manifest_stamp:
                with locks.FileLock(self.directory, locks.MANIFEST):
                    self._adopt(manifest.read(self.directory))

    def _manifest_replaced(self) -> bool:
        """Whether the MANIFEST we follow has been replaced since we read it.

        We hold open the file we read it from, so this is one ``fstat``: renaming a new
        MANIFEST over it drops its link count to 0 (POSIX, local filesystems). That is about
        half the cost of a ``stat`` by path on every read. Without a held file (the first
        read, or after a full reload) the stamp comparison decides.
        """
        pin = self._held.get("manifest")
        if pin is not None and self._manifest_stamp is not None:
            return os.fstat(pin).st_nlink == 0
        return manifest.stamp(self.directory) != self._manifest_stamp

    def _follow_reader(self) -> None:
        for _ in range(_RELOAD_RETRIES):
            try:
                if self._manifest_replaced():
                    new, stamp, pin = manifest.read_pinned(self.directory)
                    self._hold("manifest", pin)
                    self._adopt(new, stamp)  # returns early if the segments are the same:
                if files.end(self._fds[self._active]) > self._active_end:  # so look at the tail anyway
                    self._catch_up_tail()
                return
            except FileNotFoundError:
                continue
        self._load(recovery.existing_manifest(self.directory, self.kind))

    def _catch_up_tail(self) -> None:
        name = segment.segment_name(self._active)
        fd = self._fds[self._active]
        old_end = self._active_end
        self._active_end = self._index_tail(name, fd, old_end, repair=False)
        self._disk_bytes += self._active_end - old_end
        self._live_bytes = None  # recomputed lazily: cheap enough for stats(), not per read

    def _adopt(self, new: Manifest, stamp=None) -> None:
        """Switch to a newer MANIFEST without a full rescan.

        Segments that a compaction produced replace the ones it retired: keys whose location
        is in a retired segment move to the output's location (from its hint). Segments
        added after our newest are new data. If our newest segment was itself retired (a
        reader that slept through a rotation and a compaction) we reload from scratch.
        """
        old = self._manifest
        if new.generation == old.generation and new.segments == old.segments:
            self._manifest_stamp = stamp or manifest.stamp(self.directory)
            return
        if new.kind != old.kind:
            raise FormatError(f"{self.directory}: store kind changed under us")
        old_newest = old.segments[-1]
        if old_newest not in new.segments:
            self._load(new)
            return
        old_set, new_set = set(old.segments), set(new.segments)
        retired = {_number(n) for n in old_set - new_set}
        position = new.segments.index(old_newest)
        outputs = [n for n in new.segments[:position] if n not in old_set]
        appended = list(new.segments[position + 1 :])
        new_fds = {}
        try:
            for name in outputs + appended:
                new_fds[_number(name)] = files.open_read(self._path(name))
        except BaseException:
            for fd in new_fds.values():
                files.close(fd)
            raise
        self._fds.update(new_fds)
        for name in outputs:
            self._remap(name, retired)
        if self.readonly:
            self._catch_up_tail()
        for name in appended:
            if self.readonly:
                self._active = _number(name)
                self._active_end = 0
                self._catch_up_tail()
            else:  # only the writer appends; it adopted its own rotation already
                raise CorruptionError(f"{self.directory}: a segment was appended by someone else")
        for number in retired:
            self._unmap(number)
            fd = self._fds.pop(number)
            if self._snapshots:
                self._hold(number, fd)
            else:
                files.close(fd)
        self._manifest = new
        self._manifest_stamp = stamp or manifest.stamp(self.directory)
        self._disk_bytes = sum(files.size(fd) for n, fd in self._fds.items() if n != self._active) + self._active_end
        if self.readonly:  # a reader indexed new records; a merge alone copies records byte for byte
            self._live_bytes = None

    def _remap(self, name: str, retired: set[int]) -> None:
        number = _number(name)
        fd = self._fds[number]
        size = files.size(fd)
        base = index.segment_base(number)
        hint = hints.read(self._path(segment.hint_name(name)), name, size, self.kind)
        if hint is not None:
            entries = self._decode_hint_keys(hint).live(base)
        else:
            entries = (
                (self._decode_key(k), base | (off << 32) | ln)
                for kind, k, off, ln in segment.Scanner(fd, 0, size) if kind == record.SET
            )
        idx = self.index
        for key, location in entries:
            current = idx.get(key)
            if current is not None and index.segment_of(current) in retired:
                idx[key] = location

    # --- reading ---------------------------------------------------------------------

    def read(self, key: Any, location: int) -> Any:
        """The value of the record at ``location``, checked against its checksum and ``key``.

        The hot path of every read: one ``pread``, the CRC of the line compared with its
        8 hex digits, one ``orjson.loads``. See :func:`record.load` for the checks spelled out.
        """
        number, offset, length = location >> _SEGMENT_SHIFT, (location >> 32) & _OFFSET_MASK, location & _LENGTH_MASK
        mapped = self._maps.get(number)
        line = mapped[offset : offset + length] if mapped is not None else b""
        if len(line) != length:  # not mapped (yet), or beyond the map
            line = self._read_unmapped(number, offset, length)
        try:
            # int() of the digits is cheaper than formatting the CRC; a garbled prefix that
            # still parses to the same number leaves the checked bytes (the record) intact
            if int(line[6:14], 16) == _crc32(line[16:-1]) and len(line) == length:
                obj = _loads(line)
                stored_key = obj["k"]
                if stored_key == key or self._decode_key(stored_key) == key:
                    return obj["v"]
        except (ValueError, KeyError, TypeError):  # unparsable digits or JSON, not a set record
            pass
        raise self._bad_record(line, key, number, offset, length)

    def _read_unmapped(self, number: int, offset: int, length: int) -> bytes:
        if self._batch is not None and number == self._active and offset >= self._active_end:
            start = offset - self._active_end
            return bytes(self._batch.pending[start : start + length])
        fd = self._fds.get(number)
        if fd is None:  # a retired segment that a snapshot iteration pinned
            return files.pread(self._held_segment(number), length, offset)
        mapped = self._map_segment(number, fd)
        if mapped is not None and offset + length <= len(mapped):
            return mapped[offset : offset + length]
        return files.pread(fd, length, offset)

    def _map_segment(self, number: int, fd: int) -> mmap.mmap | None:
        """Map a segment for reading (again, if it grew), or return its map as it is.

        Maps cover only bytes that stay as they are while the segment is live: all of a
        sealed segment, and for the writer the whole records of its newest one (a failed
        write is cut back beyond them). A reader never maps the newest segment: the writer
        may cut it, and touching a mapped page past the end of a file kills the process
        (SIGBUS) where pread would return short. Mapping the newest segment again after
        each write would cost more than the preads it saves, hence _REMAP_AFTER.
        """
        mapped = self._maps.get(number)
        if number != self._active:
            want = files.size(fd)
        elif self.readonly:
            return mapped
        else:
            want = self._active_end
            if want - (len(mapped) if mapped is not None else 0) < _REMAP_AFTER:
                return mapped
        if want == 0 or (mapped is not None and len(mapped) >= want):
            return mapped
        try:
            new = mmap.mmap(fd, want, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # no address space, a filesystem that cannot map: pread
            return mapped
        self._unmap(number)
        self._maps[number] = new
        return new

    def _unmap(self, number: int) -> None:
        mapped = self._maps.pop(number, None)
        if mapped is not None:
            mapped.close()

    def _unmap_all(self) -> None:
        for number in list(self._maps):
            self._unmap(number)

    def _held_segment(self, number: int) -> int:
        fd = self._held.get(number)
        if fd is None:
            raise CorruptionError(f"{self.directory}: index points into a retired segment {number}")
        return fd

    def _bad_record(self, line: bytes, key: Any, number: int, offset: int, length: int) -> CorruptionError:
        where = self._path(segment.segment_name(number))
        if len(line) != length:
            return CorruptionError(f"{where}: short read at byte {offset}")
        if record.load(line) is None:
            return CorruptionError(f"{where}: checksum mismatch or malformed record at byte {offset}")
        return CorruptionError(f"{where}: record at byte {offset} is not the value of {key!r}")

    def read_snapshot(self, key: Any, location: int, missing: Any) -> Any:
        """Read a location taken earlier; if a compaction retired its segment since, read the
        key's current record instead (``missing`` if the key is gone)."""
        number = index.segment_of(location)
        if number not in self._fds and number not in self._held:
            location = self.index.get(key)
            if location is None:
                return missing
        return self.read(key, location)

    def iter_snapshot(self, take: Callable[[], list[tuple[Any, int]]]) -> Iterator[tuple[Any, Any]]:
        """(key, value) for the (key, location) pairs ``take()`` returns, called under the lock
        when the iteration starts: the values as of then, even if a compaction retires their
        files meanwhile (the snapshot pins them)."""
        with self._lock:
            self.check_open()
            self.follow()
            snapshot = take()
            self.pin_snapshot()
        try:
            for key, location in snapshot:
                with self._lock:
                    self.check_open()
                    value = self.read_snapshot(key, location, _GONE)
                if value is not _GONE:
                    yield key, value
        finally:
            with self._lock:
                self.unpin_snapshot()

    def get(self, key: Any) -> Any:
        """The value of ``key``; ``KeyError`` if absent. Caller holds the lock."""
        return self.read(key, self.index[key])

    # --- writing ---------------------------------------------------------------------

    def check_writable(self) -> None:
        self.check_open()
        if self.readonly:
            raise ReadOnlyError(f"pysos store {self.directory!r} was opened read-only")

    def check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on closed pysos store")

    def write(self, key: Any, line: bytes, delete: bool) -> None:
        """Append one record (or add it to the open batch) and point the index at it.

        The hot path of every change: one ``pwrite`` and a few dict operations (this is
        :meth:`_append` spelled out, a call less). The caller holds the lock and has checked
        the store is open and writable (see :meth:`enter`).
        """
        if self._batch is not None:
            self._write_in_batch(key, line, delete)
            return
        if self._dirty_tail:
            self._cut_dirty_tail()
        fd, end, length = self._fds[self._active], self._active_end, len(line)
        try:
            written = files.pwrite(fd, line, end)
            if written != length:  # a short write (rare): finish it, still before returning
                files.write_all_at(fd, memoryview(line)[written:], end + written)
            if self._fsync_each_write:
                files.fdatasync(fd)
        except BaseException:
            self._cut_back(fd, end)
            raise
        self._active_end = end + length
        self._disk_bytes += length
        idx = self.index
        old = idx.get(key)
        if delete:
            if old is not None:
                del idx[key]
        else:
            idx[key] = (self._active << _SEGMENT_SHIFT) | (end << 32) | length
        # (a writer always knows its live bytes; only readers let them go stale: None)
        self._live_bytes += (0 if delete else length) - (0 if old is None else old & _LENGTH_MASK)
        if end + length >= self.segment_size:
            self._rotate_or_retry_later()

    def _write_in_batch(self, key: Any, line: bytes, delete: bool) -> None:
        """Add a record to the open batch; the index points into its pending bytes (see
        :meth:`read`) until the commit writes them, and is rolled back if it is discarded."""
        batch = self._batch
        idx = self.index
        old = idx.get(key)
        length = len(line)
        if delete:
            if old is not None:
                del idx[key]
        else:
            idx[key] = (self._active << _SEGMENT_SHIFT) | ((self._active_end + len(batch.pending)) << 32) | length
        batch.pending += line
        batch.count += 1
        batch.undo.append((key, old))
        self._live_bytes += (0 if delete else length) - (0 if old is None else old & _LENGTH_MASK)

    def _rotate_or_retry_later(self) -> None:
        """Rotate after a write that is already done: a failure here must not make the
        caller believe the write failed, so it is logged and retried on the next write."""
        try:
            self._rotate()
        except OSError as exc:
            log.warning("pysos: could not start a new segment in %s (%s); will retry", self.directory, exc)

    def _append(self, data: bytes) -> None:
        """Write ``data`` at the end of the newest segment in one system call, or not at all.

        On any failure (ENOSPC, EIO, a failed fsync) the segment is cut back to where it
        was, so a failed call leaves no bytes behind and the next write starts clean.
        """
        if self._dirty_tail:
            self._cut_dirty_tail()
        fd, end = self._fds[self._active], self._active_end
        try:
            written = files.pwrite(fd, data, end)
            if written != len(data):  # a short write (rare): finish it, still before returning
                files.write_all_at(fd, memoryview(data)[written:], end + written)
            if self._fsync_each_write:
                files.fdatasync(fd)
        except BaseException:
            self._cut_back(fd, end)
            raise
        self._active_end = end + len(data)
        self._disk_bytes += len(data)

    def _cut_back(self, fd: int, end: int) -> None:
        """After a failed write: cut the segment back to ``end``, or remember to."""
        try:
            files.truncate(fd, end)
        except OSError:
            self._dirty_tail = True  # cut before anything else is written or sealed
            log.exception("pysos: could not cut back a failed write in %s", self.directory)

    _dirty_tail = False  # bytes of a failed write past _active_end that could not be cut yet

    def _cut_dirty_tail(self) -> None:
        if self._dirty_tail:
            files.truncate(self._fds[self._active], self._active_end)
            self._dirty_tail = False

    def _rotate(self) -> None:
        """Seal the newest segment and start a new one, named by a new MANIFEST."""
        self._cut_dirty_tail()
        files.fdatasync(self._fds[self._active])
        with locks.FileLock(self.directory, locks.MANIFEST):
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
        self._switch_to(new, name)

    def _switch_to(self, new: Manifest, name: str) -> None:
        self._manifest = new
        self._manifest_stamp = manifest.stamp(self.directory)
        self._active = _number(name)
        self._active_end = 0
        if self._compactor is not None:
            self._compactor.poke()

    def seal(self) -> None:
        """Rotate if the newest segment holds anything, so that all garbage is compactable."""
        if self._active_end > 0:
            self._rotate()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group writes into one atomic unit (nested batches join the outer one)."""
        with self._lock:
            self.check_writable()
            if self._batch is not None:
                yield
                return
            self._batch = batch = _Batch(self._live_bytes)
            try:
                yield
                self._commit(batch)
            except BaseException:
                self._abort(batch)
                raise
            finally:
                self._batch = None
            if self._active_end >= self.segment_size:
                self._rotate_or_retry_later()
            for event in batch.events:
                event()

    def _commit(self, batch: "_Batch") -> None:
        if batch.count:
            batch.pending += record.encode_batch_end(batch.count)
            self._append(bytes(batch.pending))

    def _abort(self, batch: "_Batch") -> None:
        for key, old in reversed(batch.undo):
            if old is None:
                self.index.pop(key, None)
            else:
                self.index[key] = old
        self._live_bytes = batch.live_bytes_before
        self._on_reload()

    def after_commit(self, event: Callable[[], None]) -> None:
        """Run ``event`` now, or when the open batch commits (never if it is discarded)."""
        if self._batch is not None:
            self._batch.events.append(event)
        else:
            event()

    # --- flushing, closing, stats --------------------------------------------------------

    def flush(self) -> None:
        """Every completed call has already reached the OS (one write per call): nothing to do."""
        self.check_open()

    def sync(self) -> None:
        self.check_open()
        if not self.readonly:
            files.fsync(self._fds[self._active])
            files.fsync_dir(self.directory)

    def close(self) -> None:
        if self._batch is not None and self._lock._is_owned():
            raise RuntimeError("cannot close a pysos store inside an open batch")
        if self._compactor is not None:
            # Outside our lock: the compaction thread may be waiting for it.
            self._compactor.stop()
        with self._lock:
            if self._closed:
                return
            if not self.readonly and self._fsync_each_write:
                files.fsync(self._fds[self._active])
            self._closed = True
            self._due = float("-inf")  # every operation now calls enter(), which refuses
            self._finalizer.detach()
            self._close_fds()
            _close_all(self._held)
            if self._writer_lock is not None:
                self._writer_lock.release()

    def _hold(self, what: Any, fd: int) -> None:
        old = self._held.pop(what, None)
        if old is not None:
            files.close(old)
        self._held[what] = fd

    def pin_snapshot(self) -> None:
        """An iteration took a snapshot of locations: keep retired segments readable until
        it ends (caller holds the lock; pair with :meth:`unpin_snapshot`)."""
        self._snapshots += 1

    def unpin_snapshot(self) -> None:
        self._snapshots -= 1
        if not self._snapshots:
            for what in [w for w in self._held if w != "manifest"]:
                files.close(self._held.pop(what))

    def _close_fds(self) -> None:
        self._unmap_all()
        for fd in self._fds.values():
            try:
                files.close(fd)
            except OSError:
                pass
        self._fds.clear()

    @property
    def closed(self) -> bool:
        return self._closed

    def live_bytes(self) -> int:
        if self._live_bytes is None:
            self._live_bytes = self._sum_live_bytes()
        return self._live_bytes

    def _sum_live_bytes(self) -> int:
        return sum(map(_LENGTH_MASK.__and__, self.index.values()))  # no Python call per key

    def stats(self) -> dict:
        live = self.live_bytes()
        return {
            "kind": self.kind,
            "keys": len(self.index),
            "segments": len(self._manifest.segments),
            "live_bytes": live,
            "dead_bytes": max(self._disk_bytes - live, 0),
            "disk_bytes": self._disk_bytes,
            "generation": self._manifest.generation,
            "readonly": self.readonly,
            "durability": self.durability,
            "segment_size": self.segment_size,
            "last_compaction": self.last_compaction,  # this handle's (compact() or its thread)
            # every compaction of the store, by any process (from the MANIFEST):
            "compactions": self._manifest.compactions[0],
            "reclaimed_bytes_total": self._manifest.compactions[1],
        }

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def mark_loaded(self) -> None:
        """Loaded: from now on report keys that a reader's catch-up adds or removes, if
        anyone listens (a List keeps its order; a Dict has nothing to update, and tracking
        costs two dict operations per record indexed)."""
        self._tracking_keys = self._on_keys_changed is not _ignore_keys


class _Batch:
    __slots__ = ("pending", "count", "undo", "events", "live_bytes_before")

    def __init__(self, live_bytes: int | None):
        self.pending = bytearray(record.BATCH_BEGIN_LINE)
        self.count = 0
        self.undo: list[tuple[Any, int | None]] = []
        self.events: list[Callable[[], None]] = []
        self.live_bytes_before = live_bytes



def _ignore_keys(added: list, removed: list) -> None:
    """The default ``_on_keys_changed``: nobody listens."""


def _number(name: str) -> int:
    number = segment.segment_number(name)
    if number is None:
        raise CorruptionError(f"MANIFEST names {name!r}, which is not a segment file name")
    return number


def _close_all(fds: dict) -> None:
    for fd in list(fds.values()):
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def _release(fds: dict, writer_lock, held: dict) -> None:
    """Finalizer for a store that was never closed: give back fds and the writer lock."""
    _close_all(fds)
    _close_all(held)
    if writer_lock is not None:
        writer_lock.release()


__all__ = ["Store", "errors"]
