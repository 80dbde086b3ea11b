"""Records: one checksummed JSON line per change."""

import json
import zlib

import orjson
import pytest

from pysos.segments import record

AWKWARD = ["plain", "line\nfeed", "tab\there", "sep\u2028arator", "nul\x00byte", "emoji 🐍🎉", "quote\"back\\slash", ""]


@pytest.mark.parametrize("text", AWKWARD)
def test_set_round_trips_awkward_text_in_key_and_value(text):
    """A set record with newlines, tabs, U+2028, NUL or emoji in key and value decodes to the same key and value."""
    line = record.encode_set(record.encode_key(text), record.encode_value({"t": text, "l": [text]}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    obj = record.parse(line)
    assert obj["k"] == text and obj["v"] == {"t": text, "l": [text]}
    assert record.decode(line) == record.Record(record.SET, text, 0)


def test_each_line_is_plain_json_that_any_parser_reads():
    """A record line is one JSON document that the standard library parses too (jq-readable)."""
    line = record.encode_set(record.encode_key("k"), record.encode_value([1, 2.5, None, True]))
    assert json.loads(line.decode("utf-8")) == {"c": line[6:14].decode(), "k": "k", "v": [1, 2.5, None, True]}


def test_checksum_covers_everything_after_the_prefix():
    """The checksum is the CRC-32 of the bytes after the 16-byte prefix, without the line feed."""
    line = record.encode_delete(record.encode_key(42))
    assert int(line[6:14], 16) == zlib.crc32(line[16:-1])
    assert record.decode(line) == record.Record(record.DELETE, 42, 0)


@pytest.mark.parametrize("position", [0, 7, 16, 20, -3])
def test_a_flipped_byte_fails_the_check(position):
    """Changing any byte of a record (prefix, checksum or body) makes it invalid."""
    line = bytearray(record.encode_set(b'"key"', b'{"a":"value"}'))
    line[position] ^= 0x01
    assert not record.verify(bytes(line))
    with pytest.raises(record.BadRecord):
        record.decode(bytes(line))


def test_a_truncated_line_fails_the_check():
    """A record cut short (a torn write) never verifies."""
    line = record.encode_set(b'"key"', b'"value"')
    for cut in range(len(line) - 1):
        assert not record.verify(line[:cut])


def test_batch_markers_decode():
    """Batch begin and end markers carry their kind and the end its record count."""
    assert record.decode(record.BATCH_BEGIN_LINE).kind == record.BATCH_BEGIN
    assert record.decode(record.encode_batch_end(7)) == record.Record(record.BATCH_END, None, 7)


@pytest.mark.parametrize("key", ["s", 0, -5, 2**63 - 1, 1.5, -0.0, True, False, None])
def test_scalar_keys_encode(key):
    """Every JSON scalar key type encodes to JSON that decodes equal."""
    assert orjson.loads(record.encode_key(key)) == key


@pytest.mark.parametrize("key", [[1], {"a": 1}, (1,), b"x", float("nan"), float("inf"), object(), 2**64])
def test_bad_keys_are_refused(key):
    """Keys that are not JSON scalars, or would not come back equal, raise TypeError/ValueError."""
    with pytest.raises((TypeError, ValueError)):
        record.encode_key(key)


@pytest.mark.parametrize(
    "value, fragment",
    [
        (float("nan"), "nan"),
        ({"a": [1, float("-inf")]}, "value['a'][1]"),
        ({"a": {1: 2}}, "int key"),
        ([{1, 2}], "value[0] is a set"),
        (2**64, "64-bit"),
        (-(2**63) - 1, "64-bit"),
    ],
)
def test_bad_values_name_the_offending_part(value, fragment):
    """A value that would not round-trip raises an error that names where the problem is."""
    with pytest.raises((TypeError, ValueError)) as info:
        record.encode_value(value)
    assert fragment in str(info.value)


def test_tuples_become_lists():
    """Tuples are stored as JSON arrays (the one documented change)."""
    assert orjson.loads(record.encode_value({"t": (1, (2, 3))})) == {"t": [1, [2, 3]]}
