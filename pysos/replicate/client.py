"""The object-storage client: the six calls replication needs, behind one small class.

:class:`S3` wraps boto3 (imported here, on first use, never by ``import pysos``); tests
and other back ends only need the same methods. Every failure of the server or the
network becomes a :class:`RemoteError` whose message says what is wrong in one line
(no bucket, bad credentials, cannot connect), so the commands print it without a
traceback. Conditions that do not hold are their own exceptions, because the callers'
logic depends on them: :class:`PreconditionFailed` (412: the key exists, or its ETag is
not the one given) and :class:`NotFound` (404).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ..errors import Error


class RemoteError(Error):
    """The object store failed or refused a request (message: one line, the cause)."""


class NotFound(RemoteError):
    """The key does not exist (404)."""


class PreconditionFailed(RemoteError):
    """A conditional write did not hold (412): the key exists, or has another ETag."""


@dataclass(frozen=True)
class Location:
    """``s3://BUCKET/PREFIX``: where a store's replica lives."""

    bucket: str
    prefix: str  # "" or ends with "/"

    def key(self, name: str) -> str:
        return self.prefix + name

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_url(url: str) -> Location:
    """Parse ``s3://BUCKET/PREFIX``; ``ValueError`` saying what is wrong otherwise."""
    parsed = urlparse(os.fspath(url))
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"{url!r} is not an s3://BUCKET/PREFIX URL")
    prefix = parsed.path.strip("/")
    return Location(parsed.netloc, prefix + "/" if prefix else "")


@dataclass
class Counters:
    """Requests sent, by kind, and bytes uploaded/downloaded (for stats and benchmarks)."""

    puts: int = 0
    gets: int = 0
    lists: int = 0
    deletes: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, kind: str, up: int = 0, down: int = 0) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.bytes_up += up
            self.bytes_down += down

    def moved(self, up: int = 0, down: int = 0) -> None:
        with self._lock:
            self.bytes_up += up
            self.bytes_down += down

    def snapshot(self) -> dict:
        return {k: getattr(self, k) for k in ("puts", "gets", "lists", "deletes", "bytes_up", "bytes_down")}


_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidClientTokenId",
    "ExpiredToken", "InvalidToken", "AuthorizationHeaderMalformed", "403",
}


class S3:
    """put-if-absent, put-if-match, conditional get, ranged get, list, delete on one bucket."""

    def __init__(self, location: Location):
        try:
            import boto3  # type: ignore[import-untyped]
            from botocore.config import Config  # type: ignore[import-untyped]
        except ImportError:
            raise RemoteError("replication needs boto3: pip install 'pysos[s3]'") from None
        self.location = location
        self.counters = Counters()
        config = Config(
            retries={"max_attempts": 4, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=16,
            # The payload's integrity is ours to check (CRC-32 of every object and record);
            # boto3's extra checksums cost a pass over each body and some servers lack them.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._s3 = boto3.session.Session().client("s3", config=config)
        from botocore import exceptions  # type: ignore[import-untyped]

        self._errors = exceptions

    # --- the interface ------------------------------------------------------------------

    def put(self, name: str, data: bytes, *, if_absent: bool = False, if_match: str | None = None) -> str:
        """Store ``data`` at ``name``; return its ETag. ``if_absent``: only if no object is
        there; ``if_match``: only if the object there has this ETag (else PreconditionFailed)."""
        extra = {}
        if if_absent:
            extra["IfNoneMatch"] = "*"
        if if_match is not None:
            extra["IfMatch"] = if_match
        self.counters.add("puts", up=len(data))
        reply = self._call("put_object", name, Body=data, **extra)
        return reply["ETag"]

    def get(self, name: str, *, if_none_match: str | None = None,
            byte_range: tuple[int, int] | None = None) -> tuple[bytes, str] | None:
        """``(data, etag)`` of ``name``; None if ``if_none_match`` is its ETag (304).
        ``byte_range`` = (first, last) inclusive, or (-n, None) for the last n bytes."""
        extra = {}
        if if_none_match is not None:
            extra["IfNoneMatch"] = if_none_match
        if byte_range is not None:
            first, last = byte_range
            extra["Range"] = f"bytes={first}-" + ("" if last is None else str(last))
            if first < 0:
                extra["Range"] = f"bytes={first}"
        self.counters.add("gets")
        try:
            reply = self._call("get_object", name, **extra)
        except _NotModified:
            return None
        data = reply["Body"].read()
        self.counters.moved(down=len(data))
        return data, reply["ETag"]

    def list(self, prefix: str = "") -> list[tuple[str, int, float]]:
        """``(name, size, last-modified Unix time)`` of every object under ``prefix``."""
        found = []
        token = None
        while True:
            extra: dict = {"ContinuationToken": token} if token else {}
            self.counters.add("lists")
            reply = self._call("list_objects_v2", None, Prefix=self.location.key(prefix), **extra)
            for item in reply.get("Contents", ()):
                name = item["Key"][len(self.location.prefix):]
                found.append((name, item["Size"], item["LastModified"].timestamp()))
            if not reply.get("IsTruncated"):
                return found
            token = reply["NextContinuationToken"]

    def delete(self, name: str) -> None:
        """Delete ``name`` (deleting a missing key is not an error, as in S3)."""
        self.counters.add("deletes")
        self._call("delete_object", name)

    # --- errors -------------------------------------------------------------------------

    def _call(self, operation: str, name: str | None, **params):
        params["Bucket"] = self.location.bucket
        if name is not None:
            params["Key"] = self.location.key(name)
        try:
            return getattr(self._s3, operation)(**params)
        except self._errors.ClientError as exc:
            raise self._explain(exc, name) from None
        except self._errors.NoCredentialsError:
            raise RemoteError("no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)") from None
        except (self._errors.EndpointConnectionError, self._errors.ConnectionClosedError,
                self._errors.ConnectTimeoutError, self._errors.ReadTimeoutError) as exc:
            raise RemoteError(f"cannot reach the object store: {exc}") from None
        except self._errors.BotoCoreError as exc:
            raise RemoteError(f"object store request failed: {exc}") from None

    def _explain(self, exc, name: str | None) -> RemoteError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{self.location.bucket}/{self.location.key(name or '')}"
        if code in ("304", "NotModified") or status == 304:
            return _NotModified()
        if code == "PreconditionFailed" or status == 412:
            return PreconditionFailed(f"{where}: a condition of the write did not hold")
        if code == "NoSuchBucket":
            return RemoteError(f"the bucket {self.location.bucket!r} does not exist")
        if code in ("NoSuchKey", "404", "NotFound") or status == 404:
            return NotFound(f"{where} does not exist")
        if code in _CREDENTIAL_CODES or status == 403:
            return RemoteError(
                f"access to s3://{self.location.bucket} denied ({code or status}): check the credentials"
            )
        return RemoteError(f"{where}: {code or status}: {error.get('Message', exc)}")


class _NotModified(RemoteError):
    """304 to a conditional GET: internal to :meth:`S3.get`."""
