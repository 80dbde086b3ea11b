"""What a store accepts and gives back: refused values and keys write nothing, tuples come
back as lists, and values come back as fresh objects."""

import datetime
import decimal
import enum
import os
import uuid

import pytest

import pysos

NAN = float("nan")
INF = float("inf")


class Color(enum.Enum):
    RED = 1

BAD_VALUES = {
    "nan": NAN,
    "inf": INF,
    "-inf": -INF,
    "set": {1, 2},
    "frozenset": frozenset([1]),
    "object": object(),
    "dict_int_keys": {1: "x"},
    "dict_none_key": {None: "x"},
    "dict_bool_key": {True: "x"},
    "dict_tuple_key": {(1, 2): "x"},
    "int_2**64": 2**64,
    "int_below_-2**63": -(2**63) - 1,
    "bytes": b"bytes",
    "bytearray": bytearray(b"x"),
    "complex": 1j,
    "decimal": decimal.Decimal("1.5"),
    "nan_deep_in_list": [1, [2, {"a": [3, NAN]}]],
    "set_deep_in_dict": {"a": [1, {"b": {3}}]},
    "big_int_deep": {"a": {"b": [2**70]}},
    "tuple_with_inf": (1, INF),
    # orjson writes these as plain strings/numbers; a flat dict or list skips the round
    # trip (record._flat), so each must still be caught there
    "uuid": uuid.UUID(int=7),
    "enum": Color.RED,
    "uuid_in_flat_list": [uuid.UUID(int=7)],
    "enum_in_flat_dict": {"a": Color.RED},
    "datetime_in_flat_dict": {"a": datetime.datetime(2026, 1, 1)},
    "nan_in_flat_dict": {"a": NAN, "b": 1},
    "big_int_in_flat_list": ["x", 2**64],
    "surrogate_in_flat_list": ["\ud800"],
}

BAD_KEYS = {
    "list": [1],
    "dict": {},
    "tuple": (1, 2),
    "nan": NAN,
    "inf": INF,
    "bytes": b"k",
    "int_2**64": 2**64,
    "object": object(),
}


def _segment_bytes(path):
    return sorted((name, os.path.getsize(os.path.join(path, name)))
                  for name in os.listdir(path) if not name.endswith(".lock"))


def _assert_refused(store, path, write, reopen):
    """``write()`` raises TypeError/ValueError and leaves the store, its files and a reopen unchanged."""
    before = list(store.items()) if isinstance(store, pysos.Dict) else list(store)
    disk = store.stats()["disk_bytes"]
    files = _segment_bytes(path)
    with pytest.raises((TypeError, ValueError)):
        write()
    after = list(store.items()) if isinstance(store, pysos.Dict) else list(store)
    assert after == before
    assert store.stats()["disk_bytes"] == disk
    assert _segment_bytes(path) == files
    store.close()
    store = reopen()
    assert (list(store.items()) if isinstance(store, pysos.Dict) else list(store)) == before
    return store


