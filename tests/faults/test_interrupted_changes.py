"""Ctrl-C in the middle of a change: the handle's memory never disagrees with its files.

A ``KeyboardInterrupt`` (or any exception a signal handler raises) arrives between two
bytecodes of the main thread: after a record is on disk but before the index points at it,
between a key's deadline leaving the deadline table and the key leaving the index. The
call raises; what matters is what the handle does next. It must serve what its files say
(no value the files replaced, no key whose deadline passed), and never write a hint from a
half-updated memory (a hint that lists a key as never expiring brings it back on every
later open).

Each test interrupts every line of the function in turn (``sys.settrace`` raises at that
line, as a signal would), then checks the handle against a fresh reader and, after a clean
close, against a reopen and ``pysos.check``.
"""

from __future__ import annotations

import linecache
import sys
from contextlib import contextmanager

import pytest

import pysos
from pysos.engine import expiry, writer


def _body_lines(function) -> list[int]:
    """The line numbers of ``function``'s code, but the first (its docstring or first
    statement) and its ``try:`` lines: CPython never looks for a signal at a ``try:`` (a
    no-op), and an exception a trace function raises there skips the ``__exit__`` of an
    enclosing ``with`` (3.11), which no real interrupt can do."""
    code = function.__code__
    lines = sorted({line for _, _, line in code.co_lines() if line is not None})
    return [line for line in lines[1:] if linecache.getline(code.co_filename, line).strip() != "try:"]


def _points(store_path, prefix: str, *functions):
    """For each line of each of ``functions`` (see :func:`_body_lines`): a fresh store path
    beside ``store_path``, the function and the line."""
    n = 0
    for function in functions:
        for line in _body_lines(function):
            n += 1
            yield store_path.with_name(f"{prefix}{n}"), function, line


@contextmanager
def _interrupt_at(function, line: int):
    """Raise ``KeyboardInterrupt`` in ``function`` (once) when it reaches ``line``, as a
    Ctrl-C between two bytecodes would. Yields a list that holds True once it fired."""
    fired: list[bool] = []
    code = function.__code__

    def in_frame(frame, event, arg):
        if event == "line" and frame.f_lineno == line and not fired:
            fired.append(True)
            raise KeyboardInterrupt
        return in_frame

    def on_call(frame, event, arg):
        return in_frame if frame.f_code is code and not fired else None

    sys.settrace(on_call)
    try:
        yield fired
    finally:
        sys.settrace(None)


def _interrupted(function, line: int, action) -> bool:
    """Run ``action()`` with a Ctrl-C at ``line`` of ``function`` (see :func:`_interrupt_at`),
    which raises it if it came there; True if it came."""
    with _interrupt_at(function, line) as fired:
        try:
            action()
        except KeyboardInterrupt:
            assert fired
    return bool(fired)


def _closed_at_once(d, path) -> dict:
    """Close the handle right after the interrupt (a service's shutdown on Ctrl-C): what its
    clean close writes (the newest segment's hint) agrees with the records, and a reopen
    serves what a fresh reader of the records does. Returns the reopened items."""
    d.close()
    assert _problems(path) == []
    with pysos.Dict(path, readonly=True) as reopened:
        return dict(reopened.items())


def _problems(path) -> list[dict]:
    """What ``check`` finds but a file a rotation cut short left unnamed (a warning: the
    next compaction removes it, as after a crash)."""
    return [p for p in pysos.check(path) if "left by an interrupted operation" not in p["problem"]]


def _agree_with_files(d, path) -> dict:
    """The handle serves what its files say: the same items as a fresh reader, and after a
    clean close (which writes the newest segment's hint from memory) the same again on a
    reopen, with ``check`` finding nothing wrong. Returns the items."""
    mine = dict(d.items())
    with pysos.Dict(path, readonly=True) as fresh:
        assert dict(fresh.items()) == mine
    d.close()
    assert _problems(path) == []
    with pysos.Dict(path, readonly=True) as reopened:
        assert dict(reopened.items()) == mine
    return mine


