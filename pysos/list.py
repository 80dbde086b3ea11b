"""``pysos.List``: a MutableSequence whose items live in a pysos store.

Each item is a record keyed by its *position key* (see :mod:`pysos._positions`); the
order lives in memory beside the index and is rebuilt by sorting the keys on open. An
insert writes one record, plus, when its neighbours' keys leave no room, the records of
a crowded range renumbered in the same atomic batch (:meth:`List._renumber`).
"""

from __future__ import annotations

import operator
from time import monotonic
from collections.abc import Iterable, Iterator, MutableSequence, Sequence
from typing import Any, Callable, SupportsIndex, overload

import orjson

from ._handle import Handle
from ._positions import KEY_CHARS, Position, Positions, as_tuple, place, sort_keys
from .segments import record

def _encode_position(key: Position) -> bytes:
    return b"%d" % key if type(key) is int else orjson.dumps(key)


def _encode_values(values: list[Any], call: str, encode: Callable[[Any], bytes]) -> list[bytes]:
    """Encode each value; a refusal names the index of the value that caused it."""
    try:
        return [encode(v) for v in values]
    except (TypeError, ValueError):
        pass
    for i, value in enumerate(values):
        try:
            encode(value)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{call}: item {i} of the values: {exc}") from None
    raise AssertionError("unreachable: a value was refused once and then accepted")


