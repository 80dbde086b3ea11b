"""The daemon (pysos.compactor.daemon) and its command line ``python -m pysos.compactor``."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import pysos
from compactor_util import churned_store, contents, unexpected_files
from pysos.compactor import daemon, plan
from pysos.segments import locks, manifest

CLI = [sys.executable, "-m", "pysos.compactor"]


def run_cli(*args, timeout=60):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_help_lists_the_options():
    """--help exits 0 and documents every option of the issue."""
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--once", "--threshold", "--min-dead-bytes", "--interval", "--rate-limit", "--verbose"):
        assert option in done.stdout


@pytest.mark.parametrize("case", ["missing", "foreign", "file", "empty"])
def test_not_a_store_is_one_line_and_non_zero(fast_tmp, case):
    """A path that is not a pysos store: one line on stderr, non-zero exit, no traceback, nothing created."""
    path = fast_tmp / "x"
    if case == "foreign":
        path.mkdir()
        (path / "notes.txt").write_text("hello")
    elif case == "file":
        path.write_text("hello")
    elif case == "empty":
        path.mkdir()
    before = sorted(os.listdir(path)) if path.is_dir() else None
    done = run_cli(path, "--once")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and str(path) in done.stderr
    assert (sorted(os.listdir(path)) if path.is_dir() else None) == before
    assert path.exists() == (case != "missing")


def test_bad_option_values_are_usage_errors(store_path):
    """A ratio above 1 or a malformed size exits 2 with a usage message, no traceback."""
    churned_store(store_path, n=50)
    for args in (["--threshold", "1.5"], ["--min-dead-bytes", "lots"], ["--interval", "0"]):
        done = run_cli(store_path, "--once", *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr and "usage" in done.stderr


def test_parse_size_accepts_suffixes():
    """Sizes take plain bytes and binary k/M/G suffixes."""
    assert [daemon.parse_size(s) for s in ("4096", "512k", "4MiB", "4M", "1.5G", "0")] == [
        4096, 512 * 1024, 4 * 2**20, 4 * 2**20, 3 * 2**29, 0]


def test_once_merges_every_sealed_segment_and_seals_nothing(store_path):
    """--once merges all sealed segments, keeps the writer's segment as it is, logs, exits 0."""
    model = churned_store(store_path)
    before = manifest.read(str(store_path))
    newest = before.segments[-1]
    newest_bytes = (store_path / newest).read_bytes()
    done = run_cli(store_path, "--once", "--rate-limit", "1M")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{len(before.segments) - 1} segment(s) in" in done.stderr and "bytes reclaimed" in done.stderr
    after = manifest.read(str(store_path))
    assert after.segments[-1] == newest and (store_path / newest).read_bytes() == newest_bytes
    assert all(name not in before.segments for name in after.segments[:-1])
    assert contents(store_path) == model
    assert unexpected_files(store_path) == []


def test_once_works_beside_an_open_writer(store_path):
    """--once compacts while the writer has the store open; the writer adopts and goes on."""
    model = churned_store(store_path)
    with pysos.Dict(store_path, segment_size=1024, autocompact=False) as d:
        done = run_cli(store_path, "--once")
        assert done.returncode == 0, done.stderr
        d.refresh()
        assert dict(d.items()) == model
        d["after"] = 1
        model["after"] = 1
        assert d.stats()["generation"] == manifest.read(str(store_path)).generation
    assert contents(store_path) == model


def test_once_waits_for_another_compactor(store_path):
    """--once does not merge while another process holds the compaction lock, then does."""
    model = churned_store(store_path)
    before = manifest.read(str(store_path))
    lock = locks.FileLock(str(store_path), locks.COMPACT)
    lock.acquire()
    try:
        proc = subprocess.Popen(CLI + [str(store_path), "--once"], stderr=subprocess.PIPE, text=True)
        first_line = proc.stderr.readline()  # blocks until the daemon says something
        assert "waiting for another compactor" in first_line and f"pid {os.getpid()}" in first_line
        assert proc.poll() is None
        assert manifest.read(str(store_path)) == before
    finally:
        lock.release()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert manifest.read(str(store_path)).generation == before.generation + 1
    assert contents(store_path) == model


def test_daemon_compacts_on_rotation_events(store_path):
    """The daemon wakes on the writer's rotations (watchdog events, no polling: the interval
    is an hour) and compacts once garbage passes the threshold."""
    churned_store(store_path, n=10)
    d = daemon.Daemon([str(store_path)], plan.Policy(0.5, 0), interval=3600.0)
    thread = threading.Thread(target=d.run)
    thread.start()
    try:
        wait_for(lambda: d.stores[0].next_check > 0, what="the first look")
        with pysos.Dict(store_path, segment_size=512, autocompact=False) as w:
            i = 0
            while d.compactions == 0:
                w[f"k{i % 5}"] = "v" * 100
                i += 1
                assert i < 50_000, "no compaction happened"
            assert dict(w.items())  # still readable after the outside swap
    finally:
        d.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert unexpected_files(store_path) == []


def test_daemon_skips_a_locked_store_and_retries(store_path):
    """When another compactor holds the lock the daemon skips the store, then compacts it later."""
    churned_store(store_path)
    d = daemon.Daemon([str(store_path)], plan.Policy(0.5, 0), interval=3600.0)
    store = d.stores[0]
    lock = locks.FileLock(str(store_path), locks.COMPACT)
    lock.acquire()
    try:
        d._look(store)
        assert d.compactions == 0 and store.next_check <= time.monotonic() + daemon.LOCK_RETRY
    finally:
        lock.release()
    store.dirty = True
    d._look(store)
    assert d.compactions >= 1


def test_daemon_estimate_matches_the_exact_dead_bytes(store_path):
    """The daemon's per-segment dead-byte estimate (hints/scans) equals the writer's exact
    one (from its index) on a store of overwrites."""
    churned_store(store_path, n=400, deletes=0.0)
    with pysos.Dict(store_path, autocompact=False) as d:
        store = d._store
        sizes = {n: os.path.getsize(os.path.join(store.directory, s)) for s in store.manifest.segments
                 for n in [int(s[4:12])]}
        exact = plan.dead_from_locations(store.index.values(), sizes)
    current, estimates = daemon.StoreWatch(str(store_path), "dict").estimates()
    assert [e.dead for e in estimates] == [exact[int(n[4:12])] for n in current.segments]


def test_sigint_stops_the_daemon_cleanly(store_path):
    """SIGINT makes the watching daemon log that it stops and exit 0, without a traceback."""
    churned_store(store_path, n=50)
    proc = subprocess.Popen(CLI + [str(store_path), "--interval", "0.2"], stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        assert "watching 1 store" in line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "Traceback" not in err and "stopped" in err
