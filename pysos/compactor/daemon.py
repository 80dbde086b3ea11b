"""The compaction daemon behind ``python -m pysos.compactor DIR [DIR ...]``.

It watches each store directory with watchdog (inotify on Linux): a new segment file
(the writer rotated) or a replaced MANIFEST wakes it, and it then looks at that store's
garbage; a periodic look every ``--interval`` seconds is only a fallback for file
systems without change events. A store is compacted, in bounded merges, while its sealed
segments' dead bytes pass the policy (:mod:`pysos.compactor.plan`).

The daemon never opens a store for writing and never seals a segment: it only merges
segments the writer has sealed, under the store's compaction lock (the writer seals early
once garbage dominates its segment, so a small churning store's garbage reaches the
daemon without waiting for a full segment). While it watches a store it holds the store's
``daemon.lock``: a writer's background thread (``autocompact=True``) that sees it held
stands aside, so the two never compete for the compaction lock. If another compactor
(``compact()``, ``pysos compact``) holds that lock it skips the store and looks again a
second later. ``--once`` leaves a store with nothing to reclaim as it is. On SIGINT or SIGTERM
it stops: a merge in progress gives up at its next write and deletes its unpublished
outputs; even a SIGKILL only leaves files that the next compaction or open removes.

Memory: for its dead-byte estimate the daemon keeps, per watched store, the keys of
every segment with the length of each key's newest record there (see
:class:`pysos.compactor.plan.KeySummary`): about as much as the writer's index.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
import time
from typing import Sequence

from watchdog.events import FileCreatedEvent, FileMovedEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..errors import CorruptionError, Error, LockedError
from ..segments import clock, files, hints, locks, manifest, record, recovery, segment
from . import plan
from .merge import compact_all, compact_directory
from .throttle import Interrupted, Throttle

log = logging.getLogger("pysos.compactor")

DEFAULT_INTERVAL = 30.0
DEFAULT_SEGMENT_SIZE = 64 * 2**20
LOCK_RETRY = 1.0        # seconds before looking again at a store whose compaction lock was taken
_MAX_ROUNDS = 64        # bounded merges in a row for one store before looking at the others


class StoreWatch:
    """One watched store: its key summaries (for the dead-byte estimate) and when to look."""

    def __init__(self, directory: str, kind: str):
        self.directory = directory
        self.kind = kind
        self.decode_key = record.key_decoder(kind)
        self.dirty = True
        self.next_check = 0.0
        self.clean: dict[str, plan.CleanMark] = {}  # outputs of fruitless merges (plan.mark_clean)
        self._summaries: dict[str, plan.KeySummary] = {}

    def estimates(self) -> tuple[manifest.Manifest, list[plan.SegmentEstimate]]:
        """The MANIFEST and each segment's size and estimated dead bytes (less, for the
        outputs of a fruitless merge, what a merge could not drop: :func:`plan.discount`)."""
        current, estimates = self._estimate()
        self.clean = plan.still_clean(self.clean, current.segments)
        return current, plan.discount(estimates, self.clean)

    def _estimate(self) -> tuple[manifest.Manifest, list[plan.SegmentEstimate]]:
        """The MANIFEST and each segment's size and estimated dead bytes, as they are."""
        for _ in range(3):
            current = manifest.read(self.directory)
            try:
                last = len(current.segments) - 1
                looked = [self._summary(name, newest=i == last) for i, name in enumerate(current.segments)]
                break
            except FileNotFoundError:
                continue  # a compaction retired a segment between our reads: read again
        else:
            raise FileNotFoundError(f"{self.directory}: segments keep disappearing")
        for name in set(self._summaries) - set(current.segments):
            del self._summaries[name]
        sizes = [size for size, _ in looked]
        dead = plan.estimate_dead([summary for _, summary in looked], sizes, clock.wall())
        return current, [plan.SegmentEstimate(*seg) for seg in zip(current.segments, sizes, dead)]

    def _summary(self, name: str, newest: bool) -> tuple[int, plan.KeySummary]:
        """Size and key summary of a segment: from the cache, its hint, or a scan of the new bytes."""
        path = os.path.join(self.directory, name)
        fd = files.open_read(path)
        try:
            size = files.size(fd)
            summary = self._summaries.get(name)
            if summary is not None and summary.end > size:
                summary = None  # the writer cut a torn tail: start over
            if summary is None and not newest:
                hint = hints.read(os.path.join(self.directory, segment.hint_name(name)), name, size, self.kind)
                if hint is not None:
                    summary = plan.KeySummary.from_hint(size, map(self.decode_key, hint.keys), hint.lengths,
                                                        hint.deadlines)
            if summary is None:
                summary = plan.KeySummary()
            if summary.end < size:
                scanner = segment.Scanner(fd, summary.end, size)
                decode = self.decode_key
                expiry_of = record.expiry_of
                for kind, key, _, line in scanner:
                    summary.add(kind, decode(key), len(line), expiry_of(line))
                summary.end = scanner.good_end
                damage = scanner.damage()
                if not newest and damage is not None:
                    raise CorruptionError(f"{path}: {damage[1]} at byte {damage[0]}")
            self._summaries[name] = summary
            return size, summary
        finally:
            files.close(fd)

    def compact_if_due(self, policy: plan.Policy, segment_size: int, throttle) -> dict | None:
        """One bounded merge if the store is due; its figures, or ``None`` if not due."""
        current, estimates = self.estimates()
        disk = sum(e.size for e in estimates)
        dead = sum(e.dead for e in estimates[:-1])
        log.debug(
            "pysos: %s: %d segment(s), %d bytes on disk, about %d dead in sealed segments",
            self.directory, len(estimates), disk, dead,
        )
        # A run of sealed segments from the oldest with no live record is free to drop (it
        # copies nothing): due whatever the policy says (see plan.dead_prefix).
        free_drop = plan.plan(estimates, policy) is None
        if free_drop and plan.dead_prefix(estimates) is None:
            return None
        by_name = {e.name: e for e in estimates}
        chosen_dead = [0]

        def choose(directory, latest):
            if free_drop:
                segments = _as_estimated(latest, by_name)
                run = plan.dead_prefix(segments)
            else:
                segments = [by_name.get(n) or plan.SegmentEstimate(n, 0, 0) for n in latest.segments]
                run = plan.choose_run(segments, policy.max_merge_bytes)
            if run is not None:
                chosen_dead[0] = sum(e.dead for e in segments[run[0] : run[1]])
            return run

        result = compact_directory(
            self.directory, segment_size=segment_size, wait=0.0, choose=choose, throttle=throttle
        )
        if not result["segments_in"]:
            return None
        if plan.fruitless(chosen_dead[0], result["reclaimed_bytes"]):
            log.debug("pysos: %s: merge reclaimed %d of an estimated %d dead bytes; its outputs count as clean",
                      self.directory, result["reclaimed_bytes"], chosen_dead[0])
            # What the estimate calls dead in the outputs now is what it cannot tell from
            # live; records overwritten, deleted or expired there from now on count again.
            current, estimates = self._estimate()
            outputs = set(result.get("outputs", ()))
            plan.mark_clean(self.clean, current.segments, {e.name: e.dead for e in estimates if e.name in outputs})
        return result