@pytest.mark.parametrize("then", ["goes on", "closes", "compacts"])
@pytest.mark.parametrize("how", ["plain", "append", "expiring", "set-expire", "delete"])
def test_an_interrupted_write_leaves_memory_as_the_files_say(store_path, clock, how, then):
    """Interrupt each line of the writer's write path; the next operations, a reader, a reopen
    and check agree on every key (the interrupted write may or may not have happened)."""
    target = {"plain": writer.Writer.write, "delete": writer.Writer.write, "append": writer.Writer._append,
              "expiring": writer.Writer.write_expiring, "set-expire": writer.Writer._expiring_other}[how]
    fired_somewhere = False
    for path, _, line in _points(store_path, "s", target):
        d = pysos.Dict(path, autocompact=False, expire=3600 if how == "expiring" else None)
        d["k"] = "old"
        if how == "set-expire":
            d.set("t", 0, expire=100)  # a first deadline: later, earlier ones take the other path
        def change():
            if how == "delete":
                del d["k"]
            elif how == "set-expire":
                d.set("k", "new", expire=5)
            else:
                d["k"] = "new"

        fired_somewhere |= _interrupted(target, line, change)
        if then == "closes":
            items = _closed_at_once(d, path)
        else:
            if then == "compacts":  # seals the newest segment first, at the size the handle knows
                d.compact()
            d["after"] = 1  # the handle works on
            assert d["after"] == 1
            items = _agree_with_files(d, path)
        assert items.get("k") in ("old", "new", None)
        if how == "set-expire" and items.get("k") == "new":
            clock.advance(6)  # its deadline passed: gone for a reader, and after a reopen
            with pysos.Dict(path, readonly=True) as r:
                assert "k" not in r
            clock.advance(-6)
    assert fired_somewhere


@pytest.mark.parametrize("then", ["goes on", "closes"])
def test_an_interrupted_expiry_never_brings_a_key_back(store_path, clock, then):
    """Interrupt each line of the drop of due keys: the expired key is gone for the handle,
    and no hint written afterwards lists it as never expiring (it would come back on every
    later open)."""
    fired_somewhere = False
    for path, target, line in _points(store_path, "e", expiry.Expiry.aim, expiry.Expiry._drop):
        d = pysos.Dict(path, autocompact=False)
        d.set("gone", 1, expire=5)
        d["kept"] = 2
        clock.advance(6)
        fired_somewhere |= _interrupted(target, line, lambda: len(d))
        if then == "closes":
            assert _closed_at_once(d, path) == {"kept": 2}
        else:
            assert "gone" not in d and dict(d.items()) == {"kept": 2}
            assert _agree_with_files(d, path) == {"kept": 2}
        clock.advance(-6)  # back before the deadline: only the files' deadline can hide it now
        with pysos.Dict(path, readonly=True) as r:
            assert dict(r.items()) == {"gone": 1, "kept": 2}
        clock.advance(6)
    assert fired_somewhere


def test_an_interrupted_expiry_in_a_reader_never_keeps_a_key(store_path, clock):
    """The same in a reader, whose look drops the keys due outside ``follow``: the expired
    key is gone for it after the interrupt, as for a fresh reader."""
    fired_somewhere = False
    for path, _, line in _points(store_path, "r", expiry.Expiry.aim):
        with pysos.Dict(path, autocompact=False) as d, pysos.Dict(path, readonly=True) as r:
            d.set("gone", 1, expire=5)
            d["kept"] = 2
            assert len(r) == 2
            clock.advance(6)
            fired_somewhere |= _interrupted(expiry.Expiry.aim, line, lambda: len(r))
            assert "gone" not in r and dict(r.items()) == {"kept": 2} == dict(d.items())
        clock.advance(-6)
    assert fired_somewhere


def _batch_store(path, fails: bool = False):
    """A store holding "k" and "t" (which expires), and the change to make: a batch that
    sets both again and adds "b" (and then raises, if it ``fails``)."""
    d = pysos.Dict(path, autocompact=False)
    d["k"] = "old"
    d.set("t", "old", expire=100)

    def change():
        with d.batch():
            d["k"] = "new"
            d.set("t", "new", expire=5)
            d["b"] = 1
            if fails:
                raise ValueError("the batch's own failure")

    return d, change


@pytest.mark.parametrize("then", ["goes on", "closes"])
def test_an_interrupted_batch_leaves_memory_as_the_files_say(store_path, clock, then):
    """Interrupt each line of a write inside a batch, and of the batch's commit: discarded
    or committed, the handle, a reader and a reopen agree."""
    targets = [writer.Writer._write_in_batch, writer.Writer.batch.__wrapped__]
    fired_somewhere = False
    for path, target, line in _points(store_path, "b", *targets):
        d, change = _batch_store(path)
        fired_somewhere |= _interrupted(target, line, change)
        if then == "closes":
            items = _closed_at_once(d, path)
        else:
            d["after"] = 1
            items = _agree_with_files(d, path)
        assert (items["k"], items["t"], items.get("b")) in (("old", "old", None), ("new", "new", 1))
    assert fired_somewhere


