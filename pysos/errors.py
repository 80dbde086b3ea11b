"""The exceptions pysos raises. Each subclasses :class:`Error` and, where one fits, the
matching built-in exception, so ``except OSError`` or ``except ValueError`` still works."""


class Error(Exception):
    """Base class of every pysos-specific error."""


class LockedError(Error, BlockingIOError):
    """Another handle (in this or another process) already holds the lock asked for."""


class ReadOnlyError(Error, PermissionError):
    """A write was attempted through a ``readonly=True`` handle."""


class FormatError(Error, ValueError):
    """The directory is not a pysos store, is the other kind, or has an unknown format version."""


class CorruptionError(Error, ValueError):
    """A checksum failed somewhere other than the torn tail of the newest segment."""


class ObserverError(Error):
    """A change was **committed** (it is in the store and survives as any other), and then
    one or more ``observe()`` callbacks raised. Raised after every callback of every event
    of the change (or batch) has run; ``errors`` holds what they raised, in order, and
    ``__cause__`` the first. Do not retry the change: it is done."""

    def __init__(self, errors: list[Exception]):
        self.errors = list(errors)
        first = self.errors[0]
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        super().__init__(
            f"the change was committed, but an observer raised {type(first).__name__}: {first}{more}"
        )

    @classmethod
    def of(cls, errors: list[Exception]) -> "ObserverError":
        """One ObserverError for several, flattened; chained to the first callback's error."""
        flat = []
        for error in errors:
            flat.extend(error.errors if isinstance(error, ObserverError) else [error])
        combined = cls(flat)
        combined.__cause__ = flat[0]
        return combined
