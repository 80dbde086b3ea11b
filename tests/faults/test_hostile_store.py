"""Untrusted directory contents (DESIGN.md, "In the field"): a MANIFEST naming files outside
the store, links and FIFOs planted in it. Nothing pysos does reads, writes, truncates or
deletes outside the store, follows a link in it or blocks on a FIFO; check/repair report it."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest

import pysos
from pysos.compactor import merge
from pysos.compactor.daemon import main as daemon_main
from pysos.segments import files, manifest, segment

PRECIOUS = b"precious bytes that are not pysos's to touch\n"


def _store(path, n=60):
    """A Dict store with several sealed segments and garbage to compact; its MANIFEST."""
    with pysos.Dict(path, segment_size=300, autocompact=False) as d:
        for i in range(n):
            d[f"k{i % 10}"] = "v" * 40 + str(i)
    return manifest.read(str(path))


def _write_manifest(path, current, segments):
    """Replace the MANIFEST (with a valid checksum) by one naming ``segments``."""
    _put_manifest(path, dataclasses.replace(current, segments=tuple(segments)))


def _put_manifest(path, forged):
    """Rename a MANIFEST into place, as a writer (or an attacker with a copy tool) would."""
    (path / "forged").write_bytes(manifest.encode(forged))
    os.replace(path / "forged", path / manifest.NAME)


def _finishes(action, fifos, timeout=5.0):
    """Run ``action`` in a thread; False if it blocked (then the FIFOs are opened to free it)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = action()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        for fifo in fifos:
            os.close(os.open(fifo, os.O_RDWR | os.O_NONBLOCK))  # unblocks an open() waiting for a writer
        thread.join(timeout)
        return False, outcome
    return True, outcome


@pytest.fixture
def outside(tmp_path):
    """A directory beside the store holding files that must never change."""
    other = tmp_path / "other"
    other.mkdir()
    return other


def _bad_names(outside, first):
    return {
        "relative": f"../other/{first}",
        "absolute": str(outside / first),
        "newline": first + "\n",
        "unicode digits": "seg-\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668.jsonl",
    }


@pytest.mark.parametrize("kind", ["relative", "absolute", "newline", "unicode digits"])
def test_manifest_naming_a_file_outside_the_store_is_corruption(store_path, outside, kind):
    """A MANIFEST naming ../x, an absolute path or a malformed name: CorruptionError on every
    path (open, compact, daemon --once, repair), check reports it, nothing outside changes."""
    current = _store(store_path)
    first = current.segments[0]
    victim = outside / first
    victim.write_bytes((store_path / first).read_bytes())  # sizes and checksums all agree
    victim_hint = outside / segment.hint_name(first)
    victim_hint.write_bytes(PRECIOUS)
    bad = _bad_names(outside, first)[kind]
    _write_manifest(store_path, current, (bad,) + current.segments[1:])
    victim_bytes = victim.read_bytes()

    for readonly in (False, True):
        with pytest.raises(pysos.CorruptionError, match="not a segment file name"):
            pysos.Dict(store_path, readonly=readonly)
    with pytest.raises(pysos.CorruptionError):
        merge.compact_directory(str(store_path), segment_size=4096)
    with pytest.raises(pysos.CorruptionError):
        merge.compact_all(str(store_path), segment_size=4096)
    assert daemon_main([str(store_path), "--once"]) != 0
    problems = pysos.check(store_path)
    assert any("not a segment file name" in p["problem"] for p in problems), problems
    report = pysos.repair(store_path)
    assert any("not a segment file name" in p["problem"] for p in report["problems"])

    assert victim.read_bytes() == victim_bytes
    assert victim_hint.read_bytes() == PRECIOUS
    with pysos.Dict(store_path, readonly=True) as r:  # repaired from the store's own files
        assert len(r) == 10


