"""Merge planning (pysos.compactor.plan) and the rate limiter, as pure functions."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysos.compactor import plan
from pysos.compactor.throttle import Interrupted, Throttle
from pysos.segments import index, record

E = plan.SegmentEstimate
MiB = 2**20


def segs(*pairs):
    """Estimates named s0, s1, ... from (size, dead) pairs; the last is the writer's."""
    return [E(f"s{i}", size, dead) for i, (size, dead) in enumerate(pairs)]


# --- policy ------------------------------------------------------------------------------------


def test_policy_defaults_are_half_and_four_mib():
    """The default policy compacts at half the disk bytes and at least 4 MiB of garbage."""
    policy = plan.Policy()
    assert (policy.ratio, policy.min_dead_bytes) == (0.5, 4 * MiB)
    assert policy.max_merge_bytes == 256 * MiB


def test_due_needs_both_ratio_and_floor():
    """due() is true only when dead bytes pass both the ratio and the floor."""
    policy = plan.Policy(ratio=0.5, min_dead_bytes=4 * MiB)
    assert policy.due(10 * MiB, 5 * MiB)
    assert not policy.due(5 * MiB, 3 * MiB)      # ratio met (3 >= 2.5), floor not
    assert not policy.due(100 * MiB, 10 * MiB)   # floor met, ratio not


def test_due_never_without_garbage():
    """A zero floor and ratio still never compact a store without dead bytes."""
    policy = plan.Policy(ratio=0.0, min_dead_bytes=0)
    assert not policy.due(10 * MiB, 0)
    assert policy.due(10 * MiB, 1)


@pytest.mark.parametrize("kwargs", [{"ratio": -0.1}, {"ratio": 1.5}, {"min_dead_bytes": -1}, {"max_merge_bytes": 0}])
def test_policy_refuses_nonsense(kwargs):
    """A ratio outside [0, 1], a negative floor or a non-positive merge size raise ValueError."""
    with pytest.raises(ValueError):
        plan.Policy(**kwargs)


# --- choosing a run ----------------------------------------------------------------------------


def test_never_takes_the_newest_segment():
    """The writer's segment is never part of a run, however much garbage it holds."""
    run = plan.choose_run(segs((100, 10), (100, 100)), 10**9)
    assert run == (0, 1)
    assert plan.choose_run(segs((100, 0), (100, 100)), 10**9) is None


def test_single_segment_store_has_nothing_to_merge():
    """A store with only the writer's segment yields no run."""
    assert plan.choose_run(segs((100, 100)), 10**9) is None


def test_takes_all_sealed_when_they_fit():
    """When every sealed segment fits the bound, the run covers all with garbage."""
    assert plan.choose_run(segs((10, 5), (10, 5), (10, 5), (10, 0)), 10**9) == (0, 3)


def test_run_respects_the_byte_bound():
    """The run's input bytes never pass max_merge_bytes (more than one segment)."""
    estimates = segs(*[(100, 50)] * 10, (1, 0))
    start, stop = plan.choose_run(estimates, 350)
    assert stop - start == 3
    assert sum(e.size for e in estimates[start:stop]) <= 350


def test_picks_the_window_with_most_garbage():
    """Among bounded windows the one with the most dead bytes wins."""
    estimates = segs((100, 10), (100, 10), (100, 90), (100, 95), (100, 10), (5, 0))
    assert plan.choose_run(estimates, 200) == (2, 4)


def test_oversized_single_segment_is_allowed_alone():
    """A segment bigger than the bound can still be merged on its own."""
    estimates = segs((1000, 900), (10, 1), (5, 0))
    assert plan.choose_run(estimates, 100) == (0, 1)


def test_trims_clean_segments_off_the_ends():
    """Segments without dead bytes at either end of the best run are not rewritten."""
    estimates = segs((10, 0), (10, 6), (10, 0), (10, 6), (10, 0), (10, 0))
    assert plan.choose_run(estimates, 10**9) == (1, 4)


def test_plan_applies_policy_to_sealed_garbage_only():
    """plan() counts the sealed segments' dead bytes (the newest's are not reclaimable)."""
    policy = plan.Policy(ratio=0.5, min_dead_bytes=0)
    assert plan.plan(segs((100, 10), (100, 100)), policy) is None
    assert plan.plan(segs((100, 90), (100, 100)), policy) is None  # 90 < 0.5 * 200
    assert plan.plan(segs((100, 100), (50, 0)), policy) == (0, 1)


def test_dead_prefix_is_the_sealed_segments_from_the_oldest_with_nothing_live():
    """Below any floor, the oldest segments with no live byte are a run to drop; one live
    byte ends it, and the writer's segment is never in it, however dead."""
    assert plan.dead_prefix(segs((3 * MiB, 3 * MiB), (2 * MiB, 2 * MiB), (5, 4), (9, 9))) == (0, 2)
    assert plan.dead_prefix(segs((3 * MiB, 3 * MiB - 1), (2 * MiB, 2 * MiB), (9, 9))) is None
    assert plan.dead_prefix(segs((100, 100))) is None  # the writer's alone
    assert plan.dead_prefix(segs((100, 100), (7, 7))) == (0, 1)
    assert plan.plan(segs((3 * MiB, 3 * MiB), (8 * MiB, 0)), plan.Policy()) is None  # the floor says wait


