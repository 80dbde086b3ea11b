"""The MANIFEST: which segments make up the store, in order, and what kind of store it is.

One line of JSON, replaced atomically (temp file, fsync, rename, fsync of the directory)::

    {"crc":"89abcdef","format":"pysos","generation":7,"kind":"dict","sealed_sizes":[8123],
     "segments":["seg-00000003.jsonl","seg-00000009.jsonl"],"version":1}

A store whose values are written by a codec other than json (see :mod:`pysos.codec`)
names it (``"codec":"tagged"``) and is version 3 (:func:`version_for`).

``crc`` is the CRC-32 of the object without its ``crc`` member, encoded as compact JSON
with sorted keys. The last listed segment is the one the writer appends to; ``sealed_sizes``
gives the exact size of each of the others, so a sealed segment cut short (even at a
line boundary) or grown is caught.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field, replace

import orjson

from ..errors import CorruptionError, FormatError
from . import files, segment

NAME = "MANIFEST"
FORMAT = "pysos"
VERSION_ONE = 1  # no record expires
VERSION_EXPIRY = 2  # records may carry an expiry ("x"): older pysos must not open it
# the store's values are written by a codec other than json ("codec", see pysos.codec):
# older pysos must not open it (it would serve tagged objects as plain dicts, and write
# plain dicts that read back as tags)
VERSION_CODEC = 3
VERSIONS = (VERSION_ONE, VERSION_EXPIRY, VERSION_CODEC)
VERSION = VERSION_CODEC  # the newest version this pysos reads and writes
CODECS = ("json", "tagged")  # pysos.codec's names; "json" is never written (no member)
KINDS = ("dict", "list")


@dataclass(frozen=True)
class Manifest:
    kind: str
    generation: int
    segments: tuple[str, ...] = field(default_factory=tuple)
    sealed_sizes: tuple[int, ...] = field(default_factory=tuple)  # one per segment but the newest
    # Segment numbers only grow: a number once named is never given to another file, so a
    # process that knew the old file can never mistake a new one for it.
    next_number: int = 1
    # (compactions so far, bytes they reclaimed in all, bytes the last one reclaimed): so
    # every process's stats() sees compactions that another process (the daemon) made.
    compactions: tuple[int, int, int] = (0, 0, 0)
    # 1 until the store holds an expiring record; then 2 (see FORMAT.md), for good; 3
    # from creation for a store whose codec is not json.
    version: int = VERSION_ONE
    codec: str = "json"

    def size_of(self, name: str) -> int | None:
        """The recorded size of a sealed segment (None for the newest, which grows)."""
        at = self.segments.index(name)
        return self.sealed_sizes[at] if at < len(self.sealed_sizes) else None

    def rotated(self, sealed_size: int, new_segment: str) -> "Manifest":
        """The newest segment sealed at ``sealed_size`` bytes, ``new_segment`` the new newest."""
        return Manifest(
            self.kind,
            self.generation + 1,
            self.segments + (new_segment,),
            self.sealed_sizes + (sealed_size,),
            _after(self.next_number, [new_segment]),
            self.compactions,
            self.version,
            self.codec,
        )

    def with_expiry(self) -> "Manifest":
        """The same store, marked (version 2) as one whose records may expire."""
        return replace(self, generation=self.generation + 1, version=max(self.version, VERSION_EXPIRY))

    def replace_run(
        self, at: int, count: int, outputs: list[str], output_sizes: list[int], reclaimed: int = 0
    ) -> "Manifest":
        """Sealed segments ``[at, at + count)`` replaced by a compaction's outputs."""
        if at + count >= len(self.segments):
            raise ValueError("only sealed segments can be replaced")
        segments = self.segments[:at] + tuple(outputs) + self.segments[at + count :]
        sizes = self.sealed_sizes[:at] + tuple(output_sizes) + self.sealed_sizes[at + count :]
        done, total, _ = self.compactions
        return Manifest(
            self.kind,
            self.generation + 1,
            segments,
            sizes,
            _after(self.next_number, outputs),
            (done + 1, total + reclaimed, reclaimed),
            self.version,
            self.codec,
        )


def _after(next_number: int, names) -> int:
    """The next free segment number once ``names`` are taken."""
    numbers = [segment.segment_number(name) for name in names]
    return max([next_number] + [n + 1 for n in numbers if n is not None])


def _body(manifest: Manifest) -> dict:
    done, total, last = manifest.compactions
    return {
        "compactions": {"count": done, "last_reclaimed_bytes": last, "reclaimed_bytes": total},
        "format": FORMAT,
        "generation": manifest.generation,
        "kind": manifest.kind,
        "next_segment": manifest.next_number,
        "sealed_sizes": list(manifest.sealed_sizes),
        "segments": list(manifest.segments),
        "version": manifest.version,
        **({} if manifest.codec == "json" else {"codec": manifest.codec}),
    }