def test_writer_lock_link_is_refused_and_its_target_kept(store_path, outside):
    """A writer.lock that is a symlink: opening a writer refuses it and never truncates the target."""
    _store(store_path)
    target = outside / "target"
    target.write_bytes(PRECIOUS)
    os.unlink(store_path / "writer.lock")
    os.symlink(target, store_path / "writer.lock")
    with pytest.raises(pysos.CorruptionError, match="symbolic link"):
        pysos.Dict(store_path)
    assert target.read_bytes() == PRECIOUS
    with pytest.raises(pysos.CorruptionError, match="symbolic link"):
        pysos.repair(store_path)
    assert target.read_bytes() == PRECIOUS


def _newest_made_a_link(store_path, target, make_link):
    """The newest segment's name made a link (``os.symlink`` or ``os.link``) to ``target``
    outside the store, which gets the segment's bytes and what looks like a torn tail; returns
    those bytes (what ``target`` must still hold when pysos is done with it)."""
    newest = _store(store_path).segments[-1]
    target.write_bytes((store_path / newest).read_bytes() + b'{"c":"0000')
    os.unlink(store_path / newest)
    make_link(target, store_path / newest)
    return target.read_bytes()


def test_newest_segment_link_is_never_cut_or_appended_to(store_path, outside):
    """A newest segment that is a symlink (to a file with a 'torn tail') is refused, not truncated."""
    target = outside / "target"
    before = _newest_made_a_link(store_path, target, os.symlink)
    for readonly in (False, True):
        with pytest.raises(pysos.CorruptionError, match="symbolic link"):
            pysos.Dict(store_path, readonly=readonly)
    assert any("symbolic link" in p["problem"] for p in pysos.check(store_path))
    assert target.read_bytes() == before


def test_manifest_temp_file_link_is_replaced_not_followed(store_path, outside):
    """A link planted at the MANIFEST temp file's name: a rotation replaces the link, keeps the target."""
    _store(store_path)
    target = outside / "target"
    target.write_bytes(PRECIOUS)
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        os.symlink(target, store_path / f"{manifest.NAME}.{os.getpid()}.tmp")
        for i in range(20):
            d[f"n{i}"] = "w" * 40  # rotates: a new MANIFEST goes through the temp file
    assert target.read_bytes() == PRECIOUS
    assert not os.path.islink(store_path / manifest.NAME)


def test_hint_link_is_not_followed_when_written(store_path, outside, monkeypatch):
    """A link planted at an output's hint name while a compaction runs: the hint replaces the link."""
    _store(store_path)
    target = outside / "target"
    target.write_bytes(PRECIOUS)
    real_create = segment.create_new

    def create_and_plant(directory, at_least):
        name, fd = real_create(directory, at_least)
        hint = os.path.join(directory, segment.hint_name(name))
        if not os.path.lexists(hint):
            os.symlink(target, hint)  # an attacker racing the compactor
        return name, fd

    monkeypatch.setattr(segment, "create_new", create_and_plant)
    merge.compact_all(str(store_path), segment_size=4096)
    assert target.read_bytes() == PRECIOUS
    assert pysos.check(store_path) == []


def test_hint_link_to_a_fifo_is_ignored_when_read(store_path, outside):
    """A hint that is a link to a FIFO: opening (and check) ignore it and scan; nothing blocks."""
    current = _store(store_path)
    fifo = outside / "fifo"
    os.mkfifo(fifo)
    hint = store_path / segment.hint_name(current.segments[0])
    if hint.exists():
        hint.unlink()
    os.symlink(fifo, hint)
    done, out = _finishes(lambda: dict(pysos.Dict(store_path, readonly=True).items()), [fifo])
    assert done, "opening blocked on a FIFO behind a hint link"
    assert "error" not in out and len(out["value"]) == 10
    done, out = _finishes(lambda: pysos.check(store_path), [fifo])
    assert done and "error" not in out
    assert any("symbolic link" in p["problem"] for p in out["value"])


