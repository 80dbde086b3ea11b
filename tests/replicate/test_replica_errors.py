"""Clear errors: each refusal of replicate, restore and info is one line naming the cause,
a non-zero exit, no traceback, and nothing left that opens as a store."""

import os
import signal
import subprocess
import sys
import time

import pysos
import pytest

from s3_local import start_server, stop_server
from replicate_util import replicator


def run(*args, timeout=60):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout)


def replicate(*args):
    return run("-m", "pysos.replicate", *args)


def pysos_cli(*args):
    return run("-m", "pysos", *args)


def one_clear_line(out, *words):
    lines = out.stderr.strip().splitlines()
    assert "Traceback" not in out.stderr
    assert len([line for line in lines if "error" in line]) == 1, out.stderr
    for word in words:
        assert word in out.stderr, out.stderr


@pytest.fixture
def store(tmp_path):
    path = tmp_path / "src"
    with pysos.Dict(path) as d:
        d.update({f"k{i}": i for i in range(20)})
    return path


def test_missing_bucket(bucket, store):
    """A bucket that does not exist: exit 2, one line saying so."""
    out = replicate(str(store), "s3://no-such-bucket-here/x", "--once")
    assert out.returncode == 2
    one_clear_line(out, "no-such-bucket-here", "does not exist")


def test_bad_credentials(store, monkeypatch):
    """Credentials the server refuses: exit 2, one line saying to check them."""
    from s3_local import aws_env

    proc, endpoint = start_server("--auth")
    try:
        aws_env(monkeypatch, endpoint)
        out = replicate(str(store), "s3://some-bucket/x", "--once")
    finally:
        stop_server(proc)
    assert out.returncode == 2
    one_clear_line(out, "denied", "credentials")


def test_a_server_that_ignores_conditional_writes_is_refused(store, monkeypatch):
    """A server that ignores If-None-Match/If-Match: exit 2 before anything is committed."""
    from s3_local import Bucket, _boto, aws_env

    proc, endpoint = start_server("--ignore-conditions")
    try:
        aws_env(monkeypatch, endpoint)
        _boto(endpoint).create_bucket(Bucket="careless")
        out = replicate(str(store), "s3://careless/x", "--once")
        keys = Bucket(endpoint, "careless").keys("x/")
    finally:
        stop_server(proc)
    assert out.returncode == 2
    one_clear_line(out, "ignores conditional writes")
    assert "MANIFEST" not in keys


def test_no_store(bucket, tmp_path):
    """Replicating a path that holds no store: exit 2, nothing created."""
    out = replicate(str(tmp_path / "nothing"), bucket.url(), "--once")
    assert out.returncode == 2
    one_clear_line(out, "no pysos store")
    assert not (tmp_path / "nothing").exists()


def test_restore_refuses_a_non_empty_directory(bucket, store, tmp_path):
    """restore into a directory holding anything: exit 1, the directory untouched."""
    replicator(store, bucket)
    target = tmp_path / "busy"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    out = pysos_cli("restore", bucket.url(), str(target))
    assert out.returncode == 1
    one_clear_line(out, "not empty")
    assert os.listdir(target) == ["notes.txt"]


def test_restore_of_an_unknown_prefix_or_bucket(bucket, tmp_path):
    """No replica at the prefix, or no bucket: exit 1, one line, nothing that opens."""
    out = pysos_cli("restore", bucket.url("nothing-here"), str(tmp_path / "a"))
    assert out.returncode == 1
    one_clear_line(out, "holds no pysos replica")
    out = pysos_cli("restore", "s3://no-such-bucket-here/x", str(tmp_path / "b"))
    assert out.returncode == 1
    one_clear_line(out, "does not exist")
    for name in ("a", "b"):
        with pytest.raises((FileNotFoundError, pysos.FormatError)):
            pysos.open(tmp_path / name, readonly=True)


def test_restore_of_a_damaged_object_fails_and_leaves_no_store(bucket, store, tmp_path):
    """An object whose bytes changed: exit 1 naming the checksum, DIR does not open."""
    from s3_local import _boto

    rep = replicator(store, bucket)
    key = rep.body["tail"]["parts"][0][0]
    raw = _boto(bucket.endpoint)
    data = raw.get_object(Bucket=bucket.name, Key="store/" + key)["Body"].read()
    raw.put_object(Bucket=bucket.name, Key="store/" + key, Body=data[:-3] + b"X}\n")
    out = pysos_cli("restore", bucket.url(), str(tmp_path / "out"))
    assert out.returncode == 1
    one_clear_line(out, "checksum")
    with pytest.raises((FileNotFoundError, pysos.FormatError)):
        pysos.open(tmp_path / "out", readonly=True)


def test_info_url_shows_the_replica(bucket, store):
    """'pysos info URL' shows lineage, epoch, generations kept, last commit and bytes."""
    rep = replicator(store, bucket)
    out = pysos_cli("info", bucket.url())
    assert out.returncode == 0, out.stderr
    for word in (rep.lineage, "epoch", "generations kept", "last commit", "bytes", "gc failed"):
        assert word in out.stdout
    out = pysos_cli("info", bucket.url("nothing-here"))
    assert out.returncode == 1
    one_clear_line(out, "holds no pysos replica")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_cleanly(bucket, store, signum):
    """A running replicator stops on SIGINT/SIGTERM with exit 0 and no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(store), bucket.url(),
                             "--interval", "0.1"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while "MANIFEST" not in bucket.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
