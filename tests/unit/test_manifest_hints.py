"""The MANIFEST (atomic, checksummed) and hint files (trusted only when they match)."""

import os
import random
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pysos
from pysos.compactor import merge
from pysos.errors import CorruptionError, FormatError
from pysos.segments import files, hints, index, manifest, segment
from strategies import KEY_POOL
from pysos.segments.manifest import Manifest


def test_manifest_round_trips(tmp_path):
    """A written MANIFEST reads back equal, as one line of JSON."""
    m = Manifest("list", 7, ("seg-00000003.jsonl", "seg-00000009.jsonl"), (812,))
    manifest.write(str(tmp_path), m)
    assert manifest.read(str(tmp_path)) == m
    assert (tmp_path / "MANIFEST").read_bytes().count(b"\n") == 1


def test_manifest_swap_leaves_no_temp_file_and_changes_the_stamp(tmp_path):
    """Replacing the MANIFEST is a rename over it: no temp file stays, the stamp changes."""
    manifest.write(str(tmp_path), Manifest("dict", 1, ("seg-00000001.jsonl",), ()))
    before = manifest.stamp(str(tmp_path))
    manifest.write(str(tmp_path), Manifest("dict", 2, ("seg-00000002.jsonl",), ()))
    assert manifest.stamp(str(tmp_path)) != before
    assert sorted(os.listdir(tmp_path)) == ["MANIFEST"]
    assert manifest.read(str(tmp_path)).generation == 2


def test_a_failed_swap_keeps_the_old_manifest(tmp_path, monkeypatch):
    """If the rename fails, the old MANIFEST stays whole and the temp file is removed."""
    manifest.write(str(tmp_path), Manifest("dict", 1, ("seg-00000001.jsonl",), ()))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "replace", broken_replace)
    with pytest.raises(OSError):
        manifest.write(str(tmp_path), Manifest("dict", 2, ("seg-00000002.jsonl",), ()))
    assert manifest.read(str(tmp_path)).generation == 1
    assert sorted(os.listdir(tmp_path)) == ["MANIFEST"]


def test_garbled_manifest_is_corruption(tmp_path):
    """A MANIFEST whose checksum fails, or that is cut short, raises CorruptionError."""
    manifest.write(str(tmp_path), Manifest("dict", 12, ("seg-00000001.jsonl",), ()))
    data = (tmp_path / "MANIFEST").read_bytes()
    (tmp_path / "MANIFEST").write_bytes(data.replace(b'"generation":12', b'"generation":13'))
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))
    (tmp_path / "MANIFEST").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))


def test_unknown_version_is_a_format_error(tmp_path):
    """A MANIFEST of a future format version raises FormatError naming the version."""
    (tmp_path / "MANIFEST").write_bytes(b'{"format":"pysos","version":99}\n')
    with pytest.raises(FormatError, match="99"):
        manifest.read(str(tmp_path))


def test_hint_round_trip_and_mismatch(tmp_path):
    """A hint reads back when it matches its segment's size, and is ignored when it does not."""
    hint = hints.Hint(["a", 2, None, "gone"], [10, 20, 30, -7], [[1, 5], [4, 51]])  # 123 bytes in all
    hints.write(str(tmp_path), "seg-00000001.jsonl", 123, hint, "seg-00000001.hint")
    path = str(tmp_path / "seg-00000001.hint")
    assert hints.read(path, "seg-00000001.jsonl", 123, "dict") == hint
    assert hints.read(path, "seg-00000001.jsonl", 124, "dict") is None
    assert hints.read(path, "seg-00000002.jsonl", 123, "dict") is None


