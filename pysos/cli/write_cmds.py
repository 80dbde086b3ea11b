"""The commands that change a store: set, del, compact, repair. They need the writer lock
(or, for repair, whatever pysos.repair takes) and never create a store."""

import os

import pysos
from pysos.engine import DEFAULT_SEGMENT_SIZE
from pysos.segments.locks import holder
from pysos.segments.segment import segment_number

from . import access
from .errors import EXIT_OK, CliError
from .jsonio import dumps, parse_value
from .parsing import command, json_arg, key_args, quiet_arg, store_arg, wait_arg
from .progress import Progress, Watch


def _size(n):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def cmd_set(args):
    value = args.value if args.raw else parse_value(args.value)
    with access.open_writer(args.store, wait=args.wait) as store:
        where = access.locate(store, args)
        try:  # JSON as get prints it: a tagged store decodes its tagged objects
            store[where] = value if args.raw else access.from_plain(store)(value)
        except IndexError:
            raise CliError(f"index {where} out of range: {args.store} holds {len(store)} items "
                           f"(to append, use 'pysos import')") from None
        except (TypeError, ValueError) as exc:
            raise CliError(f"cannot store that value: {exc}") from None
    return EXIT_OK


def cmd_del(args):
    with access.open_writer(args.store, wait=args.wait) as store:
        where = access.locate(store, args)
        try:
            del store[where]
        except (KeyError, IndexError):
            raise access.not_found(store, args.store, where, args.key, args.command) from None
    return EXIT_OK


def cmd_compact(args):
    access.require_store(args.store)
    running = holder(args.store, "compact")
    if running is not None and not args.wait:
        raise CliError(f"a compaction of {args.store} is already running (pid {running}); "
                       "try again later, or pass --wait SECONDS")
    try:
        store = access.open_writer(args.store)  # never wait for a service: merge beside it
    except pysos.LockedError:
        return _compact_beside_writer(args)
    with store, _compact_bar(args):
        result = dict(store.compact())
    return _report_compaction(args, result, "")


def _compact_beside_writer(args):
    """A service holds the writer: merge the sealed segments beside it, as the
    compaction daemon does (the writer adopts the result on its own)."""
    from pysos.compactor import compact_all

    pid = holder(args.store, "writer")
    with _compact_bar(args):
        result = dict(compact_all(args.store, segment_size=DEFAULT_SEGMENT_SIZE, wait=args.wait))
    who = f" (pid {pid})" if pid else ""
    return _report_compaction(args, result, f" beside its writer{who}, sealed segments only")


def _segments(path):
    """{segment number: size} of the segment files in ``path`` now."""
    found = {}
    for entry in os.scandir(path):
        number = segment_number(entry.name)
        if number is not None:
            found[number] = entry.stat().st_size
    return found


def _compact_bar(args):
    """A bar of the bytes the compaction has written (new segments) out of the bytes it
    merges (every segment at the start: the output is at most that)."""
    before = _segments(args.store)
    first_new = max(before, default=0) + 1

    def written():
        return sum(size for number, size in _segments(args.store).items() if number >= first_new)

    return Watch("compact", sum(before.values()), written, unit="bytes", quiet=args.quiet)


def _report_compaction(args, result, how):
    if args.json:
        print(dumps(result))
    elif not args.quiet:
        print(f"compacted {args.store}{how}: reclaimed {_size(result.get('reclaimed_bytes', 0))}")
    return EXIT_OK


def cmd_repair(args):
    access.require_store(args.store, damaged_ok=True)
    repair = getattr(pysos, "repair", None)
    if repair is None:
        raise CliError("this version of pysos has no pysos.repair(); cannot repair stores")
    with Progress("repair", unit="bytes", quiet=args.quiet) as bar:
        def report(done, total):
            bar.total = total
            bar.set(done)
        result = dict(repair(args.store, progress=report, codec=args.codec))
    if args.json:
        print(dumps(result))
        return EXIT_OK
    aside = result.get("set_aside") or []
    print(f"repaired {args.store}: generation {result.get('generation')}, "
          f"{result.get('salvaged', 0):,} records salvaged, {result.get('lost', 0):,} lost")
    if aside:
        print("set aside (kept, no longer part of the store): " + ", ".join(aside))
    for p in result.get("problems") or []:
        offset = "" if p.get("offset") is None else f" @ byte {p['offset']}"
        print(f"  {p.get('file') or 'store'}{offset}: {p.get('problem')}")
    return EXIT_OK


def register(sub):
    p = command(sub, "set", summary="store a JSON value under a key (or at an index)",
                description="Store VALUE (JSON: 12, \"text\", [1,2], {\"a\":1}, null) under KEY of a "
                            "Dict store, or replace the item at index KEY of a List store. --raw takes "
                            "VALUE as a string. Needs the writer lock: fails if a service writes the "
                            "store, unless --wait outlasts it.",
                examples=["pysos set data/users alice '{\"age\": 31}'",
                          "pysos set data/config motd '\"hello\"'",
                          "pysos set --raw data/config motd hello     # same as above",
                          "pysos set data/events 0 '{\"type\": \"boot\"}'  # List: replace item 0"])
    store_arg(p)
    key_args(p)
    p.add_argument("value", metavar="VALUE", help="the value, as JSON (or a string with --raw)")
    p.add_argument("--raw", action="store_true", help="store VALUE as a string, not JSON")
    wait_arg(p)
    p.set_defaults(func=cmd_set)

    p = command(sub, "del", aliases=["delete"], summary="delete a key (or the item at an index)",
                description="Delete KEY from a Dict store, or the item at index KEY from a List "
                            "store (the items after it move up). Exit status 1 if it is not there.",
                examples=["pysos del data/users alice", "pysos del data/events -1"])
    store_arg(p)
    key_args(p)
    wait_arg(p)
    p.set_defaults(func=cmd_del)

    p = command(sub, "compact", aliases=["vacuum"], summary="merge segments and reclaim dead bytes now",
                description="Compact the store now (as Dict.compact() does) and print what was "
                            "reclaimed. If a service holds the writer lock, the sealed segments "
                            "are merged beside it, as the compaction daemon does (the segment the "
                            "writer appends to is left alone). Fails if another compaction runs, "
                            "unless --wait outlasts it.",
                examples=["pysos compact data/users", "pysos compact --json data/users",
                          "pysos compact --wait 60 data/users   # if a compaction is running, wait for it"])
    store_arg(p)
    quiet_arg(p)
    json_arg(p)
    wait_arg(p, help="wait up to SECONDS for a compaction already running (the daemon's, a "
                     "writer's thread) to finish (default: fail at once); a service holding the "
                     "writer lock never makes it wait: its sealed segments are merged beside it")
    p.set_defaults(func=cmd_compact)

    p = command(sub, "repair", summary="salvage every intact record of a damaged store",
                description="Rebuild a damaged store from every record whose checksum holds "
                            "(pysos.repair). Damaged files are set aside, not deleted. Prints what "
                            "was salvaged and lost.",
                examples=["pysos check data/users || pysos repair data/users",
                          "pysos repair --codec tagged data/orders   # its MANIFEST is lost"])
    store_arg(p)
    p.add_argument("--codec", choices=("json", "tagged"),
                   help="the store's codec, needed only when its MANIFEST (the codec's one record) "
                        "is lost and the records hold tagged objects; else it must be the recorded one")
    quiet_arg(p)
    json_arg(p)
    p.set_defaults(func=cmd_repair)


