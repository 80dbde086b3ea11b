"""The tagged codec: pysos.Dict(path, codec="tagged") / pysos.List(path, codec="tagged") store
datetime, date, set, frozenset, tuple, bytes, UUID and Decimal exactly, as tagged JSON objects;
the store records its codec; what cannot be stored is refused and nothing changes."""

import os
import uuid
from datetime import date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo

import orjson
import pytest

import pysos
from fake_clock import FakeClock
from store_files import records
from pysos import codec
from pysos.segments import manifest, record, segment
from strategies import exact

UTC = timezone.utc
AWARE = datetime(2026, 11, 30, 8, 0, 0, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30)))
SAMPLES = [
    datetime(2026, 11, 30, 8, 0, 0, 7),
    datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
    AWARE,
    datetime(1, 1, 1, tzinfo=timezone(-timedelta(hours=23, minutes=59, seconds=59, microseconds=999999))),
    datetime(9999, 12, 31, 23, 59, 59, 999999),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(microseconds=1))),  # Python's fromisoformat reads it as UTC
    datetime(2000, 1, 1, 0, 0, 0, 5, tzinfo=timezone(-timedelta(microseconds=999999))),
    datetime(2000, 1, 1, tzinfo=timezone(timedelta(seconds=5, microseconds=1))),
    date(2026, 11, 30),
    date(5, 1, 1),
    {1, 2, "x"},
    set(),
    frozenset({"a", (1, 2)}),
    (),
    (1, "a", None),
    b"",
    bytes(range(256)),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    Decimal("1.10"),
    Decimal("-0"),
    Decimal("1E+3"),
    Decimal("123456789012345678901234567890.000000000000000001"),
    Decimal("NaN"),
    Decimal("-Infinity"),
]
NESTED = {
    "when": AWARE,
    "tags": ({"a", "b"}, frozenset({(1, date(2026, 1, 1)), (2, b"\x00")})),
    "rows": [(1, Decimal("0.1")), {"id": uuid.UUID(int=1), "raw": b"\xff"}],
    "plain": {"n": 1, "l": [1.5, "s", None, True]},
}
LOOKALIKES = [
    {"$set": [1, 2]},
    {"$dict": {"a": 1}},
    {"$": 1},
    {"$$": "x"},
    {"$tuple": {"$set": {"$dict": 1}}},
    {"$datetime": "2026-11-30T08:00:00"},
    {"$unknown": None},
    {"$set": [1], "other": 2},  # two members: not a tag, stored as it is
    [{"$x": {"$y": [{"$z": 0}]}}],
]


@pytest.fixture
def tagged(store_path):
    d = pysos.Dict(store_path, codec="tagged")
    yield d
    d.close()


def _files(path):
    """Every file of the store and its bytes (to prove a refusal changed nothing)."""
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path)) if not name.endswith(".lock")}


@pytest.mark.parametrize("value", SAMPLES, ids=repr)
def test_each_type_round_trips_exactly(tagged, store_path, value):
    """Each added type comes back as the same type and value (microseconds, offsets, Decimal digits), also after a reopen."""
    tagged["k"] = value
    assert exact(tagged["k"]) == exact(value)
    tagged.close()
    with pysos.Dict(store_path) as again:
        assert exact(again["k"]) == exact(value)


def test_nested_values_round_trip_exactly(tagged):
    """Tuples of sets of tuples, dict values holding tagged types, lists of them: all exact."""
    tagged["n"] = NESTED
    assert exact(tagged["n"]) == exact(NESTED)
    assert exact(tagged.get("n")) == exact(NESTED)
    assert exact(dict(tagged.items())["n"]) == exact(NESTED)


def test_records_hold_the_documented_tagged_objects(tagged, store_path):
    """On disk a value is plain JSON with the tags FORMAT.md lists; a set's items are sorted by their JSON."""
    tagged["v"] = [AWARE, date(2026, 11, 30), {3, 1, 2}, frozenset({"b", "a"}), (1, 2), b"\x00\x01",
                   uuid.UUID(int=255), Decimal("1.10"), {"$set": 1}]
    (rec,) = records(store_path)
    assert rec["v"] == [
        {"$datetime": "2026-11-30T08:00:00.123456+05:30"}, {"$date": "2026-11-30"}, {"$set": [1, 2, 3]},
        {"$frozenset": ["a", "b"]}, {"$tuple": [1, 2]}, {"$bytes": "AAE="},
        {"$uuid": "00000000-0000-0000-0000-0000000000ff"}, {"$decimal": "1.10"}, {"$dict": {"$set": 1}},
    ]


