"""What Dict and List share: opening, closing, batches, compaction, stats, observers."""

from __future__ import annotations

import os
from typing import Any, Callable, ContextManager, NoReturn

from .compactor import compact_store
from .compactor.background import BackgroundCompactor
from .engine import DEFAULT_SEGMENT_SIZE, Reader, Writer


class Handle:
    """Base of :class:`pysos.Dict` and :class:`pysos.List`."""

    _kind = ""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *positional: NoReturn,
        readonly: bool = False,
        durability: str = "flush",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        autocompact: bool = True,
        lock_timeout: float = 0.0,
        refresh_interval: float = 0.0,
    ) -> None:
        if positional:
            raise TypeError(
                f"pysos.{type(self).__name__}() takes the path as its only positional argument; "
                f"options are keywords (e.g. readonly=True), and dbm-style flags such as "
                f"{positional[0]!r} go to pysos.open(path, flag)")
        self._observers: list[Callable[[Any, Any, Any], None]] = []
        options: dict[str, Any] = dict(
            durability=durability,
            segment_size=segment_size,
            lock_timeout=lock_timeout,
            refresh_interval=refresh_interval,
            **self._store_hooks(),
        )
        if readonly:
            self._store = Reader(path, self._kind, **options)
        else:
            compactor = BackgroundCompactor if autocompact else None
            self._store = Writer(path, self._kind, compactor=compactor, **options)
        self._lock = self._store.lock

    def _store_hooks(self) -> dict:
        """``on_reload``/``on_keys_changed`` for the store (see :class:`pysos.engine.Store`)."""
        return {}

    # --- life cycle ----------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._store.directory

    @property
    def readonly(self) -> bool:
        return self._store.readonly

    @property
    def closed(self) -> bool:
        return self._store.closed

    def close(self) -> None:
        """Close the store; later use raises ``ValueError``. Closing twice is fine."""
        self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush(self) -> None:
        """Push pending changes to the OS (every returned call already did: one write each)."""
        self._store.flush()

    def sync(self) -> None:
        """fsync the newest segment and the directory: what is there survives power loss."""
        with self._lock:
            self._store.sync()

    def batch(self) -> ContextManager[None]:
        """``with store.batch():`` makes the changes inside one atomic, single-write unit.

        After a crash either all of them are on disk or none. An exception inside the block
        discards them all. Other threads wait until the block ends.
        """
        return self._store.batch()

    def compact(self) -> dict:
        """Seal the newest segment and merge all sealed ones; returns what was reclaimed."""
        return compact_store(self._store)

    vacuum = compact

    def refresh(self) -> None:
        """Pick up other processes' changes now (readers also do it on every read by default)."""
        with self._lock:
            self._store.check_open()
            self._store.follow(force=True)

    def stats(self) -> dict:
        """Counts and sizes: keys, segments, live/dead/disk bytes, generation, and more."""
        with self._lock:
            self._store.enter()
            return self._store.stats()

    def observe(self, callback: Callable[[Any, Any, Any], None]) -> None:
        """Call ``callback(key_or_index, new_value, old_value)`` after each change."""
        self._observers.append(callback)

    def _notify(self, where: Any, new: Any, old: Any) -> None:
        for callback in self._observers:
            callback(where, new, old)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self._store.index)} items"
        mode = ", readonly" if self._store.readonly else ""
        return f"<pysos.{type(self).__name__} {self._store.directory!r}: {state}{mode}>"
