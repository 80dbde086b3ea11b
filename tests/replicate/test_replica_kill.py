"""SIGKILL of the writer and of the replicator at random moments, then restore: nothing
is lost that the promise covers (--once: every change that returned before it started;
continuous: every change that returned a few intervals before), nothing is torn (no
half batch, no record that was not written, units restored are a prefix of those made)."""

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from pysos.replicate.remote import decode
from replicate_util import restored

HERE = os.path.dirname(os.path.abspath(__file__))


def acked(path):
    with open(path) as f:
        return [int(line) for line in f.read().split("\n")[:-1]]


def check_consistent(state, acks):
    """The restored state is units 1..m, whole, with m at least ``acks`` covers; return m."""
    counter = state.get("counter", 0)
    units = set()
    for key, value in state.items():
        if key == "counter":
            continue
        match = re.fullmatch(r"k(\d+)|b(\d+)-[012]", key)
        assert match, key
        unit = int(match.group(1) or match.group(2))
        if key.startswith("b"):  # a batch carries its counter
            assert unit <= counter, f"{key} restored without the counter written in its batch"
            assert all(f"b{unit}-{p}" in state for p in range(3)), f"half of batch {unit}"
        units.add(unit)
    # Units are sequential: those restored are exactly the first ``counter`` of them, and
    # maybe the next single set (the writer died before setting the counter after it).
    assert units - {counter + 1} == set(range(1, counter + 1)), "a unit is missing below the newest"
    if acks:
        assert counter >= max(acks), f"acknowledged unit {max(acks)} lost (restored up to {counter})"
    return counter


def start_writer(tmp_path, seed):
    return subprocess.Popen([sys.executable, os.path.join(HERE, "kill_writer.py"),
                             str(tmp_path / "src"), str(tmp_path / "acks"), str(seed)])


def start_replicator(tmp_path, bucket, *extra):
    return subprocess.Popen([sys.executable, "-m", "pysos.replicate", str(tmp_path / "src"),
                             bucket.url(), "--interval", "0.05", "--min-age", "0", *extra],
                            stderr=subprocess.DEVNULL)


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def kill(proc):
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_writer_and_replicator_at_random_moments(bucket, tmp_path, seed):
    """Random SIGKILLs of both: every restore is consistent; --once and a caught-up
    continuous replicator cover every acknowledged change."""
    rng = random.Random(seed)
    writer = start_writer(tmp_path, seed)
    try:
        wait_for(lambda: os.path.exists(tmp_path / "acks") and os.path.getsize(tmp_path / "acks") > 0)
        rep = start_replicator(tmp_path, bucket, "--retention", "1")
        wait_for(lambda: "MANIFEST" in bucket.keys())
        time.sleep(rng.uniform(0.2, 1.5))
        kill(rep)  # the replicator dies mid-work: the remote still restores consistently
        check_consistent(restored(bucket, tmp_path), [])
        rep = start_replicator(tmp_path, bucket, "--retention", "1")  # restarts, new epoch
        time.sleep(rng.uniform(0.5, 1.5))
        kill(writer)  # the writer dies mid-write
        acks = acked(tmp_path / "acks")
        # Continuous mode: once the replicator has had a few intervals, all of it is there.
        client, seen = bucket.client(), []

        def caught_up():  # the restarted replicator committed, then nothing for a second
            data, etag = client.get("MANIFEST")
            if decode(data, "MANIFEST")["epoch"] < 2:
                return False  # still starting (importing boto3 can take seconds)
            if not seen or seen[-1][0] != etag:
                seen.append((etag, time.monotonic()))
            return time.monotonic() - seen[-1][1] > 1.0

        wait_for(caught_up)
        kill(rep)
        check_consistent(restored(bucket, tmp_path), acks)
        # --once after the fact ships everything and exits 0.
        out = subprocess.run([sys.executable, "-m", "pysos.replicate", str(tmp_path / "src"),
                              bucket.url(), "--once"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        check_consistent(restored(bucket, tmp_path), acks)
    finally:
        if writer.poll() is None:
            kill(writer)