@pytest.mark.parametrize("value", LOOKALIKES, ids=repr)
def test_plain_json_that_looks_like_a_tag_round_trips_unchanged(tagged, value):
    """A value's own dict with one "$..." member is escaped ({"$dict": ...}), so it comes back as it was."""
    tagged["k"] = value
    assert tagged["k"] == value
    assert exact(tagged["k"]) == exact(value)


def test_only_single_dollar_member_dicts_are_escaped(tagged, store_path):
    """Dicts with several members, or no "$" member, are written as they are: only the ambiguous ones change."""
    tagged["a"] = {"$set": [1], "other": 2}
    tagged["b"] = {"x": {"$x": 1}}
    recs = records(store_path)
    assert recs[0]["v"] == {"$set": [1], "other": 2}
    assert recs[1]["v"] == {"x": {"$dict": {"$x": 1}}}


def test_equal_sets_are_equal_bytes(tagged, store_path):
    """A set's items are written in one canonical order, whatever the insertion order."""
    tagged["a"] = {"pear", "apple", "fig", 3, (1, "x")}
    tagged["b"] = {(1, "x"), 3, "fig", "apple", "pear"}
    first, second = records(store_path)
    assert first["v"] == second["v"]


class Plus1(tzinfo):
    """A tzinfo of the application's own: the codec cannot name it, so it refuses it."""

    def utcoffset(self, dt):
        return timedelta(hours=1)


class HashableDict(dict):
    """A dict of the application's own that a set can hold: stored as a dict, it would come
    back unhashable, so a set of it could not be read back."""

    def __hash__(self):
        return 0


class HashableList(list):
    def __hash__(self):
        return 0


REFUSED = [
    ({HashableDict(a=1)}, "a set cannot hold"),
    (frozenset({(1, HashableList([2]))}), "a set cannot hold"),
    ({"k": [{1, (HashableDict(),)}]}, "a set cannot hold"),
    (object(), "builtins.object"),
    (bytearray(b"x"), "bytearray"),
    (datetime(2026, 1, 1, tzinfo=ZoneInfo.no_cache("Europe/Paris")), "ZoneInfo"),
    (datetime(2026, 1, 1, tzinfo=Plus1()), "Plus1"),
    (timedelta(1), "timedelta"),
    ((1, {2: "int key"}), "int key"),
    ((float("nan"),), "nan"),
    ({2**70}, "64-bit"),
    ([1, (2, {3, (object(),)})], "object"),
]


@pytest.mark.parametrize("value,named", REFUSED, ids=lambda v: type(v).__name__)
def test_refusals_name_the_problem_and_change_nothing(tagged, store_path, value, named):
    """What the codec cannot give back is refused (TypeError/ValueError naming it) and no file changes."""
    tagged["k"] = (1, 2)
    before = _files(store_path)
    for write in (lambda: tagged.__setitem__("k", value), lambda: tagged.set("k", value, expire=60),
                  lambda: tagged.update({"x": 1, "k": value}), lambda: tagged.transform("k", lambda old: value)):
        with pytest.raises((TypeError, ValueError), match=named):
            write()
        assert tagged["k"] == (1, 2) and "x" not in tagged
        assert _files(store_path) == before


def test_list_refusal_writes_nothing(store_path):
    """List.extend/append/insert with one value the codec refuses write nothing."""
    with pysos.List(store_path, codec="tagged") as items:
        items.append({1})
        before = _files(store_path)
        for write in (lambda: items.extend([(1,), object()]), lambda: items.append(bytearray()),
                      lambda: items.insert(0, datetime(2026, 1, 1, tzinfo=Plus1()))):
            with pytest.raises(TypeError):
                write()
        assert list(items) == [{1}]
        assert _files(store_path) == before


def test_datetime_subclass_is_refused(tagged):
    """A subclass of datetime would not come back as its type: refused, naming it."""
    class Stamp(datetime):
        pass

    with pytest.raises(TypeError, match="Stamp"):
        tagged["k"] = Stamp(2026, 1, 1)
    assert "k" not in tagged


