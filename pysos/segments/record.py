"""Records: one change = one checksummed JSON line.

Every line of a segment is one JSON object whose first member is its checksum::

    {"c":"1a2b3c4d","k":"apple","v":{"color":"red"}}     set key -> value
    {"c":"5e6f7a8b","k":"apple","d":1}                   delete key (a tombstone)
    {"c":"9c0d1e2f","batch":"begin"}                     the lines up to the matching end are one unit
    {"c":"3a4b5c6d","batch":"end","n":2}                 ... of n records: all of them count, or none
    {"c":"0f1e2d3c","x":1767225600.5,"k":"tok","v":1}    set key -> value until a wall-clock time

``x`` (first member after ``c``, so a scan spots it at a fixed place: :func:`expiry_of`)
is the Unix time in seconds at which the record stops counting: from then on it is
garbage and the key is absent, as if deleted (see :mod:`pysos.segments.clock`).

``c`` is the CRC-32 (zlib/PNG polynomial) of the bytes after the 16-byte prefix
``{"c":"xxxxxxxx",`` up to, not including, the line feed, written as 8 lowercase hex digits.
A fixed prefix means a reader checks a line without re-encoding any JSON.

Limits, checked before anything is written: a record is at most :data:`MAX_RECORD_BYTES`
(``ValueError`` naming the limit); a value nests at most :data:`MAX_DEPTH` containers and
never contains itself (``ValueError``). Strings are measured *before* orjson sees them,
because orjson reserves about ten times a string's length while encoding it: a string of
gigabytes would make the process run out of address space and crash.
"""

from __future__ import annotations

import math
import zlib
from typing import Any, NamedTuple

import orjson

PREFIX_LEN = 16  # len(b'{"c":"xxxxxxxx",')
SET, DELETE, BATCH_BEGIN, BATCH_END = "set", "delete", "begin", "end"

_KEY_TYPES = (str, int, float, bool, type(None))

# The biggest record (line feed included) pysos writes: 256 MiB. The location layout
# (segments/index.py) holds lengths up to 4 GiB - 1, but reading a record holds it whole
# in memory, and encoding a string makes orjson reserve ~10x its length (a 2 GiB str
# crashed the process), so the limit keeps every step within a few GiB. Tests lower it.
MAX_RECORD_BYTES = 256 * 2**20
# Derived from it for the write path (a test that lowers the limit sets them too): a str
# of at most _LONG_STR characters is at most 4 x as many bytes of UTF-8 and safe to give
# orjson; _MAX_DATA is the most orjson's {"k":..,"v":..} may be, the prefix added.
_LONG_STR = MAX_RECORD_BYTES >> 2
_MAX_DATA = MAX_RECORD_BYTES - PREFIX_LEN
MAX_DEPTH = 254  # containers nested in a value, itself included: orjson refuses deeper ones


class BadRecord(ValueError):
    """A line that is not a well-formed record with a matching checksum."""


class Record(NamedTuple):
    kind: str        # SET, DELETE, BATCH_BEGIN or BATCH_END
    key: Any         # the decoded key (None for batch markers)
    count: int       # BATCH_END: records in the batch; else 0


def frame(body: bytes) -> bytes:
    """The record line of a JSON object's members ``body`` (its bytes after the ``{``):
    the checksum prefix, the body, the line feed. Every record is written by this."""
    return b'{"c":"%08x",%b\n' % (_crc32(body), body)


_crc32 = zlib.crc32


def encode_set(key_json: bytes, value_json: bytes) -> bytes:
    """The set record of encoded JSON; ``ValueError`` if it is over :data:`MAX_RECORD_BYTES`."""
    size = len(key_json) + len(value_json) + 27  # the prefix, "k":, ,"v":, } and the line feed
    if size > MAX_RECORD_BYTES:
        raise _too_big(size)
    return frame(b'"k":%b,"v":%b}' % (key_json, value_json))


def encode_movable(key_json: bytes, value_json: bytes, key_room: int) -> bytes:
    """:func:`encode_set` for a value that may later be written under another key of up
    to ``key_room`` bytes of JSON (a List item: its position key changes when inserts
    renumber it, or a sort moves it): the limit is checked as if the key took
    ``key_room`` bytes, so a value stored once fits under any key it moves to."""
    size = key_room + len(value_json) + 27
    if size > MAX_RECORD_BYTES:
        raise _too_big(size)
    return frame(b'"k":%b,"v":%b}' % (key_json, value_json))


