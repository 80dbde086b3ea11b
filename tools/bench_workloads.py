"""The workloads of tools/bench.py, run inside one child process per measurement.

Each function takes the spec (a dict the parent sends as JSON) and returns a
dict of plain numbers; ``main`` writes it to ``spec["result"]``. Peak memory is
``resource.getrusage`` of this child, so it belongs to one store alone.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

import bench_stores as stores

SEED = 20240601


def maxrss():
    """Peak resident set size of this process so far, in bytes.

    Linux's ``VmHWM``, not ``getrusage``: ``ru_maxrss`` of a child carries the peak of the
    parent it was forked from (measured: 313 MB in a fresh child of a 300 MB parent, whose
    own VmHWM was 13 MB), which hid the first tens of MB of every row's growth.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def make_value(i, size, word="object"):
    """The pysos 1.3 README value, padded to about `size` bytes of JSON when size > 0."""
    value = {"some": f"{word}_{i}"}
    if size:
        value["pad"] = ""
        value["pad"] = "x" * max(0, size - len(orjson.dumps(value)))
    return value


def _ops(count, seconds):
    return count / seconds if seconds > 0 else float("inf")


# ---------------------------------------------------------------- dict rows


def _phase(row, h, items, op, cap):
    """Time op(h, k, v) over items in chunks (batch() chunks for batch rows), the phase's commit
    included; stop after the chunk that passes `cap` seconds. Returns (seconds, items done)."""
    chunk = row.batch or 100
    done = 0
    start = time.perf_counter()
    for lo in range(0, len(items), chunk):
        if row.batch:
            with row.batch_context(h):
                for k, v in items[lo:lo + chunk]:
                    op(h, k, v)
        else:
            for k, v in items[lo:lo + chunk]:
                op(h, k, v)
        done = min(len(items), lo + chunk)
        if time.perf_counter() - start > cap:
            break
    row.commit(h)
    return time.perf_counter() - start, done


def _set(h, k, v):
    h[k] = v


def _get(h, k, v):
    h[k]


READ_ONLY = stores.Row()  # reads: no batch, no commit


def _delete(h, k, v):
    del h[k]