def version_for(codec: str, expiring: bool = False) -> int:
    """The MANIFEST version of a store with ``codec`` that may (``expiring``) hold expiring records."""
    if codec != "json":
        return VERSION_CODEC
    return VERSION_EXPIRY if expiring else VERSION_ONE


def _checksum(body: dict) -> str:
    return "%08x" % zlib.crc32(orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


def encode(manifest: Manifest) -> bytes:
    body = _body(manifest)
    body["crc"] = _checksum(body)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"


def decode(data: bytes, path: str) -> Manifest:
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptionError(f"{path}: MANIFEST is not valid JSON ({exc}) at byte 0") from None
    if type(body) is not dict or body.get("format") != FORMAT:
        raise FormatError(f"{path}: not a pysos MANIFEST")
    version = body.get("version")
    if version not in VERSIONS or type(version) is not int:
        raise FormatError(
            f"{path}: unknown pysos format version {version!r} (this pysos reads 1 to 3)"
        )
    crc = body.pop("crc", None)
    if crc != _checksum(body):
        raise CorruptionError(f"{path}: MANIFEST checksum mismatch at byte 0")
    kind, generation, segments = body.get("kind"), body.get("generation"), body.get("segments")
    sizes, next_number = body.get("sealed_sizes"), body.get("next_segment")
    compactions = body.get("compactions")
    codec = body.get("codec", "json")
    if (codec == "json") != (version < VERSION_CODEC) or ("codec" in body and codec == "json"):
        raise CorruptionError(f"{path}: MANIFEST version {version} with codec {codec!r} at byte 0")
    if codec not in CODECS:
        raise FormatError(f"{path}: unknown codec {codec!r} (this pysos knows {', '.join(CODECS)})")
    try:
        counts = tuple(compactions[k] for k in ("count", "reclaimed_bytes", "last_reclaimed_bytes"))
    except (TypeError, KeyError):
        counts = None
    if (
        counts is None
        or not all(type(n) is int for n in counts)
        or 
        type(next_number) is not int
        or kind not in KINDS
        or type(generation) is not int
        or type(segments) is not list
        or not segments
        or type(sizes) is not list
        or len(sizes) != len(segments) - 1
    ):
        raise CorruptionError(f"{path}: MANIFEST fields are malformed at byte 0")
    for name in segments:
        if segment.segment_number(name) is None:
            # Never a path to follow: "../other/seg-1.jsonl" or "/etc/x" would have pysos
            # read, compact and then delete a file outside the store.
            raise CorruptionError(
                f"{path}: MANIFEST names {name!r}, which is not a segment file name of this "
                "directory (at byte 0); pysos leaves it alone"
            )
    if len(set(segments)) != len(segments) or not all(type(n) is int and n >= 0 for n in sizes):
        raise CorruptionError(f"{path}: MANIFEST lists a segment twice or a bad size at byte 0")
    return Manifest(kind, generation, tuple(segments), tuple(sizes), next_number, counts, version, codec)


def read(directory: str) -> Manifest:
    """The MANIFEST of ``directory``; ``FileNotFoundError`` if it has none."""
    path = os.path.join(directory, NAME)
    return decode(files.read_file(path), path)


def is_current(directory: str, expected: Manifest) -> bool:
    """True if the MANIFEST on disk is ``expected`` (after a failed write: did the rename happen?)."""
    try:
        return read(directory) == expected
    except Exception:
        return False


def read_pinned(directory: str) -> tuple[Manifest, tuple[int, int, int], int]:
    """The MANIFEST, its :func:`stamp`, and an open fd on it that the caller keeps.

    The stamp comes from the very file that was read. While the fd is open the file's
    inode cannot be reused by a later MANIFEST: without that, two MANIFESTs written in
    one tick of a coarse file-system clock (4 ms on ext4) with the same size can share
    (inode, mtime, size), and a reader would never notice the second one.
    """
    path = os.path.join(directory, NAME)
    fd = files.open_read(path)
    try:
        st = os.fstat(fd)
        data = files.pread(fd, st.st_size, 0)  # a MANIFEST never changes once renamed in
        return decode(data, path), (st.st_ino, st.st_mtime_ns, st.st_size), fd
    except BaseException:
        os.close(fd)
        raise


def write(directory: str, manifest: Manifest) -> None:
    files.atomic_write(os.path.join(directory, NAME), encode(manifest))


def stamp(directory: str) -> tuple[int, int, int] | None:
    """A cheap fingerprint that changes whenever the MANIFEST is replaced (one ``stat``)."""
    try:
        st = files.lstat(os.path.join(directory, NAME))
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)
