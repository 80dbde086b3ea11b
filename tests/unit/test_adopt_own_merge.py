"""The writer adopting its own thread's merge: when that merge dropped no expired record,
the search for keys left in the retired segments (Writer._drop_expired_copies, a pass
over every expiring key under the writer's lock) is skipped; in every other case it runs,
and no key of the index is left pointing into a segment the MANIFEST no longer names."""

import pytest

import pysos
from pysos.compactor import index_merge, merge
from pysos.compactor.background import BackgroundCompactor
from pysos.engine.writer import Writer
from pysos.segments import index, manifest, segment


def _one_wake_up(store):
    compactor = BackgroundCompactor(store, ratio=0.0, min_dead_bytes=0)
    try:
        compactor._compact_while_due(store)  # what one wake-up of the thread does
    finally:
        compactor.stop()
    assert compactor.compactions >= 1


def _locations_all_in_manifest(store):
    named = {segment.segment_number(n) for n in manifest.read(store.directory).segments}
    return {location >> index.SEGMENT_SHIFT for location in store.index.values()} <= named


@pytest.fixture
def searches(monkeypatch):
    """How many times a writer searched retired segments for keys left in them."""
    calls = []
    original = Writer._drop_expired_copies

    def spy(self, retired):
        calls.append(set(retired))
        return original(self, retired)

    monkeypatch.setattr(Writer, "_drop_expired_copies", spy)
    return calls


def _store_with_garbage(path, expire):
    d = pysos.Dict(path, segment_size=512, autocompact=False, expire=expire)
    for i in range(30):
        d[f"s{i}"] = "v" * 20
        d.set("g", "x" * 40, expire=None)  # garbage beside each: every merge is due and has outputs
    d._store.seal()
    return d


def test_a_merge_that_expired_nothing_is_adopted_without_the_search(store_path, clock, searches):
    with _store_with_garbage(store_path, 3600) as d:
        _one_wake_up(d._store)
        assert searches == []
        assert _locations_all_in_manifest(d._store)
        assert len(d) == 31 and d["s0"] == "v" * 20
    assert pysos.check(store_path) == []


def test_a_merge_that_expired_records_is_adopted_with_the_search(store_path, clock, searches, monkeypatch):
    original = index_merge.merge_live

    def slow_merge(*args, **kwargs):  # the keys expire while the merge runs
        clock.advance(5)
        return original(*args, **kwargs)

    monkeypatch.setattr(index_merge, "merge_live", slow_merge)
    with _store_with_garbage(store_path, 5) as d:
        _one_wake_up(d._store)
        assert d.stats()["last_compaction"]["records_expired"] > 0
        assert searches and _locations_all_in_manifest(d._store)
        assert dict(d) == {"g": "x" * 40}
    assert pysos.check(store_path) == []


def test_a_second_merge_before_the_adoption_brings_the_search_back(store_path, clock, searches, monkeypatch):
    """Between the thread's merge (nothing expired) and the writer's adoption, another
    compactor (a daemon, say) merges that merge's outputs, and drops records that expired
    meanwhile: the MANIFEST adopted is not the one the skip was meant for."""
    original, done = Writer.adopt_compaction, []

    def daemon_first(self, result, merged=()):
        if done or not result["outputs"]:
            return original(self, result, merged)
        done.append(result)
        clock.step_wall(10)  # the expiring keys' deadlines pass (by the wall clock only: no look)
        outputs, current = result["outputs"], manifest.read(self.directory)
        run = (current.segments.index(outputs[0]), current.segments.index(outputs[-1]) + 1)
        merge.compact_directory(self.directory, segment_size=512, choose=lambda d, m: run if m == current else None)
        assert manifest.read(self.directory).generation > result["generation"]
        return original(self, result, merged)

    monkeypatch.setattr(Writer, "adopt_compaction", daemon_first)
    with _store_with_garbage(store_path, 5) as d:
        _one_wake_up(d._store)
        assert searches and _locations_all_in_manifest(d._store)
        assert dict(d) == {"g": "x" * 40}
    assert pysos.check(store_path) == []
