"""Dict and List match a plain dict/list step by step while the writer's background thread
compacts after nearly every rotation (hypothesis stateful tests, tiny thresholds)."""

import shutil
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test

import pysos
from compactor_util import unexpected_files
from strategies import apply_batch, dict_keys, same_json

_SHM = "/dev/shm"
# Light values: the value space is the property suite's job; this one is about compaction.
values = st.one_of(st.none(), st.integers(-10**6, 10**6), st.text(max_size=8),
                   st.lists(st.integers(0, 9), max_size=3))


def _tmpdir(prefix):
    try:
        return tempfile.mkdtemp(prefix=prefix, dir=_SHM)
    except OSError:
        return tempfile.mkdtemp(prefix=prefix)


class _Autocompacting(RuleBasedStateMachine):
    """Opens the store with autocompact=True and a compactor that merges any garbage at once."""

    cls = None

    def __init__(self):
        super().__init__()
        self.tmp = _tmpdir("pysos-autocompact-")
        self.path = self.tmp + "/store"
        self.store = None

    def _open(self):
        self.store = self.cls(self.path, segment_size=self.segment_size, autocompact=True)
        compactor = self.store._store.compactor
        compactor.ratio, compactor.min_dead_bytes, compactor.max_merge_bytes = 0.0, 0, self.max_merge

    @initialize(segment_size=st.sampled_from([200, 512, 2048]), max_merge=st.sampled_from([600, 4096, 2**20]))
    def open_store(self, segment_size, max_merge):
        self.segment_size, self.max_merge = segment_size, max_merge
        self._open()

    @rule()
    def reopen(self):
        self.store.close()
        assert unexpected_files(self.path) == []  # a stopped merge deleted its outputs
        self._open()

    @rule()
    def compact(self):
        assert self.store.compact()["reclaimed_bytes"] >= 0

    @rule()
    def stats_report_the_last_compaction(self):
        stats = self.store.stats()
        last = stats["last_compaction"]
        assert last is None or last["reclaimed_bytes"] >= 0
        assert stats["disk_bytes"] >= stats["live_bytes"] >= 0

    def teardown(self):
        if self.store is not None:
            self.store.close()
            assert unexpected_files(self.path) == []
        shutil.rmtree(self.tmp, ignore_errors=True)


class DictAutocompact(_Autocompacting):
    cls = pysos.Dict

    def __init__(self):
        super().__init__()
        self.model = {}

    def _key(self, data):
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(sorted(self.model, key=repr)))
        return data.draw(dict_keys)

    @rule(key=dict_keys, value=values, pad=st.integers(0, 300))
    def set_item(self, key, value, pad):
        value = [value, "p" * pad]
        self.store[key] = value
        self.model[key] = value

    @rule(data=st.data())
    def del_item(self, data):
        key = self._key(data)
        assert same_json(self.store.pop(key, "absent"), self.model.pop(key, "absent"))

    @rule(ops=st.lists(st.tuples(st.booleans(), dict_keys, values), min_size=1, max_size=8))
    def batch(self, ops):
        self.model = apply_batch(self.store, self.model, ops)

    @rule(data=st.data())
    def get_item(self, data):
        key = self._key(data)
        assert same_json(self.store.get(key, "absent"), self.model.get(key, "absent"))

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert len(self.store) == len(self.model)
        got = dict(self.store.items())
        assert got.keys() == self.model.keys()
        for key, value in got.items():
            assert same_json(value, self.model[key])


class ListAutocompact(_Autocompacting):
    cls = pysos.List

    def __init__(self):
        super().__init__()
        self.model = []

    @rule(value=st.integers(-1000, 10**6), pad=st.integers(0, 300))
    def append(self, value, pad):
        self.store.append([value, "p" * pad])
        self.model.append([value, "p" * pad])

    @rule(data=st.data(), value=st.integers(-1000, 10**6))
    def insert(self, data, value):
        at = data.draw(st.integers(-len(self.model) - 1, len(self.model) + 1))
        self.store.insert(at, value)
        self.model.insert(at, value)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), value=st.integers(-1000, 10**6))
    def set_item(self, data, value):
        at = data.draw(st.integers(0, len(self.model) - 1))
        self.store[at] = value
        self.model[at] = value

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def pop(self, data):
        at = data.draw(st.integers(0, len(self.model) - 1))
        assert self.store.pop(at) == self.model.pop(at)

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert list(self.store) == self.model


SETTINGS = settings(max_examples=20, stateful_step_count=40, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))


def test_dict_matches_model_with_background_compaction():
    """A Dict whose background thread compacts at every rotation still matches a dict at every step."""
    run_state_machine_as_test(DictAutocompact, settings=SETTINGS)


def test_list_matches_model_with_background_compaction():
    """A List whose background thread compacts at every rotation still matches a list at every step."""
    run_state_machine_as_test(ListAutocompact, settings=SETTINGS)


@pytest.mark.parametrize("rounds", [3])
def test_background_thread_reclaims_and_reports(store_path, rounds):
    """With tiny thresholds the writer's thread compacts on its own, and stats() reports the
    last compaction's reclaimed bytes; the directory stays clean and the data intact."""
    model = {}
    with pysos.Dict(store_path, segment_size=512, autocompact=True) as d:
        compactor = d._store.compactor
        compactor.ratio, compactor.min_dead_bytes = 0.0, 0
        for r in range(rounds):
            for i in range(300):
                d[f"k{i % 20}"] = {"r": r, "i": i, "pad": "x" * 40}
                model[f"k{i % 20}"] = {"r": r, "i": i, "pad": "x" * 40}
        deadline_ops = 0
        while d.stats()["last_compaction"] is None:  # the thread runs on its own schedule
            d["tick"] = deadline_ops
            model["tick"] = deadline_ops
            deadline_ops += 1
            assert deadline_ops < 100_000
        last = d.stats()["last_compaction"]
        assert last["reclaimed_bytes"] > 0 and last["segments_in"] > 0
        assert last["total_reclaimed_bytes"] >= last["reclaimed_bytes"] and last["compactions"] >= 1
        assert dict(d.items()) == model
    assert unexpected_files(store_path) == []


def test_background_does_not_rewrite_needed_tombstones_in_a_loop(store_path):
    """Deletes that older segments still need (bounded merges of one segment) make some
    merges fruitless; the thread then moves on, and repeated looks reach zero garbage
    instead of rewriting the same tombstones forever."""
    from pysos.compactor.background import _MAX_ROUNDS, BackgroundCompactor

    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        keys = [f"key-{i:05d}-" + "k" * 40 for i in range(800)]
        for i, key in enumerate(keys):
            d[key] = i
        for key in keys[::3]:
            del d[key]
        d._store.seal()
        compactor = BackgroundCompactor(d._store, ratio=0.0, min_dead_bytes=0, max_merge_bytes=4096)
        try:
            for _ in range(10):
                before = compactor.compactions
                compactor._compact_while_due(d._store)  # what one wake-up of the thread does
                if compactor.compactions == before:
                    break
            else:
                pytest.fail(f"still compacting after 10 wake-ups ({compactor.compactions} merges)")
            assert compactor.compactions < 4 * _MAX_ROUNDS
            assert d.stats()["dead_bytes"] == 0
            assert dict(d.items()) == {key: i for i, key in enumerate(keys) if i % 3}
        finally:
            compactor.stop()
