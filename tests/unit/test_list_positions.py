"""List position keys on disk: short under every insert pattern, old array keys still read."""

import os

import orjson

import pysos
from pysos.segments import record


def _disk_keys(directory) -> list:
    keys = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".jsonl"):
            with open(os.path.join(directory, name), "rb") as f:
                keys += [orjson.loads(line).get("k") for line in f]
    return [k for k in keys if k is not None]


def test_repeated_middle_inserts_keep_position_keys_short(store_path):
    """3,000 inserts at len // 2 write only int keys of <= 20 characters and keep the order."""
    model = []
    with pysos.List(store_path, autocompact=False) as l:
        for x in range(3000):
            l.insert(len(l) // 2, x)
            model.insert(len(model) // 2, x)
        assert list(l) == model
    keys = _disk_keys(store_path)
    assert all(type(k) is int and len(str(k)) <= 20 for k in keys)
    assert len(keys) < 30 * 3000  # renumbering: amortised O(log n) records per insert
    with pysos.List(store_path) as l:
        assert list(l) == model


def test_a_reader_follows_a_renumbering(store_path):
    """A readonly List sees the writer's order across inserts that renumber a crowded range."""
    with pysos.List(store_path) as w, pysos.List(store_path, readonly=True) as r:
        w.extend(["a", "z"])
        model = ["a", "z"]
        for x in range(100):
            w.insert(1, x)
            model.insert(1, x)
            if x % 7 == 0:
                assert list(r) == model and r[1] == x
        assert list(r) == model and len(r) == 102


def test_a_discarded_batch_undoes_a_renumbering(store_path):
    """An exception inside batch() after inserts that renumbered leaves the list as before."""
    with pysos.List(store_path) as l:
        l.extend(range(20))
        for x in range(20):
            l.insert(10, f"m{x}")
        before = list(l)
        try:
            with l.batch():
                for x in range(40):
                    l.insert(11, f"n{x}")
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        assert list(l) == before
    with pysos.List(store_path) as l:
        assert list(l) == before


def test_stores_with_old_array_keys_stay_readable_and_writable(store_path):
    """Array position keys written by the old scheme are read in order and renumbered to ints."""
    old = [0, [0, 0], [0, 0, 0], [0, 0, 0, 5], [0, 1], [0, 1, -1], 1, 2]
    with pysos.List(store_path) as l:
        store = l._store
        for n, key in enumerate(old):
            store.write(tuple(key) if type(key) is list else key,
                        record.encode_set(orjson.dumps(key), orjson.dumps(f"v{n}")), delete=False)
    model = [f"v{n}" for n in range(len(old))]
    with pysos.List(store_path) as l:
        assert list(l) == model
        for x in range(30):
            l.insert(3, x)
            model.insert(3, x)
        l.insert(0, "front")
        l.append("back")
        model = ["front"] + model + ["back"]
        assert list(l) == model
    with pysos.List(store_path) as l:
        assert list(l) == model
        assert all(type(k) is int for k in l._store.index if k not in (0, 1, 2))
