"""Hints for every segment (issue 14): the writer has each segment it seals get a hint, and
a clean close gives the newest segment one covering it up to its end, so that opening
scans only what lies past the last hint; a hint that does not match its segment's bytes
is never trusted.

What open read from hints and what it scanned is observable in its DEBUG log records
(logger ``pysos``), which carry ``pysos_segment``, ``pysos_hinted`` and ``pysos_scanned``.
"""

import logging
import os
import random
import shutil
import zlib

import orjson
import pytest

import pysos
from pysos.segments import hint_writer, hints, manifest, segment


def _open_report(caplog, path, cls=pysos.Dict, **options):
    """Open ``path``; return (its contents, {segment: (bytes from its hint, bytes scanned)})."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pysos"):
        store = cls(path, autocompact=False, **options)
    try:
        contents = dict(store.items()) if cls is pysos.Dict else list(store)
    finally:
        store.close()
    report = {r.pysos_segment: (r.pysos_hinted, r.pysos_scanned) for r in caplog.records if hasattr(r, "pysos_segment")}
    return contents, report


def _segments(path):
    return list(manifest.read(os.fspath(path)).segments)


def _size(path, name):
    return os.path.getsize(os.path.join(path, name))


def _churn(d, model, rng, n, keys=60):
    """Sets, deletes and batches of a seeded stream, applied to the store and the model."""
    for i in range(n):
        r = rng.random()
        key = f"k{rng.randrange(keys)}"
        if r < 0.6:
            d[key] = model[key] = {"i": i, "pad": "p" * rng.randrange(0, 80)}
        elif r < 0.8:
            if key in model:
                del d[key], model[key]
        else:
            items = {f"k{rng.randrange(keys)}": i * 10 + j for j in range(rng.randrange(1, 5))}
            d.update(items)
            model.update(items)


@pytest.mark.parametrize("autocompact", [False, True], ids=["inline", "thread"])
def test_every_sealed_segment_gets_a_hint_that_open_uses(store_path, caplog, autocompact):
    """Segments sealed by rotation get hints (written inline, or by a thread with autocompact); reopening reads every segment from its hint and scans nothing."""
    model = {}
    with pysos.Dict(store_path, segment_size=1500, autocompact=autocompact) as d:
        _churn(d, model, random.Random(1), 400)
        # autocompact may merge segments: compaction outputs have hints of their own
    names = _segments(store_path)
    assert len(names) > 3
    assert all((store_path / segment.hint_name(n)).exists() for n in names)
    contents, report = _open_report(caplog, store_path)
    assert contents == model
    assert report == {n: (_size(store_path, n), 0) for n in names}
    assert pysos.check(store_path) == []  # every hint equals what a scan of its segment says


@pytest.mark.parametrize("slice_", [None, 3], ids=["default-slices", "slices-of-3"])
def test_hint_written_at_rotation_matches_a_scan_with_tombstones_and_batches(store_path, monkeypatch, slice_):
    """A rotation's hint (from the writer's index and the segment's tombstones, picked, sorted and measured a slice of the index at a time) lists each key's newest record exactly as a scan would, for a Dict and a List."""
    if slice_:
        monkeypatch.setattr(hint_writer, "_SLICE", slice_)
    for seed in range(5):
        path = store_path.with_name(f"dict-{seed}")
        with pysos.Dict(path, segment_size=700, autocompact=False) as d:
            _churn(d, {}, random.Random(seed), 300, keys=15)
        assert pysos.check(path) == [], seed
        lpath = store_path.with_name(f"list-{seed}")
        rng = random.Random(seed)
        with pysos.List(lpath, segment_size=500, autocompact=False) as lst:
            for i in range(300):
                r = rng.random()
                if r < 0.5 or not lst:
                    lst.append(i)
                elif r < 0.7:
                    lst.insert(rng.randrange(len(lst) + 1), {"i": i})
                elif r < 0.9:
                    lst.pop(rng.randrange(len(lst)))
                else:
                    lst[rng.randrange(len(lst))] = "again"
            expected = list(lst)
        assert pysos.check(lpath) == [], seed
        assert all((lpath / segment.hint_name(n)).exists() for n in _segments(lpath)[:-1])
        with pysos.List(lpath) as lst:
            assert list(lst) == expected


def test_clean_close_means_open_scans_nothing(store_path, caplog):
    """After a clean close the newest segment's hint covers it all: opening scans no byte of any segment."""
    with pysos.Dict(store_path) as d:
        for i in range(500):
            d[f"key_{i}"] = {"some": f"object_{i}"}
        del d["key_7"]
    contents, report = _open_report(caplog, store_path)
    assert len(contents) == 499 and contents["key_8"] == {"some": "object_8"}
    newest = _segments(store_path)[-1]
    assert report[newest] == (_size(store_path, newest), 0)
    # and a reader too
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pysos"):
        with pysos.Dict(store_path, readonly=True) as r:
            assert dict(r.items()) == contents
    assert [(rec.pysos_hinted, rec.pysos_scanned) for rec in caplog.records if hasattr(rec, "pysos_segment")] == [
        (_size(store_path, newest), 0)]


