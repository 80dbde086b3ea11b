"""Expiry: d.set(k, v, expire=s), the store default Dict(path, expire=s); expired keys are
absent everywhere at once, across reopen, compaction, hints and readers (clock faked)."""

import os

import pytest

import pysos
from pysos.segments import hints, manifest, segment
from store_files import records


def _absent_everywhere(d, key):
    assert key not in d
    assert d.get(key, "dflt") == "dflt"
    with pytest.raises(KeyError):
        d[key]
    assert key not in list(d)
    assert key not in dict(d.items())
    assert key not in d.keys()


def test_set_with_expire_disappears_at_its_deadline(store_path, clock):
    """A key set with expire=10 is there until 10 s have passed, then absent for get, [], in, len, iteration, items."""
    with pysos.Dict(store_path) as d:
        d.set("tok", {"user": 1}, expire=10)
        d["keep"] = 1
        clock.advance(9.9)
        assert d["tok"] == {"user": 1} and len(d) == 2
        clock.advance(0.1)
        _absent_everywhere(d, "tok")
        assert len(d) == 1 and dict(d) == {"keep": 1} and list(d.values()) == [1]


def test_reader_in_same_process_agrees_with_writer(store_path, clock):
    """A readonly handle hides an expired key at the same instant as the writer (default and slow refresh)."""
    with pysos.Dict(store_path) as d, pysos.Dict(store_path, readonly=True) as r, \
            pysos.Dict(store_path, readonly=True, refresh_interval=5) as slow:
        d.set("a", 1, expire=3)
        r.refresh()
        slow.refresh()
        assert r["a"] == 1 and slow["a"] == 1 and len(r) == len(slow) == 1
        clock.advance(3)
        for handle in (d, r, slow):
            _absent_everywhere(handle, "a")
            assert len(handle) == 0


def test_store_default_expire_applies_to_setitem_update_setdefault(store_path, clock):
    """Dict(path, expire=5): d[k] = v, update() and setdefault() expire after 5 s; set(..., expire=None) never does."""
    with pysos.Dict(store_path, expire=5) as d:
        assert d.expire == 5.0
        d["a"] = 1
        d.update({"b": 2}, c=3)
        d.setdefault("e", 5)
        d.set("forever", 0, expire=None)
        d.set("long", 0, expire=100)
        clock.advance(5)
        assert dict(d) == {"forever": 0, "long": 0}
        clock.advance(1000)
        assert dict(d) == {"forever": 0}


@pytest.mark.parametrize("bad,error", [(0, ValueError), (-1, ValueError), (float("nan"), ValueError),
                                       (float("inf"), ValueError), ("10", TypeError), (True, TypeError),
                                       (10**400, ValueError)])  # (an int no float can hold)
def test_bad_expire_is_refused_and_writes_nothing(store_path, bad, error):
    """An expire that is not a positive finite number of seconds raises and writes nothing; Dict(expire=bad) refuses to open."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
        before = {n: (store_path / n).read_bytes() for n in os.listdir(store_path)}
        with pytest.raises(error):
            d.set("b", 2, expire=bad)
        assert {n: (store_path / n).read_bytes() for n in os.listdir(store_path)} == before
        assert dict(d) == {"a": 1}
    with pytest.raises(error):
        pysos.Dict(store_path, expire=bad)


def test_overwrite_or_delete_cancels_the_deadline(store_path, clock):
    """Setting a key again without expiry makes it permanent; deleting and re-setting it too."""
    with pysos.Dict(store_path) as d:
        d.set("a", 1, expire=1)
        d["a"] = 2
        d.set("b", 1, expire=1)
        del d["b"]
        d["b"] = 3
        d.set("c", 1, expire=1)
        d.set("c", 2, expire=50)
        clock.advance(2)
        assert dict(d) == {"a": 2, "b": 3, "c": 2}
    with pysos.Dict(store_path) as d:  # the same after a reopen (scan of the records)
        assert dict(d) == {"a": 2, "b": 3, "c": 2}
        clock.advance(50)
        assert dict(d) == {"a": 2, "b": 3}


def test_discarded_batch_restores_deadlines(store_path, clock):
    """A batch that raises puts back each key's deadline as it was (and forgets new ones)."""
    with pysos.Dict(store_path) as d:
        d.set("a", 1, expire=10)
        with pytest.raises(RuntimeError):
            with d.batch():
                d["a"] = 2  # would make "a" permanent
                d.set("b", 1, expire=100)
                raise RuntimeError
        assert dict(d) == {"a": 1}
        clock.advance(10)
        assert dict(d) == {}


