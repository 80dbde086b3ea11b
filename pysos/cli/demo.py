"""The README quickstart as a program: ``pysos demo [DIR]`` (or ``python tools/demo.py``).

It makes a Dict and a List store in DIR (a fresh temporary directory, removed at the
end, when DIR is not given), writes, reads back, deletes, compacts, and prints stats().
"""

import os
import tempfile

import pysos

from .parsing import command


def run(directory):
    """Run the demo on stores inside ``directory``; print what happens."""
    users_dir = os.path.join(directory, "users")
    events_dir = os.path.join(directory, "events")

    # A Dict: every change is on disk when the call returns.
    with pysos.Dict(users_dir) as users:
        users["alice"] = {"name": "Alice", "langs": ["python", "c"]}
        users["bob"] = {"name": "Bob", "langs": []}
        with users.batch():  # one atomic write for many changes
            for i in range(1000):
                users[f"user:{i}"] = {"n": i, "even": i % 2 == 0}
        for i in range(0, 1000, 2):  # churn: half of them go away again
            del users[f"user:{i}"]
        print("users['alice'] =", users["alice"])
        print("len(users) =", len(users))

    # Many readers, even in other processes, while one writer writes.
    with pysos.Dict(users_dir, readonly=True) as reader:
        print("a reader sees user:7 =", reader["user:7"])

    # A List: inserting anywhere writes one record, not the whole list.
    with pysos.List(events_dir) as events:
        events.extend({"seq": i} for i in range(5))
        events.insert(0, {"seq": "first"})
        del events[-1]
        print("events[:3] =", events[:3])

    # Compaction reclaims the space dead records take (also done in the background).
    with pysos.Dict(users_dir) as users:
        print("compact() ->", users.compact())
        print("users.stats() ->", users.stats())


def cmd_demo(args):
    if args.dir:
        run(args.dir)
        print(f"the stores are in {args.dir}: try 'pysos info {os.path.join(args.dir, 'users')}'")
    else:
        with tempfile.TemporaryDirectory(prefix="pysos-demo-") as directory:
            run(directory)
    return 0


def register(sub):
    p = command(sub, "demo", summary="run the README quickstart on throw-away stores",
                description="Create a Dict and a List store in DIR (default: a temporary "
                            "directory, removed afterwards), write, read back, delete, compact, "
                            "and print stats().",
                examples=["pysos demo", "pysos demo /tmp/pysos-demo && pysos info /tmp/pysos-demo/users"])
    p.add_argument("dir", metavar="DIR", nargs="?", help="where to make the stores (kept)")
    p.set_defaults(func=cmd_demo)
