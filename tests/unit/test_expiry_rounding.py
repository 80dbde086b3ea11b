"""How pysos writes a deadline: ``now + expire`` rounded up to a power of ten of seconds no
larger than ``expire / 1000`` nor than one second (pysos.segments.clock.rounder), the same
number in the record, the writer's memory, a reader's and a reopened store's."""

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import pysos
from pysos.segments import clock
from store_files import records

NOW = st.floats(1e9, 4e9)  # 2001 to 2096
EXPIRE = st.floats(1e-9, 1e15) | st.sampled_from([0.01, 0.1, 0.2, 1, 5, 100, 999.9999, 1000, 3600, 86400])


@settings(max_examples=1000, deadline=None)
@given(now=NOW, expire=EXPIRE)
def test_a_deadline_is_never_early_and_late_by_at_most_a_thousandth_of_expire_or_a_second(now, expire):
    exact = now + expire
    written = clock.rounder(expire)(exact)
    assert written >= exact
    # (beyond 2**43 s a double's own step is 1/1024 s: rounding then adds nothing)
    assert written - exact <= max(min(expire / 1000, 1.0), math.ulp(exact))
    text = orjson.dumps(written)
    assert orjson.loads(text) == written  # the text says exactly what the writer keeps
    if 0.01 <= expire < 1e12:
        assert len(text) <= 16  # 10 digits of seconds, a point, at most 5 decimals
    if 1000 <= expire < 1e12:
        assert type(written) is int  # whole seconds: "x":1796077618


def test_a_default_expire_of_an_hour_writes_whole_seconds(store_path, clock):
    """`Dict(path, expire=3600)`: records carry an integer deadline, the next whole second
    after now + 3600; the key lives until exactly then, in the writer, a reader and a reopen."""
    clock.wall_now = 1_800_000_000.25
    with pysos.Dict(store_path, expire=3600) as d, pysos.Dict(store_path, readonly=True) as r:
        d["s"] = 1
        d.set("t", 2, expire=0.2)  # 0.2 s: to the 10,000th of a second
        d.set("u", 3, expire=3600)  # set() with the default's value: the same rounding
        got = {line["k"]: line["x"] for line in records(store_path)}
        assert got == {"s": 1_800_003_601, "t": 1_800_000_000.45, "u": 1_800_003_601}
        assert b'"x":1800003601,' in b"".join(p.read_bytes() for p in store_path.glob("seg-*"))
        clock.advance(3600.75 - 1e-6)  # a microsecond before the written deadline
        r.refresh()
        assert dict(d) == dict(r) == {"s": 1, "u": 3}
    with pysos.Dict(store_path) as d:
        assert dict(d) == {"s": 1, "u": 3}
        clock.advance(1e-6)
        assert dict(d) == {}


def test_an_expire_too_short_or_too_long_to_round_is_written_as_is(store_path, clock):
    clock.wall_now = 1_800_000_000.123456
    with pysos.Dict(store_path) as d:
        d.set("tiny", 1, expire=0.001)
        d.set("aeon", 1, expire=1e300)
    got = {line["k"]: line["x"] for line in records(store_path)}
    assert got == {"tiny": 1_800_000_000.123456 + 0.001, "aeon": 1_800_000_000.123456 + 1e300}