def test_batch_with_expiry_is_one_unit(store_path, clock):
    """Expiring writes inside a batch commit together and expire at their own deadlines."""
    with pysos.Dict(store_path) as d:
        with d.batch():
            d.set("a", 1, expire=1)
            d.set("b", 2, expire=3)
            d["c"] = 3
        clock.advance(1)
        assert dict(d) == {"b": 2, "c": 3}
        clock.advance(2)
        assert dict(d) == {"c": 3}


def test_expiry_survives_reopen(store_path, clock):
    """Deadlines are on disk: after a reopen a live key still expires on time, an expired one stays gone."""
    with pysos.Dict(store_path, segment_size=200) as d:
        for i in range(20):
            d.set(f"k{i}", i, expire=1 + i)
    clock.advance(10.5)
    with pysos.Dict(store_path) as d:
        assert sorted(d) == sorted(f"k{i}" for i in range(10, 20))
        clock.advance(5)
        assert sorted(d) == sorted(f"k{i}" for i in range(15, 20))


def test_manifest_version_goes_to_2_with_the_first_expiring_record(store_path, clock):
    """A store without expiry keeps MANIFEST version 1 (older pysos opens it); the first expiring write makes it 2."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
        assert manifest.read(str(store_path)).version == 1
        assert b'"version":1' in (store_path / "MANIFEST").read_bytes()
        d.set("b", 1, expire=5)
        assert manifest.read(str(store_path)).version == 2
    assert [line for line in records(store_path) if line.get("k") == "b"][0]["x"] == clock.wall_now + 5
    with pysos.Dict(store_path) as d:  # and stays 2 through rotations and compactions
        d.compact()
        assert manifest.read(str(store_path)).version == 2
        d["b"] = 2  # no record of the store expires now
        d.compact()
    assert manifest.read(str(store_path)).version == 2
    pysos.repair(store_path)  # and repairs (FORMAT.md)
    assert manifest.read(str(store_path)).version == 2


def test_compaction_drops_expired_records_without_tombstones(store_path, clock):
    """An expired record whose key has nothing older is dropped by compaction, with no tombstone left."""
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        for i in range(30):
            d.set(f"k{i}", "x" * 20, expire=5)
        d["keep"] = 1
        clock.advance(5)
        result = d.compact()
        assert result["records_expired"] == 30
        assert dict(d) == {"keep": 1}
        assert d.stats()["live_bytes"] == d.stats()["disk_bytes"]
    lines = records(store_path)
    assert [line["k"] for line in lines] == ["keep"]
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"keep": 1}


def test_compaction_tombstones_an_expired_key_with_an_older_record(store_path, clock):
    """If an older segment outside the merge holds the key, the expired record becomes a tombstone: the old value never comes back."""
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["a"] = "old"
        d._store.seal()
        d.compact()  # "a" = "old" sits alone in a sealed segment
        first = manifest.read(str(store_path)).segments[0]
        d.set("a", "new", expire=5)
        d._store.seal()
        clock.advance(5)
        current = manifest.read(str(store_path))
        # merge only the second sealed segment, leaving the older one (with "a") out of the run
        from pysos.compactor.merge import merge_run
        run = current.segments.index(first) + 1
        result = merge_run(str(store_path), current, run, run + 1, segment_size=10**6)
        assert result["records_expired"] == 1
        d.refresh()
        assert "a" not in d
    tombstones = [line for line in records(store_path) if line.get("d") == 1]
    assert [t["k"] for t in tombstones] == ["a"]
    for opener in (lambda: pysos.Dict(store_path), lambda: pysos.Dict(store_path, readonly=True)):
        with opener() as d:
            assert "a" not in d and len(d) == 0


def _hint_of(store_path, name):
    size = (store_path / name).stat().st_size
    return hints.read(str(store_path / segment.hint_name(name)), name, size, "dict")


def _open_report(caplog, opener):
    """What opening read from hints and what it scanned: {segment: (hinted, scanned)}."""
    import logging

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pysos"):
        handle = opener()
    return handle, {r.pysos_segment: (r.pysos_hinted, r.pysos_scanned) for r in caplog.records
                    if hasattr(r, "pysos_segment")}


def test_compaction_output_hint_lists_deadlines_and_opening_uses_it(store_path, clock, caplog):
    """A compaction output holding expiring records gets a version 3 hint listing each record's deadline; opening (writer or reader) takes the deadlines from it, scanning nothing of it, and the keys still expire on time."""
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d.set("a", 1, expire=10)
        d["b"] = 2
        d.set("c", 3, expire=20)
        d["c"] = 3.5  # set again without expiry: its older deadline must not come back
        d.set("e", 5, expire=30)
        d.compact()
        name = manifest.read(str(store_path)).segments[0]
    hint = _hint_of(store_path, name)
    assert hint is not None and hint.keys == ["a", "b", "c", "e"]
    assert hint.deadlines == [clock.wall() + 10, None, None, clock.wall() + 30]
    assert (store_path / segment.hint_name(name)).read_bytes().split(b"\n")[0].endswith(b'"version":3}')
    assert pysos.check(store_path) == []
    for opener in (lambda: pysos.Dict(store_path, readonly=True), lambda: pysos.Dict(store_path, autocompact=False)):
        handle, report = _open_report(caplog, opener)
        with handle as h:
            assert report[name] == ((store_path / name).stat().st_size, 0)  # all from the hint
            assert dict(h) == {"a": 1, "b": 2, "c": 3.5, "e": 5}
            clock.advance(10)
            assert dict(h) == {"b": 2, "c": 3.5, "e": 5}
            clock.advance(20)
            assert dict(h) == {"b": 2, "c": 3.5}
            clock.advance(-30)


def _rotate_with_hint(d):
    d._store._rotate()  # what a full segment does: seal it, its hint written from the index
    if d._store._sealer is not None:
        d._store._sealer.close()  # (the hint is written in a thread beside the writer's)


def test_writer_hints_list_deadlines_and_records_expired_before_the_seal(store_path, clock, caplog):
    """The writer's own hints (at rotation, at a clean close) of segments holding expiring
    records list each one's deadline, including the records of keys that expired and were
    dropped before the hint was written (the index no longer has them): without those, an
    older record of the key, in an earlier segment, would come back on the next open."""
    t0 = clock.wall()
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["k"], d["g"], d["b"] = "old", "old", 2
        d._store.seal()  # (no hint: the older values lie in a segment opening scans)
        d.set("k", "new", expire=5)
        d.set("c", 3, expire=20)
        d["e"] = 4
        clock.advance(5)
        assert "k" not in d and len(d) == 4  # k dropped by expiry: the index forgets it
        _rotate_with_hint(d)
        sealed = manifest.read(str(store_path)).segments[-2]
        d.set("f", 6, expire=30)
        d.set("g", "new", expire=1)
        clock.advance(1)
        assert len(d) == 4 and "g" not in d
        newest = manifest.read(str(store_path)).segments[-1]
    hint = _hint_of(store_path, sealed)
    assert hint is not None and list(zip(hint.keys, hint.deadlines)) == [("k", t0 + 5), ("c", t0 + 20), ("e", None)]
    size = (store_path / newest).stat().st_size
    fd = os.open(store_path / newest, os.O_RDONLY)
    try:
        hint = hints.read_prefix(str(store_path / segment.hint_name(newest)), newest, fd, size, "dict", sealed=False)[0]
    finally:
        os.close(fd)
    assert list(zip(hint.keys, hint.deadlines)) == [("f", t0 + 35), ("g", t0 + 6)]
    assert pysos.check(store_path) == []
    for opener in (lambda: pysos.Dict(store_path, readonly=True), lambda: pysos.Dict(store_path, autocompact=False)):
        handle, report = _open_report(caplog, opener)
        with handle as h:
            assert report[sealed][1] == 0 and report[newest][1] == 0  # nothing scanned of them
            assert dict(h) == {"b": 2, "c": 3, "e": 4, "f": 6}


