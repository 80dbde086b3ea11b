"""Readers in other processes follow the writer across segment rotation, compaction swaps
and deleted segments, and iterate over a snapshot: no crash, no duplicate, no torn value."""

import os
import random

import pysos
import mp_workers as w


def _segment_files(path):
    return {name for name in os.listdir(path) if name.endswith(".jsonl")}


def _churn_in_child(path, seed, rounds):
    """Run a writer in another process: churn, rotations, deletes and compactions."""
    ctx = w.context()
    queue = ctx.Queue()
    proc = ctx.Process(target=w.churn_writer, args=(str(path), seed, rounds, queue))
    proc.start()
    proc.join(120)
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert proc.exitcode == 0
    return next(iter(figures.values()))



def test_reader_that_slept_through_rotations_and_compactions_catches_up(tmp_path):
    """A reader opened before thousands of writes, rotations and compactions reads exactly the final state afterwards."""
    path = tmp_path / "store"
    with pysos.Dict(path) as d:
        d.update({f"k{i}": w.churn_value(f"k{i}", i) for i in range(50)})
    r = pysos.Dict(path, readonly=True)
    before = _segment_files(path)
    assert len(r) == 50
    expected = _churn_in_child(path, seed=5, rounds=3)
    assert not before & _segment_files(path), "the reader's segments were not retired"
    assert len(r) == len(expected)
    assert dict(r.items()) == expected
    for key, value in expected.items():
        assert r[key] == value
    assert "gone" not in r
    r.close()


def test_list_reader_follows_every_kind_of_edit(tmp_path):
    """A List reader in another process matches the writer after each append, insert, pop, set, slice edit and compaction."""
    path = tmp_path / "list"
    pysos.List(path).close()
    ctx = w.context()
    queue = ctx.Queue()
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=w.lockstep_list_writer, args=(str(path), theirs, 300, queue))
    proc.start()
    rng = random.Random(3)
    r = pysos.List(path, readonly=True)
    steps = 0
    try:
        while True:
            assert ours.poll(60), "the writer stopped answering"
            model = ours.recv()
            if model is None:
                break
            assert len(r) == len(model)
            assert list(r) == model
            if model:
                i = rng.randrange(-len(model), len(model))
                assert r[i] == model[i]
                a, b = sorted(rng.randrange(-len(model), len(model) + 1) for _ in range(2))
                assert r[a:b] == model[a:b] and r[::-2] == model[::-2]
            steps += 1
            ours.send("ok")
    finally:
        proc.join(60)
    errors, _ = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert proc.exitcode == 0 and steps == 300
    r.close()


def test_iteration_is_a_snapshot_across_a_compaction_swap(tmp_path):
    """items() begun before another process deletes a whole batch and compacts still yields that batch whole, as of the start."""
    path = tmp_path / "store"
    with pysos.Dict(path, autocompact=False) as d:
        with d.batch():
            for j in range(10):
                d[f"b{j}"] = j
        d["other"] = "x"
        d.compact()  # the batch now lives in a sealed segment that the next compaction retires
    ctx = w.context()
    go, done, queue = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=w.snapshot_writer, args=(str(path), go, done, queue))
    proc.start()
    r = pysos.Dict(path, readonly=True)
    items = r.items()
    it = iter(items)
    seen = [next(it)]
    go.set()
    assert done.wait(120), "the writer did not finish"
    assert "b0" not in r  # this read follows the writer: the reader adopts the swap mid-iteration
    seen += list(it)
    proc.join(60)
    errors, _ = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert sorted(seen) == sorted([(f"b{j}", j) for j in range(10)] + [("other", "x")])
    assert dict(r.items()) == {"other": "x"}  # a new iteration sees the batch gone
    r.close()


def test_snapshot_survives_a_compaction_that_empties_the_highest_segment(tmp_path):
    """An iteration begun before its segment is compacted away to nothing and the writer rotates reads its snapshot, not the new file."""
    path = tmp_path / "store"
    ctx = w.context()
    phase1, go, done, queue = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=w.emptying_writer, args=(str(path), phase1, go, done, queue))
    proc.start()
    assert phase1.wait(60)
    r = pysos.Dict(path, readonly=True)
    it = iter(r.items())
    seen = [next(it)]
    go.set()
    assert done.wait(60)
    assert r["a"] == 2 and r["c"] == "x" * 1000  # follows the writer mid-iteration
    seen += list(it)
    proc.join(60)
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert sorted(seen) == [("a", 1), ("b", 1)]
    assert dict(r.items()) == {"a": 2, "b": 2, "c": "x" * 1000}
    r.close()
