"""Opening stores for the commands: read-only for inspection, never creating anything
that is not there, and turning "no store here" into one clear error line."""

import os

import pysos
import pysos.codec

from .errors import EXIT_USAGE, CliError
from .jsonio import parse_index, parse_key, show_key

#: Readers used by commands never refresh in the middle of a command, so an export or
#: a dump is one consistent snapshot even while a writer keeps writing.
SNAPSHOT = 365 * 24 * 3600.0


def require_store(path, *, damaged_ok=False):
    """Fail unless ``path`` is a directory holding a pysos store (a ``MANIFEST``).

    With ``damaged_ok`` (check, repair) a directory holding segment files but no
    manifest is accepted too, so those commands can report on it or mend it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CliError(f"no store at {path}: the directory does not exist")
    if not os.path.isdir(path):
        raise CliError(f"no store at {path}: not a directory")
    if os.path.exists(os.path.join(path, "MANIFEST")):
        return
    if damaged_ok and any(n.startswith("seg-") for n in os.listdir(path)):
        return
    raise CliError(f"no store at {path}: the directory holds no pysos MANIFEST")


def open_reader(path):
    """Open an existing store read-only (works while another process holds the writer)."""
    require_store(path)
    return pysos.open(path, readonly=True, refresh_interval=SNAPSHOT)


def open_writer(path, *, wait=0.0):
    """Open an existing store for writing; ``wait`` seconds for another writer to leave."""
    require_store(path)
    return pysos.open(path, lock_timeout=wait)


def kind_of(store):
    """ "dict" or "list"."""
    return "list" if isinstance(store, pysos.List) else "dict"


def require_kind(store, path, kind, what):
    """Fail with a clear line when ``what`` needs a ``kind`` store and ``path`` is not one."""
    actual = kind_of(store)
    if actual != kind:
        raise CliError(f"{what} needs a {kind} store, but {path} is a {actual} store")


def locate(store, args):
    """The key (Dict) or index (List) that ``args.key`` names in ``store``."""
    if kind_of(store) == "list":
        if args.str_key:
            raise CliError("--str-key is for Dict keys; a List takes an index", EXIT_USAGE)
        return parse_index(args.key)
    return parse_key(args.key, force_str=args.str_key)


def not_found(store, path, where, text=None, command="get"):
    """The error for a key or index that is not in the store; for a Dict key typed as
    ``text`` on the command line, it names the key of the other type if that one exists
    (CSV imports make string keys: ``1`` is the int 1, the key is the string "1")."""
    if kind_of(store) == "list":
        return CliError(f"index {where} out of range: {path} holds {len(store)} items")
    message = f"key {show_key(where)} not found in {path}"
    if text is not None:
        other = parse_key(where) if isinstance(where, str) else text
        if isinstance(other, str) != isinstance(where, str) and other in store:
            how = f"--str-key {text}" if isinstance(other, str) else show_key(other)
            kind = "string" if isinstance(other, str) else type(other).__name__
            message += (f"; there is the {kind} key {show_key(other)}: "
                        f"pysos {command} {path} {how}")
    return CliError(message)


def records(store, prefix=None, *, plain=True):
    """``(key, value)`` of a Dict (only keys starting with ``prefix``, see
    :func:`key_text`) or ``(index, value)`` of a List, in the store's order; with
    ``plain``, each value as the JSON document stored for it (see :func:`to_plain`)."""
    convert = to_plain(store) if plain else None
    if kind_of(store) == "list":
        pairs = enumerate(store)
    else:
        pairs = ((key, value) for key, value in store.items()  # a snapshot, values read lazily
                 if prefix is None or key_text(key).startswith(prefix))
    for where, value in pairs:
        yield where, value if convert is None else convert(value)


def rows(store, prefix=None):
    """The JSON lines of ``dump`` and ``export``, as objects: ``{"key": K, "value": V}``
    (a Dict), with ``"expires": DEADLINE`` (Unix seconds) for a key that expires, which
    ``import`` gives back; ``{"index": I, "value": V}`` (a List). Each key is written as
    the snapshot holds it (value and deadline), even if it expires while this runs."""
    if kind_of(store) == "list":
        for index, value in records(store, prefix):
            yield {"index": index, "value": value}
        return
    convert = to_plain(store)
    for key, value, deadline in store.items_with_deadlines():
        if prefix is None or key_text(key).startswith(prefix):
            value = convert(value)
            yield {"key": key, "value": value} if deadline is None else {"key": key, "value": value, "expires": deadline}


def to_plain(store):
    """The function from ``store``'s values to the plain JSON its records hold: the
    commands show what is on disk, so a ``codec="tagged"`` store's datetimes, sets etc.
    appear as their tagged objects (``{"$datetime": "..."}``), which ``import`` reads back."""
    return pysos.codec.get(store.codec).to_plain


def from_plain(store):
    """The inverse of :func:`to_plain`, for values read from an import file."""
    return pysos.codec.get(store.codec).from_plain


def key_text(key):
    """What ``--prefix`` matches: a string key itself, any other key its JSON form."""
    return key if isinstance(key, str) else show_key(key)
