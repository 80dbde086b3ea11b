"""``pysos``: the command line. Builds the parser from the command modules, runs the
command, and turns every user mistake into one ``pysos: error: ...`` line and an exit
status (see :mod:`pysos.cli.errors`); only a bug in pysos shows a traceback."""

import argparse
import os
import sys

import pysos

from . import demo, read_cmds, replica_cmds, transfer, write_cmds
from .errors import EXIT_FAILED, EXIT_USAGE, CliError

_COMMANDS = (read_cmds, write_cmds, transfer, replica_cmds, demo)

_EPILOG = """\
KEY on the command line: for a Dict, KEY is JSON if it parses as a JSON scalar
(12 is the int 12, true, null, "12" with the quotes is the string "12"), otherwise the
text itself (alice, user:12, 012); --str-key always takes the text. For a List, KEY is an
index (negative counts from the end). A KEY that starts with '-' goes after '--':
pysos get data/users -- -x

exit status: 0 done; 1 could not be done (no store there, key not found, store locked
by another writer, wrong kind of store, bad input data); 2 bad command line (unknown
option, a VALUE that is not JSON); 3 'check' found problems.

examples:
  pysos info data/users
  pysos get data/users alice
  pysos set data/users alice '{"age": 31}'
  pysos dump data/users | head
  pysos import --key id data/users users.csv
  pysos export --html data/users users.html
  pysos <command> --help     details and examples for each command

the compaction daemon, beside a service that writes the stores:
  python -m pysos.compactor data/users data/events    (see python -m pysos.compactor --help)
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (with where to find help), like the others."""

    argv: list = []  # the command line being parsed (set by main), for hints

    def error(self, message):
        hint = f"see '{self.prog} --help'"
        dashed = [a for a in self.argv if a.startswith("-") and a != "--"
                  and a.split("=")[0] not in self._option_string_actions]
        if dashed and "--" not in self.argv:
            hint = (f"a KEY or VALUE that starts with '-' goes after '--': "
                    f"{self.prog} STORE -- {dashed[0]}; {hint}")
        self.exit(EXIT_USAGE, f"pysos: error: {message} ({hint})\n")


def build_parser():
    parser = _Parser(
        prog="pysos", description="Inspect and operate pysos stores (directories).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pysos {pysos.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _COMMANDS:
        module.register(sub)
    return parser


def _fail(message, code):
    print(f"pysos: error: {message}", file=sys.stderr)
    return code


def main(argv=None):
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = build_parser()
    _Parser.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is seen below, not at exit
        return code
    except CliError as exc:
        return _fail(exc, exc.code)
    except pysos.LockedError as exc:
        return _fail(f"{exc} (read-only commands such as info, get, dump, export still work)",
                     EXIT_FAILED)
    except pysos.CorruptionError as exc:
        return _fail(f"{exc} (run 'pysos check {args.store}', then 'pysos repair')", EXIT_FAILED)
    except pysos.Error as exc:  # FormatError, ReadOnlyError, ...
        return _fail(exc, EXIT_FAILED)
    except BrokenPipeError:  # e.g. 'pysos dump STORE | head': the reader left, fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except OSError as exc:  # an unreadable input file, a full disk, no permission...
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"{exc.strerror or exc}{where}", EXIT_FAILED)
