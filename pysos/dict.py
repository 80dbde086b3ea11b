"""``pysos.Dict``: a MutableMapping whose items live in a pysos store."""

from __future__ import annotations

from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from time import monotonic
from typing import Any

from ._handle import Handle
from .segments import record

_MISSING = object()


class Dict(Handle, MutableMapping):
    """A persistent ``dict`` of JSON scalar keys to JSON values. See the README."""

    _kind = "dict"

    # The hot paths take the lock with acquire()/release() rather than ``with``: half the
    # cost (~0.1 us of a ~2.5 us read), and the same safety with try/finally.

    def __getitem__(self, key: Any) -> Any:
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if monotonic() >= store.due:  # most calls skip it: see Store.enter
                store.enter()
            return store.read(key, store.index[key])
        finally:
            lock.release()

    def __setitem__(self, key: Any, value: Any) -> None:
        line = record.encode_item(key, value)  # bad input raises here, before anything changes
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if store.readonly or monotonic() >= store.due:
                store.enter(write=True)
            if self._observers:
                self._write_observed(key, line)
            else:
                store.write(key, line, False)
        finally:
            lock.release()

    def _write_observed(self, key: Any, line: bytes) -> None:
        store = self._store
        old = self.get(key)
        store.write(key, line, False)
        new = store.get(key)
        store.after_commit(lambda: self._notify(key, new, old))

    def __delitem__(self, key: Any) -> None:
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if store.readonly or monotonic() >= store.due:
                store.enter(write=True)
            if key not in store.index:
                raise KeyError(key)
            if self._observers:
                old = store.get(key)
                store.write(key, record.encode_delete(record.encode_key(key)), delete=True)
                store.after_commit(lambda: self._notify(key, None, old))
            else:
                store.write(key, record.encode_tombstone(key), delete=True)
        finally:
            lock.release()

    def __len__(self) -> int:
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter()
            return len(store.index)

    def __iter__(self) -> Iterator[Any]:
        """The keys as of the start of the iteration (changes meanwhile do not disturb it)."""
        store = self._store
        with self._lock:
            store.enter()
            keys = list(store.index)
        return iter(keys)

    def __contains__(self, key: object) -> bool:
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter()
            return key in store.index

    def get(self, key: Any, default: Any = None) -> Any:
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter()
            location = store.index.get(key)
            return default if location is None else store.read(key, location)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        with self._lock:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                if default is _MISSING:
                    raise KeyError(key)
                self._store.check_writable()
                return default
            del self[key]
            return value

    def popitem(self) -> tuple[Any, Any]:
        """Remove and return the most recently added (key, value) pair, like ``dict``."""
        store = self._store
        with self._lock:
            store.enter(write=True)
            if not store.index:
                raise KeyError("popitem(): pysos Dict is empty")
            key = next(reversed(store.index))
            value = store.get(key)
            del self[key]
            return key, value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        with self._lock:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                self[key] = default
                return default
            return value

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, all or nothing: one bad key or value writes nothing."""
        self._store.check_writable()
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]
        else:
            pairs = [tuple(pair) for pair in other]
            for pair in pairs:
                if len(pair) != 2:
                    raise ValueError(f"dictionary update sequence element has length {len(pair)}; 2 is required")
        pairs.extend(kwargs.items())
        lines = [record.encode_set(record.encode_key(k), record.encode_value(v)) for k, v in pairs]
        store = self._store
        with store.batch():
            store.enter(write=True)
            if self._observers:
                for (key, _), line in zip(pairs, lines):
                    self._write_observed(key, line)
            else:
                for (key, _), line in zip(pairs, lines):
                    store.write(key, line, False)

    def clear(self) -> None:
        """Delete every key, as one atomic batch of tombstones."""
        with self._store.batch():
            for key in list(self._store.index):
                del self[key]

    def values(self) -> ValuesView:
        return _Values(self)

    def items(self) -> ItemsView:
        return _Items(self)

    def _snapshot_items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs as of the start: values are read lazily from their records."""
        return self._store.iter_snapshot(lambda: list(self._store.index.items()))


class _Items(ItemsView):
    def __iter__(self):
        return self._mapping._snapshot_items()


class _Values(ValuesView):
    def __iter__(self):
        return (value for _, value in self._mapping._snapshot_items())
