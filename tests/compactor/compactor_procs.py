"""Processes for the compactor's multi-process and kill tests.

    python compactor_procs.py writer PATH OPS SEED RESULT        churn, then write the model
    python compactor_procs.py reader PATH STOPFILE RESULT        read and check until STOPFILE exists
    python compactor_procs.py kill-trials TRIALS_JSON RESULT     run kill -9 trials (see below)

A kill trial runs in a forked grandchild, which counts the filesystem calls
(``pysos.segments.files.*`` but the pure reads ``pread`` and ``size``) made by the
compactor and sends itself SIGKILL at call number ``kill_at``: a real kill -9 at a chosen point of a merge (scanning, writing
outputs or hints, fsyncs, the MANIFEST swap, deleting retired files, cleaning leftovers).
Two kinds:

- ``daemon``: runs ``python -m pysos.compactor PATH --once`` (its ``main``) on a store;
- ``writer``: a writer with ``autocompact=True`` and tiny thresholds churns the store
  (seeded ops, each reported to a file after it returns) while its background thread
  compacts; only the compactor thread's calls are counted.

``kill_at = 0`` means: do not kill, report the number of calls (calibration).
"""

import json
import os
import random
import signal
import sys
import threading
import time

import pysos
from pysos.segments import files

DELETED = None


def writer_ops(seed, keys=300):
    """The endless deterministic stream of (key, value-or-DELETED) the writer applies."""
    rng = random.Random(seed)
    i = 0
    while True:
        key = f"k{rng.randrange(keys)}"
        if rng.random() < 0.2:
            yield key, DELETED
        else:
            yield key, {"i": i, "key": key, "pad": "x" * rng.choice([0, 20, 100, 200])}
        i += 1


def apply(store, op):
    key, value = op
    if value is DELETED:
        store.pop(key, None)
    else:
        store[key] = value


def model_after(seed, n, keys=300):
    model = {}
    ops = writer_ops(seed, keys)
    for _ in range(n):
        apply(model, next(ops))
    return model


# --- churn ---------------------------------------------------------------------------------


def writer(path, n_ops, seed, result):
    model = {}
    max_live = 0
    with pysos.Dict(path, segment_size=4096, autocompact=False) as d:
        ops = writer_ops(seed)
        for i in range(n_ops):
            op = next(ops)
            apply(d, op)
            apply(model, op)
            if i % 10 == 0:
                max_live = max(max_live, d.stats()["live_bytes"])
                time.sleep(0.002)  # a service, not a benchmark: let the others run
        max_live = max(max_live, d.stats()["live_bytes"])
        stats = d.stats()
    with open(result, "w") as f:
        json.dump({"model": model, "max_live": max_live, "stats": stats}, f)


def reader(path, stopfile, result):
    rng = random.Random(1)
    reads = full_scans = 0
    errors = []
    while not os.path.exists(path + "/MANIFEST"):
        time.sleep(0.01)
    with pysos.Dict(path, readonly=True) as d:
        while not os.path.exists(stopfile):
            try:
                key = f"k{rng.randrange(300)}"
                value = d.get(key)
                if value is not None and value["key"] != key:
                    errors.append(f"{key!r} -> {value!r}")
                reads += 1
                if reads % 200 == 0:
                    for k, v in d.items():
                        if v["key"] != k:
                            errors.append(f"items(): {k!r} -> {v!r}")
                    full_scans += 1
            except Exception as exc:  # report, do not die: the test asserts there are none
                errors.append(repr(exc))
    with open(result, "w") as f:
        json.dump({"reads": reads, "full_scans": full_scans, "errors": errors[:20]}, f)


# --- kill trials ---------------------------------------------------------------------------


def _count_calls(kill_at, only_thread_prefix=None):
    """Wrap every function of pysos.segments.files: SIGKILL ourselves at call ``kill_at``."""
    state = {"calls": 0}
    lock = threading.Lock()

    def wrap(fn):
        def counted(*args, **kwargs):
            if only_thread_prefix is None or threading.current_thread().name.startswith(only_thread_prefix):
                with lock:
                    state["calls"] += 1
                    hit = state["calls"] == kill_at
                if hit:
                    os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return counted

    # every call that creates, writes, syncs, renames, deletes or closes; not the reads
    # (pread, size), which dominate and change nothing
    for name in ("open_rw", "open_read", "write", "pwrite", "fsync",
                 "fdatasync", "truncate", "close", "unlink", "replace", "fsync_dir"):
        setattr(files, name, wrap(getattr(files, name)))
    return state


def _daemon_trial(trial):
    from pysos.compactor.daemon import main

    state = _count_calls(trial["kill_at"])
    status = main([trial["path"], "--once", "--max-merge-bytes", str(trial.get("max_merge_bytes", 16384)),
                   "--segment-size", "4096"])
    return {"status": status, "calls": state["calls"]}


def _writer_trial(trial):
    state = _count_calls(trial["kill_at"], only_thread_prefix="pysos-compactor")
    d = pysos.Dict(trial["path"], segment_size=1024, autocompact=True)
    compactor = d._store.compactor
    compactor.ratio, compactor.min_dead_bytes, compactor.max_merge_bytes = 0.0, 0, 8192
    report = os.open(trial["report"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    ops = writer_ops(trial["seed"], keys=80)
    for i in range(trial.get("max_ops", 10**9)):
        apply(d, next(ops))
        os.write(report, b"%d\n" % i)
    d.close()
    return {"status": 0, "calls": state["calls"]}


def kill_trials(trials_json, result):
    with open(trials_json) as f:
        trials = json.load(f)
    outcomes = []
    for trial in trials:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                run = _daemon_trial if trial["kind"] == "daemon" else _writer_trial
                out = run(trial)
            except BaseException as exc:  # noqa: BLE001 - reported to the parent
                out, code = {"error": repr(exc)}, 3
            os.write(write_end, json.dumps(out).encode())
            os._exit(code)
        os.close(write_end)
        chunks = []
        while True:
            chunk = os.read(read_end, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read_end)
        _, status = os.waitpid(pid, 0)
        out = json.loads(b"".join(chunks)) if chunks else {}
        out["killed"] = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        out["exit"] = os.waitstatus_to_exitcode(status)
        outcomes.append(out)
    with open(result, "w") as f:
        json.dump(outcomes, f)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "writer":
        writer(args[0], int(args[1]), int(args[2]), args[3])
    elif command == "reader":
        reader(*args)
    elif command == "kill-trials":
        kill_trials(*args)
    else:
        raise SystemExit(f"unknown command {command!r}")
