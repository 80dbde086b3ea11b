"""Everyday API behaviour: equality, repr, observe(), stats(), compact(), batch()."""

import collections
import os

import pytest

import pysos


def test_dict_equals_mappings(store_path):
    """A Dict is == to any mapping with the same items and != to any other."""
    with pysos.Dict(store_path) as d:
        assert d == {}
        d.update({"a": 1, "b": [1, {"c": None}], 3: 2.5})
        assert d == {"a": 1, "b": [1, {"c": None}], 3: 2.5}
        assert d == collections.OrderedDict([(3, 2.5), ("b", [1, {"c": None}]), ("a", 1)])
        assert d != {"a": 1, "b": [1, {"c": None}]}
        assert d != {"a": 1, "b": [1, {"c": None}], 3: 2.5, "x": 0}
        assert d != {"a": 2, "b": [1, {"c": None}], 3: 2.5}
        assert not (d == [("a", 1)])
        assert {"a": 1, "b": [1, {"c": None}], 3: 2.5} == d


def test_list_equals_sequences(store_path):
    """A List is == to a sequence with the same items in the same order and != otherwise."""
    with pysos.List(store_path) as l:
        assert l == []
        l.extend([1, "two", [3], {"four": 4}])
        assert l == [1, "two", [3], {"four": 4}]
        assert [1, "two", [3], {"four": 4}] == l
        assert l == (1, "two", [3], {"four": 4})  # DESIGN: == against any sequence
        assert l != [1, "two", [3]]
        assert l != ["two", 1, [3], {"four": 4}]
        assert l != [1, "two", [3], {"four": 4}, 5]
        assert not (l == {0: 1})


def test_repr_is_short_for_a_big_store(tmp_path):
    """repr() of a big Dict or List names the type and does not dump its contents."""
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        with d.batch():
            for i in range(3000):
                d[f"key-{i}"] = f"value-{i}"
        l.extend(f"item-{i}" for i in range(3000))
        for store, name in [(d, "Dict"), (l, "List")]:
            text = repr(store)
            assert name in text
            assert len(text) < 500
            assert "value-2999" not in text and "item-2999" not in text


def test_observe_dict(store_path):
    """observe() callbacks get (key, new, old) after each change; old is None for a new key, new is None on delete."""
    calls = []
    with pysos.Dict(store_path) as d:
        d["x"] = "before observing"

        def cb(key, new, old):
            calls.append((key, new, old, d.get(key, "absent")))

        d.observe(cb)
        d["a"] = 1
        d["a"] = [2]
        del d["a"]
        d["x"] = "changed"
    assert calls == [
        ("a", 1, None, 1),
        ("a", [2], 1, [2]),
        ("a", None, [2], "absent"),
        ("x", "changed", "before observing", "changed"),
    ]


def test_observe_list(store_path):
    """observe() on a List gets (index, new, old) after append, setitem and delitem."""
    calls = []
    with pysos.List(store_path) as l:
        l.observe(lambda i, new, old: calls.append((i, new, old)))
        l.append("a")
        l.append("b")
        l[0] = "A"
        del l[1]
    assert calls == [(0, "a", None), (1, "b", None), (0, "A", "a"), (1, None, "b")]


@pytest.mark.parametrize("cls,kind", [(pysos.Dict, "dict"), (pysos.List, "list")])
def test_stats_has_the_documented_keys(store_path, cls, kind):
    """stats() is a plain dict with kind, keys, segments, live_bytes, dead_bytes, disk_bytes, generation."""
    with cls(store_path) as s:
        for i in range(10):
            if kind == "dict":
                s[i] = "x" * 50
            else:
                s.append("x" * 50)
        st = s.stats()
        assert type(st) is dict
        for key in ["kind", "keys", "segments", "live_bytes", "dead_bytes", "disk_bytes", "generation"]:
            assert key in st, key
        assert st["kind"] == kind
        assert st["keys"] == 10
        assert st["segments"] >= 1
        assert st["live_bytes"] > 500
        assert st["disk_bytes"] >= st["live_bytes"] + st["dead_bytes"] - 1
        assert isinstance(st["generation"], int)


def test_stats_counts_dead_bytes_and_compact_reclaims_them(store_path):
    """Overwrites make dead bytes; compact() reclaims them all, returns reclaimed_bytes, and keeps the data."""
    with pysos.Dict(store_path, segment_size=4096) as d:
        for round_ in range(5):
            for i in range(50):
                d[i] = f"round {round_} " + "x" * 40
        for i in range(25):
            del d[i]
        before = d.stats()
        assert before["dead_bytes"] > 0
        result = d.compact()
        assert result["reclaimed_bytes"] > 0
        after = d.stats()
        assert after["dead_bytes"] == 0
        assert after["disk_bytes"] < before["disk_bytes"]
        assert after["generation"] > before["generation"]
        assert dict(d.items()) == {i: "round 4 " + "x" * 40 for i in range(25, 50)}
        assert d.vacuum()["reclaimed_bytes"] >= 0
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {i: "round 4 " + "x" * 40 for i in range(25, 50)}


