"""Compaction at default settings for a churning service (issue 13): early sealing, the
no-op compaction, the writer's thread standing aside for a daemon, and the thread's merge
from the writer's index."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

import pysos
from compactor_util import contents, unexpected_files
from pysos.compactor import index_merge, merge
from pysos.errors import CorruptionError
from pysos.segments import index, locks, manifest

MiB = 2**20
CLI = [sys.executable, "-m", "pysos.compactor"]


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def churn(d, model, rng, records, keys, pad=150, batch=50):
    """``records`` seeded sets (in batches) and a few deletes on ``keys`` keys."""
    for start in range(0, records, batch):
        with d.batch():
            for i in range(start, min(start + batch, records)):
                key = f"s{rng.randrange(keys)}"
                if rng.random() < 0.1:
                    d.pop(key, None)
                    model.pop(key, None)
                else:
                    value = {"i": i, "pad": "x" * pad}
                    d[key] = value
                    model[key] = value


def adopted(d):
    """How many merges of the writer's thread its writer has adopted (the MANIFEST changes
    before, files are deleted and the writer adopts after)."""
    last = d._store.last_compaction
    return last.get("compactions", 0) if last else 0


def sealed_sizes(path):
    current = manifest.read(str(path))
    return [current.size_of(name) for name in current.segments[:-1]]


def files_and_times(path):
    return {name: os.stat(os.path.join(path, name)).st_mtime_ns
            for name in os.listdir(path) if not name.endswith(".lock")}


# --- early sealing ---------------------------------------------------------------------------


def test_writer_seals_its_segment_early_once_garbage_dominates(store_path):
    """A churning store seals its segment long before segment_size, once its dead bytes pass
    the floor (segment_size / 4 here) and half of the segment; nothing is lost."""
    model = {}
    with pysos.Dict(store_path, segment_size=1 * MiB, autocompact=False) as d:
        churn(d, model, random.Random(1), 3000, keys=50)  # ~560 KB written, ~9 KB live
        assert d.stats()["segments"] >= 2
        sizes = sealed_sizes(store_path)
        assert sizes and all(256 * 1024 <= size < 1 * MiB // 2 for size in sizes), sizes
    assert contents(store_path) == model


def test_early_seal_counts_expired_keys_as_garbage_at_once(store_path):
    """The writer's checkpoint (every MiB) drops the keys due before it weighs its segment:
    writes alone look at their deadlines only once a second, and under a churn of
    short-lived keys a second of them is megabytes the seal (and the disk) would otherwise
    wait for. Only the wall clock moves here, so the writer's once-a-second look never
    comes; the first checkpoint after it seals."""
    from fake_clock import FakeClock

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, expire=1, autocompact=False) as d:
            for n in range(30000):  # ~5 MiB
                d[f"old:{n}"] = {"user": "x" * 150}
            clock.step_wall(2)
            for n in range(7000):  # ~1.2 MiB more: one checkpoint, with 5 MiB of it expired
                d[f"new:{n}"] = {"user": "x" * 150}
            assert d.stats()["segments"] == 2
            assert len(d) == 7000
    finally:
        restore()


def test_no_early_seal_without_garbage(store_path):
    """Distinct keys (no garbage): the segment fills to segment_size as before."""
    with pysos.Dict(store_path, segment_size=1 * MiB, autocompact=False) as d:
        d.update({f"k{i}": "x" * 150 for i in range(4000)})  # ~700 KB, all live
        assert d.stats()["segments"] == 1


def test_thread_reclaims_garbage_at_default_settings(store_path):
    """pysos.Dict(path) with nothing tuned: ~12 MiB of churn on 200 keys (~35 KB live) is
    compacted by the background thread well before a 64 MiB segment could fill, and disk
    stays near live data plus the default floors (4 MiB)."""
    model = {}
    rng = random.Random(2)
    with pysos.Dict(store_path) as d:
        peak = 0
        for _ in range(12):
            churn(d, model, rng, 5500, keys=200)  # ~1 MiB
            peak = max(peak, d.stats()["disk_bytes"])
        wait_for(lambda: d.stats()["compactions"] > 0, what="a compaction by the thread")
        stats = d.stats()
        assert stats["compactions"] > 0 and d._store.compactor.compactions > 0
        assert stats["disk_bytes"] <= 2 * stats["live_bytes"] + 10 * MiB, stats
        assert peak <= 3 * stats["live_bytes"] + 16 * MiB, peak
        assert dict(d.items()) == model
    assert contents(store_path) == model


def test_short_ttl_churn_stays_within_the_bound_at_default_settings(store_path):
    """pysos.Dict(path, expire=1) with nothing else tuned, fresh keys written as sessions
    are (nothing is ever overwritten: all the garbage is expired records), the clock moved
    a second after each ~1 MiB: the thread keeps the disk within issue 19's bound,
    2 x live + 8 MiB (tools/bench_expiry_churn.py measures it in real time)."""
    from fake_clock import FakeClock

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, expire=1) as d:
            n = 0
            for _ in range(16):  # ~16 MiB written, ~1 MiB alive at a time
                with d.batch():
                    for _ in range(5000):
                        d[f"session:{n}"] = {"user": "x" * 150}
                        n += 1
                clock.advance(1)
            assert len(d) == 0
            bound = lambda: 2 * d.stats()["live_bytes"] + 8 * MiB  # noqa: E731
            wait_for(lambda: d.stats()["disk_bytes"] <= bound(), what="disk within 2 x live + 8 MiB")
            assert d.stats()["compactions"] > 0
    finally:
        restore()


def test_thread_is_woken_by_garbage_without_a_rotation(store_path):
    """Overwriting every key of a sealed segment makes it all garbage while the segment
    being written holds only live data (no early seal, no rotation): the writer's
    checkpoints wake the thread, which reclaims the sealed segment."""
    with pysos.Dict(store_path, segment_size=4 * MiB) as d:
        thread = d._store.compactor
        thread.min_dead_bytes, thread.ratio = 256 * 1024, 0.3
        d.update({f"k{i}": "a" * 200 for i in range(3000)})
        d.compact()  # one sealed segment (~650 KB, all live), an empty one being written
        segments = d.stats()["segments"]
        for i in range(4500):  # ~1 MiB: the sealed segment all dead, below the early-seal floor here
            d[f"k{i % 3000}"] = "b" * 200
        wait_for(lambda: thread.compactions > 0, what="a compaction woken by garbage")
        stats = d.stats()
        assert stats["segments"] <= segments  # nothing was sealed meanwhile
        assert stats["reclaimed_bytes_total"] > 400 * 1024  # most of the sealed segment
        assert all(d[f"k{i}"] == "b" * 200 for i in range(0, 3000, 7))


# --- the thread's merge from the index -------------------------------------------------------


def test_merge_live_refuses_a_corrupt_record_and_changes_nothing(store_path):
    """merge_live verifies each copied record's checksum: a damaged one raises
    CorruptionError naming the file, and the MANIFEST and files are left as they were."""
    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        for i in range(200):
            d[f"k{i if i < 30 else i % 20}"] = {"i": i, "pad": "y" * 40}  # k20..k29 stay in the first segment
        store = d._store
        current = store.manifest
        live = list(store.index.items())
        first = current.segments[0]
        sealed_live = [(k, loc) for k, loc in live if index.unpack(loc)[0] == int(first[4:12])]
        assert sealed_live
        _, location = sealed_live[0]
        offset = index.unpack(location)[1]
        path = os.path.join(store_path, first)
        data = bytearray(open(path, "rb").read())
        data[offset + 20] ^= 0x01
        with open(path, "r+b") as f:
            f.write(data)
        before = sorted(os.listdir(store_path))
        lock = merge._take_compaction_lock(str(store_path), 0.0)
        try:
            with pytest.raises(CorruptionError, match=first):
                index_merge.merge_live(str(store_path), current, 1, sealed_live, segment_size=4096)
        finally:
            lock.release()
        assert manifest.read(str(store_path)) == current
        assert sorted(os.listdir(store_path)) == before


def test_list_store_compacted_by_the_thread_matches_a_list(store_path):
    """A List under churn, compacted by the thread through merge_live (position keys are
    arrays), reads back equal to a list, also after a reopen."""
    rng = random.Random(3)
    model = []
    with pysos.List(store_path, segment_size=64 * 1024) as lst:
        c = lst._store.compactor
        c.min_dead_bytes = 0
        for i in range(3000):
            if model and rng.random() < 0.5:
                j = rng.randrange(len(model))
                lst[j] = model[j] = {"i": i, "pad": "z" * 60}
            else:
                lst.append({"i": i})
                model.append({"i": i})
        wait_for(lambda: c.compactions > 0, what="a compaction by the thread")
        assert list(lst) == model
    with pysos.List(store_path, autocompact=False) as lst:
        assert list(lst) == model


# --- a compaction with nothing to reclaim ----------------------------------------------------


def test_compact_with_nothing_to_reclaim_writes_nothing(store_path):
    """compact() on a store without garbage returns reclaimed_bytes 0 at once, and neither
    the generation nor any file changes."""
    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        for i in range(300):
            d[f"k{i % 30}"] = i
        first = d.compact()
        assert first["reclaimed_bytes"] > 0
        generation = d.stats()["generation"]
        before = files_and_times(store_path)
        for _ in range(3):
            again = d.compact()
            assert again["reclaimed_bytes"] == 0 and again["segments_in"] == 0
        assert d.stats()["generation"] == generation
        assert files_and_times(store_path) == before


def test_cli_and_once_with_nothing_to_reclaim_write_nothing(store_path):
    """`pysos compact` (with and without a writer beside it) and `python -m pysos.compactor
    --once` on a compacted store report 0 bytes and change no file."""
    with pysos.Dict(store_path, segment_size=4096, autocompact=False) as d:
        for i in range(300):
            d[f"k{i % 30}"] = i
        d.compact()
        d[f"k{1}"] = "new"  # a live record in the newest segment: still nothing in sealed ones to drop
        d[f"k{2}"] = "new"
    # the newest segment's records override sealed ones: one real reclaim, then nothing
    subprocess.run(CLI + ["--once", str(store_path)], check=True, capture_output=True, timeout=60)
    before = files_and_times(store_path)
    generation = manifest.read(str(store_path)).generation
    done = subprocess.run(CLI + ["--once", str(store_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    cli = subprocess.run([sys.executable, "-m", "pysos", "compact", "--json", str(store_path)],
                         capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    assert '"reclaimed_bytes":0' in cli.stdout.replace(" ", "")
    with pysos.Dict(store_path, autocompact=False):  # a writer holds the lock: the beside-writer path
        beside = subprocess.run([sys.executable, "-m", "pysos", "compact", "--json", str(store_path)],
                                capture_output=True, text=True, timeout=60)
        assert beside.returncode == 0, beside.stderr
        assert '"reclaimed_bytes":0' in beside.stdout.replace(" ", "")
    assert manifest.read(str(store_path)).generation == generation
    assert {k: v for k, v in files_and_times(store_path).items()} == before


# --- the thread and a daemon -----------------------------------------------------------------


def test_thread_stands_aside_while_a_daemon_watches(store_path):
    """A daemon process beside a writer (autocompact=True): the writer's thread compacts
    nothing and the daemon never finds the compaction lock taken; the daemon reclaims the
    garbage (early sealing wakes it). Once the daemon stops, the thread compacts again."""
    pysos.Dict(store_path).close()
    env = dict(os.environ)
    daemon = subprocess.Popen(CLI + ["-v", "--min-dead-bytes", "64k", str(store_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    model = {}
    rng = random.Random(4)
    try:
        wait_for(lambda: locks.held_by_other(str(store_path), locks.DAEMON), what="the daemon's lock")
        with pysos.Dict(store_path, segment_size=256 * 1024) as d:
            thread = d._store.compactor
            thread.min_dead_bytes = 64 * 1024
            for _ in range(8):
                churn(d, model, rng, 1500, keys=40)
                time.sleep(0.05)
            wait_for(lambda: manifest.read(str(store_path)).compactions[0] >= 2, what="the daemon's compactions")
            assert thread.compactions == 0
            daemon.send_signal(signal.SIGTERM)
            _, err = daemon.communicate(timeout=60)
            assert daemon.returncode == 0, err
            assert "another compactor holds the lock" not in err
            assert "compacted" in err
            for _ in range(8):
                churn(d, model, rng, 1500, keys=40)
            wait_for(lambda: thread.compactions > 0, what="the thread after the daemon stopped")
            assert dict(d.items()) == model
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert contents(store_path) == model
    with pysos.Dict(store_path, autocompact=False) as d:
        d.compact()
    assert unexpected_files(store_path) == []


# --- the outputs of a fruitless merge --------------------------------------------------------


def test_thread_reclaims_garbage_added_to_a_fruitless_merges_output(store_path):
    """A segment the thread marked clean after a fruitless merge (it had to keep the
    tombstones an older segment needs) gets its records overwritten: that new garbage is
    reclaimed though no older segment changes, and disk comes within 2 x live + 2 x the
    floor (the default bound, 2 x live + 8 MiB, scaled to this store's 57 KiB floor)."""
    size = 256 * 1024
    floor = 57 * 1024
    with pysos.Dict(store_path, segment_size=size) as d:
        store, thread = d._store, d._store.compactor
        thread.ratio, thread.max_merge_bytes = 0.0, 64 * 1024  # one segment per merge here
        thread.min_dead_bytes = 1 << 40  # nothing while building
        for i in range(600):  # ~24 KB in the oldest segment, all dead once deleted
            d[f"victim{i:05d}"] = 0
        d["keeper"] = 1  # a live record: the oldest segment is not free to drop (plan.dead_prefix)
        store.seal()
        with d.batch():  # ~24 KB of tombstones the oldest segment keeps alive, ~16 KB shadowed, ~180 KB live
            for i in range(600):
                del d[f"victim{i:05d}"]
            for i in range(180):
                d[f"hot{i}"] = "y" * 60
                d[f"hot{i}"] = "x" * 1000
        store.seal()
        oldest, marked = manifest.read(str(store_path)).segments[:2]
        thread.min_dead_bytes = floor  # above the tombstones and the oldest segment's dead bytes, below them and the shadowed
        thread.poke()
        wait_for(lambda: thread.compactions == 1, what="the fruitless merge")
        time.sleep(0.2)
        assert manifest.read(str(store_path)).segments[0] == oldest and len(thread._clean) == 1, thread._clean
        model = {}
        written = 0
        while True:
            for i in range(180):  # every record of the marked segment is overwritten (small values)
                d[f"hot{i}"] = model[f"hot{i}"] = written
                written += 30
            time.sleep(0.002)
            stats = d.stats()
            if stats["disk_bytes"] <= 2 * stats["live_bytes"] + 2 * floor:
                break
            assert written < 4 * MiB, (stats, thread._clean)
        assert manifest.read(str(store_path)).segments[0] == oldest  # no older segment changed meanwhile
        model["keeper"] = 1
        assert dict(d.items()) == model
    assert contents(store_path) == model


def test_daemon_counts_garbage_added_to_a_fruitless_merges_output(store_path, monkeypatch):
    """The daemon marks a fruitless merge's outputs with what its estimate calls dead in them
    right after the merge; records of theirs overwritten later count as dead again."""
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    monkeypatch.setattr(plan, "fruitless", lambda estimated, reclaimed: True)  # as if it were
    with pysos.Dict(store_path, segment_size=10**6, autocompact=False) as d:
        d.update({f"k{i}": "x" * 100 for i in range(50)})
        d.update({f"k{i}": "y" * 100 for i in range(50)})  # shadowed in the segment: dead
        d._store.seal()
        watch = StoreWatch(str(store_path), "dict")
        result = watch.compact_if_due(plan.Policy(ratio=0.0, min_dead_bytes=1), 10**6, lambda n: None)
        assert result is not None and result["reclaimed_bytes"] > 5000
        (output,) = result["outputs"]
        assert set(watch.clean) == {output} and watch.clean[output].kept == 0
        d.update({f"k{i}": 0 for i in range(25)})
        _, estimates = watch.estimates()
        assert estimates[0].name == output and estimates[0].dead > 25 * 100


@pytest.mark.parametrize("move", ["advance", "step_wall"])
def test_thread_drops_an_oldest_segment_whose_records_all_expired_below_the_floor(store_path, move):
    """Under a churn of short-lived keys, a merge's output is all live when written and all
    expired a TTL later, yet smaller than the 4 MiB floor: waiting for more garbage to pass
    the floor kept it on disk while the next segment filled, and the merge of both went
    past 2 x live + 8 MiB (tools/bench_expiry_churn.py). A run of sealed segments from the
    oldest with no live record costs no copying to drop, so the thread drops it as soon as
    it looks (woken by the garbage of the segment being written), whatever the floor.
    ``step_wall``: only the wall clock moves, so the writer's once-a-second look never
    comes (its gate is monotonic): its checkpoints have the keys due dropped."""
    from fake_clock import FakeClock

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, expire=1) as d:
            thread = d._store.compactor
            for n in range(12000):  # ~2 MiB of sessions, below the floor
                d[f"session:{n}"] = {"user": "x" * 150}
            d._store.seal()  # as a rotation would
            expired = manifest.read(str(store_path)).segments[:-1]
            assert len(expired) == 1
            merges = thread.compactions
            getattr(clock, move)(2)
            for n in range(12000):  # ~2.6 MiB of garbage in the segment being written, no early seal
                d.set("counter", {"n": n, "pad": "y" * 180}, expire=None)
            wait_for(lambda: adopted(d) == merges + 1, timeout=15, what="the expired segment dropped")
            assert expired[0] not in manifest.read(str(store_path)).segments
            assert d._store.last_compaction["bytes_out"] == 0
            assert dict(d.items()) == {"counter": {"n": 11999, "pad": "y" * 180}}
            assert d.stats()["segments"] == 1
        assert contents(store_path) == {"counter": {"n": 11999, "pad": "y" * 180}}
    finally:
        restore()


