"""Restore: make a local store out of a replica, as of its latest commit or an earlier one.

The target directory must not exist or be empty; a marker file (``pysos-restore.json``)
says a restore is under way, so that the directory never opens as a store until the end,
and a restore interrupted at any point resumes when run again with the same URL: files
already in place are checked and kept, the rest are fetched. Every segment is assembled
from its parts by ranged GETs (files fetched in parallel) into a temporary file, then checked: each part's
CRC-32 and length, the size the commit records, and every record's own checksum and batch
framing. Only then is it renamed into place. The store's MANIFEST is written last.
"""

from __future__ import annotations

import datetime
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import orjson

from ..errors import CorruptionError, Error
from ..segments import files, hints, manifest, recovery, segment
from ..segments.manifest import Manifest
from . import remote
from .client import NotFound, S3, parse_url
from .remote import Remote

MARKER = recovery.RESTORE_MARKER
RANGE = 64 << 20  # bytes per ranged GET at most (a default-sized segment: one GET)
_TEMP = ".part"


class RestoreError(Error):
    """A restore that cannot be done (message: one line, the cause)."""


def parse_time(at) -> float | None:
    """``--at``: ISO 8601 (UTC where no offset is given), a Unix timestamp, or a datetime."""
    if at is None:
        return None
    if isinstance(at, datetime.datetime):
        moment = at
    elif isinstance(at, (int, float)) and not isinstance(at, bool):
        return float(at)
    else:
        text = str(at).strip()
        try:
            return float(text)
        except ValueError:
            pass
        try:
            moment = datetime.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ValueError(f"--at {text!r} is neither an ISO 8601 time nor a Unix timestamp") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def restore(url: str, directory, at=None, *, client=None, workers: int = 4) -> dict:
    """Restore the replica at ``url`` into ``directory`` (see the module docstring).

    ``at``: restore the last commit at or before that time (ISO 8601 string, Unix
    timestamp or datetime). Returns what was restored (seq, time, segments, bytes).
    """
    when = parse_time(at)
    directory = os.path.abspath(os.fspath(directory))
    if client is None:
        client = S3(parse_url(url))
    rem = Remote(client)
    if _prepare(directory, str(url)):
        return {"seq": None, "time": None, "segments": 0, "bytes": 0, "resumed": True}
    for _ in range(4):
        found = rem.read()
        if found is None:
            raise RestoreError(f"{client.location} holds no pysos replica (no MANIFEST there)")
        body = found[0]
        if when is not None:
            try:
                body = rem.at(body, when)
            except LookupError as exc:
                raise RestoreError(f"{client.location}: {exc}") from None
        try:
            total = _download(client, body, directory, workers)
            break
        except NotFound:
            continue  # retention removed an object of an old commit meanwhile: read again
    else:
        raise RestoreError(f"{client.location}: objects keep disappearing (retention is shorter than the restore)")
    store = body["store"]
    names = [entry["name"] for entry in body["segments"]] + [body["tail"]["name"]]
    man = Manifest(body["kind"], store["generation"], tuple(names),
                   tuple(entry["size"] for entry in body["segments"]),
                   store["next_segment"], tuple(store["compactions"]),
                   version=store.get("version", manifest.VERSION_ONE), codec=store.get("codec", "json"))
    manifest.write(directory, man)  # the last step: from here on the directory is a store
    files.unlink(os.path.join(directory, MARKER))
    files.fsync_dir(directory)
    return {"seq": body["seq"], "time": body["time"], "segments": len(names), "bytes": total}


def _is_marker_temp(name: str) -> bool:
    """A temp file of the marker's atomic write (``files.atomic_write``: NAME.PID.tmp)."""
    middle = name[len(MARKER) + 1 : -len(".tmp")]
    return name.startswith(MARKER + ".") and name.endswith(".tmp") and middle.isdigit() and middle.isascii()


def _prepare(directory: str, url: str) -> bool:
    """Make ``directory`` ready; True if it already holds this restore, finished."""
    marker = os.path.join(directory, MARKER)
    if not os.path.exists(directory):
        files.makedirs(directory)
    elif not os.path.isdir(directory):
        raise RestoreError(f"{directory} is not a directory")
    names = os.listdir(directory)
    for name in [n for n in names if _is_marker_temp(n)]:
        # a restore killed while writing its marker: the temp file is ours, nothing else is yet
        files.unlink(os.path.join(directory, name))
        names.remove(name)
    if names:
        mine = False
        if MARKER in names:
            try:
                with open(marker, "rb") as f:
                    mine = orjson.loads(f.read()).get("url") == url
            except (OSError, ValueError, AttributeError):
                mine = False
        if not mine:
            raise RestoreError(f"{directory} is not empty: restore needs a new or empty directory")
        if manifest.NAME in names:  # finished but for removing the marker
            files.unlink(marker)
            files.fsync_dir(directory)
            return True
        for name in names:
            if name.endswith(_TEMP):
                files.unlink(os.path.join(directory, name))
        return False
    files.atomic_write(marker, orjson.dumps({"url": url}) + b"\n")
    return False


