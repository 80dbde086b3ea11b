"""Locks across processes: a SIGKILLed writer or compactor leaves nothing that blocks the
next one, a waiting writer gets the store when it is freed, the refusal names the holder,
readers take no lock at all, and a reader racing the creation of a store never crashes."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import pysos
from pysos.compactor import compact_directory
from pysos.segments import locks
import mp_workers as w

HOLDER = textwrap.dedent("""
    import sys, pysos
    from pysos.segments import locks
    s = pysos.{cls}(sys.argv[1], autocompact=False)
    if sys.argv[2] == "both":
        locks.FileLock(s.path, locks.COMPACT).acquire()   # as a compactor in mid-merge would
    for i in range(200):
        s.append(i) if isinstance(s, pysos.List) else s.__setitem__(i, i)
    print("ready", flush=True)
    sys.stdin.read()
    s.close()
""")


def _holder(path, cls="Dict", what="writer"):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(cls=cls), str(path), what],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _flock_pids():
    """Pids that hold a flock anywhere, from /proc/locks."""
    with open("/proc/locks") as f:
        return {int(line.split()[4]) for line in f if "FLOCK" in line}


def test_sigkilled_writer_and_compactor_leave_no_blocking_lock(store_path):
    """After SIGKILL of a process holding the writer and compaction locks, both are free at once and its data is there."""
    proc = _holder(store_path, what="both")
    assert locks.holder(str(store_path), locks.WRITER) == proc.pid
    assert locks.holder(str(store_path), locks.COMPACT) == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert locks.holder(str(store_path), locks.WRITER) is None
    assert locks.holder(str(store_path), locks.COMPACT) is None
    with pysos.Dict(store_path, autocompact=False) as d:  # lock_timeout=0: no waiting
        assert [d[i] for i in range(200)] == list(range(200))
        d.update({"x": 1})
        compact_directory(d.path, segment_size=2**20, wait=0.0)  # LockedError if it were stuck


@pytest.mark.parametrize("cls", ["Dict", "List"])
def test_refusal_names_holder_and_waiting_writer_gets_the_store(store_path, cls):
    """A second writer is refused with the holder's pid; one waiting with lock_timeout opens as soon as the holder closes."""
    holder = _holder(store_path, cls=cls)
    try:
        with pytest.raises(pysos.LockedError) as info:
            getattr(pysos, cls)(store_path)
        assert str(holder.pid) in str(info.value) and str(store_path) in str(info.value)
        if cls == "Dict":
            ctx = w.context()
            tried, queue = ctx.Event(), ctx.Queue()
            waiter = ctx.Process(target=w.lock_waiter, args=(str(store_path), 120.0, tried, queue))
            waiter.start()
            assert tried.wait(60), "the waiting writer never tried"
    finally:
        holder.stdin.close()  # the holder closes its store now
        assert holder.wait(60) == 0
    if cls == "Dict":
        waiter.join(120)
        errors, figures = w.drain(queue)
        assert not errors, "\n".join(errors)
        assert waiter.exitcode == 0
        refused = next(iter(figures.values()))["refused"]
        assert str(holder.pid) in refused  # its own first try was refused, naming the holder
        with pysos.Dict(store_path, readonly=True) as d:
            assert d["waiter"] == waiter.pid


def test_readers_take_no_lock_the_writer_waits_on(store_path, tmp_path):
    """Reader processes in the middle of reads and iterations hold no file lock; the writer opens, rotates and compacts beside them."""
    list_path = tmp_path / "list"
    with pysos.Dict(store_path, segment_size=4096) as d, pysos.List(list_path, segment_size=4096) as lst:
        d.update({f"k{i}": "v" * 50 for i in range(300)})
        lst.extend(range(300))
    ctx = w.context()
    stop, queue = ctx.Event(), ctx.Queue()
    readers = []
    for path, kind in ((store_path, "dict"), (store_path, "dict"), (list_path, "list")):
        started = ctx.Event()
        proc = ctx.Process(target=w.busy_reader, args=(str(path), kind, started, stop, queue))
        proc.start()
        readers.append((proc, started))
    try:
        for proc, started in readers:
            assert started.wait(60)
        pids = {proc.pid for proc, _ in readers}
        for _ in range(20):
            assert not pids & _flock_pids(), "a reader holds a file lock"
        d = pysos.Dict(store_path, segment_size=4096, autocompact=False)
        lst = pysos.List(list_path, segment_size=4096, autocompact=False)
        assert os.getpid() in _flock_pids()  # the check above can see a lock when there is one
        for i in range(300):  # many rotations: each takes the manifest lock
            d[f"k{i}"] = "w" * 60
            lst[i] = -i
        results = []
        compaction = threading.Thread(target=lambda: results.append((d.compact(), lst.compact())))
        compaction.start()
        compaction.join(60)
        assert results, "compaction was blocked"
        for _ in range(20):
            assert not pids & _flock_pids(), "a reader holds a file lock"
        d.close()
        lst.close()
    finally:
        stop.set()
        for proc, _ in readers:
            proc.join(60)
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert all(proc.exitcode == 0 for proc, _ in readers)
    assert all(f["reads"] > 0 for f in figures.values())


def test_reader_racing_store_creation_gets_empty_store_or_file_not_found(tmp_path):
    """A reader spinning on paths while another process creates stores there gets FileNotFoundError or a valid store, never a crash."""
    paths = [str(tmp_path / f"s{i}") for i in range(120)]
    ctx = w.context()
    queue = ctx.Queue()
    opener = ctx.Process(target=w.racing_opener, args=(paths, queue))
    creator = ctx.Process(target=w.creating_writer, args=(paths, queue))
    opener.start()
    creator.start()
    creator.join(120)
    opener.join(120)
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert creator.exitcode == 0 and opener.exitcode == 0
    outcomes = next(f for who, f in figures.items() if who.startswith("racing_opener"))
    assert outcomes.get("empty", 0) + outcomes.get("written", 0) == len(paths)
    print(outcomes)
