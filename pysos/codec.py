"""Codecs: how a store's values become the JSON of its records, and come back.

A store has one codec, chosen when it is created (``pysos.Dict(path, codec="tagged")``)
and recorded in its MANIFEST, so every later handle, every reader and the command line
decode its records the same way without being told.

- ``"json"`` (the default): values are JSON documents and are stored as they are (see
  :class:`pysos.Dict`): a value that would not come back equal is refused; tuples come
  back as lists.
- ``"tagged"``: JSON documents, plus ``datetime.datetime``, ``datetime.date``, ``set``,
  ``frozenset``, ``tuple``, ``bytes``, ``uuid.UUID`` and ``decimal.Decimal``, anywhere in
  a value, each written as a *tagged object*: a JSON object with exactly one member,
  whose name starts with ``$``::

      {"$datetime": "2026-11-30T08:00:00+00:00"}   {"$date": "2026-11-30"}
      {"$set": [1, 2]}   {"$frozenset": ["a"]}     {"$tuple": [1, {"$bytes": "AAE="}]}
      {"$uuid": "12345678-1234-5678-1234-567812345678"}   {"$decimal": "0.10"}

  A value's own dict with exactly one member whose name starts with ``$`` is escaped as
  ``{"$dict": {...}}``, so any JSON document, tagged objects included, comes back as it
  was stored. The files stay plain JSON (``jq``, ``grep`` and ``pysos dump`` show the
  tagged objects as they are). FORMAT.md gives the grammar.

A datetime whose ``tzinfo`` is a zone, ``ZoneInfo("Europe/Paris")``, is written with the
offset the zone gives it and the zone's IANA key (RFC 9557's suffix)::

      {"$datetime": "2026-11-01T01:30:00-05:00[America/New_York]"}

Round trips are exact: a datetime keeps its microseconds and its UTC offset (naive stays
naive), a zoned one its wall time, its zone (the very ``ZoneInfo(key)`` object) and its
``fold`` in a repeated or skipped hour (the offset says which); a Decimal keeps its
digits and exponent (``Decimal("1.10")`` stays ``1.10``, NaN included); a set's items
are written in a canonical order (sorted by their JSON text), so equal sets are equal
bytes on disk. What the codec cannot give back as it was is
refused with ``TypeError`` naming the type and where it is, and nothing is written
(the record size limit applies to the tagged JSON: ``bytes`` whose base64 alone is over
it raise ``ValueError`` before the base64 is made):
other types (``bytearray``, ``time``, ``timedelta``, objects), subclasses of the types
above (a subclass of ``str``, ``int``, ``list``, ``dict`` or ``tuple`` is stored as its
base type, as the json codec does; a ``float`` subclass is refused, as there), a set
holding a hashable ``dict`` or ``list`` subclass (read back as a plain dict or list, the
set could not be rebuilt), and a datetime whose ``tzinfo`` is
neither a fixed offset (``datetime.timezone``) nor a zone as ``ZoneInfo(key)`` gives it
(``ZoneInfo.no_cache``, ``ZoneInfo.from_file`` and tzinfo classes of one's own would
come back as another object): convert with ``dt.astimezone(datetime.timezone.utc)``
first. Not kept: a ``fold`` that changes nothing (naive or fixed-offset datetimes, a
zoned one outside a repeated or skipped hour: it comes back 0, equal and with the same
hash), and the name given to a ``timezone`` (``timezone(timedelta(0), "Z")`` comes back
as ``timezone.utc``; the two are equal). A zoned datetime read where the zone's rules
(tzdata) no longer give its stored offset keeps its wall time in the zone, as ``pickle``
does; a zone the reading machine does not know makes the record undecodable.
"""

from __future__ import annotations

import base64
import decimal
import re
import reprlib
import uuid
from datetime import date, datetime, timedelta, timezone
import sys
from types import ModuleType
from typing import Any, Callable, NamedTuple
from zoneinfo import ZoneInfo

import orjson

from .segments import record

__all__ = ["CODECS", "Codec", "encode_item", "encode_value", "from_plain", "get", "holds_tags", "to_plain"]

