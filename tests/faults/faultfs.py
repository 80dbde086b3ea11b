"""Fault injection for the fault tests: wrappers around :mod:`pysos.segments.files`.

``Faults`` makes chosen calls of the files layer fail (``ENOSPC``, ``EIO``, a short or
partial write). ``PowerLoss`` simulates a power cut in "fsync" durability: it remembers
what each file held at its last fsync and which directory entries existed at the last
directory fsync, and at a chosen moment rewrites the directory to exactly that (unsynced
bytes dropped or turned into garbage, unsynced creates, renames and unlinks undone).

Both patch the module attributes (``files.pwrite = wrapper``): pysos calls
``files.pwrite(...)`` through the module, so every write of every part of pysos is seen.
"""

from __future__ import annotations

import errno
import os
import random
from typing import Callable

import orjson

import pysos
from pysos.segments import files, hints, locks, manifest, record, segment

OPS = ("write", "pwrite", "fsync", "fdatasync", "truncate", "replace", "unlink", "fsync_dir")
LOCK_NAMES = {"writer.lock", "compact.lock", "manifest.lock", "daemon.lock"}


# --- error injection -------------------------------------------------------------------------


class Rule:
    """Fail calls of one op: the ``skip``+1-th matching call and the ``times``-1 after it."""

    def __init__(self, op, err, skip, times, when, partial):
        self.op, self.err, self.skip, self.times, self.when, self.partial = op, err, skip, times, when, partial
        self.seen = 0
        self.fired = 0

    def matches(self, args) -> bool:
        if self.when is not None and not self.when(*args):
            return False
        self.seen += 1
        if self.seen <= self.skip or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class Faults:
    """Inject errors into the files layer. Use as ``faults = Faults(monkeypatch)``."""

    def __init__(self, monkeypatch):
        self.rules: list[Rule] = []
        self.calls = {op: 0 for op in OPS}
        self.sequence: list[str] = []   # every call since the last clear(), by op name
        self.originals = {op: getattr(files, op) for op in OPS}
        for op in OPS:
            monkeypatch.setattr(files, op, self._wrap(op))

    def fail(self, op: str, err: int = errno.EIO, *, skip: int = 0, times: int | None = 1,
             when: Callable | None = None, partial: bool = False) -> Rule:
        """Make ``op`` raise ``OSError(err)``; ``partial`` writes: half the bytes land first."""
        assert op in OPS or op == "*"
        rule = Rule(op, err, skip, times, when, partial)
        self.rules.append(rule)
        return rule

    def fail_nth(self, n: int, err: int = errno.EIO) -> Rule:
        """Make the ``n``-th call (from 0) of any op from now on raise ``OSError(err)``."""
        self.sequence = []
        return self.fail("*", err, skip=n)

    def clear(self) -> None:
        """The fault stops: every later call goes through."""
        self.rules.clear()
        self.sequence = []

    def _wrap(self, op):
        original = self.originals[op]

        def wrapper(*args):
            self.calls[op] += 1
            self.sequence.append(op)
            for rule in self.rules:
                if rule.op in (op, "*") and rule.matches(args):
                    if rule.partial and op in ("write", "pwrite") and len(args[1]) > 1:
                        half = memoryview(args[1])[: len(args[1]) // 2]
                        original(args[0], half, *args[2:])
                    raise OSError(rule.err, f"injected {os.strerror(rule.err)} in files.{op}")
            return original(*args)

        wrapper.__name__ = op
        return wrapper


def lock_is_free(path, name) -> bool:
    """Whether another holder could take the lock file ``name`` of the store at ``path`` now."""
    lock = locks.FileLock(os.fspath(path), name)
    try:
        lock.acquire(timeout=0.0, record_pid=False)
    except pysos.LockedError:
        return False
    lock.release()
    return True


def short_writes(monkeypatch, seed: int = 0) -> dict:
    """Make every write/pwrite write a random number (>= 1) of the bytes asked."""
    rng = random.Random(seed)
    counts = {"calls": 0, "short": 0}
    orig_write, orig_pwrite = files.write, files.pwrite

    def write(fd, data):
        n = rng.randint(1, len(data))
        counts["calls"] += 1
        counts["short"] += n < len(data)
        return orig_write(fd, memoryview(data)[:n])

    def pwrite(fd, data, offset):
        n = rng.randint(1, len(data))
        counts["calls"] += 1
        counts["short"] += n < len(data)
        return orig_pwrite(fd, memoryview(data)[:n], offset)

    monkeypatch.setattr(files, "write", write)
    monkeypatch.setattr(files, "pwrite", pwrite)
    return counts


# --- power loss -------------------------------------------------------------------------------


class PowerCut(BaseException):
    """Raised at the moment of the simulated power cut (a BaseException: nothing catches it)."""


class _OsWithCreateHook:
    """Stands in for ``os`` inside one pysos module: ``open`` reports files it creates."""

    def __init__(self, on_create):
        self._on_create = on_create

    def open(self, path, flags, mode=0o777, *args, **kwargs):
        existed = os.path.exists(path)
        fd = os.open(path, flags, mode, *args, **kwargs)
        if flags & os.O_CREAT and not existed:
            self._on_create(fd)
        return fd

    def __getattr__(self, name):
        return getattr(os, name)


class PowerLoss:
    """Track what is durable in one directory; cut power at the ``cut_at``-th file operation.

    Each file gets an identity when it is created (``os.open`` inside pysos's segment,
    files and hints modules is hooked), so a new file that reuses a deleted file's inode
    number is not mistaken for it. Durable contents are snapshotted per file at each
    fsync/fdatasync of it; the durable directory (name -> file) at each fsync of the
    directory. A file whose entry is durable but whose data never was is empty after the
    reboot. The model is a POSIX file system without any ordering help (like ext4 with
    data=writeback): nothing is durable unless an fsync said so. Lock files are ignored.
    """

    def __init__(self, monkeypatch, directory, cut_at: int | None = None, garbage: bool = False,
                 seed: int = 0, real_sync: bool = False):
        self.real_sync = real_sync
        self.directory = os.path.abspath(os.fspath(directory))
        self.cut_at = cut_at
        self.garbage = garbage
        self.rng = random.Random(seed)
        self.ops = 0
        self.cut = False
        self.image: dict[str, bytes] | None = None
        self.originals = {op: getattr(files, op) for op in OPS}
        self._ids: dict[int, int] = {}          # inode -> identity of the file living there
        self._next_id = 0
        self.durable_data: dict[int, bytes] = {}  # identity -> bytes at its last fsync
        self.durable_dir: dict[str, int] = {}     # name -> identity at the last directory fsync
        self._snapshot_dir()
        for name, ident in self.durable_dir.items():
            with open(os.path.join(self.directory, name), "rb") as f:
                self.durable_data[ident] = f.read()
        self._monkeypatch = monkeypatch
        for op in OPS:
            monkeypatch.setattr(files, op, self._wrap(op))
        hooked = _OsWithCreateHook(self._created)
        for module in (segment, files, hints):
            monkeypatch.setattr(module, "os", hooked)

    def _identity(self, ino: int) -> int:
        if ino not in self._ids:
            self._created_ino(ino)
        return self._ids[ino]

    def _created_ino(self, ino: int) -> None:
        self._next_id += 1
        self._ids[ino] = self._next_id

    def _created(self, fd: int) -> None:
        self._created_ino(os.fstat(fd).st_ino)

    # what is on disk now
    def _entries(self) -> dict[str, int]:
        """name -> inode of the regular, non-lock files in the directory now."""
        if not os.path.isdir(self.directory):
            return {}
        out = {}
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name in LOCK_NAMES or not os.path.isfile(path):
                continue
            out[name] = os.stat(path).st_ino
        return out

    def _snapshot_dir(self) -> None:
        self.durable_dir = {name: self._identity(ino) for name, ino in self._entries().items()}

    def _snapshot_fd(self, fd: int) -> None:
        st = os.fstat(fd)
        with open(f"/proc/self/fd/{fd}", "rb") as f:  # works for write-only fds too
            self.durable_data[self._identity(st.st_ino)] = f.read(st.st_size)

    def _is_ours(self, fd_or_path) -> bool:
        if isinstance(fd_or_path, int):
            try:
                return os.path.realpath(os.readlink(f"/proc/self/fd/{fd_or_path}")).startswith(self.directory + os.sep)
            except OSError:
                return False
        return os.path.abspath(os.fspath(fd_or_path)).startswith(self.directory)

    def _wrap(self, op):
        original = self.originals[op]

        def wrapper(*args):
            if self.cut or _is_lock_file(args[0]):
                # the dead process's cleanup (harmless: reboot() rewrites the files), or a
                # lock file's pid note (locks are not data; the kernel drops them on a crash)
                return original(*args)
            self.ops += 1
            if self.cut_at is not None and self.ops >= self.cut_at:
                self.image = self._reboot_image()
                self.cut = True
                raise PowerCut()
            if op in ("fsync", "fdatasync", "fsync_dir") and not self.real_sync:
                result = None  # durability is simulated: the snapshot below is what counts
            else:
                result = original(*args)
            if op in ("fsync", "fdatasync") and self._is_ours(args[0]):
                self._snapshot_fd(args[0])
            elif op == "fsync_dir" and os.path.abspath(args[0]) == self.directory:
                self._snapshot_dir()
            return result

        wrapper.__name__ = op
        return wrapper

    def _reboot_image(self) -> dict[str, bytes]:
        """name -> bytes of every file as it would be found after the reboot."""
        current = self._entries()
        image = {}
        for name, ident in self.durable_dir.items():
            data = self.durable_data.get(ident, b"")
            if self.garbage and name in current and self._ids.get(current[name]) == ident:
                with open(os.path.join(self.directory, name), "rb") as f:
                    now = f.read()
                if len(now) > len(data) and now[: len(data)] == data:
                    # the unsynced tail reached the disk as noise of the same length
                    noise = bytes(self.rng.randrange(256) for _ in range(len(now) - len(data)))
                    data = data + noise
            image[name] = data
        return image

    def restore(self) -> None:
        """Put the real files layer back (before dropping the dead handle: its cleanup needs it)."""
        for op in OPS:
            self._monkeypatch.setattr(files, op, self.originals[op])
        for module in (segment, files, hints):
            self._monkeypatch.setattr(module, "os", os)

    def reboot(self) -> None:
        """Stop injecting, and rewrite the directory to what survived the power cut."""
        self.restore()
        if self.image is None:
            self.image = self._reboot_image()
        for name in self._entries():
            os.unlink(os.path.join(self.directory, name))
        for name, data in self.image.items():
            with open(os.path.join(self.directory, name), "wb") as f:
                f.write(data)


def _is_lock_file(fd_or_path) -> bool:
    if isinstance(fd_or_path, int):
        try:
            fd_or_path = os.readlink(f"/proc/self/fd/{fd_or_path}")
        except OSError:
            return False
    return os.path.basename(os.fspath(fd_or_path)) in LOCK_NAMES


def abandon(handle) -> None:
    """Drop a handle as a dead process would: no fsync, no cleanup, just let go of fds and locks."""
    store = handle._store
    if store.compactor is not None:
        store.compactor._stop.set()
        store.compactor._wake.set()
    store._closed = True
    store._finalizer.detach()
    store.segment_files.close_all()
    if store._writer_lock is not None:
        store._writer_lock.release()
    if store.compactor is not None:
        store.compactor._thread.join()


# --- checks --------------------------------------------------------------------------------


def segments_whole(directory) -> list[str]:
    """Problems with the segments the MANIFEST names: a line that fails its checksum, or bytes
    after the last line feed (a partial record). Empty when every byte is a whole record."""
    directory = os.fspath(directory)
    problems = []
    for name in manifest.read(directory).segments:
        with open(os.path.join(directory, name), "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            problems.append(f"{name}: partial record at the end ({len(data)} bytes)")
        offset = 0
        for line in data.split(b"\n")[:-1]:
            if not record.verify(line + b"\n"):
                problems.append(f"{name}: bad line at byte {offset}")
            offset += len(line) + 1
    return problems


def stray_files(directory) -> list[str]:
    """Files in the directory that the MANIFEST does not account for."""
    directory = os.fspath(directory)
    named = set(manifest.read(directory).segments)
    allowed = named | {segment.hint_name(n) for n in named} | LOCK_NAMES | {"MANIFEST", "damaged"}
    return sorted(n for n in os.listdir(directory) if n not in allowed)


def reopen_equals(path, model: dict, **options) -> None:
    """Open the store afresh (as the writer) and compare every item with the model."""
    with pysos.Dict(path, autocompact=False, **options) as d:
        got = dict(d.items())
    assert got == model, describe(got, model)


def describe(got: dict, want: dict) -> str:
    missing = sorted(map(str, (k for k in want if k not in got)))[:5]
    extra = sorted(map(str, (k for k in got if k not in want)))[:5]
    wrong = sorted(map(str, (k for k in want if k in got and got[k] != want[k])))[:5]
    return f"missing={missing} extra={extra} wrong={wrong}"


def live_bytes(model: dict) -> int:
    """Bytes of the records that hold ``model`` (what a fully compacted store would use)."""
    return sum(len(record.encode_set(orjson.dumps(k), orjson.dumps(v))) for k, v in model.items())


def enospc(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC
