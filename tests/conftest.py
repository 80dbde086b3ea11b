"""Fixtures shared by the whole suite."""

import pytest


@pytest.fixture
def store_path(tmp_path):
    """A path (not yet created) where a test may open a store."""
    return tmp_path / "store"


@pytest.fixture(params=["flush", "fsync"])
def durability(request):
    """Each durability mode DESIGN.md offers."""
    return request.param
