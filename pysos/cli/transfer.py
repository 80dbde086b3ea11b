"""import and export: JSON lines, CSV, and (export only) a searchable HTML page."""

import contextlib
import io
import itertools
import math
import os
import shutil
import sys
import tempfile
import time

import pysos

from . import access, csvio
from .errors import EXIT_OK, EXIT_USAGE, CliError
from .htmlpage import HtmlWriter
from .jsonio import dumps, is_scalar, loads, show_key
from .parsing import command, encoding_arg, positive_int, quiet_arg, store_arg, wait_arg
from .progress import Progress

_EXTENSIONS = {".csv": "csv", ".tsv": "csv", ".html": "html", ".htm": "html"}


def _format(args, path):
    """--format, else FILE's extension, else JSON lines (also for stdin/stdout)."""
    if args.format:
        return args.format
    if path == "-":
        return "jsonl"
    return _EXTENSIONS.get(os.path.splitext(path)[1].lower(), "jsonl")


# ---------------------------------------------------------------- import


LIST_ITEM = object()  # the "key" of a record that is a List item


def _jsonl_rows(lines):
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                yield number, loads(line)
            except ValueError as exc:
                raise CliError(f"line {number}: invalid JSON ({exc})") from None


def _jsonl_record(number, row, args):
    """(key or LIST_ITEM, value) from one JSON line, in the form the options ask for."""
    if args.key is not None:
        if not isinstance(row, dict) or args.key not in row:
            raise CliError(f"line {number}: not an object with a {args.key!r} field")
        if not is_scalar(row[args.key]):
            raise CliError(f"line {number}: field {args.key!r} is not a JSON scalar, "
                           "so it cannot be a key")
        return row[args.key], row
    if args.plain:
        return LIST_ITEM, row
    if not isinstance(row, dict) or set(row) not in _DUMPED:
        raise CliError(f'line {number}: expected {{"key": K, "value": V}} (and "expires": DEADLINE) or '
                       f'{{"index": I, "value": V}} as pysos dump writes them '
                       "(--plain: one value per line)")
    if "expires" in row:
        return row["key"], Expiring(row["value"], _deadline(number, row["expires"]))
    return row.get("key", LIST_ITEM), row["value"]


def _deadline(number, deadline):
    """The "expires" of an import line as a float, or a CliError."""
    if type(deadline) in (int, float):
        try:
            if math.isfinite(deadline := float(deadline)):
                return deadline
        except OverflowError:
            pass
    raise CliError(f'line {number}: "expires" is {deadline!r:.40}, not a deadline (Unix time in seconds)')


_DUMPED = ({"key", "value"}, {"key", "value", "expires"}, {"index", "value"})


class Expiring:
    """A value read with its deadline ("expires"): stored with that very deadline, or
    skipped (and the key removed) if it has passed."""

    __slots__ = ("value", "deadline")

    def __init__(self, value, deadline):
        self.value, self.deadline = value, deadline


def _records(fmt, stream, args):
    """``(line, key or LIST_ITEM, value)`` for every record of the input."""
    if fmt == "csv":
        lines, dialect = csvio.lines_and_dialect(stream, args.delimiter)
        for number, key, row in csvio.read_rows(lines, dialect, typed=args.typed, key=args.key):
            yield number, LIST_ITEM if args.key is None else key, row
    else:
        for number, row in _jsonl_rows(stream):
            yield (number, *_jsonl_record(number, row, args))


def _kind_for(args, first):
    """The kind of store the input asks for: --kind, else --key, else its first record."""
    if args.kind:
        return args.kind
    if args.key is not None:
        return "dict"
    if first is None:
        return None
    return "list" if first[1] is LIST_ITEM else "dict"


def _open_input(args, fmt):
    """(text stream, raw file for byte progress or None, total bytes or None)."""
    if args.file == "-":
        encoding = args.encoding or "utf-8-sig"
        return io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, newline=""), None, None
    if not os.path.isfile(args.file):
        raise CliError(f"no such input file: {args.file}")
    encoding = args.encoding or (csvio.detect_encoding(args.file) if fmt == "csv" else "utf-8-sig")
    stream, raw = csvio.text_reader(args.file, encoding)
    return stream, raw, os.path.getsize(args.file)


def _is_new(path):
    """Whether ``path`` holds no store yet: missing, or an empty directory."""
    return not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path))


