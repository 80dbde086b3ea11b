"""Fixtures for the command-line tests: small real stores, closed before use so that a
subprocess may take their writer lock."""

import pytest

import pysos
from cli_helpers import EVENTS, USERS


@pytest.fixture
def dict_store(tmp_path):
    """A Dict store holding USERS (closed: the subprocess may take the writer lock)."""
    path = tmp_path / "users"
    with pysos.Dict(path) as d:
        d.update(USERS)
    return path


@pytest.fixture
def list_store(tmp_path):
    """A List store holding EVENTS (closed)."""
    path = tmp_path / "events"
    with pysos.List(path) as items:
        items.extend(EVENTS)
    return path
