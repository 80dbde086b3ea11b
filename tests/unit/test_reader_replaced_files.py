"""A readonly handle whose MANIFEST is replaced by one naming some of the same segment
names, now leading to other files (a follower's ``--resync`` replacing its copy by another
store's): it reads the new files from scratch, never a mix of old and new."""

import os
import shutil

import pysos
from pysos.segments import manifest


def _build(path, prefix):
    """A store with sealed segments and a newest one, every key tagged with ``prefix``."""
    with pysos.Dict(path, segment_size=400, autocompact=False) as d:
        for i in range(30):
            d[f"k{i}"] = f"{prefix}-{i}-" + "p" * 30
        d[f"only-{prefix}"] = prefix
    return manifest.read(str(path))


def test_reader_rereads_when_a_name_it_holds_open_leads_to_another_file(tmp_path):
    """Files of store B renamed over store A's same-named ones, then B's MANIFEST: a reader
    opened on A, idle meanwhile, then sees exactly B (not A's records through its old fds)."""
    a, b = _build(tmp_path / "a", "a"), _build(tmp_path / "b", "b")
    assert set(a.segments) & set(b.segments), "the two stores share segment names"
    reader = pysos.Dict(tmp_path / "a", readonly=True)
    assert reader["only-a"] == "a"
    for name in b.segments:
        shutil.copy(tmp_path / "b" / name, tmp_path / "a" / (name + ".new"))
        os.replace(tmp_path / "a" / (name + ".new"), tmp_path / "a" / name)
    for name in os.listdir(tmp_path / "a"):
        if name.endswith(".hint"):
            os.unlink(tmp_path / "a" / name)
    shutil.copy(tmp_path / "b" / manifest.NAME, tmp_path / "a" / "MANIFEST.new")
    os.replace(tmp_path / "a" / "MANIFEST.new", tmp_path / "a" / manifest.NAME)
    with pysos.Dict(tmp_path / "b", readonly=True) as expected:
        assert dict(reader.items()) == dict(expected.items())
    assert "only-a" not in reader
    reader.close()