# --- full compaction in bounded runs -----------------------------------------------------------


def test_next_full_run_goes_oldest_first_in_bounded_pieces():
    """A full compaction merges the sealed segments it started with, oldest first, bounded."""
    names = ["a", "b", "c", "d", "e"]
    sizes = [40, 40, 40, 40, 0]
    todo = {"a", "b", "c", "d"}
    assert plan.next_full_run(names, sizes, todo, 100) == (0, 2)
    # after merging a, b into "o1": the outputs end the stretch and are not merged again
    names, sizes, todo = ["o1", "c", "d", "e"], [70, 40, 40, 0], {"c", "d"}
    assert plan.next_full_run(names, sizes, todo, 100) == (1, 3)
    assert plan.next_full_run(["o1", "o2", "e"], [70, 70, 0], set(), 100) is None


def test_next_full_run_never_takes_the_newest():
    """Even if the newest segment is in the to-do set (it was sealed by a race), it is skipped."""
    assert plan.next_full_run(["a", "b"], [1, 1], {"a", "b"}, 100) == (0, 1)
    assert plan.next_full_run(["b"], [1], {"b"}, 100) is None


# --- dead-byte estimates -----------------------------------------------------------------------


def summary(*records):
    """A KeySummary from (kind, key, length) records in segment order."""
    s = plan.KeySummary()
    for kind, key, length in records:
        s.add(kind, key, length)
    return s


def test_estimate_counts_overwritten_records_as_dead():
    """A record is dead when a later segment sets or deletes its key; the rest is live."""
    s0 = summary((record.SET, "a", 10), (record.SET, "b", 10), (record.SET, "c", 10))
    s1 = summary((record.SET, "a", 12), (record.DELETE, "b", 8))
    s2 = summary((record.SET, "c", 11))
    dead = plan.estimate_dead([s0, s1, s2], [30, 20, 11])
    assert dead == [30, 0, 0]  # s1's delete of "b" must stay while s0 holds "b"


def test_estimate_counts_unneeded_tombstones_as_dead():
    """A delete whose key no older segment holds is dead; one that an older segment needs is not."""
    s0 = summary((record.SET, "a", 10))
    s1 = summary((record.DELETE, "a", 8), (record.DELETE, "never-set", 9))
    s2 = summary((record.SET, "z", 5))
    assert plan.estimate_dead([s0, s1, s2], [10, 17, 5]) == [10, 9, 0]


def test_estimate_counts_shadowed_records_within_a_segment():
    """Only a key's newest record in a segment can be live; markers and older copies are dead."""
    s0 = summary((record.SET, "a", 10), (record.SET, "a", 10), (record.SET, "b", 5), (record.DELETE, "b", 6))
    assert plan.estimate_dead([s0], [40]) == [30]


def test_estimate_counts_expired_records_as_dead_by_now():
    """With the wall clock, a key's newest record whose deadline has passed is dead (the
    daemon sees expired records as garbage); one an older segment holds the key of keeps
    the tombstone a merge would write; a later record of the key cancels the deadline."""
    s0 = summary((record.SET, "a", 10))
    s1 = plan.KeySummary()
    s1.add(record.SET, "a", 40, 100.0)    # over s0's "a": a merge writes a tombstone for it
    s1.add(record.SET, "b", 30, 100.0)    # nothing older: all dead once expired
    s1.add(record.SET, "c", 20, 200.0)
    s1.add(record.SET, "d", 25, 100.0)
    s1.add(record.SET, "d", 25)           # set again without expiry: never expires
    s2 = summary((record.SET, "z", 5))
    sizes = [10, 140, 5]
    tombstone_a = len(record.encode_tombstone("a"))
    assert plan.estimate_dead([s0, s1, s2], sizes) == [10, 25, 0]
    assert plan.estimate_dead([s0, s1, s2], sizes, now=99.0) == [10, 25, 0]
    assert plan.estimate_dead([s0, s1, s2], sizes, now=100.0) == [10, 140 - 20 - 25 - tombstone_a, 0]
    assert plan.estimate_dead([s0, s1, s2], sizes, now=200.0) == [10, 140 - 25 - tombstone_a, 0]
    assert s1.expired_by(100.0) and not s1.expired_by(99.0) and not s0.expired_by(1e12)


