"""A small progress bar on stderr: drawn only on a terminal, silent when piped or --quiet."""

import sys
import threading
import time


def _size(n):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


class Progress:
    """``with Progress("import", total) as bar: bar.set(done)``; ``total=None`` spins.

    ``unit`` is "items" or "bytes". Redraws at most ten times a second, and always at the
    start and the end, so even a short run shows the bar once.
    """

    def __init__(self, label, total=None, *, unit="items", quiet=False, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.label, self.total, self.unit = label, total, unit
        self.done, self._drawn, self._start = 0, 0.0, time.monotonic()

    def _text(self):
        count = _size(self.done) if self.unit == "bytes" else f"{self.done:,}"
        if not self.total:
            return f"{self.label}  {count}  {time.monotonic() - self._start:.1f}s"
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        total = _size(self.total) if self.unit == "bytes" else f"{self.total:,}"
        return f"{self.label} [{bar:<30}] {frac:4.0%}  {count}/{total}"

    def draw(self, force=False):
        now = time.monotonic()
        if self.enabled and (force or now - self._drawn >= 0.1):
            self._drawn = now
            self.stream.write("\r\x1b[K" + self._text())
            self.stream.flush()

    def set(self, done):
        self.done = done
        self.draw()

    def advance(self, n=1):
        self.set(self.done + n)

    def __enter__(self):
        self.draw(force=True)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            if exc[0] is None and self.total:
                self.done = self.total
            self.draw(force=True)
            self.stream.write("\n")
            self.stream.flush()


class Spinner(Progress):
    """A bar with no known total for one long call: a thread redraws the elapsed time."""

    def __enter__(self):
        super().__enter__()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        return self

    def _spin(self):
        while not self._stop.wait(0.2):
            self.draw(force=True)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        super().__exit__(*exc)


class Watch(Spinner):
    """A bar for one long call whose work is measured from outside: a thread calls
    ``measure()`` (bytes or items done so far, of the known ``total``) and redraws."""

    def __init__(self, label, total, measure, **kw):
        super().__init__(label, total, **kw)
        self._measure = measure

    def _spin(self):
        while not self._stop.wait(0.2):
            try:
                self.done = min(self._measure(), self.total or 0) if self.total else self._measure()
            except OSError:  # a file went away between listing and measuring: next time
                pass
            self.draw(force=True)
