"""Merge: rewrite the live records of a run of sealed segments into fresh segments.

The steps, each safe to interrupt at any instant:

1. Under the compaction lock, read the MANIFEST and pick a contiguous run of sealed
   segments (never the newest, which the writer appends to).
2. Collect the keys of the segments after the run (their records win over the run's)
   and of the segments before it (a tombstone must survive while an older record of
   its key may still exist).
3. Copy each key's newest record in the run, byte for byte and checksum-verified, into
   new segment files, unless a later segment overrides it or it has expired (by the wall
   clock: an expired record becomes a tombstone if an earlier segment has the key, and
   disappears otherwise); write a hint file per output (with the deadlines of its
   expiring records); fsync outputs, hints and the
   directory.
4. Under the manifest lock, replace the run by the outputs in a new MANIFEST
   (generation + 1): the atomic switch.
5. Only then delete the retired files. Processes that still read them keep their open
   descriptors (POSIX unlink semantics); a process that reaches for a file that is gone
   re-reads the MANIFEST and retries.

The directory is the one whose compaction lock was taken: its (device, inode) is noted
then, and checked again under the manifest lock before the MANIFEST is read or replaced
and before anything is deleted, so a store directory renamed or replaced meanwhile (a
restore, a swap) never gets a MANIFEST naming another directory's files, nor loses files.
Every name deleted comes from a MANIFEST, which admits only well-formed segment names.

A crash before step 4 leaves outputs no MANIFEST names: the next holder of the
compaction lock deletes them (see :mod:`pysos.segments.recovery`). A crash after
step 4 leaves retired files, deleted the same way. An error (not a crash) before step 4
deletes the outputs at once; an error once the MANIFEST is replaced (a failed directory
fsync) deletes nothing: the outputs are the store's now, and the inputs are left for
the next cleanup.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Iterable

from ..errors import CorruptionError, Error
from ..segments import clock, files, hints, locks, manifest, record, recovery, segment
from ..segments.manifest import Manifest
from . import plan

log = logging.getLogger("pysos.compactor")

_COPY_BUFFER = 1 << 20
_CHECK_EVERY = 4096  # records copied between calls of throttle(0), which may stop the merge


def segment_keys(directory: str, name: str, kind: str, newest: bool) -> set:
    """Every key that has a record (set or tombstone) in a segment of a store of ``kind``."""
    decode_key = record.key_decoder(kind)
    path = os.path.join(directory, name)
    fd = files.open_read(path)
    try:
        size = files.size(fd)
        if not newest:
            hint = hints.read(os.path.join(directory, segment.hint_name(name)), name, size, kind)
            if hint is not None:  # its keys are those of its sets and its tombstones
                return set(map(decode_key, hint.keys))
        scanner = segment.Scanner(fd, 0, size)
        keys = {decode_key(key) for _, key, _, _ in scanner}
        damage = scanner.damage()
        if not newest and damage is not None:
            raise CorruptionError(f"{path}: {damage[1]} at byte {damage[0]}")
        return keys
    finally:
        files.close(fd)


class _OutputWriter:
    """Writes copied records into new segments of at most ``segment_size`` bytes, with hints."""

    def __init__(self, directory: str, first_number: int, segment_size: int, throttle):
        self.directory = directory
        self.next_number = first_number
        self.segment_size = segment_size
        self.throttle = throttle
        self.done: list[str] = []
        self.sizes: list[int] = []  # of each finished output, for the MANIFEST
        self.tombstone_bytes: list[int] = []  # of each finished output (see plan.mark_clean)
        self.bytes_out = 0
        self._fd: int | None = None

    def _open(self) -> None:
        self.name, self._fd = segment.create_new(self.directory, self.next_number)
        self.next_number = segment.segment_number(self.name) + 1
        self._size = 0
        self._buffer = bytearray()
        self._hint = hints.Builder()
        self._tombstones = 0

    def add(self, key: Any, line: bytes, tombstone: bool, expires: float | None = None) -> None:
        if self._fd is None:
            self._open()
        offset = self._size + len(self._buffer)
        self._buffer += line
        self._hint.add(key, offset, len(line), tombstone, expires)
        if tombstone:
            self._tombstones += len(line)
        if len(self._buffer) >= _COPY_BUFFER:
            self._write_buffer()
        if self._size + len(self._buffer) >= self.segment_size:
            self.finish_segment()

    def _write_buffer(self) -> None:
        if self._buffer:
            files.write_all_at(self._fd, bytes(self._buffer), self._size)
            self._size += len(self._buffer)
            self.throttle(len(self._buffer))
            self._buffer = bytearray()

    def finish_segment(self) -> None:
        if self._fd is None:
            return
        self._write_buffer()
        files.fsync(self._fd)
        files.close(self._fd)
        self._fd = None
        hint = self._hint.hint(self._size)  # with deadlines if a record expires (version 3)
        hints.write(self.directory, self.name, self._size, hint, segment.hint_name(self.name))
        self.done.append(self.name)
        self.sizes.append(self._size)
        self.tombstone_bytes.append(self._tombstones)
        self.bytes_out += self._size

    def discard(self) -> None:
        if self._fd is not None:
            files.close(self._fd)
            self._fd = None
            self.done.append(self.name)
        for name in self.done:
            segment.delete_with_hint(self.directory, name)


def merge_run(
    directory: str,
    current: Manifest,
    start: int,
    stop: int,
    *,
    segment_size: int,
    throttle: Callable[[int], None] = lambda n: None,
    identity: tuple[int, int] | None = None,
) -> dict:
    """Merge ``current.segments[start:stop]`` (all sealed); publish; delete the inputs.

    The caller holds the compaction lock; ``identity`` is the directory's
    (:func:`pysos.segments.files.identity`) when it took it (default: now).
    """
    identity = identity or files.identity(directory)
    began = time.monotonic()
    run = list(current.segments[start:stop])
    if not run or stop >= len(current.segments):
        raise ValueError("a merge takes a non-empty run of sealed segments")
    decode_key = record.key_decoder(current.kind)
    newest = current.segments[-1]
    later: set = set()
    for name in current.segments[stop:]:
        later |= segment_keys(directory, name, current.kind, newest=name == newest)
    earlier: set = set()
    for name in current.segments[:start]:
        earlier |= segment_keys(directory, name, current.kind, newest=False)

    # Newest record of each key in the run: (fd, offset, length, is_tombstone, deadline or None).
    newest_in_run: dict[Any, tuple[int, int, int, bool, float | None]] = {}
    fds: list[int] = []
    bytes_in = 0
    writer = _OutputWriter(directory, _next_number(current), segment_size, throttle)
    try:
        for name in run:
            path = os.path.join(directory, name)
            fd, size = open_sealed(directory, name, current.size_of(name), fds)
            bytes_in += size
            throttle(0)
            scanner = segment.Scanner(fd, 0, size)
            for kind, key, offset, line in scanner:
                deadline = record.expiry_of(line) if kind == record.SET else None
                newest_in_run[decode_key(key)] = (fd, offset, len(line), kind == record.DELETE, deadline)
            damage = scanner.damage()
            if damage is not None:
                raise CorruptionError(f"{path}: {damage[1]} at byte {damage[0]}")

        kept = expired = 0
        now = clock.wall()
        for key, (fd, offset, length, tombstone, deadline) in newest_in_run.items():
            if key in later or (tombstone and key not in earlier):
                continue
            if deadline is not None and deadline <= now:
                # Expired: garbage. Only an older record of the key, before the run, could
                # come back without it; then a tombstone stands in for it.
                expired += 1
                if key not in earlier:
                    continue
                writer.add(key, record.encode_tombstone(key), True)
                kept += 1
                continue
            if not kept % _CHECK_EVERY:
                throttle(0)
            line = segment.read_line(fd, offset, length)
            if not record.verify(line):
                raise CorruptionError(f"{directory}: record of {key!r} changed during the merge")
            writer.add(key, line, tombstone, deadline)
            kept += 1
        writer.finish_segment()
        files.fsync_dir(directory)
        published = _publish(directory, run, writer.done, writer.sizes, bytes_in - writer.bytes_out, identity)
    except BaseException:
        # A failure after the MANIFEST was replaced (its directory fsync, say) must not
        # delete outputs the MANIFEST now names: only discard them if it does not.
        if not _maybe_published(directory, writer.done):
            writer.discard()
        raise
    finally:
        for fd in fds:
            files.close(fd)
    result = finish_run(directory, identity, run, published, began, bytes_in, writer.bytes_out,
                        list(writer.done), len(newest_in_run), kept, expired)
    result["output_tombstone_bytes"] = list(writer.tombstone_bytes)  # of each output: what an index cannot see live
    return result


def finish_run(
    directory: str, identity: tuple[int, int], run: list[str], published: Manifest, began: float,
    bytes_in: int, bytes_out: int, outputs: list[str], records_in: int, records_out: int, expired: int,
) -> dict:
    """A merge's last step once its MANIFEST is published (both merges end with it): check
    the directory is still the store's, delete the merged run's segments, and return and
    log what was done (see :func:`merge_run`)."""
    check_directory(directory, identity)
    _delete(directory, run)
    result = {
        "reclaimed_bytes": bytes_in - bytes_out,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "segments_in": len(run),
        "segments_out": len(outputs),
        "records_in": records_in,
        "records_out": records_out,
        "records_expired": expired,
        "generation": published.generation,
        "seconds": round(time.monotonic() - began, 6),
        "outputs": outputs,
    }
    log.info(
        "pysos: compacted %s: %d segment(s) in, %d out, %d bytes reclaimed in %.3f s",
        directory, result["segments_in"], result["segments_out"], result["reclaimed_bytes"], result["seconds"],
    )
    return result


def open_sealed(directory: str, name: str, expected_size: int, fds: list[int]) -> tuple[int, int]:
    """Open a sealed input segment (its fd appended to ``fds``, which the caller closes) and
    check its size against the MANIFEST's; return (fd, size)."""
    path = os.path.join(directory, name)
    fd = files.open_read(path)
    fds.append(fd)
    size = files.size(fd)
    if size != expected_size:
        raise CorruptionError(
            f"{path}: sealed segment is {size} bytes, the MANIFEST says {expected_size} "
            f"(at byte {min(size, expected_size)})"
        )
    return fd, size


