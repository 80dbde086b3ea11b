"""The README's promotion procedure ("Beyond one machine"), run as written against the
local S3 server: machine A (a directory) is the primary with its replicator running; the
README's blocks run, command by command, on machine B (another directory) and then on A,
each command's output checked against the README's. Then every wrong step the README
names gets its one-line error and changes nothing."""

import os
import re
import signal
import subprocess
import sys
import time

import pysos
import pytest

from pysos.replicate.remote import FencedError, Remote
from replicate_util import contents, replicator

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs"))
from test_readme import README, _environment, console_steps, matches, readme_blocks  # noqa: E402

MARK = "test_replica_promotion.py runs these blocks"
README_URL = "s3://backups/users"


def promotion_blocks():
    """The README's console blocks that this test runs (the ones whose skip reason names it)."""
    blocks = [(line, body) for line, lang, body, directive in readme_blocks(README.read_text())
              if lang == "console" and MARK in directive]
    assert len(blocks) == 2, "the README's promotion blocks are missing"
    return blocks


class Machine:
    """A directory standing for a machine: commands run there as the README shows them."""

    def __init__(self, root, bucket, env):
        self.root, self.bucket, self.env = root, bucket, env
        root.mkdir()
        self.background = []

    def command(self, text):
        return text.replace(README_URL, self.bucket.url("users"))

    def run(self, text, expected, line, retry=0.0):
        """Run one README command; its output must be what the README shows (retried for up
        to ``retry`` seconds: output that a background process writes)."""
        deadline = time.monotonic() + retry
        while True:
            out = subprocess.run(["bash", "-c", self.command(text)], cwd=self.root, env=self.env,
                                 capture_output=True, text=True, timeout=120)
            shown = (out.stdout + out.stderr).replace(f"s3://{self.bucket.name}/users/", README_URL + "/")
            if matches(expected, shown) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert matches(expected, shown), f"README line {line}: $ {text}\n--- expected\n{expected}\n--- got\n{shown}"
        return out

    def start(self, text):
        """A README command ending in '&': started, stopped at the end of the test."""
        proc = subprocess.Popen(["bash", "-c", "exec " + self.command(text.rstrip().rstrip("&"))],
                                cwd=self.root, env=self.env)
        self.background.append(proc)
        return proc

    def stop(self):
        for proc in self.background:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)

    def run_block(self, line, body):
        for text, expected in console_steps(body):
            text = re.sub(r"\s+#[^'\"]*$", "", text)  # the README's comment: bash ignores it, but
            # "cmd &  # comment" must still be seen to end in "&" (else bash would leave it running)
            if text.endswith("&"):
                assert expected == "", f"README line {line}: a background command shows no output"
                self.start(text)
            else:
                self.run(text, expected, line, retry=30.0 if text.startswith("cat ") else 0.0)


def test_the_readme_promotion_procedure_runs_as_written(bucket, tmp_path):
    """Machine A writes and replicates; B restores, writes, takes over; A's replicator is
    fenced (exit 3), refused when restarted, and the replica is B's store (README blocks)."""
    env = _environment(tmp_path)
    python = tmp_path / "bin" / "python"  # (a symlink to a venv's python leaves the venv)
    python.unlink()
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    a = Machine(tmp_path / "machine-a", bucket, env)
    b = Machine(tmp_path / "machine-b", bucket, env)
    (on_b_line, on_b), (on_a_line, on_a) = promotion_blocks()
    try:
        # Machine A as the README describes it: a store with its replicator running.
        with pysos.Dict(a.root / "data" / "users") as d:
            d["alice"] = {"age": 31}
        old = a.start(f"python -m pysos.replicate data/users {README_URL} > replicate.log 2>&1 &")
        deadline = time.monotonic() + 60
        while "MANIFEST" not in bucket.keys("users/"):
            assert time.monotonic() < deadline and old.poll() is None, "A's replicator did not start"
            time.sleep(0.1)
        b.run_block(on_b_line, on_b)
        assert [p.poll() for p in b.background] == [None]  # B's replicator, "from now on" (stopped below)
        remote = Remote(bucket.client("users")).read()[0]
        assert remote["lineage"] != _lineage(a.root / "data" / "users")
        a.run_block(on_a_line, on_a)
        assert old.wait(30) == 3  # fenced: the log line the README shows is its last words
        assert pysos.Dict(b.root / "users", readonly=True).get("carol") is None
        assert contents(b.root / "check") == contents(b.root / "users") == {
            "alice": {"age": 31}, "bob": {"age": 45}}
    finally:
        a.stop()
        b.stop()


