"""Errors that tell the truth: no CorruptionError on a healthy store, observers that raise
after a commit, refusals that name the culprit, and length hints that are only hints."""

import sys

import pytest

import pysos


class Boom(Exception):
    """Raised by tests to discard a batch or to fail an observer."""


def test_items_started_in_a_discarded_batch_read_the_store_as_it_is(store_path):
    """items()/values() begun inside a batch that is then discarded finish without CorruptionError."""
    with pysos.Dict(store_path) as d:
        d.update(a=1, b=2, c=3)
        with pytest.raises(Boom):
            with d.batch():
                d["a"] = 10
                d["new"] = 4
                items, values = iter(d.items()), iter(d.values())
                assert next(items) == ("a", 10) and next(values) == 10
                raise Boom
        with d.batch():  # a later batch puts other records where the discarded ones were
            d["z"] = "x" * 200
            assert list(items) == [("b", 2), ("c", 3)]
            assert list(values) == [2, 3]
        assert dict(d) == {"a": 1, "b": 2, "c": 3, "z": "x" * 200}


def test_list_iteration_started_in_a_discarded_batch_reads_the_store_as_it_is(store_path):
    """A List iterator begun inside a discarded batch skips the items that batch added."""
    with pysos.List(store_path) as l:
        l.extend(["a", "b"])
        with pytest.raises(Boom):
            with l.batch():
                l[1] = "B"
                l.append("c")
                items = iter(l)
                assert next(items) == "a"
                raise Boom
        assert list(items) == ["b"]


def test_a_raising_observer_does_not_make_a_committed_write_look_failed(store_path):
    """d[k] = v with a raising observer: ObserverError after every callback ran; the write stays."""
    calls = []

    def bad(key, new, old):
        calls.append(("bad", key))
        raise Boom("observer bug")

    with pysos.Dict(store_path) as d:
        d.observe(bad)
        d.observe(lambda key, new, old: calls.append(("good", key, new)))
        with pytest.raises(pysos.ObserverError, match="committed") as info:
            d["k"] = 1
        assert isinstance(info.value.__cause__, Boom) and len(info.value.errors) == 1
        assert calls == [("bad", "k"), ("good", "k", 1)]
        assert d["k"] == 1
    with pysos.Dict(store_path) as d:
        assert d["k"] == 1


def test_a_raising_observer_does_not_skip_the_rest_of_a_batch(store_path):
    """In a batch, every event reaches every observer; then one ObserverError holds all failures."""
    seen = []

    def flaky(key, new, old):
        seen.append(key)
        if key in ("a", "c", "x"):
            raise Boom(key)

    with pysos.Dict(store_path) as d:
        d.observe(flaky)
        with pytest.raises(pysos.ObserverError) as info:
            with d.batch():
                for key in "abcd":
                    d[key] = key
        assert seen == ["a", "b", "c", "d"]
        assert [str(e) for e in info.value.errors] == ["a", "c"]
        assert dict(d) == {k: k for k in "abcd"}
        with pytest.raises(pysos.ObserverError):
            d.update(x=1, y=2)
        assert seen[-2:] == ["x", "y"] and d["y"] == 2


def test_a_raising_observer_on_a_list_keeps_the_change(store_path):
    """List.append and extend with a raising observer: the items are stored, ObserverError raised."""
    with pysos.List(store_path) as l:
        l.observe(lambda i, new, old: (_ for _ in ()).throw(Boom()))
        with pytest.raises(pysos.ObserverError):
            l.append(1)
        with pytest.raises(pysos.ObserverError) as info:
            l.extend([2, 3])
        assert len(info.value.errors) == 2
        assert list(l) == [1, 2, 3]


def test_update_names_the_key_whose_key_or_value_is_refused(store_path):
    """update() refusing a pair says which key holds the bad value (or is the bad key)."""
    with pysos.Dict(store_path) as d:
        with pytest.raises(TypeError, match=r"update\(\): the value of key 'second'.*set"):
            d.update({"first": 1, "second": {1, 2}, "third": 3})
        with pytest.raises(ValueError, match=r"update\(\): the value of key 7.*nan"):
            d.update([(1, 1), (7, [float("nan")])])
        with pytest.raises(TypeError, match=r"update\(\): key \(1, 2\)"):
            d.update({"ok": 1, (1, 2): 2})
        assert len(d) == 0


def test_extend_names_the_index_of_a_refused_value(store_path):
    """extend() and slice assignment refusing a value say which item of the values it is."""
    with pysos.List(store_path) as l:
        with pytest.raises(ValueError, match=r"extend\(\): item 2 of the values.*nan"):
            l.extend([1, 2, float("nan"), 4])
        with pytest.raises(TypeError, match=r"item 1 of the values.*set"):
            l[0:0] = iter([0, {1}])
        assert len(l) == 0


class _Hinted:
    """An iterator whose __length_hint__ claims sys.maxsize items (it has three)."""

    def __init__(self):
        self._items = iter([1, 2, 3])

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._items)

    def __length_hint__(self):
        return sys.maxsize


def test_extend_treats_length_hint_as_a_hint(store_path):
    """extend() and slice assignment from an iterator hinting sys.maxsize items work like a list's."""
    with pysos.List(store_path) as l:
        l.extend(_Hinted())
        l[1:1] = _Hinted()
        l += _Hinted()
        assert list(l) == [1, 1, 2, 3, 2, 3, 1, 2, 3]