def _next_number(current: Manifest) -> int:
    return current.next_number


def check_directory(directory: str, identity: tuple[int, int]) -> None:
    """Raise :class:`pysos.Error` unless ``directory`` still leads to the directory ``identity``."""
    try:
        now = files.identity(directory)
    except FileNotFoundError:
        now = None
    if now != identity:
        raise Error(
            f"pysos store directory {directory!r} was moved, deleted or replaced during the "
            "compaction; nothing was changed in whatever is there now"
        )


def _publish(
    directory: str, run: list[str], outputs: list[str], output_sizes: list[int], reclaimed: int,
    identity: tuple[int, int],
) -> Manifest:
    """Swap the run for the outputs in the MANIFEST (re-read: the writer may have rotated)."""
    with locks.FileLock(directory, locks.MANIFEST):
        check_directory(directory, identity)
        latest = manifest.read(directory)
        names = list(latest.segments)
        at = _find_run(names, run)
        if at is None:
            raise CorruptionError(f"{directory}: the merged segments left the MANIFEST during the merge")
        published = latest.replace_run(at, len(run), outputs, output_sizes, reclaimed)
        manifest.write(directory, published)
    return published


def _maybe_published(directory: str, outputs: list[str]) -> bool:
    """True if the MANIFEST names any of ``outputs``, or cannot be read to tell."""
    if not outputs:
        return False
    try:
        current = manifest.read(directory)
    except Exception:
        return True  # keeping unnamed files is harmless (the next cleanup removes them)
    return not set(outputs).isdisjoint(current.segments)


