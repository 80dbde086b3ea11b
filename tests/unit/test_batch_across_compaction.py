"""A batch that is discarded after its writer adopted a compaction (published meanwhile by
the daemon, another process's compact(), or the writer's own thread, and adopted at the
writer's once-a-second look from inside the batch): the keys it wrote go back to their
committed values, which the compaction may have moved to a new segment or, if they had
expired by its clock, dropped. Before the fix, the index went back to a location in a
segment the compaction had deleted: CorruptionError on a healthy store."""

import pytest

import pysos
from pysos.compactor import merge
from pysos.segments import manifest


class Discard(Exception):
    pass


def _adopt_a_merge_inside_a_batch(d, path, clock, writes, compactor_ahead=0.0):
    with pytest.raises(Discard):
        with d.batch():
            writes()
            clock.step_wall(compactor_ahead)  # (the compactor's wall clock, if it runs ahead of ours)
            merge.compact_directory(str(path), segment_size=4096)  # another compactor
            clock.step_wall(-compactor_ahead)
            clock.advance(1.1)
            len(d)  # the writer's look at its files (once a second) adopts the merge
            raise Discard


def test_a_discarded_batch_gets_back_values_a_compaction_moved(store_path, clock):
    with pysos.Dict(store_path, autocompact=False, segment_size=4096) as d:
        d["k"] = 1
        d["other"] = "o"
        for i in range(20):
            d["g"] = i  # garbage: the merge rewrites k's record elsewhere
        d._store.seal()
        _adopt_a_merge_inside_a_batch(d, store_path, clock, lambda: d.update({"k": 2, "other": "p", "new": 3}))
        assert dict(d) == {"k": 1, "other": "o", "g": 19}
        assert d.stats()["live_bytes"] == pysos.Dict(store_path, readonly=True).stats()["live_bytes"]
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"k": 1, "other": "o", "g": 19}


def test_a_discarded_batch_does_not_bring_back_a_value_a_compaction_expired(store_path, clock):
    """The compaction ran after k's deadline by its clock (a daemon's, 10 s ahead of the
    writer's) and dropped k's record: once the batch that overwrote k is discarded, k is
    absent, as the files say (as for a key the writer never touched, see
    Expiry._drop_expired_copies), not a location in a deleted segment."""
    with pysos.Dict(store_path, autocompact=False, segment_size=4096) as d:
        d.set("k", 1, expire=5)
        d["keep"] = 1
        for i in range(20):
            d["g"] = i
        d._store.seal()
        _adopt_a_merge_inside_a_batch(d, store_path, clock, lambda: d.__setitem__("k", 2), compactor_ahead=10)
        assert dict(d) == {"keep": 1, "g": 19} and "k" not in d and len(d) == 2
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"keep": 1, "g": 19}


def _garbage_sealed_then_one_write(path):
    """A writer holding k = 1 and garbage in a sealed segment, and g = "last" in the newest."""
    d = pysos.Dict(path, autocompact=False, segment_size=4096)
    d["k"] = 1
    for i in range(20):
        d["g"] = i
    d._store.seal()
    d["g"] = "last"
    return d


@pytest.mark.parametrize("discard", [False, True])
def test_compact_inside_a_batch_leaves_the_newest_segment_to_the_batch(store_path, discard):
    """d.compact() inside a batch merges the sealed segments only: the newest one, which the
    batch's records will be appended to, cannot be sealed under them (it was, and their
    locations then named the old segment: CorruptionError after the commit)."""
    with _garbage_sealed_then_one_write(store_path) as d:
        newest = manifest.read(str(store_path)).segments[-1]
        try:
            with d.batch():
                d["k"] = 2
                d["n"] = 5
                result = d.compact()
                d["after"] = 3
                if discard:
                    raise Discard
        except Discard:
            pass
        assert result["reclaimed_bytes"] > 0
        assert manifest.read(str(store_path)).segments[-1] == newest  # not sealed
        expected = {"k": 1, "g": "last"} if discard else {"k": 2, "g": "last", "n": 5, "after": 3}
        assert dict(d) == expected
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path) as d:
        assert dict(d) == expected


def test_ctrl_c_in_compact_inside_a_batch_after_the_swap_discards_the_batch_and_loses_nothing(store_path, monkeypatch):
    """KeyboardInterrupt once the merge is published and its inputs deleted, before the writer
    adopted it: the batch is discarded, the store reads as before it, and so do a reopen and check()."""
    real = merge.finish_run

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    with _garbage_sealed_then_one_write(store_path) as d:
        monkeypatch.setattr(merge, "finish_run", interrupted)
        with pytest.raises(KeyboardInterrupt):
            with d.batch():
                d["k"] = 2
                d["n"] = 3
                d.compact()
        monkeypatch.setattr(merge, "finish_run", real)
        assert dict(d) == {"k": 1, "g": "last"}
        d["after"] = 1
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"k": 1, "g": "last", "after": 1}
