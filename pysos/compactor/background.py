"""The writer's background compaction thread (``autocompact=True``).

It is woken when the writer seals a segment (full, or early once garbage dominates it)
and by the writer's checkpoints every ~1 MiB written when the store's garbage passes the
policy; it merges from the writer's index (:func:`.index_merge.merge_live`, no parsing), and
it stands aside while a compaction daemon watches the store (``daemon.lock`` held).
"""

from __future__ import annotations

import logging
import threading
import weakref
from itertools import compress
from operator import and_

from ..errors import LockedError
from ..segments import clock, index, locks, manifest, segment
from . import index_merge, merge, plan
from .throttle import Interrupted, Throttle

log = logging.getLogger("pysos.compactor")

# Kept for callers of the first version; the policy lives in :mod:`.plan`.
DEFAULT_RATIO = plan.DEFAULT_RATIO
DEFAULT_MIN_DEAD_BYTES = plan.DEFAULT_MIN_DEAD_BYTES

_IDLE_WAKE = 5.0        # seconds: look whether the store is gone, retry a refused lock
_MAX_ROUNDS = 64        # bounded merges per wake-up before yielding to the next one
_LOCK_SLICE = 0.05      # seconds between looks at the stop flag while waiting for the store
_QUIET_STEP = 2**20     # bytes: more garbage than this (or min_dead_bytes/4) wakes the thread after a fruitless look
NO_KEY = object()       # (no key of an index is this one)
_NEVER = float("inf")
_DEADLINE_SLACK = 0.01  # seconds past the last deadline of its own merge's outputs that the thread looks again


