"""The commands of replication to object storage: replicate, restore, follow, and ``info URL``
(which ``info`` hands over here when its argument is an ``s3://`` URL). The work is in
:mod:`pysos.replicate`; boto3 is imported only when one of these runs."""

from .errors import EXIT_OK, CliError
from .jsonio import dumps
from .parsing import command


def cmd_replicate(args):
    from ..replicate.__main__ import run_args

    return run_args(args)


def cmd_restore(args):
    from ..errors import Error
    from ..replicate.restore import restore

    try:
        done = restore(args.url, args.dir, at=args.at)
    except (Error, ValueError) as exc:  # RestoreError, RemoteError, CorruptionError...
        raise CliError(str(exc)) from None
    if done.get("resumed"):
        print(f"{args.dir}: the restore was already complete")
    else:
        print(f"restored commit {done['seq']} ({done['segments']} segment(s), {done['bytes']:,} bytes) into {args.dir}")
    return EXIT_OK


def cmd_follow(args):
    from ..replicate.follow import run_args

    return run_args(args)


def cmd_info_remote(args):
    from ..errors import Error
    from ..replicate.client import S3, parse_url
    from ..replicate.restore import describe

    try:
        info = describe(S3(parse_url(args.store)))
    except (Error, ValueError) as exc:
        raise CliError(str(exc)) from None
    if args.json:
        print(dumps(info))
        return EXIT_OK
    width = max(len(name) for name in info) + 2
    for name, value in info.items():
        print(f"{name.replace('_', ' ') + ':':<{width}} {value}")
    return EXIT_OK


def register(sub):
    from ..replicate.__main__ import DESCRIPTION, add_arguments

    p = command(sub, "replicate", summary="ship a store to S3-compatible object storage",
                description=DESCRIPTION,
                examples=["pysos replicate data/users s3://backups/users",
                          "pysos replicate --once data/users s3://backups/users"])
    add_arguments(p)
    p.set_defaults(func=cmd_replicate)

    p = command(sub, "restore", summary="make a store from its replica in object storage",
                description="Restore the replica at URL (s3://BUCKET/PREFIX) into DIR, which must "
                            "not exist or be empty; --at TIME restores the last commit at or before "
                            "TIME (ISO 8601, UTC if no offset; or a Unix timestamp). Every checksum is "
                            "verified; DIR's MANIFEST is written last. An interrupted restore resumes "
                            "when run again with the same URL and DIR.",
                examples=["pysos restore s3://backups/users data/users-restored",
                          "pysos restore --at 2026-11-30T05:00:00Z s3://backups/users /tmp/users-5am"])
    p.add_argument("url", metavar="URL", help="s3://BUCKET/PREFIX")
    p.add_argument("dir", metavar="DIR", help="a new or empty directory")
    p.add_argument("--at", metavar="TIME", default=None, help="restore the store as of TIME")
    p.set_defaults(func=cmd_restore)

    from ..replicate.follow import DESCRIPTION as FOLLOW, add_arguments as follow_arguments

    p = command(sub, "follow", summary="keep a read-only local copy of a replica up to date",
                description=FOLLOW,
                examples=["pysos follow s3://backups/users /srv/users-replica",
                          "pysos follow --interval 0.5 s3://backups/users /srv/users-replica",
                          "pysos follow --resync s3://backups/users /srv/users-replica"])
    follow_arguments(p)
    p.set_defaults(func=cmd_follow)


def is_url(text) -> bool:
    return str(text).startswith("s3://")


__all__ = ["register", "cmd_info_remote", "is_url"]