def _find_run(names: list[str], run: list[str]) -> int | None:
    for at in range(len(names) - len(run) + 1):
        if names[at : at + len(run)] == run:
            return at
    return None


def _delete(directory: str, names: Iterable[str]) -> None:
    for name in names:
        segment.delete_with_hint(directory, name)
    files.fsync_dir(directory)


def compact_directory(
    directory: str,
    *,
    segment_size: int,
    wait: float | None = None,
    choose: Callable[[str, Manifest], tuple[int, int] | None] | None = None,
    throttle: Callable[[int], None] = lambda n: None,
    identity: tuple[int, int] | None = None,
) -> dict:
    """Take the compaction lock (waiting up to ``wait`` s), clean leftovers, merge a run.

    ``choose(directory, manifest)`` picks the run ``(start, stop)``; the default is every
    sealed segment. ``identity``: the directory an open store belongs to (default: the
    one ``directory`` leads to when the lock is taken). Returns the merge's figures, or
    ``{"reclaimed_bytes": 0, ...}`` if there was nothing to merge.
    """
    identity = identity or files.identity(directory)
    lock = _take_compaction_lock(directory, wait)
    try:
        current = _clean(directory, identity)
        run = (choose or all_sealed)(directory, current)
        if run is None:
            return nothing_done(current)
        return merge_run(directory, current, *run, segment_size=segment_size, throttle=throttle, identity=identity)
    finally:
        lock.release()