@pytest.mark.parametrize("before", ["plain", "later-deadline"])
def test_the_expiring_write_that_fills_a_segment_has_its_deadline_in_the_hint(store_path, clock, before):
    """The write that fills a segment, on the writer's slower path (the store's first
    expiring write, or a deadline earlier than those before it), has its deadline in the
    hint its rotation writes: a reopen from hints drops the key at its deadline, as a scan
    does (a review finding: the deadline was set after the rotation copied them)."""
    t0 = clock.wall()
    with pysos.Dict(store_path, segment_size=200, autocompact=False) as d:
        if before == "plain":
            d["a"] = 1
        else:
            d.set("a", 1, expire=100)
        d.set("b", "x" * 200, expire=10)  # fills the segment: it rotates
        sealed = manifest.read(str(store_path)).segments[0]
    hint = _hint_of(store_path, sealed)
    assert hint is not None and hint.deadlines[hint.keys.index("b")] == t0 + 10
    assert pysos.check(store_path) == []
    clock.advance(10)
    for opener in (lambda: pysos.Dict(store_path, readonly=True), lambda: pysos.Dict(store_path, autocompact=False)):
        with opener() as h:
            assert dict(h) == {"a": 1}


def test_writer_stops_noting_expired_keys_past_its_bound(store_path, clock, monkeypatch):
    """The writer's notes of keys dropped by expiry are bounded: past a quarter of the index
    plus _NOTES_BEYOND, that segment gets no hint (opening scans it and reads right); the
    next segment starts noting again and gets its hint."""
    from pysos.engine import hinting

    monkeypatch.setattr(hinting, "_NOTES_BEYOND", 2)
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        for i in range(6):
            d[f"k{i}"] = "old"
        d._store.seal()
        for i in range(6):
            d.set(f"k{i}", "new", expire=1)
        d["keep"] = 1
        clock.advance(1)
        assert len(d) == 1  # six dropped: more than 6 // 4 + 2 notes
        _rotate_with_hint(d)
        unhinted = manifest.read(str(store_path)).segments[-2]
        d.set("k0", "again", expire=1)
        clock.advance(1)
        assert len(d) == 1
        newest = manifest.read(str(store_path)).segments[-1]
    assert not (store_path / segment.hint_name(unhinted)).exists()
    assert (store_path / segment.hint_name(newest)).exists()
    assert pysos.check(store_path) == []
    for opener in (lambda: pysos.Dict(store_path, readonly=True), lambda: pysos.Dict(store_path, autocompact=False)):
        with opener() as h:
            assert dict(h) == {"keep": 1}


def test_writer_hint_keeps_a_tombstone_written_after_a_key_expired(store_path, clock):
    """A key that expired (dropped), was set again and deleted in the same segment: the
    segment's hint gives its tombstone (the newest record), not the expired one."""
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["k"] = "old"
        d._store.seal()
        d.set("k", "v1", expire=1)
        d["x"] = 1
        clock.advance(1)
        assert "k" not in d
        d["k"] = "v2"
        del d["k"]
        _rotate_with_hint(d)
        sealed = manifest.read(str(store_path)).segments[-2]
    hint = _hint_of(store_path, sealed)
    assert hint is not None and list(hint.tombstones()) == ["k"]
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r) == {"x": 1}


