"""The MANIFEST records each sealed segment's size, so a cut at a line boundary is caught."""

import os

import pytest

import pysos
from pysos.segments import manifest


def _store_with_sealed_segments(path):
    with pysos.Dict(path, segment_size=300, autocompact=False) as d:
        for i in range(40):
            d[f"k{i}"] = i
    return manifest.read(str(path))


def test_sealed_segment_cut_at_a_line_end_is_corruption(tmp_path):
    """Dropping whole last lines of a sealed segment (no torn bytes) is refused, not silently lost."""
    current = _store_with_sealed_segments(tmp_path)
    victim = tmp_path / current.segments[1]
    data = victim.read_bytes()
    cut = data.rstrip(b"\n").rfind(b"\n") + 1  # drop the last whole line
    victim.write_bytes(data[:cut])
    with pytest.raises(pysos.CorruptionError, match=current.segments[1]):
        pysos.Dict(tmp_path)
    problems = pysos.check(tmp_path)
    assert any(p["file"] == current.segments[1] and p["severity"] == "error" for p in problems)


def test_sealed_segment_that_grew_is_corruption(tmp_path):
    """Bytes appended to a sealed segment (only the newest may grow) are refused."""
    current = _store_with_sealed_segments(tmp_path)
    with open(tmp_path / current.segments[0], "ab") as f:
        f.write(b'{"c":"00000000","k":"x","d":1}\n')
    with pytest.raises(pysos.CorruptionError, match="MANIFEST says"):
        pysos.Dict(tmp_path, readonly=True)


def test_sizes_follow_rotation_and_compaction(tmp_path):
    """After rotations and a compaction, every recorded size equals the file's size."""
    with pysos.Dict(tmp_path, segment_size=200, autocompact=False) as d:
        for i in range(60):
            d[f"k{i % 7}"] = i
        d.compact()
        for i in range(20):
            d[f"n{i}"] = i
    current = manifest.read(str(tmp_path))
    for name, size in zip(current.segments, current.sealed_sizes):
        assert os.path.getsize(tmp_path / name) == size
