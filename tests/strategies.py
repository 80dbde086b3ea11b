"""Shared hypothesis strategies (and one comparison helper) for the pysos test suite.

Values are what DESIGN.md promises to round-trip unchanged: JSON documents made of ``None``,
``bool``, 64-bit ``int``, finite ``float``, ``str``, ``list`` and ``dict`` with ``str`` keys.
Keys are the JSON scalars a ``Dict`` accepts.
"""

from hypothesis import strategies as st

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

# Characters that tend to break line-based or JSON-based formats.
AWKWARD_CHARS = ["\n", "\r", "\t", "\u2028", "\u2029", "\x00", "\x1f", '"', "\\", "{", "}",
                 "\U0001f600", "\u00e9", "\ufeff", " "]

awkward_text = st.text(alphabet=st.sampled_from(AWKWARD_CHARS + ["a", "b", "1"]), max_size=8)

text = st.one_of(st.text(max_size=8), awkward_text)

ints = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=INT64_MIN, max_value=UINT64_MAX),
    st.sampled_from([INT64_MIN, 2**63 - 1, 2**63, UINT64_MAX, 0, -1]),
)

floats = st.floats(allow_nan=False, allow_infinity=False)

scalars = st.one_of(st.none(), st.booleans(), ints, floats, text)

json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(text, children, max_size=4),
    ),
    max_leaves=8,
)

# A small pool so that keys collide often (set over an existing key, delete an existing key),
# including the 1 == 1.0 == True and 0 == 0.0 == -0.0 == False families and awkward strings.
KEY_POOL = ["a", "b", "", "\n", "\t", "\u2028", "\x00", "\U0001f600", "k\nv", "a\"b", "0", "1", "null", "true", "1.0",
            0, 1, 2, -1, 1.0, 0.0, -0.0, 0.5, 2.0**62, True, False, None, INT64_MIN, UINT64_MAX]

dict_keys = st.one_of(
    st.sampled_from(KEY_POOL),
    text,
    ints,
    floats,
    st.booleans(),
    st.none(),
)


def same_json(a, b):
    """True when ``a`` and ``b`` are equal JSON documents *with the same types*.

    ``==`` alone would accept ``True`` for ``1`` or ``1.0`` for ``1``; a store must give back
    exactly what was put in (tuples excepted, which come back as lists).
    """
    if isinstance(a, tuple):
        a = list(a)
    if isinstance(b, tuple):
        b = list(b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return a == b


def apply_batch(store, model: dict, ops) -> dict:
    """Apply ``(is_set, key, value)`` ops to a Dict in one ``batch()`` (a delete of a key
    that is absent by then becomes a set); return the model after them."""
    pending = dict(model)
    with store.batch():
        for is_set, key, value in ops:
            if is_set or key not in pending:
                store[key] = value
                pending[key] = value
            else:
                del store[key]
                del pending[key]
    return pending


# --- the tagged codec (pysos.codec): JSON plus datetime, date, set, frozenset, tuple, bytes,
# UUID, Decimal, nested; dict keys that look like tags, so the escape is exercised.

from datetime import timedelta as _timedelta, timezone as _timezone  # noqa: E402
import uuid as _uuid  # noqa: E402

fixed_offsets = st.one_of(
    st.just(_timezone.utc),
    st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: _timezone(_timedelta(minutes=m))),
    st.tuples(st.integers(-86399, 86399), st.integers(0, 999_999)).map(
        lambda t: _timezone(_timedelta(seconds=t[0], microseconds=t[1]))),
)
# st.timezones(): ZoneInfo(key) zones (repeated and skipped hours, fold=1 included)
tagged_datetimes = st.datetimes(timezones=st.one_of(st.none(), fixed_offsets, st.timezones()))
uuids = st.uuids().map(lambda u: _uuid.UUID(int=u.int))  # hypothesis gives version 4; any int will do
finite_decimals = st.decimals(allow_nan=False, allow_infinity=False)
all_decimals = st.one_of(finite_decimals, st.decimals(allow_nan=True, allow_infinity=True))
DOLLAR_KEYS = ["$", "$$", "$set", "$dict", "$tuple", "$datetime", "$x", "$$dict", "a$"]
tagged_dict_keys = st.one_of(text, st.sampled_from(DOLLAR_KEYS))

hashable_scalars = st.one_of(st.none(), st.booleans(), ints, floats, text, st.dates(), tagged_datetimes, uuids,
                             st.binary(max_size=12), finite_decimals)
hashables = st.recursive(
    hashable_scalars,
    lambda children: st.one_of(st.lists(children, max_size=3).map(tuple), st.frozensets(children, max_size=3)),
    max_leaves=6,
)
tagged_scalars = st.one_of(scalars, st.dates(), tagged_datetimes, uuids, st.binary(max_size=16), all_decimals)


def _tagged_containers(children):
    """What the tagged codec stores around values: lists, tuples, dicts, sets, frozensets."""
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(tagged_dict_keys, children, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=3),
    )


tagged_values = st.recursive(tagged_scalars, _tagged_containers, max_leaves=10)
# For models compared with == (a NaN Decimal is unequal to itself, and a signaling NaN raises
# on comparison): the same values without NaNs; exact round trips of NaNs are tested apart.
comparable_tagged_values = st.recursive(
    st.one_of(scalars, st.dates(), tagged_datetimes, uuids, st.binary(max_size=16), finite_decimals,
              st.decimals(allow_nan=False, allow_infinity=True)),
    _tagged_containers,
    max_leaves=10,
)
# Plain JSON whose dicts often have one key starting with "$": must come back unchanged.
json_with_tag_lookalikes = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(tagged_dict_keys, children, max_size=3),
        st.tuples(st.sampled_from(DOLLAR_KEYS), children).map(lambda kv: {kv[0]: kv[1]}),
    ),
    max_leaves=8,
)


def exact(value):
    """A text that two values share only if they are the same value of the same types all
    the way down (``==`` would take ``1`` for ``True``, a list for a tuple, ``1.0`` for
    ``Decimal("1.00")``, 08:00+00:00 for 09:00+01:00, and NaN != NaN)."""
    kind = type(value)
    if kind in (list, tuple):
        return f"{kind.__name__}[{','.join(exact(item) for item in value)}]"
    if kind is dict:  # in order: a store keeps a dict's key order
        return "dict{" + ",".join(f"{k!r}:{exact(v)}" for k, v in value.items()) + "}"
    if kind in (set, frozenset):
        return f"{kind.__name__}{{{','.join(sorted(exact(item) for item in value))}}}"
    if hasattr(value, "isoformat"):  # date, datetime: offset included, and a ZoneInfo's key
        zone = getattr(getattr(value, "tzinfo", None), "key", None)
        return f"{kind.__name__}({value.isoformat()}{'' if zone is None else f'[{zone}]'})"
    return f"{kind.__name__}({value!r})"  # repr keeps -0.0, Decimal digits and NaN kinds
