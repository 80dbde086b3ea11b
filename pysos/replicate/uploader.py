"""The replicator: reads a store as any reader does and ships what is new, one commit a step.

Each :meth:`Replicator.step` reads the store's MANIFEST and files (never the engine's
memory), and builds the next remote commit from the last one:

- a sealed segment the remote does not hold yet is uploaded once, whole, with its hint;
- the newest segment's bytes after what was shipped, up to the end of its last whole unit
  (a record, or a complete batch: :class:`pysos.segments.segment.Scanner` decides), go up
  as a *chunk* inside the commit's own log object, so a step with writes costs two PUTs
  (the log object and the MANIFEST swap);
- every :data:`MERGE` small parts of one level in the newest segment's list are replaced
  by one *piece* holding their bytes (read again from the local file), so the commit
  stays small however long a segment stays the newest;
- nothing changed: nothing is sent.

A run first claims an epoch of its own (``epoch/E``, the first free one above the
remote's), then takes the replica with a *fence* commit (the remote's contents, unchanged,
under its epoch, naming its lineage as ``owner`` when the contents are another store's),
retried from a fresh read whenever another commit beats it;
a replicator still running with an older epoch fails its next swap (fenced). A prefix
that holds another store's replica (another lineage) is taken only with ``takeover``.
The lineage, a random id, lives in ``<store>.replica/state.json`` beside the store.
"""

from __future__ import annotations

import errno
import logging
import os
import time

import orjson

from ..errors import CorruptionError, Error
from ..segments import files, hints, manifest, recovery, segment
from . import remote
from .remote import FencedError, Remote, crc, data_prefix, log_name

log = logging.getLogger("pysos.replicate")

MERGE = 32  # parts of one level in the newest segment's list merged into one piece...
MERGE_BYTES = 16 << 20  # ...when they hold at most this much: big chunks need no merging
_RETRIES = 8
_START_ATTEMPTS = 20  # reads and swaps tried to take the replica (each beaten by a commit)


class OwnershipError(Error):
    """The remote prefix holds another store's replica (and no --takeover was given)."""


def state_dir(store: str) -> str:
    return os.path.abspath(store).rstrip(os.sep) + ".replica"


def load_lineage(store: str) -> str:
    """The store's lineage id, created (in ``<store>.replica/state.json``) on first use."""
    directory = state_dir(store)
    path = os.path.join(directory, "state.json")
    try:
        with open(path, "rb") as f:
            lineage = orjson.loads(f.read()).get("lineage")
        if isinstance(lineage, str) and lineage:
            return lineage
    except FileNotFoundError:
        pass
    except (ValueError, AttributeError):
        log.warning("pysos replicate: %s is unreadable; the store gets a new lineage", path)
    lineage = remote.new_lineage()
    files.makedirs(directory)
    files.atomic_write(path, orjson.dumps({"lineage": lineage}) + b"\n")
    return lineage