def _download(client, body: dict, directory: str, workers: int) -> int:
    """Fetch and check every file of commit ``body`` into ``directory``; return bytes.

    One task per file, ``workers`` at a time: a file's ranged GETs run in order (its CRCs
    are computed as the bytes arrive) and its records are checked as soon as it is whole,
    so checking one file overlaps fetching the others.
    """
    wanted = []  # (file name, size, parts, what to check)
    for entry in body["segments"]:
        wanted.append((entry["name"], entry["size"], entry["parts"], "segment"))
    wanted.append((body["tail"]["name"], body["tail"]["size"], body["tail"]["parts"], "segment"))
    hinted = [(segment.hint_name(e["name"]), e["hint"][1], [e["hint"]], e["name"])
              for e in body["segments"] if e.get("hint")]
    for name, size, parts, _ in wanted + hinted:
        if sum(part[1] for part in parts) != size:
            raise RestoreError(f"{client.location}: the commit's parts of {name} do not add up to its size")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch in (wanted, hinted):  # a hint is checked against its segment, so after it
            jobs = [pool.submit(_restore_file, client, directory, body["kind"], *item) for item in batch]
            for job in jobs:
                job.result()
    files.fsync_dir(directory)
    return sum(item[1] for item in wanted)


def _restore_file(client, directory: str, kind: str, name: str, size: int, parts, check: str) -> None:
    path = os.path.join(directory, name)
    try:
        if _parts_match(path, size, parts):  # a link or a FIFO there: NotRegularFile
            return  # a resumed restore: already fetched and checked
    except FileNotFoundError:
        pass
    temp = path + _TEMP
    fd = files.create_fresh(temp)
    try:
        offset = 0
        for part in parts:
            value = 0
            for first, last in _ranges(part):
                data = client.get(part[0], byte_range=(first, last))[0] if part[1] else b""
                expected = part[1] if last is None else last - first + 1
                if len(data) != expected:
                    raise RestoreError(f"{client.location}: {part[0]} is shorter than the commit says")
                files.write_all_at(fd, data, offset)
                offset += len(data)
                value = zlib.crc32(data, value)
            if "%08x" % value != part[2]:
                raise RestoreError(f"{client.location}: {name} fails its checksum (the replica is damaged)")
        files.fsync(fd)
    finally:
        files.close(fd)
    _check_content(temp, name, size, check, kind, client)
    files.replace(temp, path)


def _ranges(part):
    """(first, last) of each GET of a part: the last bytes of its object."""
    length = part[1]
    if length <= RANGE or part[0].startswith("log/"):
        yield -length, None
    else:  # a data object holds exactly the part: absolute ranges
        for first in range(0, length, RANGE):
            yield first, min(first + RANGE, length) - 1


def _parts_match(path: str, size: int, parts) -> bool:
    """Whether the file is ``size`` bytes and each part's bytes have the part's CRC."""
    fd = files.open_read(path)
    try:
        if files.size(fd) != size:
            return False
        offset = 0
        for part in parts:
            value, done = 0, 0
            while done < part[1]:
                data = files.pread(fd, min(RANGE, part[1] - done), offset + done)
                if not data:
                    return False
                value = zlib.crc32(data, value)
                done += len(data)
            if "%08x" % value != part[2]:
                return False
            offset += part[1]
        return True
    finally:
        files.close(fd)


def _check_content(path: str, name: str, size: int, check: str, kind: str, client) -> None:
    """Every record's checksum and batch framing (segments), or the hint's own checks."""
    fd = files.open_read(path)
    try:
        if check == "segment":
            scanner = segment.Scanner(fd, 0, size)
            for _ in scanner:
                pass
            if scanner.problem is not None or scanner.incomplete_tail or scanner.good_end != size:
                offset, reason = scanner.problem or (scanner.good_end, "unfinished record or batch")
                raise CorruptionError(f"{client.location}: {name}: {reason} at byte {offset}")
        else:
            data = files.pread(fd, size, 0)
            segment_path = os.path.join(os.path.dirname(path), check)
            result = hints.decode(data, check, _size_of(segment_path), kind)
            if not isinstance(result, hints.Hint):
                raise CorruptionError(f"{client.location}: {name}: not a valid hint ({result})")
    finally:
        files.close(fd)


def _size_of(path: str) -> int:
    fd = files.open_read(path)
    try:
        return files.size(fd)
    finally:
        files.close(fd)


def describe(client) -> dict:
    """What ``pysos info URL`` shows about a replica."""
    found = Remote(client).read()
    if found is None:
        raise RestoreError(f"{client.location} holds no pysos replica (no MANIFEST there)")
    body = found[0]
    return {
        "url": str(client.location), "kind": body["kind"], "lineage": body["lineage"],
        "epoch": body["epoch"], "commits": body["seq"],
        "generations_kept": body["seq"] - body["history_from"] + 1,
        "last_commit": remote._iso(body["time"]), "store_generation": body["store"]["generation"],
        "segments": len(body["segments"]) + 1, "bytes": remote.total_bytes(body),
        "gc_deleted": body["gc"]["deleted"], "gc_failed": body["gc"]["failed"],
        "gc_pending": len(body["gc"]["pending"]), "gc_last_error": body["gc"]["last_error"] or None,
    }