def test_after_compact_and_reopen_only_named_files_remain(store_path):
    """After compact() and a reopen the directory holds only MANIFEST, its segments, their hints and lock files."""
    import json
    with pysos.Dict(store_path, segment_size=1024) as d:
        for i in range(200):
            d[i % 20] = "y" * 50
        d.compact()
    with pysos.Dict(store_path):
        pass
    named = set(json.loads((store_path / "MANIFEST").read_text())["segments"])
    allowed = {"MANIFEST"} | named | {n.rsplit(".", 1)[0] + ".hint" for n in named}
    extra = [n for n in os.listdir(store_path) if n not in allowed and not n.endswith(".lock")]
    assert extra == []


def test_batch_is_applied_on_exit(store_path):
    """Writes in a batch are all there after the block, and after a reopen."""
    with pysos.Dict(store_path) as d:
        d["keep"] = 0
        with d.batch():
            for i in range(20):
                d[i] = i
            del d["keep"]
        assert dict(d.items()) == {i: i for i in range(20)}
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {i: i for i in range(20)}


def test_batch_reads_its_own_writes(store_path):
    """Inside a batch the store already shows the batch's own changes, as a dict would."""
    with pysos.Dict(store_path) as d:
        d["old"] = 1
        with d.batch():
            d["new"] = 2
            del d["old"]
            assert d["new"] == 2 and "old" not in d and len(d) == 1
    with pysos.List(store_path.parent / "l") as l:
        with l.batch():
            l.append("a")
            l.insert(0, "b")
            assert list(l) == ["b", "a"] and len(l) == 2


def test_exception_in_batch_discards_it_and_propagates(store_path):
    """An exception inside a batch propagates and discards every change of the batch, now and after reopen."""
    class Boom(Exception):
        pass

    with pysos.Dict(store_path) as d:
        d["a"] = 1
        disk = d.stats()["disk_bytes"]
        with pytest.raises(Boom):
            with d.batch():
                d["a"] = 2
                d["b"] = 3
                del d["a"]
                raise Boom
        assert dict(d.items()) == {"a": 1}
        assert d.stats()["disk_bytes"] == disk
        d["c"] = 4  # the store is usable after the discarded batch
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {"a": 1, "c": 4}


def test_bad_value_in_batch_discards_it(store_path):
    """A refused value inside a batch raises, and (the exception leaving the block) the whole batch is discarded."""
    with pysos.Dict(store_path) as d:
        with pytest.raises((TypeError, ValueError)):
            with d.batch():
                d["a"] = 1
                d["b"] = float("nan")
        assert len(d) == 0
    with pysos.Dict(store_path) as d:
        assert len(d) == 0


def test_value_bigger_than_segment_size(store_path):
    """A value far bigger than segment_size is stored and read back whole, also after reopen."""
    big = {"blob": "z" * 100_000, "list": list(range(1000))}
    with pysos.Dict(store_path, segment_size=256) as d:
        d["big"] = big
        d["small"] = 1
    with pysos.Dict(store_path, segment_size=256) as d:
        assert d["big"] == big and d["small"] == 1


def test_list_insert_at_front_writes_one_record(store_path):
    """insert(0, v) on a long List writes about one record, not the whole list."""
    with pysos.List(store_path) as l:
        l.extend(range(2000))
        disk = l.stats()["disk_bytes"]
        l.insert(0, "front")
        grown = l.stats()["disk_bytes"] - disk
        assert grown < 200
        assert l[0] == "front" and l[1] == 0 and len(l) == 2001
    with pysos.List(store_path) as l:
        assert l[0] == "front" and l[-1] == 1999 and len(l) == 2001


def test_dict_is_a_mutablemapping_and_list_a_mutablesequence(tmp_path):
    """Dict is a collections.abc.MutableMapping and List a collections.abc.MutableSequence."""
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        assert isinstance(d, collections.abc.MutableMapping)
        assert isinstance(l, collections.abc.MutableSequence)


def test_list_index_errors_like_list(store_path):
    """Out-of-range indexes raise IndexError, like list, and change nothing."""
    with pysos.List(store_path) as l:
        with pytest.raises(IndexError):
            l.pop()
        l.extend([1, 2])
        for bad in [2, -3, 10**9]:
            with pytest.raises(IndexError):
                l[bad]
            with pytest.raises(IndexError):
                l[bad] = 0
            with pytest.raises(IndexError):
                del l[bad]
            with pytest.raises(IndexError):
                l.pop(bad)
        with pytest.raises(TypeError):
            l["0"]
        assert list(l) == [1, 2]


def test_repeated_inserts_between_items_survive_reopen(store_path):
    """Many inserts at the same inner index and at the front keep the order, also after reopen."""
    model = ["first", "last"]
    with pysos.List(store_path, segment_size=4096) as l:
        l.extend(model)
        for i in range(300):
            l.insert(1, f"mid{i}")
            model.insert(1, f"mid{i}")
            l.insert(-1, f"late{i}")
            model.insert(-1, f"late{i}")
            l.insert(0, f"front{i}")
            model.insert(0, f"front{i}")
        assert list(l) == model
    with pysos.List(store_path) as l:
        assert list(l) == model
        assert l[301] == model[301] and l[-2] == model[-2]


