"""One writer per directory (in this process and across processes), lock_timeout, and
readonly handles that refuse every write."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import pysos

HOLDER = textwrap.dedent("""
    import sys, pysos
    s = pysos.{cls}(sys.argv[1])
    print("ready", flush=True)
    sys.stdin.read()          # hold the lock until the parent closes our stdin
    s.close()
""")

TRY_OPEN = textwrap.dedent("""
    import sys, pysos
    try:
        pysos.Dict(sys.argv[1])
    except pysos.LockedError as exc:
        print("LockedError", exc)
    else:
        print("opened")
""")


def _names_directory(message, path):
    return str(path) in message or os.path.realpath(path) in message


def _spawn_holder(path, cls="Dict"):
    proc = subprocess.Popen([sys.executable, "-c", HOLDER.format(cls=cls), str(path)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _release_holder(proc):
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("first,second", [
    (pysos.Dict, pysos.Dict), (pysos.List, pysos.List), (pysos.Dict, pysos.open)])
def test_second_writer_in_same_process_is_locked(store_path, first, second):
    """A second writable handle in the same process raises LockedError naming the directory and our pid."""
    with first(store_path) as s:
        with pytest.raises(pysos.LockedError) as info:
            second(store_path)
        assert _names_directory(str(info.value), store_path)
        assert str(os.getpid()) in str(info.value)
        assert len(s) == 0  # the first handle is unaffected
    with first(store_path):  # and free again after close
        pass


def test_second_writer_in_other_process_is_locked(store_path):
    """While another process writes, opening for writing raises LockedError naming the directory and its pid."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    proc = _spawn_holder(store_path)
    try:
        with pytest.raises(pysos.LockedError) as info:
            pysos.Dict(store_path)
        assert _names_directory(str(info.value), store_path)
        assert str(proc.pid) in str(info.value)
        with pysos.Dict(store_path, readonly=True) as r:  # readers are still welcome
            assert r["a"] == 1
    finally:
        _release_holder(proc)
    with pysos.Dict(store_path) as d:
        assert d["a"] == 1


def test_other_process_is_locked_out_by_us(store_path):
    """While this process writes, another process gets LockedError naming the directory and our pid."""
    with pysos.Dict(store_path):
        out = subprocess.run([sys.executable, "-c", TRY_OPEN, str(store_path)],
                             capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("LockedError"), out.stdout
    assert _names_directory(out.stdout, store_path)
    assert str(os.getpid()) in out.stdout


def test_lock_timeout_waits_then_raises(store_path):
    """With lock_timeout=t a second writer waits about t seconds, then raises LockedError."""
    with pysos.Dict(store_path):
        start = time.monotonic()
        with pytest.raises(pysos.LockedError):
            pysos.Dict(store_path, lock_timeout=0.5)
        assert time.monotonic() - start >= 0.45


def test_lock_timeout_gets_the_lock_when_freed(store_path):
    """A writer waiting with lock_timeout gets the store once the holder closes it."""
    holder = pysos.Dict(store_path)
    holder["a"] = 1
    timer = threading.Timer(0.3, holder.close)
    timer.start()
    try:
        with pysos.Dict(store_path, lock_timeout=60) as d:
            assert d["a"] == 1
            d["b"] = 2
    finally:
        timer.join()


def test_lock_timeout_waits_for_other_process(store_path):
    """A writer waiting with lock_timeout gets the store once another process releases it."""
    proc = _spawn_holder(store_path, "List")
    timer = threading.Timer(0.3, proc.stdin.close)
    timer.start()
    try:
        with pysos.List(store_path, lock_timeout=60) as l:
            l.append(1)
    finally:
        timer.join()
        proc.wait(timeout=30)


def _dict_writes(r):
    return {
        "setitem": lambda: r.__setitem__("new", 1),
        "setitem existing": lambda: r.__setitem__("a", 2),
        "delitem": lambda: r.__delitem__("a"),
        "pop": lambda: r.pop("a"),
        "pop default": lambda: r.pop("a", None),
        "popitem": lambda: r.popitem(),
        "setdefault": lambda: r.setdefault("new", 1),
        "update": lambda: r.update({"new": 1}),
        "update kwargs": lambda: r.update(new=1),
        "clear": lambda: r.clear(),
    }


def _list_writes(r):
    def iadd():
        r.__iadd__([1])

    def set_slice():
        r[0:1] = [9]

    def del_slice():
        del r[0:1]

    return {
        "append": lambda: r.append(1), "extend": lambda: r.extend([1]),
        "insert": lambda: r.insert(0, 1), "pop": lambda: r.pop(), "pop(0)": lambda: r.pop(0),
        "remove": lambda: r.remove("x"), "setitem": lambda: r.__setitem__(0, 1),
        "delitem": lambda: r.__delitem__(0), "set slice": set_slice, "del slice": del_slice,
        "reverse": lambda: r.reverse(), "sort": lambda: r.sort(key=str), "iadd": iadd,
        "clear": lambda: r.clear(),
    }


@pytest.mark.parametrize("writer_open", [False, True])
def test_readonly_dict_refuses_every_write(store_path, writer_open):
    """Every write method of a readonly Dict raises ReadOnlyError and changes nothing."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    w = pysos.Dict(store_path) if writer_open else None
    try:
        with pysos.Dict(store_path, readonly=True) as r:
            for name, write in _dict_writes(r).items():
                with pytest.raises(pysos.ReadOnlyError):
                    write()
                    pytest.fail(name)
            with pytest.raises(pysos.ReadOnlyError):
                with r.batch():
                    r["b"] = 2
            assert dict(r.items()) == {"a": 1}
    finally:
        if w is not None:
            w.close()
    with pysos.Dict(store_path, readonly=True) as r:
        assert dict(r.items()) == {"a": 1}


@pytest.mark.parametrize("writer_open", [False, True])
def test_readonly_list_refuses_every_write(store_path, writer_open):
    """Every write method of a readonly List raises ReadOnlyError and changes nothing."""
    with pysos.List(store_path) as l:
        l.extend(["x", "y"])
    w = pysos.List(store_path) if writer_open else None
    try:
        with pysos.List(store_path, readonly=True) as r:
            for name, write in _list_writes(r).items():
                with pytest.raises(pysos.ReadOnlyError):
                    write()
                    pytest.fail(name)
            assert list(r) == ["x", "y"]
    finally:
        if w is not None:
            w.close()
    with pysos.List(store_path) as l:
        assert list(l) == ["x", "y"]


def test_many_readers_beside_a_writer_see_its_writes(store_path):
    """Several readonly handles open beside the writer; each read sees writes that returned before it."""
    with pysos.Dict(store_path) as d:
        readers = [pysos.Dict(store_path, readonly=True) for _ in range(3)]
        try:
            d["a"] = 1
            assert all(r["a"] == 1 for r in readers)
            d["a"] = 2
            del d["a"]
            d["b"] = [1]
            assert all(dict(r.items()) == {"b": [1]} for r in readers)
        finally:
            for r in readers:
                r.close()
