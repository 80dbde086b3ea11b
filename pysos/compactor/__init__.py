"""Compaction: merge sealed segments and publish them with an atomic MANIFEST swap.

Three ways to run it, one at a time per store (the compaction lock decides):
``Dict.compact()`` / ``List.compact()`` on demand, the writer's background thread
(``autocompact=True``), and the daemon ``python -m pysos.compactor DIR``.
"""

from __future__ import annotations

from .merge import compact_directory


def compact_store(store) -> dict:
    """``compact()`` of an open writable store: seal, merge every sealed segment, adopt."""
    with store._lock:
        store.check_writable()
        store.seal()
    result = compact_directory(store.directory, segment_size=store.segment_size, wait=None)
    with store._lock:
        store.check_open()
        store.follow(force=True)
        store.last_compaction = result
    return result


__all__ = ["compact_directory", "compact_store"]
