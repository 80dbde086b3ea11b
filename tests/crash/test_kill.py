"""Real-process crash tests: a child writes with durability="flush" and is killed with
SIGKILL at random moments; every change whose call returned must survive, the one in
flight may or may not, and the store must open, read, write and reopen afterwards."""

import importlib.util
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

CHILD = Path(__file__).with_name("crash_child.py")
_spec = importlib.util.spec_from_file_location("pysos_crash_child", CHILD)
child = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(child)

DEFAULT_SEGMENT = 64 * 2**20


def _run_and_kill(rng, tmp_path, mode, path, seed, segment_size, with_compact):
    """Start the child, SIGKILL it at a random moment; return (ready, number of reported changes)."""
    report = tmp_path / f"report-{seed}"
    errlog = tmp_path / f"stderr-{seed}"
    env = dict(os.environ, PYSOS_SRC=str(Path(pysos.__file__).resolve().parent.parent))
    with open(errlog, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), mode, str(path), str(seed), str(segment_size),
             "1" if with_compact else "0", str(report)],
            stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.25))  # may hit the import or the open (recovery)
        else:
            deadline = time.monotonic() + 60
            while not (report.exists() and report.read_bytes().startswith(b"ready\n")):
                assert proc.poll() is None, f"child exited early:\n{errlog.read_text()}"
                assert time.monotonic() < deadline, "child never opened the store"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.3))
        assert proc.poll() is None, f"child exited on its own:\n{errlog.read_text()}"
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    lines = report.read_bytes().split(b"\n")[:-1] if report.exists() else []  # complete lines only
    ready = bool(lines) and lines[0] == b"ready"
    done = [int(x) for x in lines[1:]]
    assert done == list(range(len(done))), "report is not a clean sequence"
    return ready, len(done)


def _candidates(mode, state, seed, n_done, ready, with_compact):
    """States allowed after the kill: all reported changes applied, plus or minus the one in flight."""
    if not ready:
        return [state]
    stream = child.ops(mode, seed, with_compact)
    before = type(state)(state)
    for _ in range(n_done):
        child.apply(mode, before, next(stream))
    after = type(before)(before)
    child.apply(mode, after, next(stream))
    return [before, after]


def _snapshot(store):
    return dict(store.items()) if isinstance(store, pysos.Dict) else list(store)


def _describe(got, want):
    if isinstance(want, dict):
        missing = sorted(k for k in want if k not in got)[:5]
        extra = sorted(k for k in got if k not in want)[:5]
        wrong = sorted(k for k in want if k in got and got[k] != want[k])[:5]
        return f"missing={missing} extra={extra} wrong={wrong}"
    return f"len got={len(got)} want={len(want)}"


def _stray_files(path):
    """Files in the store directory that the MANIFEST does not account for."""
    named = set(json.loads((path / "MANIFEST").read_text())["segments"])
    allowed = {"MANIFEST"} | named | {n.rsplit(".", 1)[0] + ".hint" for n in named}
    return sorted(n for n in os.listdir(path) if n not in allowed and not n.endswith(".lock"))


def _chain(tmp_path, mode, segment_size, with_compact, trials, chain_seed):
    """Run ``trials`` kill-and-recover rounds on one store, carrying the known state along."""
    rng = random.Random(chain_seed)
    path = tmp_path / "store"
    cls = pysos.List if mode == "list" else pysos.Dict
    with cls(path, segment_size=segment_size) as store:  # the store exists before any kill
        state = _snapshot(store)
    total_done = 0
    for trial in range(trials):
        seed = chain_seed * 1000 + trial
        ready, n_done = _run_and_kill(rng, tmp_path, mode, path, seed, segment_size, with_compact)
        total_done += n_done
        allowed = _candidates(mode, state, seed, n_done, ready, with_compact)
        with cls(path, segment_size=segment_size) as store:
            got = _snapshot(store)
            assert any(got == c for c in allowed), (
                f"trial {trial} (seed {seed}, {n_done} changes reported): "
                + _describe(got, allowed[0]))
            assert len(store) == len(got)
            # the recovered store accepts new writes
            if mode == "list":
                store.append({"parent": trial})
                got.append({"parent": trial})
            else:
                store[f"parent-{trial}"] = {"parent": trial}
                got[f"parent-{trial}"] = {"parent": trial}
            state = got
        # the open cleaned up whatever the killed writer (or its compaction) left behind
        assert _stray_files(path) == [], f"trial {trial}: leftovers after recovery"
        with cls(path, segment_size=segment_size) as store:  # and survives another reopen
            assert _snapshot(store) == state
    assert total_done > 0, "no trial got to write anything"


@pytest.mark.parametrize("segment_size,with_compact,chain_seed", [
    (2048, False, 1),
    (DEFAULT_SEGMENT, False, 2),
    (16384, True, 3),
])
def test_dict_kill9_loses_no_returned_change(tmp_path, segment_size, with_compact, chain_seed):
    """After SIGKILL a Dict holds every change whose call returned; only the in-flight one may be missing."""
    _chain(tmp_path, "dict", segment_size, with_compact, trials=8, chain_seed=chain_seed)


@pytest.mark.parametrize("segment_size,chain_seed", [(4096, 4), (DEFAULT_SEGMENT, 5)])
def test_batch_kill9_is_all_or_nothing(tmp_path, segment_size, chain_seed):
    """After SIGKILL every batch is wholly there or wholly absent, and every returned batch is there."""
    _chain(tmp_path, "batch", segment_size, False, trials=6, chain_seed=chain_seed)


def test_list_kill9_loses_no_returned_change(tmp_path):
    """After SIGKILL a List holds every append/insert/pop whose call returned, in order."""
    _chain(tmp_path, "list", 2048, False, trials=8, chain_seed=6)
