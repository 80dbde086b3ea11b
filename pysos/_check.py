"""``check`` and ``repair``: an operator's post-mortem and salvage tools.

``check(path)`` reads every byte of a store and reports each problem with its file and
offset; it changes nothing. ``repair(path)`` keeps every record that still verifies,
writes them into a fresh generation, and moves damaged files aside into the store's
``damaged/`` folder: it never deletes bytes it could not read.

Both stream: segments are scanned a chunk at a time and repair copies the surviving
records by offset, so memory holds the live keys and their locations (like an open
store) plus a few MiB of buffers, never the values: repairing a damaged 401 MiB store
peaked at 29 MiB RSS, a bare ``import pysos`` at 21 MiB (``python tools/repair_rss.py``).
"""

from __future__ import annotations

import functools
import os
import stat
import time
from typing import Any, Callable, Iterator

from . import codec as codecs
from .errors import CorruptionError, FormatError
from .segments import files, hints, index, locks, manifest, record, recovery, segment
from .segments.manifest import Manifest

DAMAGED_DIR = recovery.DAMAGED_DIR


def _problem(file: str, offset: int | None, problem: str, severity: str = "error") -> dict:
    return {"file": file, "offset": offset, "problem": problem, "severity": severity}


def _salvage(fd: int) -> Iterator[tuple[str, Any, int, bytes]]:
    """Every line of a segment, going on past damage (see :meth:`segment.Scanner.salvage`)."""
    return segment.Scanner(fd).salvage()


Progress = Callable[[int, int], None]


def _sizes(directory: str, names: list[str]) -> list[int]:
    """Each segment's size in bytes now (0 if it is gone): the total that progress counts to."""
    sizes = []
    for name in names:
        try:
            sizes.append(files.lstat(os.path.join(directory, name)).st_size)
        except OSError:
            sizes.append(0)
    return sizes


def check(path: str | os.PathLike, *, progress: Progress | None = None) -> list[dict]:
    """Verify the MANIFEST, every record's checksum and every hint; return the problems.

    Each problem is ``{"file", "offset", "problem", "severity"}``; severity ``"error"`` means
    data is damaged or missing, ``"warning"`` something harmless (a torn tail the next writer
    cuts, a stale hint, a leftover file). An empty list means healthy. Read-only: works
    beside a writer and changes nothing. ``progress(bytes_done, bytes_total)`` is called
    after each segment. Raises ``FileNotFoundError`` if there is no store at ``path``.
    """
    directory = os.path.abspath(os.fspath(path))
    problems: list[dict] = []
    try:
        current = recovery.existing_manifest(directory, None)
    except CorruptionError as exc:
        return [_problem(manifest.NAME, 0, str(exc))]
    names = list(current.segments)
    sizes = _sizes(directory, names)
    done, total = 0, sum(sizes)
    for name, size in zip(names, sizes):
        problems += _check_segment(directory, name, current.size_of(name), kind=current.kind)
        done += size
        if progress is not None:
            progress(done, total)
    named = set(names) | {segment.hint_name(n) for n in names}
    for entry in sorted(files.listdir(directory)):
        leftover = (segment.segment_number(entry) is not None or segment.is_hint_name(entry)) and entry not in named
        if leftover:
            problems.append(_problem(entry, None, "not named by the MANIFEST (left by an interrupted operation)", "warning"))
    return problems


