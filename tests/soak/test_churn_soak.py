"""Churn soak: a writer process doing random sets/deletes/batches on a few thousand keys,
SIGKILLed at random moments; the compactor daemon (``python -m pysos.compactor``) SIGKILLed
and restarted at random moments; a reader process running throughout.

At every restart the store holds exactly the acknowledged changes (plus, or not, the one
call in flight, whole); readers never see a wrong value or go back in time; disk use stays
within a stated bound of the live data. Short in CI (PYSOS_SOAK_SECONDS, default 15);
for a long run:  PYSOS_SOAK_SECONDS=600 python -m pytest -m soak tests/soak -s
(PYSOS_SOAK_SEED picks the kill schedule; PYSOS_SOAK_COMPACTOR=thread uses the writer's
autocompact thread instead of the daemon, which is also the fallback if the daemon is absent.)
"""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pysos
from pysos.segments import record

import churn_worker as w

SOAK_SECONDS = float(os.environ.get("PYSOS_SOAK_SECONDS", "15"))
MIN_WRITER_KILLS = 6            # the loop runs at least this many writer lives, whatever the time
SEGMENT_SIZE = 64 * 1024
MIN_DEAD_BYTES = 64 * 1024      # the daemon's --min-dead-bytes (and the writer thread's, as fallback)
THRESHOLD = 0.5                 # the daemon's --threshold
WORKER = Path(__file__).with_name("churn_worker.py")
DAEMON = Path(pysos.__file__).parent / "compactor" / "__main__.py"

# The disk bound. Compaction starts once dead bytes pass THRESHOLD of the disk bytes (and
# MIN_DEAD_BYTES), so when it starts disk <= live / (1 - THRESHOLD) = 2 x live, plus the
# newest segment (<= SEGMENT_SIZE + one unit). While a merge runs its outputs (<= live)
# sit beside its inputs, and a compactor killed mid-merge leaves them until the next
# compaction or open: + 1 x live. Meanwhile the writer keeps appending until the daemon
# reacts and the merge lands: we allow + 1 x live + 4 segments for that lag. Hence:
LIVE_FACTOR = 4.0
SLACK_BYTES = MIN_DEAD_BYTES + 6 * SEGMENT_SIZE
MEASURE_FROM_LIVE = 128 * 1024  # ratios are only meaningful once the store holds some data


def record_bytes(key, value):
    return len(record.encode_set(record.encode_key(key), record.encode_value(value)))


def disk_bytes(directory):
    total = 0
    for entry in os.scandir(directory):
        if entry.is_file() and not entry.name.endswith(".lock"):
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
    return total


class AckLog:
    """Reads a writer's ack file as it grows; applies acknowledged ops to a model."""

    def __init__(self, path, model, sizes):
        self.path, self.model, self.sizes = path, model, sizes
        self.offset = 0
        self.pending = {}      # seq -> op announced but not acknowledged (yet)
        self.acked = 0
        self.ready = False

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            if line == b"ready":
                self.ready = True
            elif line.startswith(b"I "):
                _, seq, op = line.split(b" ", 2)
                self.pending[int(seq)] = json.loads(op)
            else:
                op = self.pending.pop(int(line.split()[1]))
                self.apply(op)
                self.acked += 1

    def apply(self, op):
        kind, a, b = op
        if kind == "batch":
            for sub in a:
                self.apply(sub)
        elif kind == "set":
            self.model[a] = b
            self.sizes[a] = record_bytes(a, b)
        else:
            self.model.pop(a, None)
            self.sizes.pop(a, None)

    def in_flight(self):
        assert len(self.pending) <= 1, f"more than one call in flight: {sorted(self.pending)}"
        return next(iter(self.pending.values()), None)


def daemon_command(store):
    return [sys.executable, "-m", "pysos.compactor", "--threshold", str(THRESHOLD),
            "--min-dead-bytes", str(MIN_DEAD_BYTES), "--interval", "0.5",
            "--segment-size", str(SEGMENT_SIZE), str(store)]


def start(command, log):
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)


def kill(proc):
    if proc is not None and proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    if proc is not None:
        proc.wait()


