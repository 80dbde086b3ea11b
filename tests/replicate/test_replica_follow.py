"""``pysos follow URL DIR``: a local copy of a replica that ordinary readonly readers
follow as they follow a local writer, against the local S3 server: whole batches only,
rotations, compactions and retention on the primary's side, kill -9, network errors,
and an idle follower that sends nothing but conditional GETs answered 304."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pysos
from pysos.replicate.client import RemoteError, S3, parse_url
from pysos.replicate.follow import Follower, FollowError, run
from replicate_util import contents, replicator

HERE = os.path.dirname(os.path.abspath(__file__))


def follower(bucket, directory, prefix="store"):
    """A started in-process follower with a client of its own (its counters are its own)."""
    f = Follower(directory, S3(parse_url(bucket.url(prefix))))
    f.start()
    return f


def start_follow(bucket, directory, *extra):
    return subprocess.Popen([sys.executable, "-m", "pysos", "follow", bucket.url(), str(directory),
                             "--interval", "0.1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def stop(proc, sig=signal.SIGTERM):
    proc.send_signal(sig)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_follower_copies_the_store_and_a_reader_opened_before_follows_it(bucket, tmp_path):
    """Writes, a batch, rotations and a compaction on the primary reach a reader of DIR
    opened at the first step, in place (same directory, same reader), after each poll."""
    primary = pysos.Dict(tmp_path / "src", segment_size=2048, autocompact=False)
    for i in range(50):
        primary[f"k{i}"] = "x" * 40
    rep = replicator(tmp_path / "src", bucket)
    f = follower(bucket, tmp_path / "dst")
    identity = os.stat(tmp_path / "dst").st_ino
    reader = pysos.Dict(tmp_path / "dst", readonly=True)
    assert dict(reader.items()) == dict(primary.items())
    with primary.batch():
        for i in range(50, 120):
            primary[f"k{i}"] = i
    del primary["k3"]
    rep.step()
    assert f.poll()
    assert dict(reader.items()) == dict(primary.items())
    primary.compact()
    primary["after"] = "compaction"
    rep.step()
    assert f.poll()
    assert dict(reader.items()) == dict(primary.items())
    assert os.stat(tmp_path / "dst").st_ino == identity
    local = pysos.segments.manifest.read(str(tmp_path / "dst"))
    on_disk = {n for n in os.listdir(tmp_path / "dst") if n.endswith(".jsonl")}
    assert on_disk == set(local.segments), "files the remote retired are deleted after the swap"
    f.close()
    reader.close()
    assert contents(tmp_path / "dst") == dict(primary.items())


def test_readers_in_another_process_see_whole_batches_within_a_bounded_lag(bucket, tmp_path):
    """Real processes (writer, replicate, follow, a reader opened early): the reader sees
    every batch's keys all-or-none, never going back, and sees the last one."""
    batches, size = 150, 20
    acks = tmp_path / "acks"
    writer = subprocess.Popen([sys.executable, os.path.join(HERE, "follow_writer.py"), str(tmp_path / "src"),
                               str(acks), str(batches), str(size), "0.02"])
    procs = [writer]
    try:
        wait_for(lambda: acks.exists() and acks.stat().st_size > 0)
        rep = subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(tmp_path / "src"), bucket.url(),
                                "--interval", "0.1", "--min-age", "0", "--retention", "1"],
                               stderr=subprocess.DEVNULL)
        procs.append(rep)
        wait_for(lambda: "MANIFEST" in bucket.keys())
        follow = start_follow(bucket, tmp_path / "dst")
        procs.append(follow)
        wait_for(lambda: (tmp_path / "dst" / "MANIFEST").exists())
        reader = subprocess.run([sys.executable, os.path.join(HERE, "follow_reader.py"), str(tmp_path / "dst"),
                                 str(size), str(batches), str(tmp_path / "seen"), "90"], timeout=120)
        seen = (tmp_path / "seen").read_text().split("\n")[:-1]
        assert reader.returncode == 0, seen[-3:]
        assert writer.wait(60) == 0
        acked = {int(b): float(t) for b, t in (line.split() for line in acks.read_text().split("\n")[:-1])}
        assert len(acked) == batches
        for line in seen:
            b, t = line.split()
            if int(b):
                assert float(t) >= acked[int(b)] - 0.05, "seen before the write returned"
        assert stop(follow, signal.SIGINT) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