def _check_segment(directory: str, name: str, sealed_size: int | None, kind: str) -> list[dict]:
    path = os.path.join(directory, name)
    newest = sealed_size is None
    try:
        fd = files.open_read(path)
    except FileNotFoundError:
        return [_problem(name, None, "segment named by the MANIFEST is missing")]
    except CorruptionError as exc:  # a link or a FIFO in its place: never followed, never blocked on
        return [_problem(name, 0, str(exc))]
    try:
        size = files.size(fd)
        problems = []
        if not newest and size != sealed_size:
            problems.append(_problem(
                name, min(size, sealed_size),
                f"sealed segment is {size} bytes, the MANIFEST says {sealed_size}",
            ))
        decode = record.key_decoder(kind)
        scanner = segment.Scanner(fd, 0, size)
        records, damage = [], []
        for what, key, offset, line in scanner.salvage():
            if what in (record.SET, record.DELETE):
                deadline = record.expiry_of(line) if what == record.SET else None
                records.append((what, decode(key), offset, len(line), deadline))
            else:
                damage.append((what, offset))
        hint_name = segment.hint_name(name)
        hint_path = os.path.join(directory, hint_name)
        hint_problems = []
        if os.path.lexists(hint_path):  # a link too: reported, never followed
            hint_problems = _check_hint(hint_path, hint_name, name, fd, size, records, damage, kind, sealed=not newest)
    finally:
        files.close(fd)
    # The torn-tail rule (segment.torn): in the newest segment, the bytes after the last
    # whole unit are a torn tail; damage with a whole unit after it is corruption.
    end = scanner.good_end
    torn = newest and end < size
    for what, offset in damage:
        if torn and offset >= end:
            continue
        if what == segment.DAMAGED:
            problems.append(_problem(name, offset, "checksum mismatch or malformed record"))
        else:
            problems.append(_problem(name, offset, "record of a batch that never finished"))
    if torn:
        problems.append(_problem(name, end, "torn tail: an interrupted write (the next writer cuts it off)", "warning"))
    elif end < size and not any(offset >= end for _, offset in damage):  # a sealed segment's empty unfinished batch
        problems.append(_problem(name, end, "unfinished record or batch"))
    return problems + hint_problems


def _check_hint(hint_path, hint_name, name, fd, size, records, damage, kind, sealed) -> list[dict]:
    """``records``: ``(kind, key, offset, length, deadline)`` of the segment's records."""
    found = hints.examine_prefix(hint_path, name, size, kind, sealed=sealed,
                                 crc_of=functools.partial(hints.segment_crc, fd))
    if found is None:  # removed since we listed it
        return []
    if type(found) is not tuple:
        return [_problem(hint_name, 0, f"hint is not used ({found}); the segment is scanned instead", "warning")]
    hint, covered = found  # the newest segment's hint may cover only its first bytes
    if any(offset < covered for _, offset in damage):
        return []  # the damage is reported; the hint may well describe what was written
    decode = record.key_decoder(kind)
    expected = hints.from_records((r for r in records if r[2] < covered), covered)
    if hint.deadlines is None and expected.deadlines is not None:  # opening from it would miss them
        return [_problem(hint_name, 0, "hint covers expiring records without their deadlines")]
    if hint.with_keys(list(map(decode, hint.keys))) != expected:
        return [_problem(hint_name, 0, "hint disagrees with its segment's records")]
    return []


def repair(path: str | os.PathLike, *, progress: Progress | None = None, codec: str | None = None) -> dict:
    """Salvage every readable record into a new generation; move damaged files aside.

    Takes the writer and compaction locks (``LockedError`` while a writer is open). Without
    a readable MANIFEST, segments are taken in the order of their numbers (a best guess).
    ``codec`` is the store's codec (see :mod:`pysos.codec`): with a readable MANIFEST,
    ``None`` or the one it records (another raises :class:`FormatError`); without one,
    the MANIFEST was its only record, so the rebuilt store gets ``codec``, and with
    ``None`` ``"json"`` unless a record holds a tagged object (``{"$datetime": ...}``):
    then :class:`FormatError` asks which codec, and nothing changes (``"json"`` would
    silently turn such values into plain dicts).
    Returns ``{"generation", "salvaged", "lost", "set_aside", "problems"}``. The new
    generation is published by an atomic MANIFEST swap after its segment is fsync'ed;
    damaged files are moved into ``damaged/``, never deleted. ``progress(bytes_done,
    bytes_total)`` counts the bytes read: every segment twice (checked, then salvaged).
    """
    directory = os.path.abspath(os.fspath(path))
    if codec is not None:
        codecs.get(codec)  # ValueError for an unknown name, before anything is touched
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, "no pysos store at this path", directory)
    writer = locks.FileLock(directory, locks.WRITER)
    writer.acquire(timeout=0.0)
    compactor = locks.FileLock(directory, locks.COMPACT)
    try:
        compactor.acquire(timeout=0.0)
        try:
            with locks.FileLock(directory, locks.MANIFEST):
                return _repair_locked(directory, progress, codec)
        finally:
            compactor.release()
    finally:
        writer.release()


