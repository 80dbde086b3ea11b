"""Fork (DESIGN.md, "In the field"): a forked child never writes through its parent's
writable handle nor frees its writer lock, never hangs on a lock another thread held at the
fork, and keeps reading through a readonly handle."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pysos

CHILD_MESSAGE = "open the store in the child"


def _fork_and_wait(child, timeout: float = 10.0) -> int:
    """Run ``child()`` in a forked child; its exit status (99: it hung and was killed).

    The child leaves with ``os._exit``: pytest's own machinery never runs twice.
    """
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            status = child()
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 99


def _refused(action) -> int:
    """0 if ``action()`` raises pysos.Error telling to open the store in the child, else 1."""
    try:
        action()
    except pysos.Error as exc:
        return 0 if CHILD_MESSAGE in str(exc) else 2
    return 1


def test_child_cannot_write_through_the_parents_writer(store_path):
    """A write, delete or batch in a forked child raises pysos.Error; the parent's writes all stay."""
    d = pysos.Dict(store_path, autocompact=False)
    for i in range(100):
        d[f"k{i}"] = i

    def child():
        def write():
            d["child"] = 1

        def delete():
            del d["k1"]

        def batch():
            with d.batch():
                d["b"] = 1

        return max(_refused(write), _refused(delete), _refused(batch))

    assert _fork_and_wait(child) == 0
    for i in range(100, 200):
        d[f"k{i}"] = i  # the parent goes on appending where it was
    d.close()
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {f"k{i}": i for i in range(200)}


def _pool_write(i):
    try:
        _POOL_STORE[f"child{i}"] = i
    except pysos.Error as exc:
        return str(exc)
    return "written"


_POOL_STORE = None


def test_fork_pool_children_cannot_write_and_store_stays_whole(store_path):
    """multiprocessing fork-pool workers get pysos.Error on writes to an inherited writer; nothing is lost."""
    global _POOL_STORE
    _POOL_STORE = d = pysos.List(store_path, autocompact=False)
    try:
        d.extend(range(50))
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = pool.map(_pool_write, range(8))
        assert all(CHILD_MESSAGE in r for r in results), results
        d.extend(range(50, 100))
    finally:
        _POOL_STORE = None
        d.close()
    with pysos.List(store_path, readonly=True) as r:
        assert list(r) == list(range(100))


def test_child_reads_through_the_parents_writer_raise_not_stale(store_path):
    """A read in the child through the parent's writer raises the same error (never stale data)."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d["a"] = 1
        assert _fork_and_wait(lambda: max(_refused(lambda: d["a"]), _refused(lambda: len(d)))) == 0
        assert d["a"] == 1


LOCK_HOLDER = textwrap.dedent("""
    import gc, os, sys, time, pysos
    d = pysos.Dict(sys.argv[1], autocompact=False)
    d["k"] = 1
    pid = os.fork()
    if pid == 0:
        if sys.argv[2] == "close":
            d.close()
        elif sys.argv[2] == "gc":
            del d
            gc.collect()
        sys.exit(0)   # a normal exit: atexit runs the weakref finalizers
    os.waitpid(pid, 0)
    print("ready", flush=True)
    sys.stdin.read()
    d["after"] = 2
    d.close()
""")


@pytest.mark.parametrize("how", ["exit", "close", "gc"])
def test_child_never_releases_the_parents_writer_lock(store_path, how):
    """A child that exits, closes or drops the inherited writer leaves the parent's lock held."""
    proc = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(store_path), how],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        with pytest.raises(pysos.LockedError):
            pysos.Dict(store_path)
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {"k": 1, "after": 2}


def _hold_lock_while_forking(handle, child) -> int:
    """Fork while another thread holds the handle's lock (as the compaction thread does)."""
    taken, done = threading.Event(), threading.Event()

    def holder():
        with handle._lock:
            taken.set()
            done.wait()

    thread = threading.Thread(target=holder)
    thread.start()
    taken.wait()
    try:
        return _fork_and_wait(child)
    finally:
        done.set()
        thread.join()


def test_child_forked_while_another_thread_holds_the_writer_lock_does_not_hang(store_path):
    """A child forked while another thread holds the writer's lock gets the error, not a hang."""
    with pysos.Dict(store_path, autocompact=False) as d:
        d["a"] = 1
        assert _hold_lock_while_forking(d, lambda: _refused(lambda: d["a"])) == 0


def test_reader_forked_while_another_thread_holds_its_lock_keeps_reading(store_path):
    """A readonly handle forked while another thread holds its lock reads correctly in the child."""
    with pysos.Dict(store_path, autocompact=False) as w:
        w.update({f"k{i}": i for i in range(20)})
        with pysos.Dict(store_path, readonly=True) as r:
            assert r["k3"] == 3

            def child():
                w_values = dict(r.items())
                return 0 if w_values == {f"k{i}": i for i in range(20)} and r["k5"] == 5 else 1

            assert _hold_lock_while_forking(r, child) == 0
            assert r["k7"] == 7


def _pool_read(key):
    _POOL_STORE.refresh()
    return _POOL_STORE.get(key)


def test_readonly_handle_works_in_fork_pool_children(store_path):
    """Fork-pool workers read through an inherited readonly handle and follow the writer's later changes."""
    global _POOL_STORE
    with pysos.Dict(store_path, autocompact=False) as w:
        w.update({f"k{i}": i for i in range(10)})
        _POOL_STORE = r = pysos.Dict(store_path, readonly=True)
        try:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                assert pool.map(_pool_read, [f"k{i}" for i in range(10)]) == list(range(10))
                w.update({f"k{i}": i * 10 for i in range(10)})
                assert pool.map(_pool_read, [f"k{i}" for i in range(10)]) == [i * 10 for i in range(10)]
            assert r["k9"] == 90
        finally:
            _POOL_STORE = None
            r.close()
