"""The writer's background compaction thread (``autocompact=True``)."""

from __future__ import annotations

import logging
import threading

from ..errors import LockedError
from .merge import compact_directory

log = logging.getLogger("pysos.compactor")

# Compact once dead bytes pass both this share of the store and this floor.
DEFAULT_RATIO = 0.5
DEFAULT_MIN_DEAD_BYTES = 4 * 2**20


class BackgroundCompactor:
    """Wakes on each rotation; merges sealed segments when garbage passes the policy.

    The merge runs without the store's lock (it only reads sealed files), so writes and
    reads go on meanwhile; only adopting the new MANIFEST takes the lock, briefly.
    """

    def __init__(self, store, ratio: float = DEFAULT_RATIO, min_dead_bytes: int = DEFAULT_MIN_DEAD_BYTES):
        self.store = store
        self.ratio = ratio
        self.min_dead_bytes = min_dead_bytes
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"pysos-compactor {store.directory}", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _due(self) -> bool:
        with self.store._lock:
            if self.store.closed:
                return False
            stats = self.store.stats()
        dead = stats["dead_bytes"]
        return stats["segments"] > 1 and dead >= self.min_dead_bytes and dead >= self.ratio * stats["disk_bytes"]

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._stopping:
                return
            try:
                if not self._due():
                    continue
                result = compact_directory(self.store.directory, segment_size=self.store.segment_size, wait=0.0)
            except LockedError:
                continue  # another compactor (the daemon) is at it
            except Exception:
                log.exception("pysos: background compaction of %s failed", self.store.directory)
                continue
            with self.store._lock:
                if self._stopping or self.store.closed:
                    return
                self.store.follow(force=True)
                self.store.last_compaction = result
