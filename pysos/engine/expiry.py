"""Expiry: keys whose record carries a deadline leave the index when it passes.

A record may carry a deadline (``"x"``, Unix seconds, see FORMAT.md). The store keeps
the deadlines of the keys it indexes in :class:`~pysos.segments.index.Deadlines`; at
every look (:meth:`Expiry.expire`, from ``Store.enter``) it drops the keys whose deadline
has passed by the wall clock, exactly as if they had been deleted (no observer hears it,
nothing is written: their records are garbage the compactor drops). The hot paths look
only at ``monotonic() >= store.due``; :meth:`Expiry.watch` lowers ``due`` to the next
deadline, so a store without expiring keys pays nothing and one with them pays a look at
the clock per deadline (plus one whenever a handle follows the files anyway).

The gate's invariant: ``due`` is never later than the lower bound of
:class:`~pysos.segments.index.Deadlines` (``Deadlines.lower_bound``: the first entry of
its queue or heap, stale or not, or its ``cover`` once the queue is used up, which keys
written since wait beyond). Every look that raises ``due`` (a writer's ``follow`` once a
second, a reader's per refresh) aims it again (:meth:`Expiry.aim`), a deadline earlier than
the bound aims it when it is added (``Writer.write_expiring``, a reader's catch-up, a
discarded batch), so a write of a later deadline (the usual: a store default ``expire``)
and a look with nothing due leave ``due`` alone.

Under a churn of expiring keys a deadline passes at nearly every operation, and dropping
keys one at a time costs more than the operation itself. So only what needs every expired
key gone first (``len()``, iteration, a look at the files) drops them at once. Writes
(``d[k] = v``, ``d.set``) look only at ``look_due``, the handle's next look at its files:
a write needs no other key dropped first. An operation on one key (``d[k]``, ``get``,
``in``, ``del``) goes through :meth:`Expiry.enter_key` once ``due`` passed: until the
next look, it only asks whether *its* key's deadline passed (then it drops every key due,
as a look would). The keys due meanwhile are dropped in bulk at the next look, within a
second on a writer, so their records are garbage to the compactor by then.
"""

from __future__ import annotations

from itertools import compress, repeat
from operator import rshift
from typing import Any

from ..segments import clock
from ..segments.index import _INF, LENGTH_MASK, SEGMENT_SHIFT


