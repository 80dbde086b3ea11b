"""A read-only handle: follows the writer's changes and compactions, never changes a file.

Following is two steps, both cheap when nothing happened: adopt a new MANIFEST if one
replaced the file we read (one ``fstat``: we hold that file open, and a rename over it
drops its link count to 0), then index the records written to the newest segment since
(one ``fstat`` of it). A reader never maps the newest segment: the writer may cut it, and
touching a mapped page past the end of a file kills the process (SIGBUS) where ``pread``
would return short.
"""

from __future__ import annotations

import os

from contextlib import contextmanager
from typing import Any, Iterator

from ..segments import clock, files, manifest, recovery
from ..segments.manifest import Manifest
from .core import _RELOAD_RETRIES, Store, _number
from .torn import cut_short


class Reader(Store):
    """The read-only handle of a store (any number of them, in any processes)."""

    readonly = True

    def _find_manifest(self, kind: str | None, lock_timeout: float) -> Manifest:
        return recovery.existing_manifest(self.directory, kind)

    def follow(self, force: bool = False) -> None:
        """Bring the index up to date with the writer's latest changes (every call, or once
        per refresh_interval)."""
        if self._torn:  # see pysos.engine.torn
            self.mend()
            force = True
        try:
            self._follow(force)
        except BaseException as exc:
            if cut_short(exc):  # a tail half-indexed, the gate raised but not aimed
                self.tear()
            raise

    def _follow(self, force: bool) -> None:
        if self.refresh_interval:
            now = clock.monotonic()
            if not force and now < self.look_due:  # (not ``due``: a deadline alone needs no look)
                return
            self.due = self.look_due = now + self.refresh_interval
        for _ in range(_RELOAD_RETRIES):
            try:
                if self._manifest_replaced():
                    self._check_identity()  # (a deleted store's MANIFEST is "replaced" too)
                    new, stamp, pin = manifest.read_pinned(self.directory)
                    self.segment_files.hold("manifest", pin)
                    self._adopt(new, stamp)
                    self._check_identity()  # what we read was this directory's
                if files.end(self._fds[self._active]) > self._active_end:
                    self._catch_up_tail()
                break
            except FileNotFoundError:
                continue
        else:
            self._check_identity()
            self._load(recovery.existing_manifest(self.directory, self.kind))
        if self.refresh_interval and self.deadlines.waiting():  # look again by the next
            # deadline, if sooner, even with no key left (see pysos.engine.expiry)
            self.deadlines.tidy()
            self.aim(clock.wall())

    def enter(self, write: bool = False) -> None:
        """:meth:`Store.enter`; between two refreshes, a reader looks at its files before it
        drops keys due, in case the writer gave them new deadlines since."""
        self.check_writable() if write else self.check_open()
        expiring = self._expiring
        now = clock.wall()  # once: a deadline passing between two reads would be dropped unseen
        self.follow(force=bool(expiring) and self.deadlines.first_passed(now))
        if expiring:
            self.expire(now)

    def enter_key(self, key: Any, write: bool = False) -> None:
        """:meth:`Store.enter` for an operation on ``key`` alone: between two refreshes, a
        passed deadline matters only if it is ``key``'s (the next refresh drops the rest),
        and then the reader follows first, in case the writer gave the key a new deadline
        since (a session kept alive). One that follows at every operation drops every key
        due, as ``enter`` does."""
        self.check_writable() if write else self.check_open()
        self.follow()
        expiring = self._expiring
        if expiring:
            now = clock.wall()  # (one reading for the check and the drop: see enter)
            if self.refresh_interval:
                deadline = expiring.get(key)
                if deadline is None or deadline > now:
                    return
                self.follow(force=True)
            self.expire(now)

    def refresh(self) -> None:
        """Follow the files now, after checking that our path still leads to the directory
        we opened (the store there is what the caller asks for)."""
        self.check_open()
        self._check_identity()
        self.follow(force=True)

    def _forked(self, torn: bool) -> None:
        """A reader keeps working in a forked child; if another thread held its lock at the
        fork, that thread may have been half-way through an update: re-index once."""
        if torn:
            self.follow = self._reload_after_fork  # an instance attribute: the next follow only

    def _reload_after_fork(self, force: bool = False) -> None:
        del self.follow  # back to the method
        self.segment_files.close_all()
        self.tear()  # (a reload cut short is mended by the next follow)
        self.mend()

    def _manifest_replaced(self) -> bool:
        """Whether the MANIFEST we follow has been replaced since we read it.

        We hold open the file we read it from, so this is one ``fstat``: renaming a new
        MANIFEST over it drops its link count to 0 (POSIX, local filesystems). That is about
        half the cost of a ``stat`` by path on every read. Without a held file (the first
        read, or after a full reload) the stamp comparison decides.
        """
        pin = self.segment_files.held.get("manifest")
        if pin is not None and self._manifest_stamp is not None:
            return os.fstat(pin).st_nlink == 0
        return manifest.stamp(self.directory) != self._manifest_stamp

    def _catch_up_tail(self) -> None:
        old_end = self._active_end
        self._active_end = self._index_tail(self._fds[self._active], old_end, self._on_keys_changed)
        self._disk_bytes += self._active_end - old_end
        self._live_bytes = None  # recomputed lazily: cheap enough for stats(), not per read

    def _index_new_records(self, appended: list[str]) -> None:
        """The rest of our newest segment (sealed by the rotation that named ``appended``),
        then each appended segment."""
        self._catch_up_tail()
        for name in appended:
            self._active = _number(name)
            self._active_end = 0
            self._catch_up_tail()

    def _adopt(self, new: Manifest, stamp=None) -> None:
        if self._replaced(new):
            self._load(new)
            return
        super()._adopt(new, stamp)
        self._live_bytes = None  # a reader indexed new records; a merge alone copies records byte for byte

    def _replaced(self, new: Manifest) -> bool:
        """Whether a segment both our MANIFEST and ``new`` name is another file now than the
        one we hold open: never within one store's history (numbers only grow), but a
        follower's ``--resync`` replaces its copy by the replica's, whose names may overlap
        (pysos.replicate.follow). Then we read the new files from scratch."""
        return any(not files.same_file(self._fds[_number(name)], self._path(name))
                   for name in set(self._manifest.segments).intersection(new.segments))

    # --- a reader refuses every change -------------------------------------------------------

    def write(self, key: Any, line: bytes, delete: bool) -> None:
        self.check_writable()

    def write_expiring(self, key: Any, line: bytes, deadline: float) -> None:
        self.check_writable()

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.check_writable()
        yield

    def seal(self) -> None:
        self.check_writable()
