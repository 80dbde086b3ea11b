"""Changes cut short: a Ctrl-C half-way through a change of a handle's memory.

A signal's exception (``KeyboardInterrupt``, or whatever a handler raises: a timeout of
``signal.alarm``) arrives between two bytecodes of the main thread: after a record reached
its file but before the index points at it, between a key's deadline leaving the deadline
table and the key leaving the index, half-way through a rotation. The files are right
(a change is one write, or none); the memory may not be, and a handle that went on from
there would serve a value its files replaced, keep an expired key, and write a hint that
says so (a hint that lists a key as never expiring brings it back on every later open).

So the code that changes memory catches an exception that may have stopped it half-way
(on a write path: any, once the record's bytes are written; elsewhere: an interrupt, see
:func:`cut_short`), *tears* the handle (:meth:`Torn.tear`) and re-raises. A torn handle
writes no hint, and its next operation opens the gate, where ``follow`` (or, before a
change, ``check_writable``) rebuilds the index from the files under the store's lock
(:meth:`Torn.mend`, what opening does) before anything reads or writes. Undoing each step of each change
exactly would be more code on the hot paths for a rare event; a rebuild costs what
opening costs, once.
"""

from __future__ import annotations

from ..errors import Error
from ..segments import recovery


def cut_short(exc: BaseException) -> bool:
    """Whether ``exc`` may have stopped a change of memory where no failure the code expects
    does: anything but a refusal (:class:`pysos.Error`) and an ``OSError`` (the I/O failures
    each step is written to leave undone, or to redo on the next call: tearing on them
    would rebuild the index at every call while a disk fails). A ``TimeoutError`` is what
    a ``signal.alarm`` handler raises, so it counts as an interrupt."""
    return not isinstance(exc, Error) and (not isinstance(exc, OSError) or isinstance(exc, TimeoutError))


class Torn:
    """The torn state of :class:`pysos.engine.core.Store` (which provides ``_torn``,
    ``due``, ``look_due``, ``_load`` and ``_check_identity``)."""

    def tear(self) -> None:
        """The memory may disagree with the files: rebuild it at the next operation (a closed
        or refused handle stays so: its gates are ``-inf``)."""
        self._torn = True
        self.due = min(self.due, 0.0)
        self.look_due = min(self.look_due, 0.0)

    def mend(self) -> None:
        """Rebuild the index from the files, as opening does (caller holds the lock; a writer:
        not inside an open batch, whose records are in the index only)."""
        self._check_identity()
        self._before_reload()
        self._load(recovery.existing_manifest(self.directory, self.kind))
        self._torn = False

    def _before_reload(self) -> None:
        """A hook: what a writer forgets before a rebuild."""
