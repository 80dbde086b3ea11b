"""The follower against hostile surroundings: links and FIFOs planted in DIR under names it
reads or writes, DIR replaced under it, Ctrl-C in the middle of a long first copy, and a
copy that diverged from the replica (``--resync``). Against the local S3 server."""

import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest

import pysos
from pysos.replicate.follow import Diverged, FatalError, Follower, FollowError, Interrupted, run, state_dir
from pysos.replicate.restore import restore
from pysos.segments import manifest
from replicate_util import contents, replicator
from test_replica_follow import Recording, follower, stop, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))


def primary_and_follower(bucket, tmp_path, records=20, **options):
    """A primary with small segments, its replicator, a started follower of it."""
    primary = pysos.Dict(tmp_path / "src", segment_size=1024, autocompact=False)
    for i in range(records):
        primary[f"k{i}"] = "x" * 40
    rep = replicator(tmp_path / "src", bucket, client=bucket.client())
    return primary, rep, Follower(tmp_path / "dst", bucket.client(), **options)


def plant(path, kind, target):
    """A symbolic link to ``target`` or a FIFO at ``path``."""
    if kind == "symlink":
        os.symlink(target, path)
    else:
        os.mkfifo(path)


def victim(tmp_path):
    target = tmp_path / "precious"
    target.write_bytes(b"not the follower's\n")
    return target


# --- 1. links and FIFOs in DIR -------------------------------------------------------------

