"""Takeover while writing, 100 seeded trials: a writer keeps writing to the primary, its
replicator A keeps committing, and at a seeded point a restore of the remote, promoted to a
writable store, takes the replica over (``--takeover``). After the takeover's commit, A
commits nothing, no commit names anything A uploaded afterwards (the owner's sweep deletes
it), A stops with FencedError, restarting A without --takeover is refused, and neither a
restore nor a follower (one following all along, one started afterwards) shows any of A's
later records (a restore and a new follower show exactly the new primary's contents).

The trials run in one process: every request of A and of the takeover B goes through a
client that may, at a seeded point, run the other side's work first, so B's takeover lands
between any two requests of A's step (e.g. between its log upload and its MANIFEST swap)
and A's steps (and a restart of A) land between any two requests of B's takeover. A few
trials run the same story with real processes.
"""

import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pysos
import pytest

from pysos.replicate.follow import FatalError, Follower
from pysos.replicate.remote import FencedError, Remote, log_name, referenced
from pysos.replicate.restore import restore
from pysos.replicate.uploader import OwnershipError, Replicator
from test_replica_kill import wait_for
from memory_s3 import MemoryBucket
from replicate_util import contents, restored

HERE = os.path.dirname(os.path.abspath(__file__))
TRIALS = 100
SERVER_TRIALS = 6


class Client:
    """Forwards to ``inner``; calls ``before(name)`` before each request and records every
    request (and each MANIFEST swap that landed) in ``timeline``."""

    def __init__(self, inner, who, timeline, before=None):
        self.inner, self.who, self.timeline, self.before = inner, who, timeline, before

    def _call(self, op, name, call):
        if self.before is not None:
            self.before(op, name)
        self.timeline.append((self.who, op, name))
        result = call()
        if op == "put" and name == "MANIFEST":
            self.timeline.append((self.who, "swapped", name))
        return result

    def put(self, name, data, **kwargs):
        return self._call("put", name, lambda: self.inner.put(name, data, **kwargs))

    def get(self, name, **kwargs):
        return self._call("get", name, lambda: self.inner.get(name, **kwargs))

    def delete(self, name):
        return self._call("delete", name, lambda: self.inner.delete(name))

    def list(self, prefix=""):
        return self._call("list", prefix, lambda: self.inner.list(prefix))

    def __getattr__(self, name):
        return getattr(self.inner, name)


