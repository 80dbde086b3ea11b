"""Permissions (DESIGN.md, "In the field"): new segment, hint and MANIFEST files take the
mode of the store's existing files, through rotations, compactions and repairs."""

from __future__ import annotations

import os
import stat

import pytest

import pysos
from pysos.compactor.daemon import main as daemon_main


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(path) -> dict[str, int]:
    """name -> permission bits of the store's data files (segments, hints, MANIFEST)."""
    return {
        name: stat.S_IMODE(os.lstat(os.path.join(path, name)).st_mode)
        for name in os.listdir(path)
        if name == "MANIFEST" or name.endswith((".jsonl", ".hint"))
    }


def _make_private(path, mode):
    for name in os.listdir(path):
        if os.path.isfile(os.path.join(path, name)):
            os.chmod(os.path.join(path, name), mode)


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o660], ids=oct)
def test_new_files_keep_the_stores_mode(store_path, umask_022, mode):
    """After the owner chmods a store, rotations, compactions (thread, compact(), daemon) and
    repair create files with the same mode, never 0644 & ~umask."""
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        d["a"] = "x" * 50
    _make_private(store_path, mode)
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        for i in range(60):
            d[f"k{i % 7}"] = "v" * 50  # rotations: new segments and MANIFESTs
        assert set(_modes(store_path).values()) == {mode}
        d.compact()  # outputs, their hints, MANIFESTs
    assert set(_modes(store_path).values()) == {mode}
    with pysos.Dict(store_path, segment_size=300) as d:
        compactor = d._store.compactor
        compactor.ratio, compactor.min_dead_bytes = 0.0, 0
        for i in range(60):
            d[f"k{i % 7}"] = "w" * 50
    assert daemon_main([str(store_path), "--once", "--segment-size", "4096"]) == 0
    assert set(_modes(store_path).values()) == {mode}
    pysos.repair(store_path)
    modes = _modes(store_path)
    assert len(modes) >= 3 and set(modes.values()) == {mode}, modes


def test_a_new_store_uses_the_umask(store_path, umask_022):
    """A store created from nothing gets 0644 & ~umask, as before."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    assert set(_modes(store_path).values()) == {0o644}
