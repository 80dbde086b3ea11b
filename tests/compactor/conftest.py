"""Fixtures of the compactor tests.

Compaction tests rotate and swap MANIFESTs hundreds of times, each with fsyncs; on tmpfs
(``/dev/shm``, when there is one) an fsync costs nothing, which keeps this part of the
suite fast. Nothing here tests power loss: SIGKILL keeps the page cache either way.
"""

import os
import shutil
import tempfile

import pytest

_SHM = "/dev/shm"


@pytest.fixture
def fast_tmp(tmp_path):
    """A fresh directory on tmpfs if available (else pytest's tmp_path); removed afterwards."""
    if not (os.path.isdir(_SHM) and os.access(_SHM, os.W_OK)):
        yield tmp_path
        return
    path = tempfile.mkdtemp(prefix="pysos-compactor-", dir=_SHM)
    try:
        from pathlib import Path

        yield Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store_path(fast_tmp):
    """A path (not yet created) where a test may open a store."""
    return fast_tmp / "store"
