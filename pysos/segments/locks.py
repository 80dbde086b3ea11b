"""Lock files: ``writer.lock`` (one writable handle), ``compact.lock`` (one compaction at a
time), ``manifest.lock`` (held for the few milliseconds of a MANIFEST read-modify-write)
and ``daemon.lock`` (held by a compaction daemon while it watches the store: the writer's
compaction thread then stands aside, see :func:`held_by_other`).

They are ``flock`` locks taken through portalocker: the kernel drops them when the holder
dies, so a writer killed with SIGKILL never leaves a lock that blocks the next one. The
writer and compaction lock files hold the holder's pid (as text) while held, so an error
or ``pysos info`` can say who holds them; a holder may add a note on a second line (``pysos
follow`` holds a follower's directory's writer lock with the note ``follow URL``, so a
writable open there says the directory is being followed).

A lock belongs to the process that took it. ``flock`` locks belong to the open file, which
a forked child shares: an unlock (or a truncation of the pid note) from the child would
free the parent's lock. So a child forgets every inherited lock at fork (closing its copy
of the descriptor, which leaves the parent's lock held), and :meth:`FileLock.release` in
any process other than the taker only closes its descriptor.
"""

from __future__ import annotations

import os
import threading
import time

import portalocker

from ..errors import CorruptionError, LockedError
from . import files

WRITER, COMPACT, MANIFEST, DAEMON = "writer", "compact", "manifest", "daemon"
_POLL = 0.01

# flock already refuses a second lock from the same process through another open file,
# but a registry makes that independent of the platform's lock flavour.
_held: set[tuple[str, str]] = set()
_held_guard = threading.Lock()


def lock_path(directory: str, name: str) -> str:
    return os.path.join(directory, f"{name}.lock")


class FileLock:
    def __init__(self, directory: str, name: str):
        self.directory = directory
        self.name = name
        self.path = lock_path(directory, name)
        self._fd: int | None = None
        self._pid = 0  # the process that took the lock
        self._key = (os.path.realpath(directory), name)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = 0.0, record_pid: bool = True, note: str = "") -> None:
        """Take the lock, waiting up to ``timeout`` seconds (``None``: forever), else LockedError.
        ``note``: one line recorded after the pid (see :func:`note`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._try_acquire():
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise LockedError(self._refusal())
            time.sleep(_POLL)
        if record_pid:
            try:
                files.truncate(self._fd, 0)
                os.pwrite(self._fd, b"%d\n" % os.getpid() + (note.encode() + b"\n" if note else b""), 0)
            except OSError:
                pass  # the pid note only informs; failing to write it must not strand the lock

    def _try_acquire(self) -> bool:
        with _held_guard:
            if self._key in _held:
                return False
            fd = files.open_lock(self.path)  # never a link, a FIFO...: see files._open
            try:
                portalocker.lock(fd, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
            except (portalocker.AlreadyLocked, portalocker.LockException, BlockingIOError):
                os.close(fd)
                return False
            self._fd = fd
            self._pid = os.getpid()
            _held.add(self._key)
            return True

    def _refusal(self) -> str:
        pid = holder(self.directory, self.name)
        who = f" (held by pid {pid})" if pid is not None else ""
        if self.name == WRITER:
            followed = note(self.directory, self.name) if pid is not None else ""
            if followed.startswith("follow "):
                return (f"pysos store {self.directory!r} is being followed from {followed[7:]} by "
                        f"'pysos follow'{who}: it is a read-only copy while followed "
                        f"(open it with readonly=True)")
            return f"pysos store {self.directory!r} is already open for writing{who}"
        return f"pysos store {self.directory!r}: the {self.name} lock is taken{who}"

    def release(self) -> None:
        if self._fd is None:
            return
        if self._pid != os.getpid():  # inherited through fork: the lock is the parent's
            self.forget()
            return
        with _held_guard:
            try:
                files.truncate(self._fd, 0)
            except OSError:
                pass
            try:
                portalocker.unlock(self._fd)
            finally:
                os.close(self._fd)
                self._fd = None
                _held.discard(self._key)

    def forget(self) -> None:
        """Let go of the descriptor without unlocking (a forked child's copy of a lock)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                files.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "FileLock":
        self.acquire(timeout=None, record_pid=False)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def held_by_other(directory: str, name: str) -> bool:
    """Whether some other holder (another process, or another handle of this one) holds
    the lock now. Creates nothing: a missing lock file means nobody holds it."""
    if (os.path.realpath(directory), name) in _held:
        return True
    try:
        fd = os.open(lock_path(directory, name), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
        portalocker.lock(fd, portalocker.LockFlags.SHARED | portalocker.LockFlags.NON_BLOCKING)
    except (portalocker.AlreadyLocked, portalocker.LockException, BlockingIOError):
        return True
    finally:
        os.close(fd)  # also drops our probe's lock
    return False


def holder(directory: str, name: str) -> int | None:
    """The pid recorded in a lock file if that process is alive, else None.

    A pid is recorded only while the lock is held and the file is emptied on release;
    a holder killed with SIGKILL leaves its pid behind, which the liveness check skips.
    """
    text = _lines(directory, name)[0].strip()
    if not text.isdigit():
        return None
    pid = int(text)
    if pid == os.getpid():
        return pid if (os.path.realpath(directory), name) in _held else None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pid


def note(directory: str, name: str) -> str:
    """The note the holder recorded after its pid ("" if none; read it only while held)."""
    return _lines(directory, name)[1].strip()


def _lines(directory: str, name: str) -> list[str]:
    """The lock file's first line (the pid) and the rest (the note); blanks if unreadable."""
    try:
        text = files.read_file(lock_path(directory, name), 4096).decode("utf-8", "replace")
    except (OSError, CorruptionError):  # none, or not a regular file (which no one holds)
        return ["", ""]
    return (text.split("\n", 1) + [""])[:2]


def _after_fork_in_child() -> None:
    """A forked child holds none of its parent's locks (and no thread holds the guard)."""
    global _held_guard
    _held_guard = threading.Lock()
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
