"""An in-memory object store with the six calls of :class:`pysos.replicate.client.S3` and
S3's semantics for them (conditional writes, 412/404, ETag = MD5, ranged and conditional
GETs), for tests that make thousands of requests: the seeded takeover trials run on it, and
the same trials run against the local S3 server too, to show it models what they rely on."""

import hashlib
import threading
import time

from pysos.replicate.client import Counters, NotFound, PreconditionFailed, parse_url


class Memory:
    """The bucket: name -> (data, etag, last-modified), shared by the clients of its prefixes."""

    def __init__(self):
        self.objects = {}
        self.lock = threading.Lock()

    def client(self, url):
        return MemoryClient(self, parse_url(url))


class MemoryClient:
    def __init__(self, memory, location):
        self.memory, self.location, self.counters = memory, location, Counters()

    def put(self, name, data, *, if_absent=False, if_match=None):
        key = self.location.key(name)
        self.counters.add("puts", up=len(data))
        with self.memory.lock:
            found = self.memory.objects.get(key)
            if if_absent and found is not None:
                raise PreconditionFailed(f"{key}: a condition of the write did not hold")
            if if_match is not None:
                if found is None:
                    raise NotFound(f"{key} does not exist")
                if found[1] != if_match:
                    raise PreconditionFailed(f"{key}: a condition of the write did not hold")
            etag = '"%s"' % hashlib.md5(data).hexdigest()
            self.memory.objects[key] = (bytes(data), etag, time.time())
            return etag

    def get(self, name, *, if_none_match=None, byte_range=None):
        key = self.location.key(name)
        self.counters.add("gets")
        with self.memory.lock:
            found = self.memory.objects.get(key)
        if found is None:
            raise NotFound(f"{key} does not exist")
        data, etag, _ = found
        if if_none_match is not None and if_none_match == etag:
            return None
        if byte_range is not None:
            first, last = byte_range
            data = data[first:] if first < 0 else data[first : None if last is None else last + 1]
        self.counters.moved(down=len(data))
        return data, etag

    def list(self, prefix=""):
        self.counters.add("lists")
        start = self.location.key(prefix)
        with self.memory.lock:
            items = sorted(self.memory.objects.items())
        return [(key[len(self.location.prefix):], len(data), modified)
                for key, (data, _, modified) in items if key.startswith(start)]

    def delete(self, name):
        self.counters.add("deletes")
        with self.memory.lock:
            self.memory.objects.pop(self.location.key(name), None)

    def keys(self):
        """Every object name under this client's prefix (for the tests' checks)."""
        return {name for name, _, _ in self.list()}


class MemoryBucket:
    """The fixtures' Bucket interface (url, client, keys) over a :class:`Memory`."""

    def __init__(self, name="memory"):
        self.name, self.memory, self.clients = name, Memory(), {}

    def url(self, prefix="store"):
        return f"s3://{self.name}/{prefix}"

    def client(self, prefix="store"):
        if prefix not in self.clients:
            self.clients[prefix] = self.memory.client(self.url(prefix))
        return self.clients[prefix]

    def keys(self, prefix="store/"):
        with self.memory.lock:
            return {key[len(prefix):]: len(data) for key, (data, _, _) in self.memory.objects.items()
                    if key.startswith(prefix)}
