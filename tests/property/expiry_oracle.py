"""What every merge of an expiring store must write, checked at each merge the compactors make.

:class:`MergeChecker` wraps the compactor's two merges (``merge.merge_run`` and
``index_merge.merge_live``) wherever they are called from (``compact()``, the writer's
thread, the daemon, a chosen run) and compares each merge's outputs with what its inputs
say, by the compactor's wall clock at the merge:

- a key whose newest record in the run is a live set (no deadline, or one still ahead)
  and that no later segment overrides: exactly that record, byte for byte;
- a key whose newest record in the run is a tombstone or an expired set, that no later
  segment overrides: a tombstone if a segment *before* the run holds the key (else the
  older value would come back), nothing otherwise (nothing older can resurface);
- a key a later segment holds: nothing;
- a key at most once, and beside each output a usable hint that lists its records in
  order with each one's deadline exactly as the record holds it (``null`` for a record
  that never expires and for a tombstone): opening and the writer's adoption of the
  merge take deadlines from it without parsing a record.

:func:`garbage` lists the records of the sealed segments that a merge of all of them
would drop: after a full compaction there must be none.
"""

from __future__ import annotations

import os

import orjson

from pysos.compactor import index_merge, merge
from pysos.segments import files, hints, manifest, record, segment


def records(directory: str, name: str) -> list[tuple[str, object, bytes]]:
    """``(kind, key, line)`` of each record of a segment, in order."""
    fd = files.open_read(os.path.join(directory, name))
    try:
        return [(kind, key, line) for kind, key, _, line in segment.Scanner(fd)]
    finally:
        files.close(fd)


def keys_of(directory: str, names) -> set:
    found: set = set()
    for name in names:
        found.update(key for _, key, _ in records(directory, name))
    return found


def deadline_of(line: bytes):
    """The record's ``"x"`` by a whole JSON parse: not :func:`record.expiry_of` (which
    parses the number alone), so that the oracle does not share its code."""
    return orjson.loads(line).get("x")


def _live_set(kind: str, line: bytes, now: float) -> bool:
    if kind != record.SET:
        return False
    deadline = deadline_of(line)
    return deadline is None or deadline > now


class MergeChecker:
    """Checks every merge made while installed (see the module docstring); ``merges``
    counts them. :meth:`restore` puts the real merges back."""

    def __init__(self, clock):
        self.clock = clock
        self.merges = 0
        self._saved = real_run, real_live = merge.merge_run, index_merge.merge_live

        def merge_run(directory, current, start, stop, **options):
            expected = self._expect(directory, current, start, stop)
            result = real_run(directory, current, start, stop, **options)
            self._check(directory, result, *expected)
            return result

        def merge_live(directory, current, stop, live, **options):
            expected = self._expect(directory, current, 0, stop)
            result = real_live(directory, current, stop, live, **options)
            self._check(directory, result, *expected)
            return result

        merge.merge_run, index_merge.merge_live = merge_run, merge_live

    def restore(self) -> None:
        merge.merge_run, index_merge.merge_live = self._saved

    def _expect(self, directory, current, start, stop):
        names = current.segments
        newest_in_run: dict = {}
        for name in names[start:stop]:
            for kind, key, line in records(directory, name):
                newest_in_run[key] = (kind, line)
        return (keys_of(directory, names[:start]), keys_of(directory, names[stop:]), newest_in_run,
                self.clock.wall(), current.kind)

    def _check(self, directory, result, earlier, later, newest_in_run, now, kind) -> None:
        self.merges += 1
        written: dict = {}
        for name in result["outputs"]:
            output = records(directory, name)
            for what, key, line in output:
                assert key not in written, f"{key!r} written twice by one merge"
                written[key] = (what, line)
            _check_hint(directory, name, output, kind)
        for key, (kind, line) in newest_in_run.items():
            if key in later:
                expected = None  # a later record wins: nothing to keep
            elif _live_set(kind, line, now):
                expected = (record.SET, line)
            elif key in earlier:
                expected = (record.DELETE,)  # an older record of the key must stay hidden
            else:
                expected = None  # dead, and nothing older can resurface: no tombstone
            got = written.pop(key, None)
            if expected is not None and expected[0] == record.DELETE and got is not None:
                got = got[:1]
            assert got == expected, (
                f"merge wrote {got!r} for {key!r}, expected {expected!r} (newest in run: {line!r}, "
                f"in an earlier segment: {key in earlier}, in a later one: {key in later}, now {now})"
            )
        assert not written, f"merge wrote records of keys not in its run: {sorted(written, key=repr)}"


def _check_hint(directory: str, name: str, output: list, kind: str) -> None:
    """The output's hint lists its records, each with the deadline the record holds."""
    size = os.path.getsize(os.path.join(directory, name))
    hint = hints.read(os.path.join(directory, segment.hint_name(name)), name, size, kind)
    assert hint is not None, f"merge output {name} has no usable hint"
    expected = [
        (key, len(line) if what == record.SET else -len(line), deadline_of(line) if what == record.SET else None)
        for what, key, line in output
    ]
    listed = list(zip(hint.keys, hint.lengths, hint.deadlines or [None] * len(hint.keys)))
    assert listed == expected, f"the hint of {name} lists {listed!r}, its records are {expected!r}"
    assert hint.gaps == [], f"the hint of {name} has gaps {hint.gaps!r}: a merge output has none"


def garbage(directory: str, now: float) -> list:
    """The records of the sealed segments a merge of all of them (from the oldest) would
    drop: tombstones, expired sets, records a later record of their key overrides."""
    names = manifest.read(directory).segments
    newer = keys_of(directory, names[-1:])
    found = []
    for name in reversed(names[:-1]):
        for kind, key, line in reversed(records(directory, name)):
            if key in newer or not _live_set(kind, line, now):
                found.append((name, kind, key, line))
            newer.add(key)
    return found
