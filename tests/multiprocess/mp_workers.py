"""Process bodies for the multiprocess tests (spawned children import this module).

Every body reports failures to the parent through a queue as ``("error", who, traceback)``
and its figures as ``("done", who, figures)``: a child never fails silently.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
import traceback
from collections import Counter

import pysos
from pysos.errors import LockedError

PAD = 300           # churn values carry a pad of i % PAD characters: a torn value shows
CHURN_KEYS = 200
BATCH_KEYS = 50     # keys per batch in the kill test
KEEP_BATCHES = 12   # the kill-test writer deletes batch b - KEEP_BATCHES inside batch b


def context():
    """The multiprocessing context of these tests: forkserver, with pysos and this module
    imported once in the server, so that each child starts in milliseconds, not seconds."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["pysos", "pysos.compactor", __name__])
    return ctx


def churn_value(key: str, i: int) -> dict:
    return {"k": key, "i": i, "pad": "x" * (i % PAD)}


def check_churn(key, value) -> None:
    assert type(value) is dict and value["k"] == key, f"{key!r} holds {value!r}"
    assert value["pad"] == "x" * (value["i"] % PAD), f"torn churn value under {key!r}: {value!r}"


def diagnose(handle) -> str:
    """The reader's view of the files next to what is on disk now (for failure messages)."""
    from pysos.segments import files, manifest

    store = handle._store
    try:
        on_disk = manifest.read(store.directory)
        now = manifest.stamp(store.directory)
        active = files.size(store.segment_files.fds[store.newest[0]])
    except Exception as exc:  # a diagnosis must not hide the failure
        return f" [diagnosis failed: {exc!r}]"
    return (f" [reader: generation {store.manifest.generation} {list(store.manifest.segments)}"
            f" stamp {store._manifest_stamp}, newest {store.newest[0]} indexed to {store.newest[1]};"
            f" disk: generation {on_disk.generation} {list(on_disk.segments)} stamp {now},"
            f" newest-known file size {active}; {pysos.__file__}]")


def reporting(fn):
    """Run ``fn(*args, queue)``; put its figures or its traceback on ``queue`` (its last argument)."""
    @functools.wraps(fn)
    def run(*args):
        queue, who = args[-1], f"{fn.__name__}[{os.getpid()}]"
        try:
            figures = fn(*args)
        except BaseException:
            queue.put(("error", who, traceback.format_exc()))
            sys.exit(1)
        queue.put(("done", who, figures))
    return run


# --- soak: one writer, readers, a compactor ----------------------------------------------


@reporting
def soak_writer(dict_path, list_path, counter, list_count, stop, options, queue):
    rng = random.Random(options["seed"])
    seg = options["segment_size"]
    d = pysos.Dict(dict_path, segment_size=seg, autocompact=True)
    lst = pysos.List(list_path, segment_size=seg, autocompact=True)
    compact_every = options.get("writer_compact_every", 0)
    i = 0
    while not stop.is_set():
        d["counter"] = i
        counter.value = i                      # published only once the call returned
        key = f"churn{rng.randrange(CHURN_KEYS)}"
        if rng.random() < 0.2 and key in d:
            del d[key]
        else:
            d[key] = churn_value(key, i)
        if i % 10 == 0:
            with d.batch():
                for _ in range(5):
                    key = f"churn{rng.randrange(CHURN_KEYS)}"
                    d[key] = churn_value(key, i)
        lst.append(i)
        list_count.value = i + 1
        if compact_every and i and i % compact_every == 0:
            d.compact()
            lst.compact()
        i += 1
    figures = {"writes": i, "dict": d.stats(), "list": lst.stats()}
    d.close()
    lst.close()
    return figures



