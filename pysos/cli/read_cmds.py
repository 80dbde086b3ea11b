"""The commands that only look: info/stats, get, keys, dump, check. They open the store
read-only (so they work while a service holds the writer) and never create anything."""

import os
import sys

import pysos

from . import access
from .errors import EXIT_OK, EXIT_PROBLEMS
from .jsonio import dumps
from .parsing import command, json_arg, key_args, quiet_arg, store_arg
from .progress import Progress

_ORDER = ("kind", "codec", "keys", "segments", "generation", "live_bytes", "dead_bytes", "disk_bytes")
_HANDLE_ONLY = ("readonly", "durability")  # about the CLI's own read-only handle


def lock_holder(path, name):
    """The pid holding lock ``name`` of the store, None when free, "unknown" if the core
    cannot tell."""
    try:
        from pysos.segments.locks import holder
    except ImportError:
        return "unknown"
    return holder(os.fspath(path), name)


def _human(name, value):
    if name.endswith(("_bytes", "_size")) and isinstance(value, int):
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= size:
                return f"{value / size:.1f} {unit} ({value:,} bytes)"
        return f"{value:,} bytes"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def cmd_info(args):
    if str(args.store).startswith("s3://"):  # a replica in object storage
        from .replica_cmds import cmd_info_remote

        return cmd_info_remote(args)
    with access.open_reader(args.store) as store:
        stats = {k: v for k, v in store.stats().items() if k not in _HANDLE_ONLY}
        stats.setdefault("kind", access.kind_of(store))
    locks = {name: lock_holder(args.store, name) for name in ("writer", "compact")}
    if args.json:
        print(dumps({"store": os.fspath(args.store), **stats,
                     "writer_pid": locks["writer"], "compact_pid": locks["compact"]}))
        return EXIT_OK
    rows = [("store", os.fspath(args.store))]
    rows += [(name, _human(name, stats[name])) for name in _ORDER if name in stats]
    rows += [(name, _human(name, v)) for name, v in stats.items()
             if name not in _ORDER and v is not None]
    for name, pid in locks.items():
        held = "free" if pid is None else pid if pid == "unknown" else f"held by pid {pid}"
        rows.append((f"{name} lock", held))
    width = max(len(name) for name, _ in rows) + 1
    for name, text in rows:
        print(f"{name.replace('_', ' ') + ':':<{width + 1}} {text}")
    return EXIT_OK


def cmd_get(args):
    with access.open_reader(args.store) as store:
        where = access.locate(store, args)
        try:
            value = access.to_plain(store)(store[where])  # as it is on disk (see access.to_plain)
        except (KeyError, IndexError):
            raise access.not_found(store, args.store, where, args.key, args.command) from None
    print(value if args.raw and isinstance(value, str) else dumps(value, indent=args.pretty))
    return EXIT_OK


def cmd_keys(args):
    with access.open_reader(args.store) as store:
        access.require_kind(store, args.store, "dict", "keys")
        out = sys.stdout
        for key in store:
            if args.prefix is None or access.key_text(key).startswith(args.prefix):
                out.write((key if args.raw and isinstance(key, str) else dumps(key)) + "\n")
    return EXIT_OK


def cmd_dump(args):
    with access.open_reader(args.store) as store:
        if args.prefix is not None:
            access.require_kind(store, args.store, "dict", "dump --prefix")
        out = sys.stdout
        for row in access.rows(store, args.prefix):
            out.write(dumps(row) + "\n")
    return EXIT_OK