def test_crash_image_scans_only_past_the_newest_hint(store_path, tmp_path, caplog):
    """A copy of the directory taken while a writer is busy (what a crash leaves) opens from the hint of the last clean close and scans only the bytes written since."""
    with pysos.Dict(store_path) as d:
        for i in range(300):
            d[f"k{i}"] = i
    covered = _size(store_path, _segments(store_path)[-1])
    d = pysos.Dict(store_path)
    for i in range(0, 300, 3):
        d[f"k{i}"] = {"again": i}
    del d["k1"]
    model = dict(d.items())
    crash = tmp_path / "crashed"
    shutil.copytree(store_path, crash)
    d.close()
    contents, report = _open_report(caplog, crash)
    assert contents == model
    newest = _segments(crash)[-1]
    assert report[newest] == (covered, _size(crash, newest) - covered)


def test_sealed_segment_with_only_its_close_hint_scans_the_rest(store_path, caplog):
    """A segment sealed after its last clean close, whose rotation hint was never written (a crash), is read from the close hint and scanned past it."""
    with pysos.Dict(store_path, segment_size=10_000, autocompact=False) as d:
        for i in range(50):
            d[f"k{i}"] = "v" * 20
    first = _segments(store_path)[0]
    close_hint = (store_path / segment.hint_name(first)).read_bytes()
    covered = _size(store_path, first)
    with pysos.Dict(store_path, segment_size=10_000, autocompact=False) as d:
        for i in range(200):
            d[f"k{i}"] = "w" * 40
        model = dict(d.items())
    assert _segments(store_path)[0] == first and len(_segments(store_path)) > 1
    (store_path / segment.hint_name(first)).write_bytes(close_hint)  # as if the rotation's hint was lost
    contents, report = _open_report(caplog, store_path)
    assert contents == model
    assert report[first] == (covered, _size(store_path, first) - covered)


def _two_stores_same_layout(tmp_path):
    """Two stores whose newest segments have the same name, size and record lengths but other keys."""
    a, b = tmp_path / "a", tmp_path / "b"
    with pysos.Dict(a) as d:
        for i in range(20):
            d[f"a{i:02d}"] = "x" * 10
    with pysos.Dict(b) as d:
        for i in range(20):
            d[f"b{i:02d}"] = "y" * 10
    name = _segments(a)[-1]
    assert name == _segments(b)[-1] and _size(a, name) == _size(b, name)
    return a, b, name


def test_hint_of_other_bytes_is_not_trusted(tmp_path, caplog):
    """A newest-segment hint that fits the segment's name and size and is well formed, but describes other bytes (another store's), fails its segment_crc: the segment is scanned and reads right."""
    a, b, name = _two_stores_same_layout(tmp_path)
    shutil.copy(b / segment.hint_name(name), a / segment.hint_name(name))
    contents, report = _open_report(caplog, a)
    assert contents == {f"a{i:02d}": "x" * 10 for i in range(20)}
    assert report[name] == (0, _size(a, name))


def test_hint_of_a_cut_and_rewritten_segment_is_not_trusted(store_path, tmp_path, caplog):
    """After a power loss cut the newest segment below its hint and later writes grew it past that again, the hint's bytes are other bytes: it is not used, and every key reads right."""
    with pysos.Dict(store_path) as d:
        for i in range(40):
            d[f"k{i:02d}"] = "x" * 10
    name = _segments(store_path)[-1]
    old_hint = (store_path / segment.hint_name(name)).read_bytes()
    size = _size(store_path, name)
    with open(store_path / name, "r+b") as f:  # the last 10 records were never on disk
        data = f.read()
        cut = len(data)
        for _ in range(10):
            cut = data.rfind(b"\n", 0, cut - 1) + 1
        f.truncate(cut)
    with pysos.Dict(store_path) as d:
        for i in range(30, 45):  # other records, the same lengths: the segment passes the old size
            d[f"j{i:02d}"] = "y" * 10
        model = dict(d.items())
    assert _size(store_path, name) > size
    (store_path / segment.hint_name(name)).write_bytes(old_hint)  # the old hint survived the power loss
    contents, report = _open_report(caplog, store_path)
    assert contents == model
    assert report[name] == (0, _size(store_path, name))