class BackgroundCompactor:
    """Wakes on each rotation and on garbage; merges sealed segments when garbage passes the policy.

    The policy (:class:`plan.Policy`) is read from the attributes ``ratio``,
    ``min_dead_bytes`` and ``max_merge_bytes`` at each look, so they can be changed on a
    live store (``store.compactor.ratio = 0.2``); ``rate_limit`` (bytes per second of
    merge output, ``None`` for none) paces the merge's writes.

    It talks to the writer (:class:`pysos.engine.Writer`) through its public interface
    only: ``lock``, ``closed``, ``expire()``, ``stats()``, ``segment_sizes()``, ``index``,
    ``follow()`` and ``adopt_compaction()``; the writer calls :meth:`poke` and :meth:`garbage`.
    Dead bytes per segment come from the writer's own index (exact, see
    :func:`plan.dead_from_locations`); the index is copied under the store's lock (after
    the compaction lock is taken, so it matches the MANIFEST) and summed outside it; the
    same copy gives :func:`.index_merge.merge_live` the live records of a run from the oldest
    segment. The merge runs without the store's lock (it only reads sealed
    files), so writes and reads go on meanwhile; only adopting the new MANIFEST takes the
    lock, briefly. ``stop()`` (from ``close()``) makes a running merge give up at its next
    write: its unpublished outputs are deleted and nothing changes.
    """

    def __init__(
        self,
        store,
        ratio: float = plan.DEFAULT_RATIO,
        min_dead_bytes: int = plan.DEFAULT_MIN_DEAD_BYTES,
        max_merge_bytes: int = plan.DEFAULT_MAX_MERGE_BYTES,
        rate_limit: float | None = None,
    ):
        self._store_ref = weakref.ref(store)
        self.directory = store.directory
        self.ratio = ratio
        self.min_dead_bytes = min_dead_bytes
        self.max_merge_bytes = max_merge_bytes
        self.rate_limit = rate_limit
        self.compactions = 0
        self.reclaimed_bytes = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._retry = False
        self._standing_aside = False
        self._quiet_below = 0  # garbage() wakes the thread only from this many dead bytes on
        self._oldest_size = _NEVER  # the oldest segment's bytes at the last look: garbage() wakes
        # the thread from as many dead bytes on, whatever the policy (it may be free to drop)
        self._clean: dict[str, plan.CleanMark] = {}  # outputs of fruitless merges (plan.mark_clean)
        self._merged: list[str] = []  # the segments of the last merge (see Writer.adopt_compaction)
        # Wall clock time by which every record of the oldest segments (the outputs of the
        # last merge from the oldest) will have expired, if they all expire: the thread
        # looks then, and drops them (plan.dead_prefix) without waiting for more garbage.
        self._oldest_dead_at: float | None = None
        self._witness: object = NO_KEY  # a key found live in the oldest segment (see live_key_in)
        self._thread = threading.Thread(target=self._run, name=f"pysos-compactor {store.directory}", daemon=True)
        self._thread.start()

    @property
    def policy(self) -> plan.Policy:
        return plan.Policy(self.ratio, self.min_dead_bytes, self.max_merge_bytes)

    def poke(self) -> None:
        """A segment was sealed: look at the store soon."""
        self._wake.set()

    def garbage(self, disk_bytes: int, dead_bytes: int) -> None:
        """The writer's checkpoint (every ~1 MiB written, see ``Store._checkpoint``): look at
        the store soon if its garbage passes the policy, or the size of the oldest segment
        (which may then hold nothing live: free to drop), and has grown since the last look
        that found nothing to merge (so a store whose garbage is all in the segment being
        written does not make the thread look again every MiB)."""
        if dead_bytes >= self._quiet_below and (dead_bytes >= self._oldest_size
                                                or self.policy.due(disk_bytes, dead_bytes)):
            self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self._timeout())
            self._wake.clear()
            if self._stop.is_set():
                return
            store = self._store_ref()
            if store is None or store.closed:
                return
            timed = self._oldest_dead_by_now()  # (first: it forgets the time once passed)
            if not woken and not self._retry and not timed:
                continue
            self._retry = False
            try:
                self._compact_while_due(store)
            except Interrupted:
                return
            except LockedError:
                self._retry = True  # another compactor (the daemon, compact()) is at it
            except Exception:
                log.exception("pysos: background compaction of %s failed", self.directory)
            del store

    def _timeout(self) -> float:
        if self._oldest_dead_at is None:
            return _IDLE_WAKE
        return min(_IDLE_WAKE, max(self._oldest_dead_at - clock.wall(), 0.0) + _DEADLINE_SLACK)

    def _oldest_dead_by_now(self) -> bool:
        """True once (then forgotten) when the oldest segments' last deadline has passed."""
        if self._oldest_dead_at is None or self._oldest_dead_at > clock.wall():
            return False
        self._oldest_dead_at = None
        return True

    def _compact_while_due(self, store) -> None:
        for _ in range(_MAX_ROUNDS):
            if locks.held_by_other(self.directory, locks.DAEMON):
                if not self._standing_aside:
                    log.info("pysos: %s: a compaction daemon watches this store; the writer's thread stands aside",
                             self.directory)
                self._standing_aside = True
                return
            self._standing_aside = False
            result = self._merge_once(store)
            if result is None:
                return
            self.compactions += 1
            self.reclaimed_bytes += result["reclaimed_bytes"]
            result = dict(result, compactions=self.compactions, total_reclaimed_bytes=self.reclaimed_bytes)
            if not self._lock_store(store):
                raise Interrupted()
            try:
                if store.closed:
                    raise Interrupted()
                store.adopt_compaction(result, self._merged)
            finally:
                store.lock.release()

    def _merge_once(self, store) -> dict | None:
        """One bounded merge if the store is due (its figures), else ``None``.

        Under the compaction lock the MANIFEST cannot change but for the writer's own
        rotations, so the writer's index, copied under its lock, tells exactly which bytes
        of each sealed segment are live. A run from the oldest segment is merged from that
        copy (:func:`index_merge.merge_live`: no parsing); any other run by a scan (it may have
        to keep tombstones that an older segment needs).
        """
        policy = self.policy
        if not self._lock_store(store):
            raise Interrupted()
        try:
            if store.closed:
                raise Interrupted()
            store.expire()  # keys past their deadline are garbage now, not in a second
            stats = store.stats()  # its dead bytes bound the sealed segments' from above
            if stats["segments"] < 2:
                self._oldest_size = _NEVER
                self._quiet(stats)
                return None
            names, sizes = store.segment_sizes()
            # A sealed segment older than every live record is free to drop (plan.dead_prefix):
            # due whatever the policy says. (It can be only if the store has as many dead bytes.)
            first = segment.segment_number(names[0])
            self._oldest_size = sizes.get(first, 0)
            free_drop = False
            if self._oldest_size <= stats["dead_bytes"]:
                self._witness = live_key_in(store.index, first, self._witness)
                free_drop = self._witness is NO_KEY
            if not free_drop and not policy.due(stats["disk_bytes"], stats["dead_bytes"]):
                self._quiet(stats)
                return None
            locations = list(store.index.values())
        finally:
            store.lock.release()
        active = segment.segment_number(names[-1])
        active_end = sizes[active]
        # The sealed segments' dead bytes, exactly, with no Python call per key: what is
        # not live of what is not in the segment being written (most looks end here).
        lo, hi = index.segment_base(active), index.segment_base(active + 1)
        live_active = sum(map(index.LENGTH_MASK.__and__, filter(hi.__gt__, filter(lo.__le__, locations))))
        del locations
        sealed_dead = (stats["disk_bytes"] - active_end) - (stats["live_bytes"] - live_active)
        if not free_drop and not policy.due(stats["disk_bytes"], sealed_dead):
            self._quiet(stats)
            return None
        lock = merge._take_compaction_lock(self.directory, 0.0)
        try:
            current = merge._clean(self.directory, store.identity)  # the MANIFEST; only the writer's rotations change it now
            if not self._lock_store(store):
                raise Interrupted()
            try:
                if store.closed:
                    raise Interrupted()
                store.follow(force=True)
                writers, sizes = store.segment_sizes()
                # The writer may have rotated since (it appends segments); anything else
                # and its index may not match this MANIFEST: look again later.
                if writers[: len(current.segments) - 1] != list(current.segments[:-1]):
                    log.debug("pysos: %s: the writer's MANIFEST is not the one on disk; looking again later",
                              self.directory)
                    self._retry = True
                    return None
                stats = store.stats()
                items = list(store.index.items())
                # The deadlines of the same records (one C copy): the merge takes them from
                # here rather than parsing each expiring record's.
                deadlines = dict(store.deadlines.by_key) if store.deadlines.by_key else None
            finally:
                store.lock.release()
            # The run is taken among the sealed segments of `current` (its newest, and any
            # the writer sealed since, stay out of it).
            names = list(current.segments)
            dead = plan.dead_from_locations([location for _, location in items], sizes)
            self._clean = plan.still_clean(self._clean, names)
            exact = [plan.SegmentEstimate(n, sizes.get(segment.segment_number(n), 0),
                                          dead.get(segment.segment_number(n), 0)) for n in names]
            estimates = plan.discount(exact, self._clean)
            run = plan.plan(estimates, policy) or plan.dead_prefix(exact)
            if run is None:
                self._quiet(stats)
                return None
            start, stop = run
            self._merged = names[start:stop]
            throttle = Throttle(self.rate_limit, self._stop)
            if start == 0:
                shift = index.SEGMENT_SHIFT
                numbers = {segment.segment_number(n) for n in names[:stop]}
                live = [(key, location) for key, location in items if location >> shift in numbers]
                del items
                result = index_merge.merge_live(self.directory, current, stop, live,
                                                segment_size=store.segment_size, throttle=throttle,
                                                identity=store.identity, deadlines=deadlines)
                if result["outputs"]:  # they are the oldest now (a drop of a few leaves the others')
                    self._oldest_dead_at = result["last_deadline"]
            else:
                del items, deadlines
                result = merge.merge_run(self.directory, current, start, stop,
                                         segment_size=store.segment_size, throttle=throttle,
                                         identity=store.identity)
                chosen = sum(e.dead for e in estimates[start:stop])
                if plan.fruitless(chosen, result["reclaimed_bytes"]):
                    # Its outputs' dead bytes by the index are their tombstones, and what
                    # is overwritten, deleted or expired from now on (which counts again).
                    kept = dict(zip(result["outputs"], result["output_tombstone_bytes"]))
                    plan.mark_clean(self._clean, manifest.read(self.directory).segments, kept)
        finally:
            lock.release()
        self._quiet_below = 0
        return result

    def _quiet(self, stats: dict) -> None:
        """Nothing to do: ignore the writer's garbage pokes until its dead bytes grow some more."""
        step = max(min(_QUIET_STEP, self.min_dead_bytes // 4), stats["disk_bytes"] // 8)
        self._quiet_below = stats["dead_bytes"] + step

    def _lock_store(self, store) -> bool:
        """Take the store's lock unless we are told to stop first (``close()`` holds it while
        it waits for this thread)."""
        while not store.lock.acquire(timeout=_LOCK_SLICE):
            if self._stop.is_set():
                return False
        return True


def live_key_in(locations: dict, number: int, witness: object = NO_KEY) -> object:
    """A key of the index whose record lies in segment ``number``, or :data:`NO_KEY`.

    ``witness``, the key found last time, is looked up first: a store whose oldest segment
    keeps a live key pays one lookup a look. Else a C loop over the index (caller holds the
    store's lock), stopping at the first, no Python call per key. Numbers are not in the
    MANIFEST's order (a merge's outputs come first), so this asks about one segment."""
    if locations.get(witness, -1) >> index.SEGMENT_SHIFT == number:
        return witness
    lo, hi = index.segment_base(number), index.segment_base(number + 1)
    values = locations.values()
    inside = map(and_, map(lo.__le__, values), map(hi.__gt__, values))
    return next(compress(locations.keys(), inside), NO_KEY)


__all__ = ["BackgroundCompactor"]
