"""Convert a pysos 1.3 file (one file, ``KEY<TAB>VALUE`` JSON lines) into a pysos store.

    python tools/convert_pysos13.py old.sos new_store_dir [--kind dict|list]

pysos 1.3 files start with ``# FILE-DICT v1`` or ``# FILE-LIST v1``; lines starting with
``#`` are deleted entries or comments. A List's order is the order of its int keys.
Without a header the kind is guessed like pysos 1.3's ``load`` did: int keys make a list.
"""

from __future__ import annotations

import argparse
import json
import sys

import pysos

DICT_HEADER = b"# FILE-DICT v1"
LIST_HEADER = b"# FILE-LIST v1"


def read_pysos13(path: str):
    """(kind or None, {key: value}) from a pysos 1.3 file; the last line of a key wins."""
    kind = None
    items: dict = {}
    with open(path, "rb") as f:
        for number, line in enumerate(f):
            line = line.rstrip(b"\n")
            if number == 0 and line in (DICT_HEADER, LIST_HEADER):
                kind = "dict" if line == DICT_HEADER else "list"
                continue
            if not line or line.startswith(b"#"):
                continue
            left, tab, right = line.partition(b"\t")
            if not tab:
                raise ValueError(f"{path}: line {number + 1} has no tab between key and value")
            items[json.loads(left.decode("utf-8"))] = json.loads(right.decode("utf-8"))
    return kind, items


def convert(source: str, target: str, kind: str | None = None) -> pysos.Dict | pysos.List:
    found_kind, items = read_pysos13(source)
    kind = kind or found_kind or ("list" if items and all(type(k) is int for k in items) else "dict")
    if kind == "list":
        store = pysos.List(target)
        store.extend(items[k] for k in sorted(items))
    else:
        store = pysos.Dict(target)
        store.update(items)
    return store


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="the pysos 1.3 file")
    parser.add_argument("target", help="the new pysos store directory")
    parser.add_argument("--kind", choices=["dict", "list"], help="override the detected kind")
    args = parser.parse_args(argv)
    try:
        with convert(args.source, args.target, args.kind) as store:
            print(f"converted {len(store)} items into a pysos {type(store).__name__} at {store.path}")
    except (OSError, ValueError, pysos.Error) as exc:
        print(f"convert_pysos13: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
