"""The writer's merge: a run from the oldest segment, copied from the writer's index.

:func:`merge_live` is what the background thread (:mod:`.background`) runs for a run
that starts at the oldest segment; it shares the steps, publication and figures of
:func:`.merge.merge_run` (see :mod:`.merge`) but parses nothing: the writer's index
says which records of the run are live.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Any, Callable, Iterable, Mapping

from ..errors import CorruptionError
from ..segments import clock, files, hints, index, record, segment
from ..segments.manifest import Manifest
from .merge import _COPY_BUFFER, _maybe_published, _next_number, _publish, finish_run, open_sealed


_WINDOW = 1 << 20  # bytes read at a time by merge_live


def merge_live(
    directory: str,
    current: Manifest,
    stop: int,
    live: Iterable[tuple[Any, int]],
    *,
    segment_size: int,
    throttle: Callable[[int], None] = lambda n: None,
    identity: tuple[int, int] | None = None,
    deadlines: Mapping[Any, float] | None = None,
) -> dict:
    """Merge ``current.segments[:stop]`` (sealed, from the oldest) given their live records.

    The writer's own merge: ``live`` is ``(key, location)`` of every key whose newest
    record lies in the run, from the writer's index (taken under its lock, after the
    MANIFEST was read under the compaction lock, which the caller holds); ``deadlines``,
    if given, the deadline of each of those records that expires, from the writer's
    ``Deadlines.by_key`` taken with it (else each expiring record's is parsed). Nothing is
    parsed: each live record is copied byte for byte, in segment order, its checksum
    verified; every other byte of the run is dead, tombstones included (no segment is
    older than the run, so no tombstone there has anything left to hide). So is a record
    whose deadline has passed by the wall clock (the writer's index may still point to it:
    the writer forgets such keys at its next look, or when it adopts the merge); a live
    expiring record is copied with its deadline, which its output's hint lists too (so
    opening and the writer's adoption of the merge parse no record). Records written
    meanwhile go to later segments, which win over the run's. Same steps, outputs,
    publication and figures as :func:`merge_run`, at a fraction of its Python work per byte,
    plus ``last_deadline``: when every record copied will have expired (``None`` if one
    never does, or none was copied), from each output's deadlines in C, for the thread's
    wake-up (:class:`.background.BackgroundCompactor`).
    """
    identity = identity or files.identity(directory)  # see merge.merge_run
    began = time.monotonic()
    run = list(current.segments[:stop])
    if not run or stop >= len(current.segments):
        raise ValueError("a merge takes a non-empty run of sealed segments")
    position = {segment.segment_number(name): i for i, name in enumerate(run)}
    by_segment: list[list[tuple[int, Any]]] = [[] for _ in run]
    for key, location in live:
        by_segment[position[location >> index.SEGMENT_SHIFT]].append((location, key))
    fds: list[int] = []
    bytes_in = 0
    kept = expired = 0
    expiring = False  # the output being written holds a live expiring record (its hint lists deadlines)
    now = clock.wall()
    expiry_of = record.expiry_of
    deadline_of = (deadlines or {}).get
    mark, mark_at, mark_end = record.EXPIRES_MARK, record.PREFIX_LEN, record.PREFIX_LEN + len(record.EXPIRES_MARK)
    outputs: list[str] = []
    sizes: list[int] = []
    next_number = _next_number(current)
    out_fd: int | None = None
    out_name = ""
    keys: list = []
    lengths: list[int] = []
    deadlines: list = []  # of each record copied to the output (None: never expires)
    pending: list[bytes] = []
    pending_bytes = out_size = 0
    last_deadline: Any = None  # when every record copied will have expired (_NEVER: one never does)
    crc32 = zlib.crc32

    def flush_pending() -> None:
        nonlocal pending, pending_bytes, out_size
        if pending:
            files.write_all_at(out_fd, b"".join(pending), out_size)
            out_size += pending_bytes
            throttle(pending_bytes)
            pending, pending_bytes = [], 0

    def finish_output() -> None:
        nonlocal out_fd, keys, lengths, deadlines, out_size, expiring, last_deadline
        if not expiring or None in deadlines:
            last_deadline = _NEVER  # a record here never expires
        elif last_deadline is not _NEVER:
            last_deadline = max(last_deadline or 0.0, max(deadlines))
        flush_pending()
        files.fsync(out_fd)
        files.close(out_fd)
        out_fd = None
        hint = hints.Hint(keys, lengths, [], deadlines if expiring else None)
        hints.write(directory, out_name, out_size, hint, segment.hint_name(out_name))
        sizes.append(out_size)
        keys, lengths, deadlines, out_size, expiring = [], [], [], 0, False

    try:
        for name, records in zip(run, by_segment):
            path = os.path.join(directory, name)
            fd, size = open_sealed(directory, name, current.size_of(name), fds)
            bytes_in += size
            throttle(0)
            records.sort()
            window, window_start, window_end = b"", 0, 0
            for location, key in records:
                offset = (location >> index.OFFSET_SHIFT) & index.OFFSET_MASK
                length = location & index.LENGTH_MASK
                if offset + length > window_end:
                    window_start = offset
                    window = files.pread(fd, max(_WINDOW, length), offset)
                    window_end = offset + len(window)
                    if offset + length > window_end:
                        raise CorruptionError(f"{path}: short read at byte {offset}")
                    throttle(0)
                at = offset - window_start
                line = window[at : at + length]
                # The checksum, not the JSON (no parse: the writer's index says what it is).
                if (line[:6] != b'{"c":"' or line[6:14] != b"%08x" % crc32(line[record.PREFIX_LEN : -1])
                        or line[-1:] != b"\n"):
                    raise CorruptionError(f"{path}: checksum mismatch or malformed record at byte {offset}")
                # Whether it expires, by its bytes; when, by the writer's deadlines if they
                # have it (the same number its record holds), else by parsing it.
                deadline = (deadline_of(key) or expiry_of(line)) if line[mark_at:mark_end] == mark else None
                if deadline is not None:
                    if deadline <= now:
                        expired += 1
                        continue
                    expiring = True
                if out_fd is None:
                    out_name, out_fd = segment.create_new(directory, next_number)
                    next_number = segment.segment_number(out_name) + 1
                    outputs.append(out_name)
                keys.append(key)
                lengths.append(length)
                deadlines.append(deadline)
                pending.append(line)
                pending_bytes += length
                kept += 1
                if pending_bytes >= _COPY_BUFFER:
                    flush_pending()
                if out_size + pending_bytes >= segment_size:
                    finish_output()
        if out_fd is not None:
            finish_output()
        files.fsync_dir(directory)
        bytes_out = sum(sizes)
        published = _publish(directory, run, outputs, sizes, bytes_in - bytes_out, identity)
    except BaseException:
        if out_fd is not None:
            files.close(out_fd)
        if not _maybe_published(directory, outputs):
            for name in outputs:
                segment.delete_with_hint(directory, name)
        raise
    finally:
        for fd in fds:
            files.close(fd)
    result = finish_run(directory, identity, run, published, began, bytes_in, bytes_out,
                        outputs, kept + expired, kept, expired)
    result["last_deadline"] = None if last_deadline is _NEVER else last_deadline
    return result


_NEVER = object()


__all__ = ["merge_live"]
