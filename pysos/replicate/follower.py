"""The :class:`Follower`: one directory kept a copy of one replica, step by step (the
design, its guarantees and its hostile cases are in :mod:`pysos.replicate.follow`, the
command that runs it)."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import threading
import zlib
from typing import Any

import orjson

from ..errors import CorruptionError, Error, LockedError
from ..segments import files, locks, manifest, recovery, segment
from ..segments.manifest import Manifest
from . import remote
from .client import NotFound, RemoteError
from .restore import MARKER, _TEMP, _parts_match, _restore_file

log = logging.getLogger("pysos.replicate")


class FollowError(Error):
    """The follower cannot start or cannot go on (message: one line, the cause)."""


class FatalError(FollowError):
    """DIR cannot follow the remote any more (exit 1)."""


class Diverged(FatalError):
    """DIR's copy has what the replica lacks: ``--resync`` replaces it, else exit 1."""


class Interrupted(Exception):
    """SIGINT/SIGTERM (``stop``) arrived during a step, which was abandoned between two
    files or two requests: DIR is as a kill there would leave it (a restart resumes)."""


def _resync_hint(directory: str) -> str:
    return (f"follow it into a new directory, or run 'pysos follow URL {directory} --resync' to "
            "discard this copy and copy the replica afresh")


def _unsafe(exc: files.NotRegularFile) -> FatalError:
    return FatalError(f"{exc.path} is {exc.what}, which the follower did not make: it never reads or "
                      "writes through one; stopping (remove it, then run 'pysos follow' again)")


def state_dir(directory: str) -> str:
    return os.path.abspath(directory).rstrip(os.sep) + ".follow"


class _Guarded:
    """The client as a :class:`Follower` uses it: before and after every request, the
    follower checks that it may go on (:meth:`Follower.check`)."""

    def __init__(self, follower: "Follower", client: Any) -> None:
        self.follower, self.client = follower, client
        self.location, self.counters = client.location, client.counters

    def get(self, name: str, **options: Any) -> Any:
        self.follower.check()
        found = self.client.get(name, **options)
        self.follower.check()
        return found


