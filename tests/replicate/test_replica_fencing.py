"""Takeover races: a takeover while the old replicator keeps committing, a restart of the
old store's replicator racing a takeover, and an old replicator's orphan sweep before it
noticed the takeover. (Seeded trials of all of it: test_replica_takeover_trials.py.)"""

import time

import pysos
import pytest

from pysos.replicate.remote import FencedError
from pysos.replicate.uploader import OwnershipError, Replicator
from replicate_util import Hooked, contents, replicator, restored


def make(path, items):
    with pysos.Dict(path) as d:
        d.update(items)


def test_a_takeover_wins_against_an_old_replicator_that_keeps_committing(bucket, tmp_path):
    """The old replicator commits between the takeover's read of the MANIFEST and its swap:
    the takeover still takes the replica (it reads again), and the old one is fenced."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    old = replicator(tmp_path / "a", bucket)
    ticks = []

    def old_commits(op, name):
        if op == "put" and name.startswith("log/") and len(ticks) < 3:
            with pysos.Dict(tmp_path / "a") as d:
                d[f"a{len(ticks)}"] = 1
            ticks.append(old.step())

    new = Replicator(str(tmp_path / "b"), Hooked(bucket.client(), old_commits), takeover=True, min_age=0)
    new.start()
    assert ticks and all(ticks)  # the old replicator did commit inside the takeover
    with pysos.Dict(tmp_path / "a") as d:
        d["late"] = 1
    with pytest.raises(FencedError, match="fenced"):
        old.step()
    assert restored(bucket, tmp_path) == {"from": "b"}


def test_a_restart_of_the_old_store_racing_a_takeover_never_takes_the_replica_back(bucket, tmp_path):
    """The old store's replicator restarts (no --takeover) and a takeover lands between its
    read of the MANIFEST and its first commit: both picked the same next epoch; the
    restart must refuse (another store owns the prefix now), not adopt the takeover's
    commit as its own and then overwrite it."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    replicator(tmp_path / "a", bucket)
    taken = []

    def takeover_lands(op, name):
        if op == "put" and name.startswith("log/") and not taken:
            taken.append(replicator(tmp_path / "b", bucket, takeover=True))

    restart = Replicator(str(tmp_path / "a"), Hooked(bucket.client(), takeover_lands), min_age=0)
    with pytest.raises(OwnershipError):
        restart.start()
    assert taken and taken[0].step() is False  # the takeover still owns it, unfenced
    assert bucket.client().get("MANIFEST") and restored(bucket, tmp_path) == {"from": "b"}
    with pysos.Dict(tmp_path / "b") as d:
        d["more"] = 1
    assert taken[0].step()
    assert restored(bucket, tmp_path) == {"from": "b", "more": 1}


def test_an_old_replicator_that_has_not_noticed_the_takeover_deletes_nothing_in_its_sweep(bucket, tmp_path):
    """An old replicator whose store went idle never commits, so it has not noticed the
    takeover when its hourly orphan sweep comes: the sweep must not take the new owner's
    objects (newer than anything it committed) for its orphans; it finds it was fenced."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {f"b{i}": "x" * 50 for i in range(20)})
    old = replicator(tmp_path / "a", bucket)
    new = replicator(tmp_path / "b", bucket, takeover=True)
    with pysos.Dict(tmp_path / "b", segment_size=500) as d:
        for i in range(20):
            d[f"more{i}"] = "y" * 50  # sealed segments of the new owner
    assert new.step()
    before = bucket.keys()
    with pytest.raises(FencedError, match="fenced"):
        old.sweep(now=time.time() + 3600)
    assert {k: v for k, v in bucket.keys().items() if not k.startswith("selftest-")} == before
    assert restored(bucket, tmp_path) == contents(tmp_path / "b")


def test_a_takeovers_fence_commit_keeps_the_contents_lineage_until_it_ships_its_own(bucket, tmp_path):
    """The fence commit names the taker as owner but keeps the contents' lineage (readers
    such as followers key what they have checked on the lineage); the next commit ships
    the taker's store under its lineage. A takeover that crashed after its fence resumes
    as the owner, and the old store's restart is refused in between."""
    make(tmp_path / "a", {"from": "a"})
    make(tmp_path / "b", {"from": "b"})
    old = replicator(tmp_path / "a", bucket)
    fenced = []

    class CrashAfterFence(Replicator):
        def step(self, force=False):
            fenced.append(self.remote.read()[0])
            raise RuntimeError("killed after its fence commit")

    with pytest.raises(RuntimeError):
        CrashAfterFence(str(tmp_path / "b"), bucket.client(), takeover=True, min_age=0).start()
    fence = fenced[0]
    assert fence["lineage"] == old.lineage and fence["owner"] != old.lineage and fence["epoch"] > old.epoch
    assert restored(bucket, tmp_path) == {"from": "a"}  # the contents are still A's
    with pytest.raises(OwnershipError):
        replicator(tmp_path / "a", bucket)  # the old store, restarted: not its replica any more
    new = replicator(tmp_path / "b", bucket)  # the taker, restarted without --takeover: owner
    body = new.remote.read()[0]
    assert body["lineage"] == fence["owner"] and "owner" not in body
    assert restored(bucket, tmp_path) == {"from": "b"}
