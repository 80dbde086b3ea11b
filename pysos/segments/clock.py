"""The clocks of expiry, in one place so that tests can replace them (tests/expiry_clock.py).

Deadlines are wall-clock times (``time.time()``, seconds since the Unix epoch): the only
clock that processes (a writer, its readers, a compactor daemon) and a later reopen share.
A handle converts the next deadline it knows of into a ``monotonic`` instant, its cue to
look at the wall clock again (see :meth:`pysos.engine.Store.expire`).
"""

from __future__ import annotations

import time

wall = time.time
monotonic = time.monotonic