@pytest.mark.parametrize("bad", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_dict_refuses_bad_value_and_writes_nothing(store_path, bad):
    """Every Dict write of a value JSON cannot round-trip raises TypeError/ValueError and writes nothing."""
    d = pysos.Dict(store_path)
    d["keep"] = {"x": [1, 2]}
    d["other"] = 1
    writes = [
        lambda: d.__setitem__("new", bad),
        lambda: d.__setitem__("keep", bad),
        lambda: d.update({"a": 1, "bad": bad, "z": 2}),
        lambda: d.update([("a", 1), ("bad", bad), ("z", 2)]),
        lambda: d.update(a=1, bad=bad),
        lambda: d.setdefault("new", bad),
    ]
    for write in writes:
        d = _assert_refused(d, store_path, write, lambda: pysos.Dict(store_path))
        # the lambdas above refer to the name ``d``, which now is the reopened store
    assert dict(d.items()) == {"keep": {"x": [1, 2]}, "other": 1}
    d.close()


@pytest.mark.parametrize("bad", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
def test_list_refuses_bad_value_and_writes_nothing(store_path, bad):
    """Every List write of a value JSON cannot round-trip raises TypeError/ValueError and writes nothing."""
    l = pysos.List(store_path)
    l.extend(["a", {"b": [1]}, 3])

    def iadd():
        nonlocal l
        l += [1, bad]

    def set_slice():
        l[0:1] = ["ok", bad]

    def set_ext_slice():
        l[::2] = ["ok", bad]

    writes = [
        lambda: l.append(bad),
        lambda: l.insert(0, bad),
        lambda: l.insert(1, bad),
        lambda: l.__setitem__(1, bad),
        lambda: l.extend([1, 2, bad]),
        lambda: l.extend(iter([1, bad, 2])),
        iadd,
        set_slice,
        set_ext_slice,
    ]
    for write in writes:
        l = _assert_refused(l, store_path, write, lambda: pysos.List(store_path))
    assert list(l) == ["a", {"b": [1]}, 3]
    l.close()


@pytest.mark.parametrize("bad", list(BAD_KEYS.values()), ids=list(BAD_KEYS))
def test_dict_refuses_bad_key_and_writes_nothing(store_path, bad):
    """A key that is not a JSON scalar (list, dict, tuple, nan, inf, bytes, huge int, object) is refused."""
    d = pysos.Dict(store_path)
    d["keep"] = 1
    writes = [
        lambda: d.__setitem__(bad, 1),
        lambda: d.update([("a", 1), (bad, 2)]),
        lambda: d.setdefault(bad, 1),
    ]
    for write in writes:
        d = _assert_refused(d, store_path, write, lambda: pysos.Dict(store_path))
    assert dict(d.items()) == {"keep": 1}
    d.close()


@pytest.mark.parametrize("name,bad", [("set", {1}), ("object", object()), ("bytes", b"x")])
def test_refusal_message_names_the_type(store_path, name, bad):
    """The error for a refused value names the offending type."""
    with pysos.Dict(store_path) as d:
        with pytest.raises((TypeError, ValueError)) as info:
            d["k"] = {"deep": [bad]}
    assert name in str(info.value)


def test_tuples_come_back_as_lists(store_path):
    """Tuples (also nested, and in a List) are stored as JSON arrays and come back as lists."""
    with pysos.Dict(store_path / "d") as d:
        d["t"] = (1, (2, 3), {"a": (4,)})
        assert d["t"] == [1, [2, 3], {"a": [4]}]
        assert type(d["t"]) is list and type(d["t"][1]) is list and type(d["t"][2]["a"]) is list
    with pysos.Dict(store_path / "d") as d:
        assert d["t"] == [1, [2, 3], {"a": [4]}] and type(d["t"][1]) is list
    with pysos.List(store_path / "l") as l:
        l.append((1, 2))
        assert l[0] == [1, 2] and type(l[0]) is list


def test_dict_values_are_fresh_objects(store_path):
    """Mutating a value read from a Dict, or the object that was stored, never changes the store."""
    with pysos.Dict(store_path) as d:
        original = {"a": [1, 2], "b": {"c": "x"}}
        d["k"] = original
        original["a"].append(99)
        original["b"]["c"] = "changed"
        original["new"] = 1
        assert d["k"] == {"a": [1, 2], "b": {"c": "x"}}
        got = d["k"]
        got["a"].append(3)
        got["b"].clear()
        assert d["k"] == {"a": [1, 2], "b": {"c": "x"}}
        assert d["k"] is not d["k"]
        for value in d.values():
            value["a"].append(4)
        for _, value in d.items():
            value["a"].append(5)
        assert d["k"] == {"a": [1, 2], "b": {"c": "x"}}


def test_list_values_are_fresh_objects(store_path):
    """Mutating an item read from a List (by index, slice or iteration), or the stored object, never changes the store."""
    with pysos.List(store_path) as l:
        item = [1, {"a": 2}]
        l.append(item)
        item.append(3)
        item[1]["a"] = 99
        assert l[0] == [1, {"a": 2}]
        l[0].append(7)
        l[0:1][0].append(8)
        for x in l:
            x.append(9)
        assert list(l) == [[1, {"a": 2}]]


def test_values_round_trip_exactly(store_path):
    """Edge values (64-bit int bounds, -0.0, tiny/huge floats, awkward strings) come back with the same type and value."""
    values = [2**64 - 1, -(2**63), 2**63, 0, -0.0, 5e-324, 1.7976931348623157e308, 0.1, 1.0, True,
              False, None, "", "line\nbreak\r\n", "\u2028\u2029\x00\x1f", "\U0001f600é", '"\\',
              [], {}, {"": {"": []}}, [1.0, 1, True]]
    with pysos.Dict(store_path) as d:
        for i, v in enumerate(values):
            d[i] = v
    with pysos.Dict(store_path) as d:
        for i, v in enumerate(values):
            got = d[i]
            assert got == v and type(got) is type(v), (i, v, got)
            if isinstance(v, list):
                assert [type(x) for x in got] == [type(x) for x in v]
            if isinstance(v, float):
                assert repr(got) == repr(v)


def test_equal_keys_are_one_key(store_path):
    """1, 1.0 and True are one key, and 0, 0.0, -0.0 and False are one key, as in dict."""
    with pysos.Dict(store_path) as d:
        d[1] = "int"
        d[1.0] = "float"
        d[True] = "bool"
        d[0.0] = "zero"
        d[False] = "false"
        assert len(d) == 2
        assert d[1] == "bool" and d[0] == "false" and d[-0.0] == "false"
        del d[1.0]
        assert 1 not in d and True not in d and len(d) == 1
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {0: "false"}


def test_keys_come_back_with_their_type(store_path):
    """Keys of each accepted type come back as that type (str "1", int 1, float 1.5, True, None), also after reopen."""
    keys = ["1", 2, 1.5, True, None, "", 2**64 - 1, -(2**63), 1e300]
    with pysos.Dict(store_path) as d:
        for k in keys:
            d[k] = repr(k)
    with pysos.Dict(store_path) as d:
        got = sorted(((repr(k), type(k)) for k in d), key=repr)
        assert got == sorted(((repr(k), type(k)) for k in keys), key=repr)
        for k in keys:
            assert d[k] == repr(k)
