"""Damage between sessions: bytes flipped or cut, a MANIFEST garbled or gone, a segment
missing, a newer format, a lying hint, a stale lock file.

The promise checked: nothing wrong is returned; the error says exactly what is wrong
(CorruptionError naming file and byte offset, FormatError naming the version); check()
reports it; repair() salvages every other record and sets damaged files aside.
"""

import os
import re
import subprocess
import sys
import zlib

import orjson
import pytest

import pysos
from pysos.segments import hints, locks, manifest, segment

from faultfs import reopen_equals


def build(path, n=60, segment_size=1500, compact=False):
    """A store whose keys are each written once, over several segments; returns the model.

    Without ``compact``, its segments have no hint files (those written at rotation and at
    close are removed), so that open scans them: a store from before pysos wrote them, or
    one whose hints were lost. Damage under a hint is in the tests that say so."""
    model = {}
    with pysos.Dict(path, autocompact=False, segment_size=segment_size) as d:
        for i in range(n):
            d[f"k{i:03d}"] = {"i": i, "pad": "d" * 30}
            model[f"k{i:03d}"] = {"i": i, "pad": "d" * 30}
        if compact:
            d["junk"] = 0  # some garbage: compact() of a store with none writes nothing (issue 13)
            del d["junk"]
            d.compact()
            d["tail"] = "t"
            model["tail"] = "t"
    if not compact:
        for name in os.listdir(path):
            if segment.is_hint_name(name):
                os.unlink(os.path.join(path, name))
    return model


def segments_of(path):
    return list(manifest.read(os.fspath(path)).segments)


def line_at(data, offset):
    """(start, end) of the line that holds byte ``offset``."""
    start = data.rfind(b"\n", 0, offset) + 1
    return start, data.index(b"\n", offset) + 1


def key_of_line(line):
    return orjson.loads(line)["k"]


def flip(path, offset):
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x20]))


def errors(problems):
    return [p for p in problems if p.get("severity", "error") == "error"]