@pytest.mark.parametrize("which", ["sealed", "newest"])
def test_fifo_in_place_of_a_segment_never_blocks(store_path, which):
    """A FIFO where the MANIFEST names a segment: check and every open report it, none blocks."""
    current = _store(store_path)
    name = current.segments[0] if which == "sealed" else current.segments[-1]
    os.unlink(store_path / name)
    os.mkfifo(store_path / name)
    fifo = [store_path / name]
    done, out = _finishes(lambda: pysos.check(store_path), fifo)
    assert done, "check() blocked on a FIFO"
    assert any(p["file"] == name and "not a regular file" in p["problem"] for p in out["value"])
    for readonly in (True, False):
        done, out = _finishes(lambda: pysos.Dict(store_path, readonly=readonly), fifo)
        assert done, f"open(readonly={readonly}) blocked on a FIFO"
        assert isinstance(out.get("error"), pysos.CorruptionError), out
    done, out = _finishes(lambda: merge.compact_all(str(store_path), segment_size=4096), fifo)
    assert done and isinstance(out.get("error"), pysos.CorruptionError), out
    assert os.path.exists(store_path / name)  # left alone


def test_reader_following_a_manifest_that_names_a_fifo_outside_never_blocks(store_path, outside):
    """A reader whose store gets a MANIFEST naming a FIFO outside raises CorruptionError, never opens it."""
    current = _store(store_path)
    fifo = outside / "seg-00000999.jsonl"
    os.mkfifo(fifo)
    with pysos.Dict(store_path, readonly=True) as r:
        assert len(r) == 10
        rotated = current.rotated(os.path.getsize(store_path / current.segments[-1]), f"../other/{fifo.name}")
        _put_manifest(store_path, rotated)
        done, out = _finishes(lambda: r["k1"], [fifo])
        assert done, "the reader blocked opening a FIFO outside its store"
        assert isinstance(out.get("error"), pysos.CorruptionError), out


def test_leftover_cleanup_unlinks_links_never_targets_and_skips_directories(store_path, outside):
    """Opening removes a leftover segment link (not what it points to) and leaves a directory alone."""
    _store(store_path)
    target = outside / "target"
    target.write_bytes(PRECIOUS)
    os.symlink(target, store_path / "seg-00009998.jsonl")
    os.mkdir(store_path / "seg-00009999.jsonl")
    with pysos.Dict(store_path, autocompact=False) as d:
        assert len(d) == 10
    assert target.read_bytes() == PRECIOUS
    assert not os.path.lexists(store_path / "seg-00009998.jsonl")
    assert os.path.isdir(store_path / "seg-00009999.jsonl")


def test_repair_refuses_a_damaged_folder_that_is_a_link(store_path, outside):
    """repair() never moves files through a 'damaged' link out of the store; it changes nothing."""
    current = _store(store_path)
    first = store_path / current.segments[0]
    first.write_bytes(first.read_bytes()[:-5] + b"XXXX\n")  # damage: repair would set it aside
    os.symlink(outside, store_path / "damaged")
    with pytest.raises(pysos.CorruptionError, match="damaged"):
        pysos.repair(store_path)
    assert os.listdir(outside) == []
    assert manifest.read(str(store_path)) == current


def test_files_layer_refuses_links_and_fifos(tmp_path):
    """files.open_read/open_rw/read_file refuse a symlink and a FIFO with CorruptionError, at once."""
    (tmp_path / "real").write_bytes(b"x")
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "fifo"):
        for opener in (files.open_read, files.open_rw, files.read_file, files.open_lock):
            with pytest.raises(pysos.CorruptionError):
                opener(str(tmp_path / name))


# --- hard links ----------------------------------------------------------------------------------


def test_hard_linked_newest_segment_is_never_written_and_readers_read_it(store_path, outside):
    """A newest segment that is a hard link to a file outside the store (which has a 'torn
    tail'): a writer refuses it with CorruptionError naming the links, and never cuts or
    appends to the file; a readonly handle reads it (reading changes nothing); repair
    salvages into new files and leaves it as it was."""
    victim = outside / "victim"
    before = _newest_made_a_link(store_path, victim, os.link)
    with pytest.raises(pysos.CorruptionError, match="2 hard links"):
        pysos.Dict(store_path)
    with pysos.Dict(store_path, readonly=True) as r:
        assert len(r) == 10
    pysos.repair(store_path)  # salvages into new files; the link is set aside, not written
    assert victim.read_bytes() == before
    with pysos.Dict(store_path) as d:
        assert len(d) == 10
        d["after"] = 1
    assert victim.read_bytes() == before


