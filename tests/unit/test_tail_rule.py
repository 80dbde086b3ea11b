"""One torn-tail rule, every path: open (writer and reader), follow, check, repair and the
compactor agree on a corpus of good, torn and damaged newest segments.

The rule (FORMAT.md): in the newest segment, damage after which no whole unit follows (a
record outside a batch, or a batch with its matching end) is a torn tail, cut by the next
writer; any other damage is corruption.
"""

import dataclasses
import os

import pytest

import pysos
from pysos.compactor import merge
from pysos.segments import manifest, record

A = record.encode_set(record.encode_key("a"), record.encode_value(1))
B = record.encode_set(record.encode_key("b"), record.encode_value(2))
BEGIN = record.BATCH_BEGIN_LINE
GARBAGE = b"this is not a record\n"

# name -> (bytes after A, outcome): ("torn", keys seen) or ("corrupt", byte offset of the damage)
CORPUS = {
    "whole": (B, ("torn", {"a": 1, "b": 2})),
    "whole batch": (BEGIN + B + record.encode_batch_end(1), ("torn", {"a": 1, "b": 2})),
    "line without its line feed": (B[:-1], ("torn", {"a": 1})),
    "half a line": (B[: len(B) // 2], ("torn", {"a": 1})),
    "zeroed end of a line": (B[:-5] + b"\x00\x00\x00\n", ("torn", {"a": 1})),
    "zeroed block (power loss)": (b"\x00" * 300, ("torn", {"a": 1})),
    "garbage then a lone batch begin (issue 12)": (GARBAGE + BEGIN, ("torn", {"a": 1})),
    "batch without its end": (BEGIN + B, ("torn", {"a": 1})),
    "batch with a garbled end": (BEGIN + B + GARBAGE, ("torn", {"a": 1})),
    "batch end with the wrong count": (BEGIN + B + record.encode_batch_end(2), ("torn", {"a": 1})),
    "garbage then a record": (GARBAGE + B, ("corrupt", len(A))),
    "garbage then a whole batch": (GARBAGE + BEGIN + B + record.encode_batch_end(1), ("corrupt", len(A))),
    "garbage, a record, a torn line": (GARBAGE + B + B[:9], ("corrupt", len(A))),
    "a lone batch end then a record": (record.encode_batch_end(1) + B, ("corrupt", len(A))),
}


def _make_store(path, tail: bytes) -> str:
    """A Dict store whose newest (only) segment holds A then ``tail``; returns the segment path."""
    with pysos.Dict(path, autocompact=False) as d:
        d["a"] = 1
    newest = os.path.join(path, manifest.read(str(path)).segments[-1])
    with open(newest, "ab") as f:
        f.write(tail)
    return newest


@pytest.mark.parametrize("case", list(CORPUS))
def test_every_path_agrees_on_the_newest_segment(tmp_path, case):
    """Writer open, reader open, a reader's follow, check, repair and the compactor's scan
    all call the same bytes a torn tail (and see the same keys) or corruption (at the same byte)."""
    tail, (outcome, expected) = CORPUS[case]

    # check(), which changes nothing
    path = tmp_path / "store"
    newest = _make_store(path, tail)
    errors = [p for p in pysos.check(path) if p["severity"] == "error"]
    torn_warnings = [p for p in pysos.check(path) if "torn tail" in p["problem"]]
    # the compactor's view of the newest segment (the daemon estimates from it)
    keys = merge.segment_keys(str(path), os.path.basename(newest), "dict", newest=True)
    # a reader, opening
    if outcome == "torn":
        assert errors == []
        assert [p["offset"] for p in torn_warnings] == ([len(A)] if len(expected) == 1 else [])
        assert keys == {"a"} | set(expected)
        with pysos.Dict(path, readonly=True) as r:
            assert dict(r.items()) == expected
    else:
        assert [p["offset"] for p in errors][:1] == [expected]
        with pytest.raises(pysos.CorruptionError, match=f"at byte {expected}"):
            pysos.Dict(path, readonly=True)

    # a reader that was open before the tail was written, following it
    path = tmp_path / "followed"
    with pysos.Dict(path, autocompact=False) as d:
        d["a"] = 1
    with pysos.Dict(path, readonly=True) as r:
        assert dict(r.items()) == {"a": 1}
        with open(os.path.join(path, manifest.read(str(path)).segments[-1]), "ab") as f:
            f.write(tail)
        if outcome == "torn":
            assert dict(r.items()) == expected
        else:
            with pytest.raises(pysos.CorruptionError, match=f"at byte {expected}"):
                len(r)

    # repair keeps exactly the records of whole units: for a torn tail, what a writer sees
    path = tmp_path / "repaired"
    _make_store(path, tail)
    pysos.repair(path)
    with pysos.Dict(path, readonly=True) as r:
        repaired = dict(r.items())
    if outcome == "torn":
        assert repaired == expected

    # a writer, opening: cuts a torn tail to the end of the last whole unit, or refuses
    path = tmp_path / "written"
    newest = _make_store(path, tail)
    if outcome == "torn":
        with pysos.Dict(path, autocompact=False) as d:
            assert dict(d.items()) == expected
        assert os.path.getsize(newest) == len(A) + (len(tail) if len(expected) == 2 else 0)
        assert pysos.check(path) == []
    else:
        with pytest.raises(pysos.CorruptionError, match=f"at byte {expected}"):
            pysos.Dict(path, autocompact=False)
        assert os.path.getsize(newest) == len(A) + len(tail)  # nothing cut


@pytest.mark.parametrize("case", list(CORPUS))
def test_in_a_sealed_segment_all_damage_is_corruption(tmp_path, case):
    """A sealed segment has no torn tail: opening and the compactor's merge refuse any damage."""
    tail, _ = CORPUS[case]
    path = tmp_path / "store"
    with pysos.Dict(path, autocompact=False) as d:
        d["a"] = 1
        d._store.seal()
        d["c"] = 3
    current = manifest.read(str(path))
    sealed = os.path.join(path, current.segments[0])
    with open(sealed, "ab") as f:
        f.write(tail)
    manifest.write(str(path), dataclasses.replace(current, sealed_sizes=(len(A) + len(tail),)))
    damaged = CORPUS[case][1] != ("torn", {"a": 1, "b": 2})
    if damaged:
        with pytest.raises(pysos.CorruptionError):
            pysos.Dict(path, readonly=True)
        with pytest.raises(pysos.CorruptionError):
            merge.segment_keys(str(path), current.segments[0], "dict", newest=False)
        assert any(p["severity"] == "error" for p in pysos.check(path))
    else:
        with pysos.Dict(path, readonly=True) as r:
            assert dict(r.items()) == {"a": 1, "b": 2, "c": 3}
        assert pysos.check(path) == []
