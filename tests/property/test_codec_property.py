"""The tagged codec round-trips exactly (hypothesis): any value built of JSON, datetime, date,
set, frozenset, tuple, bytes, UUID and Decimal, nested, comes back the same types and values,
through the record encoding and through a real store; any plain JSON document, however much
it looks like a tagged object, comes back unchanged."""

import shutil
import tempfile

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pysos
from pysos import codec
from pysos.segments import record
from strategies import exact, json_with_tag_lookalikes, tagged_values

FAST = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
STORE = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def _through_records(value):
    return codec.from_plain(orjson.loads(record.encode_value(codec.to_plain(value))))


@FAST
@given(tagged_values)
def test_tagged_values_round_trip_exactly(value):
    """encode (to_plain + the record's JSON) then decode gives back exactly the value."""
    assert exact(_through_records(value)) == exact(value)


@FAST
@given(tagged_values)
def test_encoding_is_canonical(value):
    """Decoding and encoding again gives the same bytes (sets sorted): equal values, equal records."""
    data = record.encode_value(codec.to_plain(value))
    assert record.encode_value(codec.to_plain(codec.from_plain(orjson.loads(data)))) == data


@FAST
@given(json_with_tag_lookalikes)
def test_plain_json_comes_back_unchanged(value):
    """A plain JSON document, dicts with one "$..." member included, is not mistaken for a tag."""
    assert exact(_through_records(value)) == exact(value)


@STORE
@given(st.lists(tagged_values, max_size=6), st.dictionaries(st.text(max_size=4), tagged_values, max_size=6))
def test_stores_round_trip_across_reopen(items, mapping):
    """A tagged List and Dict give back every value exactly, before and after a reopen and a compaction."""
    tmp = tempfile.mkdtemp(prefix="pysos-codec-prop-")
    try:
        with pysos.List(tmp + "/l", codec="tagged") as lst, pysos.Dict(tmp + "/d", codec="tagged") as d:
            lst.extend(items)
            d.update(mapping)
            assert exact(list(lst)) == exact(items)
            assert exact(dict(d.items())) == exact(mapping)
            d.compact()
        with pysos.List(tmp + "/l", readonly=True) as lst, pysos.Dict(tmp + "/d", readonly=True) as d:
            assert exact(list(lst)) == exact(items)
            assert exact({k: d[k] for k in mapping}) == exact(mapping)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
