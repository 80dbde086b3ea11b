"""The thin filesystem layer: every file operation of pysos goes through these functions.

Keeping them in one module gives one place for the rules (loop on short writes, fsync the
directory after a create or rename) and one place for tests to inject faults: a test
replaces e.g. ``files.write`` with a wrapper that raises ``ENOSPC`` after N bytes.
Callers must therefore call ``files.write(...)``, never ``from .files import write``.
"""

from __future__ import annotations

import os

O_BINARY = getattr(os, "O_BINARY", 0)


def create_exclusive(path: str) -> int:
    """Create a new file for reading and writing; ``FileExistsError`` if the name is taken."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | O_BINARY, 0o644)


def create_truncated(path: str) -> int:
    """Create (or empty) a file for writing."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | O_BINARY, 0o644)


def open_rw(path: str) -> int:
    """Open an existing file for reading and writing (never creates it)."""
    return os.open(path, os.O_RDWR | O_BINARY)


def open_read(path: str) -> int:
    return os.open(path, os.O_RDONLY | O_BINARY)


def write(fd: int, data: bytes | memoryview) -> int:
    """One ``os.write``; may write fewer bytes than asked (callers use :func:`write_all`)."""
    return os.write(fd, data)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` at the fd's position, looping on short writes."""
    view = memoryview(data)
    while view:
        written = write(fd, view)
        view = view[written:]


# One ``os.pwrite``, which may write fewer bytes than asked (see :func:`write_all_at`), and
# one ``os.pread``. Plain aliases, not wrappers: they are on the path of every write and
# read, where a Python call costs as much as the checks. Tests still replace them here.
pwrite = os.pwrite
pread = os.pread


def write_all_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset``, looping on short writes.

    One system call in the common case: that is what makes a record (or a whole batch) reach
    the OS as a unit, so a killed process leaves at most one torn unit at the tail. An
    explicit offset (rather than the fd's position) lets a failed write be truncated away
    without leaving a hole before the next one.
    """
    written = pwrite(fd, data, offset)
    if written == len(data):
        return
    view = memoryview(data)[written:]
    offset += written
    while view:
        written = pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def fsync(fd: int) -> None:
    os.fsync(fd)


def fdatasync(fd: int) -> None:
    getattr(os, "fdatasync", os.fsync)(fd)


def truncate(fd: int, length: int) -> None:
    os.ftruncate(fd, length)


def size(fd: int) -> int:
    return os.fstat(fd).st_size


def end(fd: int) -> int:
    """The size of a file, as ``lseek(fd, 0, SEEK_END)``: a quarter of the cost of
    :func:`size` in Python (no stat result to build), for a reader's check on every read.
    Moves the fd's position, which pysos never uses (it reads with pread or a map)."""
    return os.lseek(fd, 0, os.SEEK_END)


def close(fd: int) -> None:
    os.close(fd)


def unlink(path: str) -> None:
    os.unlink(path)


def replace(src: str, dst: str) -> None:
    os.replace(src, dst)


def fsync_dir(directory: str) -> None:
    """Make a create, rename or unlink in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Write a temp file beside it, fsync it, rename it over ``path``, fsync the directory:
    after a crash at any point the file holds either the old or the new bytes, whole.
    """
    directory = os.path.dirname(path) or "."
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = create_truncated(tmp)
    try:
        try:
            write_all(fd, data)
            fsync(fd)
        finally:
            close(fd)
        replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)  # a failed write (ENOSPC) leaves no temp file holding space
        raise
    fsync_dir(directory)


def _remove_quietly(path: str) -> None:
    try:
        unlink(path)
    except OSError:
        pass


def make_dirs(path: str) -> None:
    """Create a directory and its parents (nothing if it exists)."""
    os.makedirs(path, exist_ok=True)
