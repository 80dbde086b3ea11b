"""The on-disk layer of pysos: one module per on-disk concept. Nothing here imports the
engine, the compactor or the collections above it.

- :mod:`.files`    the thin filesystem layer every file operation goes through; it opens
                   only regular files (no link followed, no FIFO blocked on)
- :mod:`.record`   one record = one checksummed JSON line: framing, the one record check,
                   batch markers, keys as the index holds them
- :mod:`.segment`  segment files: names (the one check of names read from disk),
                   creation, and the one scanner with the torn-tail rule
- :mod:`.index`    the location layout and the operations that fill the in-memory index
                   (apply a scan or a hint, remap after a compaction, live bytes)
- :mod:`.hints`    per-segment hint files for fast open: the format, reading (all of a
                   sealed segment, or the first bytes of the newest one, checked by CRC)
- :mod:`.hint_model` a hint's records in memory (keys, lengths, gaps, deadlines) and
                   the builder that assembles them in segment order
- :mod:`.hint_writer` the hints the writer writes from its index (at rotation, on close)
- :mod:`.manifest` the MANIFEST and its atomic replacement
- :mod:`.locks`    lock files (writer, compaction, manifest), released only by their taker
- :mod:`.recovery` what happens on open: finding or creating the MANIFEST, refusing what is
                   not a store, removing leftovers (the torn tail is cut by the engine's writer)
"""
