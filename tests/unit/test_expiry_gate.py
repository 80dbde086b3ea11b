"""The expiry gate: a write of a later deadline leaves the gate alone, an earlier one aims
it; a discarded batch that restores a passed deadline hides the key at once (clock faked)."""

import re

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysos
from pysos.segments import record


class Boom(Exception):
    pass


def test_an_earlier_deadline_written_after_later_ones_expires_at_its_time(store_path, clock):
    """Keys with later deadlines first, then one with an earlier deadline: each is gone exactly at its own deadline."""
    with pysos.Dict(store_path, expire=100) as d, pysos.Dict(store_path, readonly=True, refresh_interval=5) as r:
        for i in range(10):
            d[f"late{i}"] = i
        d.set("early", 1, expire=0.5)
        d.set("mid", 1, expire=3)
        r.refresh()
        clock.advance(0.4)
        assert "early" in d and "early" in r and len(d) == len(r) == 12
        clock.advance(0.1)
        assert "early" not in d and "early" not in r and len(d) == len(r) == 11
        clock.advance(2.4)
        assert "mid" in d and "mid" in r
        clock.advance(0.1)
        assert "mid" not in d and "mid" not in r and len(d) == len(r) == 10
        clock.advance(97)
        assert len(d) == len(r) == 0


def test_a_discarded_batch_that_restores_a_passed_deadline_hides_the_key_at_once(store_path, clock):
    """A key overwritten in a batch, its old deadline passing meanwhile, then the batch discarded: absent right away."""
    with pysos.Dict(store_path) as d:
        d.set("a", 1, expire=1)
        with pytest.raises(Boom):
            with d.batch():
                d["a"] = 2  # no deadline now
                clock.advance(2)
                assert len(d) == 1 and d["a"] == 2
                raise Boom
        assert "a" not in d and len(d) == 0


def test_a_discarded_batch_whose_restored_deadline_goes_again_leaves_the_gate_aimed(store_path, clock):
    """In a batch: a key set with a deadline, then overwritten; the deadline passes and a look
    finds nothing pending; the batch is discarded (its undo restores the deadline, then
    drops the key). A key set afterwards with a short expire is gone at its deadline."""
    with pysos.Dict(store_path) as d:
        with pytest.raises(Boom):
            with d.batch():
                d.set("a", 1, expire=0.5)
                d["a"] = 2
                clock.advance(0.5)
                assert len(d) == 1
                raise Boom
        assert len(d) == 0
        d.set("b", 1, expire=0.1)
        clock.advance(0.2)
        assert "b" not in d and len(d) == 0


@pytest.mark.parametrize("value", ["s", 1, 2.5, None, True, [1, "a"], {"a": 1}, {"n": {"m": [1.5]}}, (1, 2), -0.0])
def test_encode_item_with_a_deadline_is_encode_expiring_of_the_plain_record(value):
    """encode_item(k, v, deadline) writes the very bytes of encode_expiring(encode_item(k, v), deadline)."""
    for key in ("k", 7, 2.5, None):
        deadline = 1_800_000_000.123456
        line = record.encode_item(key, value, deadline)
        assert line == record.encode_expiring(record.encode_item(key, value), deadline)
        assert record.expiry_of(line) == deadline and record.verify(line)


def test_encode_item_with_a_deadline_refuses_what_the_plain_one_refuses():
    """A value the plain encoder refuses is refused with a deadline too, with the same error."""
    for bad in (float("nan"), {1: 2}, object(), 2**70):
        with pytest.raises((TypeError, ValueError)) as plain:
            record.encode_item("k", bad)
        with pytest.raises(type(plain.value), match=re.escape(str(plain.value)[:20])):
            record.encode_item("k", bad, 1_800_000_000.5)