def _lineage(store):
    import json

    with open(str(store) + ".replica/state.json") as f:
        return json.load(f)["lineage"]


def test_each_wrong_step_of_the_promotion_gets_one_line_and_changes_nothing(bucket, tmp_path):
    """--takeover before the restore (no store; an unfinished restore), a restore into a
    directory that is not empty, and replicating the old primary again: one line each, a
    non-zero exit, no traceback, and the replica unchanged."""
    with pysos.Dict(tmp_path / "old") as d:
        d["alice"] = 1
    cli = [sys.executable, "-m", "pysos"]
    url = bucket.url("users")

    def run(*args):
        return subprocess.run(cli + [str(a) for a in args], capture_output=True, text=True, timeout=60)

    assert run("replicate", tmp_path / "old", url, "--once").returncode == 0
    before = (bucket.keys("users/"), Remote(bucket.client("users")).read()[1])

    def unchanged():
        keys = {k: v for k, v in bucket.keys("users/").items() if not k.startswith("selftest-")}
        return (keys, Remote(bucket.client("users")).read()[1]) == before

    # --takeover on a directory that is not a store yet (the restore was forgotten).
    out = run("replicate", tmp_path / "new", url, "--takeover", "--once")
    assert out.returncode == 2 and out.stderr.strip().endswith(f"no pysos store at {tmp_path / 'new'}")
    assert unchanged()
    # --takeover on a restore that did not finish.
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "pysos-restore.json").write_text('{"url": "%s"}\n' % url)
    out = run("replicate", tmp_path / "half", url, "--takeover", "--once")
    assert out.returncode == 2 and "did not finish" in out.stderr and "'pysos restore URL DIR'" in out.stderr
    assert unchanged()
    # A restore into a directory that is not empty (another store there).
    out = run("restore", url, tmp_path / "old")
    assert out.returncode == 1 and "not empty" in out.stderr and "Traceback" not in out.stderr
    assert contents(tmp_path / "old") == {"alice": 1}
    # The promotion itself, then the old primary replicated again: refused.
    assert run("restore", url, tmp_path / "new").returncode == 0
    with pysos.Dict(tmp_path / "new") as d:
        d["bob"] = 2
    assert run("replicate", tmp_path / "new", url, "--takeover", "--once").returncode == 0
    before = (bucket.keys("users/"), Remote(bucket.client("users")).read()[1])
    with pysos.Dict(tmp_path / "old") as d:
        d["carol"] = 3
    for extra in (["--once"], ["--interval", "0.1"]):
        out = run("replicate", tmp_path / "old", url, *extra)
        assert out.returncode == 2 and "holds the replica of another store" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert unchanged()
    assert run("restore", url, tmp_path / "check").returncode == 0
    assert contents(tmp_path / "check") == {"alice": 1, "bob": 2}


def test_promoting_a_followers_directory(bucket, tmp_path):
    """The follower route of step 2: while `pysos follow` runs, writing to its DIR is refused
    (one line saying it is followed); stopped, DIR opens writable, `--takeover --once` takes
    the replica and fences the old replicator, a restore is DIR's store, and following DIR
    again is refused (it is a primary now)."""
    with pysos.Dict(tmp_path / "old") as d:
        d["alice"] = 1
    old = replicator(tmp_path / "old", bucket, "users")
    cli = [sys.executable, "-m", "pysos"]
    url, dest = bucket.url("users"), tmp_path / "follower"

    def run(*args):
        return subprocess.run(cli + [str(a) for a in args], capture_output=True, text=True, timeout=60)

    follow = subprocess.Popen(cli + ["follow", url, str(dest), "--interval", "0.1"],
                              stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (dest / "MANIFEST").exists():
            assert time.monotonic() < deadline and follow.poll() is None, "the follower did not start"
            time.sleep(0.1)
        out = run("set", dest, "bob", "2")
        assert out.returncode != 0 and "followed" in out.stderr and len(out.stderr.strip().splitlines()) == 1
        follow.send_signal(signal.SIGTERM)
        assert follow.wait(60) == 0
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert run("set", dest, "bob", "2").returncode == 0
    out = run("replicate", dest, url, "--takeover", "--once")
    assert out.returncode == 0, out.stderr
    with pysos.Dict(tmp_path / "old") as d:
        d["carol"] = 3
    with pytest.raises(FencedError, match="fenced"):
        old.step()
    assert run("restore", url, tmp_path / "check").returncode == 0
    assert contents(tmp_path / "check") == contents(dest) == {"alice": 1, "bob": 2}
    out = run("follow", url, dest)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert contents(dest) == {"alice": 1, "bob": 2}