def test_garbage_as_big_as_the_oldest_segment_wakes_the_thread_below_the_floor(store_path):
    """A sealed segment all expired, ~2 MiB (below the floor), then only new keys that
    never expire: the store's dead bytes never pass the policy, but once they reach the
    oldest segment's size the writer's checkpoint wakes the thread, which drops it."""
    from fake_clock import FakeClock

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, expire=1) as d:
            for n in range(12000):
                d[f"session:{n}"] = {"user": "x" * 150}
            d._store.seal()
            expired = manifest.read(str(store_path)).segments[0]
            clock.advance(2)
            for n in range(15000):  # ~1.8 MiB, all live: a checkpoint or more
                d.set(f"user:{n}", "y" * 90, expire=None)
            wait_for(lambda: adopted(d) == 1, timeout=15, what="the expired segment dropped")
            assert expired not in manifest.read(str(store_path)).segments
            assert len(d) == 15000
    finally:
        restore()


def test_thread_drops_its_own_merges_output_once_every_record_in_it_expired(store_path):
    """The churn's cycle in small: a merge from the oldest copies the keys still alive into
    an output that comes first in the MANIFEST though its number is the highest, and that
    is all expired a TTL later. The thread knows when (the last deadline it copied), looks
    then by itself (no write wakes it) and drops the output whatever the floor."""
    from fake_clock import FakeClock

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, expire=1) as d:
            thread = d._store.compactor
            for n in range(30000):  # ~5 MiB
                d[f"old:{n}"] = {"user": "x" * 150}
            clock.advance(0.6)
            for n in range(15000):  # ~2.5 MiB, alive when the first 5 MiB expire
                d[f"new:{n}"] = {"user": "x" * 150}
            clock.advance(0.6)
            d["last"] = {"user": "x" * 150}
            d._store.seal()  # (else the next checkpoint seals it early: 5 MiB dead of 7.5)
            # the merge, then the thread's next look, which finds nothing due (_quiet)
            wait_for(lambda: thread.compactions == 1 and thread._quiet_below > 0, what="the first merge")
            current = manifest.read(str(store_path)).segments
            assert len(current) == 2 and current[0] > current[1]  # the output first, numbered last
            assert len(d) == 15001
            clock.advance(1)
            wait_for(lambda: adopted(d) == 2, timeout=15, what="the expired output dropped")
            assert current[0] not in manifest.read(str(store_path)).segments
            assert d._store.last_compaction["bytes_out"] == 0
            assert len(d) == 0 and d.stats()["segments"] == 1
        assert contents(store_path) == {}
    finally:
        restore()


