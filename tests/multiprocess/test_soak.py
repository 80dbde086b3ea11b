"""One writer, three reader processes and a compactor, for PYSOS_SOAK_SECONDS (default 10):
every read sees at least what the writer had published before it began, never less than
an earlier read, never a torn value, never an exception."""

import os
import signal
import subprocess
import sys
import time

import pytest

import pysos
import mp_workers as w

SOAK_SECONDS = float(os.environ.get("PYSOS_SOAK_SECONDS", "10"))
SEGMENT_SIZE = 16 * 1024   # rotate every few dozen writes: many rotations and swaps


def daemon_command(paths):
    """``python -m pysos.compactor`` made eager: compact at the least garbage, look often."""
    return [sys.executable, "-m", "pysos.compactor", "--threshold", "0.1", "--min-dead-bytes", "1",
            "--interval", "0.2", "--max-merge-bytes", str(4 * SEGMENT_SIZE),
            "--segment-size", str(SEGMENT_SIZE), *map(str, paths)]


def start_compactor(kind, ctx, paths, stop, queue, log):
    """The compactor daemon, or a process that compacts the stores from outside in a loop."""
    if kind == "daemon":
        with open(log, "wb") as err:
            return subprocess.Popen(daemon_command(paths), stdout=subprocess.DEVNULL, stderr=err)
    proc = ctx.Process(target=w.loop_compactor, args=([str(p) for p in paths], SEGMENT_SIZE, stop, queue))
    proc.start()
    return proc


def stop_compactor(kind, proc, log):
    if kind == "daemon":
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err = log.read_text(errors="replace")
        assert proc.returncode == 0, f"compactor daemon exited with {proc.returncode}:\n{err}"
        assert "Traceback" not in err, err
    else:
        proc.join(60)
        assert proc.exitcode == 0


@pytest.mark.soak
@pytest.mark.parametrize("kind", ["daemon", "loop"])
def test_readers_follow_writer_under_churn_rotation_and_compaction(tmp_path, kind):
    """Three reader processes never see a Dict counter or a List length behind the writer's published one, nor going back."""
    ctx = w.context()
    dict_path, list_path = tmp_path / "dict", tmp_path / "list"
    pysos.Dict(dict_path).close()
    pysos.List(list_path).close()
    counter, list_count = ctx.Value("q", -1), ctx.Value("q", 0)
    stop, queue = ctx.Event(), ctx.Queue()
    options = {"seed": 1234, "segment_size": SEGMENT_SIZE, "writer_compact_every": 1500}

    writer = ctx.Process(target=w.soak_writer, args=(dict_path, list_path, counter, list_count, stop, options, queue))
    readers = [ctx.Process(target=w.soak_reader,
                           args=(dict_path, list_path, counter, list_count, stop, interval, queue))
               for interval in (0.0, 0.0, 0.2)]
    writer.start()
    for reader in readers:
        reader.start()
    compactor = start_compactor(kind, ctx, [dict_path, list_path], stop, queue, tmp_path / "compactor.log")
    try:
        deadline = time.monotonic() + SOAK_SECONDS
        while time.monotonic() < deadline and writer.is_alive() and all(r.is_alive() for r in readers):
            time.sleep(0.1)
    finally:
        stop.set()
        for proc in [writer, *readers]:
            proc.join(60)
            if proc.exitcode is None:
                proc.kill()
        stop_compactor(kind, compactor, tmp_path / "compactor.log")
    errors, figures = w.drain(queue)
    assert not errors, "\n".join(errors)
    assert writer.exitcode == 0 and all(r.exitcode == 0 for r in readers)
    written = next(f for who, f in figures.items() if who.startswith("soak_writer"))["writes"]
    read = [f for who, f in figures.items() if who.startswith("soak_reader")]
    assert len(read) == 3
    for f in read:  # every reader really read, and saw the writer move
        assert f["dict_reads"] > 0 and f["list_reads"] > 0 and f["dict_scans"] > 0 and f["list_scans"] > 0
        assert 0 <= f["counter"] <= written - 1 and 0 < f["len"] <= written
    with pysos.Dict(dict_path, readonly=True) as d, pysos.List(list_path, readonly=True) as lst:
        assert d["counter"] == written - 1
        assert list(lst) == list(range(written))
    compactions = [f for who, f in figures.items() if who.startswith("loop_compactor")]
    if kind == "daemon":
        compactions = (tmp_path / "compactor.log").read_text().count("compacted")
    print(f"soak {SOAK_SECONDS}s with {kind} compactor {compactions}: {written} writes; readers: {read}")
