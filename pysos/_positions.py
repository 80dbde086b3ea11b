"""Position keys and the in-memory order of a List.

A List stores each item under a *position key*; the list's order is the keys' order.
A key is an int, or a tuple of ints for an item placed between two neighbours whose
ints are adjacent; keys compare as tuples (``5`` is ``(5,)``). ``append`` takes
``last + 1``, ``insert(0, v)`` takes ``first - 1``, and an insert between ``a`` and ``b``
takes a key strictly between them, so no other item's key ever changes: every list
operation writes only the records of the items it adds, changes or removes.
On disk an int key is a JSON number and a tuple is a JSON array (see FORMAT.md).
"""

from __future__ import annotations

import math
from typing import Iterable, Union

Position = Union[int, tuple]
_MIN_REFILL = 4096  # keys moved at least when one end of Positions runs empty


def as_tuple(key: Position) -> tuple:
    return (key,) if type(key) is int else key


def _simplify(parts: tuple) -> Position:
    return parts[0] if len(parts) == 1 else parts


def between(before: Position | None, after: Position | None) -> Position:
    """A key strictly between two neighbours (``None``: the list's start or end)."""
    if before is None and after is None:
        return 0
    if after is None:
        return as_tuple(before)[0] + 1
    if before is None:
        return as_tuple(after)[0] - 1
    a, b = as_tuple(before), as_tuple(after)
    common = 0
    while common < len(a) and common < len(b) and a[common] == b[common]:
        common += 1
    if common == len(a):
        # b extends a: anything a + (x,) with x below b's next part lies between.
        return a + (b[common] - 1,)
    if a[common] + 1 < b[common]:
        return _simplify(a[:common] + ((a[common] + b[common]) // 2,))
    # a[common] + 1 == b[common]: go one level deeper below a's branch.
    if common + 1 < len(a):
        return a[: common + 1] + (a[common + 1] + 1,)
    return a + (0,)


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