class Trial:
    """One seeded takeover-while-writing story (see the module docstring)."""

    def __init__(self, seed, bucket, root):
        self.seed, self.rng = seed, random.Random(seed)
        self.prefix = f"trial{seed}"
        self.url, self.plain = bucket.url(self.prefix), bucket.client(self.prefix)
        self.bucket, self.root = bucket, root / f"t{seed}"
        self.timeline = []
        self.unit = 0
        self.a_store = pysos.Dict(self.root / "a", segment_size=self.rng.choice((512, 2048, 8192)),
                                  autocompact=False)
        self.a_keys_after = set()  # keys A's writer wrote after the takeover's commit landed
        self.a_epochs = set()
        self.a = self.b = self.b_store = None
        self.fenced = None  # the FencedError that stopped A
        self.a_busy = False  # inside one of A's requests (its steps are not reentrant)
        self.takeover_at = None  # A's request before which B's takeover runs, if chosen so
        self.a_requests = 0
        self.a_commits_after = 0  # A's commits counted (A.commits) after the takeover's swap
        self.restarts = 0
        self.follower = None  # a follower of the remote from the start, polled every tick
        self.follower_stopped = None  # the FatalError that stopped it, if it did

    # --- the two sides --------------------------------------------------------------------

    def taken(self):
        return ("b", "swapped", "MANIFEST") in self.timeline

    def write_a(self):
        """The primary's writer: a unit (one set, or a batch), now and then a compaction."""
        self.unit += 1
        key = f"a{self.unit}"
        if self.rng.random() < 0.3:
            with self.a_store.batch():
                self.a_store[key] = self.unit
                self.a_store["counter"] = self.unit
        else:
            self.a_store[key] = {"unit": self.unit, "pad": "x" * self.rng.randrange(80)}
        if self.taken():
            self.a_keys_after.add(key)
        if self.rng.random() < 0.05:
            self.a_store.compact()

    def before_a(self, op, name):
        self.a_requests += 1
        if self.rng.random() < 0.3:
            self.write_a()  # the writer does not wait for the replicator
        if self.takeover_at is not None and self.a_requests >= self.takeover_at and self.b is None:
            self.a_busy = True
            try:
                self.take_over()
            finally:
                self.a_busy = False

    def tick_a(self):
        """One interval of A: writes, then a step (now and then a sweep first)."""
        for _ in range(self.rng.randint(1, 4)):
            self.write_a()
        if self.fenced is not None:
            return
        was_taken, commits = self.taken(), self.a.commits
        try:
            if self.rng.random() < 0.1:
                # (as of 30 s ago: the minimum age that protects uploads in flight, such
                # as the takeover's, from an owner's sweep; a takeover also takes < 30 s)
                self.a.sweep(now=time.time() - 30)
            self.a.step()
        except FencedError as exc:
            self.fenced = exc
        if was_taken:
            self.a_commits_after += self.a.commits - commits
            assert self.fenced is not None, f"seed {self.seed}: A's first step after the takeover did not fail"
        self.poll_follower()

    def poll_follower(self):
        """The follower's poll; its readers never see a record A wrote after the takeover."""
        if self.follower_stopped is not None:
            return None
        try:
            self.follower.poll()
        except FatalError as exc:  # its copy has what the new primary's replica lacks: it stops
            self.follower_stopped = exc
            self.follower.close()
            return None
        view = contents(self.root / "f")
        assert not set(view) & self.a_keys_after, f"seed {self.seed}: a follower shows A's later records"
        return view

    def before_b(self, op, name):
        if self.a_busy or self.fenced is not None:
            return
        draw = self.rng.random()
        if draw < 0.25:
            self.tick_a()
        elif draw < 0.27 and self.restarts < 1:
            self.restart_a()

    def restart_a(self):
        """A's replicator restarts without --takeover (a supervisor): before the takeover's
        commit it takes the replica (the takeover then retries); after it, it is refused."""
        self.restarts += 1
        rep = Replicator(str(self.root / "a"), Client(self.plain, "a", self.timeline), min_age=0.0)
        try:
            rep.start()
        except OwnershipError:
            assert self.taken(), f"seed {self.seed}: the restart was refused before any takeover"
            return
        assert not self.taken(), f"seed {self.seed}: A's restart took the replica back after the takeover"
        self.a = rep
        self.a_epochs.add(rep.epoch)

    def take_over(self):
        """Promote: restore the remote elsewhere, write there, replicate it with --takeover."""
        restore(self.url, self.root / "b", client=self.plain)
        self.b_store = pysos.Dict(self.root / "b", segment_size=self.rng.choice((512, 4096)))
        for i in range(self.rng.randint(0, 5)):
            self.b_store[f"b{i}"] = {"i": i}
        self.b = Replicator(str(self.root / "b"), Client(self.plain, "b", self.timeline, self.before_b),
                            takeover=True, min_age=0.0)
        self.b.start()
        assert self.taken()

    # --- the story and its checks ---------------------------------------------------------

    def run(self):
        self.a = Replicator(str(self.root / "a"), Client(self.plain, "a", self.timeline, self.before_a),
                            min_age=0.0)
        self.a.start()
        self.a_epochs.add(self.a.epoch)
        self.follower = Follower(self.root / "f", self.plain)
        self.follower.start()
        inside = self.rng.random() < 0.5  # the takeover lands inside one of A's steps
        ticks = self.rng.randint(0, 6)
        if inside:
            self.takeover_at = self.a_requests + self.rng.randint(1, 4 * ticks + 8)
        for _ in range(ticks):
            self.tick_a()
        while self.b is None:
            if not inside:
                self.take_over()
            else:
                self.tick_a()
        for i in range(self.rng.randint(1, 4)):
            self.b_store[f"b-after{i}"] = i
            self.tick_a()
            self.b.step()
            self.poll_follower()
        self.tick_a()  # A has writes to ship: it tries, and is fenced
        return self.check()

    def check(self):
        seed = self.seed
        assert self.fenced is not None and "fenced" in str(self.fenced), f"seed {seed}: A was not fenced"
        commits = self.a.commits
        with pytest.raises(FencedError):
            self.a.step()  # it stays fenced: a retry commits nothing
        assert self.a.commits == commits
        with pytest.raises(OwnershipError):  # restarted without --takeover: refused
            Replicator(str(self.root / "a"), self.plain, min_age=0.0).start()
        # The remote's history: from the takeover's commit on, only B's epoch.
        rem = Remote(self.plain)
        body = rem.read()[0]
        history = [rem.body_of(body, seq) for seq in range(body["history_from"], body["seq"] + 1)]
        first = min(c["seq"] for c in history if c["epoch"] == self.b.epoch)
        by_a_after = [c["seq"] for c in history if c["seq"] >= first and c["epoch"] in self.a_epochs]
        assert by_a_after == [], f"seed {seed}: A committed {by_a_after} after the takeover ({first})"
        assert self.a_commits_after == 0
        assert {c["epoch"] for c in history if c["seq"] >= first} == {self.b.epoch}
        # A's uploads after the takeover's swap: named by no commit, deleted by B's sweep.
        swap = self.timeline.index(("b", "swapped", "MANIFEST"))
        late = {name for who, op, name in self.timeline[swap:] if who == "a" and op == "put" and name != "MANIFEST"}
        named = set().union(*(referenced(c) | {log_name(c["seq"], c["epoch"])} for c in history))
        assert not late & named, f"seed {seed}: commits name A's late uploads {late & named}"
        self.b.sweep(now=time.time() + 1)
        assert not late & set(self.bucket.keys(self.prefix + "/")), f"seed {seed}: orphans left"
        # What a reader of the remote sees: the new primary's contents, none of A's later records.
        seen = self.views()
        b_now = dict(self.b_store.items())
        self.a_store.close()
        self.b_store.close()
        for name, view in seen.items():
            assert not set(view) & self.a_keys_after, f"seed {seed}: {name} shows A's later records"
            assert view == b_now, f"seed {seed}: {name} differs from the new primary"
        return {"a_commits_after": len(by_a_after) + self.a_commits_after, "late_uploads": len(late),
                "inside": bool(self.takeover_at), "restarts": self.restarts,
                "a_late_records": len(self.a_keys_after), "followers_stopped": int(bool(self.follower_stopped))}

    def views(self):
        """What readers of the remote see: a restore, a follower started afterwards, and the
        follower that followed all along (unless it stopped: its copy had records of A the
        new primary lacks, so it cannot follow in place; it never shows A's later ones)."""
        restore(self.url, self.root / "restored", client=self.plain)
        seen = {"restore": contents(self.root / "restored")}
        fresh = Follower(self.root / "f2", self.plain)
        fresh.start()
        fresh.close()
        seen["new follower"] = contents(self.root / "f2")
        view = self.poll_follower()
        if view is not None:
            self.follower.close()
            seen["follower"] = view
        return seen