def test_hint_longer_than_the_segment_is_not_trusted(store_path, caplog):
    """A newest-segment hint covering more bytes than the segment has (its tail was lost) is not used."""
    with pysos.Dict(store_path) as d:
        for i in range(30):
            d[f"k{i}"] = i
    name = _segments(store_path)[-1]
    with open(store_path / name, "r+b") as f:
        data = f.read()
        f.truncate(data.rfind(b"\n", 0, len(data) - 1) + 1)
    contents, report = _open_report(caplog, store_path)
    assert contents == {f"k{i}": i for i in range(29)}
    assert report[name] == (0, _size(store_path, name))


def test_newest_segment_hint_without_a_checksum_is_not_trusted(store_path, caplog):
    """A hint of the newest segment's exact size but without segment_crc (as compactions write for sealed segments) is not used: the newest segment may have changed under it."""
    with pysos.Dict(store_path) as d:
        for i in range(30):
            d[f"k{i}"] = i
    name = _segments(store_path)[-1]
    size = _size(store_path, name)
    found = hints.examine_prefix(os.fspath(store_path / segment.hint_name(name)), name, size, "dict",
                                 sealed=False, crc_of=lambda n: hints.segment_crc(_fd(store_path / name), n))
    hint, covered = found
    assert covered == size
    hints.write(os.fspath(store_path), name, size, hint, segment.hint_name(name))  # no segment_crc
    contents, report = _open_report(caplog, store_path)
    assert contents == {f"k{i}": i for i in range(30)}
    assert report[name] == (0, size)


def _fd(path):
    fd = os.open(path, os.O_RDONLY)
    _fds.append(fd)
    return fd


_fds: list[int] = []


@pytest.fixture(autouse=True)
def _close_fds():
    yield
    while _fds:
        os.close(_fds.pop())


def test_close_without_changes_writes_no_hint(store_path):
    """Opening and closing a store whose hint already covers its newest segment rewrites nothing."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    hint = store_path / segment.hint_name(_segments(store_path)[-1])
    before = hint.stat().st_mtime_ns, hint.read_bytes()
    os.utime(hint, ns=(0, 0))
    with pysos.Dict(store_path) as d:
        assert d["a"] == 1
    assert hint.stat().st_mtime_ns == 0 and hint.read_bytes() == before[1]


@pytest.mark.parametrize("tamper", ["checksum", "record count", "sizes"])
def test_hint_failing_a_check_of_the_whole_after_parts_were_indexed(store_path, caplog, monkeypatch, tamper):
    """Opening indexes a hint a pair of lines at a time; one that fails a check of the whole at its end (its checksum, its record count, its sizes adding up) after earlier parts were indexed leaves nothing of itself: the load starts again and scans that segment."""
    monkeypatch.setattr(hints, "RECORDS_PER_LINE", 7)
    with pysos.Dict(store_path, segment_size=4000, autocompact=False) as d:
        _churn(d, {}, random.Random(3), 300, keys=40)
        model = dict(d.items())
    names = _segments(store_path)
    victim = names[len(names) // 2]
    path = store_path / segment.hint_name(victim)
    lines = path.read_bytes().split(b"\n")
    assert len(lines) > 6  # several parts
    header = orjson.loads(lines[0])
    if tamper == "checksum":
        header["c"] = "%08x" % (int(header["c"], 16) ^ 1)
    elif tamper == "record count":
        header["records"] += 1
    else:  # one byte more in the last gap, the checksum made to match
        gaps = orjson.loads(lines[1])
        if gaps and gaps[-1][0] == header["records"]:
            gaps[-1][1] += 1
        else:
            gaps.append([header["records"], 1])
        lines[1] = orjson.dumps(gaps)
        header["c"] = "%08x" % zlib.crc32(b"".join(line + b"\n" for line in lines[1:-1]))
    lines[0] = orjson.dumps(header)
    path.write_bytes(b"\n".join(lines))
    caplog.clear()
    contents, report = _open_report(caplog, store_path)
    assert contents == model
    assert report[victim] == (0, _size(store_path, victim))
    assert any("not used" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
