"""A handle belongs to the process that opened it and to the directory it opened.

DESIGN.md, "In the field": a writable handle inherited by a forked child must never write
nor free its parent's writer lock, and a child must not hang on a lock that another thread
held at the fork; a handle whose path no longer leads to the directory it opened (renamed,
deleted, replaced) must never write into, or serve, another store.

Both are enforced without a check on any read or write path:

- at fork, :func:`_after_fork_in_child` (``os.register_at_fork``) visits every open store
  of the process (:func:`track`): :meth:`Store._after_fork <pysos.engine.core.Store._after_fork>`
  re-initialises a lock held by a thread that did not survive, and a writer refuses from
  then on (``due = -inf`` sends its next operation through ``enter()``, which raises);
- the directory's (device, inode) is compared with the one opened (:func:`moved`) only
  when a handle looks at the files anyway: a writer once a second and before each
  rotation, a reader when the MANIFEST it holds is replaced, and on ``refresh()``.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref

from ..segments import files

log = logging.getLogger("pysos")

_open_stores: weakref.WeakSet = weakref.WeakSet()  # every open store of this process


def track(store) -> None:
    """Remember ``store`` (weakly) so that a forked child can fix it up."""
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


def forked_writer(directory: str, pid: int) -> str:
    """Why a writable handle refuses everything in a forked child."""
    return (
        f"pysos store {directory!r} was opened for writing by process {pid}, and this process "
        f"({os.getpid()}) is a fork of it: a child must not use its parent's writable handle; "
        "open the store in the child (pysos.open(path, readonly=True) to read it)"
    )