def test_live_key_in_finds_a_key_of_the_segment_and_rechecks_the_last_one():
    """The thread's test for 'this segment holds a live record' (background.live_key_in):
    the key found last time is only a first guess, checked where it lies now."""
    from pysos.compactor.background import NO_KEY, live_key_in

    def at(number, offset):
        return index.segment_base(number) | (offset << index.OFFSET_SHIFT) | 10

    locations = {"a": at(5, 0), "b": at(3, 7), "c": at(5, 99)}
    assert live_key_in(locations, 3) == "b"
    assert live_key_in(locations, 4) is NO_KEY
    assert live_key_in(locations, 5, witness="c") == "c"
    locations["b"] = at(6, 0)  # rewritten into a later segment
    assert live_key_in(locations, 3, witness="b") is NO_KEY
    assert live_key_in(locations, 6, witness="b") == "b"
    del locations["b"]
    assert live_key_in(locations, 6, witness="b") is NO_KEY
    assert live_key_in({}, 1, witness="b") is NO_KEY


def test_thread_does_not_spin_while_another_compactor_holds_the_lock_past_its_wake_time(store_path):
    """The thread's own wake time (the last deadline of its merge's outputs) passes while
    compact() elsewhere holds the compaction lock: it looks, is refused, and goes back to
    its usual retry (every few seconds), not to a look every 10 ms until the lock is free."""
    with pysos.Dict(store_path) as d:
        thread = d._store.compactor
        lock = merge._take_compaction_lock(str(store_path), 0.0)
        try:
            looks = []
            look = thread._merge_once
            thread._merge_once = lambda store: looks.append(1) or look(store)
            thread._oldest_dead_at = time.time() + 0.3
            d["a"] = 1
            del d["a"]
            d._store.seal()  # an oldest segment with nothing live: free to drop, if the lock were free
            time.sleep(1.5)
            assert 1 <= len(looks) <= 3, len(looks)
        finally:
            lock.release()
        thread.poke()
        wait_for(lambda: d.stats()["segments"] == 1, what="the dead segment dropped once the lock is free")


