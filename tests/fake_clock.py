"""A clock the tests control, for expiry: replaces every clock pysos's expiry looks at.

The wall clock (deadlines) and the monotonic clock (the hot paths' gate, see
``pysos.engine.expiry``) move together by :meth:`FakeClock.advance`, or the wall clock
alone by :meth:`FakeClock.step_wall` (a step of the system clock).
"""

from __future__ import annotations

import time

import pysos.dict
import pysos.list
from pysos.segments import clock


class FakeClock:
    def __init__(self, start: float = 1_800_000_000.0):
        self.wall_now = start
        self.mono_now = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def monotonic(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall_now += seconds

    def install(self):
        """Replace pysos's clocks; returns a function that puts the real ones back."""
        saved = (clock.wall, clock.monotonic, pysos.dict.monotonic, pysos.list.monotonic)
        clock.wall, clock.monotonic = self.wall, self.monotonic
        pysos.dict.monotonic = pysos.list.monotonic = self.monotonic

        def restore():
            clock.wall, clock.monotonic, pysos.dict.monotonic, pysos.list.monotonic = saved

        return restore


def real_clocks_are_back() -> bool:
    return clock.wall is time.time and clock.monotonic is time.monotonic
