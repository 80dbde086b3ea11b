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