@pytest.mark.parametrize("kind", ["symlink", "fifo"])
@pytest.mark.parametrize("where", ["new segment", "newest segment"])
def test_a_planted_link_or_fifo_stops_the_follower_and_is_not_written_through(bucket, tmp_path, kind, where):
    """A link or FIFO under the name of a segment the follower is about to fetch, or of the
    newest segment it appends to: the poll raises FatalError saying what is there (no
    block on the FIFO), the link's target is untouched, DIR's MANIFEST is not replaced."""
    primary, rep, f = primary_and_follower(bucket, tmp_path)
    f.start()
    before = manifest.read(str(tmp_path / "dst"))
    newest = before.segments[-1]
    for i in range(20, 40):  # rotations: new segments, and our newest grows and is sealed
        primary[f"k{i}"] = "y" * 40
    rep.step()
    target = victim(tmp_path)
    if where == "new segment":
        name = rep.body["tail"]["name"]
        assert not (tmp_path / "dst" / name).exists()
    else:
        name = newest
        os.unlink(tmp_path / "dst" / name)
    plant(tmp_path / "dst" / name, kind, target)
    try:
        with pytest.raises(FatalError, match=f"{name} is a (symbolic link|FIFO).*never reads or writes through"):
            f.poll()
    finally:
        f.close()
    assert target.read_bytes() == b"not the follower's\n"
    assert os.path.islink(tmp_path / "dst" / name) == (kind == "symlink")
    assert manifest.read(str(tmp_path / "dst")) == before


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_planted_state_file_or_state_directory_link_is_refused_in_one_line(bucket, tmp_path, kind, capsys):
    """DIR.follow/state.json a link (to a file saying the right URL) or a FIFO, or DIR.follow
    itself a link to a directory: `pysos follow` refuses in one line, exit 1, without
    reading or writing through it."""
    primary, rep, f = primary_and_follower(bucket, tmp_path)
    f.start()
    f.close()
    state = os.path.join(state_dir(str(tmp_path / "dst")), "state.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(state, elsewhere / "state.json")
    os.unlink(state)
    plant(state, kind, elsewhere / "state.json")
    assert run(bucket.url(), tmp_path / "dst", interval=0.01, client=bucket.client()) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state.json is a" in err[0] and "never reads or writes through" in err[0], err
    os.unlink(state)
    shutil.rmtree(state_dir(str(tmp_path / "dst")))
    os.symlink(elsewhere, state_dir(str(tmp_path / "dst")))
    before = sorted(os.listdir(elsewhere))
    assert run(bucket.url(), tmp_path / "dst", interval=0.01, client=bucket.client()) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "dst.follow is a symbolic link" in err[0], err
    assert sorted(os.listdir(elsewhere)) == before


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_link_or_fifo_at_the_manifest_temp_name_is_replaced_never_written_through(bucket, tmp_path, kind):
    """A link or FIFO planted at the MANIFEST's temp name (MANIFEST.PID.tmp): the swap
    unlinks it and writes a file of its own (no block, the target untouched), and
    publishes the new commit."""
    primary, rep, f = primary_and_follower(bucket, tmp_path)
    f.start()
    before = manifest.read(str(tmp_path / "dst"))
    for i in range(20, 40):  # rotations: a new MANIFEST to publish
        primary[f"k{i}"] = "y" * 40
    rep.step()
    target = victim(tmp_path)
    plant(tmp_path / "dst" / f"MANIFEST.{os.getpid()}.tmp", kind, target)
    try:
        assert f.poll()
    finally:
        f.close()
    assert manifest.read(str(tmp_path / "dst")) != before
    assert target.read_bytes() == b"not the follower's\n"
    assert contents(tmp_path / "dst") == dict(primary.items())
    assert not os.path.lexists(tmp_path / "dst" / f"MANIFEST.{os.getpid()}.tmp")


# --- 2. DIR replaced under a running follower ----------------------------------------------

@pytest.mark.parametrize("how", ["replaced", "deleted"])
def test_directory_replaced_or_deleted_under_the_follower_stops_it(bucket, tmp_path, how):
    """DIR renamed away and a new directory put in its place, or deleted: the next poll
    raises FatalError saying so, and writes nothing into the new directory (nor makes one)."""
    primary, rep, f = primary_and_follower(bucket, tmp_path)
    f.start()
    primary["new"] = 1
    rep.step()
    if how == "replaced":
        os.rename(tmp_path / "dst", tmp_path / "moved")
        (tmp_path / "dst").mkdir()
    else:
        shutil.rmtree(tmp_path / "dst")
    try:
        with pytest.raises(FatalError, match="was moved, deleted or replaced while being followed"):
            f.poll()
    finally:
        f.close()
    if how == "replaced":
        assert os.listdir(tmp_path / "dst") == []
    else:
        assert not (tmp_path / "dst").exists()


def test_directory_replaced_in_the_middle_of_a_step_gets_nothing_written(bucket, tmp_path, capsys):
    """DIR replaced while a step fetches a segment: the follower stops (exit 1, one line)
    before writing that segment, or any later one, into the new directory."""
    primary, rep, _ = primary_and_follower(bucket, tmp_path)
    done = threading.Event()
    client = Recording(bucket.client())
    swapped = []

    def get(name, **options):
        found = Recording.get(client, name, **options)
        if name != "MANIFEST" and not swapped and (tmp_path / "dst" / "MANIFEST").exists():
            os.rename(tmp_path / "dst", tmp_path / "moved")
            (tmp_path / "dst").mkdir()
            swapped.append(name)
        return found

    client.get = get
    thread = threading.Thread(target=lambda: results.append(
        run(bucket.url(), tmp_path / "dst", interval=0.02, client=client, stop=done)))
    results = []
    thread.start()
    try:
        wait_for(lambda: (tmp_path / "dst" / "MANIFEST").exists())
        for i in range(20, 40):
            primary[f"k{i}"] = "z" * 40
        rep.step()
        thread.join(60)
    finally:
        done.set()
        thread.join(60)
    assert results == [1] and swapped
    assert os.listdir(tmp_path / "dst") == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was moved, deleted or replaced" in err[0], err


# --- 3. Ctrl-C during a long first copy ----------------------------------------------------

def test_ctrl_c_during_a_long_first_copy_stops_promptly_with_130_and_a_restart_resumes(bucket, tmp_path):
    """SIGINT to `pysos follow` while its first copy fetches (each GET slowed to 50 ms):
    exit 130 with one line, long before the copy could have finished; DIR has no MANIFEST
    (it does not open as a store), and a restart fetches none of the files already there."""
    primary = pysos.Dict(tmp_path / "src", segment_size=1024, autocompact=False)
    for i in range(200):
        primary[f"k{i}"] = "x" * 40
    rep = replicator(tmp_path / "src", bucket, client=bucket.client())
    objects = len(rep.body["segments"]) + 1
    assert objects >= 15
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "slow_follow.py"), "0.05", "follow",
                             bucket.url(), str(tmp_path / "dst")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: (tmp_path / "dst").exists() and any(
            n.endswith(".jsonl") for n in os.listdir(tmp_path / "dst")), timeout=60)
        code = stop(proc, signal.SIGINT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().strip().splitlines()
    assert code == 130, err
    assert len(err) == 1 and "interrupted before" in err[0] and "run the same command again" in err[0], err
    have = {n for n in os.listdir(tmp_path / "dst") if n.endswith(".jsonl")}
    assert 0 < len(have) < objects - 5, "it went on copying after the SIGINT"
    assert not (tmp_path / "dst" / "MANIFEST").exists()
    with pytest.raises(pysos.FormatError, match="did not finish"):
        pysos.Dict(tmp_path / "dst", readonly=True)
    names = {e["name"]: [p[0] for p in e["parts"]] for e in rep.body["segments"]}
    client = Recording(bucket.client())
    f = Follower(tmp_path / "dst", client)
    f.start()
    f.close()
    refetched = {n for n in have if n in names and set(names[n]) & set(client.got)}
    assert not refetched, "a file the first run finished was fetched again"
    assert contents(tmp_path / "dst") == dict(primary.items())


def test_stop_between_ranged_gets_of_one_file_abandons_the_step(bucket, tmp_path, monkeypatch):
    """A segment fetched in several ranged GETs: stop set during one of them ends the step
    right after it (Interrupted), not after the file; only a .part file is left, and the
    next start removes it and finishes the copy."""
    monkeypatch.setattr(sys.modules["pysos.replicate.restore"], "RANGE", 256)
    primary = pysos.Dict(tmp_path / "src", segment_size=4096, autocompact=False)
    for i in range(60):
        primary[f"k{i}"] = "x" * 40
    rep = replicator(tmp_path / "src", bucket, client=bucket.client())
    big = [p for e in rep.body["segments"] for p in e["parts"] if p[1] > 3 * 256 and not p[0].startswith("log/")]
    assert big, "a sealed segment in one data object of several ranges"
    stopping = threading.Event()
    client = Recording(bucket.client())
    inner = client.get

    def get(name, **options):
        found = inner(name, **options)
        if name == big[0][0] and client.got.count(name) == 2:
            stopping.set()
        return found

    client.get = get
    f = Follower(tmp_path / "dst", client, stop=stopping)
    with pytest.raises(Interrupted):
        f.start()
    f.close()
    assert client.got.count(big[0][0]) == 2 and client.got[-1] == big[0][0]
    assert not (tmp_path / "dst" / "MANIFEST").exists()
    again = follower(bucket, tmp_path / "dst")
    again.close()
    assert not [n for n in os.listdir(tmp_path / "dst") if n.endswith(".part")]
    assert contents(tmp_path / "dst") == dict(primary.items())


# --- 4. --resync ---------------------------------------------------------------------------

def diverged(bucket, tmp_path, **options):
    """A follower whose copy has the old primary A's last records, after B (restored from
    the replica before them) took the replica over and wrote its own: (A, B, follower)."""
    a = pysos.Dict(tmp_path / "a", segment_size=1024, autocompact=False)
    for i in range(20):
        a[f"k{i}"] = "a" * 40
    rep_a = replicator(tmp_path / "a", bucket, client=bucket.client())
    f = Follower(tmp_path / "dst", bucket.client(), **options)
    f.start()
    restore(bucket.url(), tmp_path / "b", client=bucket.client())
    for i in range(8):
        a[f"a-late{i}"] = "late" * 10
    rep_a.step()
    assert f.poll()
    b = pysos.Dict(tmp_path / "b", segment_size=1024, autocompact=False)
    for i in range(12):
        b[f"b{i}"] = "b" * 30
    replicator(tmp_path / "b", bucket, client=bucket.client(), takeover=True)
    return a, b, f


def test_a_diverged_follower_stops_and_its_message_names_resync(bucket, tmp_path):
    """Without --resync a copy holding records the replica no longer has stops the follower
    (Diverged, exit 1) and a restart is refused (exit 2), both saying --resync; DIR keeps
    its copy."""
    a, b, f = diverged(bucket, tmp_path)
    held = contents(tmp_path / "dst")
    assert "a-late0" in held
    try:
        with pytest.raises(Diverged, match="--resync"):
            f.poll()
    finally:
        f.close()
    with pytest.raises(FollowError, match="--resync"):
        Follower(tmp_path / "dst", bucket.client()).start()
    assert contents(tmp_path / "dst") == held


def test_resync_replaces_a_diverged_copy_and_readers_see_old_then_new_never_a_mix(bucket, tmp_path):
    """--resync: the diverged copy is replaced by the replica's in place. While the replica's
    files are fetched a reader opened then sees exactly the old copy; readers opened before
    (one reading all along, one idle through it) see the old copy, then exactly the new."""
    a, b, f = diverged(bucket, tmp_path, resync=True)
    old = contents(tmp_path / "dst")
    busy = pysos.Dict(tmp_path / "dst", readonly=True)
    idle = pysos.Dict(tmp_path / "dst", readonly=True)
    assert dict(busy.items()) == dict(idle.items()) == old
    seen = []
    inner = f.client.client.get

    def get(name, **options):
        if name != "MANIFEST":
            with pysos.Dict(tmp_path / "dst", readonly=True) as fresh:
                seen.append(dict(fresh.items()))
            seen.append(dict(busy.items()))
        return inner(name, **options)

    f.client.client.get = get
    try:
        assert f.poll()
    finally:
        f.close()
    assert seen and all(view == old for view in seen), "a reader saw a mix of the two copies"
    new = dict(b.items())
    assert contents(tmp_path / "dst") == new
    assert dict(busy.items()) == new
    assert dict(idle.items()) == new
    busy.close()
    idle.close()


def test_resync_on_restart_through_the_command_and_only_when_diverged(bucket, tmp_path):
    """`pysos follow URL DIR --resync` started on a diverged DIR copies the replica afresh
    and follows it; --resync on a copy that has not diverged fetches none of the sealed
    segments it has."""
    a, b, f = diverged(bucket, tmp_path)
    f.close()
    proc = subprocess.Popen([sys.executable, "-m", "pysos", "follow", bucket.url(), str(tmp_path / "dst"),
                             "--interval", "0.05", "--resync"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: "b0" in contents(tmp_path / "dst"))
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert contents(tmp_path / "dst") == dict(b.items())
    client = Recording(bucket.client())
    again = Follower(tmp_path / "dst", client, resync=True)
    again.start()
    again.close()
    body = again.body
    sealed = {p[0] for e in body["segments"] for p in e["parts"]}
    assert sealed and not sealed & set(client.got), "--resync refetched a copy that had not diverged"