def test_writer_hint_of_a_key_expired_in_a_discarded_batch(store_path, clock):
    """A key written and dropped by expiry inside a batch that is then discarded: its
    record never reached the file, and later records took its place, one of them an
    expiring record of another key of the same length exactly where the discarded one
    would have been. The segment's hint must not describe the key there (the writer reads
    each such record back and checks its key): the store reads right after a reopen, and
    check() agrees with every hint."""
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["k"] = "old"
        d._store.seal()  # the older value lies in an earlier segment
        with pytest.raises(RuntimeError):
            with d.batch():  # its bytes would start with a 33-byte batch-begin line
                d.set("k", "in-batch", expire=1)
                clock.advance(1)
                assert len(d) == 0  # dropped, inside the batch
                raise RuntimeError("discard")
        d["p"] = 123  # 33 bytes, where the batch-begin line would have been
        d.set("q", "in-batch", expire=1)  # the same length as k's discarded record, in its place
        d["y"] = 1
        assert dict(d) == {"k": "old", "p": 123, "q": "in-batch", "y": 1}
    assert pysos.check(store_path) == []
    for opener in (lambda: pysos.Dict(store_path, readonly=True), lambda: pysos.Dict(store_path, autocompact=False)):
        with opener() as h:
            assert dict(h) == {"k": "old", "p": 123, "q": "in-batch", "y": 1}


def test_segments_without_expiring_records_keep_their_hints(store_path, clock):
    """Stores (and segments) without expiry keep fast-open hints: a compaction output of plain records gets one."""
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["b"] = 2
        d.compact()
        name = manifest.read(str(store_path)).segments[0]
    size = (store_path / name).stat().st_size
    assert hints.read(str(store_path / segment.hint_name(name)), name, size, "dict") is not None


def test_wall_clock_step_is_seen_within_a_second(store_path, clock):
    """A step of the wall clock alone (monotonic unchanged) expires keys at the writer's next look, at most a second later."""
    with pysos.Dict(store_path) as d:
        d.set("a", 1, expire=3600)
        assert "a" in d
        clock.step_wall(3600)
        clock.mono_now += 1.0
        assert "a" not in d and len(d) == 0