def test_json_codec_is_unchanged(store_path):
    """The default codec still refuses datetime, UUID, set, bytes and Decimal, and stores tuples as lists."""
    with pysos.Dict(store_path) as d:
        assert d.codec == "json"
        for value in (datetime(2026, 1, 1), uuid.UUID(int=1), {1}, b"x", Decimal(1), date(2026, 1, 1)):
            with pytest.raises(TypeError, match=type(value).__name__):
                d["k"] = value
        d["t"] = (1, 2)
        assert d["t"] == [1, 2]
        d["lookalike"] = {"$set": [1]}
        assert d["lookalike"] == {"$set": [1]}
    assert b'"codec"' not in (store_path / "MANIFEST").read_bytes()
    assert manifest.read(str(store_path)).version == manifest.VERSION_ONE


def test_the_store_records_its_codec(tagged, store_path):
    """A tagged store's MANIFEST says codec "tagged" and version 3 (older pysos refuse it)."""
    body = orjson.loads((store_path / "MANIFEST").read_bytes())
    assert body["codec"] == "tagged" and body["version"] == 3
    assert tagged.codec == "tagged" and tagged.stats()["codec"] == "tagged"


def test_a_later_open_decodes_without_being_told(tagged, store_path):
    """Opened again with no codec (Dict, pysos.open, a reader), the recorded codec decodes."""
    tagged["n"] = NESTED
    tagged.close()
    with pysos.open(store_path) as again:
        assert again.codec == "tagged" and exact(again["n"]) == exact(NESTED)
    with pysos.Dict(store_path, codec="tagged") as again:
        assert exact(again["n"]) == exact(NESTED)
    with pysos.Dict(store_path, readonly=True) as reader:
        assert exact(reader["n"]) == exact(NESTED)


def test_an_explicit_other_codec_is_refused(store_path):
    """Opening a store with a codec other than its recorded one raises FormatError, both ways, and changes nothing."""
    tagged_path, json_path = store_path / "t", store_path / "j"
    pysos.Dict(tagged_path, codec="tagged").close()
    pysos.Dict(json_path).close()
    for path, other in ((tagged_path, "json"), (json_path, "tagged")):
        before = _files(path)
        for readonly in (False, True):
            with pytest.raises(pysos.FormatError, match="codec"):
                pysos.Dict(path, codec=other, readonly=readonly)
        with pytest.raises(pysos.FormatError, match="codec"):
            pysos.open(path, "n", codec=other)
        assert _files(path) == before


def test_an_unknown_codec_is_a_value_error_and_creates_nothing(store_path):
    """codec= anything but "json", "tagged" or None raises ValueError before anything is created."""
    with pytest.raises(ValueError, match="codec"):
        pysos.Dict(store_path, codec="pickle")
    with pytest.raises(ValueError, match="codec"):
        pysos.List(store_path, codec=1)
    assert not store_path.exists()


def test_a_manifest_naming_an_unknown_codec_is_refused(store_path):
    """A MANIFEST with a codec this pysos does not know raises FormatError (not a silent misread)."""
    pysos.Dict(store_path, codec="tagged").close()
    current = manifest.read(str(store_path))
    manifest.write(str(store_path), current.__class__(**{**current.__dict__, "codec": "msgpack"}))
    with pytest.raises(pysos.FormatError, match="msgpack"):
        pysos.Dict(store_path)


def test_manifest_version_and_codec_must_agree(store_path):
    """Version 3 names a codec; versions 1 and 2 name none: anything else is a corrupt MANIFEST."""
    pysos.Dict(store_path).close()
    current = manifest.read(str(store_path))
    for version, codec_name in ((3, "json"), (2, "tagged")):
        manifest.write(str(store_path), current.__class__(**{**current.__dict__, "version": version, "codec": codec_name}))
        with pytest.raises(pysos.CorruptionError):
            manifest.read(str(store_path))


def _append_raw(tagged, store_path, *records):
    """Store "ok" = 1, close, then append well-checksummed records of (key JSON, value JSON) as
    another pysos could have written them; return the segment's name."""
    tagged["ok"] = 1
    tagged.close()
    name = manifest.read(str(store_path)).segments[-1]
    with open(store_path / name, "ab") as f:
        for key_json, value_json in records:
            f.write(record.encode_set(key_json, value_json))
    return name


