"""A handle belongs to the process that opened it and to the directory it opened.

DESIGN.md, "In the field": a writable handle inherited by a forked child must never write
nor free its parent's writer lock, and a child must not hang on a lock that another thread
held at the fork; a handle whose path no longer leads to the directory it opened (renamed,
deleted, replaced) must never write into, or serve, another store.

Both are enforced without a check on any read or write path:

- at fork, :func:`_after_fork_in_child` (``os.register_at_fork``) visits every open store
  of the process (:func:`opened`): :meth:`Store._after_fork <pysos.engine.core.Store._after_fork>`
  re-initialises a lock held by a thread that did not survive, and a writer refuses from
  then on (``due = -inf`` sends its next operation through ``enter()``, which raises);
- the directory's (device, inode) is compared with the one opened (:func:`moved`) only
  when a handle looks at the files anyway: a writer once a second and before each
  rotation, a reader when the MANIFEST it holds is replaced, and on ``refresh()``;
- a writer also looks whether its newest segment was deleted (``st_nlink == 0``, which
  ``rm -rf DIR/*`` causes without changing the directory's identity) once a second, at
  ``flush()`` and ``sync()``, and after the ``fdatasync`` of each write with
  ``durability="fsync"`` (one ``fstat`` beside a disk flush); with ``durability="flush"``
  writes pay nothing for it, so one that returns within that second after an ``rm -rf``
  went to the deleted file.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from ..errors import Error
from ..segments import files, segment

log = logging.getLogger("pysos")

_open_stores: weakref.WeakSet = weakref.WeakSet()  # every open store of this process
CLOSED = "I/O operation on closed pysos store"


class Belonging:
    """What :class:`pysos.engine.core.Store` does to stay with its process and directory."""

    # Why every operation is refused: closed, a writer inherited through fork, a directory
    # that was replaced; None while usable. check_open() tests only this, and a refusal
    # also sets ``due`` to -inf, so the hot paths pay nothing for it.
    _refusal: str | None = CLOSED

    def check_open(self) -> None:
        if self._refusal is not None:
            raise ValueError(self._refusal) if self._closed else Error(self._refusal)

    def refresh(self) -> None:
        """Follow the files now (``refresh()``)."""
        self.check_open()
        self.follow(force=True)

    def _check_identity(self) -> None:
        """Refuse from now on if our path no longer leads to the directory we opened."""
        why = moved(self.directory, self.identity)
        if why is not None:
            self._refuse(why)

    def _check_written(self) -> None:
        """A writer's look: refuse from now on if our path leads elsewhere, or if the newest
        segment was deleted (see :meth:`_check_unlinked`)."""
        self._check_identity()
        self._check_unlinked(self._fds[self._active])

    def _check_unlinked(self, fd: int) -> None:
        """Refuse from now on if ``fd``, the newest segment, was deleted: with its directory
        (``rm -rf DIR``) or alone (``rm -rf DIR/*``, which leaves the directory as it was)."""
        if files.unlinked(fd):
            self._refuse(deleted(self.directory, segment.segment_name(self._active)))

    def _refuse(self, why: str) -> None:
        """Make this and every later operation raise ``pysos.Error(why)``."""
        self._refusal = why
        self.due = self.look_due = float("-inf")
        raise Error(why)

    def _after_fork(self) -> None:
        """In a forked child: free our lock, then :meth:`_forked` (``torn``: another thread
        held the lock at the fork, and may have left our state half-changed)."""
        torn = free_after_fork(self.lock)
        if not self._closed:
            self._forked(torn)

    def _forked(self, torn: bool) -> None:
        raise NotImplementedError


def opened(store) -> None:
    """``store`` is open: note its directory's (device, inode) and its process, let it be
    used, and remember it (weakly) so that a forked child can fix it up."""
    store.identity = files.identity(store.directory)
    store._pid = os.getpid()
    store._refusal = None
    _open_stores.add(store)


def _after_fork_in_child() -> None:
    for store in list(_open_stores):
        try:
            store._after_fork()
        except Exception:  # a hook must not break fork(); the store stays as it was
            log.exception("pysos: could not prepare %s for a forked child", store.directory)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def free_after_fork(lock: threading.RLock) -> bool:
    """In a forked child: make ``lock`` usable; True if another thread held it at the fork
    (that thread is gone, and may have left what the lock guards half-changed)."""
    if lock.acquire(blocking=False):  # free, or held by this very thread: nothing to do
        lock.release()
        return False
    lock._at_fork_reinit()
    return True


def moved(directory: str, identity: tuple[int, int]) -> str | None:
    """Why a handle of ``identity`` must stop, if ``directory`` no longer leads to it."""
    try:
        if files.identity(directory) == identity:
            return None
    except FileNotFoundError:
        pass
    return (
        f"pysos store directory {directory!r} was moved, deleted or replaced since this handle "
        "opened it; the handle stops rather than mix two stores: open the store again"
    )


def deleted(directory: str, name: str) -> str:
    """Why a writer whose newest segment has no name left refuses everything."""
    return (
        f"pysos store {directory!r}: its newest segment {name} was deleted (with the directory or "
        "its files) while this handle wrote to it; what was written to it since is gone, and the "
        "handle stops: open the store again"
    )


def forked_writer(directory: str, pid: int) -> str:
    """Why a writable handle refuses everything in a forked child."""
    return (
        f"pysos store {directory!r} was opened for writing by process {pid}, and this process "
        f"({os.getpid()}) is a fork of it: a child must not use its parent's writable handle; "
        "open the store in the child (pysos.open(path, readonly=True) to read it)"
    )
