"""pysos: a persistent ``dict`` and ``list`` in a directory of plain-text segments.

    >>> import pysos, tempfile
    >>> d = pysos.Dict(tempfile.mkdtemp())
    >>> d["apple"] = {"color": "red"}
    >>> d["apple"]
    {'color': 'red'}
    >>> d.close()

See README.md for the guarantees and FORMAT.md for the files.
"""

from __future__ import annotations

import os
from datetime import datetime as _datetime
from typing import Any
from typing import Dict as _PlainDict  # 'dict' here is the pysos.dict module

from ._check import check, repair
from .dict import Dict
from .errors import CorruptionError, Error, FormatError, LockedError, ObserverError, ReadOnlyError
from .list import List
from .segments import recovery

__version__ = "2.0.0.dev0"


_FLAGS = ("r", "w", "c", "n")  # dbm's


def open(path: str | os.PathLike[str], flag: str = "w", *, readonly: bool | None = None,
         **options: Any) -> Dict | List:
    """Open the store at ``path`` as the :class:`Dict` or :class:`List` its MANIFEST says.

    ``flag`` has :mod:`dbm`'s meanings:

    - ``"r"``: read-only (the same as ``readonly=True``); the store must exist.
    - ``"w"`` (the default): read-write; the store must exist.
    - ``"c"``: read-write; a Dict store is created if there is none at ``path``.
    - ``"n"``: read-write; the store is emptied (one atomic batch of deletions), or
      created as a Dict if there is none.

    ``readonly=True`` is accepted as before and means ``"r"``. The other keyword
    ``options`` are :class:`Dict`'s and :class:`List`'s (``durability``, ``segment_size``,
    ``autocompact``, ``lock_timeout``, ``refresh_interval``, ``codec``: ``"c"`` and ``"n"``
    create a store with it, and a store recorded with another codec raises
    :class:`FormatError`).

    Raises ``FileNotFoundError`` (creating nothing) for ``"r"`` or ``"w"`` when there is
    no store at ``path``; :class:`FormatError` when ``path`` holds something else;
    :class:`LockedError` when another handle writes the store (not for ``"r"``);
    ``ValueError`` for an unknown flag or a flag that contradicts ``readonly``.
    """
    if not isinstance(flag, str) or flag not in _FLAGS:
        raise ValueError(f"pysos.open(): flag must be one of 'r', 'w', 'c', 'n' (as in dbm), "
                         f"not {flag!r}; other options are keywords, e.g. readonly=True")
    if readonly is not None:
        if readonly and flag in "cn":
            raise ValueError(f"pysos.open(): flag {flag!r} writes, but readonly=True was given")
        if not readonly and flag == "r":
            raise ValueError("pysos.open(): flag 'r' is read-only, but readonly=False was given")
        if readonly:
            flag = "r"
    directory = os.path.abspath(os.fspath(path))
    try:
        kind = recovery.existing_manifest(directory, None).kind
    except FileNotFoundError:
        if flag in "rw":
            raise
        kind = "dict"  # "c" and "n" create a Dict, as dbm creates a database
    cls: type[Dict] | type[List] = Dict if kind == "dict" else List
    store = cls(path, readonly=flag == "r", **options)
    if flag == "n":
        try:
            store.clear()
        except BaseException:
            store.close()
            raise
    return store


load = open  # pysos 1.3's name


def restore(
    url: str, directory: str | os.PathLike[str], at: str | float | _datetime | None = None
) -> _PlainDict[str, Any]:
    """Restore the replica at ``url`` (``s3://BUCKET/PREFIX``) into ``directory``.

    ``directory`` must not exist or be empty; ``at`` (ISO 8601 string, Unix timestamp or
    ``datetime``) restores the last commit at or before that time. Needs ``pysos[s3]``.
    See :mod:`pysos.replicate.restore`.
    """
    from .replicate.restore import restore as _restore

    return _restore(url, directory, at)

__all__ = [
    "CorruptionError",
    "Dict",
    "Error",
    "FormatError",
    "List",
    "LockedError",
    "ObserverError",
    "ReadOnlyError",
    "__version__",
    "check",
    "load",
    "open",
    "repair",
    "restore",
]