def test_expired_keys_count_as_dead_bytes(store_path, clock):
    """Once expired, a key's record counts as dead in stats() (so compaction policy sees it as garbage)."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d.set("a", "x" * 100, expire=1)
        live = d.stats()["live_bytes"]
        assert live > 100
        clock.advance(1)
        stats = d.stats()
        assert stats["keys"] == 0 and stats["live_bytes"] == 0 and stats["dead_bytes"] == stats["disk_bytes"]


def test_observers_hear_expiring_writes_but_not_expiry(store_path, clock):
    """Observers hear set(..., expire=) like any write; a key expiring calls no observer."""
    heard = []
    with pysos.Dict(store_path) as d:
        d.observe(lambda *args: heard.append(args))
        d.set("a", 1, expire=1)
        clock.advance(1)
        assert "a" not in d
    assert heard == [("a", 1, None)]


def test_writes_that_expire_at_once_are_heard_whole_across_checkpoints(store_path):
    """Writes whose deadline passes as they are written (the real clock, expire=1 us), over
    a few MiB, so the writer's checkpoints (every MiB) come while the key just written is
    due: each write returns, its observer hears it with its value, and only afterwards is
    the key gone (the checkpoint once dropped the keys due inside the write: KeyError)."""
    heard = []
    with pysos.Dict(store_path) as d:
        d.observe(lambda *args: heard.append(args))
        for i in range(20000):  # ~2.5 MiB
            d.set(f"k{i}", "x" * 100, expire=1e-6)
        assert len(d) == 0
    assert heard == [(f"k{i}", "x" * 100, None) for i in range(20000)]


def test_readonly_set_raises(store_path):
    """set() on a reader raises ReadOnlyError and writes nothing."""
    pysos.Dict(store_path).close()
    with pysos.Dict(store_path, readonly=True) as r:
        with pytest.raises(pysos.ReadOnlyError):
            r.set("a", 1, expire=5)


def test_background_merge_keeps_deadlines_of_live_expiring_records(store_path, clock):
    """The writer's thread (merge from its index) gives an output holding a live expiring record a hint listing its deadline, so the key still expires on time after a reopen and in a reader."""
    from pysos.compactor.background import BackgroundCompactor

    with pysos.Dict(store_path, segment_size=256, autocompact=False) as d:
        d.set("a", "v", expire=100)
        for _ in range(20):
            d["g"] = "x" * 50  # garbage: makes the merge due, rotates segments
        d._store.seal()
        compactor = BackgroundCompactor(d._store, ratio=0.0, min_dead_bytes=0)
        try:
            compactor._compact_while_due(d._store)  # what one wake-up of the thread does
        finally:
            compactor.stop()
        assert compactor.compactions >= 1
        assert dict(d) == {"a": "v", "g": "x" * 50}
        [holder] = [n for n in manifest.read(str(store_path)).segments if b'"k":"a"' in (store_path / n).read_bytes()]
    hint = _hint_of(store_path, holder)  # the merge's output
    assert hint is not None and hint.deadlines[hint.keys.index("a")] == clock.wall() + 100
    assert pysos.check(store_path) == []
    clock.advance(100)
    for opener in (lambda: pysos.Dict(store_path, autocompact=False), lambda: pysos.Dict(store_path, readonly=True)):
        with opener() as d:
            assert dict(d) == {"g": "x" * 50}


def test_background_merge_drops_expired_records(store_path, clock):
    """The writer's thread drops a record that expired before its merge (nothing is older than its run: no tombstone), and the writer forgets the key."""
    from pysos.compactor.background import BackgroundCompactor

    with pysos.Dict(store_path, segment_size=256, autocompact=False) as d:
        d.set("a", "v" * 30, expire=5)
        for _ in range(20):
            d["g"] = "x" * 50
        d._store.seal()
        clock.advance(5)
        compactor = BackgroundCompactor(d._store, ratio=0.0, min_dead_bytes=0)
        try:
            compactor._compact_while_due(d._store)
        finally:
            compactor.stop()
        assert compactor.compactions >= 1
        assert dict(d) == {"g": "x" * 50}
        assert d.stats()["live_bytes"] == d.stats()["disk_bytes"]
    assert [line["k"] for line in records(store_path)] == ["g"]


def test_daemon_sees_expired_records_as_garbage(store_path, clock):
    """The daemon's estimate counts expired records as dead, even in segments it summarized before they expired, and a store whose only garbage is expired keys gets compacted."""
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        for i in range(200):
            d.set(f"session:{i}", "x" * 50, expire=5)  # fresh keys: nothing is ever overwritten
        d["keep"] = 1
        d._store.seal()
        watch = StoreWatch(str(store_path), "dict")
        policy = plan.Policy(ratio=0.5, min_dead_bytes=1000)
        assert watch.compact_if_due(policy, 4096, lambda n: None) is None  # all live
        clock.advance(5)
        result = watch.compact_if_due(policy, 4096, lambda n: None)
        assert result is not None and result["records_expired"] > 0
        while watch.compact_if_due(policy, 4096, lambda n: None) is not None:
            pass
        d.refresh()
        assert dict(d) == {"keep": 1}
    assert [line["k"] for line in records(store_path)] == ["keep"]