def test_batch_bigger_than_a_segment(store_path):
    """A batch far bigger than segment_size is applied whole and survives reopen."""
    with pysos.Dict(store_path, segment_size=256) as d:
        with d.batch():
            for i in range(300):
                d[f"k{i}"] = "v" * 30
    with pysos.Dict(store_path, segment_size=256) as d:
        assert dict(d.items()) == {f"k{i}": "v" * 30 for i in range(300)}


def test_keys_and_values_that_look_like_records(store_path):
    """Keys and values that mimic the record syntax ("c", "k", "v", "d", batch markers, raw JSON) round-trip."""
    tricky = {
        '{"c":"00000000","k":"x","d":1}\n': {"c": "00000000", "k": "x", "d": 1},
        "batch": {"batch": "begin"},
        '"batch":"end","n":2}': {"batch": "end", "n": 2},
        "c": {"b": 3},
        "null": None,
        "1": "string one",
        1: "int one",
        None: "None key",
        "k" * 100_000: "long key",
    }
    with pysos.Dict(store_path) as d:
        d.update(tricky)
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == tricky
    with pysos.List(store_path.parent / "l") as l:
        l.extend(tricky.values())
    with pysos.List(store_path.parent / "l") as l:
        assert list(l) == list(tricky.values())


def test_update_from_another_store(tmp_path):
    """update() accepts another pysos Dict (any mapping) and extend() another List."""
    with pysos.Dict(tmp_path / "a") as a, pysos.Dict(tmp_path / "b") as b:
        a.update({"x": 1, "y": [2]})
        b.update(a)
        assert b == {"x": 1, "y": [2]}
    with pysos.List(tmp_path / "la") as a, pysos.List(tmp_path / "lb") as b:
        a.extend([1, 2])
        b.extend(a)
        b += a
        assert list(b) == [1, 2, 1, 2]


def test_threads_share_one_dict(store_path):
    """Several threads writing and reading one Dict lose nothing and corrupt nothing."""
    import threading

    with pysos.Dict(store_path, segment_size=2048) as d:
        errors = []

        def work(t):
            try:
                for i in range(150):
                    d[f"t{t}-{i}"] = [t, i]
                    assert d[f"t{t}-{i}"] == [t, i]
                    if i % 3 == 0:
                        del d[f"t{t}-{i}"]
                    len(d)
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        expected = {f"t{t}-{i}": [t, i] for t in range(4) for i in range(150) if i % 3}
        assert dict(d.items()) == expected
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == expected


def test_threads_share_one_list(store_path):
    """Several threads appending to one List lose nothing; each thread's items keep their order."""
    import threading

    with pysos.List(store_path, segment_size=2048) as l:
        threads = [threading.Thread(target=lambda t=t: [l.append([t, i]) for i in range(150)])
                   for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        items = list(l)
    with pysos.List(store_path) as l:
        assert list(l) == items
    assert len(items) == 600
    for t in range(4):
        assert [i for (tt, i) in items if tt == t] == list(range(150))


def test_self_aliasing_operations_match_list(tmp_path):
    """extend(self), += self, slice-assigning the list to itself and update(self) behave as for list/dict."""
    model = [1, {"a": 2}]
    with pysos.List(tmp_path / "l") as l:
        l.extend(model)
        l.extend(l)
        model.extend(model)
        l += l
        model += model
        l[1:2] = l
        model[1:2] = model
        l[::2] = l[::-2]
        model[::2] = model[::-2]
        assert list(l) == model
    with pysos.List(tmp_path / "l") as l:
        assert list(l) == model
    with pysos.Dict(tmp_path / "d") as d:
        d.update({"a": 1, "b": [2]})
        d.update(d)
        assert dict(d.items()) == {"a": 1, "b": [2]}


def test_list_reader_follows_changes_made_between_its_reads(store_path):
    """A readonly List sees the writer's net result when an item was added and removed between two reads."""
    with pysos.List(store_path) as w, pysos.List(store_path, readonly=True) as r:
        w.append("x")
        w.pop()
        assert len(r) == 0 and list(r) == []
        w.extend(["a", "b"])
        assert list(r) == ["a", "b"]
        w.insert(1, "between")
        del w[1]
        w.append("c")
        w.pop(0)
        assert len(r) == 2 and list(r) == ["b", "c"]
        w.clear()
        w.append(0)   # the same position key set, deleted and set again
        del w[0]
        w.append(None)
        assert len(r) == 1 and list(r) == [None]


def test_dict_reader_follows_changes_made_between_its_reads(store_path):
    """A readonly Dict sees the writer's net result when keys were set and deleted between two reads."""
    with pysos.Dict(store_path) as w, pysos.Dict(store_path, readonly=True) as r:
        w["a"] = 1
        del w["a"]
        w["b"] = 2
        w["b"] = 3
        assert len(r) == 1 and dict(r.items()) == {"b": 3}
        del w["b"]
        w["b"] = 4
        assert dict(r.items()) == {"b": 4}
