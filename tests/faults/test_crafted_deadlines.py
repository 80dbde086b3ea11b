"""A record whose checksum is right but whose deadline is not a number (a hand edit, a
writer of one's own that got FORMAT.md wrong): damage like any malformed record.

Open raises CorruptionError naming the file and the offset (a reader too), ``check``
reports it, ``repair`` salvages the other records, the CLI prints no traceback, and the
compactor daemon goes on with the other stores it watches."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time

import pytest

import pysos
from pysos.compactor import daemon, plan
from pysos.segments import record

ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]

BAD = {
    "string": b'"x":"soon","k":"c","v":2}',
    "null": b'"x":null,"k":"c","v":2}',
    "true": b'"x":true,"k":"c","v":2}',
    "array": b'"x":[1],"k":"c","v":2}',
    "not first": b'"k":"c","x":1,"v":2}',  # FORMAT.md: "x" comes right after "c", or not at all
    "twice": b'"x":"soon","k":"c","v":2,"x":1}',  # a JSON parse keeps the last "x", a scan the first
    "twice, numbers": b'"x":1,"k":"c","v":2,"x":2000000000}',
}


def _crafted_store(path, body: bytes) -> int:
    """A store whose newest segment holds a good record, the crafted one, then good ones
    (so it is damage, not a torn tail); no hints (open scans). Returns its offset."""
    with pysos.Dict(path, autocompact=False) as d:
        d.set("a", 1, expire=3600)
    segment = sorted(path.glob("seg-*.jsonl"))[-1]
    data = segment.read_bytes()
    segment.write_bytes(data + record.frame(body) + record.encode_item("z", 26, time.time() + 3600))
    for hint in path.glob("*.hint"):
        hint.unlink()
    return len(data)


@pytest.mark.parametrize("how", sorted(BAD))
def test_open_and_check_name_the_record(store_path, how):
    offset = _crafted_store(store_path, BAD[how])
    for readonly in (False, True):
        with pytest.raises(pysos.CorruptionError, match=rf"seg-\d+\.jsonl.*\b{offset}\b"):
            pysos.Dict(store_path, readonly=readonly)
    problems = pysos.check(store_path)
    assert [(p["offset"], p["severity"]) for p in problems if p["file"].startswith("seg-")] == [(offset, "error")], problems


@pytest.mark.parametrize("how", ["string", "not first", "twice"])
def test_repair_keeps_the_good_records(store_path, how):
    _crafted_store(store_path, BAD[how])
    pysos.repair(store_path)
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {"a": 1, "z": 26}
    assert pysos.check(store_path) == []


@pytest.mark.parametrize("how", ["string", "twice"])
def test_the_cli_reports_it_without_a_traceback(store_path, how):
    _crafted_store(store_path, BAD[how])
    for args in (["check"], ["get", "a"], ["info"], ["dump"]):
        proc = subprocess.run([sys.executable, "-m", "pysos", *args, str(store_path)], capture_output=True,
                              text=True, cwd=str(ROOT), timeout=60)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
    proc = subprocess.run([sys.executable, "-m", "pysos.compactor", "--once", str(store_path)], capture_output=True,
                          text=True, cwd=str(ROOT), timeout=60)
    assert "Traceback" not in proc.stderr, proc.stderr


def _crafted_sealed(path) -> None:
    """A store whose sealed segments have garbage to merge, one record of the oldest
    replaced in place by a crafted one of the same length (the MANIFEST's sizes hold)."""
    with pysos.Dict(path, autocompact=False, segment_size=4096) as d:
        for round_ in range(3):
            for i in range(60):
                d.set(f"k{i}", round_, expire=3600)
    oldest = sorted(path.glob("seg-*.jsonl"))[0]
    data = oldest.read_bytes()
    first = data[: data.index(b"\n") + 1]
    filler = len(first) - len(record.frame(b'"x":"","k":"k0","v":0}'))
    crafted = record.frame(b'"x":"' + b"s" * filler + b'","k":"k0","v":0}')
    assert len(crafted) == len(first)
    oldest.write_bytes(crafted + data[len(first):])
    for hint in path.glob("*.hint"):
        hint.unlink()


def _disk(path) -> int:
    return sum(f.stat().st_size for f in path.glob("seg-*"))


def test_the_daemon_goes_on_with_its_other_stores(tmp_path, caplog):
    """One store with such a record in a sealed segment: the daemon logs it and still
    compacts the other (it used to die of the ValueError, for every store it watched)."""
    bad, good = tmp_path / "bad", tmp_path / "good"
    _crafted_sealed(bad)
    with pysos.Dict(good, autocompact=False, segment_size=4096) as d:
        for round_ in range(6):
            for i in range(100):
                d[f"k{i}"] = round_
    disk = _disk(good)
    compactor = daemon.Daemon([str(bad), str(good)], plan.Policy(min_dead_bytes=0), interval=0.05)
    runner = threading.Thread(target=compactor.run, daemon=True)
    with caplog.at_level(logging.ERROR, logger="pysos"):
        runner.start()
        deadline = time.monotonic() + 20
        while _disk(good) >= disk and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # (a few more looks at the bad store)
        alive = runner.is_alive()
        compactor.stop()
        runner.join(10)
    assert alive, "the daemon stopped"
    assert _disk(good) < disk
    assert any(str(bad) in r.getMessage() and "seg-" in r.getMessage() for r in caplog.records), caplog.text
    with pytest.raises(pysos.CorruptionError):
        pysos.Dict(bad)


def test_the_daemon_survives_a_failure_it_does_not_expect(tmp_path, caplog, monkeypatch):
    """Whatever one store's compaction raises (a bug, here a RuntimeError), the daemon logs
    it with its traceback and goes on watching every store."""
    stores = [tmp_path / "one", tmp_path / "two"]
    for path in stores:
        with pysos.Dict(path, autocompact=False, segment_size=4096) as d:
            for round_ in range(6):
                for i in range(100):
                    d[f"k{i}"] = round_
    disk = _disk(stores[1])
    real = daemon.StoreWatch.compact_if_due

    def flaky(self, *args, **kwargs):
        if self.directory == str(stores[0]):
            raise RuntimeError("a bug of ours")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(daemon.StoreWatch, "compact_if_due", flaky)
    compactor = daemon.Daemon([str(p) for p in stores], plan.Policy(min_dead_bytes=0), interval=0.05)
    runner = threading.Thread(target=compactor.run, daemon=True)
    with caplog.at_level(logging.ERROR, logger="pysos"):
        runner.start()
        deadline = time.monotonic() + 20
        while _disk(stores[1]) >= disk and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        alive = runner.is_alive()
        compactor.stop()
        runner.join(10)
    assert alive and _disk(stores[1]) < disk
    assert any("a bug of ours" in r.getMessage() or (r.exc_info and "a bug of ours" in str(r.exc_info[1]))
               for r in caplog.records), caplog.text
