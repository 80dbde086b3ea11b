"""JSON helpers shared by the commands: strict parsing, compact output, key parsing."""

import json
import math

import orjson

from .errors import EXIT_USAGE, CliError


def _reject_constant(name):
    raise ValueError(f"{name} is not JSON")


def loads(text):
    """Parse strict JSON (no NaN/Infinity); raise ValueError with a short reason."""
    value = json.loads(text, parse_constant=_reject_constant)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def dumps(value, *, indent=False):
    """Compact JSON text for ``value`` (UTF-8 as-is, not \\u-escaped)."""
    try:
        option = orjson.OPT_INDENT_2 if indent else 0
        return orjson.dumps(value, option=option).decode()
    except TypeError:  # e.g. an int wider than 64 bits: the stdlib handles it
        if indent:
            return json.dumps(value, ensure_ascii=False, indent=2)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def is_scalar(value):
    """True for the JSON scalars a Dict accepts as keys."""
    return value is None or isinstance(value, (str, int, float, bool))


def parse_key(text, *, force_str=False):
    """A Dict key from the command line: JSON if ``text`` is a JSON scalar, else ``text``.

    ``1`` is the int 1, ``true`` is True, ``null`` is None, ``"1"`` (with the quotes) is
    the string "1", and anything that is not a JSON scalar (``name``, ``01``, ``[1]``) is
    taken as it is, as a string. ``force_str`` (``--str-key``) always takes the text.
    """
    if force_str:
        return text
    try:
        value = loads(text)
    except ValueError:
        return text
    return value if is_scalar(value) else text


def parse_index(text):
    """A List index from the command line (negative counts from the end)."""
    try:
        return int(text, 10)
    except ValueError:
        raise CliError(f"a List is indexed by an integer, not {text!r}", EXIT_USAGE) from None


def parse_value(text):
    """A JSON value given on the command line, or a usage error naming the problem."""
    try:
        return loads(text)
    except ValueError as exc:
        raise CliError(
            f"invalid JSON value {text!r} ({exc}); quote strings as JSON, "
            f"e.g. '\"{text}\"', or use --raw",
            EXIT_USAGE,
        ) from None


def show_key(key):
    """How a key appears in messages: its JSON form ("name", 1, null)."""
    return dumps(key)