def _as_estimated(latest: manifest.Manifest, by_name: dict) -> list[plan.SegmentEstimate]:
    """The estimates of ``latest``'s segments for a free drop: a segment not estimated, or
    sealed at another size than it had when estimated (the newest then, or the output of
    a compaction published since), counts as all live, so the drop stops there."""
    out = []
    for i, name in enumerate(latest.segments):
        seen = by_name.get(name)
        size = latest.size_of(name) if i < len(latest.segments) - 1 else None
        out.append(seen if seen is not None and (size is None or seen.size == size)
                   else plan.SegmentEstimate(name, max(size or 0, 1), 0))
    return out


class Daemon:
    """Watch stores; compact each when due; ``stop()`` from any thread or a signal handler."""

    def __init__(
        self,
        directories: Sequence[str],
        policy: plan.Policy = plan.Policy(),
        *,
        interval: float = DEFAULT_INTERVAL,
        rate_limit: float | None = None,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
    ):
        self.policy = policy
        self.interval = interval
        self.rate_limit = rate_limit
        self.segment_size = segment_size
        self.stores = [StoreWatch(d, store_kind(d)) for d in directories]
        self.compactions = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._daemon_locks: list[locks.FileLock] = []

    def _announce(self) -> None:
        """Hold each store's ``daemon.lock`` while watching it: a writer's compaction thread
        that sees it held stands aside (it never competes with us for the compaction lock).
        A second daemon on the same store watches it too but says so."""
        for store in self.stores:
            lock = locks.FileLock(store.directory, locks.DAEMON)
            try:
                lock.acquire(timeout=0.0)
            except LockedError:
                log.warning("pysos: %s: another compaction daemon (pid %s) watches it too",
                            store.directory, locks.holder(store.directory, locks.DAEMON))
                continue
            except OSError as exc:
                log.warning("pysos: %s: cannot take daemon.lock (%s); a writer's thread may compete", store.directory, exc)
                continue
            self._daemon_locks.append(lock)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def throttle(self) -> Throttle:
        return Throttle(self.rate_limit, self._stop)

    # --- --once ------------------------------------------------------------------------

    def run_once(self) -> int:
        """Merge every sealed segment of each store (bounded merges); 0 if all went well."""
        status = 0
        for store in self.stores:
            if self._stop.is_set():
                break
            try:
                result = self._compact_all(store.directory)
            except Interrupted:
                break
            except (Error, OSError) as exc:
                log.error("pysos: cannot compact %s: %s", store.directory, exc)
                status = 1
                continue
            if result is not None and not result["segments_in"]:
                log.info("pysos: %s: nothing to compact (no sealed segment)", store.directory)
        return status

    def _compact_all(self, directory: str) -> dict | None:
        waiting_logged = False
        while True:
            try:
                return compact_all(
                    directory, segment_size=self.segment_size, max_merge_bytes=self.policy.max_merge_bytes,
                    wait=0.0, throttle=self.throttle(),
                )
            except LockedError:
                if not waiting_logged:
                    pid = locks.holder(directory, locks.COMPACT)
                    log.info("pysos: %s: waiting for another compactor (pid %s)", directory, pid)
                    waiting_logged = True
                if self._stop.wait(0.2):
                    return None

    # --- watching ----------------------------------------------------------------------

    def run(self) -> int:
        """Watch and compact until :meth:`stop`; returns the exit status (0)."""
        observer = Observer()
        for store in self.stores:
            observer.schedule(
                _Handler(store, self._wake), store.directory, recursive=False,
                event_filter=[FileCreatedEvent, FileMovedEvent],
            )
        observer.start()
        self._announce()
        log.info(
            "pysos: watching %d store(s) (threshold %.2f, min dead bytes %d, check every %g s): %s",
            len(self.stores), self.policy.ratio, self.policy.min_dead_bytes, self.interval,
            ", ".join(s.directory for s in self.stores),
        )
        try:
            while not self._stop.is_set():
                self._wake.clear()
                for store in self.stores:
                    if self._stop.is_set():
                        break
                    self._look(store)
                if self._stop.is_set():
                    break
                delay = min(s.next_check for s in self.stores) - time.monotonic()
                if any(s.dirty for s in self.stores):
                    delay = 0.0
                if delay > 0:
                    self._wake.wait(delay)
        finally:
            observer.stop()
            observer.join()
            for lock in self._daemon_locks:
                lock.release()
            self._daemon_locks = []
        log.info("pysos: compactor stopped after %d compaction(s)", self.compactions)
        return 0

    def _look(self, store: StoreWatch) -> None:
        now = time.monotonic()
        if not store.dirty and now < store.next_check:
            return
        store.dirty = False
        store.next_check = now + self.interval
        for _ in range(_MAX_ROUNDS):
            try:
                result = store.compact_if_due(self.policy, self.segment_size, self.throttle())
            except Interrupted:
                return
            except LockedError:
                log.debug("pysos: %s: another compactor holds the lock; retrying later", store.directory)
                store.next_check = min(store.next_check, now + LOCK_RETRY)
                return
            except FileNotFoundError as exc:
                log.warning("pysos: %s: %s", store.directory, exc)
                return
            except (Error, OSError) as exc:
                log.error("pysos: cannot compact %s: %s", store.directory, exc)
                return
            except Exception:  # a bug of ours: log it, and go on watching the other stores
                log.exception("pysos: cannot compact %s (an unexpected error; it will be tried again)", store.directory)
                return
            if result is None:
                return
            self.compactions += 1
        store.dirty = True  # more to do: come back after a look at the other stores