ESCAPE = "$dict"
_DEPTH = record.MAX_DEPTH


def to_plain(value: Any) -> Any:
    """The plain JSON document the tagged codec stores for ``value`` (tagged objects for
    the types it adds). ``TypeError`` names what it cannot store and where; the JSON rules
    (64-bit ints, finite floats, ``str`` keys) are checked when the record is encoded."""
    try:
        return _plain(value, None, 1)  # no path strings: they cost more than the walk
    except _Refused:
        return _plain(value, "value", 1)  # again, naming where: raises the TypeError (or ValueError)


class _Refused(Exception):
    """A first walk met what it cannot store; the second walk says where."""


def _at(path: str | None, index: Any) -> str | None:
    return None if path is None else f"{path}[{index!r}]"


def _plain(value: Any, path: str | None, depth: int) -> Any:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    if depth > _DEPTH:
        raise ValueError(f"value is nested more than {_DEPTH} containers deep (or contains itself)")
    if kind is dict:
        return _plain_dict(value, path, depth)
    if kind is list:
        return [_plain(item, _at(path, i), depth + 1) for i, item in enumerate(value)]
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value, path, depth)
    if isinstance(value, (str, int, float)):  # IntEnum, str subclasses: as the json codec does
        return value
    if isinstance(value, dict):
        return _plain_dict(value, path, depth)
    if isinstance(value, list):
        return [_plain(item, _at(path, i), depth + 1) for i, item in enumerate(value)]
    if isinstance(value, tuple):  # a namedtuple comes back as a plain (equal) tuple
        return _tuple(value, path, depth)
    if path is None:
        raise _Refused
    raise TypeError(
        f"{path} is a {kind.__module__}.{kind.__qualname__}, which the tagged codec cannot store "
        f"(it stores JSON values and {', '.join(_NAMES)})"
    )


def _plain_dict(value: dict, path: str | None, depth: int) -> dict:
    if path is None:
        out = {k: _plain(item, None, depth + 1) for k, item in value.items()}
    else:
        out = {k: _plain(item, _at(path, k), depth + 1) for k, item in value.items()}
    if len(out) == 1:
        (name,) = out
        if isinstance(name, str) and name[:1] == "$":  # would read as a tag: escape it
            return {ESCAPE: out}
    return out


def _items(value: Any, path: str | None, depth: int) -> list:
    return [_plain(item, _at(path, i), depth + 2) for i, item in enumerate(value)]


def _tuple(value: tuple, path: str | None, depth: int) -> dict:
    return {"$tuple": _items(value, path, depth)}


def _canonical(item: Any) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)


def _set(value: set | frozenset, path: str | None, depth: int) -> dict:
    for item in value:
        if _unhashable_when_read(item):
            if path is None:
                raise _Refused
            kind = type(item)
            raise TypeError(f"{path} item {reprlib.repr(item)} is a {kind.__module__}.{kind.__qualname__} that "
                            "comes back as (or holding) a plain dict or list, which a set cannot hold")
    items = _items(value, None if path is None else f"{path} item", depth)
    try:
        items.sort(key=_canonical)
    except TypeError:  # an item JSON cannot hold: encoding the record names it
        pass
    return {"$set" if type(value) is set else "$frozenset": items}


def _unhashable_when_read(item: Any) -> bool:
    """Whether a set's ``item`` (hashable now) would come back unhashable: a ``dict`` or
    ``list`` subclass with a ``__hash__`` is stored, and read, as a plain dict or list, in
    a tuple too (a frozenset's own items are checked when it is encoded)."""
    kind = type(item)
    if kind is str or kind is int or kind is float or item is None:
        return False
    if isinstance(item, (dict, list)):
        return True
    return isinstance(item, tuple) and any(map(_unhashable_when_read, item))