def _open_target(args, kind):
    """(store to import into, staging directory or None): the existing store (if its kind
    fits), or a new one made in a staging directory beside STORE that replaces STORE only
    once the whole input is in (unless --keep-partial)."""
    if os.path.exists(os.path.join(args.store, "MANIFEST")):
        store = pysos.open(args.store, lock_timeout=args.wait, codec=args.codec)
        if kind is not None and access.kind_of(store) != kind:
            actual = access.kind_of(store)
            store.close()
            raise CliError(f"{args.store} is a {actual} store, but the input holds {kind} records")
        return store, None
    if kind is None:
        raise CliError("the input holds no records, so it cannot tell whether to make a dict "
                       "or a list store: pass --kind dict or --kind list")
    cls = pysos.Dict if kind == "dict" else pysos.List
    if args.keep_partial or not _is_new(args.store):
        return cls(args.store, lock_timeout=args.wait, codec=args.codec), None
    target = os.path.abspath(args.store)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.pysos-import-", dir=parent)
    return cls(staging, autocompact=False, codec=args.codec), staging


def _publish(staging, target):
    """Move the complete new store from ``staging`` to ``target`` (one rename)."""
    try:
        os.rename(staging, target)  # replaces an empty directory, never a non-empty one
    except OSError:
        raise CliError(f"{target} was created by someone else during the import") from None


def _discard(staging):
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


def _import_failed(exc, args, committed, last_line, staging):
    """The one error line for an import that stopped: why, and exactly what was committed."""
    if isinstance(exc, KeyboardInterrupt):
        why, code = "interrupted", 130
    elif isinstance(exc, UnicodeDecodeError):
        why, code = f"the input is not valid {exc.encoding} ({exc.reason}): pass --encoding", 1
    else:
        why, code = str(exc), exc.code
    if staging is not None:
        what = (f"nothing was imported: {args.store} was not created (an import into a new "
                "store is all or nothing; --keep-partial keeps the batches before the error)")
    elif not committed and not os.path.exists(os.path.join(args.store, "MANIFEST")):
        what = f"nothing was imported: {args.store} was not created"
    elif committed:
        what = (f"{committed:,} records (input lines 1-{last_line:,}) were committed to "
                f"{args.store}; the batch being written was discarded")
    else:
        what = f"nothing was imported into {args.store}"
    return CliError(f"{why}; {what}", code)


def _write(store, chunk, path):
    """Write one chunk of ``(line, key, value)`` as one atomic batch; return how many
    records it skipped because their deadline ("expires") had passed."""
    is_list = access.kind_of(store) == "list"
    decode = access.from_plain(store)
    expired = 0
    with store.batch():
        for number, key, value in chunk:
            if (key is LIST_ITEM) != is_list:
                raise CliError(
                    f"line {number}: a keyed record cannot go into a list store ({path})"
                    if is_list else
                    f"line {number}: a record without a key cannot go into a dict store "
                    f"({path}); CSV and --plain need --key")
            try:
                if type(value) is Expiring:
                    expired += value.deadline <= time.time()  # (set_until removes such a key)
                    store.set_until(key, decode(value.value), value.deadline)
                    continue
                value = decode(value)  # a tagged store: tagged objects become their values
                if is_list:
                    store.append(value)
                else:
                    store[key] = value
            except (TypeError, ValueError) as exc:
                raise CliError(f"line {number}: cannot store this record ({exc})") from None
    return expired


def cmd_import(args):
    fmt = _format(args, args.file)
    if fmt == "html":
        raise CliError("cannot import HTML: import JSON lines or CSV")
    if args.key is not None and args.kind == "list":
        raise CliError("--key makes a dict store; it cannot go with --kind list", EXIT_USAGE)
    stream, raw, total = _open_input(args, fmt)
    done = last_line = expired = 0
    staging = None
    with stream:
        try:
            records = _records(fmt, stream, args)
            first = next(records, None)
            store, staging = _open_target(args, _kind_for(args, first))
            with store, Progress("import", total, unit="bytes" if total else "items",
                                 quiet=args.quiet) as bar:
                records = itertools.chain([first] if first else [], records)
                while chunk := list(itertools.islice(records, args.batch_size)):
                    expired += _write(store, chunk, args.store)
                    done, last_line = done + len(chunk), chunk[-1][0]
                    bar.set(raw.tell() if raw else done)
                kind = access.kind_of(store)
            if staging is not None:
                _publish(staging, args.store)
                staging = None
        except (CliError, UnicodeDecodeError, KeyboardInterrupt) as exc:
            _discard(staging)
            raise _import_failed(exc, args, done, last_line, staging) from None
        except BaseException:
            _discard(staging)
            raise
    if not args.quiet:
        skipped = f"; {expired:,} already expired, skipped" if expired else ""
        print(f"imported {done - expired:,} records into {args.store} ({kind} store{skipped})")
    return EXIT_OK


# ---------------------------------------------------------------- export


