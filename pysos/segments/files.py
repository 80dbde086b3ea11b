"""The thin filesystem layer: every file operation of pysos goes through these functions.

Keeping them in one module gives one place for the rules (loop on short writes, fsync the
directory after a create or rename) and one place for tests to inject faults: a test
replaces e.g. ``files.write`` with a wrapper that raises ``ENOSPC`` after N bytes.
Callers must therefore call ``files.write(...)``, never ``from .files import write``.

It is also the one place that decides what pysos may open in a store directory, which
may come from an archive, a shared folder or an attacker (DESIGN.md, "In the field"):

- every open uses ``O_NOFOLLOW`` (a symbolic link in the store is never followed) and
  ``O_NONBLOCK`` (a FIFO or device never blocks the open), then ``fstat``: anything but a
  regular file is refused with :class:`~pysos.errors.CorruptionError`;
- nothing existing is ever truncated by name: a file pysos rewrites (a hint, the
  MANIFEST's temp file) is unlinked (which removes a planted link, never its target) and
  created afresh with ``O_EXCL``;
- the two kinds of file pysos changes in place, the newest segment (appended to, a torn
  tail cut) and the lock files (the holder's pid written, emptied on release), are opened
  for writing only while they have one name (``st_nlink == 1``, :func:`open_rw`,
  :func:`open_lock`): a hard link is the same file under another name, maybe outside the
  store (a victim linked in by another user of a shared folder, or the other half of a
  ``cp -al`` backup), and a write through it would change that file too. Reading a
  hard-linked file changes nothing, so :func:`open_read` accepts it (a readonly handle or
  ``check()`` on a ``cp -al`` copy works);
- a new file takes the permission bits of the store's MANIFEST, so a store its owner made
  private stays private through rotations, compactions and repairs.

Which *names* pysos accepts from disk (MANIFEST entries, directory listings) is decided by
:func:`pysos.segments.segment.segment_number` and its siblings: only plain, well-formed
names of this directory ever reach these functions.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat

from ..errors import CorruptionError

O_BINARY = getattr(os, "O_BINARY", 0)
# Every open: no link following, no blocking on a FIFO, no leak into exec'd programs.
_SAFE = O_BINARY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
DEFAULT_MODE = 0o644  # for the files of a new store (the umask applies)
# The file whose permission bits new files copy (see _mode_for).
MODE_TEMPLATE = "MANIFEST"


class NotRegularFile(CorruptionError):
    """A name pysos opens leads to a symbolic link, a FIFO, a socket, a device or a
    directory: something other than pysos put it there. Nothing was read or written
    through it. ``path`` is the name, ``what`` says what it is."""

    def __init__(self, path: str, what: str, message: str) -> None:
        super().__init__(message)
        self.path, self.what = path, what


def _open(path: str, flags: int, mode: int = DEFAULT_MODE, sole: bool = False) -> int:
    """``os.open`` with :data:`_SAFE`; refuse (and close) anything but a regular file, and
    with ``sole`` a file with more than one name (see :func:`open_rw`)."""
    try:
        fd = os.open(path, flags | _SAFE, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegularFile(
                path, "a symbolic link",
                f"{path}: is a symbolic link; pysos never follows links inside a store (at byte 0)"
            ) from None
        if exc.errno == errno.ENXIO:  # a FIFO opened for writing that no one reads
            raise NotRegularFile(path, "a FIFO or device",
                                 f"{path}: is not a regular file (a FIFO or device) (at byte 0)") from None
        raise
    try:
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO, socket or device"
        raise NotRegularFile(path, what,
                             f"{path}: is not a regular file ({what}); pysos refuses to use it (at byte 0)")
    if sole and st.st_nlink != 1:
        os.close(fd)
        raise CorruptionError(_linked(path, st.st_nlink))
    return fd


def _linked(path: str, nlink: int) -> str:
    store = shlex.quote(os.path.dirname(path) or ".")
    linked = shlex.quote((os.path.dirname(path) or ".") + ".linked")
    return (
        f"{path}: has {nlink} hard links; pysos writes to this file in place, which would change it "
        f"under its other names too (a copy made with 'cp -al', or a file linked in from outside the "
        f"store), so it refuses to (at byte 0). A hard-linked copy can be read (readonly=True); to write "
        f"to this store, give it files of its own, e.g. mv {store} {linked} && cp -a {linked} {store}"
    )


def _mode_for(path: str) -> int | None:
    """The permission bits a new file at ``path`` takes: those of the store's MANIFEST
    beside it, or ``None`` for a new store (then :data:`DEFAULT_MODE` and the umask)."""
    try:
        st = os.lstat(os.path.join(os.path.dirname(path), MODE_TEMPLATE))
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def _create(path: str, flags: int) -> int:
    mode = _mode_for(path)
    if mode is None:
        return _open(path, flags)
    fd = _open(path, flags, 0o600)  # never more open than the store, not even for a moment
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_exclusive(path: str) -> int:
    """Create a new file for reading and writing; ``FileExistsError`` if the name is taken
    (by anything: ``O_EXCL`` does not follow a link either)."""
    return _create(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)


def create_fresh(path: str) -> int:
    """Create an empty file for writing at ``path``, replacing whatever had that name.

    The old entry is unlinked first, never opened: a planted link loses only itself, and
    a hard link to another file is not truncated.
    """
    try:
        os.unlink(path)  # part of this create (a fault test patches create_fresh), not an unlink of data
    except FileNotFoundError:
        pass
    return _create(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)


def open_rw(path: str) -> int:
    """Open an existing regular file for reading and writing (never creates it); refuse
    one that has other names (hard links): writing to it would change them too."""
    return _open(path, os.O_RDWR, sole=True)


def open_read(path: str) -> int:
    """Open an existing regular file for reading."""
    return _open(path, os.O_RDONLY)


def open_lock(path: str) -> int:
    """Open (creating it if needed) a lock file for reading and writing; refuse one that
    has other names (its holder writes its pid there and empties it on release)."""
    try:
        return _open(path, os.O_RDWR, sole=True)
    except FileNotFoundError:
        pass
    try:
        return _create(path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except FileExistsError:  # another process created it meanwhile
        return _open(path, os.O_RDWR, sole=True)


def read_file(path: str, limit: int | None = None) -> bytes:
    """The bytes of a regular file (the first ``limit`` of them), opened as :func:`open_read`."""
    fd = open_read(path)
    try:
        chunks, offset = [], 0
        while limit is None or offset < limit:
            want = 1 << 20 if limit is None else min(1 << 20, limit - offset)
            chunk = os.pread(fd, want, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def listdir(directory: str) -> list[str]:
    return os.listdir(directory)


def lstat(path: str) -> os.stat_result:
    """The entry itself (a link is not followed)."""
    return os.lstat(path)


def identity(directory: str) -> tuple[int, int]:
    """(device, inode) of the directory ``directory`` leads to now: what a handle belongs to."""
    st = os.stat(directory)
    return st.st_dev, st.st_ino


def file_identity(fd: int) -> tuple[int, int]:
    """(device, inode) of an open file: which file it is, whatever name leads to it now."""
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def link(src: str, dst: str) -> None:
    """A second name ``dst`` for the file ``src`` (a link ``src`` is itself is not
    followed); ``FileExistsError`` if ``dst`` is taken."""
    os.link(src, dst, follow_symlinks=False)


def same_file(fd: int, path: str) -> bool:
    """Whether ``path`` still leads to the file open as ``fd`` (False if nothing is there)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def makedirs(directory: str) -> None:
    """Create a directory and its parents (nothing if it exists)."""
    os.makedirs(directory, exist_ok=True)


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


def unlinked(fd: int) -> bool:
    """True if the open file ``fd`` has no name left (deleted, maybe with its directory):
    what is written to it is gone once the last descriptor closes."""
    return os.fstat(fd).st_nlink == 0


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
    fd = create_fresh(tmp)
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

