"""Retention: under churn the remote's bytes stay bounded while restores (latest and
--at within the retention) keep working, even during a GC; GC failures are visible."""

import logging
import threading
import time

import pysos

from pysos.replicate.client import RemoteError
from pysos.replicate.restore import restore
from pysos.replicate.restore import describe
from replicate_util import contents, replicator


def remote_bytes(bucket):
    return sum(bucket.keys().values())


def test_remote_bytes_stay_bounded_under_churn_and_restores_keep_working(bucket, tmp_path):
    """40 rounds of overwrites with compactions: the remote does not grow with what was
    written; restores running beside the GC always give a state that was committed."""
    store = pysos.Dict(tmp_path / "src", segment_size=3000, autocompact=False)
    rep = replicator(tmp_path / "src", bucket, retention=0.3)
    models = {rep.body["seq"]: {}}
    sizes, problems, stop = [], [], threading.Event()

    def restorer():
        n = 0
        while not stop.is_set():
            n += 1
            target = tmp_path / f"r{n}"
            try:
                done = restore(bucket.url(), target, client=bucket.client())
                if contents(target) != models[done["seq"]]:
                    problems.append(f"restore of commit {done['seq']} differs from the model")
            except Exception as exc:  # noqa: BLE001 - any failure is a problem here
                problems.append(repr(exc))

    thread = threading.Thread(target=restorer)
    thread.start()
    try:
        for round_ in range(40):
            for i in range(80):
                store[f"k{i % 25}"] = [round_, i, "x" * 20]
            if round_ % 4 == 3:
                store.compact()
            rep.collect()
            rep.step()
            models[rep.body["seq"]] = dict(store.items())
            sizes.append(remote_bytes(bucket))
            time.sleep(0.03)
    finally:
        stop.set()
        thread.join()
    assert not problems, problems[:3]
    written = rep.client.counters.bytes_up
    assert rep.body["gc"]["deleted"] > 0
    assert max(sizes[20:]) <= 1.5 * max(sizes[5:20]), sizes
    assert sizes[-1] < written / 4, (sizes[-1], written)
    store.close()


class NoDeletes:
    """A client whose deletes fail (a bucket policy without s3:DeleteObject)."""

    def __init__(self, inner):
        self.inner = inner

    def delete(self, name):
        raise RemoteError(f"access to {name} denied (AccessDenied): check the credentials")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_gc_failures_are_visible_and_retried(bucket, tmp_path, caplog):
    """Deletes that fail: counted in the commit's gc (info URL shows it), logged, kept
    pending, and done by a later pass once deletes work."""
    store = pysos.Dict(tmp_path / "src", segment_size=1500, autocompact=False)
    rep = replicator(tmp_path / "src", bucket, retention=0)
    working = rep.client
    for i in range(100):
        store[f"k{i % 10}"] = i
    rep.step()
    store.compact()  # retires the segments just shipped
    rep.step()
    rep.client = NoDeletes(working)
    with caplog.at_level(logging.WARNING, logger="pysos.replicate"):
        rep.collect()
        rep.step()
    assert any("could not delete" in r.getMessage() for r in caplog.records)
    info = describe(working)
    assert info["gc_failed"] > 0 and info["gc_pending"] > 0 and "AccessDenied" in info["gc_last_error"]
    rep.client = working
    store["more"] = 1
    rep.collect()
    rep.step()
    assert rep.body["gc"]["pending"] == []
    assert describe(working)["gc_pending"] == 0
    store.close()
