"""The remote MANIFEST: what a replica holds, committed by compare-and-swap.

A replica under ``s3://BUCKET/PREFIX/`` is these objects (names relative to the prefix):

``MANIFEST``
    The latest commit: one JSON line (the *body*, below). Created with ``If-None-Match: *``,
    then only ever replaced with ``If-Match`` on the ETag its writer last wrote, never deleted.
``log/SSSSSSSSSSSS-E``
    The write-once copy of commit ``S`` (12 digits) made by writer epoch ``E``: the body's
    line, then the bytes of the tail chunk that commit shipped (if any). Written with
    ``If-None-Match: *`` *before* the commit's swap, so it is the point-in-time copy, and a
    chunk is always in the same object as the first commit that referenced it.
``data/E-S/NAME``
    A sealed segment (or its ``.hint``), or ``NAME@START-END`` a piece of the newest segment,
    uploaded once with ``If-None-Match: *`` by epoch ``E`` for commit ``S``: an upload that
    was never committed (a crash, a fenced writer) has a key no commit will ever name.

The body (JSON, sorted keys, CRC-32 like the local MANIFEST's)::

    format "pysos-replica", version 1, lineage (the store's id), [owner], epoch, seq, time (Unix s),
    kind, store {generation, next_segment, compactions: [count, reclaimed, last]},
    segments [{name, size, parts, hint}]   sealed segments, oldest first
    tail {name, size, parts} | null         the newest segment's shipped whole units
    dropped [names]                         objects this commit stopped referencing
    epochs [[first seq, epoch]]             which epoch committed which seqs (log names)
    history_from                            oldest seq whose log copy is kept
    drops_before                            the dropped objects of commits < this are deleted
    gc {deleted, failed, last_error, pending}

A part is ``[object, length, crc32]`` (``[..., level]`` in a tail): the segment's next
``length`` bytes are the **last** ``length`` bytes of that object. Readers never LIST: the
MANIFEST names everything, and the log is found by seq (a binary search for ``--at``).
"""

from __future__ import annotations

import os
import time
import zlib

import orjson

from ..errors import CorruptionError, FormatError
from .client import NotFound, PreconditionFailed, RemoteError

FORMAT = "pysos-replica"
VERSION = 1
MANIFEST = "MANIFEST"


class FencedError(RemoteError):
    """Another replicator committed to the remote since we last did: we no longer own it."""


class Stale(Exception):
    """An earlier attempt of ours did commit (its reply was lost): start from ``current``."""

    def __init__(self, current: dict, etag: str):
        super().__init__("our earlier commit landed")
        self.current, self.etag = current, etag


def log_name(seq: int, epoch: int) -> str:
    return f"log/{seq:012d}-{epoch}"


def epoch_name(epoch: int) -> str:
    return f"epoch/{epoch}"


def data_prefix(epoch: int, seq: int) -> str:
    return f"data/{epoch}-{seq}/"


def crc(data: bytes) -> str:
    return "%08x" % zlib.crc32(data)


def new_lineage() -> str:
    return os.urandom(8).hex()


def empty(kind: str, lineage: str) -> dict:
    """The body of a replica that holds an empty store (before its first commit)."""
    return {
        "format": FORMAT, "version": VERSION, "lineage": lineage, "epoch": 0, "seq": 0,
        "time": 0.0, "kind": kind,
        "store": {"generation": 0, "next_segment": 1, "compactions": [0, 0, 0]},
        "segments": [], "tail": None, "dropped": [], "epochs": [], "history_from": 1,
        "drops_before": 1, "gc": {"deleted": 0, "failed": 0, "last_error": "", "pending": []},
    }


def encode(body: dict) -> bytes:
    body = {k: v for k, v in body.items() if k != "crc"}
    data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    body["crc"] = crc(data)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode(data: bytes, where: str) -> dict:
    """The body in ``data`` (a MANIFEST, or the first line of a log object), checked."""
    line = data.split(b"\n", 1)[0]
    try:
        body = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise CorruptionError(f"{where}: not a pysos replica manifest (invalid JSON)") from None
    if type(body) is not dict or body.get("format") != FORMAT:
        raise FormatError(f"{where}: not a pysos replica manifest")
    if body.get("version") != VERSION:
        raise FormatError(f"{where}: unknown replica format version {body.get('version')!r}")
    expected = body.pop("crc", None)
    if expected != crc(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)):
        raise CorruptionError(f"{where}: replica manifest checksum mismatch")
    return body


def referenced(body: dict) -> set[str]:
    """Every object the commit needs (its segments, hints and tail parts)."""
    names: set[str] = set()
    for entry in body["segments"]:
        names.update(part[0] for part in entry["parts"])
        if entry.get("hint"):
            names.add(entry["hint"][0])
    if body["tail"]:
        names.update(part[0] for part in body["tail"]["parts"])
    return names


def owner(body: dict) -> str:
    """The lineage of the store whose replicator owns the replica: its contents' lineage,
    or, in a takeover's fence commit (contents not shipped yet), the taker's (``owner``)."""
    return body.get("owner", body["lineage"])


def epoch_of(body: dict, seq: int) -> int:
    """The epoch that committed ``seq`` (``seq`` within ``history_from..body['seq']``)."""
    found = None
    for first, epoch in body["epochs"]:
        if first <= seq:
            found = epoch
    if found is None:
        raise NotFound(f"commit {seq} is older than the replica's history")
    return found