def test_daemon_drops_an_oldest_segment_whose_records_all_expired_below_the_floor(store_path):
    """The daemon (python -m pysos.compactor), at its default policy: a sealed segment whose
    every record expired, far below the 4 MiB floor, is dropped at its next look (no copy,
    no output), as the writer's thread does; a sealed segment with one live record is not
    (the policy is not due)."""
    from fake_clock import FakeClock
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, autocompact=False) as d:
            for n in range(500):
                d.set(f"session:{n}", {"user": "x" * 100}, expire=5)
            d["kept"] = 1
            d._store.seal()
            d.set("later", 2, expire=5)  # in the newest segment: never merged
        watch = StoreWatch(str(store_path), "dict")
        no_floor = plan.Policy()
        assert watch.compact_if_due(no_floor, 10**6, lambda n: None) is None  # "kept" is live in it
        with pysos.Dict(store_path, autocompact=False) as d:
            del d["kept"]
        first = manifest.read(str(store_path)).segments[0]
        assert watch.compact_if_due(no_floor, 10**6, lambda n: None) is None  # not expired yet
        clock.advance(6)
        result = watch.compact_if_due(no_floor, 10**6, lambda n: None)
        assert result is not None and result["bytes_out"] == 0 and result["segments_in"] == 1
        assert first not in manifest.read(str(store_path)).segments
        assert watch.compact_if_due(no_floor, 10**6, lambda n: None) is None
        assert contents(store_path) == {}
    finally:
        restore()


