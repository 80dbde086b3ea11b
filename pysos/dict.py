"""``pysos.Dict``: a MutableMapping whose items live in a pysos store.

Items may expire (``d.set(k, v, expire=seconds)``, or a store default ``expire=``): an
expired key is absent for every read, ``len()`` and iteration, in every process, from its
deadline on (wall clock); the engine drops it from the index (see
:meth:`pysos.engine.Store.expire`) and the compactor drops its record.
"""

from __future__ import annotations

import reprlib

from collections.abc import ItemsView, Iterator, Mapping, MutableMapping, ValuesView
from time import monotonic
from typing import Any, Callable, NoReturn

import functools
import math
import os

from ._handle import Handle
from .engine import DEFAULT_SEGMENT_SIZE
from .segments import clock, record

_MISSING = object()
_DEFAULT = object()  # set()'s expire: the store's default
_HUGE = 1e300  # set()'s quick check lets through expires below this (a bigger int overflows a float)


def _function_name(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of ``fn`` for :meth:`Dict.memoize`, if it names ``fn`` alone."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str) or "<" in qualname:
        raise TypeError(f"memoize: {fn!r} has no name of its own ({qualname or 'none'}: lambdas, closures "
                        "made by one function and partials would share results); give it one: "
                        "memoize(name='...')")
    return f"{module}.{qualname}"


def _check_expire(expire: Any) -> float | None:
    """``expire`` as seconds (a positive finite number) or ``None``; else a clear error."""
    if expire is None:
        return None
    if type(expire) is bool or not isinstance(expire, (int, float)):
        raise TypeError(f"expire must be a number of seconds or None, not {type(expire).__name__}")
    try:
        seconds = float(expire)
    except OverflowError:  # an int beyond any float
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expire must be a positive, finite number of seconds, not {expire!r:.40}")
    return seconds


class Dict(Handle, MutableMapping[Any, Any]):
    """A persistent ``dict`` of JSON scalar keys to JSON values, in the directory ``path``.

    ``pysos.Dict(path, *, expire=None, readonly=False, durability="flush", segment_size=64 MiB,
    autocompact=True, lock_timeout=0.0, refresh_interval=0.0, codec=None)``: see :class:`Handle` for
    the options and the errors opening raises. A full ``MutableMapping``:

    - Keys are ``str``, ``int``, ``float``, ``bool`` or ``None``, with Python's equality
      (``1``, ``1.0`` and ``True`` are one key); any other key raises ``TypeError``.
    - Values are anything that comes back from JSON unchanged: ``None``, ``bool``, ``int``
      (64-bit), finite ``float``, ``str``, ``list``, ``dict`` with ``str`` keys, nested;
      tuples are stored as lists. With ``codec="tagged"`` also ``datetime``, ``date``,
      ``set``, ``frozenset``, ``tuple``, ``bytes``, ``UUID`` and ``Decimal``, anywhere in a
      value, which come back as they were (see :mod:`pysos.codec`). Any other value raises
      ``TypeError`` or ``ValueError`` naming where it is, and nothing is written.
    - A change is on disk when the call returns (see ``durability``); a crash never loses
      it nor corrupts the store. Values come back as fresh objects.
    - Writes on a reader raise :class:`pysos.ReadOnlyError`; a record that fails its
      checksum raises :class:`pysos.CorruptionError` naming the file and byte offset; a
      closed Dict raises ``ValueError``.
    - Iteration order is the order keys were first written, within a session (a
      compaction may change it); iterating works on a snapshot taken when it starts.
    """

    _kind = "dict"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *positional: NoReturn,
        expire: float | None = None,
        readonly: bool = False,
        durability: str = "flush",
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        autocompact: bool = True,
        lock_timeout: float = 0.0,
        refresh_interval: float = 0.0,
        codec: str | None = None,
    ) -> None:
        """``expire``: seconds after which items written by ``d[k] = v`` (and ``update``,
        ``setdefault``) expire; ``None`` (the default): never. See :meth:`set`. The other
        options are :class:`~pysos._handle.Handle`'s (``codec="tagged"``: values may also
        hold datetime, date, set, frozenset, tuple, bytes, UUID and Decimal)."""
        self._expire = _check_expire(expire)
        super().__init__(path, *positional, readonly=readonly, durability=durability, segment_size=segment_size,
                         autocompact=autocompact, lock_timeout=lock_timeout, refresh_interval=refresh_interval,
                         codec=codec)

    @property
    def expire(self) -> float | None:
        """The store default for how long items live, in seconds (``None``: for ever)."""
        return self._expire

    # The hot paths take the lock with acquire()/release() rather than ``with``: half the
    # cost (~0.1 us of a ~2.5 us read), and the same safety with try/finally.

    def __getitem__(self, key: Any) -> Any:
        """The value of ``key``, a fresh object; ``KeyError`` if it is not there."""
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if monotonic() >= store.due:  # most calls skip it: see Store.enter
                store.enter_key(key)
            return store.read(key, store.index[key])
        finally:
            lock.release()

    def __setitem__(self, key: Any, value: Any) -> None:
        """Store ``value`` under ``key``: on disk when this returns (one write)."""
        expire = self._expire
        if expire is not None:  # set(key, value), spelled out: one Python call per write
            deadline = clock.wall() + expire
            line = self._encoders.encode_item(key, value, deadline)  # bad input raises here, before anything changes
            store, lock = self._store, self._lock
            lock.acquire()
            try:
                if store.readonly or monotonic() >= store.look_due:  # (no deadline gate: see pysos.engine.expiry)
                    store.enter(write=True)
                if self._observers:
                    self._write_observed(key, line, deadline)
                else:
                    store.write_expiring(key, line, deadline)
            finally:
                lock.release()
            return
        line = self._encoders.encode_item(key, value)  # bad input raises here, before anything changes
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if store.readonly or monotonic() >= store.look_due:
                store.enter(write=True)
            if self._observers:
                self._write_observed(key, line)
            else:
                store.write(key, line, False)
        finally:
            lock.release()

    def set(self, key: Any, value: Any, expire: Any = _DEFAULT) -> None:
        """``d[key] = value`` that expires ``expire`` seconds from now (``None``: never;
        omitted: the store's default ``expire``).

        From its deadline (wall clock, ``time.time()`` at the call plus ``expire``) on, the
        key is absent for every read, ``len()`` and iteration, in this and every other
        process; its record is garbage that compaction reclaims. Observers are not called
        when a key expires.
        """
        if expire is _DEFAULT:
            expire = self._expire
        elif type(expire) is not float and type(expire) is not int or not 0 < expire < _HUGE:
            expire = _check_expire(expire)  # None, or a clear error
        deadline = None if expire is None else clock.wall() + expire
        line = self._encoders.encode_item(key, value, deadline)  # bad input raises here, before anything changes
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if store.readonly or monotonic() >= store.look_due:
                store.enter(write=True)
            if self._observers:
                self._write_observed(key, line, deadline)
            elif deadline is None:
                store.write(key, line, False)
            else:
                store.write_expiring(key, line, deadline)
        finally:
            lock.release()

    def incr(self, key: Any, delta: int | float = 1, default: int | float = 0) -> int | float:
        """Add ``delta`` to the number at ``key`` (``default`` if absent) and return the new
        value, holding the writer's lock from the read to the write: concurrent threads
        never lose an increment, and observers and batches see one change. A key that
        expires keeps its deadline, one that does not keeps none; a new key takes the store's
        default ``expire``."""
        for name, number in (("delta", delta), ("default", default)):
            if type(number) not in (int, float):
                raise TypeError(f"incr() {name} must be an int or float, not {type(number).__name__}")
        with self._lock:
            self._store.check_writable()
            old = self.get(key, _MISSING)
            existed = old is not _MISSING
            if not existed:
                old = default
            elif type(old) not in (int, float):
                raise TypeError(f"incr() needs a number at {key!r}, not {type(old).__name__}")
            new: int | float = old + delta
            self._rewrite(key, new, existed, self._deadline_of(key, existed))
            return new

    def transform(self, key: Any, fn: Callable[[Any], Any], default: Any = None) -> Any:
        """Store and return ``fn(old)``, ``old`` being the value at ``key`` (``default`` if
        absent), holding the writer's lock from the read to the write (one change for
        observers and batches). If ``fn`` raises, nothing is written. A key that expires
        keeps its deadline (the one it had when read: if it passes while ``fn`` runs, the
        result is stored expired), one that does not keeps none; a new key takes the store's
        default ``expire``. ``fn`` runs under the lock: other threads using this store wait for it."""
        with self._lock:
            self._store.check_writable()
            old = self.get(key, _MISSING)
            deadline = self._deadline_of(key, old is not _MISSING)  # before fn: its use of the store may drop the key
            new = fn(default if old is _MISSING else old)
            self._rewrite(key, new, old is not _MISSING, deadline)
            return new

    def memoize(self, expire: float | None = None, *,
                name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: cache a function's results in this Dict, by its arguments.

        The key is the JSON text of ``[name, args, kwargs]`` (kwargs sorted), so the
        arguments must be JSON values that come back equal (tuples count as lists);
        anything else raises ``TypeError``/``ValueError`` before the function runs.
        ``name`` defaults to the function's ``module.qualname``; a function without a name
        of its own (a lambda, a closure made by another function, whose instances share
        one qualname, a ``functools.partial``) is refused with ``TypeError`` unless given
        ``name=``: two of them would read each other's results.
        With ``codec="tagged"`` the arguments may be anything that codec stores, encoded by
        it (so ``f((1, 2))`` and ``f([1, 2])`` are two entries, and a set argument gives
        the same key in every process: its items are sorted).
        Results are stored with ``expire`` seconds to live (``None``: for ever) and must be
        storable values. On a readonly handle cached results are used and missing ones are
        computed but not stored: readers in other processes share what the writer filled.
        The function runs outside the store's lock (two threads may both compute a result).
        """
        expire = _check_expire(expire)
        if name is not None and (not isinstance(name, str) or not name):
            raise TypeError(f"memoize: name must be a non-empty str, not {name!r}")

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            label = _function_name(fn) if name is None else name

            @functools.wraps(fn)
            def cached(*args: Any, **kwargs: Any) -> Any:
                try:
                    key = self._encoders.encode_value([label, list(args), dict(sorted(kwargs.items()))]).decode()
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"memoize: the arguments of {label} must be JSON values: {exc}") from None
                value = self.get(key, _MISSING)
                if value is not _MISSING:
                    return value
                value = fn(*args, **kwargs)
                if not self._store.readonly:
                    self.set(key, value, expire=expire)
                return value

            return cached

        return decorate

    def _deadline_of(self, key: Any, existed: bool) -> float | None:
        """The deadline of ``key`` just read (``existed``: it was there), else ``None`` (a key
        that was not there takes the default, whatever deadline of an expired record of it
        is still waiting to be dropped). Caller holds the lock."""
        return self._store.deadlines.by_key.get(key) if existed else None

    def _rewrite(self, key: Any, value: Any, existed: bool, deadline: float | None) -> None:
        """Set ``key`` with ``deadline`` (:meth:`_deadline_of` it when read), or with none if
        it ``existed`` (a new key takes the store's default ``expire``). Caller holds the lock."""
        if deadline is None:
            self.set(key, value, None if existed else _DEFAULT)
            return
        line = record.encode_expiring(self._encoders.encode_item(key, value), deadline)
        self._store.enter(write=True)
        if self._observers:
            self._write_observed(key, line, deadline)
        else:
            self._store.write_expiring(key, line, deadline)

    def _write_observed(self, key: Any, line: bytes, deadline: float | None = None) -> None:
        store = self._store
        old = self.get(key)
        if deadline is None:
            store.write(key, line, False)
        else:
            store.write_expiring(key, line, deadline)
        new = store.get(key)
        store.after_commit(lambda: self._notify(key, new, old))

    def __delitem__(self, key: Any) -> None:
        """Delete ``key`` (a tombstone record); ``KeyError`` if it is not there."""
        store, lock = self._store, self._lock
        lock.acquire()
        try:
            if store.readonly or monotonic() >= store.due:
                store.enter_key(key, write=True)
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
        """The number of keys."""
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
        """Whether ``key`` is in the store (an unhashable key raises ``TypeError``, as in ``dict``)."""
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter_key(key)
            return key in store.index

    def expires_at(self, key: Any) -> float | None:
        """When ``key`` expires: its deadline, Unix time in seconds (wall clock, as
        ``time.time()``), or ``None`` if it never does; ``KeyError`` if it is not there."""
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter_key(key)
            if key not in store.index:
                raise KeyError(key)
            return store.deadlines.by_key.get(key)

    def set_until(self, key: Any, value: Any, deadline: float) -> None:
        """``d[key] = value`` until ``deadline``, a Unix time in seconds (as :meth:`expires_at`
        gives it: ``pysos import`` restores a dumped deadline with this). A deadline that has
        passed removes ``key`` (its value would be invisible at once)."""
        if type(deadline) is not float and type(deadline) is not int or not -_HUGE < deadline < _HUGE:
            raise TypeError(f"deadline must be a finite number of seconds (Unix time), not {deadline!r:.60}")
        with self._lock:
            if float(deadline) > clock.wall():
                self._rewrite(key, value, True, float(deadline))
            else:
                self._encoders.encode_item(key, value)  # bad input raises, as any write's
                self.pop(key, None)

    def get(self, key: Any, default: Any = None) -> Any:
        """The value of ``key``, or ``default`` if it is not there."""
        store = self._store
        with self._lock:
            if monotonic() >= store.due:
                store.enter_key(key)
            location = store.index.get(key)
            return default if location is None else store.read(key, location)

    def pop(self, key: Any, default: Any = _MISSING) -> Any:
        """Delete ``key`` and return its value; ``default`` (or ``KeyError``) if it is not there."""
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
        """The value of ``key``; if it is not there, store ``default`` first and return it."""
        with self._lock:
            value = self.get(key, _MISSING)
            if value is _MISSING:
                self[key] = default
                return default
            return value

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Like ``dict.update``, as one atomic batch: one bad key or value writes nothing."""
        self._store.check_writable()
        if isinstance(other, Mapping) or hasattr(other, "keys"):
            pairs = [(key, other[key]) for key in other.keys()]
        else:
            pairs = [tuple(pair) for pair in other]
            for pair in pairs:
                if len(pair) != 2:
                    raise ValueError(f"dictionary update sequence element has length {len(pair)}; 2 is required")
        pairs.extend(kwargs.items())
        lines = _encode_pairs(pairs, self._encoders.encode_value)
        store = self._store
        with store.batch():
            store.enter(write=True)
            if self._expire is not None:
                deadline = clock.wall() + self._expire
                for (key, _), line in zip(pairs, lines):
                    line = record.encode_expiring(line, deadline)
                    if self._observers:
                        self._write_observed(key, line, deadline)
                    else:
                        store.write_expiring(key, line, deadline)
            elif self._observers:
                for (key, _), line in zip(pairs, lines):
                    self._write_observed(key, line)
            else:
                for (key, _), line in zip(pairs, lines):
                    store.write(key, line, False)

    def clear(self) -> None:
        """Delete every key, as one atomic batch of tombstones."""
        with self._store.batch():
            for key in list(self._store.index):
                try:
                    del self[key]
                except KeyError:  # it expired (before the list was taken, or since): gone already
                    pass

    def values(self) -> ValuesView[Any]:
        """The values, iterated from a snapshot of the keys taken when iteration starts."""
        return _Values(self)

    def items(self) -> ItemsView[Any, Any]:
        """The (key, value) pairs, from a snapshot taken when iteration starts."""
        return _Items(self)

    def items_with_deadlines(self) -> Iterator[tuple[Any, Any, float | None]]:
        """``(key, value, deadline)`` triples from one snapshot taken when iteration starts,
        as :meth:`items` (``deadline``: as :meth:`expires_at` gives it, ``None`` for a key
        that never expires; ``pysos dump`` writes them)."""
        deadlines: dict[Any, float] = {}

        def take() -> list[tuple[Any, int]]:
            deadlines.update(self._store.deadlines.by_key)
            return list(self._store.index.items())

        return ((key, value, deadlines.get(key)) for key, value in self._store.iter_snapshot(take))

    def _snapshot_items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs as of the start: values are read lazily from their records."""
        return self._store.iter_snapshot(lambda: list(self._store.index.items()))


def _encode_pairs(pairs: list[tuple[Any, Any]], encode_value: Callable[[Any], bytes]) -> list[bytes]:
    """The set records of ``pairs``; a refusal names the key whose key or value caused it."""
    lines = []
    for key, value in pairs:
        try:
            key_json = record.encode_key(key)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"update(): key {reprlib.repr(key)}: {exc}") from None
        try:
            lines.append(record.encode_set(key_json, encode_value(value)))
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"update(): the value of key {reprlib.repr(key)}: {exc}") from None
    return lines


class _Items(ItemsView[Any, Any]):
    _mapping: Dict

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._mapping._snapshot_items()


class _Values(ValuesView[Any]):
    _mapping: Dict

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._mapping._snapshot_items())
