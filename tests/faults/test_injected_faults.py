"""EIO and ENOSPC injected into the files layer (write, fsync, manifest swap, compaction).

Every test checks the same promise: nothing acknowledged is lost, nothing wrong is
returned, the store is usable afterwards or the error says exactly what is wrong.
"""

import errno
import os

import pytest

import pysos
from pysos.compactor import compact_all
from pysos.segments import locks, manifest

from faultfs import Faults, lock_is_free, reopen_equals, segments_whole, stray_files

ERRORS = [errno.EIO, errno.ENOSPC]
ERROR_IDS = ["EIO", "ENOSPC"]


def _fill(d, model, prefix, n, size=50):
    for i in range(n):
        key, value = f"{prefix}{i}", {"i": i, "pad": "x" * size}
        d[key] = value
        model[key] = value


def _newest_segment(path):
    return os.path.join(path, manifest.read(os.fspath(path)).segments[-1])


@pytest.mark.parametrize("err", ERRORS, ids=ERROR_IDS)
@pytest.mark.parametrize("partial", [False, True])
def test_failed_write_leaves_nothing(store_path, monkeypatch, durability, err, partial):
    """A failing pwrite (nothing or half written) raises that OSError, leaves no byte in the segment, and writing resumes once the fault stops."""
    model = {}
    with pysos.Dict(store_path, durability=durability, autocompact=False) as d:
        _fill(d, model, "a", 20)
        seg = _newest_segment(store_path)
        size_before = os.path.getsize(seg)
        faults = Faults(monkeypatch)
        faults.fail("pwrite", err, partial=partial)
        with pytest.raises(OSError) as info:
            d["failed"] = "never"
        assert info.value.errno == err
        assert "failed" not in d and d.get("failed") is None
        assert os.path.getsize(seg) == size_before
        assert dict(d.items()) == model
        faults.clear()
        _fill(d, model, "b", 20)
        assert dict(d.items()) == model
    assert segments_whole(store_path) == []
    reopen_equals(store_path, model)


@pytest.mark.parametrize("err", ERRORS, ids=ERROR_IDS)
def test_failed_batch_leaves_nothing(store_path, monkeypatch, durability, err):
    """A batch whose single write fails half-way raises, none of its changes are visible or on disk, and the next batch commits."""
    model = {}
    with pysos.Dict(store_path, durability=durability, autocompact=False) as d:
        _fill(d, model, "a", 10)
        faults = Faults(monkeypatch)
        faults.fail("pwrite", err, partial=True)
        with pytest.raises(OSError) as info:
            with d.batch():
                d["a0"] = "changed"
                del d["a1"]
                d["new"] = 1
        assert info.value.errno == err
        assert dict(d.items()) == model
        faults.clear()
        with d.batch():
            d["new"] = 2
            del d["a2"]
        model["new"] = 2
        del model["a2"]
    assert segments_whole(store_path) == []
    reopen_equals(store_path, model)


@pytest.mark.parametrize("op", ["fdatasync", "fsync"])
def test_failed_fsync_in_fsync_mode(store_path, monkeypatch, op):
    """In "fsync" durability a failing fdatasync/fsync of the write fails the call, which is then not in the store (now or after reopen)."""
    model = {}
    with pysos.Dict(store_path, durability="fsync", autocompact=False) as d:
        _fill(d, model, "a", 10)
        faults = Faults(monkeypatch)
        faults.fail("fdatasync", errno.EIO)
        faults.fail("fsync", errno.EIO)
        with pytest.raises(OSError) as info:
            d["failed"] = 1
        assert info.value.errno == errno.EIO
        assert "failed" not in d
        faults.clear()
        _fill(d, model, "b", 5)
    assert segments_whole(store_path) == []
    reopen_equals(store_path, model)


