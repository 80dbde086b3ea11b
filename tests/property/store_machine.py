"""The part of the Dict and List model machines that does not depend on the kind of store:
open (with a segment size that makes segments rotate), a reader opened at the start,
reopen, compact, teardown."""

import shutil
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule


class StoreMachine(RuleBasedStateMachine):
    """Drives ``store_class`` side by side with ``self.model`` (a plain dict or list)."""

    store_class = None  # pysos.Dict or pysos.List
    durability = "flush"

    def __init__(self):
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix=f"pysos-{self.store_class.__name__.lower()}-model-")
        self.path = self.tmp + "/store"
        self.model = self.new_model()
        self.store = None
        self.reader = None

    def new_model(self):
        raise NotImplementedError

    def reader_contents(self):
        raise NotImplementedError

    def _open(self):
        self.store = self.store_class(self.path, durability=self.durability, segment_size=self.segment_size)

    @initialize(segment_size=st.sampled_from([256, 256, 4096, 64 * 2**20]))
    def open_store(self, segment_size):
        self.segment_size = segment_size
        self._open()
        self.reader = self.store_class(self.path, readonly=True)

    def teardown(self):
        if self.store is not None:
            self.store.close()
        if self.reader is not None:
            self.reader.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    @rule()
    def reader_agrees(self):
        """A readonly handle opened at the start sees every write that has returned."""
        assert len(self.reader) == len(self.model)
        assert self.reader_contents() == self.model

    @rule()
    def reopen(self):
        self.store.close()
        self.store = None
        self._open()

    @rule()
    def compact(self):
        result = self.store.compact()
        assert isinstance(result, dict)
        assert result["reclaimed_bytes"] >= 0


_COMMON = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
# The run lengths both model tests use: a longer one in "flush" mode, a shorter one with fsync.
FLUSH_RUN = settings(max_examples=30, stateful_step_count=35, **_COMMON)
FSYNC_RUN = settings(max_examples=8, stateful_step_count=25, **_COMMON)
