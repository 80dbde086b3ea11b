"""Real ENOSPC: the store lives on a tiny tmpfs that pysos (and a filler file) fill up.

Each test checks: the call that hits ENOSPC raises OSError(ENOSPC) and changes nothing,
every earlier acknowledged change reads back (also after reopen), no partial record is
left, and once space is freed writing resumes and leftovers are gone.
Needs root (mount); skipped, with the reason, where mounting is not permitted.
"""

import errno
import os
import random
import subprocess

import pytest

import pysos
from pysos.segments import locks, manifest

from faultfs import lock_is_free, reopen_equals, segments_whole, stray_files


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs mounted for this test, unmounted afterwards."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                                capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if result.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {result.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill_up(directory, name="filler", max_bytes=None):
    """Write a filler file until the file system is full (or max_bytes); return its path."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    written = 0
    try:
        for chunk in (65536, 4096, 512, 1):
            while max_bytes is None or written + chunk <= max_bytes:
                try:
                    written += os.write(fd, b"f" * chunk)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC
                    break
    finally:
        os.close(fd)
    return path


@pytest.mark.parametrize("durability", ["flush", "fsync"])
def test_fill_the_disk_through_pysos(tiny_fs, durability):
    """Writing until the tmpfs is full: the failing call raises ENOSPC and is absent, every earlier write reads back (also after reopen, even while the disk is still full), no partial record is left, and writes resume once a filler file is deleted."""
    filler = fill_up(tiny_fs, max_bytes=64 * 1024)
    path = tiny_fs / "store"
    rng = random.Random(5)
    model = {}
    with pysos.Dict(path, durability=durability, autocompact=False, segment_size=2**24) as d:
        for i in range(5000):
            key, value = f"key{i}", "v" * rng.randrange(100, 3000)
            try:
                d[key] = value
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                failed = key
                break
            model[key] = value
        else:
            pytest.fail("the file system never filled up")
        assert failed not in d
        assert dict(d.items()) == model
        assert segments_whole(path) == []
    assert segments_whole(path) == []
    with pysos.Dict(path, readonly=True) as r:  # the disk is still full
        assert dict(r.items()) == model
    reopen_equals(path, model)                   # the writer opens on a full disk too
    os.unlink(filler)
    with pysos.Dict(path, durability=durability, autocompact=False) as d:
        for i in range(20):
            d[f"more{i}"] = "m" * 500
            model[f"more{i}"] = "m" * 500
        assert dict(d.items()) == model
    reopen_equals(path, model)
    assert stray_files(path) == []


def test_enospc_during_rotation(tiny_fs):
    """When the disk fills just as a segment rotates (the new MANIFEST cannot be written), every call either raises ENOSPC and is absent or returns and is kept, the MANIFEST names only existing segments, and after freeing space the rotation happens and reopen leaves no leftovers."""
    path = tiny_fs / "store"
    segment_size = 2 * 4096 + 2000
    model = {}
    d = pysos.Dict(path, autocompact=False, segment_size=segment_size)
    try:
        i = 0
        while os.path.getsize(path / manifest.read(os.fspath(path)).segments[-1]) < 2 * 4096 + 100:
            d[f"a{i}"] = "x" * 60
            model[f"a{i}"] = "x" * 60
            i += 1
        segments_before = d.stats()["segments"]
        filler = fill_up(tiny_fs)
        raised = 0
        for j in range(60):  # 60 * ~45 bytes: crosses segment_size within the current page
            key = f"b{j}"
            try:
                d[key] = j
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                assert key not in d
                raised += 1
            else:
                model[key] = j
        assert dict(d.items()) == model
        current = manifest.read(os.fspath(path))
        assert all((path / name).exists() for name in current.segments)
        assert d.stats()["segments"] == segments_before, "a rotation succeeded on a full disk?"
        os.unlink(filler)
        for j in range(60, 120):
            d[f"b{j}"] = j
            model[f"b{j}"] = j
        assert d.stats()["segments"] > segments_before, "the rotation never happened"
        assert dict(d.items()) == model
    finally:
        d.close()
    reopen_equals(path, model)
    assert stray_files(path) == []
    assert pysos.check(path) == []


def test_enospc_during_compaction(tiny_fs):
    """A compaction whose outputs cannot be written (disk full) raises ENOSPC, frees its compaction lock, leaves the store unchanged and usable and its partial outputs removed; after freeing space it compacts."""
    path = tiny_fs / "store"
    model = {}
    d = pysos.Dict(path, autocompact=False, segment_size=6000)
    try:
        for round_ in range(4):
            for i in range(60):
                d[f"k{i}"] = {"round": round_, "pad": "p" * 200}
                model[f"k{i}"] = {"round": round_, "pad": "p" * 200}
        d._store.seal()
        names_before = sorted(os.listdir(path))
        filler = fill_up(tiny_fs)
        with pytest.raises(OSError) as info:
            d.compact()
        assert info.value.errno == errno.ENOSPC
        assert lock_is_free(path, locks.COMPACT), "the compaction lock is still held"
        assert dict(d.items()) == model
        assert sorted(n for n in os.listdir(path) if not n.startswith("MANIFEST.")) == names_before
        os.unlink(filler)
        d["after"] = 1
        model["after"] = 1
        disk_before = d.stats()["disk_bytes"]
        d.compact()
        assert d.stats()["disk_bytes"] < disk_before
        assert dict(d.items()) == model
    finally:
        d.close()
    reopen_equals(path, model)
    assert stray_files(path) == []


def test_writes_resume_after_remount_bigger(tiny_fs):
    """After ENOSPC, growing the file system (mount -o remount,size=1m) lets the same open handle write again."""
    path = tiny_fs / "store"
    model = {}
    with pysos.Dict(path, autocompact=False) as d:
        for i in range(5000):
            try:
                d[f"k{i}"] = "v" * 2000
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
            model[f"k{i}"] = "v" * 2000
        else:
            pytest.fail("the file system never filled up")
        result = subprocess.run(["mount", "-o", "remount,size=1m", str(tiny_fs)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        for i in range(5000, 5100):
            d[f"k{i}"] = "v" * 2000
            model[f"k{i}"] = "v" * 2000
        assert dict(d.items()) == model
    reopen_equals(path, model)
