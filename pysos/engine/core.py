"""What a writer and a reader share: opening (building the index), adopting a new MANIFEST,
reading records, snapshot iterations, closing and stats.

The subclasses :class:`~.writer.Writer` and :class:`~.reader.Reader` add what differs: how
the files are found and locked, how the handle follows other processes, and (the writer)
every change. The collection classes only speak in keys and values.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import zlib
from typing import Any, Callable, Iterable, Iterator

import orjson

from ..errors import CorruptionError, FormatError, ReadOnlyError
from ..segments import files, hints, index, manifest, record, recovery, segment
from ..segments.index import LENGTH_MASK, OFFSET_MASK, OFFSET_SHIFT, SEGMENT_SHIFT
from ..segments.manifest import Manifest
from . import belonging, decoding
from .closed import CLOSED_INDEX
from .expiry import Expiry
from .fileset import SegmentFiles
from .torn import Torn

log = logging.getLogger("pysos")

DURABILITIES = ("flush", "fsync")
DEFAULT_SEGMENT_SIZE = 64 * 2**20
_RELOAD_RETRIES, _GONE = 20, object()  # (_GONE: a snapshot's key gone since)
_crc32, _loads = zlib.crc32, orjson.loads


class Store(belonging.Belonging, Expiry, Torn):
    """Keys -> JSON values in a directory (see ``FORMAT.md`` for the files); use a subclass.

    ``index`` maps each key to the location of its newest record (see
    :mod:`pysos.segments.index`). ``lock`` guards everything; callers hold it.

    The gate: every operation must first call :meth:`enter` (refuse a closed store, follow
    the files), but the hot paths only do when ``time.monotonic() >= store.due`` (and
    writes also when ``store.readonly``). ``due`` is the subclass's next look at the files
    (a reader: by its refresh_interval; a writer: once a second, for an outside
    compaction) or the next deadline if sooner, ``-inf`` once closed or refused; ``look_due``
    is that look alone (writes gate on it; see :mod:`pysos.engine.expiry`). Closing
    also replaces ``index`` with one that raises on any use (for a method without the gate).
    An interrupted change tears the handle (:mod:`pysos.engine.torn`)."""

    readonly = False
    # (retired segments, generation) of a merge that needs no _drop_expired_copies: see Writer
    _copied_all: tuple[frozenset[int], int] | None = None

    # The hot paths' attributes, in slots: the rest must stay within CPython's compact
    # layout of 30 (tests/unit/test_engine_layout.py says why).
    __slots__ = ("index", "due", "look_due", "_active", "_active_end", "_live_bytes", "_disk_bytes", "_expiring", "_fds", "_maps",
                 "_decode_key", "deadlines", "_torn")

    def __init__(
        self, path: str | os.PathLike, kind: str | None, *,
        durability: str = "flush", segment_size: int = DEFAULT_SEGMENT_SIZE,
        lock_timeout: float = 0.0, refresh_interval: float = 0.0, codec: str | None = None,
        on_reload: Callable[[dict], None] | None = None,
        on_keys_changed: Callable[[list, list], None] | None = None,
    ):
        """``codec``: see :func:`.decoding.use_codec`; ``on_reload(index)`` hears every rebuild
        of the index (opening, a reload, a discarded batch); ``on_keys_changed(added, removed)``
        the keys a reader's catch-up added or removed (two dict operations per record indexed: only when asked)."""
        if durability not in DURABILITIES:
            raise ValueError(f"durability must be 'flush' or 'fsync', not {durability!r}")
        if not isinstance(segment_size, int) or segment_size < 1:
            raise ValueError(f"segment_size must be a positive int, not {segment_size!r}")
        if refresh_interval < 0 or lock_timeout < 0:
            raise ValueError("refresh_interval and lock_timeout cannot be negative")
        self.directory = os.path.abspath(os.fspath(path))
        self.readonly = self.readonly  # the class's, on the instance: the hot paths' cheaper lookup
        self.durability = durability
        self.segment_size = segment_size
        self.refresh_interval = refresh_interval
        self.lock = threading.RLock()
        self.index: dict[Any, int] = {}
        # When keys expire (see expire()); ``_expiring`` is its dict, never rebound: the
        # write path's one test of whether this store has expiring keys at all.
        self.deadlines = index.Deadlines()
        self._expiring = self.deadlines.by_key
        self.due = self.look_due = 0.0
        self._torn = False  # see pysos.engine.torn
        self.last_compaction: dict | None = None
        self._closed = True
        self.segment_files = SegmentFiles(self.directory)  # fds, maps, pins
        self._fds, self._maps = self.segment_files.fds, self.segment_files.maps  # the read path's shortcuts
        self._active = 0  # the newest segment's number
        self._active_end = 0  # the end of its last whole unit (a writer: where it appends)
        self._live_bytes: int | None = 0  # see segments/index.py; a writer's is always known
        self._disk_bytes = 0
        self._manifest_stamp = None
        self._on_reload = on_reload or _nothing
        self._on_keys_changed = on_keys_changed  # only a reader's catch-up reports to it
        self._writer_lock = None
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise FormatError(
                f"{self.directory!r} is a file, not a pysos store directory "
                "(a pysos 1.3 file? convert it with tools/convert_pysos13.py)"
            )
        first = self._find_manifest(kind, lock_timeout)
        try:
            decoding.use_codec(self, first, codec)
            self._manifest = first
            self.kind = first.kind
            self._decode_key = record.key_decoder(self.kind)
            self._load(first)
        except BaseException:
            self.segment_files.close_all()
            if self._writer_lock is not None:
                self._writer_lock.release()
            raise
        self._closed = False
        self._finalizer = self.segment_files.release_when_collected(self, self._writer_lock)
        belonging.opened(self)

    def _find_manifest(self, kind: str | None, lock_timeout: float) -> Manifest:
        """The MANIFEST to load (a writer: after taking the writer lock)."""
        raise NotImplementedError

    # --- loading ---------------------------------------------------------------------

    def _load(self, first: Manifest) -> None:
        """Build the index from scratch; retry if a compaction retires files under our feet."""
        current = first
        for _ in range(_RELOAD_RETRIES):
            try:
                self._load_hinted(current)
                self._on_reload(self.index)
                return
            except FileNotFoundError as exc:
                # A compaction in another process retired a segment between our reading
                # the MANIFEST and opening it: read the new MANIFEST and start over.
                self.segment_files.close_segments()
                latest = recovery.existing_manifest(self.directory, first.kind)
                if latest == current:  # no swap happened: the segment is really gone
                    name = os.path.basename(exc.filename or "a segment")
                    raise CorruptionError(
                        f"{self.directory}: the MANIFEST names {name}, which is missing "
                        f"(at byte 0 of {name}); 'python -m pysos repair' salvages the rest"
                    ) from None
                current = latest
        raise CorruptionError(f"{self.directory}: segments keep disappearing while loading")

    def _load_hinted(self, man: Manifest) -> None:
        """:meth:`_load_files`, again without a hint that failed late (:meth:`_index_hinted`)."""
        self._distrusted = set()
        while True:
            try:
                self._load_files(man)
                return
            except _HintFailed as exc:
                name, path, reason = exc.args
                log.warning("pysos: %s: not used (%s); the segment is scanned instead", path, reason)
                self._distrusted.add(name)

    def _load_files(self, man: Manifest) -> None:
        self.segment_files.drop_all()
        self.index = {}
        self.deadlines.clear()
        # ``man`` was read earlier: a stamp taken now may belong to a newer MANIFEST and
        # hide it for good. Leave it unset: the next follow() reads the MANIFEST again.
        self._manifest_stamp = None
        self._disk_bytes = 0
        self._live_bytes = 0  # kept exact by hints, made unknown (None) by a scan
        newest = man.segments[-1]
        for name in man.segments:
            number = _number(name)
            if name == newest:
                fd = self._fds[number] = self._open_newest(self._path(name))
                self._active = number
                self._active_end = self._index_tail(fd, self._index_hinted(name, fd, sealed=False))
                self._disk_bytes += self._active_end
            else:
                fd = self._fds[number] = files.open_read(self._path(name))
                self._disk_bytes += self._index_sealed(name, fd, man.size_of(name))
        self._manifest = man
        self._loaded()
        if self._expiring:
            self.due = min(self.due, 0.0)  # the next operation looks at the clock

    def _open_newest(self, path: str) -> int:
        return files.open_read(path)

    def _loaded(self) -> None:
        """After a full load (the writer sums its live bytes now; a reader when asked)."""

    def _index_sealed(self, name: str, fd: int, expected_size: int) -> int:
        """Add a sealed segment's records to the index (from its hint when it has a good one)."""
        size = files.size(fd)
        if size != expected_size:
            raise CorruptionError(
                f"{self._path(name)}: sealed segment is {size} bytes, the MANIFEST says {expected_size} "
                f"(at byte {min(size, expected_size)})"
            )
        scanner = segment.Scanner(fd, self._index_hinted(name, fd, sealed=True), size)
        self._apply_scan(_number(name), scanner)
        damage = scanner.damage()
        if damage is not None:
            raise CorruptionError(f"{self._path(name)}: {damage[1]} at byte {damage[0]}")
        return size

    def _index_hinted(self, name: str, fd: int, *, sealed: bool) -> int:
        """Index what the segment's hint covers, a pair of lines at a time (never all of it
        beside the index: hints.stream_prefix); return where that ends (0: no usable hint),
        for the rest to be scanned. A hint failing a check of the whole after parts of it
        were indexed raises _HintFailed: the load starts again without it."""
        size = files.size(fd)
        path = self._path(segment.hint_name(name))
        found = None if name in self._distrusted else hints.stream_prefix(
            path, name, size, self.kind, sealed=sealed, crc_of=functools.partial(hints.segment_crc, fd))
        covered = 0
        if found is not None:
            covered, parts = found
            number = _number(name)
            try:
                for part in parts:
                    part = index.decode_hint(part, self._decode_key)
                    self._live_bytes = index.apply_hint(self.index, number, part, self._live_bytes, self.deadlines)
            except hints.BadHint as exc:
                raise _HintFailed(name, path, str(exc)) from None
        if not sealed:
            self._newest_hinted = covered
        log.debug("pysos: %s: %d bytes indexed from its hint, %d to scan", self._path(name), covered, size - covered,
                  extra={"pysos_segment": name, "pysos_hinted": covered, "pysos_scanned": size - covered})
        return covered

    _distrusted: set = frozenset()  # segments whose hint failed during this load
    _newest_hinted = 0  # bytes of the newest segment its hint covers (0: no usable hint)

    def _index_tail(self, fd: int, start: int, changed: Callable[[list, list], None] | None = None) -> int:
        """Index the newest segment from ``start``; return the end of its last whole unit.

        Damage in it is a torn tail (:func:`segment.torn`: no whole unit follows) or
        corruption; a torn tail is left to :meth:`_torn_tail` (a writer cuts it off).
        ``changed(added, removed)`` hears the keys it added or removed (see
        :func:`index.apply_scan`); a full load does without: ``on_reload`` follows it.
        """
        size = files.size(fd)
        scanner = segment.Scanner(fd, start, size)
        self._apply_scan(self._active, scanner, changed)
        end = scanner.good_end
        if end < size:
            damage = scanner.damage() or (end, "unfinished record or batch")
            if not segment.torn(fd, end, size):
                raise CorruptionError(f"{self._path(segment.segment_name(self._active))}: {damage[1]} at byte {damage[0]}")
            self._torn_tail(fd, end, size)
        return end

    def _torn_tail(self, fd: int, end: int, size: int) -> None:
        """The newest segment has a torn tail from ``end`` to ``size`` (a reader leaves it)."""

    def _apply_scan(self, number: int, scanner: segment.Scanner, changed=None) -> None:
        index.apply_scan(self.index, number, scanner, self._decode_key, changed, self.deadlines)
        if scanner.good_end > scanner.start:  # records replaced others: lengths unknown
            self._live_bytes = None

    # --- adopting a new MANIFEST ------------------------------------------------------------

    def _adopt(self, new: Manifest, stamp=None) -> None:
        """Switch to a newer MANIFEST without a full rescan.

        In order: segments that a compaction produced replace the ones it retired (keys
        whose location is in a retired segment move to the output's location, from its
        hint); then new records (:meth:`_index_new_records`), before the retired segments
        close, so no key points into a closed segment meanwhile. If our newest segment was
        itself retired (a reader that slept through a rotation and a compaction) we
        reload from scratch.
        """
        old = self._manifest
        if new.generation == old.generation and new.segments == old.segments:
            self._manifest_stamp = stamp or manifest.stamp(self.directory)
            return
        if new.kind != old.kind or new.codec != old.codec:
            raise FormatError(f"{self.directory}: store kind or codec changed under us")
        old_newest = old.segments[-1]
        if old_newest not in new.segments:
            self._load(new)
            return
        old_set = set(old.segments)
        retired = {_number(n) for n in old_set - set(new.segments)}
        position = new.segments.index(old_newest)
        outputs = [n for n in new.segments[:position] if n not in old_set]
        appended = list(new.segments[position + 1 :])
        self.segment_files.add(self.segment_files.open_all([(_number(n), self._path(n)) for n in outputs + appended]))
        for name in outputs:
            self._remap(name, retired)
        self._index_new_records(appended)
        if self._expiring and retired and (retired, new.generation) != self._copied_all:
            self._drop_expired_copies(retired)
        for number in retired:
            self.segment_files.retire(number)
        self._manifest = new
        self._manifest_stamp = stamp or manifest.stamp(self.directory)
        self._disk_bytes = sum(files.size(fd) for n, fd in self._fds.items() if n != self._active) + self._active_end

    def _index_new_records(self, appended: list[str]) -> None:
        """While adopting: index what was written since (a reader), or refuse ``appended``
        segments (only the writer appends, and it adopted its own rotations already)."""
        raise NotImplementedError

    def _remap(self, name: str, retired: set[int]) -> None:  # keys in a retired segment: to their copy
        index.remap(self.index, self._output_entries(name), retired)

    def _output_entries(self, name: str) -> Iterable[tuple[Any, int]]:
        """(key, location) of each set record of a compaction's output ``name``, by its
        hint, else by a scan."""
        number = _number(name)
        fd = self._fds[number]
        size = files.size(fd)
        hint = hints.read(self._path(segment.hint_name(name)), name, size, self.kind)
        if hint is not None:
            return index.decode_hint(hint, self._decode_key).live(index.segment_base(number))
        return index.scanned_sets(segment.Scanner(fd, 0, size), number, self._decode_key)

    # --- reading ---------------------------------------------------------------------

    def read(self, key: Any, location: int) -> Any:
        """The value of the record at ``location``, checked against its checksum and ``key``.

        The hot path of every read: one slice of a map (or one ``pread``), the check, one
        ``orjson.loads``. The check is :func:`record.load`'s, spelled out here because a
        call would cost ~4 % of a read (tools/bench_instructions.py); a test holds the two
        to the same verdict on good and damaged lines. Caller holds the lock.
        """
        number, offset, length = location >> SEGMENT_SHIFT, (location >> OFFSET_SHIFT) & OFFSET_MASK, location & LENGTH_MASK
        mapped = self._maps.get(number)
        line = mapped[offset : offset + length] if mapped is not None else b""
        if len(line) != length:  # not mapped (yet), or beyond the map
            line = self._read_unmapped(number, offset, length)
            if len(line) != length:
                raise CorruptionError(f"{self._path(segment.segment_name(number))}: short read at byte {offset}")
        try:
            if int(line[6:14], 16) == _crc32(line[16:-1]):  # record.load
                obj = _loads(line)
                if obj["k"] == key or self._decode_key(obj["k"]) == key:
                    return obj["v"]
        except (ValueError, KeyError, TypeError):  # unparsable digits or JSON, not a set record
            pass
        raise self._bad_record(line, key, number, offset)

    def _read_unmapped(self, number: int, offset: int, length: int) -> bytes:
        fd = self._fds.get(number)
        if fd is None:  # a retired segment that a snapshot iteration pinned
            return files.pread(self.segment_files.held_segment(number), length, offset)
        mapped = self._map(number, fd)
        if mapped is not None and offset + length <= len(mapped):
            return mapped[offset : offset + length]
        return files.pread(fd, length, offset)

    def _map(self, number: int, fd: int):
        """The segment's map, made or grown if it is sealed (see the subclasses for the newest)."""
        if number == self._active:
            return self._maps.get(number)
        return self.segment_files.map(number, fd, files.size(fd))

    def _bad_record(self, line: bytes, key: Any, number: int, offset: int) -> CorruptionError:
        where = self._path(segment.segment_name(number))
        if type(record.load(line)) is not dict:
            return CorruptionError(f"{where}: checksum mismatch or malformed record at byte {offset}")
        return CorruptionError(f"{where}: record at byte {offset} is not the value of {key!r}")

    def get(self, key: Any) -> Any:
        """The value of ``key``; ``KeyError`` if absent. Caller holds the lock."""
        return self.read(key, self.index[key])

    def read_snapshot(self, key: Any, location: int, missing: Any) -> Any:
        """Read a location taken earlier; if a compaction retired its segment since, read the
        key's current record instead (``missing`` if the key is gone)."""
        if not self.segment_files.has(location >> SEGMENT_SHIFT):
            location = self.index.get(key)
            if location is None:
                return missing
        return self.read(key, location)

    def iter_snapshot(self, take: Callable[[], list[tuple[Any, int]]]) -> Iterator[tuple[Any, Any]]:
        """(key, value) for the (key, location) pairs ``take()`` returns, called under the lock
        when the iteration starts: the values as of then, even if a compaction retires their
        files meanwhile (the snapshot pins them)."""
        with self.lock:
            self.enter()
            snapshot, batch = take(), getattr(self, "_batch", None)  # see batch.Batch.retarget
            self.segment_files.pin()
        try:
            for key, location in snapshot:
                with self.lock:
                    self.check_open()
                    value = self.read_snapshot(key, batch.retarget(location) if batch else location, _GONE)
                if value is not _GONE:
                    yield key, value
        finally:
            with self.lock:
                self.segment_files.unpin()

    # --- the gate ---------------------------------------------------------------------

    def enter(self, write: bool = False) -> None:
        """What every operation does first (caller holds the lock): refuse a closed store
        (and a write on a reader), :meth:`follow` the files, drop the keys whose deadline
        passed (:meth:`expire`). See the class doc; each subclass says when it looks."""
        raise NotImplementedError

    def follow(self, force: bool = False) -> None:
        """Bring the index up to date with the files."""
        raise NotImplementedError

    def check_writable(self) -> None:
        self.check_open()
        if self.readonly:
            raise ReadOnlyError(f"pysos store {self.directory!r} was opened read-only")

    # --- closing, stats ------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def manifest(self) -> Manifest:
        """The MANIFEST this handle follows (as of its last look)."""
        return self._manifest

    @property
    def newest(self) -> tuple[int, int]:
        """(number of the newest segment, end of its last whole unit as indexed)."""
        return self._active, self._active_end

    def flush(self) -> None:
        """Every completed call has already reached the OS (one write per call): nothing to do."""
        self.check_open()

    def sync(self) -> None:
        self.check_open()

    def close(self) -> None:
        with self.lock:
            if self._closed:
                return
            self._before_close()
            self._closed = True
            self._refusal = belonging.CLOSED
            self.due = self.look_due = float("-inf")  # every gated operation now calls enter(), which refuses
            self.index = CLOSED_INDEX  # and one that forgets the gate fails on the index
            self._finalizer.detach()
            self.segment_files.close_all()
            if self._writer_lock is not None:
                self._writer_lock.release()

    def _before_close(self) -> None:
        """A hook: what a writer writes before it closes."""

    def live_bytes(self) -> int:
        if self._live_bytes is None:
            self._live_bytes = index.live_bytes(self.index)
        return self._live_bytes

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


class _HintFailed(Exception):
    """A hint failed a check after parts were indexed (_index_hinted); args: segment, hint path, why."""


def _nothing(index: dict) -> None:
    """The default ``on_reload``: nobody listens."""


def _number(name: str) -> int:
    number = segment.segment_number(name)
    if number is None:
        raise CorruptionError(f"MANIFEST names {name!r}, which is not a segment file name")
    return number