def test_a_tag_that_does_not_decode_is_corruption_naming_file_and_offset(tagged, store_path):
    """A well-checksummed record holding an unknown tag or a bad payload raises CorruptionError with file and byte."""
    name = _append_raw(tagged, store_path, (b'"bad"', b'{"$nope":1}'), (b'"worse"', b'{"$date":"30/11/2026"}'))
    with pysos.Dict(store_path, readonly=True) as reader:
        assert reader["ok"] == 1
        with pytest.raises(pysos.CorruptionError, match=rf"{name}.*byte \d+.*nope"):
            reader["bad"]
        with pytest.raises(pysos.CorruptionError, match=rf"{name}.*byte \d+.*\$date"):
            reader["worse"]


def test_expiry_with_tagged_values(store_path):
    """d.set(k, v, expire=) stores a tagged value that expires; the MANIFEST stays version 3 with its codec."""
    fake = FakeClock()
    restore = fake.install()
    try:
        with pysos.Dict(store_path, codec="tagged", expire=100) as d:
            d["default"] = {1, 2}
            d.set("short", (date(2026, 1, 1),), expire=10)
            assert d["short"] == (date(2026, 1, 1),)
            fake.advance(11)
            assert "short" not in d and d["default"] == {1, 2}
            assert d.incr("n") == 1
        found = manifest.read(str(store_path))
        assert found.version == 3 and found.codec == "tagged"
    finally:
        restore()


def test_incr_and_transform(tagged):
    """transform stores fn(old) through the codec; incr works on a tagged store's numbers."""
    assert tagged.transform("s", lambda old: old | {3}, default=frozenset({1})) == frozenset({1, 3})
    assert tagged["s"] == frozenset({1, 3}) and type(tagged["s"]) is frozenset
    assert tagged.transform("s", lambda old: tuple(sorted(old))) == (1, 3)
    assert tagged.incr("n", 2) == 2 and tagged.incr("n") == 3


def test_memoize_takes_tagged_arguments(tagged):
    """With codec="tagged", memoize accepts tuple, set and datetime arguments; tuple and list are distinct entries."""
    calls = []

    @tagged.memoize(name="describe")
    def describe(arg, when=None):
        calls.append(arg)
        return {"arg": arg, "when": when}

    assert describe((1, 2)) == {"arg": (1, 2), "when": None}
    assert describe([1, 2]) == {"arg": [1, 2], "when": None}
    assert describe((1, 2)) == {"arg": (1, 2), "when": None}
    assert type(describe((1, 2))["arg"]) is tuple
    assert describe({"b", "a"}, when=AWARE)["when"] == AWARE
    assert describe({"a", "b"}, when=AWARE) == {"arg": {"a", "b"}, "when": AWARE}
    assert calls == [(1, 2), [1, 2], {"a", "b"}]
    key = next(k for k in tagged if '"$set"' in k)
    assert '{"$set":["a","b"]}' in key  # a set argument's key is the same in every process
    with pytest.raises(TypeError, match="memoize"):
        describe(object())


def test_observers_see_decoded_values(store_path):
    """Observers of a tagged Dict and List get the values, not their tagged objects."""
    seen = []
    with pysos.Dict(store_path / "d", codec="tagged") as d:
        d.observe(lambda *event: seen.append(event))
        d["k"] = {1}
        d["k"] = (2,)
        del d["k"]
    with pysos.List(store_path / "l", codec="tagged") as items:
        items.observe(lambda *event: seen.append(event))
        items.append(date(2026, 1, 1))
        items[0] = b"x"
    assert seen == [("k", {1}, None), ("k", (2,), {1}), ("k", None, (2,)),
                    (0, date(2026, 1, 1), None), (0, b"x", date(2026, 1, 1))]


def test_list_operations(store_path):
    """A tagged List: append, insert, slices, extend, pop, sort and renumbering keep values exact."""
    with pysos.List(store_path, codec="tagged") as items:
        items.append((1, 2))
        items.insert(0, {3})
        items.extend([b"a", Decimal("2.50")])
        items[1:2] = [frozenset({1}), date(2026, 1, 1)]
        assert exact(list(items)) == exact([{3}, frozenset({1}), date(2026, 1, 1), b"a", Decimal("2.50")])
        assert exact(items[1:3]) == exact([frozenset({1}), date(2026, 1, 1)])
        assert items.pop() == Decimal("2.50")
        for i in range(60):  # inserts at one middle place make the List renumber a crowded range
            items.insert(2, (i, b"r"))
        assert exact(items[2]) == exact((59, b"r")) and exact(items[-1]) == exact(b"a")
        expected = list(items)
    with pysos.List(store_path) as again:
        assert exact(list(again)) == exact(expected)
        again[:] = [(2, "b"), (1, "a")]
        again.sort()
        assert list(again) == [(1, "a"), (2, "b")] and type(again[0]) is tuple


