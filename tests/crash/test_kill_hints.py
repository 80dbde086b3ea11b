"""SIGKILL of a writer that opened its store from hints (issue 14): the hint of the last
clean close is used again, only what lies past it is scanned, and nothing whose call
returned is lost, whether the kill falls between writes, in a rotation or while a
sealed segment's hint is being written."""

import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pysos
from pysos.segments import manifest

CHILD = Path(__file__).with_name("crash_child.py")
_spec = importlib.util.spec_from_file_location("pysos_crash_child_hints", CHILD)
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)


def _kill_after(path, report, seed, segment_size, at_least):
    """Run the crash child on ``path``; SIGKILL it once it reported ``at_least`` changes."""
    env = dict(os.environ, PYSOS_SRC=str(Path(pysos.__file__).resolve().parent.parent))
    proc = subprocess.Popen([sys.executable, str(CHILD), "batch" if seed % 2 else "dict", str(path), str(seed),
                             str(segment_size), "0", str(report)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not report.exists() or report.read_bytes().count(b"\n") < at_least + 1:
            assert proc.poll() is None, f"child exited early: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, "child too slow"
            time.sleep(0.002)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    lines = report.read_bytes().split(b"\n")[:-1]
    assert lines[0] == b"ready"
    return len(lines) - 1


@pytest.mark.parametrize("segment_size,seed", [(64 * 2**20, 1), (64 * 2**20, 2), (3000, 3), (3000, 4)],
                         ids=["no-rotation-dict", "no-rotation-batch", "rotations-dict", "rotations-batch"])
def test_kill_after_the_hint_loses_nothing(tmp_path, caplog, segment_size, seed):
    """A store closed cleanly (its newest segment hinted), then a writer killed with SIGKILL mid-stream: reopening uses the close's hint, scans only past it when that segment is still the newest, and holds every returned change (the one in flight may or may not be there)."""
    path = tmp_path / "store"
    model = {f"k{i}": {"start": i} for i in range(250)}
    with pysos.Dict(path, segment_size=segment_size) as d:
        d.update(model)
    first_newest = manifest.read(os.fspath(path)).segments[-1]
    covered = os.path.getsize(path / first_newest)

    done = _kill_after(path, tmp_path / "report", seed, segment_size, at_least=300)
    stream = child.ops("batch" if seed % 2 else "dict", seed)
    for _ in range(done):
        child.apply("dict", model, next(stream))
    with_in_flight = dict(model)
    child.apply("dict", with_in_flight, next(stream))

    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pysos"):
        d = pysos.Dict(path, segment_size=segment_size, autocompact=False)
    try:
        got = dict(d.items())
        assert got in (model, with_in_flight), f"{done} changes reported"
        report = {r.pysos_segment: (r.pysos_hinted, r.pysos_scanned) for r in caplog.records
                  if hasattr(r, "pysos_segment")}
        if first_newest in report:  # still named (no compaction merged it away)
            hinted, scanned = report[first_newest]
            assert hinted >= covered, "the hint of the clean close was not used"
            if segment_size > 2**20:  # still the newest segment: only what came after is scanned
                assert hinted == covered and scanned == os.path.getsize(path / first_newest) - covered
        d["after"] = 1
        got["after"] = 1
    finally:
        d.close()
    assert [p for p in pysos.check(path) if p["severity"] == "error"] == []
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="pysos"):
        with pysos.Dict(path, autocompact=False) as d:
            assert dict(d.items()) == got
    newest = manifest.read(os.fspath(path)).segments[-1]
    assert [(r.pysos_hinted, r.pysos_scanned) for r in caplog.records
            if getattr(r, "pysos_segment", None) == newest] == [(os.path.getsize(path / newest), 0)]
