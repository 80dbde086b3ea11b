"""What open does with damaged files: a bad checksum in a sealed segment is CorruptionError
naming the file and offset; a torn tail of the newest segment is cut off with a warning."""

import json
import logging

import pytest

import pysos


def _segments(path):
    return json.loads((path / "MANIFEST").read_text())["segments"]


def _make_multi_segment_store(path):
    """A Dict with several segments (tiny segment_size) and no hint files, so that open
    scans every segment (hinted segments are checked on read: tests/faults/test_damage.py);
    returns its contents."""
    contents = {f"key{i:03d}": "payload-" + "a" * 60 + f"-{i}" for i in range(40)}
    with pysos.Dict(path, segment_size=256) as d:
        for k, v in contents.items():
            d[k] = v
    assert len(_segments(path)) >= 3, "segment_size=256 should have rotated segments"
    for hint in path.glob("*.hint"):
        hint.unlink()
    return contents


def _flip(file, needle, replacement, nth=0):
    """Change one byte inside the nth occurrence of ``needle``; return the offset of its line."""
    data = bytearray(file.read_bytes())
    pos = -1
    for _ in range(nth + 1):
        pos = data.index(needle, pos + 1)
    line_start = data.rfind(b"\n", 0, pos) + 1
    data[pos] = replacement
    file.write_bytes(bytes(data))
    return line_start


@pytest.mark.parametrize("which", [0, 1])
def test_flipped_byte_in_sealed_segment_is_corruption(store_path, which):
    """A byte flipped inside a sealed (non-newest) segment makes open raise CorruptionError naming file and offset."""
    _make_multi_segment_store(store_path)
    name = _segments(store_path)[which]
    offset = _flip(store_path / name, b"aaaa", ord("b"), nth=0)
    with pytest.raises(pysos.CorruptionError) as info:
        pysos.Dict(store_path)
    message = str(info.value)
    assert name in message
    assert str(offset) in message


def test_flipped_byte_in_a_key_is_corruption(store_path):
    """A byte flipped in a key of a sealed segment (still valid JSON) is CorruptionError, not a silent new key."""
    _make_multi_segment_store(store_path)
    name = _segments(store_path)[0]
    _flip(store_path / name, b"key0", ord("K"))
    with pytest.raises(pysos.CorruptionError) as info:
        pysos.Dict(store_path)
    assert name in str(info.value)


def test_corruption_mid_newest_segment_is_not_a_torn_tail(store_path):
    """A bad line in the newest segment followed by good lines is corruption, not a torn tail to cut off."""
    with pysos.Dict(store_path) as d:
        for i in range(10):
            d[f"k{i}"] = "a" * 20
    name = _segments(store_path)[-1]
    offset = _flip(store_path / name, b"aaaa", ord("b"), nth=2)
    size = (store_path / name).stat().st_size
    with pytest.raises(pysos.CorruptionError) as info:
        pysos.Dict(store_path)
    assert name in str(info.value) and str(offset) in str(info.value)
    assert (store_path / name).stat().st_size == size  # nothing was cut off


def test_corruption_is_reported_to_readers(store_path):
    """A readonly open of a store with a corrupt sealed segment raises CorruptionError too."""
    _make_multi_segment_store(store_path)
    name = _segments(store_path)[0]
    _flip(store_path / name, b"aaaa", ord("b"))
    with pytest.raises(pysos.CorruptionError):
        pysos.Dict(store_path, readonly=True)


