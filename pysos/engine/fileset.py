"""The open segment files of one store handle: fds, read-only maps, pins, and the finalizer.

A handle keeps every segment its MANIFEST names open (an fd each), so a compaction that
unlinks a retired segment never pulls a file from under a read. Sealed segments are also
mapped, so a read slices memory instead of calling ``pread``. Some fds outlive their
segment's place in the MANIFEST (``held``): the MANIFEST file we read (its link count tells
a reader when a new one replaced it) and retired segments that a running snapshot
iteration may still read (pinned by :meth:`SegmentFiles.pin`).
"""

from __future__ import annotations

import mmap
import os
import weakref
from typing import Any

from ..errors import CorruptionError
from ..segments import files


class SegmentFiles:
    """fds and maps by segment number; the ``fds`` and ``maps`` dicts are never rebound, so the
    read path may keep references to them."""

    def __init__(self, directory: str):
        self.directory = directory
        self.fds: dict[int, int] = {}  # segment number -> fd
        # segment number -> a read-only map of the segment's first len(map) bytes: reads
        # slice it instead of calling pread; only segments in fds, only bytes that no one
        # ever truncates (sealed segments; a writer's own newest segment)
        self.maps: dict[int, mmap.mmap] = {}
        # "manifest" -> the MANIFEST we read (pins its inode, see manifest.read_pinned);
        # segment number -> a retired segment that a snapshot iteration may still read
        self.held: dict[Any, int] = {}
        self.pins = 0  # running snapshot iterations

    def add(self, opened: dict[int, int]) -> None:
        self.fds.update(opened)

    def open_all(self, numbers_and_paths: list[tuple[int, str]]) -> dict[int, int]:
        """Open more segments for reading, all or none; return ``{number: fd}`` (not yet added)."""
        opened: dict[int, int] = {}
        try:
            for number, path in numbers_and_paths:
                opened[number] = files.open_read(path)
        except BaseException:
            for fd in opened.values():
                files.close(fd)
            raise
        return opened

    def retire(self, number: int) -> None:
        """A compaction replaced this segment: close it, or keep it while iterations run."""
        self.unmap(number)
        fd = self.fds.pop(number)
        if self.pins:
            self.hold(number, fd)
        else:
            files.close(fd)

    def drop_all(self) -> None:
        """Before a full reload: give up every segment (held while iterations run)."""
        self.unmap_all()
        if self.pins:  # running iterations may still read the old files
            for number, fd in self.fds.items():
                self.held.setdefault(number, fd)
            self.fds.clear()
        else:
            self.close_segments()

    def close_segments(self) -> None:
        self.unmap_all()
        for fd in self.fds.values():
            try:
                files.close(fd)
            except OSError:
                pass
        self.fds.clear()

    def close_all(self) -> None:
        self.close_segments()
        _close_all(self.held)

    def hold(self, what: Any, fd: int) -> None:
        old = self.held.pop(what, None)
        if old is not None:
            files.close(old)
        self.held[what] = fd

    def held_segment(self, number: int) -> int:
        fd = self.held.get(number)
        if fd is None:
            raise CorruptionError(f"{self.directory}: index points into a retired segment {number}")
        return fd

    def has(self, number: int) -> bool:
        """Whether a location in segment ``number`` can still be read (open, or pinned)."""
        return number in self.fds or number in self.held

    def pin(self) -> None:
        """An iteration took a snapshot of locations: keep retired segments readable."""
        self.pins += 1

    def unpin(self) -> None:
        self.pins -= 1
        if not self.pins:
            for what in [w for w in self.held if w != "manifest"]:
                files.close(self.held.pop(what))

    def sizes(self) -> dict[int, int]:
        return {number: files.size(fd) for number, fd in self.fds.items()}

    def map(self, number: int, fd: int, want: int) -> mmap.mmap | None:
        """The map of segment ``number``, made (again) to cover ``want`` bytes if it covers fewer."""
        mapped = self.maps.get(number)
        if want == 0 or (mapped is not None and len(mapped) >= want):
            return mapped
        try:
            new = mmap.mmap(fd, want, access=mmap.ACCESS_READ)
        except (OSError, ValueError):  # no address space, a filesystem that cannot map: pread
            return mapped
        self.unmap(number)
        self.maps[number] = new
        return new

    def unmap(self, number: int) -> None:
        mapped = self.maps.pop(number, None)
        if mapped is not None:
            mapped.close()

    def unmap_all(self) -> None:
        for number in list(self.maps):
            self.unmap(number)

    def release_when_collected(self, owner: object, writer_lock) -> weakref.finalize:
        """For a handle that is never closed: give back its fds and writer lock when ``owner``
        is garbage-collected (``detach()`` the result on close)."""
        return weakref.finalize(owner, _release, self.fds, self.held, writer_lock)


def _close_all(fds: dict) -> None:
    for fd in list(fds.values()):
        try:
            os.close(fd)
        except OSError:
            pass
    fds.clear()


def _release(fds: dict, held: dict, writer_lock) -> None:
    _close_all(fds)
    _close_all(held)
    if writer_lock is not None:
        writer_lock.release()