@pytest.mark.parametrize("lock", ["writer", "compact", "manifest"])
def test_hard_linked_lock_file_is_refused_and_its_target_kept(store_path, outside, lock):
    """A lock file that is a hard link to a file outside the store: the writer, repair,
    a compaction and the daemon's --once (of the locks each takes) refuse it; the file is never truncated or written (a lock's
    holder writes its pid there and empties it on release)."""
    _store(store_path)
    victim = outside / "victim"
    victim.write_bytes(PRECIOUS)
    path = store_path / f"{lock}.lock"
    if path.exists():
        os.unlink(path)
    os.link(victim, path)
    attempts = [lambda: pysos.Dict(store_path).close(), lambda: pysos.repair(store_path)]
    if lock != "writer":
        attempts.append(lambda: merge.compact_all(str(store_path), segment_size=4096))
    for attempt in attempts:
        with pytest.raises(pysos.CorruptionError, match="hard links"):
            attempt()
    assert (daemon_main(["--once", str(store_path)]) != 0) == (lock != "writer")  # it takes no writer lock
    assert victim.read_bytes() == PRECIOUS


def test_hard_link_planted_at_the_next_segment_name_is_skipped(store_path, outside):
    """A hard link to an outside file planted at the name the next rotation would take:
    the writer skips the name (O_EXCL) and never writes to the file."""
    current = _store(store_path)
    victim = outside / "victim"
    victim.write_bytes(PRECIOUS)
    os.link(victim, store_path / segment.segment_name(current.next_number))
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        for i in range(20):
            d[f"n{i}"] = "w" * 40  # rotates
    assert victim.read_bytes() == PRECIOUS
    with pysos.Dict(store_path, readonly=True) as r:
        assert r["n19"] == "w" * 40


def test_cp_al_backup_reads_and_the_writer_says_how_to_write(store_path, tmp_path):
    """A store backed up with 'cp -al' (every file hard-linked): the backup opens readonly
    and checks clean; a writer of either copy is refused with a message naming 'cp -al' and
    a fix; after that fix (mv + cp -a) the store is writable and the backup unchanged."""
    import shlex
    import subprocess

    _store(store_path)
    backup = tmp_path / "backup"
    subprocess.run(["cp", "-al", str(store_path), str(backup)], check=True)
    with pysos.Dict(backup, readonly=True) as r:
        assert len(r) == 10
    assert pysos.check(backup) == []
    with pytest.raises(pysos.CorruptionError, match="cp -al") as refused:
        pysos.Dict(store_path)
    fix = str(refused.value).split("e.g. ", 1)[1].rstrip(".")
    assert fix.startswith("mv ") and "cp -a " in fix
    subprocess.run(fix, shell=True, check=True)
    frozen = {name: (backup / name).read_bytes() for name in os.listdir(backup)}
    with pysos.Dict(store_path, segment_size=300, autocompact=False) as d:
        d["new"] = "after the fix"
    with pysos.Dict(store_path, readonly=True) as r:
        assert r["new"] == "after the fix"
    assert {name: (backup / name).read_bytes() for name in os.listdir(backup)} == frozen
    assert shlex.split(fix)  # a command a shell can run


def test_files_layer_refuses_hard_links_for_writing_only(tmp_path):
    """files.open_rw and open_lock refuse a file with two names; open_read and read_file read it."""
    (tmp_path / "real").write_bytes(b"x")
    os.link(tmp_path / "real", tmp_path / "other")
    for opener in (files.open_rw, files.open_lock):
        with pytest.raises(pysos.CorruptionError, match="2 hard links"):
            opener(str(tmp_path / "real"))
    files.close(files.open_read(str(tmp_path / "real")))
    assert files.read_file(str(tmp_path / "real")) == b"x"


def test_the_daemon_run_in_process_gives_back_the_signal_handlers(store_path):
    """main() of the compactor daemon, called in-process, restores SIGINT/SIGTERM as it found
    them (a forked child of a process that kept its handler ignored SIGTERM: a fork pool hung)."""
    import signal

    with pysos.Dict(store_path) as d:
        d["a"] = 1
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    daemon_main(["--once", str(store_path)])
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