class Hooked:
    """A client that runs ``hook`` once, right after a GET of the MANIFEST returned a body."""

    def __init__(self, client):
        self.client, self.location, self.counters, self.hook = client, client.location, client.counters, None

    def get(self, name, **options):
        found = self.client.get(name, **options)
        if name == "MANIFEST" and found is not None and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return found


def test_remote_compaction_and_retention_under_a_running_follower(bucket, tmp_path):
    """Compactions on the primary, and retention deleting the objects of the commit the
    follower has just read: it reads the MANIFEST again and applies the newer commit,
    deletes the local files no longer named, and readers opened before see the primary's
    contents after every poll."""
    primary = pysos.Dict(tmp_path / "src", segment_size=2048, autocompact=False)
    primary["seed"] = 0
    rep = replicator(tmp_path / "src", bucket, retention=0.0)
    client = Hooked(S3(parse_url(bucket.url())))
    f = Follower(tmp_path / "dst", client)
    f.start()
    reader = pysos.Dict(tmp_path / "dst", readonly=True)
    deleted, rereads = [], 0

    def compact_and_collect():
        primary.compact()
        rep.step()
        deleted.append(rep.collect(now=time.time() + 10))

    for round_ in range(6):
        for i in range(60):  # a few segments sealed: objects new to the follower
            primary[f"k{i % 25}"] = {"round": round_, "i": i, "pad": "y" * 30}
        rep.step()
        if round_ % 2:  # they are compacted away and deleted once the follower read the commit
            client.hook = compact_and_collect
        polls = f.polls
        assert f.poll()
        rereads += f.polls - polls - 1
        assert f.body["seq"] == rep.body["seq"]
        assert dict(reader.items()) == dict(primary.items())
        on_disk = {n for n in os.listdir(tmp_path / "dst") if n.endswith(".jsonl")}
        assert on_disk == set(pysos.segments.manifest.read(str(tmp_path / "dst")).segments)
    assert sum(deleted) > 0, "retention deleted objects under the follower"
    assert rereads > 0, "an object of the commit read was gone: the MANIFEST was read again"
    reader.close()
    f.close()


def test_writable_open_is_refused_while_followed_and_sigterm_exits_0(bucket, tmp_path):
    """While `pysos follow` runs, a writable open of DIR raises pysos.Error saying it is
    followed (readers work); SIGTERM stops it with exit 0 and DIR opens writable again;
    once written to, following it again is refused (exit 2) and changes nothing."""
    with pysos.Dict(tmp_path / "src") as primary:
        primary["a"] = 1
    replicator(tmp_path / "src", bucket)
    follow = start_follow(bucket, tmp_path / "dst")
    try:
        wait_for(lambda: (tmp_path / "dst" / "MANIFEST").exists())
        with pytest.raises(pysos.LockedError, match="is being followed from s3://.* by 'pysos follow'"):
            pysos.Dict(tmp_path / "dst")
        with pytest.raises(pysos.Error, match="followed"):
            pysos.open(tmp_path / "dst", "w")
        assert contents(tmp_path / "dst") == {"a": 1}
        assert stop(follow) == 0
        assert follow.stderr.read().count("Traceback") == 0
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    with pysos.Dict(tmp_path / "dst") as promoted:
        assert promoted["a"] == 1
        promoted["b"] = 2  # DIR is a store of its own now
    follow = start_follow(bucket, tmp_path / "dst")
    assert follow.wait(60) == 2
    err = follow.stderr.read().strip().splitlines()
    assert len(err) == 1 and "has changes the replica" in err[0], err
    assert contents(tmp_path / "dst") == {"a": 1, "b": 2}, "following again would have lost 'b'"


class Recording:
    """A client that records the object names of its GETs."""

    def __init__(self, client):
        self.client, self.location, self.counters, self.got = client, client.location, client.counters, []

    def get(self, name, **options):
        self.got.append(name)
        return self.client.get(name, **options)


