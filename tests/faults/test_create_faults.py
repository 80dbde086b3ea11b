"""Faults when creating files (ENOSPC, EMFILE) go through the files layer and leave stores usable."""

import errno
import os

import pytest

import pysos
from pysos.compactor import merge
from pysos.segments import files, locks, manifest


def _failing(real, err):
    def create(path):
        raise OSError(err, os.strerror(err), path)
    return create


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EMFILE])
def test_rotation_that_cannot_create_its_segment_keeps_every_write(tmp_path, monkeypatch, err):
    """A write past segment_size whose new segment cannot be created still succeeds; rotation retries."""
    with pysos.Dict(tmp_path, segment_size=200, autocompact=False) as d:
        monkeypatch.setattr(files, "create_exclusive", _failing(files.create_exclusive, err))
        for i in range(20):
            d[f"k{i}"] = i  # each returns normally although rotation keeps failing
        assert d.stats()["segments"] == 1
        monkeypatch.undo()
        d["after"] = 1
        assert d.stats()["segments"] == 2
    with pysos.Dict(tmp_path, readonly=True) as r:
        assert dict(r.items()) == {**{f"k{i}": i for i in range(20)}, "after": 1}


@pytest.mark.parametrize("target", ["create_exclusive", "create_fresh"])
def test_compaction_that_cannot_create_outputs_or_hints_changes_nothing(tmp_path, monkeypatch, target):
    """A merge that cannot create an output segment (or its hint) raises, frees the lock, keeps the store."""
    with pysos.Dict(tmp_path, segment_size=256, autocompact=False) as d:
        for i in range(200):
            d[f"k{i % 20}"] = i
        model = dict(d.items())
        before = manifest.read(str(tmp_path))
        monkeypatch.setattr(files, target, _failing(getattr(files, target), errno.ENOSPC))
        with pytest.raises(OSError) as info:
            merge.compact_directory(str(tmp_path), segment_size=4096)
        assert info.value.errno == errno.ENOSPC
        monkeypatch.undo()
        assert manifest.read(str(tmp_path)) == before
        assert dict(d.items()) == model
        lock = locks.FileLock(str(tmp_path), locks.COMPACT)
        lock.acquire(timeout=0.0)
        lock.release()
        assert d.compact()["reclaimed_bytes"] > 0
        assert dict(d.items()) == model