def test_daemon_clean_mark_ends_when_a_record_there_expires(store_path, clock):
    """A segment the daemon counts as clean (output of a fruitless merge) counts the bytes of a record in it that expires as dead: its expired records do not stay on disk until an older segment changes."""
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d["old"] = 1
        d._store.seal()
        d.set("s", "x" * 100, expire=5)
        d._store.seal()
        watch = StoreWatch(str(store_path), "dict")
        names = list(manifest.read(str(store_path)).segments)
        plan.mark_clean(watch.clean, names, {names[1]: 0})  # as if a fruitless merge wrote it
        _, estimates = watch.estimates()
        assert estimates[1].dead == 0 and names[1] in watch.clean
        clock.advance(5)
        _, estimates = watch.estimates()
        assert estimates[1].dead >= 100  # the mark discounts only what was dead when it was made


def test_expiring_records_under_a_version_1_manifest_are_marked_before_the_next_write(store_path, clock):
    """Records that expire under a MANIFEST left at version 1 by other hands: the writer marks
    it 2 on opening (its in-order expiring writes no longer look at the MANIFEST)."""
    import dataclasses

    with pysos.Dict(store_path, expire=60) as d:
        d["a"] = 1
    current = manifest.read(str(store_path))
    manifest.write(str(store_path), dataclasses.replace(current, version=1, generation=current.generation + 1))
    assert manifest.read(str(store_path)).version == 1
    with pysos.Dict(store_path, expire=60) as d:
        clock.advance(1)
        d["b"] = 2  # after "a": the queue's usual case
        assert manifest.read(str(store_path)).version == 2
        assert dict(d) == {"a": 1, "b": 2}
    clock.advance(59.5)  # past "a"'s deadline, before "b"'s
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"b": 2}


def test_a_version_1_manifest_over_an_expiring_record_since_deleted_is_marked_by_the_next_expiring_write(
        store_path, clock):
    """A MANIFEST left at version 1 over an expiring record whose key was deleted since: the
    writer that opens it finds no deadline pending, and its first expiring write marks it 2."""
    import dataclasses

    with pysos.Dict(store_path, expire=60) as d:
        d["a"] = 1
        del d["a"]
    current = manifest.read(str(store_path))
    manifest.write(str(store_path), dataclasses.replace(current, version=1, generation=current.generation + 1))
    with pysos.Dict(store_path, expire=60) as d:
        clock.advance(1)
        d["b"] = 2
        assert manifest.read(str(store_path)).version == 2


def test_clear_after_a_deadline_passed_and_a_write_deletes_everything(store_path, clock):
    """A key expires, a write follows (writes do not drop expired keys), then clear(): the
    store ends empty, with no KeyError for the key already gone."""
    with pysos.Dict(store_path) as d:
        d["x"] = 0
        d.set("a", 1, expire=0.25)
        clock.advance(0.5)
        d["b"] = 2
        assert "2 items" in repr(d)  # repr counts as len() does: not the expired key
        d.clear()
        assert len(d) == 0 and dict(d) == {}
    with pysos.Dict(store_path) as d:
        assert len(d) == 0


