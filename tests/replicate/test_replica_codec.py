"""A codec="tagged" store replicated and restored is a tagged store again: the replica
carries the codec (and the MANIFEST version), so the restored store decodes the same values."""

from datetime import date

import pysos
from pysos.segments import manifest

from replicate_util import replicator, restored


def test_a_restored_tagged_store_keeps_its_codec(bucket, tmp_path):
    """Restore of a tagged Dict gives a tagged store (MANIFEST codec and version 3) with the exact values."""
    values = {"s": {1, 2}, "t": (date(2026, 1, 1), b"\x00"), "plain": {"$set": "escaped"}}
    with pysos.Dict(tmp_path / "src", codec="tagged", autocompact=False) as store:
        store.update(values)
        rep = replicator(tmp_path / "src", bucket)
        rep.step()
        got = restored(bucket, tmp_path, name="back")
    assert got == values and type(got["t"]) is tuple
    found = manifest.read(str(tmp_path / "back"))
    assert found.codec == "tagged" and found.version == manifest.VERSION_CODEC


def test_a_follower_of_a_tagged_store_decodes_the_same_values(bucket, tmp_path):
    """pysos follow keeps DIR a tagged store (MANIFEST codec and version 3): its readers get the exact values."""
    from pysos.replicate.client import S3, parse_url
    from pysos.replicate.follow import Follower

    with pysos.Dict(tmp_path / "src", codec="tagged", autocompact=False) as store:
        store["s"] = {1, 2}
        rep = replicator(tmp_path / "src", bucket)
        rep.step()
        follower = Follower(tmp_path / "dst", S3(parse_url(bucket.url("store"))))
        follower.start()
        try:
            with pysos.Dict(tmp_path / "dst", readonly=True) as reader:
                assert reader.codec == "tagged" and reader["s"] == {1, 2}
                store["t"] = (date(2026, 1, 1),)
                rep.step()
                assert follower.poll()
                assert reader["t"] == (date(2026, 1, 1),)
        finally:
            follower.close()
    found = manifest.read(str(tmp_path / "dst"))
    assert found.codec == "tagged" and found.version == manifest.VERSION_CODEC


def test_a_restored_expiring_store_keeps_its_version(bucket, tmp_path, monkeypatch):
    """Restore and follow of a json store with expiring records give MANIFEST version 2 (an older pysos must refuse them, as it refuses the original)."""
    from pysos.replicate.client import S3, parse_url
    from pysos.replicate.follow import Follower

    with pysos.Dict(tmp_path / "src", autocompact=False) as store:
        store.set("session", 1, expire=3600)
        store["plain"] = 2
        rep = replicator(tmp_path / "src", bucket)
        rep.step()
        assert restored(bucket, tmp_path, name="back") == {"session": 1, "plain": 2}
        follower = Follower(tmp_path / "dst", S3(parse_url(bucket.url("store"))))
        follower.start()
        follower.close()
    for name in ("back", "dst"):
        found = manifest.read(str(tmp_path / name))
        assert found.codec == "json" and found.version == manifest.VERSION_EXPIRY, name
