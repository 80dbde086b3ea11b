"""What Dict and List share: opening, closing, batches, compaction, stats, observers."""

from __future__ import annotations

import os
from collections.abc import Sized
from typing import Any, Callable, ContextManager, NoReturn, TypeVar, cast

from . import codec as codecs
from .compactor import compact_store
from .compactor.background import BackgroundCompactor
from .engine import DEFAULT_SEGMENT_SIZE, Reader, Writer
from .errors import ObserverError

_H = TypeVar("_H", bound="Handle")

#: ``callback(key_or_index, new_value, old_value)``, see :meth:`Handle.observe`.
Observer = Callable[[Any, Any, Any], None]


class Handle:
    """Base of :class:`pysos.Dict` and :class:`pysos.List`: opening, closing, batches,
    compaction, statistics and observers.

    ``path`` (the only positional argument) is the store's directory; every option is a
    keyword:

    - ``readonly``: open as a reader. Readers never block the writer, any number of them
      may run in any processes, and every write raises :class:`pysos.ReadOnlyError`. A
      reader on a path with no store raises ``FileNotFoundError`` and creates nothing.
      A writer creates the directory (with parents) and the store if missing.
    - ``durability``: ``"flush"`` (default): a change is handed to the OS in full before
      the call returns, so it survives the death of the process; ``"fsync"``: it is also
      fsync'ed, so it survives power loss and an OS crash. Anything else: ``ValueError``.
    - ``segment_size``: bytes after which the newest segment is sealed and a new one begun.
    - ``autocompact``: merge segments in a background thread of the writer.
    - ``lock_timeout``: seconds to wait for another writer to close the store before
      raising :class:`pysos.LockedError` (which names the holder's pid where known).
    - ``refresh_interval``: readers only; ``0`` (default) means a read sees every write
      that returned before it started, ``S`` checks for new writes at most every S seconds.
    - ``codec``: how values are written (see :mod:`pysos.codec`): ``"json"`` (JSON values),
      or ``"tagged"`` (JSON plus datetime, date, set, frozenset, tuple, bytes, UUID and
      Decimal, as tagged JSON objects). A new store records it; ``None`` (the default)
      opens a store with the codec it recorded, and creates a ``"json"`` store. A store
      recorded with another codec than the one given raises :class:`pysos.FormatError`.

    Raises :class:`pysos.FormatError` when ``path`` holds something other than a pysos
    store, or a store of the other kind (a List store opened as a Dict), and ``TypeError``
    when an option is passed positionally (dbm-style flags belong to :func:`pysos.open`).
    A closed handle raises ``ValueError`` on use, like a closed file.
    """

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
        codec: str | None = None,
    ) -> None:
        if positional:
            raise TypeError(
                f"pysos.{type(self).__name__}() takes the path as its only positional argument; "
                f"options are keywords (e.g. readonly=True), and dbm-style flags such as "
                f"{positional[0]!r} go to pysos.open(path, flag)")
        if codec is not None:
            codecs.get(codec)  # an unknown name: ValueError before anything is created
        self._observers: list[Observer] = []
        options: dict[str, Any] = dict(
            durability=durability,
            segment_size=segment_size,
            lock_timeout=lock_timeout,
            refresh_interval=refresh_interval,
            codec=codec,
            **self._store_hooks(),
        )
        # Typed as the Writer: Dict and List reach its writing methods only after
        # store.enter(write=True), which a Reader refuses (ReadOnlyError).
        self._store: Writer
        if readonly:
            self._store = Reader(path, self._kind, **options)  # type: ignore[assignment]
        else:
            compactor = BackgroundCompactor if autocompact else None
            self._store = Writer(path, self._kind, compactor=compactor, **options)
        self._lock = self._store.lock
        self._codec = codecs.get(self._store.manifest.codec)  # recorded, never changes
        # The write paths call self._encoders.encode_item/encode_value: a module, see Codec.
        self._encoders = self._codec.encoders

    def _store_hooks(self) -> dict[str, Any]:
        """``on_reload``/``on_keys_changed`` for the store (see :class:`pysos.engine.Store`)."""
        return {}

    # --- life cycle ----------------------------------------------------------------------

    @property
    def path(self) -> str:
        """The store's directory, as an absolute path."""
        return self._store.directory

    @property
    def codec(self) -> str:
        """The codec the store's values are written with: ``"json"`` or ``"tagged"`` (recorded in its MANIFEST)."""
        return self._codec.name

    @property
    def readonly(self) -> bool:
        """Whether this handle is a reader (opened with ``readonly=True`` or flag ``"r"``)."""
        return self._store.readonly

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._store.closed

    def close(self) -> None:
        """Close the store and release its locks; later use raises ``ValueError``.

        Every change that returned is already on disk (see ``durability``); closing twice
        is fine. Closing inside this thread's open :meth:`batch` raises ``RuntimeError``.
        """
        self._store.close()

    def __enter__(self: _H) -> _H:
        """``with pysos.Dict(path) as d:`` gives the handle itself (typed as its class)."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving the ``with`` block closes the handle, also on an exception."""
        self.close()

    def flush(self) -> None:
        """Push pending changes to the OS (every returned call already did: one write each).

        Raises ``ValueError`` on a closed handle and ``OSError`` if the OS refuses; on a
        writer, ``pysos.Error`` if the writes went to a deleted file (the store's directory
        or files were removed) or the path now leads to another directory.
        """
        self._store.flush()

    def sync(self) -> None:
        """fsync the newest segment and the directory: what is there survives power loss.

        Raises ``OSError`` if the fsync fails (the changes may then not be durable), and
        ``pysos.Error`` as :meth:`flush` does.
        """
        with self._lock:
            self._store.sync()

    def batch(self) -> ContextManager[None]:
        """``with store.batch():`` makes the changes inside one atomic, single-write unit.

        After a crash either all of them are on disk or none. An exception inside the block
        discards them all. Other threads wait until the block ends. Observers are called
        after the batch commits. On a reader, the first write raises
        :class:`pysos.ReadOnlyError`.
        """
        return self._store.batch()

    def compact(self) -> dict[str, Any]:
        """Seal the newest segment and merge all sealed ones now; return what was done.

        The result has at least ``reclaimed_bytes``. Readers keep reading meanwhile; the
        result is published by an atomic MANIFEST swap, and killing the process at any
        instant loses nothing. Waits if another compaction of the store runs. Raises
        :class:`pysos.ReadOnlyError` on a reader. ``vacuum()`` is the same (pysos 1.3's name).
        Inside a batch the newest segment, where the batch's records go, stays unsealed: only
        the sealed segments are merged.
        """
        return compact_store(self._store)

    vacuum = compact

    def refresh(self) -> None:
        """Pick up other processes' changes now (readers also do it on every read by default).

        Raises :class:`pysos.CorruptionError` if a new record fails its checksum.
        """
        with self._lock:
            self._store.refresh()

    def stats(self) -> dict[str, Any]:
        """Counts and sizes as a plain dict.

        At least ``keys``, ``segments``, ``live_bytes``, ``dead_bytes``, ``disk_bytes`` and
        ``generation``; also ``compactions`` and ``reclaimed_bytes_total`` (by any process),
        and the store's ``codec``.
        """
        with self._lock:
            self._store.enter()
            return {**self._store.stats(), "codec": self._codec.name}

    def observe(self, callback: Observer) -> None:
        """Call ``callback(key_or_index, new_value, old_value)`` after each change.

        A deletion passes ``None`` as the new value. The callback runs once the change
        is committed (after the batch, inside :meth:`batch`), in the thread that made it.
        If a callback raises, the others still run (and, for a batch, every other event
        too); then :class:`pysos.ObserverError` ("committed, observer failed") is raised,
        holding what they raised.
        """
        self._observers.append(callback)

    def _notify(self, where: Any, new: Any, old: Any) -> None:
        failed = []
        for callback in self._observers:
            try:
                callback(where, new, old)
            except Exception as exc:
                failed.append(exc)
        if failed:
            raise ObserverError.of(failed)

    def __repr__(self) -> str:
        """``<pysos.Dict '/path': 12 items>``: never the contents."""
        state = "closed" if self.closed else f"{len(cast(Sized, self))} items"  # (len: not expired keys)
        mode = ", readonly" if self._store.readonly else ""
        return f"<pysos.{type(self).__name__} {self._store.directory!r}: {state}{mode}>"
