"""Restore: interrupted restores leave nothing that opens as a store and resume when run
again; --at restores the store as of a recorded moment (against a model); a restore
reads the MANIFEST and the log by name, never by LIST."""

import datetime
import os
import signal
import subprocess
import sys
import time

import pysos
import pytest

from pysos.replicate.client import RemoteError, S3, parse_url
from pysos.replicate.restore import MARKER, restore
from replicate_util import contents, replicator, restored


class Failing:
    """A client that fails every GET after the first ``budget`` of them (a cut network)."""

    def __init__(self, inner, budget):
        self.inner, self.budget, self.location = inner, budget, inner.location
        self.counters = inner.counters

    def get(self, *args, **kwargs):
        self.budget -= 1
        if self.budget < 0:
            raise RemoteError("cannot reach the object store: connection reset")
        return self.inner.get(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def build(tmp_path, bucket, n=400):
    store = pysos.Dict(tmp_path / "src", segment_size=3000, autocompact=False)
    rep = replicator(tmp_path / "src", bucket)
    for i in range(n):
        store[f"k{i}"] = "v" * (i % 30)
    rep.step()
    return store, rep


def test_an_interrupted_restore_leaves_no_store_and_resumes(bucket, tmp_path):
    """A restore cut after a few downloads: DIR does not open; rerun: complete, equal."""
    store, rep = build(tmp_path, bucket)
    target = tmp_path / "out"
    client = S3(parse_url(bucket.url()))
    with pytest.raises(RemoteError):
        restore(bucket.url(), target, client=Failing(client, 4), workers=2)
    assert MARKER in os.listdir(target) and "MANIFEST" not in os.listdir(target)
    with pytest.raises((FileNotFoundError, pysos.FormatError)):
        pysos.open(target, readonly=True)
    kept = {n for n in os.listdir(target) if n.endswith(".jsonl")}
    gets = client.counters.gets
    restore(bucket.url(), target, client=client)
    assert contents(target) == dict(store.items())
    assert set(os.listdir(target)) <= {"MANIFEST"} | {n for n in os.listdir(target) if n.startswith("seg-")}
    # What the first attempt fetched and checked was not fetched again.
    hinted = sum(1 for e in rep.body["segments"] if e["hint"])  # sealed segments have hints since fastopen
    objects = len(rep.body["segments"]) + hinted + len(rep.body["tail"]["parts"]) + 1  # + MANIFEST
    assert client.counters.gets - gets <= objects - len(kept)
    store.close()


def test_a_killed_restore_process_resumes(bucket, tmp_path):
    """SIGKILL of a restore at a random moment, then the same command again: complete."""
    store, _ = build(tmp_path, bucket, 1500)
    target = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "pysos", "restore", bucket.url(), str(target)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Kill it once it has begun writing (its marker is there): a fixed sleep from the start
    # sometimes outlived a restore on a quiet machine, and a finished restore's directory
    # is rightly refused by a second one ("not empty").
    deadline = time.monotonic() + 60
    while not os.path.exists(target / MARKER) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if proc.returncode == 0:  # it finished before the kill: nothing to resume, the copy is whole
        assert not os.path.exists(target / MARKER) and contents(target) == dict(store.items())
        store.close()
        return
    assert proc.returncode == -signal.SIGKILL
    if os.path.exists(target / MARKER):
        if os.path.exists(target / "MANIFEST"):  # killed after the last step (the MANIFEST), before the marker went
            assert contents(target) == dict(store.items())
        else:
            with pytest.raises((FileNotFoundError, pysos.FormatError)):
                pysos.open(target, readonly=True)
    out = subprocess.run([sys.executable, "-m", "pysos", "restore", bucket.url(), str(target)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert contents(target) == dict(store.items())
    store.close()


def test_point_in_time_restore_against_a_model(bucket, tmp_path):
    """--at TIME gives the store as of the last commit at or before TIME, for every
    recorded commit and between them; before the oldest kept commit: a clear error."""
    store = pysos.Dict(tmp_path / "src", segment_size=2500)
    rep = replicator(tmp_path / "src", bucket)
    history = [(rep.body["time"], {})]
    for round_ in range(6):
        for i in range(40):
            store[f"k{(round_ * 17 + i) % 60}"] = [round_, i]
        if round_ % 2:
            with store.batch():
                for i in range(0, 60, 7):
                    store.pop(f"k{i}", None)
        if round_ == 3:
            store.compact()
        time.sleep(0.02)
        assert rep.step()
        history.append((rep.body["time"], dict(store.items())))
    for moment, model in history:
        assert restored(bucket, tmp_path, at=moment) == model
    for (moment, model), (later, _) in zip(history, history[1:]):
        middle = (moment + later) / 2
        assert restored(bucket, tmp_path, at=datetime.datetime.fromtimestamp(middle, datetime.timezone.utc)) == model
    iso = datetime.datetime.fromtimestamp(history[2][0] + 0.001, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert restored(bucket, tmp_path, at=iso) == history[2][1]
    assert rep.client.counters.lists == 0
    with pytest.raises(pysos.Error, match="no commit at or before"):
        pysos.restore(bucket.url(), tmp_path / "too-early", at=history[0][0] - 100)
    assert not os.path.exists(tmp_path / "too-early" / "MANIFEST")
    store.close()


def test_restore_never_lists(bucket, tmp_path):
    """Restoring (latest and --at) sends no LIST request."""
    store, rep = build(tmp_path, bucket)
    client = S3(parse_url(bucket.url()))
    restore(bucket.url(), tmp_path / "a", client=client)
    restore(bucket.url(), tmp_path / "b", at=rep.body["time"] - 0.001, client=client)
    assert client.counters.lists == 0
    store.close()


def test_bad_at_is_a_clear_error(bucket, tmp_path):
    """--at that is neither ISO 8601 nor a number: ValueError, nothing created."""
    with pytest.raises(ValueError, match="ISO 8601"):
        pysos.restore(bucket.url(), tmp_path / "x", at="yesterday-ish")
    assert not os.path.exists(tmp_path / "x")


def test_a_restore_killed_while_writing_its_marker_resumes(bucket, tmp_path):
    """A marker temp file left by a restore killed mid-write does not make the target 'not empty'."""
    from pysos.replicate.restore import MARKER
    store, _ = build(tmp_path, bucket, 50)
    target = tmp_path / "out"
    target.mkdir()
    (target / f"{MARKER}.12345.tmp").write_bytes(b'{"ur')
    out = subprocess.run([sys.executable, "-m", "pysos", "restore", bucket.url(), str(target)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert contents(target) == dict(store.items())
    store.close()