class DictChecker:
    """Read-after-write and consistency checks on a Dict reader (see the soak test)."""

    def __init__(self, path, counter, refresh_interval):
        self.r = pysos.Dict(path, readonly=True, refresh_interval=refresh_interval)
        self.counter = counter
        self.interval = refresh_interval
        self.rng = random.Random(os.getpid())
        self.last = -1
        self.reads = self.scans = 0

    def step(self):
        r, published = self.r, self.counter.value  # the published value first, then the store
        if self.interval and self.reads % 50 == 0:
            r.refresh()  # bounded staleness: refresh() brings the reader up to date
            seen = r.get("counter", -1)
            assert seen >= published, f"after refresh() counter {seen} < published {published}"
        else:
            seen = r.get("counter", -1)
            if not self.interval:
                assert seen >= published, f"read-after-write: counter {seen} < published {published}" + diagnose(r)
        assert seen >= self.last, f"counter went backwards: {self.last} -> {seen}"
        self.last = seen
        key = f"churn{self.rng.randrange(CHURN_KEYS)}"
        value = r.get(key)
        if value is not None:
            check_churn(key, value)
        self.reads += 1

    def scan(self):
        r, published = self.r, self.counter.value
        keys = []
        for key, value in _reading_along(r, r.items()):
            keys.append(key)
            if key == "counter":
                if not self.interval:
                    assert value >= published, f"items(): counter {value} < published {published}"
                assert value >= self.last, f"items(): counter went backwards: {self.last} -> {value}"
                self.last = value
            else:
                check_churn(key, value)
        dupes = [k for k, n in Counter(keys).items() if n > 1]
        assert not dupes, f"items() yielded duplicates: {dupes[:5]}"
        keys = list(r)
        assert len(set(keys)) == len(keys), "iter() yielded duplicates"
        r.stats()
        self.scans += 1


class ListChecker:
    """Read-after-write and consistency checks on a List reader the writer appends i to."""

    def __init__(self, path, list_count):
        self.r = pysos.List(path, readonly=True)
        self.list_count = list_count
        self.last_len = 0
        self.reads = self.scans = 0

    def step(self):
        r, published = self.r, self.list_count.value
        n = len(r)
        assert n >= published, f"read-after-write: len {n} < published {published}" + diagnose(r)
        assert n >= self.last_len, f"len went backwards: {self.last_len} -> {n}"
        self.last_len = n
        if n:
            assert r[n - 1] == n - 1, f"item {n - 1} is {r[n - 1]!r}"
            tail = r[-1]
            assert tail >= n - 1, f"last item {tail} behind len {n}"
            start = max(0, n - 20)
            got = r[start:n]
            assert got == list(range(start, n)), f"slice [{start}:{n}] is {got!r}"
        self.reads += 1

    def scan(self):
        published = self.list_count.value
        items = list(_reading_along(self.r, self.r))
        assert len(items) >= published, f"iteration: {len(items)} items < published {published}"
        assert items == list(range(len(items))), "iteration is not 0, 1, 2, ... (duplicate, gap or torn item)"
        self.scans += 1


@reporting
def soak_reader(dict_path, list_path, counter, list_count, stop, refresh_interval, queue):
    """Alternate Dict and List checks until told to stop; a full iteration of each every 0.5 s."""
    dc = DictChecker(dict_path, counter, refresh_interval)
    lc = ListChecker(list_path, list_count)
    next_scan = 0.0
    while not stop.is_set():
        dc.step()
        lc.step()
        if time.monotonic() >= next_scan:
            dc.scan()
            lc.scan()
            next_scan = time.monotonic() + 0.5
    dc.r.close()
    lc.r.close()
    return {"dict_reads": dc.reads, "dict_scans": dc.scans, "counter": dc.last,
            "list_reads": lc.reads, "list_scans": lc.scans, "len": lc.last_len}


@reporting
def loop_compactor(paths, segment_size, stop, queue):
    """Stands in for ``python -m pysos.compactor`` while it does not exist: compact from outside."""
    from pysos.compactor import compact_directory

    runs = 0
    while not stop.is_set():
        for path in paths:
            try:
                result = compact_directory(path, segment_size=segment_size, wait=0.0)
            except LockedError:
                continue
            runs += result["segments_in"] > 0
        stop.wait(0.2)
    return {"compactions": runs}



# --- kill mid-batch ------------------------------------------------------------------------


def batch_key(b: int, j: int) -> str:
    return f"b{b:06d}-{j:02d}"


@reporting
def batch_writer(path, published, ready, options, queue):
    """Write batches of BATCH_KEYS keys (each batch also deletes an old one) until killed."""
    import logging

    cuts = []
    handler = logging.Handler()
    handler.emit = lambda record: cuts.append(record.getMessage())
    logging.getLogger("pysos").addHandler(handler)
    d = pysos.Dict(path, segment_size=options["segment_size"], autocompact=True)  # lock_timeout=0
    torn = sum("torn tail" in message for message in cuts)
    queue.put(("info", f"opened[{os.getpid()}]", {"torn_tail_cut": torn}))
    first_batch = d.get("last", -1) + 1
    ready.set()
    pad = "y" * options["value_size"]
    b = first_batch
    while True:
        if options.get("tear_at") == b - first_batch:
            _die_in_the_middle_of_the_next_write()
        with d.batch():
            for j in range(BATCH_KEYS):
                d[batch_key(b, j)] = {"b": b, "j": j, "pad": pad}
            d["last"] = b
            old = b - KEEP_BATCHES
            if old >= 0:
                for j in range(BATCH_KEYS):
                    d.pop(batch_key(old, j), None)
        published.value = b
        b += 1
        if options["compact_every"] and b % options["compact_every"] == 0:
            d.compact()
        if options.get("batches") and b - first_batch >= options["batches"]:
            break
    d.close()
    return {"batches": b - first_batch}