def test_killed_follower_resumes_without_fetching_what_it_has(bucket, tmp_path):
    """kill -9 of `pysos follow` after it copied sealed segments: the next run checks them
    locally against the remote's sizes and CRCs and fetches none of them again."""
    primary = pysos.Dict(tmp_path / "src", segment_size=4096, autocompact=False)
    for i in range(400):
        primary[f"k{i}"] = "z" * 40
    rep = replicator(tmp_path / "src", bucket)
    follow = start_follow(bucket, tmp_path / "dst")
    try:
        wait_for(lambda: (tmp_path / "dst" / "MANIFEST").exists())
    finally:
        stop(follow, signal.SIGKILL)
    body = rep.body
    sealed = {part[0] for entry in body["segments"] for part in entry["parts"]}
    assert len(sealed) >= 5
    for i in range(400, 450):
        primary[f"k{i}"] = i
    rep.step()
    client = Recording(S3(parse_url(bucket.url())))
    f = Follower(tmp_path / "dst", client)
    f.start()
    assert not sealed & set(client.got), "a sealed segment it had was fetched again"
    assert set(client.got) <= {"MANIFEST"} | {p[0] for p in rep.body["tail"]["parts"]} | {
        part[0] for entry in rep.body["segments"] for part in entry["parts"]} | {
        e["hint"][0] for e in rep.body["segments"] if e["hint"]}
    assert contents(tmp_path / "dst") == dict(primary.items())
    f.close()


class Failing(Recording):
    """A client whose GETs fail (as a dropped connection) after ``budget`` of them."""

    def __init__(self, client, budget):
        super().__init__(client)
        self.budget = budget

    def get(self, name, **options):
        if len(self.got) >= self.budget:
            raise RemoteError("cannot reach the object store: connection reset")
        return super().get(name, **options)


def test_interrupted_first_copy_never_opens_and_resumes_without_refetching(bucket, tmp_path):
    """The first copy cut off half-way: DIR does not open as a store (not even a damaged
    one); the next run fetches only the files it did not finish."""
    primary = pysos.Dict(tmp_path / "src", segment_size=4096, autocompact=False)
    for i in range(400):
        primary[f"k{i}"] = "w" * 40
    replicator(tmp_path / "src", bucket)
    cut = Failing(S3(parse_url(bucket.url())), budget=4)
    first = Follower(tmp_path / "dst", cut)
    with pytest.raises(RemoteError):
        first.start()
    first.close()
    fetched = set(cut.got) - {"MANIFEST"}
    assert fetched
    with pytest.raises(pysos.FormatError, match="not a pysos store"):
        pysos.Dict(tmp_path / "dst", readonly=True)
    again = Recording(S3(parse_url(bucket.url())))
    second = Follower(tmp_path / "dst", again)
    second.start()
    assert not fetched & set(again.got), "a file the first run finished was fetched again"
    second.close()
    assert contents(tmp_path / "dst") == dict(primary.items())


def test_network_errors_keep_the_last_state_then_recover(bucket, tmp_path, caplog):
    """The server unreachable for a while (the client pointed at a dead port): one log
    line per failed poll, DIR keeps serving its last state; once the server answers
    again the follower catches up, and stops with exit 0."""
    import boto3

    primary = pysos.Dict(tmp_path / "src")
    primary["v"] = 1
    rep = replicator(tmp_path / "src", bucket)
    client = S3(parse_url(bucket.url()))
    live, dead = client._s3, boto3.client("s3", endpoint_url="http://127.0.0.1:9")
    done, results = threading.Event(), []
    thread = threading.Thread(target=lambda: results.append(
        run(bucket.url(), tmp_path / "dst", interval=0.05, client=client, stop=done)))
    thread.start()
    try:
        wait_for(lambda: (tmp_path / "dst" / "MANIFEST").exists())
        client._s3 = dead
        primary["v"] = 2
        rep.step()
        wait_for(lambda: len([r for r in caplog.records if "poll failed" in r.getMessage()]) >= 2)
        assert contents(tmp_path / "dst") == {"v": 1}, "the last good state is served"
        client._s3 = live
        wait_for(lambda: contents(tmp_path / "dst") == {"v": 2}, timeout=60)
    finally:
        done.set()
        thread.join(60)
    assert results == [0]
    failures = [r.getMessage() for r in caplog.records if "poll failed" in r.getMessage()]
    assert all("cannot reach the object store" in line and "\n" not in line for line in failures)