def run_trials(bucket, root, seeds):
    results = [Trial(seed, bucket, root).run() for seed in seeds]
    total = {key: sum(r[key] for r in results) for key in results[0]}
    print(f"\ntakeover trials ({type(bucket).__name__}): {len(results)} run ({total['inside']} inside a "
          f"step of the old replicator, {total['restarts']} with a restart of it racing the takeover); "
          f"commits by the old replicator after the takeover: {total['a_commits_after']}; its later "
          f"uploads: {total['late_uploads']} (named by a commit: 0, left after the sweep: 0); its records "
          f"written after the takeover: {total['a_late_records']} (seen by a restore or a follower: 0); "
          f"followers that followed all along and stopped (their copy had records the new primary "
          f"lacks): {total['followers_stopped']}, the others show exactly the new primary")
    assert len(results) == len(seeds) and total["a_commits_after"] == 0
    assert total["late_uploads"] > 0 and total["a_late_records"] > 0
    return total


@pytest.fixture
def fast_tmp(tmp_path):
    """A directory in memory (tmpfs) when there is one: the trials fsync thousands of
    files (stores, restores), which is what they spend their time on on a disk."""
    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    path = tempfile.mkdtemp(prefix="pysos-trials-", dir="/dev/shm")
    try:
        yield pathlib.Path(path)
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_100_seeded_takeovers_while_writing(fast_tmp):
    """100 seeded trials: after the takeover's commit the old replicator commits nothing, its
    later uploads are never named and are swept, it is fenced, restarting it without
    --takeover is refused, and a restore sees none of its later records (on an in-memory
    store with S3's conditional-write semantics: ~100 requests a trial)."""
    total = run_trials(MemoryBucket(), fast_tmp, range(TRIALS))
    assert 0 < total["inside"] < TRIALS and total["restarts"] > 0


