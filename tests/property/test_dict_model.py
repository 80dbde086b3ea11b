"""pysos.Dict behaves like a plain dict, step by step, across reopens, rotations,
compactions and batches (hypothesis stateful test against a model dict)."""


import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import pysos
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