def test_failed_write_and_failed_cut_back(store_path, monkeypatch):
    """When a batch write fails half-way and cutting it back fails too, later writes, a rotation and a reopen still give exactly the acknowledged state."""
    model = {}
    with pysos.Dict(store_path, autocompact=False, segment_size=4000) as d:
        _fill(d, model, "a", 5)
        faults = Faults(monkeypatch)
        faults.fail("pwrite", errno.EIO, partial=True)
        faults.fail("truncate", errno.EIO)
        with pytest.raises(OSError):
            with d.batch():
                for i in range(10):
                    d[f"lost{i}"] = "y" * 40
        faults.clear()
        d["short"] = 1  # shorter than the garbage the failed batch left behind
        model["short"] = 1
    reopen_equals(store_path, model)
    with pysos.Dict(store_path, autocompact=False, segment_size=4000) as d:
        d["short2"] = 2
        model["short2"] = 2
        with pytest.raises(OSError):
            faults = Faults(monkeypatch)
            faults.fail("pwrite", errno.EIO, partial=True)
            faults.fail("truncate", errno.EIO)
            with d.batch():
                for i in range(10):
                    d[f"lost{i}"] = "y" * 40
        faults.clear()
        _fill(d, model, "c", 80)  # rotates: the segment with the garbage is sealed
        assert d.stats()["segments"] > 1
    assert pysos.check(store_path) == []
    reopen_equals(store_path, model)


def _rotation_ops(tmp_path, monkeypatch):
    """The files-layer calls of one write that rotates (recorded on a scratch store)."""
    with pysos.Dict(tmp_path / "scratch", autocompact=False, segment_size=200) as d:
        d["a"] = "x" * 100
        faults = Faults(monkeypatch)
        d["b"] = "x" * 100  # passes segment_size: written, then the rotation
        sequence = list(faults.sequence)
        faults.clear()
    return sequence


@pytest.mark.parametrize("err", ERRORS, ids=ERROR_IDS)
def test_fault_during_rotation(tmp_path, monkeypatch, err):
    """A fault at each files-layer call of a write that rotates (the write, sealing, the new segment, every step of the MANIFEST swap): a call that raises changed nothing, a call that returns is kept, the MANIFEST names only segments that exist, writing resumes, and reopen cleans up the leftovers."""
    sequence = _rotation_ops(tmp_path, monkeypatch)
    assert "replace" in sequence and "fsync_dir" in sequence
    for n, op in enumerate(sequence):
        path = tmp_path / f"store-{n}"
        model = {}
        with pysos.Dict(path, autocompact=False, segment_size=200) as d:
            d["a"] = "x" * 100
            model["a"] = "x" * 100
            faults = Faults(monkeypatch)
            faults.fail_nth(n, err)
            try:
                d["b"] = "x" * 100
            except OSError as exc:
                assert exc.errno == err
                assert "b" not in d, f"fault in {op} (call {n}): a call that raised left its change"
            else:
                model["b"] = "x" * 100
            faults.clear()
            assert dict(d.items()) == model, f"fault in {op} (call {n})"
            current = manifest.read(os.fspath(path))
            missing = [s for s in current.segments if not os.path.exists(os.path.join(path, s))]
            assert missing == [], f"fault in {op} (call {n}): the MANIFEST names segments that are gone: {missing}"
            _fill(d, model, "c", 10)
            assert d.stats()["segments"] > 1
            assert dict(d.items()) == model, f"fault in {op} (call {n})"
        reopen_equals(path, model)
        assert stray_files(path) == [], f"fault in {op} (call {n})"
        assert pysos.check(path) == [], f"fault in {op} (call {n})"


def _churned_store(path, model):
    d = pysos.Dict(path, autocompact=False, segment_size=2500)
    for round_ in range(3):
        for i in range(30):
            key, value = f"k{i}", {"round": round_, "pad": "p" * 30}
            d[key] = value
            model[key] = value
    for i in range(0, 30, 3):
        del d[f"k{i}"]
        del model[f"k{i}"]
    d._store.seal()
    return d


def _compaction_ops(tmp_path, monkeypatch):
    d = _churned_store(tmp_path / "scratch", {})
    faults = Faults(monkeypatch)
    d.compact()
    sequence = list(faults.sequence)
    faults.clear()
    d.close()
    return sequence


def _first_and_last_of_runs(sequence):
    """(index, op) for each call, but only the first and last of a run of the same op."""
    return [(n, op) for n, op in enumerate(sequence)
            if n in (0, len(sequence) - 1) or sequence[n - 1] != op or sequence[n + 1] != op]