class List(Handle, MutableSequence[Any]):
    """A persistent ``list`` of JSON values, in the directory ``path``.

    ``pysos.List(path, *, readonly=False, durability="flush", segment_size=64 MiB,
    autocompact=True, lock_timeout=0.0, refresh_interval=0.0, codec=None)``: see :class:`Handle` for
    the options and the errors opening raises. A full ``MutableSequence`` with ``list``'s
    rules: negative indexes, slices and extended slices for get/set/del, ``IndexError``
    out of range, ``+=``, ``==`` against any sequence, a stable ``sort``.

    - Items are anything that comes back from JSON unchanged (see :class:`Dict`), plus,
      with ``codec="tagged"``, the types of :mod:`pysos.codec`; any other value raises
      ``TypeError`` or ``ValueError`` and nothing is written. An item's record is held to
      the record size limit as if under the longest position key (20 characters): an
      item that fits once fits wherever inserts and sorts move it.
    - No operation rewrites the items it does not change: ``insert(0, v)`` writes one
      record, whatever the list's size.
    - A change is on disk when the call returns (see ``durability``); ``extend``,
      slice assignment, ``sort``, ``reverse`` and ``clear`` are atomic batches.
    - Writes on a reader raise :class:`pysos.ReadOnlyError`; a closed List raises
      ``ValueError``; iterating works on a snapshot taken when it starts.
    """

    _kind = "list"

    def _store_hooks(self) -> dict[str, Any]:
        return {"on_reload": self._rebuild, "on_keys_changed": self._keys_changed}

    def _rebuild(self, index: dict[Any, Any]) -> None:
        """The index was built again (opening, a reload, a discarded batch): sort its keys."""
        self._positions = Positions(sort_keys(index))

    def _keys_changed(self, added: list[Any], removed: list[Any]) -> None:
        """A reader indexed new records: place new keys, drop deleted ones."""
        positions = self._positions
        for key in removed:
            at = positions.index_of(key)
            if at < len(positions) and positions[at] == key:
                positions.delete(at)
        for key in added:
            last = positions[len(positions) - 1] if len(positions) else None
            if last is None or as_tuple(last) < as_tuple(key):
                positions.insert(len(positions), key)
            else:
                positions.insert(positions.index_of(key), key)

    # --- helpers ---------------------------------------------------------------------

    def _enter(self, write: bool = False) -> None:
        store = self._store
        if (write and store.readonly) or monotonic() >= store.due:  # see Store.enter
            store.enter(write)

    def _normalize(self, i: SupportsIndex) -> int:
        i = operator.index(i)
        n = len(self._positions)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("pysos List index out of range")
        return i

    def _set_at(self, i: int, value_json: bytes) -> None:
        key = self._positions[i]
        old = self._store.get(key) if self._observers else None
        self._store.write(key, record.encode_movable(_encode_position(key), value_json, KEY_CHARS), delete=False)
        if self._observers:
            new = self._codec.from_plain(orjson.loads(value_json))
            self._store.after_commit(lambda: self._notify(i, new, old))

    def _insert_at(self, i: int, value_json: bytes) -> None:
        positions = self._positions
        key, renumbering = place(positions, i)
        try:
            if renumbering is None:
                self._store.write(key, record.encode_movable(b"%d" % key, value_json, KEY_CHARS), delete=False)
            else:
                with self._store.batch():  # joins the caller's batch, if any
                    self._renumber(*renumbering)
                    self._store.write(key, record.encode_movable(b"%d" % key, value_json, KEY_CHARS), delete=False)
            positions.insert(i, key)
        except BaseException:
            self._resync()
            raise
        if self._observers:
            new = self._codec.from_plain(orjson.loads(value_json))
            self._store.after_commit(lambda: self._notify(i, new, None))

    def _resync(self) -> None:
        """A change raised: if it did not get to both the store's index and the positions
        (an interrupt between the two: see pysos.engine.torn), sort the positions again
        from the index (a key more or less in one of them shows in the counts)."""
        store = self._store
        if not store.closed and len(self._positions) != len(store.index):
            self._rebuild(store.index)

    def _renumber(self, start: int, keys: list[int]) -> None:
        """Move items ``start ..`` to ``keys`` (same order): a tombstone for each old key that
        no item takes, then each moved item's value under its new key. The caller holds a
        batch, so readers and a crash see the list before or after, never between."""
        positions, store = self._positions, self._store
        moved = [(start + k, positions[start + k], key) for k, key in enumerate(keys)]
        moved = [(at, old, key) for at, old, key in moved if old != key]
        to_plain = self._codec.to_plain
        values = [orjson.dumps(to_plain(store.get(old))) for _, old, _ in moved]  # before any write
        taken = set(keys)
        for _, old, _ in moved:
            if old not in taken:
                store.write(old, record.encode_delete(_encode_position(old)), delete=True)
        for (at, _, key), value_json in zip(moved, values):
            # no limit check: a stored item moves whatever its size (see encode_movable)
            store.write(key, record.frame(b'"k":%d,"v":%b}' % (key, value_json)), delete=False)
            positions.set(at, key)

    def _delete_at(self, i: int) -> None:
        key = self._positions[i]
        old = self._store.get(key) if self._observers else None
        try:
            self._store.write(key, record.encode_delete(_encode_position(key)), delete=True)
            self._positions.delete(i)
        except BaseException:
            self._resync()
            raise
        if self._observers:
            self._store.after_commit(lambda: self._notify(i, None, old))

    # --- Sequence ---------------------------------------------------------------------

    def __len__(self) -> int:
        """The number of items."""
        with self._lock:
            self._enter()
            return len(self._positions)

    @overload
    def __getitem__(self, i: int) -> Any: ...

    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...

    def __getitem__(self, i: Any) -> Any:
        """The item at index ``i`` (``IndexError`` out of range), or a plain ``list`` for a slice."""
        with self._lock:
            self._enter()
            if isinstance(i, slice):
                positions, store = self._positions, self._store
                return [store.get(positions[j]) for j in range(*i.indices(len(positions)))]
            return self._store.get(self._positions[self._normalize(i)])

    def __iter__(self) -> Iterator[Any]:
        """The items as of the start of the iteration."""
        store = self._store
        snapshot = store.iter_snapshot(lambda: [(key, store.index[key]) for key in self._positions])
        return (value for _, value in snapshot)

    def __reversed__(self) -> Iterator[Any]:
        """The items from last to first, as of the start of the iteration."""
        return iter(list(self)[::-1])

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence (not a str or bytes) with equal items in the same order."""
        if isinstance(other, (str, bytes, bytearray)) or not isinstance(other, Sequence):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self, other))

    def __ne__(self, other: object) -> bool:
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # type: ignore[assignment]  # mutable, like list

    # --- MutableSequence --------------------------------------------------------------

    @overload
    def __setitem__(self, i: int, value: Any) -> None: ...

    @overload
    def __setitem__(self, i: slice, value: Iterable[Any]) -> None: ...

    def __setitem__(self, i: Any, value: Any) -> None:
        """Replace item ``i`` (one record), or a slice (one atomic batch, ``list``'s rules)."""
        if isinstance(i, slice):
            return self._set_slice(i, value)
        value_json = self._encoders.encode_value(value)
        with self._lock:
            self._enter(write=True)
            self._set_at(self._normalize(i), value_json)

    def _set_slice(self, s: slice, values: Iterable[Any]) -> None:
        self._store.check_writable()
        with self._lock:
            # may be this very list: read it before changing anything (a comprehension, not
            # list(), which trusts __length_hint__ and may try to allocate sys.maxsize items)
            new = [v for v in values]
            encoded = _encode_values(new, "l[a:b] = values", self._encoders.encode_value)
            with self._store.batch():
                self._enter(write=True)
                n = len(self._positions)
                start, stop, step = s.indices(n)
                if s.step is None or step == 1:
                    stop = max(stop, start)
                    common = min(len(encoded), stop - start)
                    for offset in range(common):
                        self._set_at(start + offset, encoded[offset])
                    for offset in range(common, len(encoded)):
                        self._insert_at(start + offset, encoded[offset])
                    for i in range(stop - 1, start + common - 1, -1):
                        self._delete_at(i)
                    return
                targets = range(start, stop, step)
                if len(targets) != len(encoded):
                    raise ValueError(
                        f"attempt to assign sequence of size {len(encoded)} "
                        f"to extended slice of size {len(targets)}"
                    )
                for i, value_json in zip(targets, encoded):
                    self._set_at(i, value_json)

    @overload
    def __delitem__(self, i: int) -> None: ...

    @overload
    def __delitem__(self, i: slice) -> None: ...

    def __delitem__(self, i: Any) -> None:
        """Delete item ``i`` (one tombstone; later items move up), or a slice as one batch."""
        with self._lock:
            self._enter(write=True)
            if isinstance(i, slice):
                doomed = sorted(range(*i.indices(len(self._positions))), reverse=True)
                with self._store.batch():
                    for j in doomed:
                        self._delete_at(j)
                return
            self._delete_at(self._normalize(i))

    def insert(self, i: Any, value: Any) -> None:
        """Insert before index ``i`` (clamped like ``list.insert``): one record written."""
        i = operator.index(i)
        value_json = self._encoders.encode_value(value)
        with self._lock:
            self._enter(write=True)
            n = len(self._positions)
            if i < 0:
                i = max(i + n, 0)
            self._insert_at(min(i, n), value_json)

    def append(self, value: Any) -> None:
        """Add ``value`` at the end: one record."""
        value_json = self._encoders.encode_value(value)
        with self._lock:
            self._enter(write=True)
            self._insert_at(len(self._positions), value_json)

    def extend(self, values: Iterable[Any]) -> None:
        """Append all of ``values`` as one atomic batch; one bad value writes nothing."""
        self._store.check_writable()
        with self._lock:
            encoded = _encode_values([v for v in values], "extend()", self._encoders.encode_value)  # see _set_slice
            with self._store.batch():
                self._enter(write=True)
                for value_json in encoded:
                    self._insert_at(len(self._positions), value_json)

    def __iadd__(self, values: Iterable[Any]) -> List:
        """``lst += values`` is :meth:`extend`: one atomic batch."""
        self.extend(values)
        return self

    def pop(self, i: Any = -1) -> Any:
        """Remove and return item ``i`` (default the last); ``IndexError`` if empty or out of range."""
        with self._lock:
            self._enter(write=True)
            if not self._positions:
                raise IndexError("pop from empty pysos List")
            i = self._normalize(i)
            value = self._store.get(self._positions[i])
            self._delete_at(i)
            return value

    def remove(self, value: Any) -> None:
        """Remove the first item equal to ``value``; ``ValueError`` if there is none."""
        with self._lock:
            self._enter(write=True)
            del self[self.index(value)]

    def clear(self) -> None:
        """Remove every item, as one atomic batch of tombstones."""
        with self._lock, self._store.batch():
            self._enter(write=True)
            for i in range(len(self._positions) - 1, -1, -1):
                self._delete_at(i)

    def reverse(self) -> None:
        """Reverse in place, as one batch; items whose stored bytes stay the same are not rewritten."""
        with self._lock:
            self._enter(write=True)
            self._rewrite(list(self)[::-1])

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        """Stable sort in place, as one batch; items whose stored bytes stay the same are not rewritten."""
        with self._lock:
            self._enter(write=True)
            self._rewrite(sorted(self, key=key, reverse=reverse))

    def _rewrite(self, new: list[Any]) -> None:
        """Store ``new`` (the same items, reordered) where an item's bytes change: equal items
        may differ in what is stored (``-0.0`` and ``0.0``, a dict's order, a Decimal's
        digits, a datetime's offset), so bytes are compared, not values."""
        encode = self._encoders.encode_value
        old = list(self)
        with self._store.batch():
            for i, (before, after) in enumerate(zip(old, new)):
                line = encode(after)
                if line != encode(before):
                    self._set_at(i, line)
