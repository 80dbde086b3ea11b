"""Reads through memory maps (SegmentFiles.maps): right values on every path, and maps only
where no one can cut the file under them.

White-box on purpose: these tests look at which segments are mapped, because a read that
silently fell back to pread would pass every black-box test while the map path went
untested (and a reader mapping the newest segment could be killed by SIGBUS).
"""

import errno

import pytest

import pysos
from pysos.engine.writer import _REMAP_AFTER
from pysos.segments import files

VALUE = {"pad": "x" * 200}


def _fill(d, start, stop):
    for i in range(start, stop):
        d[f"k{i}"] = {**VALUE, "i": i}


def _check(d, stop):
    for i in range(stop):
        assert d[f"k{i}"] == {**VALUE, "i": i}


def _newest_bytes(store):
    return store.newest[1]


def test_writer_maps_its_newest_segment_and_reads_the_unmapped_tail_by_pread(store_path):
    d = pysos.Dict(store_path, autocompact=False)
    store = d._store
    n = 3 * _REMAP_AFTER // 220  # ~3 MiB: past the remap step
    _fill(d, 0, n)
    _check(d, n)
    mapped = store.segment_files.maps[store.newest[0]]
    assert len(mapped) == _newest_bytes(store)
    # a few more records: beyond the map, less than the remap step: read by pread
    _fill(d, n, n + 50)
    _check(d, n + 50)
    assert store.segment_files.maps[store.newest[0]] is mapped and len(mapped) < _newest_bytes(store)
    # a remap step more: the next read past the map maps the segment again
    m = n + 50 + _REMAP_AFTER // 220 + 10
    _fill(d, n + 50, m)
    _check(d, m)
    assert len(store.segment_files.maps[store.newest[0]]) == _newest_bytes(store)
    # overwrites and deletes land past the map; reads see them
    for i in range(0, m, 7):
        d[f"k{i}"] = i
    for i in range(1, m, 7):
        del d[f"k{i}"]
    for i in range(m):
        expected = i if i % 7 == 0 else None if i % 7 == 1 else {**VALUE, "i": i}
        assert d.get(f"k{i}") == expected
    d.close()
    assert store.segment_files.maps == {}


def test_sealed_segments_are_mapped_whole_and_unmapped_when_retired(store_path):
    d = pysos.Dict(store_path, segment_size=4096, autocompact=False)
    store = d._store
    _fill(d, 0, 200)
    _check(d, 200)
    sealed = [n for n in store.segment_files.fds if n != store.newest[0]]
    assert sealed and all(n in store.segment_files.maps for n in sealed)
    for n in sealed:
        assert len(store.segment_files.maps[n]) == store.manifest.size_of(f"seg-{n:08d}.jsonl")
    d.compact()
    assert set(store.segment_files.maps) <= set(store.segment_files.fds), "a retired segment is still mapped"
    _check(d, 200)
    d.close()


def test_a_reader_never_maps_the_newest_segment(store_path):
    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as w:
        _fill(w, 0, 200)  # sealed segments
    w = pysos.Dict(store_path, autocompact=False)  # then a newest segment past the remap step
    n = 200 + 2 * _REMAP_AFTER // 220
    _fill(w, 200, n)
    r = pysos.Dict(store_path, readonly=True)
    _check(r, n)
    reader = r._store
    assert reader.newest[0] not in reader.segment_files.maps
    assert any(number in reader.segment_files.maps for number in reader.segment_files.fds if number != reader.newest[0])
    _fill(w, n, n + 100)
    _check(r, n + 100)
    assert reader.newest[0] not in reader.segment_files.maps
    r.close()
    w.close()


def test_a_failed_write_after_mapping_leaves_the_mapped_records_readable(store_path, monkeypatch):
    d = pysos.Dict(store_path, autocompact=False)
    n = 2 * _REMAP_AFTER // 220
    _fill(d, 0, n)
    _check(d, n)  # maps the newest segment
    real_pwrite = files.pwrite

    def half_then_enospc(fd, data, offset):
        real_pwrite(fd, data[: len(data) // 2], offset)
        raise OSError(errno.ENOSPC, "injected ENOSPC")

    monkeypatch.setattr(files, "pwrite", half_then_enospc)
    with pytest.raises(OSError):
        d["late"] = VALUE
    monkeypatch.setattr(files, "pwrite", real_pwrite)
    assert "late" not in d
    _check(d, n)
    _fill(d, n, n + _REMAP_AFTER // 220 + 10)  # past the remap step: maps again over the cut
    _check(d, n + _REMAP_AFTER // 220 + 10)
    d.close()
    with pysos.Dict(store_path) as again:
        _check(again, n + _REMAP_AFTER // 220 + 10)


def test_reads_inside_a_batch_see_pending_records_not_the_map(store_path):
    d = pysos.Dict(store_path, autocompact=False)
    n = 2 * _REMAP_AFTER // 220
    _fill(d, 0, n)
    _check(d, n)
    with d.batch():
        d["k0"] = "new"
        d["fresh"] = [1, 2]
        assert d["k0"] == "new" and d["fresh"] == [1, 2]
        _check(d, 0)
    assert d["k0"] == "new"
    d.close()