def cmd_check(args):
    access.require_store(args.store, damaged_ok=True)
    with Progress("check", unit="bytes", quiet=args.quiet) as bar:
        def report(done, total):
            bar.total = total
            bar.set(done)
        problems = pysos.check(args.store, progress=report)
    errors = [p for p in problems if p.get("severity", "error") == "error"]
    if args.json:
        for problem in problems:
            print(dumps(problem))
    else:
        for p in problems:
            where = p.get("file") or "store"
            if p.get("offset") is not None:
                where += f" @ byte {p['offset']}"
            severity = "" if p.get("severity", "error") == "error" else f"{p['severity']}: "
            print(f"{where}: {severity}{p.get('problem')}")
        if errors:
            print(f"{len(errors)} problem(s) found in {args.store}; "
                  f"'pysos repair {args.store}' salvages every intact record")
        elif problems:
            print(f"{args.store}: healthy (every checksum verified; {len(problems)} warning(s) above)")
        else:
            print(f"{args.store}: healthy (every checksum verified)")
    # Warnings (a torn tail the next writer cuts, a stale hint, a leftover file) lose no data.
    return EXIT_PROBLEMS if errors else EXIT_OK


def register(sub):
    p = command(sub, "info", aliases=["stats"], summary="show what a store holds and who holds its locks",
                description="Show a store's kind, number of keys or items, segments, generation, "
                            "live/dead/disk bytes and which process (if any) holds its writer and "
                            "compaction locks. Read-only: works while a service writes.",
                examples=["pysos info data/users", "pysos stats --json data/users | jq .dead_bytes"])
    store_arg(p)
    json_arg(p)
    p.set_defaults(func=cmd_info)

    p = command(sub, "get", summary="print one value as JSON",
                description="Print the value stored under KEY (a Dict) or at index KEY (a List, "
                            "negative counts from the end) as JSON on stdout. A Dict KEY is JSON if "
                            "it parses as a JSON scalar (12, 1.5, true, null, \"quoted\"), else the "
                            "text itself; --str-key always takes the text.",
                examples=["pysos get data/users alice", "pysos get data/users 42          # the int key 42",
                          "pysos get --str-key data/users 42   # the string key \"42\"",
                          "pysos get data/events -1        # the last item of a List",
                          "pysos get --raw data/config motd  # a string without JSON quotes"])
    store_arg(p)
    key_args(p)
    p.add_argument("--raw", action="store_true", help="print a string value without JSON quotes")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.set_defaults(func=cmd_get)

    p = command(sub, "keys", summary="list the keys of a Dict store, one JSON per line",
                description="Print every key of a Dict store, one per line, as JSON (so the int 1 "
                            "and the string \"1\" differ). --prefix keeps the keys whose text starts "
                            "with PREFIX (a non-string key is matched by its JSON form).",
                examples=["pysos keys data/users", "pysos keys --prefix user: --raw data/users"])
    store_arg(p)
    p.add_argument("--prefix", metavar="PREFIX", help="only keys starting with PREFIX")
    p.add_argument("--raw", action="store_true", help="print string keys without JSON quotes")
    p.set_defaults(func=cmd_keys)

    p = command(sub, "dump", summary="print every record as JSON lines",
                description="Print the store as JSON lines on stdout: {\"key\": K, \"value\": V} for a "
                            "Dict (plus \"expires\": DEADLINE, Unix seconds, for a key that expires), "
                            "{\"index\": I, \"value\": V} for a List. 'pysos import' reads this "
                            "back. The dump is one consistent snapshot even while a writer writes.",
                examples=["pysos dump data/users > users.jsonl", "pysos dump data/users | jq -c .value",
                          "pysos dump --prefix user: data/users"])
    store_arg(p)
    p.add_argument("--prefix", metavar="PREFIX", help="only Dict keys starting with PREFIX")
    p.set_defaults(func=cmd_dump)

    p = command(sub, "check", summary="verify every checksum of a store",
                description="Read every segment, hint file and the manifest and verify every "
                            "checksum. Prints one line per problem (file, byte offset, what is wrong). "
                            "Exit status 0: healthy, 3: problems found, 1: could not check.",
                examples=["pysos check data/users", "pysos check --json data/users"])
    store_arg(p)
    quiet_arg(p)
    p.add_argument("--json", action="store_true", help="print each problem as a JSON line")
    p.set_defaults(func=cmd_check)