def test_daemon_free_drop_never_takes_segments_it_did_not_estimate(store_path, monkeypatch):
    """Another compactor (compact(), the writer's thread) may publish outputs between the
    daemon's estimate and its merge: outputs it never estimated are live data, and a drop
    that is free by its estimate must not turn into a rewrite of them."""
    from fake_clock import FakeClock
    from pysos.compactor import plan
    from pysos.compactor.daemon import StoreWatch

    clock = FakeClock()
    restore = clock.install()
    try:
        with pysos.Dict(store_path, autocompact=False) as d:
            for n in range(200):
                d.set(f"session:{n}", "x" * 100, expire=5)
            d._store.seal()
            d.update({f"k{n}": n for n in range(2000)})  # live, in a second sealed segment
            d._store.seal()
        clock.advance(6)  # the oldest segment is all expired: a free drop by the estimate
        watch = StoreWatch(str(store_path), "dict")
        estimated = watch.estimates

        def estimates_then_another_compaction():
            found = estimated()
            with pysos.Dict(store_path, autocompact=False) as other:
                other.compact()  # merges both sealed segments: one output, all live
            return found

        monkeypatch.setattr(watch, "estimates", estimates_then_another_compaction)
        result = watch.compact_if_due(plan.Policy(), 10**6, lambda n: None)
        assert result is None  # nothing free left to drop: no merge at all
        assert contents(store_path) == {f"k{n}": n for n in range(2000)}
    finally:
        restore()