def test_corruption_error_is_a_pysos_error():
    """CorruptionError subclasses pysos.Error."""
    assert issubclass(pysos.CorruptionError, pysos.Error)


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("cut", ["one_byte", "half", "all_but_newline"])
def test_torn_tail_is_truncated_with_a_warning(store_path, caplog, cut):
    """Half a record appended to the newest segment is cut off on open with a warning; all before it is intact."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
        d["b"] = {"x": [1, 2]}
        d["a"] = "again"
        del d["b"]
        d["c"] = "line\nbreak"
    newest = store_path / _segments(store_path)[-1]
    original = newest.read_bytes()
    last = original.splitlines(keepends=True)[-1]
    torn = {"one_byte": last[:1], "half": last[: len(last) // 2], "all_but_newline": last[:-1]}[cut]
    with open(newest, "ab") as f:
        f.write(torn)
    with caplog.at_level(logging.WARNING):
        with pysos.Dict(store_path) as d:
            assert dict(d.items()) == {"a": "again", "c": "line\nbreak"}
    assert _warnings(caplog), "no warning logged for the torn tail"
    assert newest.read_bytes() == original
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        with pysos.Dict(store_path) as d:
            d["d"] = 4
        with pysos.Dict(store_path) as d:
            assert dict(d.items()) == {"a": "again", "c": "line\nbreak", "d": 4}
    assert not _warnings(caplog), "a healthy store logged a warning"


def test_torn_tail_in_a_list(store_path, caplog):
    """A torn tail in a List store is cut off on open; the items before it are intact and in order."""
    with pysos.List(store_path) as l:
        l.extend(["a", "b"])
        l.insert(1, "between")
    newest = store_path / _segments(store_path)[-1]
    with open(newest, "ab") as f:
        f.write(b'{"c":"0000')
    with caplog.at_level(logging.WARNING):
        with pysos.List(store_path) as l:
            assert list(l) == ["a", "between", "b"]
            l.append("c")
    assert _warnings(caplog)
    with pysos.List(store_path) as l:
        assert list(l) == ["a", "between", "b", "c"]


def test_reader_ignores_torn_tail_without_changing_files(store_path):
    """A readonly open of a store with a torn tail reads what is intact and does not modify any file."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    newest = store_path / _segments(store_path)[-1]
    with open(newest, "ab") as f:
        f.write(b'{"c":"12345678","k":"b","v":')
    damaged = newest.read_bytes()
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {"a": 1}
    assert newest.read_bytes() == damaged


def _batch_region(path):
    """Write key "a", then a 5-key batch; return (newest segment, byte range of the batch)."""
    with pysos.Dict(path) as d:
        d["a"] = 1
        name = _segments(path)[-1]
        start = (path / name).stat().st_size
        with d.batch():
            for i in range(5):
                d[f"b{i}"] = i
        assert _segments(path)[-1] == name
        end = (path / name).stat().st_size
    return path / name, start, end


def test_torn_batch_is_dropped_whole(store_path, caplog):
    """A batch whose last line is torn is dropped entirely on open; what came before it is intact."""
    newest, start, end = _batch_region(store_path)
    data = newest.read_bytes()
    assert len(data) == end
    newest.write_bytes(data[: end - 5])
    with caplog.at_level(logging.WARNING):
        with pysos.Dict(store_path) as d:
            assert dict(d.items()) == {"a": 1}
            d["z"] = 26
    assert _warnings(caplog)
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {"a": 1, "z": 26}


def test_batch_cut_at_a_line_boundary_is_dropped_whole(store_path, caplog):
    """A batch cut after some complete lines (a torn batch, every line intact) is dropped entirely."""
    newest, start, end = _batch_region(store_path)
    data = newest.read_bytes()
    lines = data[start:end].splitlines(keepends=True)
    assert len(lines) >= 5
    for keep in range(1, len(lines)):
        newest.write_bytes(data[: start + sum(map(len, lines[:keep]))])
        with caplog.at_level(logging.WARNING):
            with pysos.Dict(store_path) as d:
                assert dict(d.items()) == {"a": 1}, f"kept {keep} of {len(lines)} batch lines"
        assert newest.read_bytes() == data[:start]
        newest.write_bytes(data)
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {"a": 1, "b0": 0, "b1": 1, "b2": 2, "b3": 3, "b4": 4}