def test_hint_offsets_follow_lengths_and_gaps():
    """Each record starts where the one before it ends plus the gap listed before it;
    tombstones take their bytes but give no location."""
    hint = hints.Hint(["a", "b", "c", "d"], [10, -4, 20, 30], [[0, 3], [2, 5], [4, 8]])
    base = index.segment_base(7)
    assert list(hint.live(base)) == [
        ("a", index.pack(7, 3, 10)),
        ("c", index.pack(7, 3 + 10 + 4 + 5, 20)),
        ("d", index.pack(7, 3 + 10 + 4 + 5 + 20, 30)),
    ]
    assert list(hint.tombstones()) == ["b"]
    assert list(hints.Hint(["x", "y"], [4, 6], []).live()) == [("x", 4), ("y", (4 << 32) | 6)]


def test_damaged_hint_is_ignored(tmp_path):
    """A hint with a flipped byte fails its checksum and is not used."""
    hints.write(str(tmp_path), "seg-00000001.jsonl", 5, hints.Hint(["a"], [5], []), "seg-00000001.hint")
    path = tmp_path / "seg-00000001.hint"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    assert hints.read(str(path), "seg-00000001.jsonl", 5, "dict") is None


def _checksummed(lines: list[bytes], version=2, records=None, size=100) -> bytes:
    """A hint file with these body lines and a valid checksum over them."""
    body = b"".join(line + b"\n" for line in lines)
    header = {"c": "%08x" % zlib.crc32(body), "records": records, "segment": "seg-00000001.jsonl",
              "segment_bytes": size, "version": version}
    return orjson.dumps(header) + b"\n" + body


def test_version_1_hint_is_not_used():
    """A hint of the old format (offset << 32 | length, tombstones apart) is ignored, saying why."""
    old = _checksummed([b'["a","b"]', b"[40,180388626492]", b'["c"]'], version=1, records=2, size=60)
    assert hints.decode(old, "seg-00000001.jsonl", 60, "dict") == "it is of format version 1, not 2 or 3"


@pytest.mark.parametrize("kind, lines, records", [
    ("dict", [b"[]", b'["a","b"]', b"[40,50]"], 2),                  # 90 bytes described, the segment has 100
    ("dict", [b"[]", b'["a","b"]', b"[40,70]"], 2),                  # 110 bytes: past the segment's end
    ("dict", [b"[[1,5],[1,5]]", b'["a","b"]', b"[40,50]"], 2),       # two gaps at one place
    ("dict", [b"[[2,5],[1,5]]", b'["a","b"]', b"[40,50]"], 2),       # gaps out of order
    ("dict", [b"[[0,-10],[2,20]]", b'["a","b"]', b"[40,50]"], 2),    # a negative gap
    ("dict", [b"[[3,10]]", b'["a","b"]', b"[40,50]"], 2),            # a gap after the end
    ("dict", [b"[]", b'["a","b"]', b"[40.5,59.5]"], 2),              # lengths that are not integers
    ("dict", [b"[]", b'["a","b"]', b'[40,"60"]'], 2),
    ("dict", [b"[]", b'["a",["b"]]', b"[40,60]"], 2),                # keys no Dict holds
    ("dict", [b"[]", b'["a",[1,2]]', b"[40,60]"], 2),
    ("dict", [b"[]", b'["a",{"b":1}]', b"[40,60]"], 2),
    ("list", [b"[]", b'[1,"b"]', b"[40,60]"], 2),                    # keys no List holds
    ("list", [b"[]", b"[1,[2,0.5]]", b"[40,60]"], 2),
    ("list", [b"[]", b"[1,[]]", b"[40,60]"], 2),
    ("list", [b"[]", b"[1,true]", b"[40,60]"], 2),
    ("dict", [b"[]", b'["a","b"]', b"[40,60]"], 3),                  # a wrong record count
    ("dict", [b"[]", b'["a"]', b"[40,60]"], 1),                      # keys and lengths disagree
    ("dict", [b"[]", b'["a","b"]', b"[40]", b"[]", b"[60]"], 2),     # ... within a pair of lines
    ("dict", [b"[]", b'["a","b"]'], 2),                              # the lengths are missing
    ("dict", [b"[]", b'{"a":1}', b"[100]"], 1),                      # not arrays
])
def test_checksummed_but_inconsistent_hint_is_not_used(kind, lines, records):
    """A hint whose checksum matches but whose lines do not describe exactly the segment's
    bytes, in records a store of its kind can index, is refused as a whole: nothing of it is applied."""
    assert type(hints.decode(_checksummed(lines, records=records), "seg-00000001.jsonl", 100, kind)) is str
    goods = {"dict": [b'["a[1]",null]', b"[1,2.5]"], "list": [b"[-3,[4,0]]", b"[-3,40]"]}[kind]  # '[' in a string is no array
    for good in goods:
        decoded = hints.decode(_checksummed([b"[[2,10]]", good, b"[40,-50]"], records=2), "seg-00000001.jsonl", 100, kind)
        assert decoded == hints.Hint(orjson.loads(good), [40, -50], [[2, 10]])


