"""Compaction: merge sealed segments and publish them with an atomic MANIFEST swap.

Three ways to run it, one at a time per store (the compaction lock decides):
``Dict.compact()`` / ``List.compact()`` on demand, the writer's background thread
(``autocompact=True``), and the daemon ``python -m pysos.compactor DIR``.

- :mod:`.plan`       when to compact and which segments to merge (pure functions)
- :mod:`.merge`      one merge, its atomic MANIFEST swap, and the full compaction
- :mod:`.index_merge` the thread's merge, from the writer's index (no parsing)
- :mod:`.throttle`   the optional write-rate limit, and stopping a merge half-way
- :mod:`.background` the writer's thread
- :mod:`.daemon`     the watcher behind ``python -m pysos.compactor``
"""

from __future__ import annotations

from .merge import compact_all, compact_directory, nothing_done


def compact_store(store) -> dict:
    """``compact()`` of an open writer (:class:`pysos.engine.Writer`): seal, merge every
    sealed segment, adopt.

    The merges are bounded (see :func:`.merge.compact_all`), so even a full compaction
    never needs much more disk than the store already uses. A store without dead bytes
    (the writer's figure is exact) is left alone: nothing sealed, nothing written,
    ``reclaimed_bytes`` 0 at once.
    """
    with store.lock:
        store.check_writable()
        store.enter(write=True)  # follow the files, and drop expired keys: their records are dead
        if store.stats()["dead_bytes"] == 0:  # exact for a writer: nothing to reclaim, write nothing
            result = nothing_done(store.manifest)
            store.last_compaction = result
            return result
        store.seal()
    result = compact_all(
        store.directory, segment_size=store.segment_size, wait=None, identity=store.identity, if_reclaimable=False
    )
    with store.lock:
        store.adopt_compaction(result)
    return result


__all__ = ["compact_all", "compact_directory", "compact_store"]
