"""The command line on a codec="tagged" store: dump, get and export show the plain JSON on
disk (tagged objects as they are), import reads it back into a tagged store, info names
the codec."""

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

import pysos
from cli_helpers import ok, run, user_error
from strategies import exact

VALUES = {
    "when": datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc),
    "tags": {"b", "a"},
    "row": (1, Decimal("2.50"), b"\x01"),
    "lookalike": {"$set": [1]},
    "plain": {"n": [1, 2]},
}
PLAIN = {
    "when": {"$datetime": "2026-11-30T08:00:00+00:00"},
    "tags": {"$set": ["a", "b"]},
    "row": {"$tuple": [1, {"$decimal": "2.50"}, {"$bytes": "AQ=="}]},
    "lookalike": {"$dict": {"$set": [1]}},
    "plain": {"n": [1, 2]},
}


@pytest.fixture
def tagged_store(tmp_path):
    path = tmp_path / "tagged"
    with pysos.Dict(path, codec="tagged") as d:
        d.update(VALUES)
    return path


def test_dump_shows_tagged_objects_as_on_disk(tagged_store):
    """pysos dump prints each value as the plain JSON its record holds."""
    rows = [json.loads(line) for line in ok("dump", tagged_store).splitlines()]
    assert {row["key"]: row["value"] for row in rows} == PLAIN


def test_get_prints_the_plain_json(tagged_store):
    """pysos get prints the tagged objects of a value, not a lossy string of it."""
    assert json.loads(ok("get", tagged_store, "row")) == PLAIN["row"]
    assert json.loads(ok("get", tagged_store, "when")) == PLAIN["when"]


def test_info_names_the_codec(tagged_store):
    """pysos info (and --json) says which codec the store's values are written with."""
    assert json.loads(ok("info", "--json", tagged_store))["codec"] == "tagged"
    assert "codec:" in ok("info", tagged_store)


def test_export_then_import_into_a_new_tagged_store_round_trips(tagged_store, tmp_path):
    """export writes the plain JSON; import --codec tagged makes a tagged store with the exact values."""
    out = tmp_path / "out.jsonl"
    ok("export", "-q", tagged_store, out)
    ok("import", "-q", "--codec", "tagged", tmp_path / "copy", out)
    with pysos.Dict(tmp_path / "copy") as copy:
        assert copy.codec == "tagged"
        assert exact(dict(copy.items())) == exact(VALUES)


def test_import_into_an_existing_tagged_store_decodes(tagged_store, tmp_path):
    """Records imported into a tagged store (no --codec needed) have their tagged objects decoded."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"key": "d", "value": {"$date": "2026-01-02"}}) + "\n")
    ok("import", "-q", tagged_store, src)
    with pysos.Dict(tagged_store, readonly=True) as d:
        assert d["d"] == date(2026, 1, 2)


def test_import_of_a_dump_into_a_json_store_keeps_plain_objects(tagged_store, tmp_path):
    """Into a json store (the default) the tagged objects stay the plain dicts they are."""
    dump = tmp_path / "dump.jsonl"
    dump.write_text(ok("dump", tagged_store))
    ok("import", "-q", tmp_path / "plain", dump)
    with pysos.Dict(tmp_path / "plain") as d:
        assert d.codec == "json" and dict(d.items()) == PLAIN


def test_import_with_another_codec_than_the_store_is_one_error_line(tagged_store, tmp_path):
    """import --codec json into a tagged store: one clear error line, nothing written."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"key": "x", "value": 1}) + "\n")
    user_error(run("import", "--codec", "json", tagged_store, src), 1, "codec")
    with pysos.Dict(tagged_store, readonly=True) as d:
        assert "x" not in d


def test_import_of_a_bad_tag_names_the_line(tagged_store, tmp_path):
    """A malformed tagged object in the input is refused with the line number; that batch is not written."""
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"key": "x", "value": {"$date": "soon"}}) + "\n")
    user_error(run("import", tagged_store, src), 1, "line 1", "$date")
    with pysos.Dict(tagged_store, readonly=True) as d:
        assert "x" not in d


def test_set_takes_the_plain_json_get_prints(tagged_store):
    """pysos set on a tagged store decodes tagged objects (as get prints them); a bad one is one error line."""
    ok("set", tagged_store, "due", '{"$date": "2026-12-24"}')
    assert json.loads(ok("get", tagged_store, "due")) == {"$date": "2026-12-24"}
    with pysos.Dict(tagged_store, readonly=True) as d:
        assert d["due"] == date(2026, 12, 24)
    user_error(run("set", tagged_store, "due", '{"$date": 1}'), 1, "$date")


def test_repair_asks_for_the_codec_of_a_tagged_store_without_manifest(tagged_store):
    """pysos repair of a tagged store whose MANIFEST is lost fails with one line naming --codec, changing
    nothing; pysos repair --codec tagged brings every value back."""
    (tagged_store / "MANIFEST").unlink()
    before = sorted(p.name for p in tagged_store.iterdir())
    user_error(run("repair", tagged_store), 1, "tagged objects", "--codec tagged")
    assert sorted(p.name for p in tagged_store.iterdir()) == before
    ok("repair", "--codec", "tagged", "--quiet", tagged_store)
    with pysos.Dict(tagged_store) as again:
        assert exact(dict(again.items())) == exact(VALUES)
