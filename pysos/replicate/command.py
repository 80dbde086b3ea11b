"""What the replication commands' ``python -m`` entry points share (``pysos.replicate``
and ``pysos.replicate.follow``; ``pysos replicate`` and ``pysos follow`` take the same
``add_arguments`` and ``run_args`` into :mod:`pysos.cli`)."""

from __future__ import annotations

import argparse
from typing import Any, Callable


def seconds(text: str) -> float:
    """An argparse type: a number of seconds >= 0."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def entry_point(
    prog: str, description: str, add_arguments: Callable[[argparse.ArgumentParser], None],
    run_args: Callable[[Any], int], argv: list[str] | None = None,
) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``) with a command's arguments and run it; its exit status."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run_args(parser.parse_args(argv))
