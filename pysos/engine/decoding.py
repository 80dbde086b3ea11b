"""Stores whose codec is not json: :meth:`Store.read` gives values decoded by the codec.

Every value a handle returns comes through :meth:`~pysos.engine.core.Store.read` (reads,
snapshot iterations, observers' old and new values), so decoding there covers them all.
A store whose MANIFEST names another codec becomes, once opened, an instance of a
subclass of its class that adds the decoding (:func:`decoding_class`): json stores keep
the plain ``read``, whose hot path is not touched.
"""

from __future__ import annotations

import functools
from typing import Any

from .. import codec as codecs
from ..errors import CorruptionError
from ..segments import recovery, segment
from ..segments.manifest import Manifest
from ..segments.index import OFFSET_MASK, OFFSET_SHIFT, SEGMENT_SHIFT


class Decoding:
    """Mixin over a Store class: values come back through the codec's ``from_plain``."""

    codec: str
    _path: Any

    def read(self, key: Any, location: int) -> Any:
        plain = super().read(key, location)  # type: ignore[misc]
        try:
            return codecs.get(self.codec).from_plain(plain)
        except codecs.TagError as exc:
            number, offset = location >> SEGMENT_SHIFT, (location >> OFFSET_SHIFT) & OFFSET_MASK
            raise CorruptionError(
                f"{self._path(segment.segment_name(number))}: the value of {key!r} at byte {offset} "
                f"does not decode with codec {self.codec!r}: {exc}"
            ) from None


@functools.lru_cache(maxsize=None)
def decoding_class(cls: type) -> type:
    """``cls`` (a Writer or a Reader) with :class:`Decoding`."""
    return type(cls.__name__, (Decoding, cls), {"__module__": cls.__module__, "__doc__": cls.__doc__})


def use_codec(store: Any, first: Manifest, codec: str | None) -> None:
    """Give a store being opened its codec: the one its MANIFEST ``first`` records (it never
    changes for a store). ``codec`` is what the caller expects: ``None`` takes the recorded
    one; another name than the recorded one raises :class:`pysos.FormatError` (a writer
    creating the store records ``codec``, see :func:`recovery.open_or_create`)."""
    recovery.check_codec(first, codec, store.directory)
    store.codec = first.codec
    if first.codec != "json":
        store.__class__ = decoding_class(type(store))
