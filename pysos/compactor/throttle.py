"""Pacing a merge: an optional write-rate limit, and a way to stop a merge half-way.

:func:`pysos.compactor.merge.merge_run` calls its ``throttle(n)`` after writing ``n``
bytes of output (and with ``n = 0`` now and then while it reads). A :class:`Throttle`
sleeps there so the average write rate stays under ``bytes_per_second``, and raises
:class:`Interrupted` once ``stop`` is set: the merge then deletes its unpublished
outputs and gives up, which is how the daemon and the writer's thread stop promptly.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class Interrupted(Exception):
    """The compactor is stopping: abandon the merge (nothing was published)."""


class Throttle:
    """``throttle(n)``: account for ``n`` written bytes; sleep to keep under the rate limit."""

    def __init__(
        self,
        bytes_per_second: float | None = None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if bytes_per_second is not None and bytes_per_second <= 0:
            raise ValueError(f"a rate limit must be positive, not {bytes_per_second!r}")
        self.bytes_per_second = bytes_per_second
        self.stop = stop if stop is not None else threading.Event()
        self.clock = clock
        self._started: float | None = None
        self._written = 0

    def __call__(self, n: int) -> None:
        if self.stop.is_set():
            raise Interrupted()
        if self.bytes_per_second is None or n <= 0:
            return
        now = self.clock()
        if self._started is None:
            self._started = now
        self._written += n
        delay = self.delay(now)
        if delay > 0 and self.stop.wait(delay):
            raise Interrupted()

    def delay(self, now: float) -> float:
        """Seconds to wait at ``now`` so that the bytes written so far fit the rate."""
        if self.bytes_per_second is None or self._started is None:
            return 0.0
        return self._started + self._written / self.bytes_per_second - now


__all__ = ["Interrupted", "Throttle"]
