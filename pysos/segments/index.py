"""The in-memory index: key -> location of the key's newest record. Values never live in RAM.

A location is one int packing (segment number, byte offset, record length), so each key
costs one dict slot and one int object.
"""

from __future__ import annotations

SEGMENT_SHIFT = _SEGMENT_SHIFT = 72
_OFFSET_SHIFT = 32  # fixed: hint files store offset << 32 | length
LENGTH_MASK = _LENGTH_MASK = (1 << 32) - 1
OFFSET_MASK = _OFFSET_MASK = (1 << 40) - 1



def pack(segment: int, offset: int, length: int) -> int:
    return (segment << _SEGMENT_SHIFT) | (offset << _OFFSET_SHIFT) | length


def unpack(location: int) -> tuple[int, int, int]:
    """(segment number, offset, length)."""
    return location >> _SEGMENT_SHIFT, (location >> _OFFSET_SHIFT) & _OFFSET_MASK, location & _LENGTH_MASK


def segment_of(location: int) -> int:
    return location >> _SEGMENT_SHIFT


def length_of(location: int) -> int:
    return location & _LENGTH_MASK


def segment_base(segment: int) -> int:
    """``pack(segment, 0, 0)``: OR it with ``offset << 32 | length`` to get a location."""
    return segment << _SEGMENT_SHIFT


def local_part(location: int) -> int:
    """``offset << 32 | length``: the location within its segment, as hint files store it."""
    return location & ((1 << _SEGMENT_SHIFT) - 1)
