"""@d.memoize(expire=None): a function's results cached in a Dict by its JSON arguments;
readers use the cache read-only; optional expiry."""

import os
import subprocess
import sys

import pytest

import pysos
from fake_clock import FakeClock


def test_results_are_cached_by_arguments(store_path):
    """A second call with equal arguments returns the stored result without calling the function; other arguments call it."""
    calls = []
    with pysos.Dict(store_path) as d:
        @d.memoize(name="area")  # (defined in a test: a closure, which needs a name)
        def area(w, h=1, *, unit="m"):
            calls.append((w, h, unit))
            return {"area": w * h, "unit": unit}

        assert area(2, 3) == {"area": 6, "unit": "m"}
        assert area(2, 3) == {"area": 6, "unit": "m"}
        assert area(2, h=3) == {"area": 6, "unit": "m"}  # another spelling: another key
        assert area(2, 3, unit="cm") == {"area": 6, "unit": "cm"}
        assert calls == [(2, 3, "m"), (2, 3, "m"), (2, 3, "cm")]
        assert area.__name__ == "area"
    with pysos.Dict(store_path) as d:  # persisted: a new process would not call it again
        @d.memoize(name="area")
        def area(w, h=1, *, unit="m"):
            raise AssertionError("not called")
        assert area(2, 3) == {"area": 6, "unit": "m"}


def test_none_results_are_cached_too(store_path):
    """A function returning None is called once per arguments, like any other."""
    calls = []
    with pysos.Dict(store_path) as d:
        @d.memoize(name="nothing")
        def nothing(x):
            calls.append(x)
        assert nothing(1) is None and nothing(1) is None
        assert calls == [1]


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan"), {1: "int key"}])
def test_non_json_arguments_raise_before_calling(store_path, bad):
    """Arguments that are not JSON values raise TypeError/ValueError naming the function; nothing runs or is written."""
    with pysos.Dict(store_path) as d:
        @d.memoize(name="f")
        def f(x):
            raise AssertionError("not called")
        before = {n: (store_path / n).read_bytes() for n in os.listdir(store_path)}
        with pytest.raises((TypeError, ValueError), match="memoize: the arguments of .*f must be JSON"):
            f(bad)
        assert {n: (store_path / n).read_bytes() for n in os.listdir(store_path)} == before


def test_cached_results_expire(store_path):
    """@d.memoize(expire=60): after 60 s the function is called again."""
    clock = FakeClock()
    restore = clock.install()
    calls = []
    try:
        with pysos.Dict(store_path) as d:
            @d.memoize(expire=60, name="f")
            def f(x):
                calls.append(x)
                return x * 2
            assert f(1) == 2 and f(1) == 2
            clock.advance(60)
            assert f(1) == 2
            assert calls == [1, 1]
    finally:
        restore()


SCRIPT = r"""
import sys, pysos
store = pysos.Dict(sys.argv[1], readonly=sys.argv[2] == "reader")
calls = []
@store.memoize()
def square(x):
    calls.append(x)
    return x * x
print(square(3), square(4), square(4), calls, len(store))
"""


def _run(path, role):
    return subprocess.run([sys.executable, "-c", SCRIPT, str(path), role], capture_output=True, text=True,
                          timeout=60, check=True).stdout.split()


def test_reader_in_another_process_uses_the_cache_read_only(store_path):
    """A reader process beside the writer gets the cached results without calling the function, and computes (never stores) the rest."""
    assert _run(store_path, "writer") == ["9", "16", "16", "[3,", "4]", "2"]  # the writer fills the cache
    assert _run(store_path, "writer") == ["9", "16", "16", "[]", "2"]  # a later writer uses it
    with pysos.Dict(store_path) as d:
        del d[next(k for k in d if "[4]" in k)]
        assert _run(store_path, "reader") == ["9", "16", "16", "[4,", "4]", "1"]
        assert len(d) == 1


def test_bad_expire_is_refused(store_path):
    """memoize(expire=-1) raises ValueError at decoration time."""
    with pysos.Dict(store_path) as d:
        with pytest.raises(ValueError):
            d.memoize(expire=-1)


def test_functions_of_the_same_name_never_share_results(store_path):
    """Closures made by one factory, and lambdas, have one qualified name between them:
    memoize refuses them (their results would be each other's) unless given ``name=``;
    so does a callable with no name (a functools.partial)."""
    import functools
    with pysos.Dict(store_path) as cache:
        def make(k):
            def scale(x):
                return x * k
            return scale

        for fn in (make(2), lambda x: x * x):
            with pytest.raises(TypeError, match="name="):
                cache.memoize()(fn)
        with pytest.raises(TypeError, match="name="):
            cache.memoize()(functools.partial(pow, 2))
        double = cache.memoize(name="double")(make(2))
        triple = cache.memoize(name="triple")(make(3))
        assert (double(5), triple(5), double(5)) == (10, 15, 10)
        power = cache.memoize(name="pow2")(functools.partial(pow, 2))
        assert power(10) == 1024 and power(10) == 1024
        with pytest.raises(TypeError, match="name"):
            cache.memoize(name="")
        with pytest.raises(TypeError, match="name"):
            cache.memoize(name=3)
    assert len(pysos.Dict(store_path, readonly=True)) == 3