def _repair_locked(directory: str, progress: Progress | None, wanted: str | None) -> dict:
    checked = 0

    def checking(done: int, total: int) -> None:
        nonlocal checked
        checked = done
        if progress is not None:
            progress(done, 2 * total)

    _check_damaged_dir(directory)
    problems = check(directory, progress=checking)
    guessing = False  # whether a tagged object in a record stops the repair (see repair)
    try:
        current: Manifest | None = manifest.read(directory)
    except (FileNotFoundError, CorruptionError, FormatError):
        current = None
    if current is not None:
        recovery.check_codec(current, wanted, directory)
        names, kind, generation = list(current.segments), current.kind, current.generation
        codec = current.codec
        first_free = current.next_number
    else:
        names = sorted(
            (n for n in files.listdir(directory) if segment.segment_number(n) is not None),
            key=segment.segment_number,
        )
        if not names:
            raise FormatError(f"{directory!r}: no MANIFEST and no segments: nothing to repair")
        kind, generation, first_free = _guess_kind(directory, names), 0, 1
        codec = wanted or "json"  # not recorded anywhere else: see FORMAT.md, "Codecs"
        guessing = wanted is None
        problems.append(_problem(
            manifest.NAME, None,
            "no readable MANIFEST: segments taken in the order of their numbers, a guess that can "
            "bring back overwritten values if the store was ever compacted", "warning",
        ))
    decode = record.key_decoder(kind)
    # Pass 1: each live key's newest record, as (segment index, offset, length) packed in
    # one int (the store's own location layout); pass 2 copies them by offset, in file order.
    state: dict = {}
    lost = 0
    damaged: list[str] = []
    sizes = _sizes(directory, names)
    done, total = checked, checked + sum(sizes)
    for number, (name, size) in enumerate(zip(names, sizes)):
        if progress is not None:
            progress(done, total)
        done += size
        try:
            fd = files.open_read(os.path.join(directory, name))
        except FileNotFoundError:
            continue
        except CorruptionError:  # a link or a FIFO where a segment should be: set it aside
            damaged.append(name)
            continue
        had_damage = False
        try:
            for what, key, offset, line in _salvage(fd):
                if what in (segment.DAMAGED, segment.LOST):
                    lost += 1
                    had_damage = True
                elif what == record.SET:
                    if guessing and b'{"$' in line:
                        _refuse_to_guess(directory, name, offset, line)
                    state[decode(key)] = index.pack(number, offset, len(line))
                else:
                    state.pop(decode(key), None)
        finally:
            files.close(fd)
        if had_damage:
            damaged.append(name)
    out_name, fd = segment.create_new(directory, max(first_free, _max_number(directory) + 1))
    try:
        builder, body_size = _copy_records(directory, names, state, fd)
        files.fsync(fd)
    finally:
        files.close(fd)
    salvaged = len(state)
    del state
    hint = builder.hint(body_size)
    version = manifest.version_for(codec, hint.deadlines is not None)
    if current is not None:  # a version 2 store stays 2 (FORMAT.md), expiring records left or not
        version = max(version, current.version)
    hints.write(directory, out_name, body_size, hint, segment.hint_name(out_name))
    newest_name, fd = segment.create_new(directory, segment.segment_number(out_name) + 1)
    files.close(fd)
    new = Manifest(kind, generation + 1, (out_name, newest_name), (body_size,), segment.segment_number(newest_name) + 1,
                   version=version, codec=codec)
    set_aside = _set_aside(directory, damaged, generation)
    if os.path.lexists(os.path.join(directory, manifest.NAME)) and generation == 0:
        set_aside += _set_aside(directory, [manifest.NAME], generation)
    manifest.write(directory, new)
    for name in names:
        if name not in damaged:
            segment.delete_with_hint(directory, name)
    files.fsync_dir(directory)
    return {
        "generation": new.generation,
        "salvaged": salvaged,
        "lost": lost,
        "set_aside": set_aside,
        "problems": problems,
    }


