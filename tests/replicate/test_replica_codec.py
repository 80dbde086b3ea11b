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