@pytest.mark.parametrize("then", ["batch", "seal", "write", "closes"])
def test_an_interrupted_rotation_is_mended_before_the_next_change(store_path, clock, then):
    """Interrupt each line of a rotation (a write that fills the segment): whatever comes
    next (a batch, a seal, a write, a close) starts from the files, never appends to a
    segment the MANIFEST calls sealed."""
    from pysos.engine import rotation

    fired_somewhere = False
    targets = [rotation.Rotation._seal_and_switch, rotation.Rotation._switch_to]
    for path, target, line in _points(store_path, "rot", *targets):
        d = pysos.Dict(path, autocompact=False, segment_size=300)
        d["k"] = "old"
        def fill():
            for i in range(10):  # the segment fills: a rotation
                d[f"f{i}"] = "x" * 40

        fired_somewhere |= _interrupted(target, line, fill)
        if then == "closes":
            _closed_at_once(d, path)
            continue
        if then == "batch":
            d.update({"k": "new", "b": 1})
        elif then == "seal":
            d.compact()
        d["after"] = 1
        items = _agree_with_files(d, path)
        if then == "batch":
            assert items["k"] == "new" and items["b"] == 1
    assert fired_somewhere


def test_a_batch_that_catches_an_interrupt_is_mended_when_it_ends(store_path, clock):
    """An interrupt inside a batch's write, caught inside the batch, which goes on and
    commits: the handle serves what the files say from the next operation on."""
    fired_somewhere = False
    for path, _, line in _points(store_path, "c", writer.Writer._write_in_batch):
        d = pysos.Dict(path, autocompact=False)
        d["k"] = "old"
        with d.batch():
            fired_somewhere |= _interrupted(writer.Writer._write_in_batch, line, lambda: d.__setitem__("k", "new"))
            d["b"] = 1
        with pysos.Dict(path, readonly=True) as fresh:
            assert d["k"] == fresh["k"] and d["b"] == fresh["b"] == 1
        _agree_with_files(d, path)
    assert fired_somewhere


def test_a_second_interrupt_while_a_write_is_cut_back_leaves_no_bytes(store_path, clock, monkeypatch):
    """Ctrl-C twice: once after the write's system call, once as the failed write is being
    cut back (before the truncate). The bytes left behind are cut before anything else is
    written or sealed: a seal records the segment at its true size."""
    from pysos.segments import files

    fired_somewhere = False
    for path, _, line in _points(store_path, "w", writer.Writer._append):
        d = pysos.Dict(path, autocompact=False)
        d["k"] = "old"
        real_truncate = files.truncate

        def truncate_interrupted(fd, size):
            monkeypatch.setattr(files, "truncate", real_truncate)
            raise KeyboardInterrupt

        monkeypatch.setattr(files, "truncate", truncate_interrupted)
        with _interrupt_at(writer.Writer._append, line) as fired:
            try:
                d["k"] = "new"
            except KeyboardInterrupt:
                assert fired or files.truncate is real_truncate
        monkeypatch.setattr(files, "truncate", real_truncate)
        fired_somewhere = fired_somewhere or bool(fired)
        d._store.seal()  # records the newest segment's size in the MANIFEST (no merge after)
        d["after"] = 1
        _agree_with_files(d, path)
    assert fired_somewhere


@pytest.mark.parametrize("op", ["append", "insert", "pop"])
def test_an_interrupted_list_change_keeps_its_positions_as_the_files_say(store_path, clock, op):
    """A List keeps the order of its items beside the store's index; interrupt each line of
    its insert and delete paths and of the store's write under them: the List, a fresh
    reader and a reopen hold the same items, and the next change does not overwrite one."""
    from pysos.list import List

    targets = [List._insert_at, writer.Writer.write] if op != "pop" else [List._delete_at, writer.Writer.write]
    fired_somewhere = False
    for path, target, line in _points(store_path, "l", *targets):
        lst = pysos.List(path, autocompact=False)
        lst.extend([1, 2, 3])
        change = {"append": lambda: lst.append(4), "insert": lambda: lst.insert(1, 9), "pop": lst.pop}[op]
        fired_somewhere |= _interrupted(target, line, change)
        lst.append(5)
        mine = list(lst)
        with pysos.List(path, readonly=True) as fresh:
            assert list(fresh) == mine
        lst.close()
        assert pysos.check(path) == []
        with pysos.List(path, readonly=True) as reopened:
            assert list(reopened) == mine
        assert mine in ([1, 2, 3, 5], [1, 2, 3, 4, 5], [1, 9, 2, 3, 5], [1, 2, 5])
    assert fired_somewhere