def _refuse_to_guess(directory: str, name: str, offset: int, line: bytes) -> None:
    """Raise :class:`FormatError` if the record ``line`` holds a tagged object: a store
    without a MANIFEST whose codec may have been ``tagged`` (repair has changed nothing yet)."""
    loaded = record.load(line)
    if loaded is None or not codecs.holds_tags(loaded.get("v")):
        return
    raise FormatError(
        f"{directory}: no readable MANIFEST, and its records hold tagged objects such as "
        f'{{"$datetime": ...}} ({name} at byte {offset}): the store was probably created with '
        "codec='tagged', which only its MANIFEST recorded. Say which codec to rebuild it with: "
        "pysos.repair(path, codec='tagged') (the values come back as datetimes, sets...) or "
        "codec='json' (they stay plain dicts); on the command line, 'pysos repair --codec tagged' "
        "or '--codec json'. Nothing was changed."
    )


_CHUNK = 1 << 20  # bytes repair writes at a time


def _copy_records(directory: str, names: list[str], state: dict, out: int) -> tuple[hints.Builder, int]:
    """Copy the records ``state`` locates into ``out``, in file order, a chunk at a time;
    return the hint builder describing them and the bytes written."""
    builder, at, written, buf = hints.Builder(), 0, 0, bytearray()
    source, fd = -1, -1
    try:
        for key, location in sorted(state.items(), key=_location):
            number, offset, length = index.unpack(location)
            if number != source:
                if fd >= 0:
                    files.close(fd)
                    fd = -1
                fd, source = files.open_read(os.path.join(directory, names[number])), number
            line = files.pread(fd, length, offset)
            if len(line) != length or not record.verify(line):
                raise CorruptionError(f"{names[number]}: record at byte {offset} changed during repair")
            buf += line
            builder.add(key, at, length, deadline=record.expiry_of(line))
            at += length
            if len(buf) >= _CHUNK:
                files.write_all_at(out, bytes(buf), written)
                written += len(buf)
                buf.clear()
        files.write_all_at(out, bytes(buf), written)
    finally:
        if fd >= 0:
            files.close(fd)
    return builder, at


def _location(item: tuple[Any, int]) -> int:
    return item[1]


def _set_aside(directory: str, names: list[str], generation: int) -> list[str]:
    """Move files into ``damaged/`` (never delete them); return their new relative paths."""
    if not names:
        return []
    aside = os.path.join(directory, DAMAGED_DIR)
    files.makedirs(aside)  # checked before the repair began: a real directory, or none
    moved = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in names:
        target = os.path.join(DAMAGED_DIR, f"{stamp}-g{generation}-{name}")
        files.replace(os.path.join(directory, name), os.path.join(directory, target))  # a link moves, not its target
        hint = segment.hint_name(name) if segment.segment_number(name) is not None else None
        if hint:
            try:
                files.unlink(os.path.join(directory, hint))
            except FileNotFoundError:
                pass
        moved.append(target)
    files.fsync_dir(aside)
    files.fsync_dir(directory)
    return moved


def _check_damaged_dir(directory: str) -> None:
    """Refuse to repair (before changing anything) if ``damaged`` is a link or a file:
    moving files into it would move them out of the store."""
    try:
        mode = files.lstat(os.path.join(directory, DAMAGED_DIR)).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        raise CorruptionError(
            f"{directory}: {DAMAGED_DIR!r} is not a directory (a link or a file) (at byte 0); "
            "repair moves damaged files there, so it changes nothing until it is"
        )


def _max_number(directory: str) -> int:
    numbers = [segment.segment_number(n) for n in files.listdir(directory)]
    return max([n for n in numbers if n is not None] or [0])


def _guess_kind(directory: str, names: list[str]) -> str:
    """Without a MANIFEST: a store whose keys are all ints or int arrays is a list."""
    for name in names:
        try:
            fd = files.open_read(os.path.join(directory, name))
        except (OSError, CorruptionError):
            continue
        try:
            for what, key, _, _ in _salvage(fd):
                if what in (record.SET, record.DELETE):
                    is_position = type(key) is int or (type(key) is list and all(type(k) is int for k in key))
                    return "list" if is_position else "dict"
        finally:
            files.close(fd)
    return "dict"