def test_unreachable_server_at_start_is_one_error_and_creates_nothing(bucket, tmp_path):
    """A follower that cannot reach the server at start raises pysos.Error saying so,
    before DIR is created."""
    import boto3

    client = S3(parse_url(bucket.url()))
    client._s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(pysos.Error, match="cannot reach"):
        Follower(tmp_path / "dst", client).start()
    assert not (tmp_path / "dst").exists()


def test_idle_follower_sends_only_conditional_gets_answered_304(bucket, tmp_path):
    """Nothing changes on the primary: every poll is one GET of the MANIFEST with
    If-None-Match, answered 304 (no LIST, no other GET, no PUT)."""
    with pysos.Dict(tmp_path / "src") as primary:
        primary["a"] = 1
    replicator(tmp_path / "src", bucket)
    f = follower(bucket, tmp_path / "dst")
    before = f.client.counters.snapshot()
    for _ in range(20):
        assert f.poll() is False
    after = f.client.counters.snapshot()
    assert after["gets"] - before["gets"] == 20
    assert (after["puts"], after["lists"], after["deletes"]) == (0, 0, 0)
    assert after["bytes_down"] == before["bytes_down"], "a 304 carries no body"
    assert f.not_modified == 20
    f.close()


def test_bad_bucket_no_replica_and_foreign_directory_exit_2_in_one_line(bucket, tmp_path):
    """A missing bucket, a prefix with no replica, a directory holding something else:
    one line on stderr, exit 2, no traceback, and the directory is left as it was."""
    with pysos.Dict(tmp_path / "src") as primary:
        primary["a"] = 1
    replicator(tmp_path / "src", bucket)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    cases = [
        (f"s3://no-such-bucket-{os.getpid()}/x", tmp_path / "d1", "does not exist"),
        (bucket.url("nothing-here"), tmp_path / "d2", "holds no pysos replica"),
        (bucket.url(), tmp_path / "other", "not empty and not a follower's copy"),
        (bucket.url(), tmp_path / "src", "not empty and not a follower's copy"),
        ("https://example.com/x", tmp_path / "d3", "is not an s3://BUCKET/PREFIX URL"),
    ]
    for url, directory, message in cases:
        proc = subprocess.run([sys.executable, "-m", "pysos", "follow", url, str(directory)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, (url, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert os.listdir(tmp_path / "other") == ["notes.txt"]
    assert not (tmp_path / "d1").exists() and not (tmp_path / "d2").exists()


def test_bad_credentials_exit_2_in_one_line(tmp_path, monkeypatch):
    """Credentials the server refuses: exit 2, one line saying to check them, no DIR."""
    from s3_local import aws_env, start_server, stop_server

    proc, endpoint = start_server("--auth")
    try:
        aws_env(monkeypatch, endpoint)
        out = subprocess.run([sys.executable, "-m", "pysos", "follow", "s3://some-bucket/x", str(tmp_path / "d")],
                             capture_output=True, text=True, timeout=60)
    finally:
        stop_server(proc)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "denied" in lines[0] and "credentials" in lines[0], out.stderr
    assert not (tmp_path / "d").exists()


def test_a_second_follower_of_the_same_directory_is_refused(bucket, tmp_path):
    """Two followers of one DIR: the second gets FollowError naming the first."""
    with pysos.Dict(tmp_path / "src") as primary:
        primary["a"] = 1
    replicator(tmp_path / "src", bucket)
    first = follower(bucket, tmp_path / "dst")
    try:
        with pytest.raises(FollowError, match="being followed"):
            follower(bucket, tmp_path / "dst")
    finally:
        first.close()
