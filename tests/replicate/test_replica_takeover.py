"""Ownership: a prefix belongs to one store lineage; --takeover moves it and fences the old
replicator, which then commits nothing and exits non-zero saying it was fenced."""

import subprocess
import sys
import time

import pysos
import pytest

from pysos.replicate.client import RemoteError
from pysos.replicate.remote import FencedError
from pysos.replicate.uploader import OwnershipError, Replicator
from replicate_util import replicator, restored


def make(path, items):
    with pysos.Dict(path) as d:
        d.update(items)


def test_another_stores_prefix_is_refused_without_takeover(bucket, tmp_path):
    """A replicator for store B refuses store A's prefix (exit 2), and takes it with --takeover."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    replicator(tmp_path / "a", bucket)
    with pytest.raises(OwnershipError, match="--takeover"):
        replicator(tmp_path / "b", bucket)
    out = subprocess.run([sys.executable, "-m", "pysos.replicate", str(tmp_path / "b"), bucket.url(), "--once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "another store" in out.stderr and "Traceback" not in out.stderr
    assert restored(bucket, tmp_path) == {"from": "a"}
    replicator(tmp_path / "b", bucket, takeover=True)
    assert restored(bucket, tmp_path) == {"from": "b"}


def test_takeover_fences_the_old_replicator(bucket, tmp_path):
    """After a takeover the old replicator's step raises FencedError and commits nothing;
    no remote commit ever names an object it uploaded afterwards."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    old = replicator(tmp_path / "a", bucket)
    new = replicator(tmp_path / "b", bucket, takeover=True)
    taken_at = new.body["seq"]
    with pysos.Dict(tmp_path / "a") as d:
        d.update({f"late{i}": i for i in range(50)})
    with pytest.raises(FencedError, match="fenced"):
        old.step()
    assert new.client.get("MANIFEST")[0] and new.remote.read()[0]["seq"] == taken_at
    with pysos.Dict(tmp_path / "b") as d:
        d["more"] = 1
    new.step()
    body = new.remote.read()[0]
    for seq in range(body["history_from"], body["seq"] + 1):
        commit = new.remote.body_of(body, seq)
        if seq >= taken_at:
            assert commit["epoch"] == new.epoch
            for name in (p[0] for e in commit["segments"] for p in e["parts"]):
                assert not name.startswith(f"data/{old.epoch}-")
    assert restored(bucket, tmp_path) == {"from": "b", "more": 1}


def test_a_second_replicator_of_the_same_store_fences_the_first(bucket, tmp_path):
    """Two replicators of one store never both commit: the later one's epoch wins."""
    make(tmp_path / "a", {"x": 1})
    first = replicator(tmp_path / "a", bucket)
    second = replicator(tmp_path / "a", bucket)
    assert second.epoch == first.epoch + 1
    with pysos.Dict(tmp_path / "a") as d:
        d["y"] = 2
    with pytest.raises(FencedError):
        first.step()
    assert second.step()
    assert restored(bucket, tmp_path) == {"x": 1, "y": 2}


def test_a_fenced_replicator_process_exits_non_zero_saying_so(bucket, tmp_path):
    """The old replicator process exits 3 with a message saying it was fenced."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    proc = subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(tmp_path / "a"), bucket.url(),
                             "--interval", "0.1"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while "MANIFEST" not in bucket.keys() and time.monotonic() < deadline:
            time.sleep(0.1)
        replicator(tmp_path / "b", bucket, takeover=True)
        with pysos.Dict(tmp_path / "a") as d:
            d["late"] = 1
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "fenced" in err and "Traceback" not in err
    assert restored(bucket, tmp_path) == {"from": "b"}


def test_a_fenced_replicators_uploads_are_swept_as_orphans(bucket, tmp_path):
    """What a fenced replicator uploaded after the takeover is named by no commit and is
    deleted by the owner's orphan sweep once older than the minimum age; nothing the
    owner's commits name is touched."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    old = replicator(tmp_path / "a", bucket)
    new = replicator(tmp_path / "b", bucket, takeover=True)
    with pysos.Dict(tmp_path / "a", segment_size=500) as d:
        for i in range(40):
            d[f"late{i}"] = "x" * 50  # rotations: sealed segments to upload
    attempt = old.body["seq"] + 1  # the commit the fenced replicator tried to make
    with pytest.raises(FencedError):
        old.step()
    orphans = [k for k in bucket.keys()
               if k.startswith(f"data/{old.epoch}-{attempt}/") or k == f"log/{attempt:012d}-{old.epoch}"]
    assert len(orphans) >= 2  # a sealed segment and the log object, at least
    assert new.sweep(now=time.time() + 1) >= len(orphans)
    left = bucket.keys()
    assert not [k for k in orphans if k in left]
    assert restored(bucket, tmp_path) == {"from": "b"}


class LoseReplies:
    """A client whose next MANIFEST swap lands on the server but raises (a lost reply)."""

    def __init__(self, inner):
        self.inner, self.armed = inner, True

    def put(self, name, data, **kwargs):
        etag = self.inner.put(name, data, **kwargs)
        if name == "MANIFEST" and self.armed:
            self.armed = False
            raise RemoteError("cannot reach the object store: connection reset")
        return etag

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_commit_whose_reply_was_lost_is_not_taken_for_a_takeover(bucket, tmp_path):
    """A swap that landed but whose reply was lost: the next steps neither think they are
    fenced nor rewrite the landed commit's history copy; restores stay exact."""

    make(tmp_path / "a", {"x": 0})
    rep = replicator(tmp_path / "a", bucket)
    rep.client = rep.remote.client = LoseReplies(rep.client)
    with pysos.Dict(tmp_path / "a") as d:
        d["x"] = 1
    with pytest.raises(RemoteError):
        rep.step()
    landed = rep.remote.read()[0]
    assert landed["seq"] == rep.body["seq"] + 1
    with pysos.Dict(tmp_path / "a") as d:
        d["x"] = 2
    assert rep.step()
    assert rep.body["seq"] == landed["seq"] + 1
    assert restored(bucket, tmp_path) == {"x": 2}
    assert restored(bucket, tmp_path, at=landed["time"]) == {"x": 1}


def test_a_failed_attempt_whose_swap_never_happened_is_replaced(bucket, tmp_path):
    """A step that wrote its log object but never swapped the MANIFEST: the next step at
    the same seq replaces that log object, and its chunk restores exactly."""
    make(tmp_path / "a", {"x": 0})
    rep = replicator(tmp_path / "a", bucket)
    inner = rep.client

    class NoSwap(LoseReplies):
        def put(self, name, data, **kwargs):
            if name == "MANIFEST":
                raise RemoteError("cannot reach the object store: connection reset")
            return self.inner.put(name, data, **kwargs)

    rep.client = rep.remote.client = NoSwap(inner)
    with pysos.Dict(tmp_path / "a") as d:
        d["x"] = 1
    with pytest.raises(RemoteError):
        rep.step()
    rep.client = rep.remote.client = inner
    with pysos.Dict(tmp_path / "a") as d:
        d["y"] = 2
    assert rep.step()
    assert restored(bucket, tmp_path) == {"x": 1, "y": 2}
