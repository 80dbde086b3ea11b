"""pysos.List behaves like a plain list, step by step, across reopens, rotations,
compactions and batches (hypothesis stateful test against a model list)."""

import json

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
from strategies import json_values, same_json


class Abort(Exception):
    """Raised inside a batch to make it roll back."""


SORT_KEYS = {
    "type": lambda v: type(v).__name__,          # many ties: checks stability
    "len_mod_3": lambda v: len(json.dumps(v)) % 3,  # many ties: checks stability
    "json": lambda v: json.dumps(v, sort_keys=True),
}

small_values = st.lists(json_values, max_size=5)


def outcome(fn):
    """Run fn and return ("ok", result) or ("raise", exception type)."""
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - comparing behaviour with list's
        return ("raise", type(exc))


class ListModel(StoreMachine):
    """A pysos.List driven side by side with a list."""

    store_class = pysos.List

    def new_model(self):
        return []

    def reader_contents(self):
        return list(self.reader)

    def both(self, fn, compare_result=True):
        """Apply fn to the model and the store: same result, or the same exception type."""
        want = outcome(lambda: fn(self.model))
        got = outcome(lambda: fn(self.store))
        if want[0] == "raise" or not compare_result:
            assert got[0] == want[0] and (got[0] == "ok" or got[1] is want[1]), (want, got)
        else:
            assert got[0] == "ok", got
            assert same_json(got[1], want[1]), (got[1], want[1])

    def _index(self, data):
        n = len(self.model)
        return data.draw(st.one_of(st.integers(-n - 3, n + 3), st.sampled_from([-10**9, 10**9])))

    def _slice(self, data):
        n = len(self.model)
        bound = st.one_of(st.integers(-n - 3, n + 3), st.none())
        step = st.sampled_from([None, 2, -1, 1, -2, 3, -3, 0])
        return slice(data.draw(bound), data.draw(bound), data.draw(step))

    def _some_value(self, data):
        if self.model and data.draw(st.booleans()):
            return data.draw(st.sampled_from(self.model))
        return data.draw(json_values)

    @rule(value=json_values)
    def append(self, value):
        self.both(lambda l: l.append(value))

    @rule(values=small_values, form=st.sampled_from(["list", "tuple", "iter"]))
    def extend(self, values, form):
        make = {"list": list, "tuple": tuple, "iter": iter}[form]
        self.both(lambda l: l.extend(make(values)))

    @rule(data=st.data(), value=json_values)
    def insert(self, data, value):
        i = self._index(data)
        self.both(lambda l: l.insert(i, value))

    @rule()
    def pop_last(self):
        self.both(lambda l: l.pop())

    @rule(data=st.data())
    def pop_at(self, data):
        i = self._index(data)
        self.both(lambda l: l.pop(i))

    @rule(data=st.data())
    def remove(self, data):
        value = self._some_value(data)
        self.both(lambda l: l.remove(value))

    @rule(data=st.data())
    def get_item(self, data):
        i = self._index(data)
        self.both(lambda l: l[i])

    @rule(data=st.data(), value=json_values)
    def set_item(self, data, value):
        i = self._index(data)

        def op(l):
            l[i] = value
        self.both(op)

    @rule(data=st.data())
    def del_item(self, data):
        i = self._index(data)

        def op(l):
            del l[i]
        self.both(op)

    @rule(data=st.data())
    def get_slice(self, data):
        s = self._slice(data)
        self.both(lambda l: list(l[s]))

    @rule(data=st.data(), values=small_values, as_tuple=st.booleans())
    def set_slice(self, data, values, as_tuple):
        s = self._slice(data)
        if data.draw(st.booleans()):
            # make the length right for an extended slice half of the time
            try:
                n = len(range(*s.indices(len(self.model))))
                values = (values * (n + 1))[:n] if values else [None] * n
            except ValueError:
                pass  # step 0: list raises ValueError, so must the store

        def op(l):
            l[s] = tuple(values) if as_tuple else list(values)
        self.both(op)

    @rule(data=st.data())
    def del_slice(self, data):
        s = self._slice(data)

        def op(l):
            del l[s]
        self.both(op)

    @rule()
    def reverse(self):
        self.both(lambda l: l.reverse())

    @rule(key=st.sampled_from(sorted(SORT_KEYS)), reverse=st.booleans())
    def sort_with_key(self, key, reverse):
        self.both(lambda l: l.sort(key=SORT_KEYS[key], reverse=reverse))

    @precondition(lambda self: all(isinstance(v, (int, float)) for v in self.model)
                  or all(isinstance(v, str) for v in self.model))
    @rule(reverse=st.booleans())
    def sort_plain(self, reverse):
        self.both(lambda l: l.sort(reverse=reverse))

    @rule(values=small_values)
    def iadd(self, values):
        before = self.store
        self.store += values
        self.model += values
        assert self.store is before

    @rule(data=st.data())
    def index_and_count(self, data):
        value = self._some_value(data)
        self.both(lambda l: l.index(value))
        start, stop = self._index(data), self._index(data)
        self.both(lambda l: l.index(value, start))
        self.both(lambda l: l.index(value, start, stop))
        self.both(lambda l: l.count(value))
        self.both(lambda l: value in l)

    @rule(roll=st.integers(0, 9))
    def clear(self, roll):
        if roll != 7:  # rare: a clear wipes the state the other rules work on
            return
        self.both(lambda l: l.clear())

    @rule(data=st.data(), n_ops=st.integers(1, 6))
    def batch(self, data, n_ops):
        pending = list(self.model)
        with self.store.batch():
            for _ in range(n_ops):
                kind = data.draw(st.sampled_from(["append", "insert", "set", "del"]))
                value = data.draw(json_values)
                if kind == "append" or not pending:
                    self.store.append(value)
                    pending.append(value)
                    continue
                i = data.draw(st.integers(-len(pending), len(pending) - 1))
                if kind == "insert":
                    self.store.insert(i, value)
                    pending.insert(i, value)
                elif kind == "set":
                    self.store[i] = value
                    pending[i] = value
                else:
                    del self.store[i]
                    del pending[i]
        self.model = pending

    @rule(values=small_values, clear_too=st.booleans())
    def batch_that_raises(self, values, clear_too):
        with pytest.raises(Abort):
            with self.store.batch():
                self.store.extend(values)
                if self.model:
                    self.store[0] = "changed in an aborted batch"
                    del self.store[-1]
                self.store.insert(0, "inserted in an aborted batch")
                if clear_too:
                    self.store.clear()
                raise Abort()

    @precondition(lambda self: self.store is not None)
    @invariant()
    def same_contents(self):
        assert len(self.store) == len(self.model)
        got = list(self.store)
        assert len(got) == len(self.model)
        for i, (a, b) in enumerate(zip(got, self.model)):
            assert same_json(a, b), (i, a, b)
        assert self.store == self.model
        assert list(reversed(self.store)) == self.model[::-1]


class FsyncListModel(ListModel):
    durability = "fsync"


def test_list_matches_model_flush():
    """A List with durability="flush" matches a list after every step (incl. reopen, rotation, compact, batch)."""
    run_state_machine_as_test(
        ListModel, settings=FLUSH_RUN)


def test_list_matches_model_fsync():
    """A List with durability="fsync" matches a list after every step (shorter run)."""
    run_state_machine_as_test(
        FsyncListModel, settings=FSYNC_RUN)