def _reading_along(r, iterable, every=20):
    """Yield from ``iterable``, reading the store every ``every`` items: each such read
    follows the writer, so swaps are adopted in the middle of the iteration."""
    for n, item in enumerate(iterable):
        if n % every == 0:
            len(r)
        yield item


def _die_in_the_middle_of_the_next_write():
    """Make the next append write half its bytes, linger so readers see them, then SIGKILL us."""
    import signal
    from pysos.segments import files

    real = files.pwrite

    def torn(fd, data, offset):
        real(fd, data[: len(data) // 2], offset)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)

    files.pwrite = torn


def check_batches(pairs) -> Counter:
    """Group (key, value) pairs by batch id; every batch must be whole."""
    sizes: Counter = Counter()
    seen = set()
    for key, value in pairs:
        assert key not in seen, f"duplicate key {key!r}"
        seen.add(key)
        if key == "last":
            continue
        b = int(key[1:7])
        assert value["b"] == b and key == batch_key(b, value["j"]), f"{key!r} holds {value!r}"
        sizes[b] += 1
    partial = {b: n for b, n in sizes.items() if n != BATCH_KEYS}
    assert not partial, f"partial batches (batch id: keys seen): {partial}"
    return sizes


@reporting
def batch_reader(path, published, stop, queue):
    r = pysos.Dict(path, readonly=True)
    last = -1
    scans = 0
    batches_seen = set()
    while not stop.is_set():
        p = published.value
        sizes = check_batches(_reading_along(r, r.items()))
        current = r.get("last", -1)
        assert current >= p, f"read-after-write: last batch {current} < published {p}" + diagnose(r)
        assert current >= last, f"last batch went backwards: {last} -> {current}"
        if current >= 0:
            for j in (0, BATCH_KEYS - 1):
                value = r.get(batch_key(current, j))
                # batch `current` may have been deleted since by a much later batch
                assert value is not None or r["last"] >= current + KEEP_BATCHES, \
                    f"batch {current} announced by 'last' but key {j} is missing"
        last = current
        batches_seen.update(sizes)
        scans += 1
    p = published.value  # a last look once the parent is done writing
    last = r["last"]
    assert last >= p, f"read-after-write: last batch {last} < published {p}"
    check_batches(r.items())
    r.close()
    return {"scans": scans, "last": last, "batches_seen": len(batches_seen)}



# --- readers hold no locks ------------------------------------------------------------------


@reporting
def busy_reader(path, kind, started, stop, queue):
    """Read, iterate and keep a half-consumed iterator open, until told to stop."""
    cls = pysos.Dict if kind == "dict" else pysos.List
    r = cls(path, readonly=True)
    parked = iter(r.items() if kind == "dict" else r)
    next(parked, None)          # an iteration left open
    reads = 0
    started.set()
    while not stop.is_set():
        len(r)
        for _ in (r.items() if kind == "dict" else r):
            pass
        reads += 1
    r.close()
    return {"reads": reads}



# --- a reader racing the creation of stores --------------------------------------------------


@reporting
def creating_writer(paths, queue):
    """Create a store at each path in turn (Dicts and Lists alternately) with one item."""
    for n, path in enumerate(paths):
        if n % 2 == 0:
            with pysos.Dict(path) as d:
                d["a"] = 1
        else:
            with pysos.List(path) as lst:
                lst.append(1)
    return {"created": len(paths)}


@reporting
def racing_opener(paths, queue):
    """Open each path with pysos.open(readonly=True) as soon as it holds a store."""
    outcomes: Counter = Counter()
    for n, path in enumerate(paths):
        deadline = time.monotonic() + 60
        while True:
            try:
                r = pysos.open(path, readonly=True)
            except FileNotFoundError:
                outcomes["FileNotFoundError"] += 1
                assert time.monotonic() < deadline, f"{path} never became a store"
                continue
            if n % 2 == 0:
                assert isinstance(r, pysos.Dict) and dict(r.items()) in ({}, {"a": 1}), path
            else:
                assert isinstance(r, pysos.List) and list(r) in ([], [1]), path
            outcomes["empty" if len(r) == 0 else "written"] += 1
            r.close()
            break
    return dict(outcomes)


@reporting
def lock_waiter(path, timeout, tried, queue):
    """Try once without waiting (must be refused), then wait with lock_timeout."""
    try:
        pysos.Dict(path)
    except LockedError as exc:
        refused = str(exc)
    else:
        raise AssertionError("opened a store another process holds for writing")
    tried.set()
    d = pysos.Dict(path, lock_timeout=timeout)
    d["waiter"] = os.getpid()
    d.close()
    return {"refused": refused}



def drain(queue) -> tuple[list, dict]:
    """(errors, figures by worker) from everything the children reported."""
    errors, figures = [], {}
    while True:
        try:
            kind, who, payload = queue.get_nowait()
        except Exception:
            return errors, figures
        if kind == "error":
            errors.append(f"--- {who}\n{payload}")
        else:
            figures[who] = payload


# --- lockstep: a writer that waits for the reader after each step ---------------------------


@reporting
def lockstep_list_writer(path, conn, steps, queue):
    """Random list edits (append, insert anywhere, pop, set, slices, compact); after each
    step send the expected list and wait for the reader's go-ahead."""
    rng = random.Random(7)
    lst = pysos.List(path, segment_size=2048, autocompact=False)
    model: list = []
    n = 0
    for step in range(steps):
        op = rng.random()
        n += 1
        if op < 0.3 or not model:
            lst.append(n)
            model.append(n)
        elif op < 0.55:
            i = rng.randrange(-len(model) - 1, len(model) + 2)
            lst.insert(i, n)
            model.insert(i, n)
        elif op < 0.7:
            i = rng.randrange(len(model))
            assert lst.pop(i) == model.pop(i)
        elif op < 0.8:
            i = rng.randrange(len(model))
            lst[i] = model[i] = {"set": n}
        elif op < 0.87:
            a = rng.randrange(len(model) + 1)
            b = rng.randrange(a, len(model) + 1)
            lst[a:b] = model[a:b] = [n, n + 0.5]
        elif op < 0.92:
            a = rng.randrange(len(model) + 1)
            del lst[a:a + 3]
            del model[a:a + 3]
        elif op < 0.96:
            lst.extend([n] * 3)
            model.extend([n] * 3)
        else:
            lst.compact()
        conn.send(model)
        assert conn.recv() == "ok"
    conn.send(None)
    lst.close()
    return {"steps": steps}


@reporting
def snapshot_writer(path, go, done, queue):
    """Wait for the reader to be inside an iteration, then delete a whole batch and compact."""
    d = pysos.Dict(path, autocompact=False)
    assert go.wait(60)
    with d.batch():
        for key in list(d):
            if key.startswith("b"):
                del d[key]
    d.compact()
    d.close()
    done.set()
    return {}


@reporting
def churn_writer(path, seed, rounds, queue):
    """Churn with tiny segments, deletes and a compaction per round; return the final contents."""
    rng = random.Random(seed)
    d = pysos.Dict(path, segment_size=4096, autocompact=False)
    d["gone"] = 1
    del d["gone"]
    for round_ in range(rounds):
        for i in range(600):
            key = f"k{rng.randrange(300)}"
            if rng.random() < 0.2:
                d.pop(key, None)
            else:
                d[key] = churn_value(key, round_ * 1000 + i)
        d.compact()
    final = dict(d.items())
    d.close()
    return final


@reporting
def emptying_writer(path, phase1, go, done, queue):
    """Leave the highest-numbered segment all garbage, compact it away from outside (no
    seal), then rotate: the setting in which a segment number could come back."""
    from pysos.compactor import compact_directory

    d = pysos.Dict(path, autocompact=False, segment_size=1000)
    d["a"] = 1
    d["b"] = 1
    d.compact()              # a and b in a compaction output numbered above the newest
    phase1.set()
    assert go.wait(60)
    d["a"] = 2
    d["b"] = 2               # that output is now all garbage
    compact_directory(path, segment_size=1000, wait=0.0)
    d["c"] = "x" * 1000      # a rotation: a new newest segment
    names = sorted(os.listdir(path))
    d.close()
    done.set()
    return {"files": names}
