"""The stores that tools/bench.py compares, each behind the same small adapter.

A row opens a store in a directory of its own and hands back something that
supports ``h[k] = v``, ``h[k]``, ``del h[k]`` and ``len(h)``; the adapter adds
what differs between stores: commit at the end of a phase, batches, compaction.
Each row states its durability claim (from the store's own documentation); the
benchmark also checks the kill -9 claim by killing a writer.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import types
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


class Missing(Exception):
    """A row's module cannot be imported: the row is reported, not crashed."""


def _require(module):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Missing(f"{module} not installed") from exc


def load_pysos():
    """The pysos of this checkout (not any other installed copy)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        import pysos
    except ImportError as exc:
        raise Missing(f"pysos not importable: {exc}") from exc
    if not hasattr(pysos, "Dict"):
        raise Missing("pysos core not importable yet (no pysos.Dict)")
    return pysos


def install_pysos13(cache_dir):
    """Install pysos 1.3.0 from PyPI into cache_dir once; return its pysos.py or None."""
    target = Path(cache_dir) / "pysos.py"
    if not target.exists():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(cache_dir), "pysos==1.3.0", "--no-deps"],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
    return target if target.exists() else None


def load_pysos13(cache_dir):
    """pysos 1.3 from cache_dir, loaded as module ``pysos13`` (its own name is pysos too)."""
    if "pysos13" in sys.modules:
        return sys.modules["pysos13"]
    target = Path(cache_dir) / "pysos.py"
    if not target.exists():
        raise Missing(f"pysos 1.3 not installed (pip install --target {cache_dir} pysos==1.3.0 failed)")
    try:
        import chardet  # noqa: F401  (pysos 1.3 imports it at module level, for csv2sos only)
    except ImportError:
        sys.modules["chardet"] = types.ModuleType("chardet")
    spec = importlib.util.spec_from_file_location("pysos13", target)
    module = importlib.util.module_from_spec(spec)
    sys.modules["pysos13"] = module
    spec.loader.exec_module(module)
    return module


def disk_bytes(path):
    """Bytes a directory or file takes on disk (sparse files count what they allocate)."""
    path = Path(path)
    if not path.exists():
        return 0
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    total = 0
    for f in files:
        st = f.stat()
        total += min(st.st_size, st.st_blocks * 512)
    return total


def _sqlite_vacuum(db_file):
    con = sqlite3.connect(db_file)
    con.execute("VACUUM")
    con.close()


class Row:
    """One store configuration. Subclasses override what differs."""

    name = ""
    label = ""
    kill9 = "no"  # claim: does a completed change survive kill -9?
    power = "no"  # claim: does it survive power loss / OS crash?
    note = ""
    batch = 0  # > 0: writes go through handle.batch() in chunks of this size
    can_reopen = True

    def load(self, spec):
        """Import what the row needs (raise Missing if absent)."""

    def open(self, directory):
        raise NotImplementedError

    def close(self, h):
        h.close()

    def commit(self, h):
        """Called at the end of each timed write phase (inside the timing)."""

    def batch_context(self, h):
        return h.batch()

    def compact(self, h, directory):
        """Compact, close h; return the path whose size is the compacted store, or None."""
        self.close(h)
        return None


class PysosRow(Row):
    label = "pysos (this project)"
    kill9 = "yes"
    power = "no"
    durability = "flush"

    def load(self, spec):
        self.pysos = load_pysos()

    def open(self, directory):
        return self.pysos.Dict(Path(directory) / "store", durability=self.durability)

    def compact(self, h, directory):
        h.compact()
        self.close(h)
        return Path(directory) / "store"


class PysosFsyncRow(PysosRow):
    label = 'pysos durability="fsync"'
    power = "yes"
    durability = "fsync"


class PysosExpireRow(PysosRow):
    label = "pysos expire=3600"
    note = "every item expires in an hour (a store default)"

    def open(self, directory):
        return self.pysos.Dict(Path(directory) / "store", durability=self.durability, expire=3600)


class PysosBatchRow(PysosRow):
    label = "pysos batch() of 1,000"
    note = "all-or-nothing per batch"
    batch = 1000


class Pysos13Row(Row):
    label = "pysos 1.3 (PyPI)"
    kill9 = "yes"
    power = "no"
    note = ("flush per write; an update that recycles an earlier free slot and is killed before the "
            "old line is commented out can come back as the old value")

    def load(self, spec):
        self.mod = load_pysos13(spec["pysos13_dir"])

    def open(self, directory):
        return self.mod.Dict(str(Path(directory) / "data.sos"))

    def compact(self, h, directory):
        h.vacuum()
        self.close(h)
        return Path(directory)


class ShelveRow(Row):
    label = "shelve"
    kill9 = "no"
    note = "pickle values; dbm.dumb keeps moved values' positions in RAM until sync/close"

    def load(self, spec):
        for name in ("dbm.gnu", "dbm.ndbm", "dbm.dumb"):
            try:
                importlib.import_module(name)
            except ImportError:
                continue
            self.note = f"{name} backend; " + self.note
            break
        import shelve

        self.shelve = shelve

    def open(self, directory):
        return self.shelve.open(str(Path(directory) / "data"))


class SqliteDictRow(Row):
    label = "sqlitedict autocommit"
    kill9 = "yes"
    power = "yes"
    autocommit = True
    note = "pickle values; commit per write"

    def load(self, spec):
        self.mod = _require("sqlitedict")

    def open(self, directory):
        return self.mod.SqliteDict(str(Path(directory) / "data.sqlite"), autocommit=self.autocommit)

    def compact(self, h, directory):
        self.close(h)
        _sqlite_vacuum(str(Path(directory) / "data.sqlite"))
        return Path(directory)


class SqliteDictCommitRow(SqliteDictRow):
    label = "sqlitedict commit at end"
    kill9 = "no (until commit())"
    power = "no (until commit())"
    autocommit = False
    note = "pickle values; one commit per phase"

    def commit(self, h):
        h.commit()


class DiskcacheRow(Row):
    label = "diskcache.Index"
    kill9 = "yes"
    power = "no (WAL, synchronous=NORMAL)"
    note = "sqlite WAL; pickle values"

    def load(self, spec):
        self.mod = _require("diskcache")

    def open(self, directory):
        return self.mod.Index(str(directory))

    def close(self, h):
        h.cache.close()

    def compact(self, h, directory):
        self.close(h)
        _sqlite_vacuum(str(Path(directory) / "cache.db"))
        return Path(directory)


class ExpiringCache:
    """diskcache.Cache as a mapping whose every set expires in an hour (``Cache[k] = v`` takes no expiry)."""

    def __init__(self, cache):
        self.cache = cache

    def __setitem__(self, key, value):
        self.cache.set(key, value, expire=3600)

    def __getitem__(self, key):
        return self.cache[key]

    def __delitem__(self, key):
        del self.cache[key]

    def __len__(self):
        return len(self.cache)


class DiskcacheExpireRow(DiskcacheRow):
    label = "diskcache.Cache expire=3600"

    def open(self, directory):
        return ExpiringCache(self.mod.Cache(str(directory)))


class SemidbmHandle:
    """semidbm with str keys and JSON values (orjson)."""

    def __init__(self, db):
        self.db = db

    def __setitem__(self, key, value):
        self.db[key.encode()] = orjson.dumps(value)

    def __getitem__(self, key):
        return orjson.loads(self.db[key.encode()])

    def __delitem__(self, key):
        del self.db[key.encode()]

    def __len__(self):
        return len(self.db.keys())

    def close(self):
        self.db.close()


class SemidbmRow(Row):
    label = "semidbm"
    kill9 = "yes"
    power = "no"
    note = "orjson values"

    def load(self, spec):
        self.mod = _require("semidbm")

    def open(self, directory):
        return SemidbmHandle(self.mod.open(str(Path(directory) / "db"), "c"))

    def compact(self, h, directory):
        h.db.compact()
        self.close(h)
        return Path(directory)


class LmdbHandle:
    """lmdb with str keys and JSON values (orjson); one transaction per change."""

    def __init__(self, env):
        self.env = env

    def __setitem__(self, key, value):
        with self.env.begin(write=True) as txn:
            txn.put(key.encode(), orjson.dumps(value))

    def __getitem__(self, key):
        with self.env.begin() as txn:
            data = txn.get(key.encode())
        if data is None:
            raise KeyError(key)
        return orjson.loads(data)

    def __delitem__(self, key):
        with self.env.begin(write=True) as txn:
            if not txn.delete(key.encode()):
                raise KeyError(key)

    def __len__(self):
        return self.env.stat()["entries"]

    def close(self):
        self.env.close()


class LmdbRow(Row):
    label = "lmdb sync"
    kill9 = "yes"
    power = "yes"
    sync = True
    note = "one write txn per change; orjson values"

    def load(self, spec):
        self.mod = _require("lmdb")

    def open(self, directory):
        env = self.mod.open(str(directory), map_size=16 * 2**30, sync=self.sync, metasync=self.sync)
        return LmdbHandle(env)

    def compact(self, h, directory):
        out = Path(str(directory) + "-compacted")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        h.env.copy(str(out), compact=True)
        self.close(h)
        return out


class LmdbNosyncRow(LmdbRow):
    label = "lmdb nosync"
    power = "no"
    sync = False


class RawLog:
    """The limit: one os.write per change, an in-RAM key -> (offset, length) index,
    os.pread + orjson.loads per read. No checksum, no locks, no batching."""

    def __init__(self, path, fsync=False):
        self.path = str(path)
        self.fsync = fsync
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self.index = {}
        self.offset = 0
        with open(self.path, "rb") as f:
            for line in f:
                record = orjson.loads(line)
                if "d" in record:
                    self.index.pop(record["k"], None)
                else:
                    self.index[record["k"]] = (self.offset, len(line))
                self.offset += len(line)

    def _append(self, line):
        os.write(self.fd, line)
        if self.fsync:
            os.fdatasync(self.fd)
        offset = self.offset
        self.offset += len(line)
        return offset

    def __setitem__(self, key, value):
        line = orjson.dumps({"k": key, "v": value}) + b"\n"
        self.index[key] = (self._append(line), len(line))

    def __getitem__(self, key):
        offset, length = self.index[key]
        return orjson.loads(os.pread(self.fd, length, offset))["v"]

    def __delitem__(self, key):
        del self.index[key]
        self._append(orjson.dumps({"k": key, "d": 1}) + b"\n")

    def __len__(self):
        return len(self.index)

    def compact(self):
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as out:
            for offset, length in self.index.values():
                out.write(os.pread(self.fd, length, offset))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)

    def close(self):
        os.close(self.fd)


class RawRow(Row):
    label = "raw append log (limit)"
    kill9 = "yes"
    power = "no"
    fsync = False
    note = "os.write per change; JSON lines, no checksum"

    def open(self, directory):
        return RawLog(Path(directory) / "log.jsonl", fsync=self.fsync)

    def compact(self, h, directory):
        h.compact()
        self.close(h)
        return Path(directory)


class RawFsyncRow(RawRow):
    label = "raw log + fdatasync (limit)"
    power = "yes"
    fsync = True
    note = "os.write + os.fdatasync per change"


class DictHandle(dict):
    def close(self):
        pass


class DictRow(Row):
    label = "dict in memory (limit)"
    kill9 = "no"
    power = "no"
    can_reopen = False
    note = "no persistence"

    def open(self, directory):
        return DictHandle()


ROWS = {
    "pysos": PysosRow,
    "pysos-fsync": PysosFsyncRow,
    "pysos-expire": PysosExpireRow,
    "pysos-batch": PysosBatchRow,
    "pysos13": Pysos13Row,
    "shelve": ShelveRow,
    "sqlitedict-autocommit": SqliteDictRow,
    "sqlitedict": SqliteDictCommitRow,
    "diskcache": DiskcacheRow,
    "diskcache-expire": DiskcacheExpireRow,
    "semidbm": SemidbmRow,
    "lmdb-sync": LmdbRow,
    "lmdb-nosync": LmdbNosyncRow,
    "raw": RawRow,
    "raw-fdatasync": RawFsyncRow,
    "dict": DictRow,
}

# rows whose every change waits for the disk: they run --sync-n operations per phase
SYNC_ROWS = {"pysos-fsync", "sqlitedict-autocommit", "lmdb-sync", "raw-fdatasync"}


def make_row(name):
    return ROWS[name]()
