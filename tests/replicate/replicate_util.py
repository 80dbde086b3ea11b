"""Helpers of the replication tests."""

import os

import pysos
from pysos.replicate.restore import restore
from pysos.replicate.uploader import Replicator


def replicator(store, bucket, prefix="store", **options):
    """A started in-process replicator of ``store`` to ``bucket``'s ``prefix``."""
    options.setdefault("min_age", 0.0)
    from pysos.replicate.client import S3, parse_url

    rep = Replicator(os.fspath(store), S3(parse_url(bucket.url(prefix))), **options)
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
