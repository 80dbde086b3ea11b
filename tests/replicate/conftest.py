"""Fixtures of the replication tests: a real local S3 server (moto's, single-threaded, in
a subprocess on 127.0.0.1), a fresh bucket per test, and the AWS environment pointing at
it, which subprocesses (replicators, restores) inherit."""

import uuid

import pytest

from s3_local import Bucket, _boto, aws_env, start_server, stop_server


@pytest.fixture(scope="session")
def s3_endpoint():
    """The endpoint of a local S3 server shared by the session."""
    proc, endpoint = start_server()
    yield endpoint
    stop_server(proc)


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    """A new, empty bucket on the local server, with the AWS environment set for it."""
    aws_env(monkeypatch, s3_endpoint)
    name = "pysos-" + uuid.uuid4().hex[:12]
    _boto(s3_endpoint).create_bucket(Bucket=name)
    return Bucket(s3_endpoint, name)
