"""Child process for the crash tests: opens a store and applies a seeded stream of changes,
appending the number of each change to a report file *after* the call returned.

Run as ``python crash_child.py MODE PATH SEED SEGMENT_SIZE WITH_COMPACT REPORT``; it never stops by itself,
the parent kills it with SIGKILL. The parent imports this module to regenerate the same
stream (``ops(mode, seed)``) and replay it on a model (``apply(mode, model, op)``).
"""

import os
import random
import sys

DEL = "<deleted>"
KEYS = [f"k{i}" for i in range(250)] + ["line\nbreak", "tab\tkey", "\u2028sep", "nul\x00", "\U0001f600"]
AWKWARD = ["\n", "\t", "\u2028", "\x00", '"', "\\", "\U0001f600", "é"]


def _value(rng, i):
    pad = "x" * rng.choice([0, 5, 40, 300, 1500])
    return {"op": i, "s": "".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 4))), "pad": pad}


def ops(mode, seed, with_compact=False):
    """Yield the endless, deterministic stream of changes for ``mode``."""
    rng = random.Random(seed)
    i = 0
    while True:
        if mode == "dict":
            r = rng.random()
            if with_compact and r < 0.01:
                yield ("compact",)
            elif r < 0.75:
                yield ("set", rng.choice(KEYS), _value(rng, i))
            else:
                yield ("del", rng.choice(KEYS))
        elif mode == "batch":
            keys = rng.sample(KEYS, rng.randint(5, 50))
            items = [(k, DEL if rng.random() < 0.2 else {"batch": f"{seed}-{i}", "j": j,
                                                     "pad": "y" * rng.choice([0, 50, 400])})
                     for j, k in enumerate(keys)]
            yield ("batch", f"{seed}-{i}", items)
        elif mode == "list":
            r = rng.random()
            if r < 0.6:
                yield ("append", _value(rng, i))
            elif r < 0.7:
                yield ("insert0", _value(rng, i))
            else:
                yield ("pop",)
        else:
            raise ValueError(mode)
        i += 1


def apply(mode, store, op):
    """Apply one change to ``store`` (a pysos store or a plain dict/list model)."""
    kind = op[0]
    if kind == "compact":
        if not isinstance(store, (dict, list)):
            store.compact()
    elif kind == "set":
        store[op[1]] = op[2]
    elif kind == "del":
        store.pop(op[1], None)
    elif kind == "batch":
        if isinstance(store, dict):
            _apply_items(store, op[2])
        else:
            with store.batch():
                _apply_items(store, op[2])
    elif kind == "append":
        store.append(op[1])
    elif kind == "insert0":
        store.insert(0, op[1])
    elif kind == "pop":
        if len(store):
            store.pop()
    else:
        raise ValueError(op)


def _apply_items(store, items):
    for key, value in items:
        if value == DEL:
            store.pop(key, None)
        else:
            store[key] = value


def main(argv):
    mode, path, seed, segment_size, with_compact, report = argv
    seed, segment_size, with_compact = int(seed), int(segment_size), with_compact == "1"
    if os.environ.get("PYSOS_SRC"):
        sys.path.insert(0, os.environ["PYSOS_SRC"])
    import pysos

    cls = pysos.List if mode == "list" else pysos.Dict
    fd = os.open(report, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    store = cls(path, durability="flush", segment_size=segment_size)
    os.write(fd, b"ready\n")
    for i, op in enumerate(ops(mode, seed, with_compact)):
        apply(mode, store, op)
        os.write(fd, b"%d\n" % i)


if __name__ == "__main__":
    main(sys.argv[1:])
