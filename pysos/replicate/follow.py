"""``pysos follow URL DIR``: keep DIR an up-to-date local copy of a replica, for readers.

Any process opens DIR with ``readonly=True`` and follows it exactly as it follows a local
writer, because the follower changes DIR only in the ways a writer and a compactor do:

1. **Poll.** Every interval, one conditional GET of the remote ``MANIFEST``
   (``If-None-Match`` its last ETag): a 304 means nothing to do. Never a LIST: the body
   names every object.
2. **Fetch what is missing, verified, out of readers' sight.** A file the local MANIFEST
   does not name yet (a segment sealed or written by a compaction since, its hint, a new
   newest segment) is fetched whole into ``NAME.part``, checked (every part's CRC-32, its
   size, every record's checksum and batch framing; a hint against its segment) and
   renamed into place: readers open only files a MANIFEST names. Only the bytes we lack are
   fetched: a file we have a prefix of gets a ranged GET of its remaining bytes per part,
   and each part's CRC-32 is computed over our local prefix plus those bytes.
3. **Grow the newest segment in place, whole units only.** The local newest segment
   (the one readers scan to its end) gets the remote's new bytes appended, in one write,
   after their CRCs and their records and batch framing were checked: every remote size
   is the end of a whole unit, so a reader sees whole records and whole batches or (while
   the write is under way) a torn tail it ignores, exactly as beside a local writer. A
   segment the remote sealed that was our newest is completed the same way before step 4,
   so the size the next MANIFEST records is already on disk.
4. **Publish with the compactor's MANIFEST swap** (temp file, fsync, rename, fsync of the
   directory; under ``manifest.lock``), with the remote's generation, segments and sizes:
   readers adopt a rotation or a compaction as they adopt a local one.
5. **Only then delete** the files the new MANIFEST no longer names, as the compactor does:
   readers keep their open descriptors; one that reaches for a deleted file re-reads the
   MANIFEST and retries.

Each step is safe to interrupt at any instant: before the swap nothing readers look at
changed but the newest segment's whole units. After a SIGKILL the next run finds DIR
as it was left and checks every local file against the remote's sizes and CRC-32s before
trusting it (reading it locally, fetching nothing it has); ``.part`` files are discarded.

While it runs the follower holds DIR's ``writer.lock`` (with the note ``follow URL``, so a
writable open says that DIR is being followed) and ``compact.lock`` (no local compaction
rewrites files it manages). DIR's first copy is made under restore's marker
(``pysos-restore.json``), so a half-made copy never opens as a store; ``DIR.follow/
state.json`` records the URL, and the follower refuses a DIR with a store it did not make,
or one that has what the replica lacks (a newer generation, a longer newest segment: a
writer changed it since, e.g. after a promotion), which following would overwrite.
Network and server errors are logged (one line each) and retried with backoff while DIR
keeps serving its last good state.

Hostile surroundings (DESIGN.md, "In the field"):

- **Diverged copy.** A replica that lacks what a file readers read has (taken over by an
  older copy of the store: the old primary's last commits are in our copy) cannot be
  followed in place, as replacing those files under readers would show them a mix:
  :class:`Diverged`, exit 1, naming ``--resync``. With ``--resync`` the follower first
  publishes DIR's own state under fresh segment numbers (hard links), deletes the old
  names, then applies the replica's commit as onto an empty copy: readers see the old
  state, then the new one (a reader whose MANIFEST names a segment that is another file
  now reads the store afresh, :meth:`pysos.engine.reader.Reader._replaced`).
- **Planted files.** Every file is opened through :mod:`pysos.segments.files`: a link, a
  FIFO or a device under a name the follower reads or writes is never followed nor blocked
  on; the follower stops with one line (:class:`FatalError`). A temp name (``.part``,
  ``MANIFEST.PID.tmp``) is unlinked and created afresh, as everywhere in pysos.
- **DIR replaced.** DIR's (device, inode) is noted at start and compared before and after
  every request and before every MANIFEST swap (:meth:`Follower.check`): a DIR renamed
  away, deleted or replaced stops the follower, which writes nothing into the new one.
- **Ctrl-C.** SIGINT/SIGTERM sets ``stop``, checked at the same points: a long first copy
  stops at the next file or ranged GET (exit 130 or 143), leaving ``.part`` files (removed
  by the next run) and no MANIFEST; between polls or during a later step it exits 0 with
  DIR at its last commit.

Exit status: 0 stopped by SIGINT/SIGTERM; 1 cannot follow any more (see above); 2 could
not start (bad URL, missing bucket, bad credentials, no replica there, DIR not ours or
already followed); 130 (SIGINT) or 143 (SIGTERM) interrupted while catching up at start.
Each is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

from ..errors import Error
from .client import S3, parse_url
from .follower import Diverged, FatalError, Follower, FollowError, Interrupted, state_dir

__all__ = ["Diverged", "FatalError", "Follower", "FollowError", "Interrupted", "main", "run", "state_dir"]

log = logging.getLogger("pysos.replicate")

EXIT_OK, EXIT_FAILED, EXIT_START = 0, 1, 2
MAX_BACKOFF = 30.0  # seconds between retries at most after repeated failures


# --- the command ----------------------------------------------------------------------

DESCRIPTION = """\
Keep DIR (created if missing) an up-to-date local copy of the replica at URL
(s3://BUCKET/PREFIX), polling its MANIFEST every --interval seconds with a
conditional GET, until SIGINT/SIGTERM. Any process opens DIR with readonly=True and
follows it as it follows a local writer; DIR refuses a writable open while followed.
Credentials, endpoint and region come from the standard AWS environment/config.
A DIR whose copy has diverged from the replica (it holds the old primary's last
commits after a takeover) stops the follower; --resync replaces such a copy with
the replica's, in place (readers see the old copy, then the new one).
Exit status: 0 stopped; 1 cannot follow any more (a diverged copy without
--resync, a link or FIFO planted in DIR, DIR moved or deleted); 2 could not start;
130 interrupted (SIGINT; 143 SIGTERM) before DIR caught up at start: run it again."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .command import seconds as _seconds

    parser.add_argument("url", metavar="URL", help="s3://BUCKET/PREFIX")
    parser.add_argument("dir", metavar="DIR", help="the local copy (a new or empty directory the first time)")
    parser.add_argument("--interval", type=_seconds, default=1.0, help="seconds between polls (default 1)")
    parser.add_argument("--resync", action="store_true",
                        help="if DIR's copy has diverged from the replica (it holds commits the replica "
                             "no longer has, e.g. the old primary's last ones after a takeover), discard "
                             "it and copy the replica afresh, in place (readers of DIR see the old state, "
                             "then the new one); without it such a DIR stops the follower")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")


def run_args(args) -> int:
    return run(args.url, args.dir, interval=args.interval, verbose=args.verbose, resync=args.resync)


def run(url: str, directory, *, interval: float = 1.0, verbose: bool = False, client=None,
        stop: threading.Event | None = None, resync: bool = False) -> int:
    """Follow ``url`` into ``directory`` until ``stop`` is set or SIGINT/SIGTERM; return the
    exit status (see the module docstring)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = stop or threading.Event()
    previous: dict[int, Any] = {}
    received: list[int] = [int(signal.SIGINT)]  # the signal that set ``stop`` last

    def stopping(number: int, _frame: Any) -> None:
        received.append(number)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, stopping)
    follower = None
    try:
        try:
            follower = Follower(directory, client or S3(parse_url(url)), stop=stop, resync=resync)
            follower.start()
        except Interrupted:
            return _fail(f"interrupted before {os.path.abspath(directory)} caught up with {url}; readers of it "
                         "see its last whole copy, if it has one; run the same command again to resume",
                         128 + received[-1])
        except FatalError as exc:
            return _fail(str(exc), EXIT_FAILED)
        except (Error, ValueError, OSError) as exc:
            return _fail(str(exc), EXIT_START)
        log.info("pysos follow: %s -> %s: at commit %s", follower.url, follower.directory, follower.stats()["seq"])
        return _loop(follower, interval, stop)
    finally:
        if follower is not None:
            follower.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _loop(follower: Follower, interval: float, stop: threading.Event) -> int:
    failures = 0
    while not stop.wait(min(interval * 2 ** min(failures, 10), MAX_BACKOFF) if failures else max(interval, 0.01)):
        seq = follower.body["seq"] if follower.body else None
        try:
            follower.poll()
            failures = 0
        except Interrupted:  # the step is abandoned: DIR keeps its last commit
            break
        except FatalError as exc:
            return _fail(str(exc), EXIT_FAILED)
        except (Error, OSError) as exc:  # the network, the server, a full disk: try again later
            failures += 1
            log.warning("pysos follow: poll failed (%s); DIR keeps commit %s, retrying in %.1f s", exc, seq,
                        min(interval * 2 ** min(failures, 10), MAX_BACKOFF))
            continue
        if follower.body and follower.body["seq"] != seq:
            log.debug("pysos follow: at commit %d (%s)", follower.body["seq"], follower.stats())
    log.info("pysos follow: stopping (%s)", follower.stats())
    return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"pysos follow: error: {message}", file=sys.stderr)
    return code


def main(argv=None) -> int:
    from .command import entry_point

    return entry_point("python -m pysos.replicate.follow", DESCRIPTION, add_arguments, run_args, argv)


if __name__ == "__main__":
    sys.exit(main())