def _check_csv_args(store, args):
    if access.kind_of(store) == "dict" and args.key is None:
        raise CliError("CSV export of a dict store needs --key COLUMN: the column that "
                       "will hold each key")
    if access.kind_of(store) == "list" and args.key is not None:
        raise CliError("--key is for dict stores; a list store exports one row per item")


def _csv_columns(store, args, bar):
    """Every field name of every value, in order of first appearance (first pass)."""
    columns = {} if args.key is None else {args.key: None}
    for where, value in access.records(store, args.prefix, plain=False):
        csvio.check_row(f"item {where}" if args.key is None else f"key {show_key(where)}",
                        value)
        columns.update(dict.fromkeys(value))
        bar.advance()
    return list(columns)


def _export_csv(store, out, args, bar):
    writer = csvio.writer(out, _csv_columns(store, args, bar), args.delimiter or ",")
    count = 0
    plain = access.to_plain(store)  # each cell as it is on disk (a tagged object for a date...)
    for where, value in access.records(store, args.prefix, plain=False):
        row = {name: csvio.encode_cell(plain(cell), args.typed) for name, cell in value.items()}
        if args.key is not None:
            key_cell = csvio.encode_key(where, args.typed)
            if args.key in row and row[args.key] != key_cell:
                raise CliError(f"key {show_key(where)}: its {args.key!r} field holds "
                               f"{dumps(value[args.key])}, not the key, so the CSV could "
                               "not be imported back")
            row[args.key] = key_cell
        writer.writerow(row)
        count += 1
        bar.advance()
    return count


def _export_records(store, out, args, bar, fmt):
    kind = access.kind_of(store)
    page = None
    if fmt == "html":
        title = "pysos: " + os.path.basename(os.path.abspath(args.store))
        meta = (f"{kind} store {os.path.abspath(args.store)}, {len(store):,} records, "
                f"generation {store.stats().get('generation')}")
        page = HtmlWriter(out, title=title, kind=kind, meta=meta)
    count = 0
    if page:
        for where, value in access.records(store, args.prefix):
            page.add(where, value)
            count += 1
            bar.advance()
    else:
        for row in access.rows(store, args.prefix):
            out.write(dumps(row) + "\n")
            count += 1
            bar.advance()
    if page:
        page.close()
    return count


def _output(target, encoding):
    """(text stream, temp path or None): a temp file beside ``target`` that replaces it
    once complete, or stdout for ``-``."""
    if target == "-":
        return io.TextIOWrapper(sys.stdout.buffer, encoding=encoding, newline=""), None
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise CliError(f"cannot write {target}: no directory {folder}")
    fd, tmp = tempfile.mkstemp(prefix=".pysos-export-", dir=folder)
    mask = os.umask(0)
    os.umask(mask)
    os.fchmod(fd, 0o666 & ~mask)
    return open(fd, "w", encoding=encoding, newline=""), tmp


def cmd_export(args):
    target = args.file or "-"
    fmt = _format(args, target)
    with access.open_reader(args.store) as store:
        if args.prefix is not None:
            access.require_kind(store, args.store, "dict", "export --prefix")
        if fmt != "csv" and args.key is not None:
            raise CliError(f"--key names the CSV column that holds each key; {fmt} export "
                           "writes each key in its record (for CSV: --csv or a .csv FILE)",
                           EXIT_USAGE)
        if fmt == "csv":
            _check_csv_args(store, args)
            if args.delimiter is None and target.lower().endswith(".tsv"):
                args.delimiter = "\t"  # the format follows the extension, delimiter too
        out, tmp = _output(target, args.encoding or "utf-8")
        try:
            total = len(store) * (2 if fmt == "csv" else 1)
            with Progress("export", total, quiet=args.quiet) as bar:
                if fmt == "csv":
                    count = _export_csv(store, out, args, bar)
                else:
                    count = _export_records(store, out, args, bar, fmt)
        except BaseException:
            if tmp is not None:
                out.close()
                os.unlink(tmp)
            else:
                with contextlib.suppress(Exception):
                    out.detach()
            raise
        if tmp is None:
            out.detach()  # flushes; stdout itself stays open
        else:
            out.close()
    if tmp is not None:
        os.replace(tmp, target)
        if not args.quiet:
            print(f"exported {count:,} records to {target}")
    return EXIT_OK