@pytest.mark.parametrize("lines, records", [
    ([b"[]", b'["a","b"]', b"[40,60]"], 2),                            # the deadlines are missing
    ([b"[]", b'["a","b"]', b"[40,60]", b"[1.5]"], 2),                  # fewer deadlines than keys
    ([b"[]", b'["a","b"]', b"[40,60]", b'[1.5,"2"]'], 2),              # a deadline that is not a number
    ([b"[]", b'["a","b"]', b"[40,60]", b"[1.5,true]"], 2),
    ([b"[]", b'["a","b"]', b"[40,60]", b"[1.5,[2]]"], 2),
    ([b"[]", b'["a","b"]', b"[40,-60]", b"[null,7]"], 2),              # a tombstone with a deadline
    ([b"[]", b'["a"]', b"[40]", b"[1]", b'["b"]', b"[60]"], 2),        # the second part's deadlines missing
])
def test_version_3_hint_with_bad_deadlines_is_not_used(lines, records):
    """A version 3 hint (a line of deadlines after each pair) is refused as a whole if a
    deadline line is missing, too short, holds anything but numbers and null, or gives a
    tombstone a deadline."""
    found = hints.decode(_checksummed(lines, version=3, records=records), "seg-00000001.jsonl", 100, "dict")
    assert type(found) is str, found


def test_version_3_hint_round_trips_deadlines_across_parts(monkeypatch):
    """Deadlines are written a line per pair (bounded like the others) and read back exactly,
    in every part a streaming open reads; an integer deadline is read as written; a hint
    whose records never expire is written as version 2 (which every pysos 2 reads)."""
    monkeypatch.setattr(hints, "RECORDS_PER_LINE", 4)
    scanned = [("set", f"k{i}", i * 10, 10, 1764489600.125 + i if i % 3 else None) for i in range(9)]
    scanned.append(("delete", "k1", 90, 10, None))
    hint = hints.from_records(scanned, 100)
    assert hint.keys[-1] == "k1" and hint.deadlines[-1] is None
    data = hints.encode("seg-00000001.jsonl", 100, hint)
    assert orjson.loads(data.split(b"\n")[0])["version"] == 3
    assert data.count(b"\n") == 1 + 1 + 3 * 3  # header, gaps, 3 triples (4 + 4 + 1 records)
    decoded = hints.decode(data, "seg-00000001.jsonl", 100, "dict")
    assert decoded == hint and list(decoded.expiring()) == [(k, d) for _, k, _, _, d in scanned[:9] if d is not None and k != "k1"]
    parts = list(hints._parts(iter(data.split(b"\n", 1)[1].splitlines(keepends=True)),
                              orjson.loads(data.split(b"\n")[0]), 100, "dict", []))
    assert [d for part in parts for d in part.deadlines] == hint.deadlines
    assert hints.decode(_checksummed([b"[]", b'["a"]', b"[100]", b"[17]"], version=3, records=1),
                        "seg-00000001.jsonl", 100, "dict").deadlines == [17]
    plain = hints.from_records([("set", "a", 0, 100, None)], 100)
    assert plain.deadlines is None and b'"version":2' in hints.encode("seg-00000001.jsonl", 100, plain)