class Replicator:
    """Ships one store to one replica prefix (see the module docstring)."""

    def __init__(self, store: str, client, *, takeover: bool = False,
                 retention: float = 86400.0, min_age: float = 300.0):
        self.store = os.path.abspath(os.fspath(store))
        self.client = client
        self.remote = Remote(client)
        self.takeover = takeover
        self.retention = retention
        self.min_age = min_age
        self.lineage = ""
        self.epoch = 0
        self.body: dict = {}
        self.etag: str | None = None
        self.commits = 0
        self.gc_state: dict | None = None  # GC results not yet committed
        self.gc_floors: dict = {}  # history_from/drops_before reached, maybe not committed
        self.gc_logs_deleted = 0  # log objects deleted, counted in the next commit

    # --- start --------------------------------------------------------------------------

    def start(self) -> None:
        """Check the server, read the remote, and take it: claim a new epoch, then fence.

        Taking is a compare-and-swap on the MANIFEST that someone else's commit can beat
        (the old owner, still running, commits every interval): then read it again, check
        the ownership again, and retry. The first swap (the *fence* commit) ships nothing
        but the new epoch, so it is quick and a busy old owner cannot starve a takeover;
        the store's own contents go up in the step that follows.
        """
        local = recovery.existing_manifest(self.store, None)  # FileNotFoundError: no store
        remote.self_test(self.client)
        self.lineage = load_lineage(self.store)
        for _ in range(_START_ATTEMPTS):
            found = self.remote.read()
            if found is None:
                body, etag = remote.empty(local.kind, self.lineage), None
            else:
                body, etag = found
                owner = remote.owner(body)
                if owner != self.lineage and not self.takeover:
                    raise OwnershipError(
                        f"{self.remote.where} holds the replica of another store (lineage "
                        f"{owner}, this store's is {self.lineage}); "
                        f"use --takeover to make this store its owner"
                    )
            self.body, self.etag = body, etag
            self.remote.remember(body)
            if self.epoch <= body["epoch"]:  # (one claimed and still above the remote's: kept)
                self.epoch = self._claim(body["epoch"] + 1)
            try:
                if found is None:
                    self.step(force=True)
                else:
                    self._fence()
                break
            except FencedError:
                continue  # a commit landed between our read and our swap: read again
        else:
            raise FencedError(f"{self.remote.where}: could not take the replica: other replicators "
                              f"committed before each of {_START_ATTEMPTS} attempts")
        self.step()
        log.info("pysos replicate: %s -> %s: epoch %d, lineage %s", self.store,
                 self.remote.where, self.epoch, self.lineage)

    def _claim(self, epoch: int) -> int:
        """Reserve the first free epoch from ``epoch`` on (``epoch/E``, written once).

        Two replicators starting from the same MANIFEST would otherwise both pick its
        epoch + 1, and then each could take the other's commit for one of its own (a
        commit whose reply was lost) and the object names ``data/E-S``, ``log/S-E`` for
        its own uploads: with the epoch reserved, every name with ``E`` in it is ours.
        """
        while True:
            try:
                self.client.put(remote.epoch_name(epoch), orjson.dumps(
                    {"lineage": self.lineage, "time": time.time()}) + b"\n", if_absent=True)
                return epoch
            except remote.PreconditionFailed:
                epoch += 1

    def _fence(self) -> None:
        """Commit the remote's latest contents unchanged under our epoch (see :meth:`start`)."""
        old = self.body
        seq = old["seq"] + 1
        epochs = _epochs_from(old["epochs"], old["history_from"]) + [[seq, self.epoch]]
        body = dict(old, epoch=self.epoch, seq=seq, time=max(time.time(), old["time"]),
                    epochs=epochs, dropped=[])
        body.pop("owner", None)
        if old["lineage"] != self.lineage:
            body["owner"] = self.lineage  # ours now; the contents are still that lineage's
        try:
            self.etag = self.remote.commit(body, b"", self.etag)
            self.body = body
        except remote.Stale as landed:  # our swap landed, its reply was lost
            self.body, self.etag = landed.current, landed.etag
        self.remote.remember(self.body)
        self.commits += 1

    # --- one step -----------------------------------------------------------------------

    def step(self, force: bool = False) -> bool:
        """Ship what is new; True if a commit was made. Raises FencedError once fenced."""
        for _ in range(_RETRIES):
            try:
                return self._step(force)
            except FileNotFoundError:
                continue  # a compaction retired a segment between our reads: read again
            except remote.Stale as landed:  # a commit whose reply we lost did land
                self.body, self.etag = landed.current, landed.etag
                self.remote.remember(self.body)
                force = False
        raise CorruptionError(f"{self.store}: segments keep disappearing while replicating")

    def _step(self, force: bool) -> bool:
        local = manifest.read(self.store)
        old = self.body
        ours = old["lineage"] == self.lineage
        seq = old["seq"] + 1
        prefix = data_prefix(self.epoch, seq)
        dropped: set[str] = set()
        known = {entry["name"]: entry for entry in old["segments"]} if ours else {}
        segments = []
        for name, size in zip(local.segments[:-1], local.sealed_sizes):
            entry = known.get(name)
            if entry is None or entry["size"] != size:
                entry = self._upload_sealed(name, size, prefix, local.kind)
            segments.append(entry)
        old_tail = old["tail"] if ours else None
        tail, chunk = self._ship_tail(local.segments[-1], old_tail, prefix, seq, dropped)
        store = {"generation": local.generation, "next_segment": local.next_number,
                 "compactions": list(local.compactions)}
        if local.version != manifest.VERSION_ONE:  # a restore must refuse older pysos as the store does
            store["version"] = local.version  # (expiring records: 2; a codec: 3)
        if local.codec != "json":  # and decode its values the same way
            store["codec"] = local.codec
        gc_state = self.gc_state or old["gc"]
        if self.gc_logs_deleted:
            gc_state = dict(gc_state, deleted=gc_state["deleted"] + self.gc_logs_deleted)
        changed = (
            force or segments != old["segments"] or tail != old["tail"] or store != old["store"]
            or self.gc_state is not None or local.kind != old["kind"] or "owner" in old
        )
        if not changed:
            return False
        body = dict(old)
        body.pop("owner", None)
        for name, floor in self.gc_floors.items():
            body[name] = max(body[name], floor)
        epochs = _epochs_from(old["epochs"], body["history_from"])
        if not epochs or epochs[-1][1] != self.epoch:
            epochs.append([seq, self.epoch])
        body.update(
            lineage=self.lineage, epoch=self.epoch, seq=seq, time=max(time.time(), old["time"]),
            kind=local.kind, store=store, segments=segments, tail=tail, epochs=epochs, gc=gc_state,
        )
        before = remote.referenced(old)
        body["dropped"] = sorted(
            name for name in (before - remote.referenced(body)) | dropped if not name.startswith("log/")
        )
        self.etag = self.remote.commit(body, chunk, self.etag)
        self.body = body
        self.gc_state = None
        self.gc_logs_deleted = 0
        self.commits += 1
        log.debug("pysos replicate: commit %d: %d sealed, tail %s at %d (+%d bytes)", seq,
                  len(segments), tail["name"], tail["size"], len(chunk))
        return True

    def _upload_sealed(self, name: str, size: int, prefix: str, kind: str) -> dict:
        path = os.path.join(self.store, name)
        fd = files.open_read(path)
        try:
            data = files.pread(fd, size + 1, 0)
        finally:
            files.close(fd)
        if len(data) != size:
            raise CorruptionError(f"{path}: sealed segment is {len(data)} bytes, the MANIFEST says {size}")
        key = prefix + name
        self._put_once(key, data)
        entry = {"name": name, "size": size, "parts": [[key, size, crc(data)]], "hint": None}
        hint_path = os.path.join(self.store, segment.hint_name(name))
        try:
            fd = files.open_read(hint_path)
        except FileNotFoundError:
            return entry
        try:
            hint_data = files.pread(fd, files.size(fd), 0)
        finally:
            files.close(fd)
        if isinstance(hints.decode(hint_data, name, size, kind), hints.Hint):
            hint_key = prefix + segment.hint_name(name)
            if self._put_once(hint_key, hint_data):  # (a hint can be rewritten: then skip it)
                entry["hint"] = [hint_key, len(hint_data), crc(hint_data)]
        return entry

    def _put_once(self, key: str, data: bytes) -> bool:
        """Upload ``data`` to a new key; False if the key was taken (by an earlier attempt
        of ours at this commit: the name holds our epoch and seq, and a sealed segment or a
        piece of one never changes, so for them it holds these bytes)."""
        try:
            self.client.put(key, data, if_absent=True)
            return True
        except remote.PreconditionFailed:
            return False

    def _ship_tail(self, name: str, old_tail: dict | None, prefix: str, seq: int,
                   dropped: set[str]) -> tuple[dict, bytes]:
        """The newest segment's entry after this step, and the chunk it adds."""
        if old_tail is not None and old_tail["name"] != name:
            old_tail = None
        parts = [list(p) for p in old_tail["parts"]] if old_tail else []
        start = old_tail["size"] if old_tail else 0
        path = os.path.join(self.store, name)
        fd = files.open_read(path)
        try:
            size = files.size(fd)
            if size < start:
                raise CorruptionError(
                    f"{path}: the newest segment is {size} bytes, shorter than the {start} already "
                    f"replicated (is this the store that was replicated? see --takeover)"
                )
            scanner = segment.Scanner(fd, start, size)
            for _ in scanner:
                pass
            end = scanner.good_end
            if scanner.problem is not None and not segment.torn(fd, end, size):
                log.error("pysos replicate: %s: %s at byte %d: not replicated past it",
                          path, scanner.problem[1], scanner.problem[0])
            chunk = files.pread(fd, end - start, start) if end > start else b""
            parts = self._merge(parts, fd, name, prefix, dropped)
        finally:
            files.close(fd)
        if chunk:
            parts.append([log_name(seq, self.epoch), len(chunk), crc(chunk), 0])
        return {"name": name, "size": end, "parts": parts}, chunk

    def _merge(self, parts: list, fd: int, name: str, prefix: str, dropped: set[str]) -> list:
        """Replace each run of MERGE same-level parts at the end by one piece.

        Only runs of at most MERGE_BYTES: merging re-uploads bytes, worth it for the many
        small chunks of a slow writer; a fast writer's chunks are few per segment anyway
        (any MERGE of them in a row hold more than MERGE_BYTES, so a 64 MiB segment has
        at most a few hundred parts).
        """
        while (len(parts) >= MERGE and len({p[3] for p in parts[-MERGE:]}) == 1
               and sum(p[1] for p in parts[-MERGE:]) <= MERGE_BYTES):
            run = parts[-MERGE:]
            first = sum(p[1] for p in parts[:-MERGE])
            length = sum(p[1] for p in run)
            data = files.pread(fd, length, first)
            if len(data) != length:
                raise OSError(errno.EIO, f"short read of {name} at {first}")
            key = f"{prefix}{name}@{first}-{first + length}"
            self._put_once(key, data)
            dropped.update(p[0] for p in run)
            parts[-MERGE:] = [[key, length, crc(data), run[0][3] + 1]]
        return parts

    def collect(self, now: float | None = None) -> int:
        """One retention pass (see :mod:`.gc`); its results go out with the next commit."""
        from .gc import collect

        return collect(self, now)

    def sweep(self, now: float | None = None) -> int:
        """Delete orphaned uploads (one LIST; see :func:`.gc.sweep`)."""
        from .gc import sweep

        return sweep(self, now)

    # --- reporting ----------------------------------------------------------------------

    def stats(self) -> dict:
        body = self.body
        return {
            "seq": body.get("seq"), "epoch": self.epoch, "lineage": self.lineage,
            "commits": self.commits, "gc": dict(body.get("gc", {})),
            **self.client.counters.snapshot(),
        }


def _epochs_from(epochs: list, history_from: int) -> list:
    """The ``[first seq, epoch]`` entries still needed to name logs from ``history_from`` on."""
    kept = [list(e) for e in epochs if e[0] > history_from]
    older = [list(e) for e in epochs if e[0] <= history_from]
    return older[-1:] + kept
