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

Nothing is ever found by LIST. The results (counts, the last error, names whose delete
failed, retried next time) go into the next commit's ``gc`` member, so ``pysos info URL``
shows them, and failures are logged as warnings: storage never piles up silently.
"""

from __future__ import annotations

import logging
import time

from .client import RemoteError
from .remote import epoch_of, log_name

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
    pending, deleted = [], 0
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
