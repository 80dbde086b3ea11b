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

from ._check import check, repair
from .dict import Dict
from .errors import CorruptionError, Error, FormatError, LockedError, ReadOnlyError
from .list import List
from .segments import recovery

__version__ = "2.0.0.dev0"


def open(path: str | os.PathLike, readonly: bool = False, **options) -> Dict | List:
    """Open an existing store as the Dict or List its MANIFEST says it is.

    Raises ``FileNotFoundError`` (creating nothing) when there is no store at ``path``.
    """
    kind = recovery.existing_manifest(os.path.abspath(os.fspath(path)), None).kind
    cls = Dict if kind == "dict" else List
    return cls(path, readonly=readonly, **options)


load = open  # pysos 1.3's name


def restore(url: str, directory: str | os.PathLike, at=None) -> dict:
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
    "ReadOnlyError",
    "__version__",
    "check",
    "load",
    "open",
    "repair",
    "restore",
]