def encode_item(key: Any, value: Any, deadline: float | None = None) -> bytes:
    """The record line of ``key -> value`` for a Dict: :func:`encode_set` of :func:`encode_key`
    and :func:`encode_value`, with the same checks and errors, in one ``orjson`` call; with a
    ``deadline``, :func:`encode_expiring` of that, still in one call (``"x"`` comes first).

    The write path's encoder: ``{"k":key,"v":value}`` comes out of orjson as the very body
    the checksum covers (after its ``{``), so the common case is one dumps, one CRC and one
    format, plus the round-trip check for containers (see :func:`encode_value`). Sizes are
    checked first (see the module docstring): a ``len`` of a str key or value, the item
    loop of a flat container, a walk of a nested one.
    """
    kind = type(value)
    item = {"k": key, "v": value} if deadline is None else {"x": deadline, "k": key, "v": value}
    try:
        if type(key) is not str:
            encode_key(key)  # the key rules (types, NaN) beyond what orjson checks
        elif len(key) > _LONG_STR:
            _check_str(key, "key")
        if kind is str:
            if len(value) > _LONG_STR:
                _check_str(value, "value")
            data = orjson.dumps(item)
        elif kind is dict:  # the usual value: flat ones need no round trip
            if _flat_dict(value):
                data = orjson.dumps(item)
            else:
                data = _nested_item(item, value, kind)
        elif kind is int or kind is bool or value is None or (kind is list and _flat(value, kind)):
            data = orjson.dumps(item)
        else:
            data = _nested_item(item, value, kind)
    except (TypeError, _Unstorable):
        # Let the one-part encoders name what is wrong, in the words they always use.
        line = encode_set(encode_key(key), encode_value(value))
        return line if deadline is None else encode_expiring(line, deadline)
    if len(data) > _MAX_DATA:
        raise _too_big(len(data) + PREFIX_LEN)
    return frame(data[1:])


def _nested_item(item: dict, value: Any, kind: type) -> bytes:
    """encode_item's orjson call of ``item`` for a ``value`` that is not a flat container or a plain scalar."""
    exact = _exact_nested(value, kind)
    data = orjson.dumps(item)
    if exact:
        pass
    elif kind is float:
        if not math.isfinite(value):
            raise _Unstorable
    elif orjson.loads(data)["v"] != value:
        raise _Unstorable
    return data


# Scalars that orjson writes exactly or refuses (ints outside 64 bits, lone surrogates):
# a dict or list holding only these needs no round trip to prove it reads back equal.
_EXACT_SCALARS = frozenset((str, int, bool, type(None)))


def _flat_dict(value: dict) -> bool:
    """:func:`_flat` of a dict."""
    try:
        for k, item in value.items():
            if len(k) > _LONG_STR:
                return False
            if type(item) is str:
                if len(item) > _LONG_STR:
                    return False
            elif type(item) not in _EXACT_SCALARS:
                return False
    except TypeError:  # a key without len(): not a str, which orjson refuses anyway
        return False
    return True


def _flat(value: Any, kind: type) -> bool:
    """A dict or list of :data:`_EXACT_SCALARS` only, no str (or key) longer than
    :data:`_LONG_STR` characters.

    The round trip of :func:`encode_value` costs about as much as the encoding; flat
    containers of exact scalars, the most common values, are proved safe by their types.
    """
    if kind is dict:
        return _flat_dict(value)
    if kind is not list:
        return False
    for item in value:  # a plain loop: cheaper than all()/map() for the usual few items
        if type(item) is str:
            if len(item) > _LONG_STR:
                return False
        elif type(item) not in _EXACT_SCALARS:
            return False
    return True


def _exact_nested(value: Any, kind: type) -> bool:
    """Refuse (``ValueError``) a value that is too deep, contains itself, or holds a string
    too long to encode safely; else True if orjson writes it exactly (no round trip needed)."""
    if kind is dict or kind is list or kind is tuple:
        return _walk(value, kind, 1, set(), _LONG_STR)
    _walk_other(value, 1, set(), _LONG_STR)
    return False  # a float, a subclass, an unknown type: the round trip or the encoder decides


def _walk_other(item: Any, depth: int, within: set, big: int) -> None:
    """Subclasses of str, dict and list, which orjson encodes too, are measured all the same."""
    if isinstance(item, str):
        if len(item) > big:
            _check_str(item, "a str in value")
    elif isinstance(item, dict):
        _walk(item, dict, depth, within, big)
    elif isinstance(item, (list, tuple)):
        _walk(item, list, depth, within, big)