class _Handler(FileSystemEventHandler):
    """watchdog handler: a segment appeared or the MANIFEST was replaced -> look again."""

    def __init__(self, store: StoreWatch, wake: threading.Event):
        super().__init__()
        self.store = store
        self.wake = wake

    def dispatch(self, event) -> None:
        name = os.path.basename(getattr(event, "dest_path", "") or event.src_path)
        if name == manifest.NAME or segment.segment_number(name) is not None:
            self.store.dirty = True
            self.wake.set()


def store_kind(directory: str) -> str:
    """The kind of the store in ``directory``; ``FileNotFoundError``/``pysos.Error`` if none."""
    return recovery.existing_manifest(directory, None).kind


# --- command line ----------------------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"4MiB"``, ``"4M"``, ``"512k"``, ``"4096"`` -> bytes (binary multiples)."""
    match = _SIZE_RE.match(text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (e.g. 4096, 512k, 4MiB)")
    number, unit = float(match.group(1)), match.group(2).lower()
    return int(number * 1024 ** "_kmgt".index(unit or "_"))


def _ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"a ratio between 0 and 1, not {text!r}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"a positive number, not {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pysos.compactor",
        description=(
            "Compact pysos stores: merge their sealed segments, dropping overwritten and deleted "
            "records, and publish the result with an atomic MANIFEST swap. Without --once, watch "
            "the stores and compact each whenever its garbage passes the threshold."
        ),
        epilog=(
            "examples:\n"
            "  python -m pysos.compactor data/users data/events   # watch and compact until SIGINT/SIGTERM\n"
            "  python -m pysos.compactor --once data/users        # merge every sealed segment now, exit\n"
            "  python -m pysos.compactor --threshold 0.3 --rate-limit 20M data/users\n"
            "  pysos compact data/users                           # the same, once, from the pysos command"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directories", metavar="DIR", nargs="+", help="a pysos store directory")
    parser.add_argument("--once", action="store_true",
                        help="merge every sealed segment of each store now, then exit (seals nothing)")
    parser.add_argument("--threshold", metavar="RATIO", type=_ratio, default=plan.DEFAULT_RATIO,
                        help="compact when dead bytes pass this share of the store's disk bytes "
                             f"(default {plan.DEFAULT_RATIO})")
    parser.add_argument("--min-dead-bytes", metavar="BYTES", type=parse_size, default=plan.DEFAULT_MIN_DEAD_BYTES,
                        help="... and pass this many bytes (default 4MiB; accepts k, M, G suffixes)")
    parser.add_argument("--max-merge-bytes", metavar="BYTES", type=parse_size, default=plan.DEFAULT_MAX_MERGE_BYTES,
                        help="input bytes of one merge at most: the extra disk a merge needs (default 256MiB)")
    parser.add_argument("--interval", metavar="SECONDS", type=_positive, default=DEFAULT_INTERVAL,
                        help="also look at every store this often, events or not "
                             f"(default {DEFAULT_INTERVAL:g})")
    parser.add_argument("--rate-limit", metavar="BYTES_PER_S", type=parse_size, default=None,
                        help="write merged segments at most this fast (default: no limit)")
    parser.add_argument("--segment-size", metavar="BYTES", type=parse_size, default=DEFAULT_SEGMENT_SIZE,
                        help="size of the segments a merge writes (default 64MiB)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every look at a store")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate_limit == 0 or args.segment_size == 0 or args.max_merge_bytes == 0:
        print("pysos.compactor: error: sizes and rates must be positive", file=sys.stderr)
        return 2
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("pysos")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    directories = list(dict.fromkeys(os.path.realpath(d) for d in args.directories))
    for directory in directories:
        problem = _not_a_store(directory)
        if problem:
            print(f"pysos.compactor: error: {problem}", file=sys.stderr)
            return 1
    policy = plan.Policy(args.threshold, args.min_dead_bytes, args.max_merge_bytes)
    try:
        daemon = Daemon(
            directories, policy, interval=args.interval, rate_limit=args.rate_limit, segment_size=args.segment_size
        )
    except (Error, OSError) as exc:  # the store went away since the check above
        print(f"pysos.compactor: error: {exc}", file=sys.stderr)
        return 1

    def on_signal(signum, frame):
        log.info("pysos: %s received, stopping", signal.Signals(signum).name)
        daemon.stop()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return daemon.run_once() if args.once else daemon.run()
    except OSError as exc:  # e.g. the inotify watch limit: say so, no traceback
        print(f"pysos.compactor: error: {exc}", file=sys.stderr)
        return 1
    finally:
        root.removeHandler(handler)
        for signum, previous_handler in previous.items():  # main() called in-process (tests, a
            signal.signal(signum, previous_handler)  # service) must not keep SIGTERM from ending it


def _not_a_store(directory: str) -> str | None:
    if not os.path.exists(directory):
        return f"{directory}: no such directory"
    if not os.path.isdir(directory):
        return f"{directory}: not a directory, so not a pysos store"
    try:
        store_kind(directory)
    except FileNotFoundError:
        return f"{directory}: not a pysos store (no MANIFEST)"
    except Error as exc:
        return str(exc)
    except OSError as exc:
        return f"{directory}: {exc.strerror or exc}"
    return None


__all__ = ["Daemon", "StoreWatch", "build_parser", "main", "parse_size"]
