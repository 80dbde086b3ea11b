"""Directory identity (DESIGN.md, "In the field"): a handle belongs to the directory it
opened. Another process renames, deletes or replaces the store's directory under a live
handle: a writer never writes into the other store, a reader never serves the old store's
data as the new one's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest

import pysos
from pysos.engine import writer as engine_writer

MOVED = "moved, deleted or replaced"

# Run by a second process: change what the store's path leads to.
SWAPPER = textwrap.dedent("""
    import os, shutil, sys, pysos
    path, how = sys.argv[1], sys.argv[2]
    if how in ("replace", "rename"):
        os.rename(path, path + ".old")
    elif how.startswith("delete"):
        shutil.rmtree(path)
    elif how == "empty":  # rm -rf path/*: the directory stays, its files go
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
    if how in ("replace", "delete"):
        with pysos.Dict(path, autocompact=False) as d:
            d.update({f"k{i}": "new" for i in range(5)})
""")


def _swap(path, how):
    subprocess.run([sys.executable, "-c", SWAPPER, str(path), how], check=True, timeout=60)


@pytest.fixture
def quick_checks(monkeypatch):
    """Writers look at their directory every 50 ms instead of every second."""
    monkeypatch.setattr(engine_writer, "_CHECK_EXTERNAL_SWAP_EVERY", 0.05)


def _hold_looks(d, seconds=60.0):
    """Keep the writer from looking at its files for ``seconds`` (writes have a gate of their
    own, ``look_due``, beside the one of every other operation); 0 makes the next call look."""
    d._store.due = d._store.look_due = time.monotonic() + seconds if seconds else 0.0


def _write_until_refused(d, prefix, seconds=3.0):
    """Write until the handle refuses; the refusal (None if it never came)."""
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        try:
            d[f"{prefix}{i}"] = "x" * 50
        except pysos.Error as exc:
            return exc
        i += 1
        time.sleep(0.001)
    return None


@pytest.mark.parametrize("how", ["replace", "delete"])
def test_writer_never_writes_into_the_store_that_replaced_its_directory(store_path, quick_checks, how):
    """A writer whose directory was replaced (or deleted and re-created) stops with a clear
    error; the new store at the path keeps exactly its own data and stays healthy."""
    d = pysos.Dict(store_path, segment_size=400, autocompact=False)
    try:
        d.update({f"old{i}": "old" for i in range(5)})
        _hold_looks(d)  # the swap happens between two looks
        _swap(store_path, how)
        _hold_looks(d, 0)
        refusal = _write_until_refused(d, "late")
        assert refusal is not None and MOVED in str(refusal)
        with pytest.raises(pysos.Error, match=MOVED):
            d["again"] = 1
        with pytest.raises(pysos.Error, match=MOVED):
            d["old1"]
    finally:
        d.close()
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path) as new:
        assert dict(new.items()) == {f"k{i}": "new" for i in range(5)}


def test_writer_whose_directory_was_renamed_stops_and_its_data_stays_there(store_path, quick_checks):
    """A writer whose directory was renamed stops writing; every write it reported done is in the renamed store."""
    d = pysos.Dict(store_path, segment_size=400, autocompact=False)
    done = {}
    try:
        d.update({f"old{i}": i for i in range(5)})
        done.update({f"old{i}": i for i in range(5)})
        _swap(store_path, "rename")
        i = 0
        with pytest.raises(pysos.Error, match=MOVED):
            while i < 100000:
                d[f"late{i}"] = i
                done[f"late{i}"] = i
                i += 1
    finally:
        d.close()
    assert not store_path.exists()
    with pysos.Dict(str(store_path) + ".old", readonly=True) as r:
        assert dict(r.items()) == done


def test_writer_whose_directory_was_deleted_stops_reporting_success(store_path, quick_checks):
    """A writer whose directory was deleted raises instead of reporting writes into unlinked files."""
    d = pysos.Dict(store_path, autocompact=False)
    try:
        d["a"] = 1
        _swap(store_path, "delete-only")
        refusal = _write_until_refused(d, "late")
        assert refusal is not None and MOVED in str(refusal)
    finally:
        d.close()


def test_writer_whose_files_were_deleted_stops_at_its_next_look(store_path, quick_checks):
    """rm -rf DIR/* (the directory stays, so its identity does not change): the writer's
    regular look finds its newest segment unlinked and stops with a clear error."""
    d = pysos.Dict(store_path, autocompact=False)
    try:
        d["a"] = 1
        _swap(store_path, "empty")
        refusal = _write_until_refused(d, "late")
        assert refusal is not None and "deleted" in str(refusal)
    finally:
        d.close()
    assert os.listdir(store_path) == []  # closing wrote nothing there


@pytest.mark.parametrize("how", ["delete-only", "empty"])
def test_fsync_writer_refuses_the_first_write_after_its_files_are_deleted(store_path, how):
    """durability='fsync': the first write after the store's files are deleted (between two of
    the writer's looks) raises pysos.Error instead of reporting a durable write, and so does
    every later call."""
    d = pysos.Dict(store_path, durability="fsync", autocompact=False)
    try:
        d["a"] = 1
        _hold_looks(d)  # no regular look before the writes below
        _swap(store_path, how)
        with pytest.raises(pysos.Error, match="deleted"):
            d["b"] = 2
        with pytest.raises(pysos.Error, match="deleted"):
            d["c"] = 3
    finally:
        d.close()


@pytest.mark.parametrize("how", ["delete-only", "empty"])
def test_flush_and_sync_report_deleted_files(store_path, how):
    """durability='flush' (the default): a write between the deletion and the writer's next
    look still returns (the documented window), but flush() and sync() raise pysos.Error."""
    for call in ("flush", "sync"):
        path = store_path / call
        d = pysos.Dict(path, autocompact=False)
        try:
            d["a"] = 1
            _hold_looks(d)
            _swap(path, how)
            d["late"] = 2  # reaches the unlinked file: the window README states
            with pytest.raises(pysos.Error, match="deleted"):
                getattr(d, call)()
            with pytest.raises(pysos.Error, match="deleted"):
                d["again"] = 3
        finally:
            d.close()


@pytest.mark.parametrize("how", ["replace", "delete"])
def test_reader_never_serves_the_old_store_as_the_new_one(store_path, how):
    """A reader whose store is replaced by another (same keys) raises on refresh and after;
    it never returns the old store's values as if they were the new one's."""
    with pysos.Dict(store_path, autocompact=False) as w:
        w.update({f"k{i}": "old" for i in range(5)})
    r = pysos.Dict(store_path, readonly=True)
    try:
        assert r["k1"] == "old"
        _swap(store_path, how)
        if how == "delete":  # the store it opened is gone: even a plain read says so
            with pytest.raises(pysos.Error, match=MOVED):
                r["k1"]
        else:  # the store it opened still exists (renamed): it may serve it, until refresh()
            assert r["k1"] == "old"
        with pytest.raises(pysos.Error, match=MOVED):
            r.refresh()
        with pytest.raises(pysos.Error, match=MOVED):
            r["k1"]
    finally:
        r.close()
    with pysos.Dict(store_path, readonly=True) as fresh:
        assert fresh["k1"] == "new"


def test_reader_of_a_renamed_directory_keeps_serving_it(store_path):
    """A reader whose directory was only renamed keeps serving that directory's data,
    consistently; an explicit refresh() (follow the path) says the path leads elsewhere."""
    with pysos.Dict(store_path, autocompact=False) as w:
        w.update({f"k{i}": i for i in range(5)})
    with pysos.Dict(store_path, readonly=True) as r:
        _swap(store_path, "rename")
        assert dict(r.items()) == {f"k{i}": i for i in range(5)}
        with pytest.raises(pysos.Error, match=MOVED):
            r.refresh()


def test_background_compactor_never_publishes_into_a_replaced_directory(store_path, quick_checks):
    """compact() of a writer whose directory was replaced raises and leaves the new store as it was."""
    d = pysos.Dict(store_path, segment_size=300, autocompact=False)
    try:
        for i in range(40):
            d[f"k{i % 5}"] = "v" * 40
        _hold_looks(d)
        _swap(store_path, "replace")
        before = sorted(os.listdir(store_path))
        with pytest.raises(pysos.Error, match=MOVED):
            d.compact()
        assert sorted(os.listdir(store_path)) == before
    finally:
        d.close()
    assert pysos.check(store_path) == []


@pytest.mark.parametrize("when", ["before the thread looks", "while it writes"])
def test_hint_of_a_sealed_segment_is_never_left_in_the_store_that_replaced_it(store_path, monkeypatch, when):
    """The hint of a segment the writer sealed is written in a thread, a while later. If the
    directory was replaced meanwhile by another store whose segment has the same name and
    size, no hint of ours may be left there: readers trust a sealed segment's hint without
    reading the segment, and would index the other store's records by ours."""
    from pysos.segments import hint_writer

    held = []
    monkeypatch.setattr(hint_writer.Sealer, "submit", lambda self, job: held.append(job))

    def fill(path, keys):  # one sealed segment of two records, then a record in the next one
        d = pysos.Dict(path, segment_size=120)  # (the compaction thread makes the writer use the Sealer)
        for key in keys:
            d[key] = "v" * 20
        return d

    def swap():
        os.rename(store_path, store_path.with_name("ours.old"))
        os.rename(other, store_path)

    ours = fill(store_path, ["a1", "a2", "a3"])
    assert len(held) == 1  # the sealed segment's hint, not written yet
    ours_job = held.pop()
    other = store_path.with_name("other")
    fill(other, ["b1", "b2", "b3"]).close()  # the same segment names and sizes, other keys
    held.pop()()  # the other store's own hint of that segment
    ours.close()
    if when == "before the thread looks":
        swap()
    else:  # after it checked the segment, before it writes the hint
        real_write = hint_writer.write
        monkeypatch.setattr(hint_writer, "write", lambda *a, **k: (swap(), real_write(*a, **k)))
    ours_job()  # the thread gets to it now
    if when == "before the thread looks":  # it wrote nothing there: the other store keeps its hint
        assert (store_path / "seg-00000001.hint").exists()
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {"b1": "v" * 20, "b2": "v" * 20, "b3": "v" * 20}


def test_hint_written_at_close_never_lands_in_the_store_that_replaced_the_directory(store_path):
    """A clean close writes the newest segment's hint. If the directory was replaced within
    the second before (the writer looks once a second) by a store whose segment of that name
    is sealed at the same size, the hint must not land there (it would be trusted unread)."""
    ours = pysos.Dict(store_path, autocompact=False)
    for key in ("a1", "a2"):
        ours[key] = "v" * 20
    size = os.path.getsize(store_path / "seg-00000001.jsonl")
    other = store_path.with_name("other")
    with pysos.Dict(other, autocompact=False, segment_size=size) as d:
        for key in ("b1", "b2"):
            d[key] = "v" * 20  # the second fills seg 1: sealed at our size, with its hint
    with pysos.Dict(other, readonly=True) as r:
        assert r._store.manifest.sealed_sizes == (size,)
    _hold_looks(ours)
    os.rename(store_path, store_path.with_name("ours.old"))
    os.rename(other, store_path)
    ours.close()
    assert (store_path / "seg-00000001.hint").exists()  # the other store's own, left as it was
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {"b1": "v" * 20, "b2": "v" * 20}
