"""pysos.Dict behaves like a plain dict, step by step, across reopens, rotations,
compactions and batches (hypothesis stateful test against a model dict)."""


import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import pysos
from fake_clock import FakeClock
from pysos.compactor import merge
from pysos.segments import files, manifest, record, segment
from store_machine import FLUSH_RUN, FSYNC_RUN, StoreMachine
from strategies import apply_batch, dict_keys, json_values, same_json

MISSING = object()


class Abort(Exception):
    """Raised inside a batch to make it roll back."""


class DictModel(StoreMachine):
    """A pysos.Dict driven side by side with a dict."""

    store_class = pysos.Dict

    def new_model(self):
        return {}

    def reader_contents(self):
        return dict(self.reader.items())

    def _some_key(self, data):
        """A key that is in the model when there is one (half the time), else any key."""
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(self.model, key=repr)))
        return data.draw(dict_keys)

    @rule(key=dict_keys, value=json_values)
    def set_item(self, key, value):
        self.store[key] = value
        self.model[key] = value

    @rule(data=st.data())
    def get_item(self, data):
        key = self._some_key(data)
        expected = self.model.get(key, MISSING)
        if expected is MISSING:
            with pytest.raises(KeyError):
                self.store[key]
            assert self.store.get(key) is None
            assert self.store.get(key, "dflt") == "dflt"
            assert key not in self.store
        else:
            assert same_json(self.store[key], expected)
            assert same_json(self.store.get(key, "dflt"), expected)
            assert key in self.store

    @rule(data=st.data())
    def del_item(self, data):
        key = self._some_key(data)
        if key in self.model:
            del self.store[key]
            del self.model[key]
        else:
            with pytest.raises(KeyError):
                del self.store[key]

    @rule(data=st.data(), use_default=st.booleans())
    def pop(self, data, use_default):
        key = self._some_key(data)
        if use_default:
            assert same_json(self.store.pop(key, "dflt"), self.model.pop(key, "dflt"))
        elif key in self.model:
            assert same_json(self.store.pop(key), self.model.pop(key))
        else:
            with pytest.raises(KeyError):
                self.store.pop(key)

    @rule()
    def popitem(self):
        if not self.model:
            with pytest.raises(KeyError):
                self.store.popitem()
            return
        key, value = self.store.popitem()
        assert key in self.model
        assert same_json(value, self.model.pop(key))

    @rule(data=st.data(), value=json_values)
    def setdefault(self, data, value):
        key = self._some_key(data)
        assert same_json(self.store.setdefault(key, value), self.model.setdefault(key, value))

    @rule(items=st.lists(st.tuples(dict_keys, json_values), max_size=6),
          form=st.sampled_from(["dict", "pairs", "kwargs"]))
    def update(self, items, form):
        if form == "dict":
            arg = dict(items)
            self.store.update(arg)
            self.model.update(arg)
        elif form == "pairs":
            self.store.update(items)
            self.model.update(items)
        else:
            kwargs = {("kw" + str(k)): v for k, v in items}
            self.store.update(**kwargs)
            self.model.update(**kwargs)

    @rule(roll=st.integers(0, 9))
    def clear(self, roll):
        if roll != 7:  # rare: a clear wipes the state the other rules work on
            return
        self.store.clear()
        self.model.clear()

    @rule(ops=st.lists(st.tuples(st.booleans(), dict_keys, json_values), min_size=1, max_size=8))
    def batch(self, ops):
        self.model = apply_batch(self.store, self.model, ops)

    @rule(ops=st.lists(st.tuples(dict_keys, json_values), max_size=8), clear_too=st.booleans())
    def batch_that_raises(self, ops, clear_too):
        with pytest.raises(Abort):
            with self.store.batch():
                for key, value in ops:
                    self.store[key] = value
                if clear_too:
                    self.store.clear()
                raise Abort()
        # the model is unchanged: the whole batch is discarded

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert len(self.store) == len(self.model)
        got = dict(self.store.items())
        assert got == self.model
        for key, value in got.items():
            assert same_json(value, self.model[key]), (key, value, self.model[key])
        keys = list(self.store)
        assert len(keys) == len(self.model) and dict.fromkeys(keys).keys() == self.model.keys()
        assert list(zip(self.store.keys(), self.store.values())) == list(self.store.items())
        assert self.store == self.model


class FsyncDictModel(DictModel):
    durability = "fsync"


def test_dict_matches_model_flush():
    """A Dict with durability="flush" matches a dict after every step (incl. reopen, rotation, compact, batch)."""
    run_state_machine_as_test(
        DictModel, settings=FLUSH_RUN)


def test_dict_matches_model_fsync():
    """A Dict with durability="fsync" matches a dict after every step (shorter run)."""
    run_state_machine_as_test(
        FsyncDictModel, settings=FSYNC_RUN)


EXPIRY_RUN = settings(max_examples=40, stateful_step_count=40, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
FEW_KEYS = st.sampled_from(["a", 1, 2.5])


class ExpiringModel(dict):
    """A model dict that also knows each key's deadline; any write or delete drops it."""

    def __init__(self, *args):
        super().__init__(*args)
        self.deadlines = {}

    def __setitem__(self, key, value):
        self.deadlines.pop(key, None)
        super().__setitem__(key, value)

    def __delitem__(self, key):
        self.deadlines.pop(key, None)
        super().__delitem__(key)

    def pop(self, key, *default):
        self.deadlines.pop(key, None)
        return super().pop(key, *default)

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args, **kwargs):
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self):
        self.deadlines.clear()
        super().clear()