def compact_all(
    directory: str,
    *,
    segment_size: int,
    max_merge_bytes: int = plan.DEFAULT_MAX_MERGE_BYTES,
    wait: float | None = None,
    throttle: Callable[[int], None] = lambda n: None,
    identity: tuple[int, int] | None = None,
    if_reclaimable: bool = True,
) -> dict:
    """Merge every segment that is sealed now, as bounded merges, oldest first.

    Each merge takes at most ``max_merge_bytes`` of input (see
    :func:`pysos.compactor.plan.next_full_run`), so the extra disk needed at any moment
    is bounded by that, not by the store. Returns the merges' figures added up.
    With ``if_reclaimable``, a store whose sealed segments hold nothing a merge could
    drop (:func:`sealed_dead_bytes` is 0: e.g. it was just compacted) is left as it is:
    nothing is written and the figures are zeros.
    """
    identity = identity or files.identity(directory)
    lock = _take_compaction_lock(directory, wait)
    try:
        current = _clean(directory, identity)
        total = nothing_done(current)
        total["merges"] = 0
        if if_reclaimable and sealed_dead_bytes(directory, current) == 0:
            return total
        todo = set(current.segments[:-1])
        while True:
            sizes = [_size(directory, n) if n in todo else 0 for n in current.segments]
            run = plan.next_full_run(current.segments, sizes, todo, max_merge_bytes)
            if run is None:
                return total
            result = merge_run(
                directory, current, *run, segment_size=segment_size, throttle=throttle, identity=identity
            )
            todo.difference_update(current.segments[run[0] : run[1]])
            _add_up(total, result)
            current = manifest.read(directory)
    finally:
        lock.release()


def sealed_dead_bytes(directory: str, current: Manifest) -> int:
    """What a merge of every sealed segment would drop, estimated as the daemon does
    (:func:`pysos.compactor.plan.estimate_dead`, from hints where good, else a scan):
    0 for a store whose sealed segments are all clean merge outputs."""
    if len(current.segments) < 2:
        return 0
    decode_key = record.key_decoder(current.kind)
    summaries, sizes = [], []
    last = len(current.segments) - 1
    for i, name in enumerate(current.segments):
        path = os.path.join(directory, name)
        fd = files.open_read(path)
        try:
            size = files.size(fd)
            summary = None
            if i != last:
                hint = hints.read(os.path.join(directory, segment.hint_name(name)), name, size, current.kind)
                if hint is not None:
                    summary = plan.KeySummary.from_hint(size, map(decode_key, hint.keys), hint.lengths,
                                                        hint.deadlines)
            if summary is None:
                summary = plan.KeySummary(size)
                for kind, key, _, line in segment.Scanner(fd, 0, size):
                    summary.add(kind, decode_key(key), len(line), record.expiry_of(line))
        finally:
            files.close(fd)
        summaries.append(summary)
        sizes.append(size)
    return sum(plan.estimate_dead(summaries, sizes, clock.wall())[:-1])


def _take_compaction_lock(directory: str, wait: float | None) -> locks.FileLock:
    """The compaction lock, or an exception with the lock free (even if noting our pid
    in the lock file failed after the lock was taken)."""
    lock = locks.FileLock(directory, locks.COMPACT)
    try:
        lock.acquire(timeout=wait)
    except BaseException:
        lock.release()  # a no-op unless the lock was taken
        raise
    return lock


def _clean(directory: str, identity: tuple[int, int]) -> Manifest:
    """Read the MANIFEST and delete leftovers of interrupted work (compaction lock held)."""
    with locks.FileLock(directory, locks.MANIFEST):
        check_directory(directory, identity)
        current = manifest.read(directory)
        recovery._remove_unnamed(directory, current)
    return current


def _size(directory: str, name: str) -> int:
    return files.lstat(os.path.join(directory, name)).st_size


def _add_up(total: dict, result: dict) -> None:
    for key in ("reclaimed_bytes", "bytes_in", "bytes_out", "segments_in", "segments_out",
                "records_in", "records_out", "records_expired"):
        total[key] += result[key]
    total["seconds"] = round(total["seconds"] + result["seconds"], 6)
    total["generation"] = result["generation"]
    total["merges"] += 1


def all_sealed(directory: str, current: Manifest) -> tuple[int, int] | None:
    sealed = len(current.segments) - 1
    return (0, sealed) if sealed > 0 else None


def nothing_done(current: Manifest) -> dict:
    return {
        "reclaimed_bytes": 0, "bytes_in": 0, "bytes_out": 0, "segments_in": 0, "segments_out": 0,
        "records_in": 0, "records_out": 0, "records_expired": 0, "generation": current.generation, "seconds": 0.0,
    }