def test_long_hints_are_written_in_lines_of_bounded_size(monkeypatch):
    """Keys and lengths go in pairs of lines of at most RECORDS_PER_LINE records, so a reader
    never parses one huge line; any split reads back the same."""
    hint = hints.from_records([("set", f"k{i}", i * 10, 10) for i in range(10)], 100)
    monkeypatch.setattr(hints, "RECORDS_PER_LINE", 4)
    data = hints.encode("seg-00000001.jsonl", 100, hint)
    assert data.count(b"\n") == 1 + 1 + 2 * 3  # header, gaps, 3 pairs (4 + 4 + 2 records)
    assert hints.decode(data, "seg-00000001.jsonl", 100, "dict") == hint


def test_builder_refuses_records_out_of_order():
    """Records must be added in segment order without overlap: a hint cannot be built wrong."""
    builder = hints.Builder()
    builder.add("a", 0, 10)
    with pytest.raises(ValueError):
        builder.add("b", 5, 10)
    with pytest.raises(ValueError):
        builder.hint(8)


_records = st.lists(
    st.tuples(st.sampled_from(["set", "delete", "marker"]), st.sampled_from(KEY_POOL), st.integers(1, 300)),
    max_size=40,
)


_deadlines = st.none() | st.floats(0, 2e10, allow_nan=False) | st.integers(0, 2**62)


@settings(max_examples=300, deadline=None)
@given(_records, st.integers(0, 50), st.lists(_deadlines, min_size=40, max_size=40))
def test_hint_encoding_round_trips_every_location(records, tail, deadlines):
    """For any run of sets (expiring or not), tombstones and other lines (overwritten records,
    batch markers), the hint built from a scan encodes, decodes and gives back exactly the
    offset and length of each key's newest record, the keys whose newest record is a
    tombstone, and the deadline of each newest set that expires."""
    scanned, offset = [], 0
    for (kind, key, length), deadline in zip(records, deadlines):
        if kind != "marker":  # a marker's bytes belong to no key: a gap
            scanned.append((kind, key, offset, length, deadline if kind == "set" else None))
        offset += length
    size = offset + tail
    newest = {}
    for kind, key, at, length, deadline in scanned:
        newest.pop(key, None)
        newest[key] = (kind, at, length, deadline)
    hint = hints.from_records(scanned, size)
    data = hints.encode("seg-00000001.jsonl", size, hint)
    decoded = hints.decode(data, "seg-00000001.jsonl", size, "dict")
    assert decoded == hint
    base = index.segment_base(3)
    live = [(k, index.pack(3, at, length)) for k, (kind, at, length, _) in newest.items() if kind == "set"]
    assert [(k, loc) for k, loc in decoded.live(base)] == live
    assert list(decoded.tombstones()) == [k for k, (kind, _, _, _) in newest.items() if kind == "delete"]
    expiring = [(k, d) for k, (kind, _, _, d) in newest.items() if kind == "set" and d is not None]
    assert list(decoded.expiring()) == expiring
    assert all(type(got) is type(d) for (_, got), (_, d) in zip(decoded.expiring(), expiring))
    assert (b'"version":3' in data.split(b"\n")[0]) == bool(expiring)


def test_manifest_without_sealed_sizes_is_corruption(tmp_path):
    """Every sealed segment must have a recorded size; a MANIFEST missing one is refused."""
    bad = Manifest("dict", 3, ("seg-00000001.jsonl", "seg-00000002.jsonl"), ())
    (tmp_path / "MANIFEST").write_bytes(manifest.encode(bad))
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))


def test_rotation_and_compaction_keep_sizes_in_step():
    """rotated() records the sealed size; replace_run() swaps sizes with their segments."""
    a, b, c, d = (f"seg-0000000{i}.jsonl" for i in (1, 2, 3, 4))
    m = Manifest("dict", 1, (a,), (), 2).rotated(100, b).rotated(200, c)
    assert m.sealed_sizes == (100, 200) and m.size_of(c) is None and m.generation == 3
    merged = m.replace_run(0, 2, [d], [150])
    assert merged.segments == (d, c) and merged.sealed_sizes == (150,)
    with pytest.raises(ValueError):
        m.replace_run(1, 2, [d], [1])


