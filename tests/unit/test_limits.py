"""Values a store cannot hold: records over the size limit, values nested too deep or
containing themselves. Each is refused with ValueError before anything is written."""

import os

import pytest

import pysos
from pysos.segments import record


@pytest.fixture
def small_limit(monkeypatch):
    """Records of at most 4,096 bytes, so the limit is tested without allocating GiB."""
    monkeypatch.setattr(record, "MAX_RECORD_BYTES", 4096)
    monkeypatch.setattr(record, "_LONG_STR", 4096 >> 2)  # derived from it for the write path
    monkeypatch.setattr(record, "_MAX_DATA", 4096 - record.PREFIX_LEN)
    return 4096


def _disk_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(".jsonl"))


def _refusals(d, l):
    """Every way a value reaches the disk, with a value that is too big for a 4 KiB record."""
    yield "d[k] = str", lambda: d.__setitem__("k", "x" * 5000)
    yield "d[long key]", lambda: d.__setitem__("k" * 5000, 1)
    yield "d[k] = flat list", lambda: d.__setitem__("k", ["x" * 3000, "y" * 3000])
    yield "d[k] = flat dict", lambda: d.__setitem__("k", {"a" * 3000: "b" * 3000})
    yield "d[k] = nested", lambda: d.__setitem__("k", {"a": [1.5, {"b": "x" * 5000}]})
    yield "d[k] = many small", lambda: d.__setitem__("k", [[i] for i in range(2000)])
    yield "update", lambda: d.update({"a": 1, "b": "x" * 5000})
    yield "update long key", lambda: d.update({"k" * 5000: 1})
    yield "append", lambda: l.append("x" * 5000)
    yield "insert", lambda: l.insert(0, ["x" * 5000])
    yield "extend", lambda: l.extend([1, "x" * 5000])
    yield "l[0] =", lambda: l.__setitem__(0, {"k": "é" * 3000})


def test_records_over_the_limit_are_refused_before_anything_is_written(tmp_path, small_limit):
    """Every write path refuses a record over MAX_RECORD_BYTES with a ValueError naming the limit."""
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        d["keep"] = 1
        l.append(1)
        before = _disk_bytes(tmp_path / "d"), _disk_bytes(tmp_path / "l")
        for name, write in _refusals(d, l):
            with pytest.raises(ValueError, match="record size limit of 4,096 bytes"):
                write()
            assert (_disk_bytes(tmp_path / "d"), _disk_bytes(tmp_path / "l")) == before, name
        assert dict(d) == {"keep": 1} and list(l) == [1]


def test_a_record_of_exactly_the_limit_is_stored(store_path, small_limit):
    """A record of exactly MAX_RECORD_BYTES is stored and read back; one byte more is refused."""
    overhead = len(record.encode_item("k", ""))
    with pysos.Dict(store_path) as d:
        d["k"] = "x" * (4096 - overhead)
        assert len(d["k"]) == 4096 - overhead
        with pytest.raises(ValueError, match="record size limit"):
            d["k"] = "x" * (4096 - overhead + 1)
    with pysos.Dict(store_path) as d:
        assert d["k"] == "x" * (4096 - overhead)


def test_long_strings_are_measured_before_orjson_sees_them(store_path, small_limit, monkeypatch):
    """A str too long to store never reaches orjson (which reserves ~10x its length and can crash)."""

    class NoOrjson:
        def __getattr__(self, name):
            raise AssertionError(f"orjson.{name} called with a value that is too big")

    with pysos.Dict(store_path) as d, pysos.List(store_path.with_name("l")) as l:
        monkeypatch.setattr(record, "orjson", NoOrjson())
        for value in ("x" * 5000, ["x" * 5000], {"a": {"b": ["é" * 2100]}}, {"k" * 5000: 1}):
            with pytest.raises(ValueError, match="record size limit"):
                d["k"] = value
            with pytest.raises(ValueError, match="record size limit"):
                l.append(value)
        with pytest.raises(ValueError, match="record size limit"):
            d["k" * 5000] = 1


def test_the_real_limit_refuses_a_str_over_256_mib(store_path):
    """At the shipped limit (256 MiB), a str of 256 MiB + 1 bytes is refused, nothing written."""
    assert record.MAX_RECORD_BYTES == 256 * 2**20
    value = "x" * (record.MAX_RECORD_BYTES + 1)
    with pysos.Dict(store_path) as d:
        with pytest.raises(ValueError, match="268,435,456 bytes"):
            d["big"] = value
        with pytest.raises(ValueError, match="268,435,456 bytes"):
            d.update(big=[value])
        assert len(d) == 0 and _disk_bytes(store_path) == 0


def _nested(depth: int):
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_cyclic_values_raise_value_error_and_write_nothing(tmp_path):
    """A value that contains itself raises ValueError (not RecursionError) on every path."""
    cyclic_list = [1]
    cyclic_list.append(cyclic_list)
    cyclic_dict = {"a": 1}
    cyclic_dict["self"] = [cyclic_dict]
    wide = []
    wide.extend([wide] * 50)  # no exponential walk
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        for value in (cyclic_list, cyclic_dict, wide, (1, cyclic_list)):
            for write in (lambda: d.__setitem__("k", value), lambda: d.update(k=value),
                          lambda: l.append(value), lambda: l.extend([value])):
                with pytest.raises(ValueError, match="contains itself"):
                    write()
        assert len(d) == 0 and len(l) == 0
        assert _disk_bytes(tmp_path / "d") == _disk_bytes(tmp_path / "l") == 0


def test_values_nested_too_deep_raise_value_error(tmp_path):
    """254 nested containers are stored; 255 or ~1,000 raise ValueError, not RecursionError."""
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        d["ok"] = _nested(254)
        l.append({"a": _nested(253)})
        for depth in (255, 1000, 5000):
            for write in (lambda: d.__setitem__("k", _nested(depth)), lambda: l.append(_nested(depth)),
                          lambda: d.update(k={"a": _nested(depth)})):
                with pytest.raises(ValueError, match="nested more than 254"):
                    write()
        assert list(d) == ["ok"] and len(l) == 1
    with pysos.Dict(tmp_path / "d") as d, pysos.List(tmp_path / "l") as l:
        assert d["ok"] == _nested(254) and l[0] == {"a": _nested(253)}