@pytest.mark.parametrize("err", ERRORS, ids=ERROR_IDS)
def test_fault_during_compaction(tmp_path, monkeypatch, err):
    """A fault at each files-layer call of a compaction (outputs, hints, fsyncs, every step of the MANIFEST swap, deleting the inputs): compact() raises that OSError (or absorbs a fault in a lock's pid note), the lock is free again, the store's contents are unchanged and usable, and a later compaction and reopen leave only named files."""
    sequence = _compaction_ops(tmp_path, monkeypatch)
    assert {"pwrite", "replace", "unlink", "fsync_dir"} <= set(sequence)
    for n, op in _first_and_last_of_runs(sequence):
        where = f"fault in {op} (call {n} of {len(sequence)})"
        path = tmp_path / f"store-{n}"
        model = {}
        d = _churned_store(path, model)
        try:
            faults = Faults(monkeypatch)
            faults.fail_nth(n, err)
            try:
                d.compact()
            except OSError as exc:
                assert exc.errno == err, where
            else:  # only a fault in the locks' pid bookkeeping may be absorbed
                assert op == "truncate", f"{where}: compact() did not report the error"
            assert faults.rules[0].fired, where
            faults.clear()
            assert lock_is_free(path, locks.COMPACT), f"{where}: the compaction lock is still held"
            assert dict(d.items()) == model, where
            current = manifest.read(os.fspath(path))
            missing = [s for s in current.segments if not os.path.exists(os.path.join(path, s))]
            assert missing == [], f"{where}: the MANIFEST names segments that are gone: {missing}"
            d["after"] = n
            model["after"] = n
            assert dict(d.items()) == model, where
            d.compact()
            assert dict(d.items()) == model, where
        finally:
            faults.clear()
            d.close()
        reopen_equals(path, model)
        assert stray_files(path) == [], where
        assert pysos.check(path) == [], where


@pytest.mark.parametrize("n", range(0, 14, 3))
def test_fault_in_outside_compaction_then_reopen(tmp_path, monkeypatch, n):
    """A compaction run from outside the writer (as the daemon does) that fails at some call leaves a store that reopens with every acknowledged change and no stray files."""
    model = {}
    path = tmp_path / "store"
    _churned_store(path, model).close()
    faults = Faults(monkeypatch)
    faults.fail_nth(n, errno.EIO)
    try:
        compact_all(os.fspath(path), segment_size=3000)
    except OSError:
        pass
    assert faults.rules[0].fired, "the fault never fired"
    faults.clear()
    reopen_equals(path, model)
    assert stray_files(path) == []


def _store_needing_recovery(path, model):
    """A closed store with a torn tail in its newest segment and a leftover segment file."""
    with pysos.Dict(path, autocompact=False, segment_size=1500) as d:
        _fill(d, model, "a", 40)
    newest = _newest_segment(path)
    with open(newest, "ab") as f:
        f.write(b'{"c":"0badf00d","k":"torn","v":')
    with open(os.path.join(path, "seg-90000000.jsonl"), "wb") as f:
        f.write(b"")


@pytest.mark.parametrize("err", ERRORS, ids=ERROR_IDS)
def test_fault_during_open_recovery(tmp_path, monkeypatch, err):
    """A fault at each files-layer call of a writer's open that cuts a torn tail and removes a leftover: the open raises that OSError or succeeds, and either way the next open has exactly the acknowledged contents."""
    scratch = tmp_path / "scratch"
    _store_needing_recovery(scratch, {})
    faults = Faults(monkeypatch)
    pysos.Dict(scratch, autocompact=False).close()
    sequence = list(faults.sequence)
    faults.clear()
    assert "truncate" in sequence and "unlink" in sequence
    for n, op in enumerate(sequence):
        path = tmp_path / f"store-{n}"
        model = {}
        _store_needing_recovery(path, model)
        faults.fail_nth(n, err)
        try:
            pysos.Dict(path, autocompact=False).close()
        except OSError as exc:
            assert exc.errno == err, f"fault in {op} (call {n})"
        faults.clear()
        reopen_equals(path, model)
        assert stray_files(path) == [], f"fault in {op} (call {n})"