class Expiry:
    """The expiry part of :class:`pysos.engine.Store` (which provides ``index``,
    ``deadlines``, ``_expiring``, ``_live_bytes``, ``due``, ``look_due``, ``kind``,
    ``enter``, ``tear`` and ``_on_reload``)."""

    def expire(self, now: float | None = None) -> None:
        """Drop the keys whose deadline has passed, by the wall clock, and set the gate
        (``due``) to the next deadline, so that the hot paths, which look only at the
        monotonic clock, come back here in time. The conversion is recomputed at every
        look and aims a little early (so a wall clock running slightly fast is met); a
        step of the wall clock is seen at the next look (a writer looks at least once a
        second, a reader at every refresh). ``now``: the wall clock read already, by a
        caller that decided on it whether to look at its files first."""
        if now is None:
            now = clock.wall()
        deadlines = self.deadlines
        heap = deadlines.heap  # Deadlines.first_passed, inline: once per reader read
        if deadlines.first <= now or heap and heap[0][0] <= now:  # else nothing is due, the gate is aimed
            self.aim(now)

    def expire_at_checkpoint(self, written: float | None) -> None:
        """A writer's checkpoint (every MiB written) drops the keys due before it weighs its
        segment: writes alone look at their deadlines once a second, megabytes under a churn
        of short-lived keys, which the early seal (and the disk) would wait for. Unless the
        key just written is due already (``written``: its deadline), which its caller may
        still read back (an observer's value), or in a List, which renumbers on a drop: then
        the next operation drops them, between operations, as a look does."""
        now = clock.wall()
        if self.kind == "dict" and (written is None or written > now):
            self.expire(now)
        else:
            self.due, self.look_due = min(self.due, 0.0), min(self.look_due, 0.0)

    def enter_key(self, key: Any, write: bool = False) -> None:
        """:meth:`Store.enter` for an operation on ``key`` alone, once ``due`` passed (caller
        holds the lock): if that was only a deadline, not a look at the files (``look_due``),
        and not ``key``'s own, nothing needs doing (see the module doc). A closed or refused
        store's ``look_due`` is ``-inf``: enter() refuses. The writer's; a reader has its own."""
        if clock.monotonic() < self.look_due:
            deadline = self._expiring.get(key)
            if deadline is None or deadline > clock.wall():
                return
        self.enter(write)

    def aim(self, now: float) -> None:
        """After a look that set ``due`` (``now``: the wall clock): drop the keys whose
        deadline passed, then lower ``due`` to the next deadline if that comes first.

        Finding the next deadline means skipping the stale entries before it (keys written
        again or deleted since), a dict lookup each, and under a churn of rewrites most
        entries are stale. So it is looked for only when the first entry, a bound no later
        than it, would open the gate sooner than ``due`` does: a store whose deadlines are
        an hour off leaves its stale entries to the rebuild that drops them in bulk
        (``Deadlines.tidy``, at a writer's look at its files and a reader's refresh), or to
        their turn, instead of looking at each one every second."""
        deadlines = self.deadlines
        try:
            first = deadlines.lower_bound()
            if first <= now:  # something may be due: drop it (the bound is then later than now)
                due = deadlines.take_due(now)
                if due:
                    self._drop(due)
                first = deadlines.lower_bound()
            if first != _INF and clock.monotonic() + max(first - now, 0.0) * 0.999 < self.due:
                self.watch(deadlines.next(), now)
        except BaseException:  # an interrupt: keys taken from ``deadlines``, maybe not
            self.tear()  # from the index (they would never expire): see pysos.engine.torn
            raise

    def watch(self, deadline: float | None, now: float) -> None:
        """Make the gate open again by ``deadline`` (wall clock; ``now`` is the wall clock now)."""
        if deadline is not None:
            at = clock.monotonic() + max(deadline - now, 0.0) * 0.999
            if at < self.due:
                self.due = at

    def _drop_expired_copies(self, retired: set[int]) -> None:
        """Expiring keys still located in a segment a compaction retired: the compaction
        found them expired (by its clock, maybe a little ahead of ours) and did not copy them."""
        # C loops, no Python code per key: this runs at every adoption of a merge, over
        # every expiring key (a Python loop was ~0.5 us a key, 50 ms a merge at 100,000).
        keys = list(self._expiring)
        segments = map(rshift, map(self.index.get, keys, repeat(0)), repeat(SEGMENT_SHIFT))
        self._forget(list(compress(keys, map(retired.__contains__, segments))))

    def _forget(self, keys: list) -> None:
        """Drop expired ``keys`` from the index and from ``deadlines``."""
        forget = self.deadlines.by_key.pop
        try:
            for key in keys:
                forget(key, None)
            self._drop(keys)
        except BaseException:  # (an interrupt: see aim)
            self.tear()
            raise

    def _note_expired(self, keys: list, locations: list[int]) -> None:
        """``keys`` were dropped by expiry from ``locations``: a writer notes them (see
        :class:`pysos.engine.hinting.WriterHints`); a reader has nothing to do."""

    def _drop(self, keys: list) -> None:
        """Drop expired ``keys`` (no longer in ``deadlines``) from the index: they are
        garbage now, like overwritten records."""
        idx = self.index
        try:
            popped = list(map(idx.pop, keys, repeat(0)))  # (C loops: under a churn, a key per write)
            if self._live_bytes is not None:
                self._live_bytes -= sum(map(LENGTH_MASK.__and__, popped))
            self._note_expired(keys, popped)
            if keys and getattr(self, "_batch", None) is not None:  # a writer's open batch: its
                self._batch.live_bytes_before = None  # discard must recount (these stay dropped)
            if keys and self.kind == "list":  # a List renumbers (only a foreign writer would give
                # a List's records a deadline; pysos gives them to Dict items only)
                self._on_reload(idx)
        except BaseException:  # (an interrupt: see aim)
            self.tear()
            raise