def test_an_interrupted_reload_after_fork_is_mended(store_path, clock):
    """A reader forked while another thread held its lock reloads at its next use; an
    interrupt during that reload leaves it to mend at the one after."""
    from pysos.engine import core

    with pysos.Dict(store_path, autocompact=False) as d:
        d.update({"a": 1, "b": 2})
        d["c"] = 3
    fired_somewhere = False
    for line in _body_lines(core.Store._load_files):
        r = pysos.Dict(store_path, readonly=True)
        r._store._forked(torn=True)  # what the fork hook does in the child
        fired_somewhere |= _interrupted(core.Store._load_files, line, lambda: len(r))
        assert dict(r.items()) == {"a": 1, "b": 2, "c": 3}
        r.close()
    assert fired_somewhere


def test_a_torn_handle_mends_only_under_its_lock(store_path, clock):
    """Dict.update and List.extend check that the store is writable before they take its
    lock: a torn handle must not rebuild its index there, while another thread holds the
    lock (and may be reading or writing); it mends once the call holds the lock."""
    import threading

    d = pysos.Dict(store_path, autocompact=False)
    d["a"] = 1
    store = d._store
    store.tear()
    held, release = threading.Event(), threading.Event()
    mended_while_held = []
    real_mend = store.mend

    def watched_mend():
        mended_while_held.append(held.is_set() and not release.is_set())
        real_mend()

    store.mend = watched_mend
    try:
        def hold():
            with store.lock:
                held.set()
                release.wait(5)

        holder = threading.Thread(target=hold)
        holder.start()
        held.wait(5)
        updating = threading.Thread(target=d.update, args=({"b": 2},))
        updating.start()
        updating.join(0.3)  # it waits for the lock: it must not have mended meanwhile
        release.set()
        holder.join(5)
        updating.join(5)
        assert mended_while_held == [False] and dict(d.items()) == {"a": 1, "b": 2}
    finally:
        del store.mend
        d.close()


def test_an_os_error_while_following_does_not_tear_the_handle(store_path, clock, monkeypatch):
    """A failing disk (an OSError while the writer looks at its files) raises at each call
    without a rebuild of the index at each: only an interrupt tears. A TimeoutError (what a
    signal.alarm handler raises) does."""
    from pysos.segments import manifest

    with pysos.Dict(store_path, autocompact=False) as d:
        d["a"] = 1
        for error, torn in ((OSError(5, "EIO"), False), (TimeoutError("alarm"), True)):
            d._store.due = d._store.look_due = 0.0
            d._store._look_at = 0.0

            def failing_stamp(directory, error=error):
                raise error

            monkeypatch.setattr(manifest, "stamp", failing_stamp)
            with pytest.raises(type(error)):
                d["a"]
            monkeypatch.undo()
            assert d._store._torn is torn
            assert d["a"] == 1 and not d._store._torn


@pytest.mark.parametrize("then", ["goes on", "closes"])
def test_a_second_interrupt_while_a_batch_is_undone(store_path, clock, then):
    """A batch's body raises (a first Ctrl-C, or any error); a second Ctrl-C lands while the
    writer puts its index and deadlines back as they were: the undo is cut short, but the
    handle still serves what its files say (the batch never happened)."""
    from pysos.engine import batch as batch_module
    targets = [writer.Writer._abort, batch_module.Batch.restore]
    fired_somewhere = False
    for path, target, line in _points(store_path, "u", *targets):
        d, change = _batch_store(path, fails=True)
        with _interrupt_at(target, line) as fired:
            with pytest.raises((ValueError, KeyboardInterrupt)):
                change()
        fired_somewhere |= bool(fired)
        if then == "closes":
            items = _closed_at_once(d, path)
        else:
            assert (d["k"], d["t"], "b" in d, len(d)) == ("old", "old", False, 2)
            d["after"] = 1
            items = _agree_with_files(d, path)
        assert (items["k"], items["t"], items.get("b")) == ("old", "old", None)
    assert fired_somewhere
