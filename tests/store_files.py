"""What a store's files hold, read directly (tests look past the API at the records on disk)."""

import os

import orjson


def records(path):
    """Every record line of the store's segment files, parsed, in file-name order."""
    out = []
    for name in sorted(os.listdir(path)):
        if name.endswith(".jsonl"):
            out += [orjson.loads(line) for line in (path / name).read_bytes().splitlines()]
    return out