def test_segment_numbers_never_go_back():
    """next_number only grows, even when a merge retires the highest-numbered segment."""
    m = Manifest("dict", 1, ("seg-00000001.jsonl",), (), 2).rotated(10, "seg-00000002.jsonl")
    m = m.rotated(10, "seg-00000003.jsonl")
    emptied = m.replace_run(1, 1, [], [])  # a merge that kept nothing of seg 2
    assert emptied.next_number == 4
    assert m.replace_run(0, 2, ["seg-00000007.jsonl"], [5]).next_number == 8


def _churn(handle_class, path, seed):
    """A closed store of many small sealed segments: overwrites, deletes, batches, and for a
    List inserts in the middle (array position keys)."""
    rng = random.Random(seed)
    with handle_class(path, segment_size=700, autocompact=False) as s:
        for step in range(400):
            if handle_class is pysos.List:
                if len(s) and rng.random() < 0.3:
                    del s[rng.randrange(len(s))]
                else:
                    s.insert(rng.randrange(len(s) + 1), "v" * rng.randrange(40))
            elif rng.random() < 0.1:
                with s.batch():
                    for _ in range(3):
                        s[f"k{rng.randrange(30)}"] = step
            elif rng.random() < 0.3:
                s.pop(f"k{rng.randrange(30)}", None)
            else:
                s[f"k{rng.randrange(30)}"] = "x" * rng.randrange(60)


def _index_and_contents(handle_class, path, readonly):
    """The index, the contents and the live bytes a fresh handle reports (checked against its index)."""
    with handle_class(path, readonly=readonly, autocompact=False) as s:
        locations = dict(s._store.index)
        live = s.stats()["live_bytes"]
        assert live == sum(index.length_of(loc) for loc in locations.values())
        return locations, (dict(s.items()) if handle_class is pysos.Dict else list(s)), live


def _write_hints_from_scans(path):
    """A hint for every sealed segment, made from a scan: gaps where older records and batch
    markers sit, tombstones among the records."""
    current = manifest.read(str(path))
    for name in current.segments[:-1]:
        fd = files.open_read(os.path.join(path, name))
        try:
            size = files.size(fd)
            hint = hints.from_records(
                ((kind, _hashable(key), offset, len(line)) for kind, key, offset, line in segment.Scanner(fd, 0, size)),
                size,
            )
        finally:
            files.close(fd)
        hints.write(str(path), name, size, hint, segment.hint_name(name))


def _hashable(key):
    return tuple(key) if type(key) is list else key


def _drop_hints(path):
    for name in os.listdir(path):
        if segment.is_hint_name(name):
            os.unlink(os.path.join(path, name))


@pytest.mark.parametrize("handle_class", [pysos.Dict, pysos.List])
@pytest.mark.parametrize("readonly", [False, True])
def test_hinted_open_equals_a_full_scan(store_path, handle_class, readonly):
    """Hints of churned segments (gaps of older records and batch markers, tombstones between
    records) give the very index a full scan gives, location for location; check() agrees."""
    _churn(handle_class, store_path, seed=1)
    assert len(manifest.read(str(store_path)).segments) > 10
    _write_hints_from_scans(store_path)
    hints_written = [n for n in os.listdir(store_path) if segment.is_hint_name(n)]
    kind = manifest.read(str(store_path)).kind
    assert any(hints.read(str(store_path / n), n[:-5] + ".jsonl",
                          (store_path / (n[:-5] + ".jsonl")).stat().st_size, kind).gaps for n in hints_written)
    assert pysos.check(store_path) == []
    hinted = _index_and_contents(handle_class, store_path, readonly)
    _drop_hints(store_path)
    assert _index_and_contents(handle_class, store_path, readonly) == hinted


