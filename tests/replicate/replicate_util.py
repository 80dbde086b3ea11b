"""Helpers of the replication tests."""

import os

import pysos
from pysos.replicate.restore import restore
from pysos.replicate.uploader import Replicator


def replicator(store, bucket, prefix="store", client=None, **options):
    """A started in-process replicator of ``store`` to ``bucket``'s ``prefix`` (with a client
    of its own unless given one, e.g. ``bucket.client()``: a new one costs ~0.4 s)."""
    options.setdefault("min_age", 0.0)
    from pysos.replicate.client import S3, parse_url

    rep = Replicator(os.fspath(store), client or S3(parse_url(bucket.url(prefix))), **options)
    rep.start()
    return rep


def contents(path):
    """A restored (or any) store's contents as a plain dict or list."""
    with pysos.open(path, readonly=True) as store:
        return dict(store.items()) if isinstance(store, pysos.Dict) else list(store)


def restored(bucket, tmp_path, at=None, prefix="store", name=None):
    """Restore ``bucket``'s replica into a new directory; return its contents."""
    target = tmp_path / (name or f"restored-{len(os.listdir(tmp_path))}")
    restore(bucket.url(prefix), target, at=at, client=bucket.client(prefix))
    return contents(target)


class Hooked:
    """A client that calls ``before(op, name)`` before each request it forwards (to run
    another replicator's steps at a chosen point inside this one's)."""

    def __init__(self, inner, before):
        self.inner, self.before = inner, before

    def put(self, name, data, **kwargs):
        self.before("put", name)
        return self.inner.put(name, data, **kwargs)

    def get(self, name, **kwargs):
        self.before("get", name)
        return self.inner.get(name, **kwargs)

    def delete(self, name):
        self.before("delete", name)
        return self.inner.delete(name)

    def list(self, prefix=""):
        self.before("list", prefix)
        return self.inner.list(prefix)

    def __getattr__(self, name):
        return getattr(self.inner, name)
