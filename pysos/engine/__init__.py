"""The engine under Dict and List: a directory of segments, an in-memory index, one writer.

A store maps keys to JSON values. ``Dict`` uses it as it is; ``List`` stores each item
under a *position key* and keeps the order beside it (it hears index rebuilds through
the hooks it passes at construction). Imports point downward only::

    dict.py, list.py -> _handle.py -> engine (writer, reader -> core -> fileset)
                                   -> compactor (background, merge, plan)
    engine, compactor, _check -> segments (index, hints, manifest, segment -> record, files)

- :mod:`.core`    :class:`Store`: opening (building the index), adopting a new MANIFEST,
                  reads, snapshot iterations, the closed/follow gate, closing, stats
- :mod:`.writer`  :class:`Writer`: appends, batches, rotation, the compaction thread's interface
- :mod:`.reader`  :class:`Reader`: following the writer (new MANIFEST, new records)
- :mod:`.fileset` the open segment files: fds, maps, pins, the finalizer
- :mod:`.belonging` a handle belongs to its process (fork) and its directory (device, inode)
- :mod:`.expiry`  :class:`Expiry` (a part of Store): keys leave the index at their deadline
- :mod:`.closed`  the index of a closed store, which refuses any use
"""

from __future__ import annotations

from .core import DEFAULT_SEGMENT_SIZE, DURABILITIES, Store
from .reader import Reader
from .writer import Writer

__all__ = ["DEFAULT_SEGMENT_SIZE", "DURABILITIES", "Reader", "Store", "Writer"]
