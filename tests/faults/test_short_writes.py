"""Short writes: every write/pwrite of the files layer writes a random number of the bytes
asked (at least one). The layer loops, so everything still lands whole and in order."""

import random

import pysos

from faultfs import reopen_equals, segments_whole, short_writes


def test_short_writes_keep_contents_whole(store_path, monkeypatch):
    """Sets, deletes, batches, rotations, a compaction (segments, hints, MANIFEST) under random short writes: contents read back right, every segment line verifies, reopen equals the model."""
    counts = short_writes(monkeypatch, seed=3)
    rng = random.Random(3)
    model = {}
    with pysos.Dict(store_path, autocompact=False, segment_size=3000) as d:
        for i in range(300):
            key = f"k{rng.randrange(60)}"
            if rng.random() < 0.2 and key in model:
                del d[key]
                del model[key]
            elif rng.random() < 0.1:
                with d.batch():
                    for j in range(4):
                        value = [i, j, "é✓" * rng.randrange(50)]
                        d[f"b{j}"] = value
                        model[f"b{j}"] = value
            else:
                value = {"i": i, "s": "x" * rng.randrange(500)}
                d[key] = value
                model[key] = value
        assert dict(d.items()) == model
        d.compact()
        assert dict(d.items()) == model
    assert counts["short"] > 100, counts
    assert segments_whole(store_path) == []
    assert pysos.check(store_path) == []
    reopen_equals(store_path, model)


def test_short_writes_list(store_path, monkeypatch):
    """A List under random short writes: appends, inserts and deletes read back in order, also after reopen."""
    short_writes(monkeypatch, seed=4)
    rng = random.Random(4)
    model = []
    with pysos.List(store_path, autocompact=False, segment_size=2000) as lst:
        for i in range(200):
            r = rng.random()
            if r < 0.5:
                value = {"i": i, "pad": "p" * rng.randrange(300)}
                lst.append(value)
                model.append(value)
            elif r < 0.8 and model:
                at = rng.randrange(len(model) + 1)
                lst.insert(at, i)
                model.insert(at, i)
            elif model:
                at = rng.randrange(len(model))
                del lst[at]
                del model[at]
        assert list(lst) == model
    with pysos.List(store_path, autocompact=False) as lst:
        assert list(lst) == model