class Follower:
    """Keeps one directory a copy of one replica (see the module docstring).

    ``stop``: once set, the step under way is abandoned at its next file or request
    (:class:`Interrupted`). ``resync``: a copy that has diverged from the replica is
    replaced by the replica's (:meth:`_set_aside`) instead of stopping the follower.
    """

    def __init__(self, directory: str | os.PathLike, client: Any, *,  # an S3, or one with its methods
                 stop: threading.Event | None = None, resync: bool = False) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        self.client = _Guarded(self, client)
        self.stop = stop or threading.Event()
        self.resync = resync
        self.identity: tuple[int, int] | None = None  # DIR's (device, inode) once made
        self.url = str(client.location)
        self.etag: str | None = None
        self.body: dict | None = None  # the remote commit DIR holds now
        self.lineage: str | None = None
        # file name -> how many of its first bytes are known to be the remote's (checked
        # this run); a file is checked once, its new bytes as they come
        self.trusted: dict[str, int] = {}
        self.polls = self.not_modified = self.steps = 0
        self._locks: list[locks.FileLock] = []

    # --- start and stop ---------------------------------------------------------------

    def check(self) -> None:
        """Raise :class:`Interrupted` if asked to stop, :class:`FatalError` if DIR's path no
        longer leads to the directory this follower made or found (renamed away, deleted,
        replaced): it then writes nothing into whatever has the name now. Called before and
        after every request and before a MANIFEST swap: one ``stat``."""
        if self.stop.is_set():
            raise Interrupted()
        if self.identity is None:
            return
        try:
            if files.identity(self.directory) == self.identity:
                return
        except OSError:
            pass
        raise FatalError(f"{self.directory} was moved, deleted or replaced while being followed: stopping, "
                         "writing nothing into what has that name now (run 'pysos follow' again to follow into it)")

    def start(self) -> None:
        """Read the remote (a bad URL, bucket or credentials: RemoteError before DIR is
        touched), claim DIR (refusing one this follower did not make), lock it, bring it up
        to date."""
        found = self._read()
        if found is None:
            raise FollowError(f"{self.url} holds no pysos replica (no MANIFEST there)")
        files.makedirs(self.directory)
        self.identity = files.identity(self.directory)
        try:
            self._start(found)
        except files.NotRegularFile as exc:
            self.close()
            raise _unsafe(exc) from None

    def _start(self, found: tuple[bytes, str]) -> None:
        fresh = self._check_ours()
        writer = locks.FileLock(self.directory, locks.WRITER)
        try:
            writer.acquire(timeout=0.0, note="follow " + self.url)
        except LockedError as exc:
            raise FollowError(str(exc)) from None
        self._locks.append(writer)
        compact = locks.FileLock(self.directory, locks.COMPACT)
        try:
            compact.acquire(timeout=0.0)
        except LockedError as exc:
            self.close()
            raise FollowError(str(exc)) from None
        self._locks.append(compact)
        for name in files.listdir(self.directory):
            if name.endswith(_TEMP):  # a fetch or a check that a kill interrupted
                files.unlink(os.path.join(self.directory, name))
        if fresh:
            files.makedirs(state_dir(self.directory))
            self._check_state_dir()
            files.atomic_write(os.path.join(state_dir(self.directory), "state.json"),
                               orjson.dumps({"url": self.url}) + b"\n")
            files.atomic_write(os.path.join(self.directory, MARKER), orjson.dumps({"url": self.url}) + b"\n")
        else:
            self._check_not_ahead(remote.decode(found[0], self.url + remote.MANIFEST))
        self._step(found)

    def _check_not_ahead(self, body: dict) -> None:
        """Refuse a DIR that has what the replica does not: a writer changed it since (a
        promoted copy), or the replica went back to an older copy. Following would replace
        those changes."""
        try:
            local = manifest.read(self.directory)
        except FileNotFoundError:
            return  # a first copy under way
        sizes = {e["name"]: e["size"] for e in body["segments"]}
        if body["tail"] is not None:
            sizes[body["tail"]["name"]] = body["tail"]["size"]
        newest = local.segments[-1]
        if local.generation > body["store"]["generation"] or self._size(newest) > sizes.get(newest, -1) >= 0:
            if self.resync:
                self._set_aside(local, body)
                return
            self.close()
            raise FollowError(
                f"{self.directory} has changes the replica at {self.url} does not (was it opened for "
                f"writing, or did the replica go back to an older copy?): not following it; "
                + _resync_hint(self.directory)
            )

    def close(self) -> None:
        for lock in reversed(self._locks):
            lock.release()
        self._locks.clear()

    def _check_ours(self) -> bool:
        """True if DIR is new (empty); FollowError unless it is a copy we are making or made."""
        names = [n for n in files.listdir(self.directory) if n not in recovery._LOCK_FILES]
        if not names:
            return True
        self._check_state_dir()
        try:
            state = orjson.loads(files.read_file(os.path.join(state_dir(self.directory), "state.json")))
        except files.NotRegularFile:
            raise
        except (OSError, ValueError):
            state = {}
        ours = isinstance(state, dict) and state.get("url") == self.url
        if ours and os.path.exists(self.directory.rstrip(os.sep) + ".replica"):
            raise FollowError(f"{self.directory} is replicated itself ({self.directory}.replica exists): "
                              "it is a primary now, not a follower's copy")
        if not ours or (manifest.NAME not in names and MARKER not in names):
            raise FollowError(f"{self.directory} is not empty and not a follower's copy of {self.url}: "
                              "follow into a new or empty directory")
        return False

    def _check_state_dir(self) -> None:
        """``DIR.follow`` is a directory itself, not a link to one (written into, it would
        put the follower's state wherever the link leads)."""
        path = state_dir(self.directory)
        try:
            mode = files.lstat(path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(mode):
            what = "a symbolic link" if stat.S_ISLNK(mode) else "not a directory"
            raise files.NotRegularFile(path, what, f"{path}: is {what}")

    # --- one poll -----------------------------------------------------------------------

    def poll(self) -> bool:
        """One conditional GET of the remote MANIFEST, and a step if it changed (True).
        Raises RemoteError/OSError/CorruptionError: DIR is then unchanged but for verified
        whole units, and the next poll goes on from there."""
        found = self._read(self.etag)
        if found is None:
            self.not_modified += 1
            return False
        try:
            self._step(found)
        except files.NotRegularFile as exc:
            raise _unsafe(exc) from None
        return True

    def _read(self, etag: str | None = None) -> tuple[bytes, str] | None:
        """The remote MANIFEST; None if it is still ``etag`` (304) or there is none."""
        self.polls += 1
        try:
            return self.client.get(remote.MANIFEST, if_none_match=etag)
        except NotFound:
            if etag is not None:
                raise RemoteError(f"{self.url}: the replica's MANIFEST disappeared") from None
            return None

    def _step(self, found: tuple[bytes, str]) -> None:
        for _ in range(8):
            data, etag = found
            body = remote.decode(data, self.url + remote.MANIFEST)
            try:
                self._apply(body)
                break
            except Diverged:
                if not self.resync:
                    raise
                self._set_aside(manifest.read(self.directory), body)  # then apply it again
            except NotFound:  # retention deleted an object of this commit: a newer one is there
                again = self._read()
                if again is None:
                    raise RemoteError(f"{self.url}: the replica's MANIFEST disappeared") from None
                found = again
        else:
            raise RemoteError(f"{self.url}: objects keep disappearing (retention deletes them as we fetch)")
        self.etag, self.body = etag, body
        self.steps += 1

    def _apply(self, body: dict) -> None:
        if body["lineage"] != self.lineage:
            if self.lineage is not None:
                log.warning("pysos follow: %s now holds lineage %s (was %s): checking every file again",
                            self.url, body["lineage"], self.lineage)
            self.trusted.clear()
            self.lineage = body["lineage"]
        if body["tail"] is None:
            return  # a replica with no commit of a store yet
        try:
            local: Manifest | None = manifest.read(self.directory)
        except FileNotFoundError:
            local = None
        if local is not None and local.kind != body["kind"]:
            raise FatalError(f"{self.url} now holds a {body['kind']}, {self.directory} a {local.kind}")
        newest = local.segments[-1] if local is not None else None
        named = set(local.segments) if local is not None else set()
        kind = body["kind"]
        wanted = [(e["name"], e["size"], e["parts"]) for e in body["segments"]]
        wanted.append((body["tail"]["name"], body["tail"]["size"], body["tail"]["parts"]))
        for name, size, parts in wanted:
            if sum(part[1] for part in parts) != size:
                raise CorruptionError(f"{self.url}: the commit's parts of {name} do not add up to its size")
            if name == newest or (name not in named and self._size(name)):
                self._grow(name, size, parts, kind, visible=name == newest)
            elif self.trusted.get(name) != size:  # a file we have not checked, or a new one
                self._fetch(name, size, parts, kind, "segment", visible=name in named)
        for entry in body["segments"]:
            hint = entry.get("hint")
            name = segment.hint_name(entry["name"])
            if hint and self.trusted.get(name) != hint[1]:
                self._fetch(name, hint[1], [hint], kind, entry["name"], visible=entry["name"] in named)
        store = body["store"]
        version = local.version if local is not None else manifest.VERSION_ONE
        new = Manifest(kind, store["generation"], tuple(name for name, _, _ in wanted),
                       tuple(e["size"] for e in body["segments"]), store["next_segment"],
                       tuple(store["compactions"]), store.get("version", version), store.get("codec", "json"))
        if new == local:
            return
        self._publish(new)
        if local is None:
            files.unlink(os.path.join(self.directory, MARKER))  # DIR opens as a store from now on
        # As the compactor: only after the swap, delete what the MANIFEST no longer names.
        for name in recovery._remove_unnamed(self.directory, new):
            self.trusted.pop(name, None)

    def _fetch(self, name: str, size: int, parts: list, kind: str, check: str, *, visible: bool) -> None:
        """Make ``name`` the remote's file: fetched whole, checked, renamed into place. A
        file readers may read already (``visible``: the local MANIFEST names it, or its
        segment) is only checked: the replica names the same file, or our copy has diverged
        (:class:`Diverged`); replacing it under readers would show them a mix."""
        self.check()
        if visible:
            try:
                same = _parts_match(os.path.join(self.directory, name), size, parts)
            except FileNotFoundError:
                same = None  # a hint we did not have: readers read none meanwhile
            if same is False:
                raise Diverged(f"{self.directory}/{name} differs from the replica's file of that name (the "
                               "replica was taken over by another copy of the store); " + _resync_hint(self.directory))
            if same:
                self.trusted[name] = size
                return
        _restore_file(self.client, self.directory, kind, name, size, parts, check)
        self.trusted[name] = size

    def _publish(self, new: Manifest) -> None:
        """The compactor's MANIFEST swap, in DIR only if DIR is still the directory we follow."""
        files.fsync_dir(self.directory)  # the files it names, before the MANIFEST that names them
        self.check()
        with locks.FileLock(self.directory, locks.MANIFEST):
            manifest.write(self.directory, new)

    def _set_aside(self, local: Manifest, body: dict) -> None:
        """``--resync``: DIR's copy has diverged from the replica. Publish the same state
        under fresh segment names (hard links: the very same files), numbered above every
        name DIR or the replica uses, and delete the old names; the replica's commit is
        then applied as onto an empty copy: its files are fetched whole under their own
        names, which the published MANIFEST no longer names, and published with the next
        swap. Readers see the old state (under either set of names), then the new one."""
        log.warning("pysos follow: %s has what the replica at %s lacks; --resync: replacing it with a "
                    "fresh copy of the replica", self.directory, self.url)
        numbers = [segment.segment_number(n) for n in files.listdir(self.directory)]
        numbers += [segment.segment_number(e["name"]) for e in body["segments"]]
        numbers += [segment.segment_number(body["tail"]["name"]) if body["tail"] else None]
        first = max([local.next_number, body["store"]["next_segment"], *(n + 1 for n in numbers if n is not None)])
        names = tuple(segment.segment_name(first + i) for i in range(len(local.segments)))
        for old, fresh in zip(local.segments, names):
            self.check()
            files.link(os.path.join(self.directory, old), os.path.join(self.directory, fresh))
        aside = dataclasses.replace(local, segments=names, next_number=first + len(names))
        self._publish(aside)
        recovery._remove_unnamed(self.directory, aside)
        self.trusted.clear()

    def _size(self, name: str) -> int:
        try:
            return files.lstat(os.path.join(self.directory, name)).st_size
        except FileNotFoundError:
            return 0

    def _grow(self, name: str, size: int, parts: list, kind: str, *, visible: bool) -> None:
        """Bring a file we have a prefix of (maybe all) to the remote's ``size`` bytes in
        place: fetch only the bytes we lack, check every part's CRC over our bytes and those,
        check that they are whole units, append them in one write."""
        path = os.path.join(self.directory, name)
        trusted = self.trusted.get(name, 0)
        fd = files.open_rw(path)
        try:
            have = files.size(fd)
            if have == size and trusted == size:
                return
            if have > size:
                return self._diverged(name, size, parts, kind, visible,
                                      f"{have} bytes here, {size} in the remote")
            if have > trusted:
                self.check()  # between files: a restart checks a long local file in place
            new, offset = [], 0
            for part in parts:
                start, end = offset, offset + part[1]
                offset = end
                if end <= trusted:
                    continue
                ours = files.pread(fd, min(end, have) - start, start) if start < have else b""
                need = end - max(start, have)
                theirs = b""
                if need > 0:
                    theirs = self.client.get(part[0], byte_range=(-need, None))[0]
                    if len(theirs) != need:
                        raise RemoteError(f"{self.url}: {part[0]} is shorter than the commit says")
                if "%08x" % zlib.crc32(theirs, zlib.crc32(ours)) != part[2]:
                    return self._diverged(name, size, parts, kind, visible,
                                          f"the bytes {start}-{end} do not match the remote's")
                new.append(theirs)
            data = b"".join(new)
            self._check_units(fd, name, trusted, have, data)
            if data:
                files.write_all_at(fd, data, have)  # one write: readers see whole units or a torn tail
                files.fsync(fd)
            self.trusted[name] = size
        finally:
            files.close(fd)

    def _check_units(self, fd: int, name: str, trusted: int, have: int, data: bytes) -> None:
        """Our bytes from ``trusted`` (the end of a unit), then ``data``, are whole units
        (records and complete batches, each record's checksum right): our bytes are
        scanned in place, the last unit we have a part of plus ``data`` in a temp file."""
        def fail(scanner: segment.Scanner, base: int) -> CorruptionError:
            at, reason = scanner.problem or (scanner.good_end, "unfinished record or batch")
            return CorruptionError(f"{self.url}: {name}: {reason} at byte {base + at}")

        ours = segment.Scanner(fd, trusted, have)
        for _ in ours:
            pass
        if ours.problem is not None:
            raise fail(ours, 0)
        start = ours.good_end
        if start == have and not data:
            return
        temp = os.path.join(self.directory, name + _TEMP)
        written = files.create_fresh(temp)
        try:
            try:
                files.write_all(written, files.pread(fd, have - start, start) + data)
            finally:
                files.close(written)
            check = files.open_read(temp)
            try:
                scanner = segment.Scanner(check)
                for _ in scanner:
                    pass
            finally:
                files.close(check)
            if scanner.problem is not None or scanner.good_end != scanner.end:
                raise fail(scanner, start)
        finally:
            files.unlink(temp)

    def _diverged(self, name: str, size: int, parts: list, kind: str, visible: bool, why: str) -> None:
        """Our copy of ``name`` is not a prefix of the remote's: fetch it whole, unless
        readers may read it (``visible``: then it cannot be replaced under them)."""
        if visible:
            raise Diverged(
                f"{self.directory}/{name} has bytes the replica does not ({why}): the replica was "
                f"taken over by an older copy of the store; " + _resync_hint(self.directory)
            )
        log.warning("pysos follow: %s: %s; fetching it again", name, why)
        self.trusted.pop(name, None)
        _restore_file(self.client, self.directory, kind, name, size, parts, "segment")
        self.trusted[name] = size

    def stats(self) -> dict:
        return {"seq": self.body and self.body["seq"], "polls": self.polls,
                "not_modified": self.not_modified, "steps": self.steps, **self.client.counters.snapshot()}