def register(sub):
    p = command(sub, "import", summary="load JSON lines or CSV into a store (created if missing)",
                description="Load records into STORE, creating it if it does not exist. JSON lines "
                            "as 'pysos dump' writes them ({\"key\":..,\"value\":..} makes a Dict, "
                            "{\"index\":..,\"value\":..} a List, items appended in file order); "
                            "--plain: each line is one value (a List, or a Dict with --key FIELD). "
                            "CSV with a header line: a List of row objects, or with --key COLUMN a "
                            "Dict keyed by that column (the row keeps the column). CSV cells stay "
                            "strings unless --typed. The encoding is detected (UTF-8 with or "
                            "without BOM, UTF-16 by BOM, else cp1252, else latin-1) and the "
                            "delimiter sniffed (, ; tab |), unless --encoding / --delimiter say. "
                            "FILE '-' reads stdin. An import into a new store is all or nothing: "
                            "the store appears only once every record is in (--keep-partial: keep "
                            "the batches before an error). Into an existing store, records are "
                            "written in atomic batches; on a bad record or Ctrl-C the error names "
                            "the line and says exactly which records were committed.",
                examples=["pysos import data/users users.jsonl",
                          "pysos import --key id data/users users.csv",
                          "pysos import --typed data/rows export.csv",
                          "pysos import --encoding cp1252 --delimiter ';' data/rows legacy.csv",
                          "pysos dump old/ | pysos import new/ -"])
    store_arg(p)
    p.add_argument("file", metavar="FILE", help="input file, or - for stdin")
    _format_args(p, ("jsonl", "csv"))
    p.add_argument("--kind", choices=("dict", "list"),
                   help="the kind of store to make (default: from the input)")
    p.add_argument("--key", metavar="COLUMN",
                   help="make a Dict keyed by this CSV column (or JSON field, with --plain)")
    p.add_argument("--plain", action="store_true",
                   help="JSON lines: each line is one value, not a dump record")
    p.add_argument("--typed", action="store_true",
                   help="CSV: a cell that parses as JSON is that value; an empty cell is no field")
    p.add_argument("--encoding", type=encoding_arg, metavar="NAME", help="input encoding (default: detected)")
    p.add_argument("--delimiter", type=csvio.delimiter_arg, metavar="CHAR",
                   help="CSV delimiter, e.g. ';' or tab (default: sniffed)")
    p.add_argument("--codec", choices=("json", "tagged"),
                   help="the codec of a new store (default json); an existing store keeps its own "
                        "(given, it must match). Into a tagged store, tagged objects such as "
                        "{\"$datetime\": \"...\"} (as 'pysos dump' prints them) become their values")
    p.add_argument("--batch-size", type=positive_int, default=1000, metavar="N",
                   help="records per atomic batch (default 1000)")
    p.add_argument("--keep-partial", action="store_true",
                   help="a new store keeps the batches written before an error or Ctrl-C "
                        "(default: it is not created unless the whole input is imported)")
    quiet_arg(p)
    wait_arg(p)
    p.set_defaults(func=cmd_import)

    p = command(sub, "export", summary="write a store as JSON lines, CSV or a searchable HTML page",
                description="Write STORE to FILE (stdout if omitted or '-'): JSON lines as 'pysos "
                            "dump' prints them, CSV (one row per item; a Dict needs --key COLUMN, "
                            "the column that holds the key; every value must be an object), or "
                            "--html: one self-contained page that lists the records and filters "
                            "them as you type. The format follows FILE's extension (.csv, .tsv, .html) "
                            "unless given. Read-only: works while a service writes; the export is "
                            "one consistent snapshot; FILE is replaced only when complete.",
                examples=["pysos export data/users users.jsonl",
                          "pysos export --key id data/users users.csv",
                          "pysos export --typed data/rows rows.csv   # exact round trip of types",
                          "pysos export --html data/users users.html"])
    store_arg(p)
    p.add_argument("file", metavar="FILE", nargs="?", help="output file (default: stdout)")
    _format_args(p, ("jsonl", "csv", "html"))
    p.add_argument("--key", metavar="COLUMN", help="CSV of a Dict: the column holding the key")
    p.add_argument("--typed", action="store_true",
                   help="CSV: write cells so that 'import --typed' gives back the same values")
    p.add_argument("--prefix", metavar="PREFIX", help="only Dict keys starting with PREFIX")
    p.add_argument("--encoding", type=encoding_arg, metavar="NAME", help="output encoding (default utf-8)")
    p.add_argument("--delimiter", type=csvio.delimiter_arg, metavar="CHAR",
                   help="CSV delimiter (default ',', or tab for a .tsv FILE)")
    quiet_arg(p)
    p.set_defaults(func=cmd_export)


def _format_args(parser, formats):
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--format", choices=formats,
                       help="file format (default: from FILE's extension, else jsonl)")
    for fmt in formats:
        group.add_argument(f"--{fmt}", dest="format", action="store_const", const=fmt,
                           help=f"same as --format {fmt}")
