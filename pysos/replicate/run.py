"""The replicator as a command: start, loop every interval, stop cleanly, exit codes.

Exit status: 0 done (``--once``, or stopped by SIGINT/SIGTERM); 2 could not start (no
store, a missing bucket, bad credentials, a server that ignores conditional writes, a
prefix owned by another store); 3 fenced (another replicator took the replica over).
Every such failure is one line on stderr, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time

from ..errors import Error
from .client import RemoteError, S3, parse_url
from .remote import FencedError
from .uploader import Replicator

log = logging.getLogger("pysos.replicate")

EXIT_OK, EXIT_START, EXIT_FENCED = 0, 2, 3
GC_EVERY = 60.0  # seconds between retention passes (shorter when the retention is short)
SWEEP_EVERY = 3600.0  # seconds between orphan sweeps (the one LIST), after one at start


def run(store: str, url: str, *, interval: float = 1.0, once: bool = False,
        retention: float = 86400.0, takeover: bool = False, min_age: float = 300.0,
        verbose: bool = False, client=None) -> int:
    """Replicate ``store`` to ``url``; return the exit status (see the module docstring)."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for number in (signal.SIGINT, signal.SIGTERM):
            previous[number] = signal.signal(number, lambda *_: stop.set())
    try:
        try:
            rep = Replicator(store, client or S3(parse_url(url)), takeover=takeover,
                             retention=retention, min_age=min_age)
            rep.start()
        except FencedError as exc:
            return _fail(str(exc), EXIT_FENCED)
        except FileNotFoundError:
            return _fail(f"no pysos store at {store}", EXIT_START)
        except (Error, ValueError, OSError) as exc:
            return _fail(str(exc), EXIT_START)
        try:
            return _loop(rep, interval, once, retention, stop)
        except FencedError as exc:
            return _fail(str(exc), EXIT_FENCED)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _loop(rep: Replicator, interval: float, once: bool, retention: float, stop) -> int:
    gc_every = max(interval, min(GC_EVERY, retention / 4))
    sweep_every = max(gc_every, min(SWEEP_EVERY, retention / 2))
    next_gc = next_sweep = 0.0
    failures = 0
    while True:
        try:
            if time.monotonic() >= next_gc:
                rep.collect()
                next_gc = time.monotonic() + gc_every
            if time.monotonic() >= next_sweep and not once:
                rep.sweep()
                next_sweep = time.monotonic() + sweep_every
            if rep.step() or once:
                log.debug("pysos replicate: %s", rep.stats())
            failures = 0
        except FencedError:
            raise
        except (Error, OSError) as exc:  # the network, the server, a file: try again later
            failures += 1
            log.warning("pysos replicate: step failed (%s); retrying", exc)
            if once and failures >= 5:
                return _fail(f"could not finish: {exc}", 1)
        if once and failures == 0:
            return EXIT_OK
        if stop.wait(min(interval * (2 ** min(failures, 5)), 60.0) if failures else max(interval, 0.01)):
            log.info("pysos replicate: stopping (%s)", rep.stats())
            return EXIT_OK


def _fail(message: str, code: int) -> int:
    print(f"pysos replicate: error: {message}", file=sys.stderr)
    return code


__all__ = ["run", "RemoteError"]
