"""List position keys and the two-ended order structure."""

import random

from hypothesis import given, strategies as st

from pysos._positions import Positions, as_tuple, between


def test_append_and_prepend_keys_stay_small_ints():
    """append takes last + 1 and insert(0) takes first - 1: plain ints on disk."""
    assert between(None, None) == 0
    assert between(41, None) == 42
    assert between(None, -3) == -4
    assert between((5, 7), None) == 6


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=300), st.randoms())
def test_between_is_always_strictly_between(choices, rnd):
    """Whatever the insert positions, the new key sorts strictly between its neighbours."""
    keys = [0]
    for c in choices:
        i = c % (len(keys) + 1)
        before = keys[i - 1] if i > 0 else None
        after = keys[i] if i < len(keys) else None
        key = between(before, after)
        assert before is None or as_tuple(before) < as_tuple(key)
        assert after is None or as_tuple(key) < as_tuple(after)
        keys.insert(i, key)
    assert sorted(keys, key=as_tuple) == keys


def test_positions_behaves_like_a_list():
    """Random inserts and deletes at the ends and in the middle match a plain list."""
    rnd = random.Random(7)
    positions, model = Positions(), []
    for step in range(5000):
        if model and rnd.random() < 0.45:
            i = rnd.choice([0, len(model) - 1, rnd.randrange(len(model))])
            positions.delete(i)
            del model[i]
        else:
            i = rnd.choice([0, len(model), rnd.randrange(len(model) + 1)])
            positions.insert(i, step)
            model.insert(i, step)
        assert len(positions) == len(model)
    assert list(positions) == model == [positions[i] for i in range(len(model))]


def test_index_of_finds_keys_in_order():
    """index_of is a binary search over the key order, mixing int and tuple keys."""
    keys = [-2, 0, (0, 0), (0, 1), 1, (1, 5, 2), 3]
    positions = Positions(keys)
    for i, key in enumerate(keys):
        assert positions.index_of(key) == i
    assert positions.index_of((0, 0, 9)) == 3


def test_location_packing_round_trips():
    """A location packs segment number, offset (40 bits) and length (32 bits) without loss."""
    from pysos.segments import index

    for segment, offset, length in [(1, 0, 18), (99999999, 2**40 - 1, 2**32 - 1), (7, 123456, 789)]:
        location = index.pack(segment, offset, length)
        assert index.unpack(location) == (segment, offset, length)
        assert index.segment_of(location) == segment and index.length_of(location) == length
        assert index.local_part(location) == (offset << 32) | length