def test_deadlines_in_and_out_of_order_come_due_in_order():
    """Deadlines set in order (queue) and out of order (heap), keys of mixed types, ties,
    rewrites and many stale entries: next() and take_due() agree with a sorted list."""
    from pysos.segments.index import Deadlines

    deadlines, model = Deadlines(), {}
    import random

    rng = random.Random(7)
    keys = ["a", 1, 2.5, None, "b", 3]
    for step in range(5000):
        key, deadline = rng.choice(keys), float(step // 3) + rng.choice((0, 0, 0, -50, 10, -0.25, 0.25))
        firsts = [deadlines.first] + [entry[0] for entry in deadlines.heap[:1]]  # (first: inf if the queue is empty)
        earliest = deadlines.set(key, deadline)
        if earliest:  # earlier than every pending deadline: the gate must be told
            assert all(deadline < t for k, t in model.items() if k != key)
        else:  # no earlier than a first entry: the gate is aimed at or before it already
            assert min(firsts) <= deadline
        model[key] = deadline
        if step % 97 == 0:
            now = float(step // 3) - 20
            due = deadlines.take_due(now)
            assert sorted(map(repr, due)) == sorted(repr(k) for k, t in model.items() if t <= now)
            model = {k: t for k, t in model.items() if t > now}
            assert deadlines.next() == (min(model.values()) if model else None)
            assert deadlines.first_passed(now) is False
    assert deadlines.queued() <= 2 * len(deadlines.by_key) + 1024 + 1024


def test_deadlines_set_many_at_a_time_come_due_in_order():
    """set_many (a hint's deadlines at once, None for records that never expire) mixed with
    set(), take_due() and next(), before and after a queue exists, with deadlines above and
    below its cover: next() and take_due() agree with a dict of the deadlines."""
    import random

    from pysos.segments.index import Deadlines

    rng = random.Random(11)
    for trial in range(40):
        deadlines, model = Deadlines(), {}
        keys = [f"k{i}" for i in range(30)] + [1, 2.5]
        for step in range(300):
            base = float(step)
            if rng.random() < 0.3:
                some = rng.sample(keys, rng.randint(0, 12))
                times = [rng.choice((None, base + rng.uniform(-40, 60))) for _ in some]
                deadlines.set_many(some, times)
                model.update((k, t) for k, t in zip(some, times) if t is not None)
            else:
                key, deadline = rng.choice(keys), base + rng.uniform(-40, 60)
                deadlines.set(key, deadline)
                model[key] = deadline
            if step % 7 == 0:
                now = base - 10
                due = deadlines.take_due(now)
                assert sorted(map(repr, due)) == sorted(repr(k) for k, t in model.items() if t <= now)
                model = {k: t for k, t in model.items() if t > now}
                assert deadlines.next() == (min(model.values()) if model else None)
                assert deadlines.lower_bound() <= (min(model.values()) if model else float("inf"))
        assert sorted(map(repr, deadlines.take_due(float("inf")))) == sorted(map(repr, model))


def test_a_key_forgotten_by_an_adopted_compaction_leaves_the_gate_aimed_for_the_next_deadline(store_path, clock):
    """An expired key that a compaction dropped (the writer forgets it on adopting the merge, not by
    its own look), then the key written again with a deadline: gone exactly at the new deadline."""
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    with pysos.Dict(store_path, segment_size=256, autocompact=False) as d:
        d.set("a", 1, expire=0.5)
        d._store.seal()
        clock.advance(0.5)  # the writer does not look: the daemon finds the record expired first
        watch = StoreWatch(str(store_path), "dict")
        while watch.compact_if_due(plan.Policy(ratio=0.0, min_dead_bytes=0), 256, lambda n: None) is not None:
            pass
        d.refresh()
        assert "a" not in d and len(d) == 0  # (each operation looks at the files once a second)
        d.set("a", 2, expire=0.5)
        clock.advance(0.4)
        assert d.get("a") == 2
        clock.advance(0.1)
        assert "a" not in d and len(d) == 0


def test_the_in_order_queue_lets_go_of_passed_and_stale_entries():
    """A long churn of in-order deadlines (each key rewritten many times, most entries passed or
    stale): the queue's lists stay within a small multiple of the keys still pending, and
    the keys come due exactly as a dict of their deadlines says."""
    from pysos.segments.index import Deadlines

    deadlines = Deadlines()
    for step in range(50_000):
        assert deadlines.set(f"k{step % 100}", float(step)) is (step == 0)  # only the first is the earliest
        if step % 1000 == 999:
            assert len(deadlines.take_due(step - 500.0)) <= 100
            assert deadlines.next() == min(deadlines.by_key.values())
            assert len(deadlines.times) == len(deadlines.keys) <= 2 * 1024 + 2 * len(deadlines.by_key) + 1000
    assert deadlines.take_due(float("inf")) and not deadlines.by_key and deadlines.queued() == 0
    assert deadlines.first == deadlines.cover == float("inf") and deadlines.next() is None


def test_between_looks_each_keyed_operation_answers_for_its_own_deadline(store_path, clock, monkeypatch):
    """Deadlines pass but neither handle looks at its files (a writer that looks once an hour,
    a reader that refreshes once an hour): d[k], get, ``in`` and del still see a key gone at
    its own deadline exactly, on the writer and on the reader, while a read of a key still
    alive leaves the other expired keys for the next look or ``len()`` (under a churn of
    expiring keys, dropping them one read at a time cost more than the read), and does
    not make the reader look at its files."""
    from pysos.engine import writer as engine_writer

    monkeypatch.setattr(engine_writer, "_CHECK_EXTERNAL_SWAP_EVERY", 3600.0)
    with pysos.Dict(store_path) as d:
        for i in range(6):
            d.set(f"k{i}", i, expire=1 + i / 10)
        d["forever"] = "x"
        with pysos.Dict(store_path, readonly=True, refresh_interval=3600) as r:
            assert len(r) == 7
            d["late"] = "written after the reader's last look"
            clock.advance(1.05)  # k0 expired
            assert d["k1"] == 1 and r["k1"] == 1 and d.get("k2") == 2 and "k3" in r
            assert "k0" in d._store.index and "k0" in r._store.index  # (left for later, see above)
            assert "late" not in r  # nor is another key's deadline a look at the files for r
            assert "k0" not in d and "k0" not in r
            assert d.get("k0", "gone") == r.get("k0", "gone") == "gone"
            clock.advance(0.1)  # k1 expired
            for handle in (d, r):
                with pytest.raises(KeyError):
                    handle["k1"]
            with pytest.raises(KeyError):
                del d["k1"]
            clock.advance(0.1)  # k2 expired
            with pytest.raises(KeyError):
                del d["k2"]
            assert sorted(d) == sorted(r) == ["forever", "k3", "k4", "k5", "late"]
            assert len(d) == len(r) == 5  # (r looked at its files before it called k0 gone)
            assert "k0" not in d._store.index and "k2" not in r._store.index


def test_a_handle_never_shows_again_a_key_it_found_expired_when_the_clock_steps_back(store_path, clock):
    """A key a handle reported expired stays gone in it after the system clock steps back
    (its record's deadline is in the future again by the clock): the writer, and a reader
    with a refresh_interval, dropped it when they found it expired. (A handle that had not
    looked at that key, or a new one, goes by the clock: the deadline is wall-clock time.)"""
    with pysos.Dict(store_path) as d, pysos.Dict(store_path, readonly=True, refresh_interval=60) as r:
        d.set("a", 1, expire=0.5)
        d["b"] = 2
        r.refresh()
        clock.advance(0.7)
        assert "a" not in d and r.get("a") is None
        clock.step_wall(-0.5)  # the deadline is 0.3 s ahead again
        assert "a" not in d and "a" not in r and len(d) == len(r) == 1
        assert d.get("a") is None and r.get("a") is None


def test_a_reader_between_refreshes_follows_before_it_calls_a_key_expired(store_path, clock):
    """A reader with a refresh_interval, a key whose deadline it knows passes, but the writer
    gave the key a new deadline meanwhile (a session kept alive): the reader looks at the
    files before it answers, so the key is there; one the writer did not renew is gone."""
    with pysos.Dict(store_path) as d, pysos.Dict(store_path, readonly=True, refresh_interval=60) as r:
        d.set("kept", 1, expire=1)
        d.set("left", 2, expire=1)
        r.refresh()
        clock.advance(0.5)
        d.set("kept", 3, expire=10)
        clock.advance(0.6)
        assert r["kept"] == 3 and "left" not in r and r.get("left") is None
        d.set("kept", 4, expire=10)
        d.set("left", 5, expire=1)
        clock.advance(9.5)  # "kept" passes the deadline r knows, "left" came back and went
        assert len(r) == 1 and list(r) == ["kept"] and r["kept"] == 4  # len() looks first too


def test_a_reader_looks_first_even_when_the_deadline_passes_during_its_len(store_path, clock):
    """The same renewal, but the old deadline passes *during* ``len()`` (a real clock moves
    between two readings of it, here by 1 us a reading): the reader must still look at its
    files before it drops the key, so its decision to look and its drop go by one reading."""
    from pysos.segments import clock as clocks

    def ticking():
        now = clock.wall_now
        clock.advance(1e-6)
        return now

    with pysos.Dict(store_path) as d, pysos.Dict(store_path, readonly=True, refresh_interval=60) as r:
        d.set("a", 1, expire=1)
        r.refresh()
        clock.advance(0.5)
        d.set("a", 2, expire=1)
        clock.advance(0.5 - 0.5e-6)
        installed = clocks.wall
        clocks.wall = ticking
        try:
            assert len(r) == 1
        finally:
            clocks.wall = installed
        assert r.get("a") == 2 and "a" in r


@given(st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-2**53, 2**53)),
       st.sampled_from([b"", b" ", b"\t", b"\n "]), st.sampled_from([b"", b" "]))
def test_expiry_of_reads_the_number_a_json_parse_reads(deadline, before, after):
    """expiry_of parses the deadline alone: for any JSON number (as orjson writes it, or with
    an exponent, or spaced out as JSON allows) it gives what a parse of the whole line gives."""
    for number in (orjson.dumps(deadline), b"%.17e" % deadline, b"%.17E" % deadline):
        line = record.frame(b'"x":' + before + number + after + b',"k":"a","v":1}')
        assert record.verify(line)
        assert record.expiry_of(line) == orjson.loads(line)["x"]


@pytest.mark.parametrize("bad", [b'"1800000000"', b"true", b"null", b"[1,2]", b'{"a":1,"b":2}', b'"nan"', b'"inf"'])
def test_expiry_of_refuses_a_deadline_that_is_not_a_number(bad):
    line = record.frame(b'"x":' + bad + b',"k":"a","v":1}')
    assert record.verify(line)  # valid JSON: only its deadline is wrong
    with pytest.raises(record.BadRecord):
        record.expiry_of(line)