def _datetime(value: datetime, path: str | None, depth: int) -> dict:
    tz = value.tzinfo
    if tz is None or type(tz) is timezone:
        return {"$datetime": value.isoformat()}
    key = getattr(tz, "key", None) if type(tz) is ZoneInfo else None
    if key is not None and ZoneInfo(key) is tz:  # the shared instance: ZoneInfo(key) gives it back
        # the offset the zone gives (it tells a repeated or skipped hour's fold), then the zone
        return {"$datetime": f"{value.isoformat()}[{key}]"}
    if path is None:
        raise _Refused
    raise TypeError(
        f"{path} is a datetime with tzinfo {tz!r}: the tagged codec stores naive datetimes, "
        "fixed UTC offsets (datetime.timezone) and zones as ZoneInfo(key) gives them "
        "(not ZoneInfo.no_cache or from_file), which come back as they were; convert it first, "
        "e.g. dt.astimezone(datetime.timezone.utc)"
    )


def _bytes(value: bytes, path: str | None, depth: int) -> dict:
    size = (len(value) + 2) // 3 * 4  # its base64: measured before it is made (see record)
    if size > record.MAX_RECORD_BYTES:
        if path is None:
            raise _Refused
        raise ValueError(
            f"{path} is bytes of {len(value):,} bytes ({size:,} as base64), over pysos's record "
            f"size limit of {record.MAX_RECORD_BYTES:,} bytes"
        )
    return {"$bytes": base64.b64encode(value).decode("ascii")}


_ENCODERS: dict[type, Callable[[Any, str | None, int], Any]] = {
    tuple: _tuple,
    set: _set,
    frozenset: _set,
    datetime: _datetime,
    date: lambda value, path, depth: {"$date": value.isoformat()},
    bytes: _bytes,
    uuid.UUID: lambda value, path, depth: {"$uuid": str(value)},
    decimal.Decimal: lambda value, path, depth: {"$decimal": str(value)},
}
_NAMES = ("datetime", "date", "set", "frozenset", "tuple", "bytes", "UUID", "Decimal")


# --- decoding -------------------------------------------------------------------------


class TagError(ValueError):
    """A tagged object that is not one this codec writes (unknown tag, bad payload)."""


def from_plain(plain: Any) -> Any:
    """The value of a plain JSON document the tagged codec stored (the inverse of
    :func:`to_plain`). :class:`TagError` for an object that looks like a tag (one member,
    named ``$...``) but is not a well-formed one of this codec."""
    kind = type(plain)
    if kind is list:
        return [from_plain(item) for item in plain]
    if kind is not dict:
        return plain
    if len(plain) == 1:
        for name, payload in plain.items():
            if name[:1] == "$":
                decoder = _DECODERS.get(name)
                if decoder is None:
                    raise TagError(f"unknown tag {name!r}")
                try:
                    return decoder(payload)
                except TagError:
                    raise
                except (TypeError, ValueError, ArithmeticError) as exc:
                    raise TagError(f"bad {name} payload {payload!r:.80}: {exc}") from None
    return {name: from_plain(item) for name, item in plain.items()}


def _text(payload: Any) -> str:
    if type(payload) is not str:
        raise TypeError(f"a str, not {type(payload).__name__}")
    return payload


def _array(payload: Any) -> list:
    if type(payload) is not list:
        raise TypeError(f"an array, not {type(payload).__name__}")
    return [from_plain(item) for item in payload]


def _object(payload: Any) -> dict:
    if type(payload) is not dict:
        raise TypeError(f"an object, not {type(payload).__name__}")
    return {name: from_plain(item) for name, item in payload.items()}


_SUBSECOND_OFFSET = re.compile(r"(.*)([+-])(\d\d):(\d\d):(\d\d)\.(\d{6})")


def _parse_datetime(text: str) -> datetime:
    """``datetime.fromisoformat``, except for an offset with microseconds: CPython 3.11
    reads ``+00:00:00.000001`` as UTC (it drops a sub-second offset whose whole seconds
    are zero), so such an offset is read here and the rest by fromisoformat."""
    parts = _SUBSECOND_OFFSET.fullmatch(text)
    if parts is None:
        return datetime.fromisoformat(text)
    base, sign, hours, minutes, seconds, micros = parts.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes), seconds=int(seconds), microseconds=int(micros))
    return datetime.fromisoformat(base).replace(tzinfo=timezone(-offset if sign == "-" else offset))