def test_a_discarded_batch_in_which_a_key_expired_counts_its_bytes_dead(store_path, clock):
    """A key expires inside a batch that is then discarded: stats() no longer counts it live."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d["x"] = 0
        d.set("a", "y" * 100, expire=0.25)
        clock.advance(0.5)
        with pytest.raises(ZeroDivisionError):
            with d.batch():
                d["b"] = 1
                assert len(d) == 2
                1 / 0
        stats = d.stats()
        lines = [line for name in sorted(os.listdir(store_path)) if name.endswith(".jsonl")
                 for line in (store_path / name).read_bytes().splitlines(keepends=True)]
        assert stats["live_bytes"] == len(next(line for line in lines if b'"k":"x"' in line))
        assert stats["dead_bytes"] > 100


def test_incr_and_transform_keep_an_existing_key_without_a_deadline(store_path, clock):
    """In a store with a default expire, incr/transform of a key written for ever keep it for
    ever; a new key takes the default; a key with a deadline keeps it."""
    with pysos.Dict(store_path, expire=10) as d:
        d.set("forever", 1, expire=None)
        d.set("short", 1, expire=1)
        d.incr("forever")
        d.transform("forever", lambda v: v + 1)
        d.incr("short")
        d.incr("new")
        clock.advance(1)
        assert "short" not in d and d["forever"] == 3 and d["new"] == 1
        clock.advance(9)
        assert "new" not in d and d["forever"] == 3


@pytest.mark.parametrize("lie", ["later", "dropped"])
def test_check_reports_a_hint_whose_deadlines_lie(store_path, clock, lie):
    """A checksummed hint of a compaction output whose deadlines are not its records' (one
    a second later; or none at all, a version 2 hint over expiring records, which opening
    would take as never expiring): check() reports an error naming the hint."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d.set("a", 1, expire=10)
        d["b"] = 1
        d["b"] = 2  # garbage: compact() merges only a store with some
        d.compact()
        name = manifest.read(str(store_path)).segments[0]
    assert pysos.check(store_path) == []
    hint = _hint_of(store_path, name)
    deadlines = [t + 1 if t is not None else None for t in hint.deadlines] if lie == "later" else None
    os.unlink(store_path / segment.hint_name(name))
    size = (store_path / name).stat().st_size
    hints.write(str(store_path), name, size, hints.Hint(hint.keys, hint.lengths, hint.gaps, deadlines),
                segment.hint_name(name))
    assert _hint_of(store_path, name) is not None  # usable: only check() can tell
    problems = pysos.check(store_path)
    assert [(p["file"], p["severity"]) for p in problems] == [(segment.hint_name(name), "error")]
    assert ("without their deadlines" if lie == "dropped" else "disagrees") in problems[0]["problem"]


def test_expires_at_gives_each_key_its_deadline(store_path, clock):
    """expires_at(k): the deadline (Unix seconds) of a key that expires, None for one that
    never does, KeyError for one that is not there (or has expired), the same in a reader."""
    with pysos.Dict(store_path, refresh_interval=0) as d:
        d["plain"] = 1
        d.set("brief", 2, expire=5)
        d.set("later", 3, expire=50)
        d.set("later", 4)  # set again without expire: never expires
        with pysos.Dict(store_path, readonly=True, refresh_interval=0) as reader:
            for handle in (d, reader):
                assert handle.expires_at("plain") is None and handle.expires_at("later") is None
                assert handle.expires_at("brief") == clock.wall_now + 5
                with pytest.raises(KeyError):
                    handle.expires_at("missing")
            clock.advance(5)
            for handle in (d, reader):
                with pytest.raises(KeyError):
                    handle.expires_at("brief")


def test_set_until_and_items_with_deadlines(store_path, clock):
    """set_until(k, v, deadline) stores k with that very deadline (a passed one removes k);
    items_with_deadlines() gives (key, value, deadline) from one snapshot; bad deadlines and
    bad values raise and change nothing."""
    with pysos.Dict(store_path) as d:
        d["old"] = 0
        d.set_until("a", 1, clock.wall_now + 7.25)
        d.set_until("b", 2, int(clock.wall_now) + 100)
        d.set_until("old", 3, clock.wall_now - 1)  # passed: the key goes, as its record would
        assert d.expires_at("a") == clock.wall_now + 7.25 and "old" not in d
        assert sorted(d.items_with_deadlines()) == [("a", 1, clock.wall_now + 7.25),
                                                    ("b", 2, float(int(clock.wall_now) + 100))]
        d["c"] = 4
        for bad in (float("inf"), float("nan"), 10**400, "soon", True, None):
            with pytest.raises(TypeError):
                d.set_until("c", 5, bad)
        with pytest.raises(TypeError):
            d.set_until("c", object(), clock.wall_now - 1)  # refused before the key is removed
        assert d["c"] == 4 and d.expires_at("c") is None
        clock.advance(7.25)
        assert sorted(d.items_with_deadlines()) == [("b", 2, float(int(clock.wall_now - 7.25) + 100)), ("c", 4, None)]
