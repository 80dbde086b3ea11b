"""kill -9 at random points of a merge, in the daemon and in the writer's compaction thread.

Each trial is a real process (forked by one runner, so Python starts once) that counts the
filesystem calls the compactor makes and sends itself SIGKILL at a seeded random call:
while it scans, writes outputs or hints, fsyncs, swaps the MANIFEST, deletes retired
files or cleans leftovers. After each kill: reopening gives the model (nothing lost),
and after the next compaction and a reopen the directory holds only the MANIFEST, the
segments it names, their hints and lock files.
"""

import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path

import pysos
from compactor_util import churned_store, contents, unexpected_files
from pysos.segments import manifest

PROCS = Path(__file__).with_name("compactor_procs.py")
_spec = importlib.util.spec_from_file_location("pysos_compactor_procs", PROCS)
procs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(procs)

TRIALS = 24


def run_trials(tmp, trials):
    spec, result = tmp / "trials.json", tmp / "outcomes.json"
    spec.write_text(json.dumps(trials))
    done = subprocess.run([sys.executable, str(PROCS), "kill-trials", str(spec), str(result)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(result.read_text())


def check_clean_after_next_compaction(path, expected):
    """Reopen as writer, compact, reopen: same contents, no stray files."""
    with pysos.Dict(path, autocompact=False) as d:
        assert dict(d.items()) == expected
        d.compact()
    with pysos.Dict(path, autocompact=False) as d:
        assert dict(d.items()) == expected
    assert unexpected_files(path) == []


def test_kill_daemon_at_random_points_of_a_merge(fast_tmp):
    """24 seeded trials: SIGKILL `python -m pysos.compactor --once` (bounded 16 KiB merges,
    so several swaps per run) at a random filesystem call; nothing is lost and the next
    compaction leaves a clean directory."""
    rng = random.Random(20261127)
    base = fast_tmp / "base"
    model = churned_store(base, n=1200, segment_size=1024, keys=400)  # old keys stay live
    calibration = fast_tmp / "calibration"
    _copy(base, calibration)
    [calibrated] = run_trials(fast_tmp, [{"kind": "daemon", "path": str(calibration), "kill_at": 0}])
    assert calibrated["status"] == 0 and not calibrated["killed"], calibrated
    total = calibrated["calls"]
    assert total > 100
    assert contents(calibration) == model
    calibrated_merges = manifest.read(str(calibration)).generation - manifest.read(str(base)).generation
    assert calibrated_merges > 3

    trials = []
    for i in range(TRIALS):
        path = fast_tmp / f"t{i}"
        _copy(base, path)
        trials.append({"kind": "daemon", "path": str(path), "kill_at": rng.randint(1, total)})
    outcomes = run_trials(fast_tmp, trials)
    left_garbage = swapped = 0
    base_generation = manifest.read(str(base)).generation
    for trial, outcome in zip(trials, outcomes):
        assert outcome["killed"], (trial, outcome)
        left_garbage += bool(unexpected_files(trial["path"]))
        swapped += manifest.read(trial["path"]).generation > base_generation
        assert contents(trial["path"]) == model, trial       # readers see everything, at once
        check_clean_after_next_compaction(trial["path"], model)
    # the kills landed both before any swap and after some, and some mid-merge
    assert 0 < swapped < len(trials) and left_garbage > 0
    print(f"\ndaemon kill trials: {len(trials)}, calls per uninterrupted run: {total} "
          f"({calibrated_merges} merges); {swapped} killed after a swap, {left_garbage} left files "
          f"to clean up; kill points: {sorted(t['kill_at'] for t in trials)}")


def test_kill_writer_while_its_thread_compacts(fast_tmp):
    """24 seeded trials: a writer (autocompact=True, ratio 0, floor 0, 1 KiB segments)
    churns while its background thread compacts; SIGKILL at a random filesystem call of
    that thread. Every change whose call returned survives (the one in flight may or may
    not), and the next compaction leaves a clean directory."""
    rng = random.Random(7)
    calibration = {"kind": "writer", "path": str(fast_tmp / "calibration"), "kill_at": 0, "seed": 1,
                   "report": str(fast_tmp / "calibration.report"), "max_ops": 2000}
    [calibrated] = run_trials(fast_tmp, [calibration])
    assert calibrated["status"] == 0, calibrated
    total = calibrated["calls"]
    assert total > 100, "the background thread did not compact"

    trials = []
    for i in range(TRIALS):
        trials.append({"kind": "writer", "path": str(fast_tmp / f"t{i}"), "seed": 100 + i,
                       "kill_at": rng.randint(1, total), "report": str(fast_tmp / f"t{i}.report"),
                       "max_ops": 200_000})
    outcomes = run_trials(fast_tmp, trials)
    left_garbage = 0
    for trial, outcome in zip(trials, outcomes):
        assert outcome["killed"], (trial, outcome)
        lines = Path(trial["report"]).read_bytes().split(b"\n")[:-1]
        done = len(lines)
        assert [int(x) for x in lines] == list(range(done))
        left_garbage += bool(unexpected_files(trial["path"]))
        got = contents(trial["path"])
        allowed = [procs.model_after(trial["seed"], n, keys=80) for n in (done, done + 1)]
        assert got in allowed, trial
        check_clean_after_next_compaction(trial["path"], got)
    print(f"\nwriter kill trials: {len(trials)}, compactor calls in 2000 ops: {total}; "
          f"{left_garbage} left files to clean up")


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