def test_seeded_takeovers_while_writing_on_the_local_s3_server(bucket, fast_tmp):
    """The same trials (fewer: each request is a real HTTP request) against the local S3
    server, so the in-memory store's semantics are not what makes them pass."""
    run_trials(bucket, fast_tmp, range(1000, 1000 + SERVER_TRIALS))


@pytest.mark.parametrize("seed", [1, 2])
def test_takeover_while_writing_with_real_processes(bucket, tmp_path, seed):
    """Real processes: a writer and its replicator run; at a seeded moment a restore of the
    remote, written to, is replicated with --takeover. The old replicator exits 3 saying it
    was fenced, no commit after the takeover's is by its epoch or names its uploads, a
    restore is exactly the new primary, and the old one restarted without --takeover is
    refused (exit 2) and changes nothing."""
    rng = random.Random(seed)
    src, new = tmp_path / "src", tmp_path / "new"
    writer = subprocess.Popen([sys.executable, os.path.join(HERE, "kill_writer.py"), str(src),
                               str(tmp_path / "acks"), str(seed)])
    procs = [writer]
    try:
        wait_for(lambda: os.path.exists(src / "MANIFEST"))
        old = subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(src), bucket.url(),
                                "--interval", "0.05"], stderr=subprocess.PIPE, text=True)
        procs.append(old)
        wait_for(lambda: "MANIFEST" in bucket.keys())
        time.sleep(rng.uniform(0.2, 1.5))
        restore(bucket.url(), new, client=bucket.client())
        with pysos.Dict(new) as d:
            d.update({f"new{i}": i for i in range(rng.randint(1, 20))})
        taker = subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(new), bucket.url(),
                                  "--takeover", "--interval", "0.05"], stderr=subprocess.PIPE, text=True)
        procs.append(taker)
        _, err = old.communicate(timeout=120)
        assert old.returncode == 3 and "fenced" in err and "Traceback" not in err, err
        with pysos.Dict(new) as d:
            d["after"] = True
        wait_for(lambda: restored(bucket, tmp_path).get("after") is True)
        taker.send_signal(signal.SIGTERM)
        assert taker.wait(60) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    rem = Remote(bucket.client())
    body, etag = rem.read()
    history = [rem.body_of(body, seq) for seq in range(body["history_from"], body["seq"] + 1)]
    first = min(c["seq"] for c in history if c["epoch"] == body["epoch"])
    old_epochs = {c["epoch"] for c in history if c["seq"] < first}
    assert [c["seq"] for c in history if c["seq"] >= first and c["epoch"] != body["epoch"]] == []
    named = set().union(*(referenced(c) for c in history))
    late = [n for n in bucket.keys() if upload_of(n, old_epochs, first)]  # the old one's, after
    assert not [n for n in named if upload_of(n, old_epochs, first)], "a commit names a late upload"
    assert restored(bucket, tmp_path) == contents(new)
    # The old primary's replicator restarted without --takeover: refused, remote unchanged.
    keys = bucket.keys()
    out = subprocess.run([sys.executable, "-m", "pysos.replicate", str(src), bucket.url(), "--once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "another store" in out.stderr and "Traceback" not in out.stderr
    assert bucket.keys() == keys and rem.read()[1] == etag
    print(f"\nreal-process takeover trial {seed}: commits by the old replicator after the takeover: 0; "
          f"its later uploads: {len(late)} (named by a commit: 0)")



def upload_of(name, epochs, first):
    """Whether ``name`` is an upload of one of ``epochs`` for a commit numbered ``first`` or later."""
    for epoch in epochs:
        if name.startswith("data/"):
            made, seq = map(int, name[5:].split("/", 1)[0].split("-"))
        elif name.startswith("log/"):
            seq, made = map(int, name[4:].split("-"))
        else:
            return False
        if made == epoch and seq >= first:
            return True
    return False
