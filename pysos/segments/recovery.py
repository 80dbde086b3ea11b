"""What happens when a store is opened: find or create the MANIFEST, refuse what is not a
pysos store, and remove what an interrupted operation left behind.

Leftovers are only ever files that no MANIFEST names: a segment created by a rotation
or a compaction that died before its MANIFEST swap, the hint beside it, a MANIFEST temp
file. Only names of exactly those forms are ever removed (see :func:`is_leftover_name`),
never a directory, and never anything a link points to. They are removed only while holding both the compaction lock (so no compactor is
writing outputs) and the manifest lock (so no rotation is between creating its segment
and naming it).
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat

from ..errors import CorruptionError, FormatError, LockedError
from . import files, locks, manifest, segment
from .manifest import Manifest

log = logging.getLogger("pysos")

DAMAGED_DIR = "damaged"  # where repair() moves files it could not fully read
_LOCK_FILES = {f"{name}.lock" for name in (locks.WRITER, locks.COMPACT, locks.MANIFEST, locks.DAEMON)}
_MANIFEST_TMP_RE = re.compile(re.escape(manifest.NAME) + r"\.[0-9]+\.tmp")  # files.atomic_write's


def _is_ours(name: str) -> bool:
    return (
        name == manifest.NAME
        or name in _LOCK_FILES
        or segment.segment_number(name) is not None
        or segment.is_hint_name(name)
        or _MANIFEST_TMP_RE.fullmatch(name) is not None
        or name == DAMAGED_DIR
    )


def is_leftover_name(name: str, current: Manifest) -> bool:
    """Whether ``name`` (from a directory listing) is a file pysos made and ``current`` no
    longer names: the only names an open, a compaction or a repair ever deletes."""
    if segment.segment_number(name) is not None:
        return name not in current.segments
    if segment.is_hint_name(name):
        return name[: -len(".hint")] + ".jsonl" not in current.segments
    return _MANIFEST_TMP_RE.fullmatch(name) is not None


RESTORE_MARKER = "pysos-restore.json"  # a restore or a follower's first copy under way


def check_not_foreign(directory: str) -> None:
    """Without a MANIFEST: refuse a directory holding other things or data of a lost store."""
    names = sorted(files.listdir(directory))
    if RESTORE_MARKER in names:
        raise FormatError(f"{directory!r} is not a pysos store yet: a restore (or a follower's first "
                          f"copy) into it did not finish ({RESTORE_MARKER!r}, no MANIFEST); run the same "
                          f"'pysos restore URL DIR' (or 'pysos follow URL DIR') again to finish it")
    for name in names:  # a foreign file first, whatever order the listing gives
        if not _is_ours(name):
            raise FormatError(f"{directory!r} is not a pysos store: it holds {name!r} and no MANIFEST")
    for name in names:
        if segment.segment_number(name) is not None and files.lstat(os.path.join(directory, name)).st_size:
            if os.path.exists(os.path.join(directory, manifest.NAME)):
                return  # not lost: a writer created the store (MANIFEST first, then data) since we looked
            raise CorruptionError(
                f"{directory!r}: segment {name!r} holds data but the MANIFEST is missing "
                f"(at byte 0 of MANIFEST); run 'python -m pysos repair'"
            )


def _check_kind(found: Manifest, kind: str | None, directory: str) -> None:
    if kind is not None and found.kind != kind:
        raise FormatError(f"{directory!r} holds a pysos {found.kind}, not a {kind}")


def check_codec(found: Manifest, codec: str | None, directory: str) -> None:
    """Refuse to open a store with a codec (``None``: any, the recorded one) it was not written with."""
    if codec is not None and found.codec != codec:
        raise FormatError(
            f"{directory!r} holds a store whose values are written with codec {found.codec!r}, not {codec!r} "
            "(a store keeps the codec it was created with; open it without codec= to use it)"
        )


def existing_manifest(directory: str, kind: str | None) -> Manifest:
    """The MANIFEST of an existing store; ``FileNotFoundError`` (creating nothing) if none."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(errno.ENOENT, "no pysos store at this path", directory)
    try:
        found = manifest.read(directory)
    except FileNotFoundError:
        check_not_foreign(directory)
        raise FileNotFoundError(errno.ENOENT, "no pysos store here (no MANIFEST)", directory) from None
    _check_kind(found, kind, directory)
    return found


def open_or_create(directory: str, kind: str | None, codec: str | None = None) -> Manifest:
    """For the writer (it holds the writer lock): the MANIFEST, creating the store if new
    (with ``codec``, ``"json"`` if ``None``)."""
    try:
        found = manifest.read(directory)
    except FileNotFoundError:
        check_not_foreign(directory)
        if kind is None:
            raise FileNotFoundError(errno.ENOENT, "no pysos store here (no MANIFEST)", directory) from None
        found = _create(directory, kind, codec or "json")
    _check_kind(found, kind, directory)
    remove_leftovers(directory)
    return found


def _create(directory: str, kind: str, codec: str) -> Manifest:
    with locks.FileLock(directory, locks.MANIFEST):
        name, fd = segment.create_new(directory, 1)
        files.close(fd)
        created = Manifest(kind, 1, (name,), (), segment.segment_number(name) + 1,
                           version=manifest.version_for(codec), codec=codec)
        manifest.write(directory, created)
    log.info("pysos: created a %s store in %s", kind, directory)
    return created


def remove_leftovers(directory: str) -> list[str]:
    """Delete files no MANIFEST names, if no compaction is running; return their names."""
    compact_lock = locks.FileLock(directory, locks.COMPACT)
    try:
        compact_lock.acquire(timeout=0.0, record_pid=False)
    except LockedError:
        return []
    try:
        with locks.FileLock(directory, locks.MANIFEST):
            return _remove_unnamed(directory, manifest.read(directory))
    finally:
        compact_lock.release()


def _remove_unnamed(directory: str, current: Manifest) -> list[str]:
    removed = []
    for name in sorted(files.listdir(directory)):
        if not is_leftover_name(name, current):
            continue
        path = os.path.join(directory, name)
        try:
            if stat.S_ISDIR(files.lstat(path).st_mode):
                log.warning("pysos: %s: leaving alone the directory %r, which has a file's name", directory, name)
                continue
            files.unlink(path)  # a planted link goes, never what it points to
        except FileNotFoundError:
            continue
        removed.append(name)
    if removed:
        files.fsync_dir(directory)
        log.info("pysos: removed %d leftover file(s) in %s: %s", len(removed), directory, ", ".join(removed))
    return removed
