"""Helpers shared by the compactor tests: build churned stores, look at their directories."""

import os
import random

import pysos
from pysos.segments import locks, manifest, segment

LOCK_FILES = {f"{name}.lock" for name in (locks.WRITER, locks.COMPACT, locks.MANIFEST, locks.DAEMON)}


def churn(store, model, rng, n, keys=60, pad=(0, 30, 200), deletes=0.2):
    """Apply ``n`` seeded sets/deletes to ``store`` and to the dict ``model``."""
    for i in range(n):
        key = f"k{rng.randrange(keys)}"
        if rng.random() < deletes:
            store.pop(key, None)
            model.pop(key, None)
        else:
            value = {"i": i, "key": key, "pad": "x" * rng.choice(pad)}
            store[key] = value
            model[key] = value


def churned_store(path, n=600, seed=0, segment_size=1024, keys=60, deletes=0.2):
    """A closed Dict store with many sealed segments full of garbage; returns its model."""
    model = {}
    with pysos.Dict(path, segment_size=segment_size, autocompact=False) as d:
        churn(d, model, random.Random(seed), n, keys=keys, deletes=deletes)
    return model


def contents(path):
    """The contents of the store at ``path``, read by a fresh read-only handle."""
    with pysos.open(path, readonly=True) as s:
        return dict(s.items()) if isinstance(s, pysos.Dict) else list(s)


def unexpected_files(path):
    """Files that are neither MANIFEST, a segment it names, that segment's hint, nor a lock file."""
    current = manifest.read(str(path))
    allowed = {manifest.NAME} | LOCK_FILES
    allowed |= set(current.segments) | {segment.hint_name(n) for n in current.segments}
    return sorted(set(os.listdir(path)) - allowed)


def segment_bytes(path):
    """Bytes of all segment and hint files in ``path`` (what compaction is about)."""
    total = 0
    for name in os.listdir(path):
        if segment.segment_number(name) is not None or segment.is_hint_name(name):
            try:
                total += os.path.getsize(os.path.join(path, name))
            except FileNotFoundError:
                pass
    return total
