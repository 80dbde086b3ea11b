"""Fixtures shared by the whole suite."""

import signal

import pytest

from fake_clock import FakeClock

# A suite started in the background by a non-interactive shell (`pytest &`, some CI runners)
# inherits SIGINT ignored, and so would every process a test starts: Python then installs no
# KeyboardInterrupt handler, and a test's Ctrl-C (SIGINT to a `pysos import`) is silently
# dropped. A terminal's Ctrl-C reaches a process whose SIGINT is not ignored: give the tests that.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def store_path(tmp_path):
    """A path (not yet created) where a test may open a store."""
    return tmp_path / "store"


@pytest.fixture(params=["flush", "fsync"])
def durability(request):
    """Each durability mode DESIGN.md offers."""
    return request.param


@pytest.fixture
def clock():
    """A FakeClock in place of every clock pysos's expiry reads, for the test (the real ones put back after)."""
    fake = FakeClock()
    restore = fake.install()
    yield fake
    restore()
