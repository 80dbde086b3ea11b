"""The Dict model test (test_dict_model.DictModel) on a codec="tagged" store, with a rule that
writes values of the tagged types: every step still matches the model dict, exactly (types
included), across reopens (which name no codec: the recorded one decodes), rotations,
compactions, batches and the reader opened at the start."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule, run_state_machine_as_test

import pysos
from strategies import comparable_tagged_values, dict_keys, exact
from test_dict_model import DictModel

TAGGED_RUN = settings(max_examples=15, stateful_step_count=30, deadline=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))


class TaggedDictModel(DictModel):
    """A tagged Dict driven side by side with a dict; reopens pass no codec."""

    def _open(self):
        codec = "tagged" if self.store is None and not hasattr(self, "_created") else None
        self._created = True
        self.store = self.store_class(self.path, durability=self.durability, segment_size=self.segment_size,
                                      codec=codec)

    @rule(key=dict_keys, value=comparable_tagged_values)
    def set_tagged(self, key, value):
        self.store[key] = value
        self.model[key] = value

    @rule(items=st.lists(st.tuples(dict_keys, comparable_tagged_values), max_size=4))
    def update_tagged(self, items):
        self.store.update(items)
        self.model.update(items)

    @precondition(lambda self: self.store is not None)
    @invariant()
    def exactly_the_model(self):
        assert self.store.codec == "tagged"
        assert exact(dict(self.store.items())) == exact({k: self.model[k] for k in self.store})
        assert exact({k: self.reader[k] for k in self.model}) == exact(dict(self.model))


def test_tagged_dict_matches_model():
    """A codec="tagged" Dict matches a dict, types included, after every step (reopen, rotation, compact, batch)."""
    run_state_machine_as_test(TaggedDictModel, settings=TAGGED_RUN)
