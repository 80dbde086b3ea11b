"""The index a closed store holds instead of its own: any use raises (see ``Store.close``)."""

from __future__ import annotations

from typing import Any


class _ClosedIndex(dict):
    """The index of a closed store: any use raises the closed store's ``ValueError``."""

    def _closed(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("I/O operation on closed pysos store")

    __getitem__ = __setitem__ = __delitem__ = __contains__ = __iter__ = __len__ = __reversed__ = _closed
    get = pop = keys = values = items = update = setdefault = popitem = clear = copy = _closed


CLOSED_INDEX = _ClosedIndex()