def test_batch_commits_and_discards(tagged):
    """Tagged values in a batch land together, and a raising batch leaves nothing."""
    with tagged.batch():
        tagged["a"] = {1}
        tagged["b"] = (date(2026, 1, 1),)
    with pytest.raises(ZeroDivisionError):
        with tagged.batch():
            tagged["c"] = {2}
            1 / 0
    assert dict(tagged.items()) == {"a": {1}, "b": (date(2026, 1, 1),)}


def test_compaction_copies_records_without_decoding(store_path, monkeypatch):
    """The compactor never decodes values (a codec that cannot decode does not stop it); the MANIFEST keeps the codec."""
    with pysos.Dict(store_path, codec="tagged", segment_size=512, autocompact=False) as d:
        for i in range(50):
            d[f"k{i % 10}"] = {i, (i, b"x")}
        monkeypatch.setitem(codec.CODECS, "tagged", codec.TAGGED._replace(from_plain=_never))
        result = d.compact()
        assert result["reclaimed_bytes"] > 0
        monkeypatch.undo()
        assert d["k3"] == {43, (43, b"x")}
    found = manifest.read(str(store_path))
    assert found.codec == "tagged" and found.version == 3 and found.compactions[0] == 1
    with pysos.Dict(store_path) as again:
        assert {k: again[k] for k in again} == {f"k{i}": {40 + i, (40 + i, b"x")} for i in range(10)}


def _never(plain):
    raise AssertionError("the compactor decoded a value")


def test_check_and_repair_keep_the_codec(store_path):
    """check finds a tagged store healthy; repair of a damaged one keeps its codec and the intact values."""
    with pysos.Dict(store_path, codec="tagged", autocompact=False) as d:
        d["a"] = {1, 2}
        d["b"] = (date(2026, 1, 1), b"x")
        d["c"] = Decimal("0.1")
    assert pysos.check(store_path) == []
    name = manifest.read(str(store_path)).segments[-1]
    data = bytearray((store_path / name).read_bytes())
    first_end = data.index(b"\n")
    data[first_end - 3] ^= 1  # damage the first record ("a")
    (store_path / name).write_bytes(bytes(data))
    assert pysos.check(store_path)
    pysos.repair(store_path)
    with pysos.Dict(store_path) as again:
        assert again.codec == "tagged"
        assert dict(again.items()) == {"b": (date(2026, 1, 1), b"x"), "c": Decimal("0.1")}


def test_pysos_open_creates_with_a_codec(store_path):
    """pysos.open(path, "c", codec="tagged") creates a tagged Dict; "n" empties it and keeps the codec."""
    with pysos.open(store_path, "c", codec="tagged") as d:
        d["k"] = {1}
    with pysos.open(store_path, "n") as d:
        assert len(d) == 0 and d.codec == "tagged"
    assert segment.segment_number(manifest.read(str(store_path)).segments[-1]) is not None


def test_subclasses_of_json_types_are_stored_as_their_base_type(tagged):
    """An IntEnum, an OrderedDict, a namedtuple come back as int, dict and tuple (equal), as documented."""
    import collections
    import enum

    class Color(enum.IntEnum):
        RED = 1

    Point = collections.namedtuple("Point", "x y")
    tagged["k"] = [Color.RED, collections.OrderedDict(a=1), Point(1, 2)]
    assert exact(tagged["k"]) == exact([1, {"a": 1}, (1, 2)])


def test_keys_stay_json_scalars(tagged):
    """The tagged codec is for values: a tuple, date or UUID key is refused as before, nothing written."""
    for key in ((1, 2), date(2026, 1, 1), uuid.UUID(int=1)):
        with pytest.raises(TypeError, match="keys must be"):
            tagged[key] = 1
    assert len(tagged) == 0


PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")
ZONED = [
    (datetime(2026, 11, 30, 8, 0, 0, 250, tzinfo=PARIS), "2026-11-30T08:00:00.000250+01:00[Europe/Paris]"),
    (datetime(2026, 7, 1, 8, tzinfo=PARIS), "2026-07-01T08:00:00+02:00[Europe/Paris]"),
    (datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK), "2026-11-01T01:30:00-04:00[America/New_York]"),  # repeated hour
    (datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=NEW_YORK), "2026-11-01T01:30:00-05:00[America/New_York]"),
    (datetime(2026, 3, 8, 2, 30, tzinfo=NEW_YORK), "2026-03-08T02:30:00-05:00[America/New_York]"),  # skipped hour
    (datetime(2026, 3, 8, 2, 30, fold=1, tzinfo=NEW_YORK), "2026-03-08T02:30:00-04:00[America/New_York]"),
    (datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")), "2026-01-01T00:00:00+00:00[UTC]"),
]


def _same_zoned(got, expected):
    """Same type, wall time, ZoneInfo (the very object ZoneInfo(key) gives), fold and UTC offset."""
    assert type(got) is datetime
    assert got.replace(tzinfo=None) == expected.replace(tzinfo=None)
    assert got.tzinfo is expected.tzinfo and got.fold == expected.fold
    assert got.utcoffset() == expected.utcoffset() and got == expected


@pytest.mark.parametrize("value,text", ZONED, ids=lambda v: v if isinstance(v, str) else "")
def test_zoneinfo_datetimes_round_trip_with_their_zone_and_fold(tagged, store_path, value, text):
    """A ZoneInfo datetime is stored as {"$datetime": ISO+offset[IANA key]} and comes back with the same
    ZoneInfo, wall time and fold (the repeated and the skipped hour included), also after a reopen."""
    tagged["k"] = value
    tagged["n"] = {"at": [value], "set": {value}}
    _same_zoned(tagged["k"], value)
    _same_zoned(tagged["n"]["at"][0], value)
    assert tagged["n"]["set"] == {value}
    assert records(store_path)[0]["v"] == {"$datetime": text}
    tagged.close()
    with pysos.Dict(store_path) as again:
        _same_zoned(again["k"], value)


def test_a_fold_that_changes_nothing_comes_back_zero_and_equal(tagged):
    """fold=1 outside a repeated or skipped hour changes no offset: it comes back 0, an equal, same-hash datetime."""
    value = datetime(2026, 7, 1, 8, fold=1, tzinfo=PARIS)
    tagged["k"] = value
    got = tagged["k"]
    assert got == value and hash(got) == hash(value) and got.utcoffset() == value.utcoffset()
    assert got.fold == 0 and got.tzinfo is PARIS


def test_a_zone_whose_rules_changed_keeps_the_wall_time(tagged, store_path):
    """A stored offset the zone's rules no longer give (tzdata changed) reads as the wall time in the zone, as pickle does."""
    name = _append_raw(tagged, store_path, (b'"k"', b'{"$datetime":"2026-11-30T08:00:00+05:00[Europe/Paris]"}'),
                       (b'"mars"', b'{"$datetime":"2026-11-30T08:00:00+05:00[Mars/Olympus]"}'))
    with pysos.Dict(store_path, readonly=True) as reader:
        _same_zoned(reader["k"], datetime(2026, 11, 30, 8, tzinfo=PARIS))
        with pytest.raises(pysos.CorruptionError, match=rf"{name}.*byte \d+.*Mars/Olympus"):
            reader["mars"]


def _lose_manifest(store_path, how):
    """Make the MANIFEST missing or unreadable, the way a crash or a bad disk could."""
    if how == "missing":
        os.remove(store_path / "MANIFEST")
    else:
        (store_path / "MANIFEST").write_bytes(b"\x00garbage\n")


@pytest.fixture(params=["missing", "unreadable"])
def tagged_without_manifest(store_path, request):
    """A tagged store (a datetime, a set, a lookalike) whose MANIFEST, the codec's only record, is lost."""
    with pysos.Dict(store_path, codec="tagged", autocompact=False) as d:
        d["at"] = AWARE
        d["tags"] = {"a", "b"}
        d["plain"] = {"n": 1}
    _lose_manifest(store_path, request.param)
    return store_path