def total_bytes(body: dict) -> int:
    sizes = [entry["size"] for entry in body["segments"]]
    return sum(sizes) + (body["tail"]["size"] if body["tail"] else 0)


class Remote:
    """Reading and committing a replica's MANIFEST and log through a client."""

    def __init__(self, client):
        self.client = client
        self.where = str(client.location)
        self._bodies: dict[int, dict] = {}  # seq -> body of commits read or made (bounded)

    def remember(self, body: dict) -> None:
        self._bodies[body["seq"]] = body
        if len(self._bodies) > 4096:
            del self._bodies[next(iter(self._bodies))]

    def read(self) -> tuple[dict, str] | None:
        """The latest commit and its ETag; None if the prefix holds no replica."""
        try:
            found = self.client.get(MANIFEST)
        except NotFound:
            return None
        data, etag = found
        return decode(data, self.where + MANIFEST), etag

    def read_log(self, body: dict, seq: int) -> tuple[dict, bytes]:
        """Commit ``seq``'s body (from its log copy) and the whole log object."""
        if seq == body["seq"]:
            return body, b""
        name = log_name(seq, epoch_of(body, seq))
        data, _ = self.client.get(name)
        found = decode(data, self.where + name)
        if found["seq"] != seq:
            raise CorruptionError(f"{self.where}{name} holds commit {found['seq']}")
        self.remember(found)
        return found, data

    def body_of(self, body: dict, seq: int) -> dict:
        """Commit ``seq``'s body, from memory when this process has seen it."""
        known = self._bodies.get(seq)
        return known if known is not None else self.read_log(body, seq)[0]

    def commit(self, body: dict, chunk: bytes, etag: str | None) -> str:
        """Publish ``body`` (with ``chunk``): its log copy, then the MANIFEST swap.

        ``etag`` None: the MANIFEST must not exist yet. Returns the new ETag. Raises
        :class:`FencedError` if someone else committed since ``etag``.
        """
        data = encode(body)
        self.remember(body)
        name = log_name(body["seq"], body["epoch"])
        try:
            self.client.put(name, data + chunk, if_absent=True)
        except PreconditionFailed:
            # An earlier attempt of ours at this commit left its log object (only our
            # epoch writes this name). Same bytes: fine. Other bytes: replace it, unless
            # that attempt was committed after all (its reply lost), or we were fenced.
            existing, log_etag = self.client.get(name)
            if existing != data + chunk:
                self._check_still_ours(body, etag)
                self.client.put(name, data + chunk, if_match=log_etag)
        try:
            if etag is None:
                return self.client.put(MANIFEST, data, if_absent=True)
            return self.client.put(MANIFEST, data, if_match=etag)
        except (PreconditionFailed, NotFound):
            current = self.read()
            if current is not None and encode(current[0]) == data:
                return current[1]  # our swap landed, its reply was lost
            self._check_still_ours(body, etag, current)
            raise FencedError(fenced_message(self.where, body, current[0] if current else None)) from None

    def _check_still_ours(self, body: dict, etag: str | None, current=False) -> None:
        """Raise Stale if the MANIFEST holds a later commit of our epoch, FencedError if
        another epoch's; return if it is still the one we last wrote."""
        if current is False:
            current = self.read()
        if current is not None and current[1] == etag:
            return
        if current is not None and current[0]["epoch"] == body["epoch"] and current[0]["seq"] >= body["seq"]:
            raise Stale(*current)
        raise FencedError(fenced_message(self.where, body, current[0] if current else None))

    def at(self, body: dict, when: float) -> dict:
        """The last commit at or before ``when`` still in the history (binary search, no LIST).

        A log copy that is gone was deleted by retention, so it is older than every kept
        commit: the search moves past it; if the answer itself is gone, LookupError.
        """
        if when >= body["time"]:
            return body
        low, high = body["history_from"] - 1, body["seq"]  # low: at/before when; high: after
        found = None
        while high - low > 1:
            middle = (low + high) // 2
            try:
                candidate = self.body_of(body, middle)
            except NotFound:
                low, found = middle, None
                continue
            if candidate["time"] <= when:
                low, found = middle, candidate
            else:
                high = middle
        if found is None:
            raise LookupError(f"no commit at or before {_iso(when)} is kept (retention deleted older ones)")
        return found


def fenced_message(where: str, ours: dict, theirs: dict | None) -> str:
    if theirs is None:
        return f"{where}: the replica's MANIFEST disappeared; this replicator stops"
    return (
        f"fenced: {where} was taken over by another replicator (epoch {theirs['epoch']}, "
        f"lineage {owner(theirs)}); this one (epoch {ours['epoch']}) commits nothing more"
    )


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def self_test(client) -> None:
    """Refuse a server that ignores conditional writes (RemoteError saying so)."""
    name = "selftest-" + os.urandom(6).hex()
    client.put(name, b"1", if_absent=True)
    try:
        for what, write in (
            ("If-None-Match", lambda: client.put(name, b"2", if_absent=True)),
            ("If-Match", lambda: client.put(name, b"3", if_match='"00000000000000000000000000000000"')),
        ):
            try:
                write()
            except PreconditionFailed:
                continue
            raise RemoteError(
                f"the server ignores conditional writes ({what}): replicating there could let "
                f"two replicators both believe they own {client.location}"
            )
    finally:
        client.delete(name)