@pytest.mark.parametrize("handle_class", [pysos.Dict, pysos.List])
def test_hints_of_a_merge_that_keeps_tombstones_equal_a_full_scan(store_path, handle_class):
    """A merge of all but the oldest segment keeps tombstones among its records; its outputs'
    hints give the index a scan gives, and a reader that follows the merge remaps to it."""
    _churn(handle_class, store_path, seed=2)
    with handle_class(store_path, readonly=True) as reader:  # loaded before the merge
        result = merge.compact_directory(str(store_path), segment_size=400,
                                         choose=lambda d, m: (1, len(m.segments) - 1))
        assert result["segments_out"] > 1
        outputs = [hints.read(str(store_path / segment.hint_name(n)), n, (store_path / n).stat().st_size,
                              manifest.read(str(store_path)).kind) for n in result["outputs"]]
        assert all(outputs) and any(list(h.tombstones()) for h in outputs)
        reader._store.follow(force=True)  # adopts the swap: _remap from the hints
        followed = dict(reader._store.index)
    assert pysos.check(store_path) == []
    hinted = _index_and_contents(handle_class, store_path, readonly=True)
    assert hinted[0] == followed
    _drop_hints(store_path)
    assert _index_and_contents(handle_class, store_path, readonly=True) == hinted


def test_format_md_hint_example_is_a_valid_hint():
    """The example in FORMAT.md decodes, and its records sit where its prose says."""
    text = (Path(__file__).parents[2] / "FORMAT.md").read_text()
    section = text[text.index("## Hint files"):]
    example = section[section.index("```\n") + 4 : section.index("\n```", section.index("```\n") + 4)]
    hint = hints.decode(example.encode() + b"\n", "seg-00000004.jsonl", 579, "dict")
    assert isinstance(hint, hints.Hint)
    assert [(k, loc >> 32, loc & index.LENGTH_MASK) for k, loc in hint.live()] == [
        ("apple", 0, 120), ("pear", 120, 96), ("fig", 359, 110)]
    assert list(hint.tombstones()) == ["plum"]
    versioned = section[section.index("### Deadlines in hints"):]
    start = versioned.index("```\n") + 4
    example = versioned[start : versioned.index("\n```", start)]
    hint = hints.decode(example.encode() + b"\n", "seg-00000009.jsonl", 180, "dict")
    assert isinstance(hint, hints.Hint), hint
    assert list(hint.expiring()) == [("session:7", 1764489600.25)] and list(hint.tombstones()) == ["old"]


@pytest.mark.parametrize("readonly", [False, True])
def test_live_bytes_of_a_store_opened_from_hints_alone(store_path, readonly):
    """With every segment hinted and the newest empty, opening counts live bytes from the
    hints (tombstones taking back what they delete); where a hint replaces keys, from the
    index. Either way stats() gives the exact sum, and the index a scan gives."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d["k1"], d["k2"] = "a" * 10, "b" * 20
        d._store.seal()
        del d["k1"]
        d["k3"] = "c"
        d._store.seal()
    _write_hints_from_scans(store_path)
    with pysos.Dict(store_path, readonly=readonly, autocompact=False) as d:
        assert d._store._live_bytes is not None  # known from the hints: no pass over the index
    hinted = _index_and_contents(pysos.Dict, store_path, readonly)
    with pysos.Dict(store_path, autocompact=False) as d:
        d["k2"] = "replaced"  # a later segment replaces a key of an earlier one
        d._store.seal()
    _write_hints_from_scans(store_path)
    replaced = _index_and_contents(pysos.Dict, store_path, readonly)
    assert replaced[1] == {"k2": "replaced", "k3": "c"} and hinted[1] == {"k2": "b" * 20, "k3": "c"}
    _drop_hints(store_path)
    assert _index_and_contents(pysos.Dict, store_path, readonly) == replaced