def test_flipped_byte_in_sealed_segment(store_path):
    """A flipped byte in a sealed segment: open raises CorruptionError naming the file and the line's offset; check() reports the same; repair() keeps every other record and moves the file, bytes intact, into damaged/."""
    model = build(store_path)
    first = segments_of(store_path)[0]
    seg_path = store_path / first
    data = seg_path.read_bytes()
    start, end = line_at(data, len(data) // 2)
    damaged_key = key_of_line(data[start:end])
    flip(seg_path, start + 30)
    damaged_bytes = seg_path.read_bytes()

    for readonly in (False, True):
        with pytest.raises(pysos.CorruptionError) as info:
            pysos.Dict(store_path, readonly=readonly)
        assert first in str(info.value) and f"byte {start}" in str(info.value)
    problems = errors(pysos.check(store_path))
    assert [(p["file"], p["offset"]) for p in problems] == [(first, start)]

    result = pysos.repair(store_path)
    assert result["lost"] == 1
    assert result["salvaged"] == len(model) - 1
    assert len(result["set_aside"]) == 1 and result["set_aside"][0].endswith(first)
    assert (store_path / result["set_aside"][0]).read_bytes() == damaged_bytes
    del model[damaged_key]
    reopen_equals(store_path, model)
    assert pysos.check(store_path) == []


def test_flipped_byte_in_compacted_segment_with_hint(store_path):
    """A flipped byte in a compacted segment whose hint lets open skip the scan: the damaged key's read raises CorruptionError naming file and offset, every other key reads right, check() reports the line, repair() salvages the rest."""
    model = build(store_path, compact=True)
    name = segments_of(store_path)[0]
    assert (store_path / segment.hint_name(name)).exists()
    data = (store_path / name).read_bytes()
    start, end = line_at(data, len(data) // 3)
    damaged_key = key_of_line(data[start:end])
    flip(store_path / name, start + 25)
    with pysos.Dict(store_path, readonly=True) as d:
        for key, value in model.items():
            if key == damaged_key:
                with pytest.raises(pysos.CorruptionError) as info:
                    d[key]
                assert name in str(info.value) and f"byte {start}" in str(info.value)
            else:
                assert d[key] == value
    assert (name, start) in [(p["file"], p["offset"]) for p in errors(pysos.check(store_path))]
    result = pysos.repair(store_path)
    assert result["lost"] == 1
    del model[damaged_key]
    reopen_equals(store_path, model)


def test_flipped_byte_in_newest_segment_followed_by_records(store_path):
    """Damage in the middle of the newest segment (valid records follow it) is corruption, not a torn tail: CorruptionError naming file and offset, and the writer does not cut the records after it."""
    model = build(store_path, segment_size=2**20)
    name = segments_of(store_path)[-1]
    data = (store_path / name).read_bytes()
    start, _ = line_at(data, len(data) // 2)
    flip(store_path / name, start + 20)
    size = (store_path / name).stat().st_size
    with pytest.raises(pysos.CorruptionError) as info:
        pysos.Dict(store_path)
    assert name in str(info.value) and f"byte {start}" in str(info.value)
    assert (store_path / name).stat().st_size == size, "the writer cut valid records"
    result = pysos.repair(store_path)
    assert result["lost"] == 1 and result["salvaged"] == len(model) - 1


@pytest.mark.parametrize("where", ["mid-line", "mid-file"])
def test_truncated_sealed_segment(store_path, where):
    """A sealed segment cut short in the middle of a record: open raises CorruptionError naming it; check() reports it; repair() keeps every whole record."""
    model = build(store_path)
    name = segments_of(store_path)[0]
    data = (store_path / name).read_bytes()
    start, end = line_at(data, len(data) // 2 if where == "mid-file" else len(data) - 5)
    cut = start + 10
    os.truncate(store_path / name, cut)
    lost_keys = {key_of_line(line) for line in data[start:].split(b"\n") if line}
    with pytest.raises(pysos.CorruptionError) as info:
        pysos.Dict(store_path)
    assert name in str(info.value)
    assert name in [p["file"] for p in errors(pysos.check(store_path))]
    result = pysos.repair(store_path)
    assert result["salvaged"] == len(model) - len(lost_keys)
    for key in lost_keys:
        del model[key]
    reopen_equals(store_path, model)


@pytest.mark.parametrize("damage", ["truncated", "garbled", "emptied", "deleted"])
def test_damaged_manifest(store_path, damage):
    """A truncated, garbled, emptied or deleted MANIFEST: opening raises CorruptionError that names the MANIFEST, check() reports it, and repair() rebuilds the store from the segments alone with every record."""
    model = build(store_path)
    mpath = store_path / "MANIFEST"
    original = mpath.read_bytes()
    if damage == "truncated":
        mpath.write_bytes(original[: len(original) // 2])
    elif damage == "garbled":
        flip(mpath, original.index(b"seg-") + 6)
    elif damage == "emptied":
        mpath.write_bytes(b"")
    else:
        mpath.unlink()
    for readonly in (False, True):
        with pytest.raises(pysos.CorruptionError) as info:
            pysos.Dict(store_path, readonly=readonly)
        assert "MANIFEST" in str(info.value)
    with pytest.raises(pysos.CorruptionError):
        pysos.open(store_path)
    problems = errors(pysos.check(store_path))
    assert problems and problems[0]["file"] == "MANIFEST"
    result = pysos.repair(store_path)
    assert result["salvaged"] == len(model) and result["lost"] == 0
    if damage != "deleted":  # the damaged MANIFEST is kept, not deleted
        assert any(p.endswith("MANIFEST") for p in result["set_aside"])
    reopen_equals(store_path, model)
    assert pysos.check(store_path) == []


def test_missing_segment(store_path):
    """A segment named by the MANIFEST is gone: opening (writer or reader) fails with an error that names the missing file, check() reports it, and repair() keeps every record of the other segments."""
    model = build(store_path)
    name = segments_of(store_path)[1]
    gone = {key_of_line(line) for line in (store_path / name).read_bytes().split(b"\n") if line}
    (store_path / name).unlink()
    for readonly in (False, True):
        with pytest.raises((pysos.CorruptionError, FileNotFoundError)) as info:
            pysos.Dict(store_path, readonly=readonly)
        assert name in str(info.value), f"readonly={readonly}: {info.value}"
    problems = errors(pysos.check(store_path))
    assert [p["file"] for p in problems] == [name]
    result = pysos.repair(store_path)
    assert result["salvaged"] == len(model) - len(gone)
    reopen_equals(store_path, {k: v for k, v in model.items() if k not in gone})


def test_unknown_format_version(store_path):
    """A MANIFEST of an unknown format version (4: 3 is codecs; checksum valid): every way of opening raises FormatError naming the version, and repair() refuses without touching a byte."""
    build(store_path)
    current = manifest.read(os.fspath(store_path))
    body = {"format": "pysos", "generation": current.generation, "kind": current.kind,
            "segments": list(current.segments), "version": 4}
    body["crc"] = manifest._checksum(dict(body))
    (store_path / "MANIFEST").write_bytes(orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n")
    before = {n: (store_path / n).read_bytes() for n in os.listdir(store_path)}
    for opener in (lambda: pysos.Dict(store_path), lambda: pysos.Dict(store_path, readonly=True),
                   lambda: pysos.open(store_path)):
        with pytest.raises(pysos.FormatError) as info:
            opener()
        assert "version 4" in str(info.value)
    with pytest.raises(pysos.FormatError):
        pysos.repair(store_path)
    assert {n: (store_path / n).read_bytes() for n in os.listdir(store_path)} == before


def _rewrite_hint(store_path, name, transform, usable=True):
    """Replace a segment's hint by a transformed one that still has a valid checksum and
    still adds up to the segment's size (so that it is used, and the lie must be caught
    later, unless ``usable`` is false)."""
    size = (store_path / name).stat().st_size
    hint = hints.read(os.fspath(store_path / segment.hint_name(name)), name, size, "dict")
    assert hint is not None
    keys, lengths, gaps = transform(list(hint.keys), list(hint.lengths), [list(g) for g in hint.gaps])
    hints.write(os.fspath(store_path), name, size, hints.Hint(keys, lengths, gaps), segment.hint_name(name))
    assert (hints.read(os.fspath(store_path / segment.hint_name(name)), name, size, "dict") is not None) == usable


def _offsets_shifted(keys, lengths, gaps):
    """Every record 7 bytes later than it is (a leading gap), the last one 7 bytes shorter:
    the bytes still add up."""
    assert gaps == []  # a compacted segment is all records, back to back
    return keys, lengths[:-1] + [lengths[-1] - 7], [[0, 7]]


HINT_LIES = {
    "lengths-rotated": lambda k, ln, g: (k, ln[1:] + ln[:1], g),
    "lengths-traded": lambda k, ln, g: (k, [ln[0] - 3, ln[1] + 3] + ln[2:], g),
    "keys-rotated": lambda k, ln, g: (k[1:] + k[:1], ln, g),
    "offsets-shifted": _offsets_shifted,
}


@pytest.mark.parametrize("lie", sorted(HINT_LIES))
def test_hint_that_disagrees_with_its_segment(store_path, lie):
    """A hint with a valid checksum but wrong offsets: no read returns a wrong value (each raises CorruptionError naming the segment or reads right), and check() reports the hint as an error."""
    model = build(store_path, compact=True)
    name = segments_of(store_path)[0]
    _rewrite_hint(store_path, name, HINT_LIES[lie])
    with pysos.Dict(store_path, readonly=True) as d:
        right = 0
        for key, value in model.items():
            try:
                got = d[key]
            except pysos.CorruptionError as exc:
                assert name in str(exc)
                continue
            except KeyError:
                pytest.fail(f"{key!r} vanished")
            assert got == value, f"{key!r}: a wrong value was returned"
            right += 1
        assert right < len(model), "the lie went unnoticed by every read: the test proves nothing"
    assert (segment.hint_name(name), 0) in [(p["file"], p["offset"]) for p in errors(pysos.check(store_path))]


def test_hint_with_a_key_no_dict_holds_is_not_used(store_path):
    """A checksummed hint that gives a Dict an array key (a List's position key): the hint is
    refused as a whole, the segment scanned, every key reads right, check() warns."""
    model = build(store_path, compact=True)
    name = segments_of(store_path)[0]
    _rewrite_hint(store_path, name, lambda k, ln, g: (k[:1] + [[1]] + k[2:], ln, g), usable=False)
    reopen_equals(store_path, model)
    problems = [p for p in pysos.check(store_path) if p["file"] == segment.hint_name(name)]
    assert [p["severity"] for p in problems] == ["warning"]


def test_version_1_hint_is_ignored_and_the_segment_scanned(store_path):
    """A hint of the old format (version 1: packed offsets, tombstones apart) beside a
    compacted segment: the store reads right from a scan, check() warns naming the version."""
    model = build(store_path, compact=True)
    name = segments_of(store_path)[0]
    size = (store_path / name).stat().st_size
    hint = hints.read(os.fspath(store_path / segment.hint_name(name)), name, size, "dict")
    keys, packed = zip(*hint.live())  # version 1 wrote offset << 32 | length: the location in the segment
    body = orjson.dumps(list(keys)) + b"\n" + orjson.dumps(list(packed)) + b"\n[]\n"
    header = {"c": "%08x" % zlib.crc32(body), "records": len(packed), "segment": name,
              "segment_bytes": size, "version": 1}
    (store_path / segment.hint_name(name)).write_bytes(orjson.dumps(header) + b"\n" + body)
    reopen_equals(store_path, model)
    problems = [p for p in pysos.check(store_path) if p["file"] == segment.hint_name(name)]
    assert [p["severity"] for p in problems] == ["warning"] and "version 1" in problems[0]["problem"]


def test_stale_lock_files(store_path):
    """writer.lock and compact.lock holding the pid of a dead process: the next writer opens at once, nobody is reported as holder, and compaction runs."""
    model = build(store_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name in (locks.WRITER, locks.COMPACT):
        (store_path / f"{name}.lock").write_text(f"{dead.pid}\n")
    assert locks.holder(os.fspath(store_path), locks.WRITER) is None
    with pysos.Dict(store_path, autocompact=False) as d:
        assert dict(d.items()) == model
        d.compact()
        d["x"] = 1
        model["x"] = 1
    assert re.fullmatch(r"\s*", (store_path / "writer.lock").read_text())
    reopen_equals(store_path, model)