@pytest.mark.soak
def test_churn_soak(tmp_path):
    """Random SIGKILLs of a churning writer and of the compactor daemon, with a reader running: at every restart the store equals the acknowledged changes (the call in flight whole or absent), readers never see a wrong or older value, and disk stays within 4 x live + slack."""
    store = tmp_path / "store"
    pysos.Dict(store, autocompact=False).close()
    errfile, stopfile = tmp_path / "reader-errors", tmp_path / "stop"
    logs = open(tmp_path / "children.log", "wb")
    use_daemon = DAEMON.exists() and os.environ.get("PYSOS_SOAK_COMPACTOR", "daemon") == "daemon"
    rng = random.Random(int(os.environ.get("PYSOS_SOAK_SEED", "7")))
    model, sizes = {}, {}
    figures = {"ops": 0, "writer_kills": 0, "compactor_kills": 0, "in_flight_kept": 0,
               "in_flight_dropped": 0, "max_disk_live_ratio": 0.0, "samples": 0,
               "max_live_bytes": 0, "compactor": "daemon" if use_daemon else "writer thread"}
    worst = None

    def sample(live_bytes, where):
        nonlocal worst
        disk = disk_bytes(store)
        figures["samples"] += 1
        figures["max_live_bytes"] = max(figures["max_live_bytes"], live_bytes)
        if live_bytes >= MEASURE_FROM_LIVE:
            ratio = disk / live_bytes
            if ratio > figures["max_disk_live_ratio"]:
                figures["max_disk_live_ratio"] = round(ratio, 3)
            if disk > LIVE_FACTOR * live_bytes + SLACK_BYTES and worst is None:
                worst = f"{where}: disk {disk} bytes for {live_bytes} live bytes ({sorted(os.listdir(store))})"

    reader = start([sys.executable, str(WORKER), "reader", str(store), str(errfile), str(stopfile)], logs)
    daemon = start(daemon_command(store), logs) if use_daemon else None
    daemon_down_until = None
    writer = None
    deadline = time.monotonic() + SOAK_SECONDS
    life = 0
    try:
        while time.monotonic() < deadline or figures["writer_kills"] < MIN_WRITER_KILLS:
            life += 1
            acks = AckLog(tmp_path / f"ack-{life}", model, sizes)
            writer = start([sys.executable, str(WORKER), "writer", str(store), str(life), str(acks.path),
                            str(SEGMENT_SIZE), "0" if use_daemon else "1"], logs)
            started = time.monotonic()
            while not acks.ready:
                assert writer.poll() is None, f"writer died: {(tmp_path / 'children.log').read_text()[-3000:]}"
                assert time.monotonic() - started < 60, "writer never opened the store"
                time.sleep(0.01)
                acks.poll()
            life_ends = time.monotonic() + rng.uniform(0.2, 1.2)
            while time.monotonic() < life_ends:
                time.sleep(0.05)
                acks.poll()
                sample(sum(sizes.values()), f"writer life {life}")
                if use_daemon:
                    if daemon is None and time.monotonic() >= daemon_down_until:
                        daemon = start(daemon_command(store), logs)
                    elif daemon is not None and rng.random() < 0.06:
                        kill(daemon)
                        figures["compactor_kills"] += 1
                        daemon, daemon_down_until = None, time.monotonic() + rng.uniform(0.0, 0.5)
            kill(writer)
            figures["writer_kills"] += 1
            acks.poll()
            figures["ops"] += acks.acked
            in_flight = acks.in_flight()
            after = dict(model)
            if in_flight is not None:
                w.apply(after, in_flight)
            with pysos.Dict(store, autocompact=False, lock_timeout=30) as d:
                got = dict(d.items())
                live = d.stats()["live_bytes"]
            assert got in (model, after), (
                f"writer life {life}: the store is neither the acknowledged state nor it plus the "
                f"call in flight ({in_flight!r}): {describe(got, model)}")
            if in_flight is not None and got == after and after != model:
                figures["in_flight_kept"] += 1
                acks.apply(in_flight)
            elif in_flight is not None:
                figures["in_flight_dropped"] += 1
            assert live == sum(sizes.values())
            sample(live, f"restart {life}")
    finally:
        stopfile.touch()
        kill(writer)
        if daemon is not None and daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                kill(daemon)
        try:
            reader.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill(reader)
        logs.close()

    errors = errfile.read_text() if errfile.exists() else ""
    assert errors == "", f"reader saw:\n{errors[:3000]}"
    figures["reader_reads"] = int((tmp_path / "reader-errors.reads").read_text())
    with pysos.Dict(store, autocompact=False) as d:
        assert dict(d.items()) == model
        d.compact()
        assert dict(d.items()) == model
    assert pysos.check(store) == []
    print("\nchurn soak figures:", json.dumps(figures))
    assert worst is None, f"disk over {LIVE_FACTOR} x live + {SLACK_BYTES}: {worst} (figures: {figures})"
    assert figures["ops"] > 0 and figures["reader_reads"] > 0


def describe(got, want):
    missing = sorted(k for k in want if k not in got)[:5]
    extra = sorted(k for k in got if k not in want)[:5]
    wrong = sorted(k for k in want if k in got and got[k] != want[k])[:5]
    return f"missing={missing} extra={extra} wrong={wrong}"