def test_summary_from_hint_matches_scan():
    """A summary built from a hint's keys and lengths equals one built from the records,
    tombstone lengths included."""
    from_hint = plan.KeySummary.from_hint(20, ["a", "b", "z"], [10, 7, -3])
    scanned = summary((record.SET, "a", 10), (record.SET, "b", 7), (record.DELETE, "z", 3))
    assert from_hint.lengths == scanned.lengths
    assert from_hint.tombstones == scanned.tombstones
    # A version 3 hint's deadlines: the summary keeps those of its set records, as a scan does.
    from_hint = plan.KeySummary.from_hint(30, ["a", "b", "z"], [10, 7, -3], [5.5, None, None])
    scanned = plan.KeySummary(30)
    scanned.add(record.SET, "a", 10, 5.5)
    scanned.add(record.SET, "b", 7)
    scanned.add(record.DELETE, "z", 3)
    assert from_hint == scanned and from_hint.deadlines == {"a": 5.5}
    assert plan.estimate_dead([from_hint], [30], now=5.0) == [30 - 10 - 7]  # a and b live
    assert plan.estimate_dead([from_hint], [30], now=5.5) == [30 - 7]  # a expired: dead


def test_dead_from_locations_is_exact():
    """The writer's estimate: size minus the lengths its index points at, per segment."""
    locations = [index.pack(1, 0, 10), index.pack(1, 50, 20), index.pack(2, 0, 5)]
    assert plan.dead_from_locations(locations, {1: 100, 2: 5, 3: 40}) == {1: 70, 2: 0, 3: 40}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 2**30), st.integers(1, 5000)), max_size=300),
       st.dictionaries(st.integers(1, 7), st.integers(0, 10**6), min_size=1, max_size=7),
       st.integers(1, 50))
def test_dead_from_locations_matches_a_loop_over_every_location(entries, extra, slice_size):
    """The C-loop version (sorted slices, a sum per segment) against the plain loop, with
    slices small enough that a segment's locations span several (sizes above any live
    sum, so that no difference hides behind the floor at 0)."""
    sizes = {number: 2**32 + more for number, more in extra.items()}
    locations = list({index.pack(*entry) for entry in entries})
    live = {}
    for location in locations:
        live[index.segment_of(location)] = live.get(index.segment_of(location), 0) + index.length_of(location)
    expected = {number: max(size - live.get(number, 0), 0) for number, size in sizes.items()}
    old, plan._SLICE = plan._SLICE, slice_size
    try:
        assert plan.dead_from_locations(iter(locations), sizes) == expected
    finally:
        plan._SLICE = old


def test_fruitless_merge_outputs_count_clean_until_an_older_segment_changes():
    """Outputs of a merge that reclaimed under half its estimate get none of the dead bytes
    they were marked with in the next plans, until a segment before them is replaced."""
    assert plan.fruitless(estimated_dead=100, reclaimed=10)
    assert not plan.fruitless(estimated_dead=100, reclaimed=60)
    clean = {}
    plan.mark_clean(clean, ["a", "b", "out", "w"], {"out": 8})
    estimates = segs((10, 5), (10, 5), (10, 8), (1, 0))
    estimates[2] = E("out", 10, 8)
    assert [e.dead for e in plan.discount(estimates, clean)] == [5, 5, 0, 0]
    assert plan.still_clean(clean, ["a", "b", "out", "w2"]) == clean      # newer segments do not matter
    assert plan.still_clean(clean, ["merged", "out", "w2"]) == {}          # an older one changed
    assert plan.still_clean(clean, ["a", "b", "w2"]) == {}                  # it was merged itself


def test_garbage_added_to_a_clean_segment_counts():
    """Records of a clean segment overwritten, deleted or expired after it was marked are
    dead bytes beyond those it was marked with: they count, the marked ones still do not."""
    clean = {}
    plan.mark_clean(clean, ["a", "out", "w"], {"out": 8})
    later = [E("a", 10, 5), E("out", 100, 8 + 60), E("w", 1, 0)]
    assert [e.dead for e in plan.discount(later, clean)] == [5, 60, 0]
    assert plan.plan(plan.discount(later, clean), plan.Policy(ratio=0.5, min_dead_bytes=50, max_merge_bytes=100)) == (1, 2)


# --- throttle ----------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_throttle_delay_keeps_the_average_rate():
    """After n bytes at rate r the throttle asks to wait until n / r seconds have passed."""
    clock = FakeClock()
    t = Throttle(1000, clock=clock)
    t._started = clock.now
    t._written = 500
    assert t.delay(clock.now) == pytest.approx(0.5)
    clock.now += 0.5
    assert t.delay(clock.now) == pytest.approx(0.0)


def test_throttle_without_limit_never_waits():
    """With no rate limit the throttle returns at once and asks for no delay."""
    t = Throttle(None)
    t(10**9)
    assert t.delay(0.0) == 0.0


def test_throttle_raises_interrupted_once_stopped():
    """A set stop event makes the next throttle call raise Interrupted (the merge gives up)."""
    t = Throttle(None)
    t(0)
    t.stop.set()
    with pytest.raises(Interrupted):
        t(0)


def test_throttle_refuses_a_non_positive_rate():
    """A rate limit of zero or less is a ValueError."""
    with pytest.raises(ValueError):
        Throttle(0)
