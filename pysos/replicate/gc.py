"""Retention: the owner deletes what no commit within the retention window needs.

Only the replicator that owns the replica runs this, between its steps. With
``cutoff = now - max(retention, min_age)`` and *keep* the last commit at or before the
cutoff (the oldest commit a ``restore --at`` within the retention can pick):

- the objects commit ``k`` stopped referencing (its ``dropped`` list) are deleted once
  ``k <= keep``: no commit from *keep* on references them, and they have been
  unreferenced since at least the cutoff (the minimum age protects a restore that read
  an older MANIFEST a moment ago);
- log objects (point-in-time copies, and the chunks of the newest segment) are deleted
  below both *keep* and the oldest chunk *keep* still references; a log object is
  deleted one pass after its ``dropped`` list was processed, so a crash loses no list.

Retention never LISTs; :func:`sweep`, run rarely, LISTs to find orphans. The results (counts, the last error, names whose delete
failed, retried next time) go into the next commit's ``gc`` member, so ``pysos info URL``
shows them, and failures are logged as warnings: storage never piles up silently.
"""

from __future__ import annotations

import logging
import time

from .client import RemoteError
from .remote import FencedError, epoch_of, fenced_message, log_name, referenced

log = logging.getLogger("pysos.replicate")

PER_PASS = 2000  # commits whose dropped lists one pass reads at most
MAX_PENDING = 10000


def collect(rep, now: float | None = None) -> int:
    """One GC pass for the replicator ``rep``; return how many objects it deleted."""
    now = time.time() if now is None else now
    body = rep.body
    cutoff = now - max(rep.retention, rep.min_age)
    try:
        keep = rep.remote.at(body, cutoff)
    except LookupError:
        return 0  # nothing is older than the window yet
    keep_seq = keep["seq"]
    # Floors this process reached but has not committed yet (log-only passes ride along
    # with the next commit rather than making one: an idle store sends nothing).
    done = rep.gc_floors
    drops_before = max(body["drops_before"], done.get("drops_before", 0))
    history_from = max(body["history_from"], done.get("history_from", 0))
    last = min(keep_seq, drops_before + PER_PASS - 1)
    doomed = list(body["gc"]["pending"])
    for seq in range(drops_before, last + 1):
        doomed += rep.remote.body_of(body, seq)["dropped"]
    chunks = [int(part[0][4:16]) for part in (keep["tail"] or {}).get("parts", ()) if part[0].startswith("log/")]
    log_floor = max(history_from, min([keep_seq, drops_before] + chunks))
    logs = [log_name(seq, epoch_of(body, seq)) for seq in range(history_from, log_floor)]
    if not doomed and not logs and last < drops_before:
        return 0
    gc = dict(body["gc"])
    pending: list[str] = []
    deleted = 0
    for name in doomed + logs:
        try:
            rep.client.delete(name)
            deleted += 1
        except RemoteError as exc:
            gc["failed"] += 1
            gc["last_error"] = str(exc)
            if len(pending) < MAX_PENDING:
                pending.append(name)
            log.warning("pysos replicate: GC could not delete %s (retried next pass): %s", name, exc)
    gc["deleted"] += deleted
    gc["pending"] = pending
    if doomed or pending:  # else only logs went: no commit of its own for that
        rep.gc_state = gc
    else:
        rep.gc_logs_deleted += deleted
    rep.gc_floors = {"history_from": log_floor, "drops_before": max(drops_before, last + 1)}
    if deleted or pending:
        log.info("pysos replicate: GC deleted %d object(s), %d failed", deleted, len(pending))
    return deleted


def sweep(rep, now: float | None = None) -> int:
    """Delete orphans: uploads no commit ever named (a crash between an upload and its
    commit, a fenced replicator's later work, a killed self-test), older than ``min_age``.

    The one place that LISTs, run rarely by the owner, who first checks it still is
    (one GET of the MANIFEST; FencedError if another replicator took the replica). An
    object's name says which epoch uploaded it for which commit (``data/E-S/...``,
    ``log/S-E``): it is an orphan if
    commit ``S`` is in the kept history and was made by another epoch, or is newer than
    the latest commit. Objects of commits older than the history are left alone. An
    epoch claim ``epoch/E`` is an orphan once ``E`` is below the owner's epoch.
    """
    now = time.time() if now is None else now
    listed = rep.client.list()
    # Only the owner may judge what is an orphan: a replicator taken over while its store
    # was idle has not noticed yet (it notices at its next commit), and by its own, older
    # MANIFEST every upload of the new owner would look like one. So check first, after
    # the LIST: anything uploaded later is too young to be deleted anyway.
    current = rep.remote.read()
    if current is None or current[1] != rep.etag:
        if current is not None and current[0]["epoch"] == rep.epoch:
            return 0  # our commit whose reply was lost: the next step catches up; sweep later
        raise FencedError(fenced_message(rep.remote.where, rep.body, current[0] if current else None))
    body = rep.body
    live = referenced(body)
    deleted = 0
    for name, _, modified in listed:
        if name in live or name == "MANIFEST" or modified > now - rep.min_age:
            continue
        if not _orphan(body, name):
            continue
        try:
            rep.client.delete(name)
            deleted += 1
        except RemoteError as exc:
            log.warning("pysos replicate: could not delete the orphan %s: %s", name, exc)
    if deleted:
        rep.gc_logs_deleted += deleted  # counted in the next commit's gc.deleted
        log.info("pysos replicate: deleted %d orphan object(s)", deleted)
    return deleted


def _orphan(body: dict, name: str) -> bool:
    if name.startswith("selftest-"):
        return True
    if name.startswith("epoch/"):  # a claim (see Replicator._claim): no starter picks one below ours
        return name[6:].isdigit() and int(name[6:]) < body["epoch"]
    try:
        if name.startswith("log/"):
            seq, epoch = map(int, name[4:].split("-"))
        elif name.startswith("data/"):
            epoch, seq = map(int, name[5:].split("/", 1)[0].split("-"))
        else:
            return False  # not a name pysos writes: not ours to delete
    except ValueError:
        return False
    if seq > body["seq"]:
        return True
    if seq < body["history_from"]:
        return name.startswith("log/")  # below the kept history: retention's to delete
    return epoch_of(body, seq) != epoch
