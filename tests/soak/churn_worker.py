"""Processes of the churn soak (run as scripts by test_churn_soak.py).

    churn_worker.py writer DIR SEED ACKFILE SEGMENT_SIZE AUTOCOMPACT
        random sets/deletes/batches forever; before each call it appends
        "I <seq> <op as JSON>" to ACKFILE, after the call returns "A <seq>"
        (one os.write each, so a SIGKILL leaves whole lines in the page cache).
    churn_worker.py reader DIR ERRFILE STOPFILE
        reads random keys and whole scans until STOPFILE exists; every value must
        name its key, and a key's sequence number never goes backwards; anything
        else goes to ERRFILE.
    churn_worker.py compactor DIR SEGMENT_SIZE
        (only when python -m pysos.compactor does not exist) compacts in a loop.
"""

import json
import os
import random
import sys
import time
import traceback

KEYS = 3000


def key_name(i):
    return f"k{i:04d}"


def make_op(rng, seq):
    r = rng.random()
    if r < 0.6:
        key = key_name(rng.randrange(KEYS))
        return ["set", key, {"k": key, "n": seq, "pad": "x" * rng.randrange(0, 160)}]
    if r < 0.85:
        return ["del", key_name(rng.randrange(KEYS)), None]
    items = []
    for j in range(rng.randrange(2, 10)):
        key = key_name(rng.randrange(KEYS))
        if rng.random() < 0.75:
            items.append(["set", key, {"k": key, "n": seq, "j": j, "pad": "y" * rng.randrange(0, 80)}])
        else:
            items.append(["del", key, None])
    return ["batch", items, None]


def apply(target, op):
    """Apply an op to a pysos Dict or to a plain dict (the model)."""
    kind, a, b = op
    if kind == "set":
        target[a] = b
    elif kind == "del":
        target.pop(a, None)
    else:
        if isinstance(target, dict):
            for sub in a:
                apply(target, sub)
        else:
            with target.batch():
                for sub in a:
                    apply(target, sub)


def writer(directory, seed, ackfile, segment_size, autocompact):
    import pysos

    rng = random.Random(seed)
    d = pysos.Dict(directory, segment_size=segment_size, autocompact=autocompact, lock_timeout=30)
    compactor = d._store.compactor
    if compactor is not None:  # the documented live knobs of the background compactor
        compactor.min_dead_bytes = 64 * 1024
    ack = os.open(ackfile, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(ack, b"ready\n")
    seq = seed * 10**7
    while True:
        seq += 1
        op = make_op(rng, seq)
        os.write(ack, b"I %d %s\n" % (seq, json.dumps(op, separators=(",", ":")).encode()))
        apply(d, op)
        os.write(ack, b"A %d\n" % seq)
        if rng.random() < 0.002 and compactor is None:
            d.compact()


def reader(directory, errfile, stopfile):
    import pysos

    rng = random.Random(os.getpid())
    seen = {}
    reads = 0

    def fail(message):
        with open(errfile, "a") as f:
            f.write(message.rstrip("\n") + "\n")

    d = None
    while not os.path.exists(stopfile):
        try:
            if d is None:
                d = pysos.Dict(directory, readonly=True)
            if rng.random() < 0.02:
                items = list(d.items())
                for key, value in items:
                    check(key, value, seen, fail)
            else:
                key = key_name(rng.randrange(KEYS))
                try:
                    value = d[key]
                except KeyError:
                    continue
                check(key, value, seen, fail)
            reads += 1
        except Exception:
            fail("reader exception:\n" + traceback.format_exc())
            time.sleep(0.05)
        time.sleep(0.0005)
    with open(errfile + ".reads", "w") as f:
        f.write(str(reads))


def check(key, value, seen, fail):
    if not isinstance(value, dict) or value.get("k") != key:
        fail(f"wrong value for {key!r}: {value!r}")
        return
    if value["n"] < seen.get(key, 0):
        fail(f"{key!r} went back in time: n={value['n']} after n={seen[key]}")
    seen[key] = value["n"]


def compactor_loop(directory, segment_size):
    from pysos.compactor import compact_all
    from pysos.errors import LockedError

    while True:
        try:
            compact_all(directory, segment_size=segment_size, wait=1.0)
        except (LockedError, FileNotFoundError):
            pass
        time.sleep(0.2)


if __name__ == "__main__":
    role = sys.argv[1]
    if role == "writer":
        writer(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6] == "1")
    elif role == "reader":
        reader(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        compactor_loop(sys.argv[2], int(sys.argv[3]))
