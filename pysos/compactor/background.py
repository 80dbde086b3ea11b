"""The writer's background compaction thread (``autocompact=True``)."""

from __future__ import annotations

import logging
import os
import threading
import weakref

from ..errors import LockedError
from ..segments import files, manifest, segment
from . import plan
from .merge import compact_directory
from .throttle import Interrupted, Throttle

log = logging.getLogger("pysos.compactor")

# Kept for callers of the first version; the policy lives in :mod:`.plan`.
DEFAULT_RATIO = plan.DEFAULT_RATIO
DEFAULT_MIN_DEAD_BYTES = plan.DEFAULT_MIN_DEAD_BYTES

_IDLE_WAKE = 5.0        # seconds: look whether the store is gone, retry a refused lock
_MAX_ROUNDS = 64        # bounded merges per wake-up before yielding to the next one
_LOCK_SLICE = 0.05      # seconds between looks at the stop flag while waiting for the store


class BackgroundCompactor:
    """Wakes on each rotation; merges sealed segments when garbage passes the policy.

    The policy (:class:`plan.Policy`) is read from the attributes ``ratio``,
    ``min_dead_bytes`` and ``max_merge_bytes`` at each look, so they can be changed on a
    live store (``store.compactor.ratio = 0.2``); ``rate_limit`` (bytes per second of
    merge output, ``None`` for none) paces the merge's writes.

    It talks to the writer (:class:`pysos.engine.Writer`) through its public interface
    only: ``lock``, ``closed``, ``stats()``, ``segment_sizes()``, ``index`` and
    ``adopt_compaction()``. Dead bytes per segment come from the writer's own index (exact, see
    :func:`plan.dead_from_locations`); the index is copied under the store's lock and
    summed outside it. The merge runs without the store's lock (it only reads sealed
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
        self._clean: dict[str, tuple[str, ...]] = {}  # outputs of fruitless merges (plan.mark_clean)
        self._thread = threading.Thread(target=self._run, name=f"pysos-compactor {store.directory}", daemon=True)
        self._thread.start()

    @property
    def policy(self) -> plan.Policy:
        return plan.Policy(self.ratio, self.min_dead_bytes, self.max_merge_bytes)

    def poke(self) -> None:
        """A segment was sealed: look at the store soon."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    # --- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(_IDLE_WAKE)
            self._wake.clear()
            if self._stop.is_set():
                return
            store = self._store_ref()
            if store is None or store.closed:
                return
            if not woken and not self._retry:
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

    def _compact_while_due(self, store) -> None:
        for _ in range(_MAX_ROUNDS):
            policy = self.policy
            estimates = self._estimates(store, policy)
            if estimates is None or plan.plan(list(estimates.values()), policy) is None:
                return
            chosen_dead = [0]

            def choose(directory, current):
                known = [estimates.get(name) for name in current.segments]
                segments = [
                    e if e is not None else plan.SegmentEstimate(n, _size(directory, n), 0)
                    for n, e in zip(current.segments, known)
                ]
                segments = plan.discount(segments, self._clean)
                run = plan.choose_run(segments, policy.max_merge_bytes)
                if run is not None:
                    chosen_dead[0] = sum(e.dead for e in segments[run[0] : run[1]])
                return run

            result = compact_directory(
                store.directory,
                segment_size=store.segment_size,
                wait=0.0,
                choose=choose,
                throttle=Throttle(self.rate_limit, self._stop),
                identity=store.identity,  # the directory the store opened, wherever its path leads now
            )
            if not result["segments_in"]:
                return
            if plan.fruitless(chosen_dead[0], result["reclaimed_bytes"]):
                plan.mark_clean(self._clean, manifest.read(store.directory).segments, result.get("outputs", ()))
            self.compactions += 1
            self.reclaimed_bytes += result["reclaimed_bytes"]
            result = dict(result, compactions=self.compactions, total_reclaimed_bytes=self.reclaimed_bytes)
            if not self._lock_store(store):
                raise Interrupted()
            try:
                if store.closed:
                    raise Interrupted()
                store.adopt_compaction(result)
            finally:
                store.lock.release()

    def _estimates(self, store, policy: plan.Policy) -> dict[str, plan.SegmentEstimate] | None:
        """Name -> (size, dead bytes) of every segment, or ``None`` if clearly not due."""
        if not self._lock_store(store):
            raise Interrupted()
        try:
            if store.closed:
                raise Interrupted()
            stats = store.stats()  # its dead bytes bound the sealed segments' from above
            if stats["segments"] < 2 or not policy.due(stats["disk_bytes"], stats["dead_bytes"]):
                return None
            names, sizes = store.segment_sizes()
            locations = list(store.index.values())
        finally:
            store.lock.release()
        dead = plan.dead_from_locations(locations, sizes)
        self._clean = plan.still_clean(self._clean, names)
        estimates = {}
        for name in names:
            number = segment.segment_number(name)
            estimates[name] = plan.SegmentEstimate(name, sizes.get(number, 0), dead.get(number, 0))
        return dict(zip(names, plan.discount(list(estimates.values()), self._clean)))

    def _lock_store(self, store) -> bool:
        """Take the store's lock unless we are told to stop first (``close()`` holds it while
        it waits for this thread)."""
        while not store.lock.acquire(timeout=_LOCK_SLICE):
            if self._stop.is_set():
                return False
        return True


def _size(directory: str, name: str) -> int:
    try:
        return files.lstat(os.path.join(directory, name)).st_size
    except FileNotFoundError:
        return 0


__all__ = ["BackgroundCompactor"]
