"""Helpers every command module uses to declare its sub-command."""

import argparse
import codecs


def command(sub, name, *, summary, description, examples, aliases=()):
    """Add sub-command ``name`` with a one-line summary, a description and examples."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(
        name, aliases=list(aliases), help=summary, description=description, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def store_arg(parser):
    parser.add_argument("store", metavar="STORE", help="the store's directory")


def quiet_arg(parser):
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bar and no summary line")


def wait_arg(parser, help="wait up to SECONDS for another writer to close the store "
                           "(default: fail at once)"):
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help=help)


def json_arg(parser):
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def key_args(parser):
    parser.add_argument("key", metavar="KEY",
                        help="a Dict key (JSON scalar if it parses as one, else a string) "
                             "or a List index")
    parser.add_argument("--str-key", action="store_true",
                        help="take KEY as a string even if it looks like JSON (e.g. 12, true)")


def encoding_arg(text):
    """``--encoding`` value: any codec Python knows (utf-8, cp1252, latin-1, utf-16...)."""
    try:
        codecs.lookup(text)
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding: {text}") from None
    return text


def positive_int(text):
    """An integer >= 1 (``--batch-size``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive integer: {text}")
    return value