def _walk(value: Any, kind: type, depth: int, within: set, big: int) -> bool:
    if depth > MAX_DEPTH:
        raise ValueError(f"value is nested more than {MAX_DEPTH} containers deep")
    if id(value) in within:
        raise ValueError("value contains itself (a cycle): JSON cannot hold it")
    within.add(id(value))
    exact = True
    if kind is dict:
        for k in value:
            if type(k) is not str:
                exact = False  # orjson refuses it; encode_value names it
            elif len(k) > big:
                _check_str(k, "a dict key in value")
        items = value.values()
    else:
        items = value
    for item in items:
        t = type(item)
        if t is str:
            if len(item) > big:
                _check_str(item, "a str in value")
        elif t is dict or t is list or t is tuple:
            if not _walk(item, t, depth + 1, within, big):
                exact = False
        elif t is float:
            if not math.isfinite(item):
                exact = False
        elif t is not int and t is not bool and item is not None:
            exact = False
            _walk_other(item, depth + 1, within, big)
    within.discard(id(value))
    return exact


def _check_str(text: str, what: str) -> None:
    """Refuse a str whose UTF-8 alone is over :data:`MAX_RECORD_BYTES` (called for long ones)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RECORD_BYTES:
        raise ValueError(
            f"{what} is a str of {size:,} bytes of UTF-8, over pysos's record size limit "
            f"of {MAX_RECORD_BYTES:,} bytes"
        )


def _too_big(size: int) -> ValueError:
    return ValueError(
        f"the record would be {size:,} bytes, over pysos's record size limit of "
        f"{MAX_RECORD_BYTES:,} bytes"
    )


class _Unstorable(Exception):
    """The value would not read back equal: encode_value says why (or accepts a tuple)."""


# How every tombstone line ends (its body is ``"k":KEY,"d":1}``), and no set record's line
# can: a set line ends with its value and ``}``, and no JSON value ends with ``,"d":1``
# without a ``}`` after it. Lets a hint builder find a segment's tombstones by byte search.
TOMBSTONE_END = b',"d":1}\n'


EXPIRES_MARK = b'"x":'  # what bytes 16-19 of an expiring set record are
_MARK_END = PREFIX_LEN + len(EXPIRES_MARK)


def encode_expiring(line: bytes, deadline: float) -> bytes:
    """The set record ``line`` (from :func:`encode_item` or :func:`encode_set`: already
    checked) with an expiry ``deadline`` (Unix time, seconds) as its first member; the
    :data:`MAX_RECORD_BYTES` limit applies to the result (``ValueError``)."""
    line = frame(b'"x":%b,%b' % (orjson.dumps(deadline), line[PREFIX_LEN:-1]))
    if len(line) > MAX_RECORD_BYTES:
        raise _too_big(len(line))
    return line


def expiry_of(line: bytes) -> float | None:
    """The deadline of a checked set record line (valid JSON: its checksum and parse were
    checked), ``None`` if it never expires.

    Only the number is parsed, from right after the mark up to the next ``,`` (a JSON
    number holds none): every scan (open, the compactor's merges and estimates, check)
    calls this once per expiring record, and a second ``orjson.loads`` of the whole line
    was most of what expiry added to a merge. A JSON number is a valid ``float()``
    literal; what is not a number (a string, ``true``, an array) is not one."""
    if line[PREFIX_LEN:_MARK_END] != EXPIRES_MARK:
        return None
    try:
        deadline = float(line[_MARK_END : line.find(b",", _MARK_END)])
    except ValueError:
        raise BadRecord("expiry is not a number") from None
    if not _isfinite(deadline):  # (JSON has no infinity; a number too big for a float)
        raise BadRecord("expiry is not a finite number")
    return deadline


_isfinite = math.isfinite


def encode_delete(key_json: bytes) -> bytes:
    return frame(b'"k":%b,"d":1}' % key_json)


def encode_tombstone(key: Any) -> bytes:
    """:func:`encode_delete` of a key already in the index (so already a valid key)."""
    return frame(b'"k":%b,"d":1}' % orjson.dumps(key))


BATCH_BEGIN_LINE = frame(b'"batch":"begin"}')


def encode_batch_end(count: int) -> bytes:
    return frame(b'"batch":"end","n":%d}' % count)


def load(line: bytes) -> Any:
    """The record check: the JSON of a record line (ending in ``\\n``) whose checksum
    matches, else ``None``. Every reader of records uses it: reads, scans (open, follow,
    check, repair, the compactor) and :func:`verify`. A record is a JSON object: callers
    that go on to use one check its type (a read looks up its key, a scan its kind).

    ``int()`` of the 8 hex digits is cheaper than formatting the CRC; a garbled prefix that
    still parses to the same number leaves the checked bytes (the record) intact, and
    bytes that are not ``{"c":"`` there make the line fail to parse.
    """
    try:
        if int(line[6:14], 16) == _crc32(line[16:-1]):  # 16: PREFIX_LEN
            return _loads(line)
    except ValueError:  # digits or JSON that do not parse
        pass
    return None


_loads = orjson.loads


def verify(line: bytes) -> bool:
    """True if ``line`` (a whole line, with its ``\\n``) passes :func:`load` as a JSON object."""
    return type(load(line)) is dict and line[-1:] == b"\n"


def parse(line: bytes) -> dict:
    """Check and decode a record line into its JSON object; raise :class:`BadRecord`."""
    obj = load(line)
    if type(obj) is not dict or line[-1:] != b"\n":
        raise BadRecord("checksum mismatch or malformed record")
    return obj


def classify(obj: dict) -> Record:
    if "k" in obj:
        if "v" in obj:
            return Record(SET, obj["k"], 0)
        if obj.get("d") == 1:
            return Record(DELETE, obj["k"], 0)
    batch = obj.get("batch")
    if batch == "begin":
        return Record(BATCH_BEGIN, None, 0)
    if batch == "end" and type(obj.get("n")) is int:
        return Record(BATCH_END, None, obj["n"])
    raise BadRecord("unknown record type")


def decode(line: bytes) -> Record:
    return classify(parse(line))


# --- keys as the index holds them ---------------------------------------------------------


def same_key(key: Any) -> Any:
    """A Dict's keys: JSON scalars are their own index keys."""
    return key


def decode_position(key: Any) -> Any:
    """A List's position keys: an int, or a JSON array of ints that the index holds as a tuple."""
    return tuple(key) if type(key) is list else key


def key_decoder(kind: str | None):
    """The function from a record's JSON key to the index key, for a store of ``kind``."""
    return decode_position if kind == "list" else same_key


# --- keys and values -------------------------------------------------------------------


def encode_key(key: Any) -> bytes:
    """JSON for a Dict key: a JSON scalar that comes back equal (``TypeError``/``ValueError``)."""
    if type(key) is str:
        if len(key) > _LONG_STR:
            _check_str(key, "key")
        try:
            return orjson.dumps(key)
        except TypeError as exc:  # lone surrogates: not valid UTF-8
            raise TypeError(f"key cannot be stored as JSON: {exc}") from None
    if type(key) not in _KEY_TYPES:
        raise TypeError(
            f"pysos keys must be str, int, float, bool or None, not {type(key).__name__}"
        )
    if type(key) is float and not math.isfinite(key):
        raise ValueError(f"pysos keys cannot be {key!r}: JSON has no such number")
    try:
        return orjson.dumps(key)
    except TypeError as exc:
        raise _explain(key, exc, "key") from None


def encode_value(value: Any) -> bytes:
    """JSON for a value, refusing anything that would not come back equal.

    ``orjson`` writes NaN as ``null`` and encodes UUIDs, enums and the like as plain
    strings or numbers: a value that reads back different is refused, never stored.
    Tuples are the one accepted change (JSON arrays come back as lists).
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:  # nothing to lose in JSON
        if kind is str and len(value) > _LONG_STR:
            _check_str(value, "value")
        try:
            return orjson.dumps(value)
        except TypeError as exc:  # lone surrogates
            raise _explain(value, exc, "value") from None
    exact = kind is int or _flat(value, kind) or _exact_nested(value, kind)
    try:
        data = orjson.dumps(value)
    except TypeError as exc:
        raise _explain(value, exc, "value") from None
    if not exact and orjson.loads(data) != value:
        problem = find_unstorable(value)
        if problem is not None:
            raise problem
    return data


def find_unstorable(value: Any, path: str = "value") -> Exception | None:
    """The error for the first part of ``value`` that JSON would not give back equal."""
    kind = type(value)
    if value is None or kind is bool or kind is str:
        return None
    if kind is int:
        if -(2**63) <= value < 2**64:
            return None
        return ValueError(f"{path} is an int outside the 64-bit range JSON readers hold exactly")
    if kind is float:
        if math.isfinite(value):
            return None
        return ValueError(f"{path} is {value!r}, which JSON cannot represent")
    if kind is list or kind is tuple:
        for i, item in enumerate(value):
            problem = find_unstorable(item, f"{path}[{i}]")
            if problem is not None:
                return problem
        return None
    if kind is dict:
        for k, item in value.items():
            if type(k) is not str:
                return TypeError(f"{path} has a {type(k).__name__} key {k!r}; JSON objects have str keys")
            problem = find_unstorable(item, f"{path}[{k!r}]")
            if problem is not None:
                return problem
        return None
    return TypeError(f"{path} is a {kind.__name__}, which does not round-trip through JSON")


def _explain(value: Any, exc: Exception, what: str) -> Exception:
    problem = find_unstorable(value, what)
    if problem is None:
        return TypeError(f"{what} cannot be stored as JSON: {exc}")
    return problem
