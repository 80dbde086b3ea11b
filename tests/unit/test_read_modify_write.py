"""Atomic read-modify-write: d.incr(key, delta, default) and d.transform(key, fn, default)
hold the writer's lock across the read and the write; observers and batches see one change."""

import os
import threading

import pytest

import pysos
from fake_clock import FakeClock


def _files(path):
    return {n: (path / n).read_bytes() for n in os.listdir(path)}


def test_incr_returns_the_new_value(store_path):
    """incr adds delta to the stored number (default when absent) and returns and stores the sum."""
    with pysos.Dict(store_path) as d:
        assert d.incr("hits") == 1
        assert d.incr("hits") == 2
        assert d.incr("hits", 10) == 12
        assert d.incr("new", 1, default=100) == 101
        assert d.incr("f", 0.5) == 0.5
        assert d.incr("hits", -2) == 10
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r) == {"hits": 10, "new": 101, "f": 0.5}


@pytest.mark.parametrize("stored,delta,default", [("text", 1, 0), (None, 1, 0), (1, "1", 0), (1, 1, "0"),
                                                  (1, True, 0), ([1], 1, 0)])
def test_incr_refuses_non_numbers_and_writes_nothing(store_path, stored, delta, default):
    """incr on a non-number, or with a non-number delta/default, raises TypeError and writes nothing."""
    with pysos.Dict(store_path) as d:
        d["k"] = stored
        before = _files(store_path)
        with pytest.raises(TypeError):
            d.incr("k", delta, default)
        assert _files(store_path) == before and d["k"] == stored


def test_incr_from_threads_loses_nothing(store_path):
    """8 threads x 200 incr of one key end at exactly 1600."""
    with pysos.Dict(store_path) as d:
        def work():
            for _ in range(200):
                d.incr("n")
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert d["n"] == 1600


def test_transform_stores_and_returns_fn_of_old(store_path):
    """transform stores fn(old) (fn(default) when absent) and returns it."""
    with pysos.Dict(store_path) as d:
        assert d.transform("tags", lambda old: old + ["a"], default=[]) == ["a"]
        assert d.transform("tags", lambda old: old + ["b"]) == ["a", "b"]
        assert d["tags"] == ["a", "b"]


def test_transform_fn_that_raises_writes_nothing(store_path):
    """If fn raises, transform writes nothing; an unstorable result is refused before any write."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
        before = _files(store_path)
        with pytest.raises(ZeroDivisionError):
            d.transform("a", lambda old: old / 0)
        with pytest.raises(TypeError):
            d.transform("a", lambda old: {old})
        assert _files(store_path) == before and d["a"] == 1


def test_observers_see_one_change_each(store_path):
    """Each incr and transform is one observed change (key, new, old)."""
    heard = []
    with pysos.Dict(store_path) as d:
        d.observe(lambda *args: heard.append(args))
        d.incr("n")
        d.incr("n", 5)
        d.transform("n", lambda old: old * 2)
    assert heard == [("n", 1, None), ("n", 6, 1), ("n", 12, 6)]


def test_in_a_batch_and_discarded_batch(store_path):
    """incr inside a batch joins it (one unit); a discarded batch leaves the old value."""
    with pysos.Dict(store_path) as d:
        d["n"] = 1
        with d.batch():
            d.incr("n")
            d.incr("n")
            assert d["n"] == 3
        with pytest.raises(RuntimeError):
            with d.batch():
                d.incr("n", 100)
                raise RuntimeError
        assert d["n"] == 3


def test_incr_keeps_the_deadline_of_an_expiring_key():
    """A rate-limit counter set with expire=60 keeps its deadline through incr; a new key takes the store default."""
    import tempfile
    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(tempfile.mkdtemp() + "/s", expire=30) as d:
            d.set("window", 0, expire=60)
            clock.advance(50)
            assert d.incr("window") == 1
            assert d.incr("fresh") == 1  # default expire: 30 s from now
            clock.advance(10)
            assert "window" not in d and d["fresh"] == 1
            clock.advance(20)
            assert "fresh" not in d
    finally:
        restore()


@pytest.mark.parametrize("look", ["len", "nothing"])
def test_transform_whose_fn_outlives_the_deadline_keeps_it(store_path, look):
    """The deadline is the one the key had when transform read it: if it passes while fn
    runs, the result is stored with it, expired already, not as a key that never expires
    (which it became when fn's own use of the store, len() here, dropped the key first)."""
    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path) as d:
            d.set("k", 1, expire=1)

            def slow(old):
                clock.advance(2)
                if look == "len":
                    assert len(d) == 0
                return old + 1

            assert d.transform("k", slow) == 2
            assert "k" not in d and d.get("k") is None and len(d) == 0
            clock.advance(3600)
            assert "k" not in d
        with pysos.Dict(store_path) as d:
            assert "k" not in d and len(d) == 0
    finally:
        restore()


def test_readonly_handle_refuses(store_path):
    """incr and transform on a reader raise ReadOnlyError."""
    pysos.Dict(store_path).close()
    with pysos.Dict(store_path, readonly=True) as r:
        with pytest.raises(pysos.ReadOnlyError):
            r.incr("n")
        with pytest.raises(pysos.ReadOnlyError):
            r.transform("n", lambda old: 1)
