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


# --- the tagged codec: the limit applies to the tagged encoding -----------------------

def _fill(make, encode, limit):
    """``make(n)`` for the n whose record, as ``encode`` writes it, is exactly ``limit`` bytes
    (n pads a str: one byte each)."""
    n = limit - len(encode(make(0)))
    if limit <= 4096:
        assert len(encode(make(n))) == limit
    return make(n)


def _tagged_edges():
    """Values whose tagged JSON grows by base64 (bytes) or tags (tuple, set), padded to a size by a str."""
    yield "bytes", lambda n: (b"\x00\xff" * 600, "p" * n)  # 1,200 bytes, 1,600 as base64
    yield "tuple", lambda n: ("t" * n, 1, None)
    yield "set", lambda n: {"s" * n, 2}


def _check_and_reopen(path, kind, expected):
    """``pysos check`` finds the store healthy and a reopen reads ``expected`` back."""
    assert pysos.check(path) == []
    with kind(path) as again:
        assert (dict(again.items()) if kind is pysos.Dict else list(again)) == expected


@pytest.mark.parametrize("name,make", list(_tagged_edges()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_tagged_value_at_exactly_the_limit_is_stored_on_every_dict_path(tmp_path, small_limit, clock, name, make):
    """A tagged value whose *tagged* record is exactly MAX_RECORD_BYTES is stored by d[k]=, set(expire),
    update, batch and transform, and round-trips, after a reopen too; one byte more is refused, nothing written."""
    from pysos import codec
    exact = _fill(make, lambda v: codec.encode_item("k", v), 4096)
    deadline = clock.wall() + 10**8  # a deadline of known length
    expiring = _fill(make, lambda v: codec.encode_item("k", v, deadline), 4096)
    over = _fill(make, lambda v: codec.encode_item("k", v), 4097)
    path = tmp_path / name
    with pysos.Dict(path, codec="tagged") as d:
        d["keep"] = (1,)
        writes = [
            ("d[k] =", lambda v: d.__setitem__("k", v)),
            ("update", lambda v: d.update({"k": v})),
            ("batch", lambda v: _in_batch(d, lambda: d.__setitem__("k", v))),
            ("transform", lambda v: d.transform("k", lambda old: v)),
        ]
        for call, write in writes:
            d.pop("k", None)
            write(exact)
            assert d["k"] == exact and type(d["k"]) is type(exact), call
            before = _disk_bytes(path)
            with pytest.raises(ValueError, match="record size limit of 4,096 bytes"):
                write(over)
            assert _disk_bytes(path) == before and d["k"] == exact, call
        d.set("k", expiring, expire=10**8)
        assert d["k"] == expiring
        before = _disk_bytes(path)
        with pytest.raises(ValueError, match="record size limit of 4,096 bytes"):
            d.set("k", _fill(make, lambda v: codec.encode_item("k", v, deadline), 4097), expire=10**8)
        assert _disk_bytes(path) == before and d["k"] == expiring
    _check_and_reopen(path, pysos.Dict, {"keep": (1,), "k": expiring})


def _in_batch(store, write):
    with store.batch():
        write()


def test_incr_of_a_key_at_the_limit_is_stored_and_one_more_byte_is_refused(store_path, small_limit):
    """incr on a tagged store: its record (a long key, a number) at exactly the limit is stored, one byte over refused."""
    from pysos import codec
    key = _fill(lambda n: "k" * n, lambda k: codec.encode_item(k, 10), 4096)
    with pysos.Dict(store_path, codec="tagged") as d:
        assert d.incr(key, 10) == 10
        with pytest.raises(ValueError, match="record size limit of 4,096 bytes"):
            d.incr(key, 90)  # 100: one more digit
        assert d[key] == 10
    _check_and_reopen(store_path, pysos.Dict, {key: 10})


@pytest.mark.parametrize("name,make", list(_tagged_edges()), ids=lambda v: v if isinstance(v, str) else "")
def test_a_tagged_list_item_at_exactly_the_limit_is_stored_and_can_move(tmp_path, small_limit, name, make):
    """A List item whose tagged record (under the longest position key) is exactly the limit is stored by
    append/insert/extend/l[i]=; it still fits wherever inserts, renumberings and sorts move it; one byte more is refused."""
    from pysos import codec
    from pysos._positions import KEY_MIN

    def line(value):  # the item's record under the longest position key
        return record.encode_set(b"%d" % KEY_MIN, codec.encode_value(value))

    exact, over = _fill(make, line, 4096), _fill(make, line, 4097)
    path = tmp_path / name
    with pysos.List(path, codec="tagged") as l:
        l.append(0)
        l.append(exact)
        l.insert(1, exact)
        l.extend([exact])
        l[0] = exact
        l.append(1)
        before = _disk_bytes(path)
        for write in (lambda: l.append(over), lambda: l.insert(0, over), lambda: l.extend([1, over]),
                      lambda: l.__setitem__(0, over), lambda: l.__setitem__(slice(0, 1), [over])):
            with pytest.raises(ValueError, match="record size limit of 4,096 bytes"):
                write()
            assert _disk_bytes(path) == before
        for i in range(800):  # repeated inserts next to the big items renumber them under other keys
            l.insert(2, i)
            l.insert(len(l) - 2, i)
        l.reverse()
        assert list(l)[:2] == [1, exact] and list(l)[-2:] == [exact, exact]
        expected = list(l)
    _check_and_reopen(path, pysos.List, expected)


def test_tagged_bytes_too_big_as_base64_are_refused_naming_bytes(store_path, small_limit, monkeypatch):
    """bytes whose base64 alone is over the limit are refused before base64 runs, the error naming bytes and the limit."""
    from pysos import codec

    with pysos.Dict(store_path, codec="tagged") as d, pysos.List(store_path.with_name("l"), codec="tagged") as l:
        monkeypatch.setattr(codec.base64, "b64encode", lambda data: pytest.fail("base64 of bytes too big"))
        for write in (lambda v: d.__setitem__("k", v), lambda v: l.append(v), lambda v: d.update(k=[v])):
            with pytest.raises(ValueError, match=r"bytes of 3,073 bytes \(4,100 as base64\).*limit of 4,096 bytes"):
                write(b"\x00" * 3073)
        assert len(d) == 0 and len(l) == 0 and _disk_bytes(store_path) == 0


def test_an_item_stored_under_the_old_measure_still_moves(store_path, small_limit):
    """A List item stored before items were measured under the longest key (its record at the limit under
    a short key) is moved by renumbering inserts all the same: moving a stored item never hits the limit."""
    import pysos.list
    from pysos._positions import KEY_CHARS

    with pysos.List(store_path) as l:
        l.append(0)
        pysos.list.KEY_CHARS = len(b"%d" % (2 * 2**16))  # the old measure: its own key
        try:
            big = "x" * (4096 - len(record.encode_set(b"%d" % (2 * 2**16), b'""')))
            l.append(big)
        finally:
            pysos.list.KEY_CHARS = KEY_CHARS
        l.append(1)
        for i in range(800):
            l.insert(1, i)
            l.insert(len(l) - 1, i)
        assert l[801] == big and len(l) == 1603
    assert pysos.check(store_path) == []
