"""``python -m pysos.replicate STORE s3://BUCKET/PREFIX``: ship a store to object storage."""

import argparse
import sys

from .command import entry_point, seconds
from .run import run

DESCRIPTION = """\
Replicate the pysos store STORE to S3-compatible object storage at URL
(s3://BUCKET/PREFIX), every --interval seconds, until SIGINT/SIGTERM (or once).
Credentials, endpoint and region come from the standard AWS environment/config
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, AWS_DEFAULT_REGION).
Exit status: 0 done; 2 could not start; 3 fenced by another replicator (--takeover)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("store", metavar="STORE", help="the store directory (a writer may be using it)")
    parser.add_argument("url", metavar="URL", help="s3://BUCKET/PREFIX")
    parser.add_argument("--interval", type=seconds, default=1.0, help="seconds between steps (default 1)")
    parser.add_argument("--once", action="store_true", help="ship everything present, then exit")
    parser.add_argument("--retention", type=seconds, default=86400.0,
                        help="seconds of history kept for restore --at (default 86400: 24 h)")
    parser.add_argument("--min-age", type=seconds, default=300.0,
                        help="never delete an object unreferenced for less than this (default 300 s)")
    parser.add_argument("--takeover", action="store_true",
                        help="take a replica owned by another store or replicator (fences it)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every commit")


def run_args(args) -> int:
    return run(args.store, args.url, interval=args.interval, once=args.once, retention=args.retention,
               takeover=args.takeover, min_age=args.min_age, verbose=args.verbose)


def main(argv=None) -> int:
    return entry_point("python -m pysos.replicate", DESCRIPTION, add_arguments, run_args, argv)


if __name__ == "__main__":
    sys.exit(main())
