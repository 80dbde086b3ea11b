"""The clocks of expiry, in one place so that tests can replace them (tests/expiry_clock.py),
and how a deadline is written.

Deadlines are wall-clock times (``time.time()``, seconds since the Unix epoch): the only
clock that processes (a writer, its readers, a compactor daemon) and a later reopen share.
A handle converts the next deadline it knows of into a ``monotonic`` instant, its cue to
look at the wall clock again (see :meth:`pysos.engine.Store.expire`).
"""

from __future__ import annotations

import math
import time
from typing import Callable

wall = time.time
monotonic = time.monotonic

#: ``expire`` from which deadlines are whole seconds (and up to which they are rounded at all)
WHOLE_SECONDS_FROM = 1000.0
_ROUND_UP_TO = 1e12  # beyond: a float's own step, 2**-12 s at most before the year 33,000, is fine
_FINEST = 0.01  # below: no rounding (10 integer digits + 5 decimals is all a double keeps exactly)


def rounder(expire: float) -> Callable[[float], float]:
    """What rounds ``now + expire`` up to the deadline pysos writes: to a power of ten of
    seconds no larger than ``expire / 1000`` and than one second, so that a key lives at
    most 0.1 % (and at most a second) longer than asked, never shorter.

    Why round at all: the deadline is in every expiring record, and ``time.time() + 3600``
    prints as 18 characters (``1796074017.4829311``) where ``1796074018`` says the same to
    a second: 8 bytes less of every record to checksum, write, read and merge, and a float
    that orjson need not print (tools/bench_instructions.py: ~300 instructions of a ~21,000
    instruction write). ``math.ceil`` for ``expire`` from 1,000 s (an int deadline); for
    0.01 <= ``expire`` < 1,000, the next multiple of 10**-k (k from 1 to 5) as the double
    nearest that decimal, which prints as it (at most 15 significant digits); else none."""
    if WHOLE_SECONDS_FROM <= expire < _ROUND_UP_TO:
        return math.ceil
    if not _FINEST <= expire < WHOLE_SECONDS_FROM:
        return exact
    scale = 10.0 ** math.ceil(3 - math.log10(expire))  # (log10 of a power of ten is exact)

    def round_up(deadline: float) -> float:
        steps = math.ceil(deadline * scale)
        rounded = steps / scale
        return rounded if rounded >= deadline else (steps + 1) / scale  # (deadline * scale rounded down)

    return round_up


def deadline(expire: float) -> float:
    """The deadline of a record written now to live ``expire`` seconds (see :func:`rounder`)."""
    return rounder(expire)(wall() + expire)


def exact(deadline: float) -> float:
    """No rounding (what :func:`rounder` gives for ``expire`` it leaves alone)."""
    return deadline
