"""The local S3 server of the replication tests and helpers around it (used by the
fixtures in conftest.py, and by tests that need a server of their own)."""

import os
import subprocess
import sys
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


def start_server(*flags):
    """Start s3server.py; return (process, endpoint URL)."""
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "s3server.py"), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = proc.stdout.readline().strip()
    if not port.isdigit():
        proc.kill()
        raise RuntimeError("the local S3 server did not start")
    return proc, f"http://127.0.0.1:{port}"


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def aws_env(monkeypatch, endpoint):
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


@dataclass
class Bucket:
    endpoint: str
    name: str
    clients: dict = field(default_factory=dict)

    def url(self, prefix="store"):
        return f"s3://{self.name}/{prefix}"

    def client(self, prefix="store"):
        """A client of the prefix, made once (building a boto3 client takes a while)."""
        import copy

        from pysos.replicate.client import S3, Counters, parse_url

        if prefix not in self.clients:
            if self.clients:  # the same boto3 client (thread-safe), another prefix
                client = copy.copy(next(iter(self.clients.values())))
                client.location, client.counters = parse_url(self.url(prefix)), Counters()
            else:
                client = S3(parse_url(self.url(prefix)))
            self.clients[prefix] = client
        return self.clients[prefix]

    def keys(self, prefix="store/"):
        raw = _boto(self.endpoint)
        pages = raw.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return {item["Key"][len(prefix):]: item["Size"] for page in pages for item in page.get("Contents", ())}


def _boto(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint)