def run_dict(spec):
    """Inserts, random reads, updates, deletes on a fresh store; then close and measure disk."""
    row = stores.make_row(spec["row"])
    row.load(spec)
    n, size = spec["n"], spec["value_size"]
    rng = random.Random(SEED)
    keys = [f"key_{i}" for i in range(n)]
    inserts = [(k, make_value(i, size)) for i, k in enumerate(keys)]
    read_order = keys[:]
    rng.shuffle(read_order)
    update_order = keys[:]
    rng.shuffle(update_order)
    phases = {
        "insert": (inserts, _set),
        "read": ([(k, None) for k in read_order], _get),
        "update": ([(k, make_value(i, max(size, 100), "updated")) for i, k in enumerate(update_order)], _set),
        "delete": ([(k, None) for k in rng.sample(keys, n // 2)], _delete),
    }
    directory = Path(spec["dir"])
    cap = spec.get("phase_cap", float("inf"))
    baseline = maxrss()

    h = row.open(directory)
    result = {"capped": []}
    expected = n
    for name, (items, op) in phases.items():
        if expected < n:  # inserts were capped: later phases touch only the keys that exist
            items = [(k, v) for k, v in items if int(k[4:]) < expected]
        seconds, done = _phase(row if name != "read" else READ_ONLY, h, items, op, cap)
        result[f"{name}_s"] = seconds
        result[f"{name}_ops"] = _ops(done, seconds)
        if done < len(items):
            result["capped"].append(f"{name} {done:,}/{len(items):,}")
        if name == "insert":
            expected = done
            assert h[keys[done - 1]] == inserts[done - 1][1], "read back a wrong value"
        elif name == "delete":
            expected -= done
    assert len(h) == expected, f"len is {len(h)} after the deletes, expected {expected}"
    row.close(h)
    result.update(
        peak_rss=maxrss(),
        rss_delta=maxrss() - baseline,
        rss_delta_per_key=(maxrss() - baseline) / n,
        len_expected=expected,
    )
    if row.can_reopen:
        result["disk_bytes"] = stores.disk_bytes(directory)
    return result


def run_reopen(spec):
    """Open an existing store in a fresh process: time open + len(), memory; then compact."""
    row = stores.make_row(spec["row"])
    row.load(spec)
    directory = Path(spec["dir"])
    baseline = maxrss()
    start = time.perf_counter()
    h = row.open(directory)
    length = len(h)
    result = {"reopen_s": time.perf_counter() - start, "len": length}
    result["reopen_rss_delta"] = maxrss() - baseline
    result["reopen_rss_per_key"] = result["reopen_rss_delta"] / max(1, length)
    if spec.get("compact", True):
        start = time.perf_counter()
        compacted = row.compact(h, directory)
        if compacted is not None:
            result["compact_s"] = time.perf_counter() - start
            result["disk_compacted"] = stores.disk_bytes(compacted)
    else:
        row.close(h)
    return result


PROBE_KEYS = 500
PROBE_UPDATE_SIZE = 600  # updates grow the values: stores that move a value must record the move


def run_probe(spec):
    """Insert, delete half, update the other half to bigger values, then die by SIGKILL unclosed."""
    row = stores.make_row(spec["row"])
    row.load(spec)
    h = row.open(Path(spec["dir"]))
    keys = [f"key_{i}" for i in range(PROBE_KEYS)]
    for name, items, setter in (
        ("insert", [(k, make_value(i, 0)) for i, k in enumerate(keys)], _set),
        ("delete", [(k, None) for k in keys[::2]], _delete),
        ("update", [(k, make_value(i, PROBE_UPDATE_SIZE, "updated")) for i, k in enumerate(keys) if i % 2], _set),
    ):
        if row.batch:
            with row.batch_context(h):
                for k, v in items:
                    setter(h, k, v)
        else:
            for k, v in items:
                setter(h, k, v)
    os.kill(os.getpid(), signal.SIGKILL)


def run_probe_check(spec):
    """Count the changes of run_probe that a reopen does not show."""
    row = stores.make_row(spec["row"])
    row.load(spec)
    try:
        h = row.open(Path(spec["dir"]))
    except Exception as exc:  # the store does not even open after kill -9
        return {"wrong": PROBE_KEYS, "error": f"{type(exc).__name__}: {exc}"}
    wrong = 0
    for i in range(PROBE_KEYS):
        key = f"key_{i}"
        try:
            value = h[key]
        except KeyError:
            value = None
        expected = None if i % 2 == 0 else make_value(i, PROBE_UPDATE_SIZE, "updated")
        wrong += value != expected
    row.close(h)
    return {"wrong": wrong, "changes": PROBE_KEYS * 2}


# ---------------------------------------------------------------- lists


def _build_list(store, spec, size):
    values = [make_value(i, 0) for i in range(size)]
    directory = Path(spec["dir"])
    if store == "list":
        return values, None
    if store == "pysos":
        pysos = stores.load_pysos()
        lst = pysos.List(directory / "store")
        for lo in range(0, size, 10_000):
            lst.extend(values[lo:lo + 10_000])
        return lst, lst.close
    mod = stores.load_pysos13(spec["pysos13_dir"])
    path = directory / "data.sos"
    with open(path, "w", encoding="utf-8") as f:  # the file pysos 1.3 itself would write
        f.write(mod.List.START_FLAG.decode())
        for i, v in enumerate(values):
            f.write(f"{i}\t{json.dumps(v, ensure_ascii=False)}\n")
    lst = mod.List(str(path))
    return lst, lst.close


def _timed(count, cap, op):
    """Run op(i) up to count times or until cap seconds; ops/s, or None if unsupported."""
    start = time.perf_counter()
    done = 0
    try:
        while done < count:
            op(done)
            done += 1
            if done % 100 == 0 and time.perf_counter() - start > cap:
                break
    except NotImplementedError:
        return None
    return _ops(done, time.perf_counter() - start)


def run_list(spec):
    """append, random l[i], pop(), pop(0), insert(0, v) on a list of spec["size"] items."""
    store, size = spec["store"], spec["size"]
    if store == "pysos":
        stores.load_pysos()
    elif store == "pysos13":
        stores.load_pysos13(spec["pysos13_dir"])
    k = max(1, min(spec["ops"], size // 2))
    cap = spec["cap_s"]
    baseline = maxrss()
    start = time.perf_counter()
    lst, close = _build_list(store, spec, size)
    result = {"build_s": time.perf_counter() - start}
    rng = random.Random(SEED)
    indexes = [rng.randrange(size) for _ in range(k)]
    value = make_value(-1, 0)
    result["append_ops"] = _timed(k, cap, lambda i: lst.append(value))
    result["getitem_ops"] = _timed(k, cap, lambda i: lst[indexes[i]])
    result["pop_ops"] = _timed(k, cap, lambda i: lst.pop())
    result["pop0_ops"] = _timed(k, cap, lambda i: lst.pop(0))
    result["insert0_ops"] = _timed(k, cap, lambda i: lst.insert(0, value))
    result["len"] = len(lst)
    result["rss_delta"] = maxrss() - baseline
    if close:
        close()
    return result


# ---------------------------------------------------------------- readers and latency


def _fill_pysos(path, n, **kwargs):
    pysos = stores.load_pysos()
    with pysos.Dict(path, **kwargs) as d:
        for lo in range(0, n, 1000):
            with d.batch():
                for i in range(lo, min(n, lo + 1000)):
                    d[f"key_{i}"] = make_value(i, 0)
    return pysos


def run_writer(spec):
    """The writer beside a reader: updates random keys as fast as it can."""
    pysos = stores.load_pysos()
    rng = random.Random(SEED + 1)
    n, writes = spec["n"], spec["writes"]
    order = [f"key_{rng.randrange(n)}" for _ in range(writes)]
    with pysos.Dict(spec["dir"]) as d:
        Path(spec["ready"]).touch()
        start = time.perf_counter()
        for i, key in enumerate(order):
            d[key] = make_value(i, 0, "written")
        elapsed = time.perf_counter() - start
    return {"writes": writes, "write_ops": _ops(writes, elapsed)}


def run_readers(spec):
    """A readonly handle's random reads/s alone, then while another process writes."""
    n = spec["n"]
    directory = Path(spec["dir"])
    path = directory / "store"
    pysos = _fill_pysos(path, n)
    rng = random.Random(SEED)
    order = [f"key_{rng.randrange(n)}" for _ in range(n)]
    reader = pysos.Dict(path, readonly=True, refresh_interval=spec["refresh_interval"])
    start = time.perf_counter()
    for key in order:
        reader[key]
    result = {"alone_read_ops": _ops(n, time.perf_counter() - start)}

    ready = directory / "ready"
    writer_spec = {"mode": "writer", "dir": str(path), "n": n, "writes": spec["writes"],
                   "ready": str(ready), "result": str(directory / "writer.json")}
    proc = subprocess.Popen([sys.executable, spec["bench"], "--child", json.dumps(writer_spec)])
    while not ready.exists():
        if proc.poll() is not None:
            raise RuntimeError("writer died before it was ready")
        time.sleep(0.005)
    reads = 0
    start = time.perf_counter()
    while proc.poll() is None:
        chunk = order[reads % n:reads % n + 1000]
        for key in chunk:
            reader[key]
        reads += len(chunk)
    elapsed = time.perf_counter() - start
    if proc.wait() != 0:
        raise RuntimeError("writer failed")
    reader.close()
    result["busy_read_ops"] = _ops(reads, elapsed)
    result.update(json.loads(Path(writer_spec["result"]).read_text()))
    return result


def run_latency(spec):
    """Per-write latency of a churn workload (3 updates per key), autocompact on or off."""
    n = spec["n"]
    path = Path(spec["dir"]) / "store"
    kwargs = {"segment_size": spec["segment_size"], "autocompact": spec["autocompact"]}
    pysos = _fill_pysos(path, n, **kwargs)
    rng = random.Random(SEED)
    updates = [(f"key_{rng.randrange(n)}", make_value(i, 100, "churn")) for i in range(3 * n)]
    latencies = []
    clock = time.perf_counter_ns
    with pysos.Dict(path, **kwargs) as d:
        gen0 = d.stats()["generation"]
        start = time.perf_counter()
        for key, value in updates:
            t0 = clock()
            d[key] = value
            latencies.append(clock() - t0)
        elapsed = time.perf_counter() - start
        stats = d.stats()
        t0 = time.perf_counter()
    close_s = time.perf_counter() - t0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "write_ops": _ops(len(updates), elapsed),
        "p50_us": q[49] / 1000,
        "p99_us": q[98] / 1000,
        "max_us": latencies[-1] / 1000,
        "generations": stats["generation"] - gen0,
        "segments": stats["segments"],
        "dead_bytes": stats["dead_bytes"],
        "close_s": close_s,
    }


# ---------------------------------------------------------------- the million-key reopen


def run_big_build(spec):
    """Write spec["n"] keys the way the store itself would (pysos: batches of 1,000)."""
    n = spec["n"]
    directory = Path(spec["dir"])
    start = time.perf_counter()
    if spec["row"] == "pysos":
        _fill_pysos(directory / "store", n)
    else:
        mod = stores.load_pysos13(spec["pysos13_dir"])
        with open(directory / "data.sos", "w", encoding="utf-8") as f:
            f.write(mod.Dict.START_FLAG.decode())
            for i in range(n):
                f.write(f"{json.dumps(f'key_{i}')}\t{json.dumps(make_value(i, 0))}\n")
    return {"build_s": time.perf_counter() - start, "disk_bytes": stores.disk_bytes(directory)}


def run_big_compact(spec):
    """Compact a pysos store (writes the hint files)."""
    pysos = stores.load_pysos()
    start = time.perf_counter()
    with pysos.Dict(Path(spec["dir"]) / "store") as d:
        d.compact()
    return {"compact_s": time.perf_counter() - start}


MODES = {
    "dict": run_dict,
    "reopen": run_reopen,
    "probe": run_probe,
    "probe-check": run_probe_check,
    "list": run_list,
    "readers": run_readers,
    "writer": run_writer,
    "latency": run_latency,
    "big-build": run_big_build,
    "big-compact": run_big_compact,
}


def main(spec):
    try:
        result = {"status": "ok", **MODES[spec["mode"]](spec)}
    except stores.Missing as exc:
        result = {"status": "not installed", "reason": str(exc)}
    Path(spec["result"]).write_text(json.dumps(result))
