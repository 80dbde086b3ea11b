"""The on-disk layer of pysos: one module per on-disk concept.

- :mod:`.files`    the thin filesystem layer every file operation goes through
- :mod:`.record`   one record = one checksummed JSON line; batch framing
- :mod:`.segment`  segment files: names, appending, reading, scanning
- :mod:`.hints`    per-segment hint files for fast open
- :mod:`.manifest` the MANIFEST and its atomic replacement
- :mod:`.index`    the in-memory key -> location map
- :mod:`.locks`    lock files (writer, compaction, manifest)
- :mod:`.recovery` what happens on open: tail repair, stray-file cleanup
"""
