"""Position keys and the in-memory order of a List.

A List stores each item under a *position key*; the list's order is the keys' order.
Keys compare as tuples (an int ``5`` is ``(5,)``): pysos writes only ints, but stores
written by pysos before 2.0 may hold arrays of ints, which are read and ordered as before
and replaced by ints when a renumbering covers them.

New keys come from :func:`place`, which keeps every key an int in
``[KEY_MIN, KEY_MAX]`` (at most 20 characters of JSON, whatever the insert pattern):

- ``append`` takes ``last + GAP`` and ``insert(0, v)`` ``first - GAP``;
- an insert between two neighbours takes the midpoint of their keys when there is room;
- when there is none, a *renumbering* spreads the keys of a crowded range evenly: the
  smallest aligned range of ``2**j`` keys around the insert whose items, with the new one,
  are at most ``2**j / DENSITY**j`` (the list-labelling scheme of Bender et al., "Two
  simplified algorithms for maintaining order in a list", 2002). The List writes the
  moved items' records in the same atomic batch as the insert: amortised O(log n)
  records per insert (measured: ~13 at 1,000 items, ~18 at 10,000, ~23 at 100,000
  for repeated middle inserts; 1 for appends, inserts at the front and random inserts).
On disk an int key is a JSON number and a tuple is a JSON array (see FORMAT.md).
"""

from __future__ import annotations

import math
from typing import Iterable, Union

Position = Union[int, tuple]
_MIN_REFILL = 4096  # keys moved at least when one end of Positions runs empty

KEY_MIN, KEY_MAX = -(2**62), 2**62 - 1  # well inside the 64-bit ints every JSON reader holds
KEY_CHARS = len(str(KEY_MIN))  # 20: the longest position key's JSON (the List's record limit counts it)
GAP = 2**16         # between keys that append / insert(0) take: 16 midpoints fit before a renumbering
DENSITY = 1.5       # of the renumbering thresholds: 2**j keys hold at most (2 / DENSITY)**j items


def as_tuple(key: Position) -> tuple:
    return (key,) if type(key) is int else key


def place(positions: "Positions", i: int) -> tuple[int, tuple[int, list[int]] | None]:
    """The key for a new item at index ``i`` (``0 <= i <= len``), and a renumbering to do first.

    Returns ``(key, None)`` when the key fits between the neighbours as they are, else
    ``(key, (start, keys))``: the items ``start .. start + len(keys) - 1`` must take
    ``keys`` (in order, same place in the order) before the new item takes ``key``.
    """
    n = len(positions)
    lo = as_tuple(positions[i - 1])[0] if i > 0 else None
    hi = as_tuple(positions[i])[0] if i < n else None
    if hi is None:
        if lo is None:
            return 0, None
        if lo + GAP <= KEY_MAX:
            return lo + GAP, None
        hi = KEY_MAX + 1
    elif lo is None:
        if hi - GAP >= KEY_MIN:
            return hi - GAP, None
        lo = KEY_MIN - 1
    if hi - lo > 1 and KEY_MIN <= (lo + hi) // 2 <= KEY_MAX:
        return (lo + hi) // 2, None
    return _renumber(positions, i)


def _renumber(positions: "Positions", i: int) -> tuple[int, tuple[int, list[int]]]:
    n = len(positions)
    if (n + 1) * GAP * 4 < KEY_MAX and (i == 0 or i == n):
        # An end ran into the edge of the key space (after ~2**46 appends of a queue):
        # centre the whole list again with GAP between keys, once.
        start = -((n + 1) // 2) * GAP
        keys = [start + k * GAP for k in range(n + 1)]
        return keys[i], (0, keys[:i] + keys[i + 1 :])
    offset = as_tuple(positions[i - 1] if i > 0 else positions[i])[0] - KEY_MIN
    span = KEY_MAX - KEY_MIN + 1  # 2**63
    low, s, e, size = KEY_MIN, 0, n, span  # the whole key space, if nothing smaller will do
    if 0 <= offset < span:
        for j in range(1, 63):
            at = KEY_MIN + ((offset >> j) << j)
            first, end = positions.index_of((at,)), positions.index_of((at + (1 << j),))
            if (end - first + 1) * DENSITY**j <= 1 << j:
                low, s, e, size = at, first, end, 1 << j
                break
    count = e - s + 1
    step = size // count
    keys = [low + step // 2 + k * step for k in range(count)]
    return keys[i - s], (s, keys[: i - s] + keys[i - s + 1 :])


class Positions:
    """The keys of a List in order: O(1) index, append, pop(), insert(0) and pop(0).

    Two Python lists back to back: ``_front`` holds the head of the sequence reversed,
    ``_back`` the rest. Both ends grow and shrink at the end of a list; when one end runs
    empty, a chunk of the other (at least 4096 keys, or sqrt(n)) is moved over, so popping
    from either end costs O(sqrt(n)) memmove amortised and never stalls for long. Inserts
    and deletes in the middle cost one memmove of at most half the keys.
    """

    __slots__ = ("_front", "_back")

    def __init__(self, keys: Iterable[Position] = ()):
        self._front: list[Position] = []
        self._back: list[Position] = list(keys)

    def __len__(self) -> int:
        return len(self._front) + len(self._back)

    def __getitem__(self, i: int) -> Position:
        """Item ``i`` for ``0 <= i < len``: callers normalise indexes."""
        front = self._front
        if i < len(front):
            return front[len(front) - 1 - i]
        return self._back[i - len(front)]

    def __iter__(self):
        yield from reversed(self._front)
        yield from self._back

    def insert(self, i: int, key: Position) -> None:
        front = self._front
        if i < len(front) or (i == 0 and self._back):
            front.insert(len(front) - i, key)
        else:
            self._back.insert(i - len(front), key)

    def set(self, i: int, key: Position) -> None:
        """Replace item ``i``'s key (``0 <= i < len``) by one that sorts in the same place."""
        front = self._front
        if i < len(front):
            front[len(front) - 1 - i] = key
        else:
            self._back[i - len(front)] = key

    def delete(self, i: int) -> None:
        front, back = self._front, self._back
        if i < len(front):
            j = len(front) - 1 - i
            if j == 0 and not back and len(front) > 1:
                self._refill_back()
                return self.delete(i)
            del front[j]
        else:
            j = i - len(front)
            if j == 0 and len(back) > 1:
                self._refill_front()
                return self.delete(i)
            del back[j]

    def _refill_size(self, available: int) -> int:
        """How many keys to move to an end that ran empty: enough that the O(n) memmove of
        the other list is paid once per many pops, few enough that no pop stalls for long
        (moving half of a million keys took ~28 ms; a bounded chunk takes ~2 ms)."""
        return max(1, min(available // 2, max(_MIN_REFILL, math.isqrt(len(self)))))

    def _refill_front(self) -> None:
        k = self._refill_size(len(self._back))
        self._front = self._back[:k][::-1] + self._front
        del self._back[:k]

    def _refill_back(self) -> None:
        k = self._refill_size(len(self._front))
        self._back = self._front[:k][::-1] + self._back
        del self._front[:k]

    def index_of(self, key: Position) -> int:
        """Where ``key`` is, or would go: binary search over the key order."""
        target = as_tuple(key)
        lo, hi = 0, len(self)
        while lo < hi:
            mid = (lo + hi) // 2
            if as_tuple(self[mid]) < target:
                lo = mid + 1
            else:
                hi = mid
        return lo


def sort_keys(keys: Iterable[Position]) -> list[Position]:
    return sorted(keys, key=as_tuple)
