"""Expiry against a model, with a clock the test moves (hypothesis stateful tests).

Expired keys leave the model at their deadline; the store, a reader opened at the start
and a reader opened from the files alone must agree with it after every step, across
rotations, reopens, batches and every kind of merge: ``compact()``, the writer's thread
(its merge from the index and its merge of a later run), the daemon's planner, ``compact_all``
(``python -m pysos.compactor --once``, ``pysos compact``) and any run chosen by the test
(so older segments outside the run may hold a key). Each merge's outputs are checked
record by record against what its inputs say (:mod:`expiry_oracle`): that is the proof that an
expired record needs a tombstone exactly when a segment older than the run holds its key.
"""

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

import pytest

import pysos
from expiry_oracle import MergeChecker, garbage
from fake_clock import FakeClock
from pysos.compactor import merge, plan
from pysos.compactor.background import BackgroundCompactor
from pysos.compactor.daemon import StoreWatch
from pysos.segments import manifest, record
from store_machine import StoreMachine
from strategies import apply_batch, dict_keys, json_values
from test_dict_model import DictModel

EXPIRY_RUN = settings(max_examples=40, stateful_step_count=40, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
FEW_KEYS = st.sampled_from(["a", 1, 2.5])
MISSING = object()
MERGE_BYTES = st.sampled_from([300, 4096, 2**20])  # bounded merges of one segment, a few, all


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


class ExpiryRules:
    """The expiry rules both machines share: a clock, expiring writes, seals, and every
    compactor, each merge checked by a :class:`MergeChecker`. Mixed into a StoreMachine."""

    merges_checked = 0  # by all the machines of a class (see assert_merges_were_checked)

    def __init__(self):
        super().__init__()
        self.clock = FakeClock()
        self._restore_clocks = self.clock.install()
        self.checker = MergeChecker(self.clock)
        self.watch = None  # the daemon's view of the store (its caches live as long as a daemon's)

    def teardown(self):
        try:
            super().teardown()
        finally:
            type(self).merges_checked += self.checker.merges
            self.checker.restore()
            self._restore_clocks()

    def new_model(self):
        return ExpiringModel()

    default_ttl = None  # the store's expire= (see ExpiryCompactionModel.reopen_with_default)

    def _open(self):  # no background thread: the merges happen when a rule says so
        if self.store is None and os.path.exists(os.path.join(self.path, "MANIFEST")):
            # A reopen: every hint written so far (the writer's at rotations and at the close
            # just made, the compactors') agrees with a scan of its segment, deadlines
            # included: a hint that left out a record would let an older one come back.
            assert pysos.check(self.path) == []
        self.store = self.store_class(self.path, durability=self.durability, segment_size=self.segment_size,
                                      autocompact=False, expire=self.default_ttl)

    def _expect_files_agree(self):
        """The writer after a refresh, and a reader built from the files alone, hold the model."""
        self.store.refresh()
        with pysos.Dict(self.path, readonly=True) as fresh:
            assert dict(fresh.items()) == self.model

    @rule(key=FEW_KEYS, value=json_values)
    def set_few(self, key, value):
        """Plain writes to the few keys the expiring ones use: older records to resurface."""
        self._set_plain(key, value)
        self.model[key] = value

    def _set_plain(self, key, value):
        """A write that never expires, whatever the store's default."""
        if self.default_ttl is None:
            self.store[key] = value
        else:
            self.store.set(key, value, expire=None)

    @rule(key=FEW_KEYS | dict_keys, value=json_values, ttl=st.sampled_from([0.5, 1, 2, 5, 30]))
    def set_expiring(self, key, value, ttl):
        self.store.set(key, value, expire=ttl)
        self.model[key] = value
        self.model.deadlines[key] = self.clock.wall_now + ttl

    @rule(key=FEW_KEYS, value=json_values, ttl=st.sampled_from([None, None, 1, 5]))
    def write_and_seal(self, key, value, ttl):
        """A write, then a new segment (so that runs to merge have a key's records apart)."""
        self.store.set(key, value, expire=ttl)
        self.model[key] = value
        if ttl is not None:
            self.model.deadlines[key] = self.clock.wall_now + ttl
        self.store._store.seal()

    @rule(key=FEW_KEYS, old=json_values, new=json_values, ttl=st.sampled_from([1, 5]))
    def shadow_with_expiring(self, key, old, new, ttl):
        """A plain record, then in a later segment an expiring one over it: the pair a merge
        of the later segment alone must not split (the old value must stay dead)."""
        self.write_and_seal(key, old, None)
        self.write_and_seal(key, new, ttl)

    @rule(key=FEW_KEYS, value=json_values)
    def shadow_with_delete(self, key, value):
        """A plain record sealed, then its tombstone sealed in a later segment."""
        self.write_and_seal(key, value, None)
        del self.store[key]
        del self.model[key]
        self.store._store.seal()

    @rule(key=FEW_KEYS, old=json_values, new=json_values, ttl=st.sampled_from([0.5, 1, 5]),
          delete=st.booleans(), data=st.data())
    def kill_an_old_record_then_merge_without_it(self, key, old, new, ttl, delete, data):
        """The dangerous sequence, whole: a plain record sealed in one segment; in a later one,
        an expiring record over it (or its tombstone), sealed; its deadline passes; then a
        merge of a run that holds the later record but not the older segment. The old value
        must stay dead, through a tombstone the merge writes (or keeps)."""
        self.write_and_seal(key, old, None)
        holder = len(manifest.read(str(self.path)).segments) - 2  # the segment holding `old`
        if delete:
            del self.store[key]
            del self.model[key]
            self.store._store.seal()
        else:
            self.write_and_seal(key, new, ttl)
            self.advance_clock(ttl + data.draw(st.sampled_from([0, 0.25])))  # at or past the deadline
        current = manifest.read(str(self.path))
        sealed = len(current.segments) - 1
        start = data.draw(st.integers(holder + 1, sealed - 1))
        stop = data.draw(st.integers(start + 1, sealed))
        merge.compact_directory(str(self.path), segment_size=self.segment_size,
                                choose=lambda d, m: (start, stop) if m == current else None)
        self._expect_files_agree()

    @rule(key=FEW_KEYS)
    def delete_few(self, key):
        if key in self.model:
            del self.store[key]
            del self.model[key]

    @rule()
    def seal(self):
        self.store._store.seal()

    @rule(seconds=st.sampled_from([0.25, 0.5, 1, 2, 10, 0.0007, 0.3333]))
    def advance_clock(self, seconds):
        self.clock.advance(seconds)
        now = self.clock.wall_now
        for key, deadline in list(self.model.deadlines.items()):
            if deadline <= now:
                del self.model[key]

    @precondition(lambda self: self.model.deadlines)
    @rule(data=st.data(), early=st.sampled_from([0.0, 1e-6]))
    def advance_to_a_deadline(self, data, early):
        """The clock to exactly a key's deadline (it expires), or a microsecond before (it
        lives): the writer, readers and reopens must agree to the last digit, whichever of
        them parsed the deadline from the record's text (the odd clock steps above make
        deadlines like 1800000013.5837002)."""
        target = data.draw(st.sampled_from(sorted(self.model.deadlines.values()))) - early
        if target > self.clock.wall_now:
            self.advance_clock(target - self.clock.wall_now)
            self.clock.wall_now = target  # exactly: the sum may miss it by an ulp
            self.advance_clock(0)

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
        merge.compact_directory(directory, segment_size=self.segment_size,
                                choose=lambda d, m: (start, stop) if m == current else None)
        self._expect_files_agree()

    @rule()
    def compact(self):
        """compact(): every sealed segment merged, from the oldest; no garbage is left."""
        result = self.store.compact()
        assert result["reclaimed_bytes"] >= 0
        assert garbage(str(self.path), self.clock.wall()) == []
        assert self.store.stats()["dead_bytes"] == 0
        self._expect_files_agree()

    @rule()
    def compact_all_if_reclaimable(self):
        """What `python -m pysos.compactor --once` and `pysos compact` run beside a writer: it
        merges unless the sealed segments hold nothing to drop, so then they hold nothing."""
        merge.compact_all(str(self.path), segment_size=self.segment_size)
        assert garbage(str(self.path), self.clock.wall()) == []
        self._expect_files_agree()

    @rule(max_merge=MERGE_BYTES)
    def background_merge(self, max_merge):
        """One wake-up of the writer's thread with a policy that merges any garbage: runs from
        the oldest segment merged from the index, later runs by a scan."""
        compactor = BackgroundCompactor(self.store._store, ratio=0.0, min_dead_bytes=0, max_merge_bytes=max_merge)
        try:
            compactor._compact_while_due(self.store._store)
        finally:
            compactor.stop()
        self._expect_files_agree()

    @rule(seconds=st.sampled_from([0, 0.5, 1, 10]), max_merge=MERGE_BYTES)
    def background_merge_at_the_default_policy(self, seconds, max_merge):
        """The clock moves, then one wake-up of the writer's thread at its default policy:
        in a store this small, only the drop of the oldest segments in which nothing is
        live (plan.dead_prefix, whatever the floor) can happen, and it must lose nothing."""
        self.advance_clock(seconds) if seconds else None
        compactor = BackgroundCompactor(self.store._store, max_merge_bytes=max_merge)
        try:
            compactor._compact_while_due(self.store._store)
        finally:
            compactor.stop()
        self._expect_files_agree()

    @rule(seconds=st.sampled_from([0.5, 1, 10]), max_merge=MERGE_BYTES)
    def background_merge_before_the_writer_looks(self, seconds, max_merge):
        """The clock moves and the writer's thread merges before the writer's next operation:
        the index it merges from still holds the keys that expired meanwhile."""
        self.advance_clock(seconds)
        self.background_merge(max_merge)

    @rule(key=FEW_KEYS | dict_keys, value=json_values, ttl=st.sampled_from([0.5, 1, 5]), max_merge=MERGE_BYTES)
    def expire_among_garbage_then_background_merge(self, key, value, ttl, max_merge):
        """An expiring record sealed beside garbage (an overwritten record), its deadline
        passed, and the writer's thread merging before the writer looks: the merge (from
        the index, which still points at the record) must drop it."""
        self.set_expiring(key, value, ttl)
        for n in range(3):
            self._set_plain("churn", n)
            self.model["churn"] = n
        self.store._store.seal()
        self.background_merge_before_the_writer_looks(ttl, max_merge)

    @rule(key=dict_keys, value=json_values, ttl=st.sampled_from([0.5, 1, 5]),
          how=st.sampled_from(["daemon", "compact_all", "background"]), max_merge=MERGE_BYTES)
    def expiry_as_the_only_garbage(self, key, value, ttl, how, max_merge):
        """A store without garbage, then an expiring record sealed and its deadline passed:
        each compactor's estimate must see that record as garbage and merge it away (the
        daemon's and compact_all's look at the files, the thread's at the writer's index)."""
        self.compact()
        self.set_expiring(key, value, ttl)
        self.store._store.seal()
        self.advance_clock(ttl)
        if how == "daemon":
            self.daemon_merge(max_merge)
        elif how == "compact_all":
            self.compact_all_if_reclaimable()
        else:
            assert key not in self.store  # the writer looks (an idle one has not: its thread sees no garbage yet)
            self.background_merge(max_merge)
            assert garbage(str(self.path), self.clock.wall()) == []

    @rule(seconds=st.sampled_from([1, 10]), max_merge=MERGE_BYTES)
    def wall_clock_steps_then_background_merge(self, seconds, max_merge):
        """The wall clock steps forward (monotonic time does not), and the writer's thread
        merges before the writer notices the step (its next look, within a second): the merge
        drops what expired by its clock, and the writer must forget those keys when it adopts
        the merge (their records are gone), while keys it still indexes read as before."""
        self.clock.step_wall(seconds)
        before = dict(self.model)
        compactor = BackgroundCompactor(self.store._store, ratio=0.0, min_dead_bytes=0, max_merge_bytes=max_merge)
        try:
            compactor._compact_while_due(self.store._store)
        finally:
            compactor.stop()
        for key in list(before):
            got = self.store.get(key, MISSING)
            assert got is MISSING or got == before[key], (key, got, before[key])
        self.clock.mono_now += 1.0  # the writer's next look sees the step
        self.advance_clock(0)

    @rule(max_merge=MERGE_BYTES)
    def daemon_merge(self, max_merge):
        """The daemon's looks with a policy that merges any garbage, until it finds the store
        not due: then no segment it may still merge holds an expired record."""
        if self.watch is None:
            self.watch = StoreWatch(str(self.path), "dict")
        policy = plan.Policy(ratio=0.0, min_dead_bytes=0, max_merge_bytes=max_merge)
        for _ in range(20):
            if self.watch.compact_if_due(policy, self.segment_size, lambda n: None) is None:
                break
        else:
            pytest.fail("the daemon still finds the store due after 20 merges")
        now = self.clock.wall()
        expired = [(name, key) for name, kind, key, line in garbage(str(self.path), now)
                   if kind == record.SET and record.expiry_of(line) is not None]
        assert expired == [], "the daemon's estimate does not see these expired records as garbage"
        self._expect_files_agree()

    @rule()
    def fresh_reader_agrees(self):
        with pysos.Dict(self.path, readonly=True) as fresh:
            assert dict(fresh.items()) == self.model and len(fresh) == len(self.model)


class ExpiringDictModel(ExpiryRules, DictModel):
    """The whole Dict model (every dict operation, batches) with expiring writes mixed in."""

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


class ExpiryCompactionModel(ExpiryRules, StoreMachine):
    """Few keys, plain and expiring writes, deletes, seals, clock moves and every kind of
    merge: the focused proof that dropping an expired record is safe exactly when no older
    segment holds its key (else a tombstone stands in), across reopens and readers."""

    store_class = pysos.Dict

    def reader_contents(self):
        return dict(self.reader.items())

    @rule(ttl=st.sampled_from([None, 0.5, 2, 30]))
    def reopen_with_default(self, ttl):
        """The store reopened with ``expire=ttl`` (``d[k] = v`` then expires: its own inline path)."""
        self.store.close()
        self.store = None
        self.default_ttl = ttl
        self._open()

    @rule(key=FEW_KEYS | dict_keys, value=json_values)
    def set_default(self, key, value):
        """``d[k] = v``: the store's default expiry, if it has one (deadlines in order, mostly)."""
        self.store[key] = value
        self.model[key] = value  # (forgets an older deadline)
        if self.default_ttl is not None:
            self.model.deadlines[key] = self.clock.wall_now + self.default_ttl

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert dict(self.store.items()) == self.model and len(self.store) == len(self.model)


def test_expiring_dict_matches_model():
    """With expiring writes and a controlled clock, a Dict (and readers) match a model that drops keys at their deadline, across reopen, rotation, batches and every compactor's merges (each checked record by record)."""
    run_state_machine_as_test(ExpiringDictModel, settings=EXPIRY_RUN)
    assert_merges_were_checked(ExpiringDictModel)


def test_expired_records_compact_away_safely():
    """Merging any run, by any compactor, after keys expired never brings an older value back (reopen, readers), and writes a tombstone exactly where an older segment holds the key."""
    run_state_machine_as_test(ExpiryCompactionModel, settings=EXPIRY_RUN)
    assert_merges_were_checked(ExpiryCompactionModel)


def assert_merges_were_checked(machine):
    """The run made (and checked) merges: a model whose merges never happen proves nothing."""
    assert machine.merges_checked > 50, machine.merges_checked


@pytest.mark.soak
def test_expired_records_compact_away_safely_soak():
    """The compaction model, longer and with fresh random examples when PYSOS_SOAK_MODEL_EXAMPLES is set (default: a short derandomized run)."""
    examples = os.environ.get("PYSOS_SOAK_MODEL_EXAMPLES")
    run_state_machine_as_test(ExpiryCompactionModel, settings=settings(
        EXPIRY_RUN, max_examples=int(examples or 5), stateful_step_count=80, derandomize=examples is None))