def _parse_zoned(text: str) -> datetime:
    """A ``$datetime`` payload, ``[ZONE]`` (an IANA key) after its offset or not: the wall
    time in that zone, with the fold whose offset is the stored one (the same wall time,
    fold 0, if the zone's rules no longer give that offset: a later tzdata)."""
    if text[-1:] != "]":
        return _parse_datetime(text)
    base, _, key = text[:-1].partition("[")
    stamp = _parse_datetime(base)
    try:
        zone = ZoneInfo(key)
    except KeyError:  # ZoneInfoNotFoundError
        raise TagError(f"time zone {key!r} is not known here (no tzdata for it?)") from None
    except ValueError as exc:
        raise TagError(f"time zone {key!r}: {exc}") from None
    value = stamp.replace(tzinfo=zone)
    if stamp.tzinfo is not None and value.utcoffset() != stamp.utcoffset():
        other = value.replace(fold=1)
        if other.utcoffset() == stamp.utcoffset():
            return other
    return value


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "$datetime": lambda payload: _parse_zoned(_text(payload)),
    "$date": lambda payload: date.fromisoformat(_text(payload)),
    "$set": lambda payload: set(_array(payload)),
    "$frozenset": lambda payload: frozenset(_array(payload)),
    "$tuple": lambda payload: tuple(_array(payload)),
    "$bytes": lambda payload: base64.b64decode(_text(payload), validate=True),
    "$uuid": lambda payload: uuid.UUID(_text(payload)),
    "$decimal": lambda payload: decimal.Decimal(_text(payload)),
    ESCAPE: _object,
}


def holds_tags(plain: Any) -> bool:
    """Whether the plain JSON document ``plain`` holds an object the tagged codec reads as
    a tagged object (exactly one member, whose name starts with ``$``): a record that only
    means the same under both codecs does not (see ``pysos.repair``)."""
    stack = [plain]
    while stack:
        item = stack.pop()
        if type(item) is list:
            stack.extend(item)
        elif type(item) is dict:
            if len(item) == 1 and next(iter(item))[:1] == "$":
                return True
            stack.extend(item.values())
    return False


# --- the codecs ------------------------------------------------------------------------


def encode_item(key: Any, value: Any, deadline: float | None = None) -> bytes:
    """The tagged codec's set record of ``key -> value`` (see :func:`record.encode_item`)."""
    return record.encode_item(key, to_plain(value), deadline)


def encode_value(value: Any) -> bytes:
    """The tagged codec's JSON bytes of ``value`` (see :func:`record.encode_value`)."""
    return record.encode_value(to_plain(value))


class Codec(NamedTuple):
    """What a handle calls to turn values into record bytes and plain JSON into values."""

    name: str
    #: a module with the codec's ``encode_item(key, value)`` (a Dict's set record line)
    #: and ``encode_value(value)`` (checked JSON bytes): a module, because the write paths'
    #: ``handle._encoders.encode_item(...)`` is then a specialized method lookup
    #: (LOAD_METHOD_MODULE, as ``record.encode_item(...)`` was), which a function kept in
    #: an instance attribute never gets (CPython 3.11 leaves that lookup generic)
    encoders: ModuleType
    #: the plain JSON document stored for a value (what ``pysos dump`` shows)
    to_plain: Callable[[Any], Any]
    #: the value of a stored plain JSON document
    from_plain: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


JSON = Codec("json", record, _same, _same)
TAGGED = Codec("tagged", sys.modules[__name__], to_plain, from_plain)
CODECS = {codec.name: codec for codec in (JSON, TAGGED)}


def get(name: str) -> Codec:
    """The codec called ``name`` (``"json"`` or ``"tagged"``); ``ValueError`` otherwise."""
    try:
        return CODECS[name]
    except (KeyError, TypeError):
        raise ValueError(f"codec must be one of {', '.join(map(repr, CODECS))} or None, not {name!r}") from None