class ExpiringDictModel(DictModel):
    """The Dict model with expiring writes and a clock the test moves: expired keys leave the
    model when their deadline passes; compactions of any run of sealed segments never bring
    back an older value, and leave a tombstone only where an older segment holds the key."""

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self._restore_clocks = self.clock.install()

    def teardown(self):
        try:
            super().teardown()
        finally:
            self._restore_clocks()

    def new_model(self):
        return ExpiringModel()

    def _open(self):  # no background compaction: the runs the test merges stay put
        self.store = self.store_class(self.path, durability=self.durability, segment_size=self.segment_size,
                                      autocompact=False)

    @rule(key=FEW_KEYS, value=json_values)
    def set_few(self, key, value):
        """Plain writes to the few keys the expiring ones use: older records to resurface."""
        self.store[key] = value
        self.model[key] = value

    @rule(key=FEW_KEYS | dict_keys, value=json_values, ttl=st.sampled_from([0.5, 1, 2, 5, 30]))
    def set_expiring(self, key, value, ttl):
        self.store.set(key, value, expire=ttl)
        self.model[key] = value
        self.model.deadlines[key] = self.clock.wall_now + ttl

    @rule(ops=st.lists(st.tuples(FEW_KEYS, json_values, st.sampled_from([None, 1, 3])), min_size=1, max_size=6))
    def batch_expiring(self, ops):
        with self.store.batch():
            for key, value, ttl in ops:
                self.store.set(key, value, expire=ttl)
                self.model[key] = value
                if ttl is not None:
                    self.model.deadlines[key] = self.clock.wall_now + ttl

    @rule(ops=st.lists(st.tuples(st.booleans(), dict_keys, json_values), min_size=1, max_size=8))
    def batch(self, ops):
        old = self.model
        self.model = ExpiringModel(apply_batch(self.store, dict(old), ops))
        touched = {key for _, key, _ in ops}
        self.model.deadlines = {k: t for k, t in old.deadlines.items() if k not in touched}

    @rule(key=FEW_KEYS, value=json_values, ttl=st.sampled_from([None, None, 1, 5]))
    def write_and_seal(self, key, value, ttl):
        """A write, then a new segment (so that runs to merge have a key's records apart)."""
        self.store.set(key, value, expire=ttl)
        self.model[key] = value
        if ttl is not None:
            self.model.deadlines[key] = self.clock.wall_now + ttl
        self.store._store.seal()

    @rule(seconds=st.sampled_from([0.25, 0.5, 1, 2, 10]))
    def advance_clock(self, seconds):
        self.clock.advance(seconds)
        now = self.clock.wall_now
        for key, deadline in list(self.model.deadlines.items()):
            if deadline <= now:
                del self.model[key]

    @rule(data=st.data())
    def compact_a_run(self, data):
        """Merge any contiguous run of sealed segments (so older segments may hold a key)."""
        directory = str(self.path)
        current = manifest.read(directory)
        sealed = len(current.segments) - 1
        if sealed < 1:
            return
        start = data.draw(st.integers(0, sealed - 1) | st.just(sealed - 1))  # often: leave older segments out
        stop = data.draw(st.integers(start + 1, sealed))
        earlier = set()
        for name in current.segments[:start]:
            earlier |= merge.segment_keys(directory, name, "dict", newest=False)
        result = merge.compact_directory(directory, segment_size=self.segment_size,
                                         choose=lambda d, m: (start, stop) if m == current else None)
        for name in result.get("outputs", []):
            fd = files.open_read(f"{directory}/{name}")
            try:
                for kind, key, _, _ in segment.Scanner(fd):
                    if kind == record.DELETE:  # a tombstone only where something older may resurface
                        assert key in earlier, (key, earlier)
            finally:
                files.close(fd)
        self.store.refresh()
        with pysos.Dict(self.path, readonly=True) as fresh:  # built from the files alone
            assert dict(fresh.items()) == self.model


def test_expiring_dict_matches_model():
    """With expiring writes and a controlled clock, a Dict (and a reader) matches a model that drops keys at their deadline, across reopen, rotation, batches and partial compactions."""
    run_state_machine_as_test(ExpiringDictModel, settings=EXPIRY_RUN)


class ExpiryCompactionModel(StoreMachine):
    """Few keys, plain and expiring writes, seals, clock moves and merges of any run of
    sealed segments: the focused proof that dropping an expired record is safe exactly
    when no older segment holds its key (else a tombstone stands in), across reopens."""

    store_class = pysos.Dict

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self._restore_clocks = self.clock.install()

    def teardown(self):
        try:
            super().teardown()
        finally:
            self._restore_clocks()

    def new_model(self):
        return ExpiringModel()

    def reader_contents(self):
        return dict(self.reader.items())

    _open = ExpiringDictModel._open
    set_few = ExpiringDictModel.set_few
    set_expiring = ExpiringDictModel.set_expiring
    write_and_seal = ExpiringDictModel.write_and_seal
    advance_clock = ExpiringDictModel.advance_clock

    compact_a_run = ExpiringDictModel.compact_a_run

    compact = None  # compact_a_run merges any run, the whole store included

    @rule(key=FEW_KEYS, old=json_values, new=json_values, ttl=st.sampled_from([1, 5]))
    def shadow_with_expiring(self, key, old, new, ttl):
        """A plain record, then in a later segment an expiring one over it: the pair a merge
        of the later segment alone must not split (the old value must stay dead)."""
        self.write_and_seal(key, old, None)
        self.write_and_seal(key, new, ttl)

    @rule(key=FEW_KEYS)
    def delete_few(self, key):
        if key in self.model:
            del self.store[key]
            del self.model[key]

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert dict(self.store.items()) == self.model and len(self.store) == len(self.model)


def test_expired_records_compact_away_safely():
    """Merging any run after keys expired never brings an older value back (reopen, reader), and writes tombstones only where an older segment holds the key."""
    run_state_machine_as_test(ExpiryCompactionModel, settings=EXPIRY_RUN)