def test_repair_without_a_manifest_refuses_to_guess_the_codec_of_taggedrecords(tagged_without_manifest):
    """With no readable MANIFEST and tagged objects in the records, repair() without codec= raises
    FormatError asking which codec, and changes no file (it used to make a json store: dicts back)."""
    before = _files(tagged_without_manifest)
    with pytest.raises(pysos.FormatError, match=r"tagged objects.*codec='tagged'.*codec='json'"):
        pysos.repair(tagged_without_manifest)
    assert _files(tagged_without_manifest) == before
    assert not (tagged_without_manifest / "damaged").exists()


def test_repair_with_the_codec_given_brings_the_values_back(tagged_without_manifest):
    """repair(codec="tagged") records the codec again: every value comes back as it was stored."""
    pysos.repair(tagged_without_manifest, codec="tagged")
    assert manifest.read(str(tagged_without_manifest)).codec == "tagged"
    assert pysos.check(tagged_without_manifest) == []
    with pysos.Dict(tagged_without_manifest) as again:
        assert again.codec == "tagged"
        assert exact(dict(again.items())) == exact({"at": AWARE, "tags": {"a", "b"}, "plain": {"n": 1}})


def test_repair_with_codec_json_keeps_the_tagged_objects_as_dicts(tagged_without_manifest):
    """repair(codec="json") is the explicit choice to read the tagged objects as plain dicts."""
    pysos.repair(tagged_without_manifest, codec="json")
    with pysos.Dict(tagged_without_manifest) as again:
        assert again.codec == "json" and again["tags"] == {"$set": ["a", "b"]}


def test_repair_of_plain_json_records_without_a_manifest_needs_no_codec(store_path):
    """No readable MANIFEST and no tagged object in any record: repair() makes a json store, as before."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d["a"] = {"n": [1, "$x"]}
        d["b"] = {"$x": 1, "y": 2}  # two members: not a tagged object
    _lose_manifest(store_path, "missing")
    pysos.repair(store_path)
    with pysos.Dict(store_path) as again:
        assert again.codec == "json" and dict(again.items()) == {"a": {"n": [1, "$x"]}, "b": {"$x": 1, "y": 2}}


def test_repair_refuses_a_codec_other_than_the_recorded_one_and_an_unknown_one(store_path):
    """repair(codec=) of a store whose MANIFEST records another codec, or an unknown codec name, changes nothing."""
    with pysos.Dict(store_path, codec="tagged") as d:
        d["k"] = {1}
    before = _files(store_path)
    with pytest.raises(pysos.FormatError, match="'tagged', not 'json'"):
        pysos.repair(store_path, codec="json")
    with pytest.raises(ValueError, match="codec must be one of"):
        pysos.repair(store_path, codec="pickle")
    assert _files(store_path) == before
    pysos.repair(store_path, codec="tagged")  # the recorded one: fine
    with pysos.Dict(store_path) as again:
        assert again["k"] == {1}


@pytest.mark.parametrize("codec,items", [
    ("tagged", [Decimal("1.0"), Decimal("1.00")]),
    ("tagged", [datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))]),
    ("tagged", [{1}, frozenset({1})]),
    ("tagged", [(1, {"a": 1, "b": 2}), (1, {"b": 2, "a": 1})]),
    ("json", [0.0, -0.0]),
    ("json", [{"a": 1, "b": 2}, {"b": 2, "a": 1}]),
])
def test_reverse_and_sort_move_equal_items_that_differ(store_path, codec, items):
    """List.reverse() and sort() skip items already in place, but an item equal to another
    yet stored differently (Decimal digits, a UTC offset, a set against a frozenset, a
    dict's order, -0.0) is not in place: the list reads back reversed, exactly."""
    with pysos.List(store_path, codec=codec) as lst:
        lst.extend(items)
        lst.reverse()
        expected = items[::-1]
        assert [orjson.dumps(codec_plain(codec, v)) for v in lst] == [orjson.dumps(codec_plain(codec, v)) for v in expected]
        lst.sort(key=lambda v: 0, reverse=False)  # stable: stays as it is
        assert [repr(v) for v in lst] == [repr(v) for v in expected]
    with pysos.List(store_path) as lst:
        assert [repr(v) for v in lst] == [repr(v) for v in expected]


def codec_plain(name, value):
    return codec.to_plain(value) if name == "tagged" else value
