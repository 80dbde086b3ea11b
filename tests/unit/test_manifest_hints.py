"""The MANIFEST (atomic, checksummed) and hint files (trusted only when they match)."""

import os

import pytest

from pysos.errors import CorruptionError, FormatError
from pysos.segments import files, hints, manifest
from pysos.segments.manifest import Manifest


def test_manifest_round_trips(tmp_path):
    """A written MANIFEST reads back equal, as one line of JSON."""
    m = Manifest("list", 7, ("seg-00000003.jsonl", "seg-00000009.jsonl"), (812,))
    manifest.write(str(tmp_path), m)
    assert manifest.read(str(tmp_path)) == m
    assert (tmp_path / "MANIFEST").read_bytes().count(b"\n") == 1


def test_manifest_swap_leaves_no_temp_file_and_changes_the_stamp(tmp_path):
    """Replacing the MANIFEST is a rename over it: no temp file stays, the stamp changes."""
    manifest.write(str(tmp_path), Manifest("dict", 1, ("seg-00000001.jsonl",), ()))
    before = manifest.stamp(str(tmp_path))
    manifest.write(str(tmp_path), Manifest("dict", 2, ("seg-00000002.jsonl",), ()))
    assert manifest.stamp(str(tmp_path)) != before
    assert sorted(os.listdir(tmp_path)) == ["MANIFEST"]
    assert manifest.read(str(tmp_path)).generation == 2


def test_a_failed_swap_keeps_the_old_manifest(tmp_path, monkeypatch):
    """If the rename fails, the old MANIFEST stays whole and the temp file is removed."""
    manifest.write(str(tmp_path), Manifest("dict", 1, ("seg-00000001.jsonl",), ()))

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "replace", broken_replace)
    with pytest.raises(OSError):
        manifest.write(str(tmp_path), Manifest("dict", 2, ("seg-00000002.jsonl",), ()))
    assert manifest.read(str(tmp_path)).generation == 1
    assert sorted(os.listdir(tmp_path)) == ["MANIFEST"]


def test_garbled_manifest_is_corruption(tmp_path):
    """A MANIFEST whose checksum fails, or that is cut short, raises CorruptionError."""
    manifest.write(str(tmp_path), Manifest("dict", 12, ("seg-00000001.jsonl",), ()))
    data = (tmp_path / "MANIFEST").read_bytes()
    (tmp_path / "MANIFEST").write_bytes(data.replace(b'"generation":12', b'"generation":13'))
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))
    (tmp_path / "MANIFEST").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))


def test_unknown_version_is_a_format_error(tmp_path):
    """A MANIFEST of a future format version raises FormatError naming the version."""
    (tmp_path / "MANIFEST").write_bytes(b'{"format":"pysos","version":99}\n')
    with pytest.raises(FormatError, match="99"):
        manifest.read(str(tmp_path))


def test_hint_round_trip_and_mismatch(tmp_path):
    """A hint reads back when it matches its segment's size, and is ignored when it does not."""
    hint = hints.Hint(["a", 2, None], [10, 20, 30], ["gone"])
    hints.write(str(tmp_path), "seg-00000001.jsonl", 123, hint, "seg-00000001.hint")
    path = str(tmp_path / "seg-00000001.hint")
    assert hints.read(path, "seg-00000001.jsonl", 123) == hint
    assert hints.read(path, "seg-00000001.jsonl", 124) is None
    assert hints.read(path, "seg-00000002.jsonl", 123) is None


def test_damaged_hint_is_ignored(tmp_path):
    """A hint with a flipped byte fails its checksum and is not used."""
    hints.write(str(tmp_path), "seg-00000001.jsonl", 5, hints.Hint(["a"], [1], []), "seg-00000001.hint")
    path = tmp_path / "seg-00000001.hint"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    assert hints.read(str(path), "seg-00000001.jsonl", 5) is None


def test_manifest_without_sealed_sizes_is_corruption(tmp_path):
    """Every sealed segment must have a recorded size; a MANIFEST missing one is refused."""
    bad = Manifest("dict", 3, ("seg-00000001.jsonl", "seg-00000002.jsonl"), ())
    (tmp_path / "MANIFEST").write_bytes(manifest.encode(bad))
    with pytest.raises(CorruptionError):
        manifest.read(str(tmp_path))


def test_rotation_and_compaction_keep_sizes_in_step():
    """rotated() records the sealed size; replace_run() swaps sizes with their segments."""
    a, b, c, d = (f"seg-0000000{i}.jsonl" for i in (1, 2, 3, 4))
    m = Manifest("dict", 1, (a,), (), 2).rotated(100, b).rotated(200, c)
    assert m.sealed_sizes == (100, 200) and m.size_of(c) is None and m.generation == 3
    merged = m.replace_run(0, 2, [d], [150])
    assert merged.segments == (d, c) and merged.sealed_sizes == (150,)
    with pytest.raises(ValueError):
        m.replace_run(1, 2, [d], [1])


def test_segment_numbers_never_go_back():
    """next_number only grows, even when a merge retires the highest-numbered segment."""
    m = Manifest("dict", 1, ("seg-00000001.jsonl",), (), 2).rotated(10, "seg-00000002.jsonl")
    m = m.rotated(10, "seg-00000003.jsonl")
    emptied = m.replace_run(1, 1, [], [])  # a merge that kept nothing of seg 2
    assert emptied.next_number == 4
    assert m.replace_run(0, 2, ["seg-00000007.jsonl"], [5]).next_number == 8
