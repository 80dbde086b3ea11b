"""Power loss in "fsync" durability, simulated by tracking what each fsync made durable.

At a chosen files-layer call the power is cut: every byte not yet fsync'ed is dropped
(or turned into garbage) and every create, rename or unlink whose directory was not
fsync'ed is undone. After the "reboot" every change whose call returned is there, the
one in flight is there or not (whole), and the store opens, passes check() and writes.
"""

import random

import pytest

import pysos

from faultfs import PowerCut, PowerLoss, abandon, describe

SEGMENT_SIZE = 1200


def workload(seed, n=70):
    """A deterministic list of operations: sets, deletes, batches, compactions."""
    rng = random.Random(seed)
    ops = []
    for i in range(n):
        r = rng.random()
        if r < 0.55:
            ops.append(("set", f"k{rng.randrange(25)}", {"i": i, "pad": "v" * rng.randrange(5, 60)}))
        elif r < 0.75:
            ops.append(("del", f"k{rng.randrange(25)}", None))
        elif r < 0.92:
            ops.append(("batch", [(f"k{rng.randrange(25)}", i * 100 + j) for j in range(rng.randrange(1, 6))], None))
        else:
            ops.append(("compact", None, None))
    return ops


def apply(target, op):
    kind, a, b = op
    if kind == "set":
        target[a] = b
    elif kind == "del":
        if a in target:
            del target[a]
    elif kind == "batch":
        if isinstance(target, dict):
            target.update(a)
        else:
            with target.batch():
                for key, value in a:
                    target[key] = value
    elif kind == "compact" and not isinstance(target, dict):
        target.compact()


def run_until_cut(monkeypatch, path, ops, cut_at, garbage, seed):
    """Run ``ops`` with power cut at call ``cut_at``; return (acknowledged model, op in flight, calls)."""
    loss = PowerLoss(monkeypatch, path, cut_at=cut_at, garbage=garbage, seed=seed)
    model, in_flight, d = {}, None, None
    try:
        d = pysos.Dict(path, durability="fsync", segment_size=SEGMENT_SIZE, autocompact=False)
        for op in ops:
            in_flight = op
            apply(d, op)
            apply(model, op)
            in_flight = None
        d.close()
    except PowerCut:
        loss.restore()
        if d is not None:
            abandon(d)
    calls = loss.ops
    loss.reboot()
    return model, in_flight, calls


def check_after_reboot(path, model, in_flight, where, compact=True):
    allowed = [model]
    if in_flight is not None:
        after = dict(model)
        apply(after, in_flight)
        allowed.append(after)
    with pysos.Dict(path, segment_size=SEGMENT_SIZE, autocompact=False) as d:
        got = dict(d.items())
        assert got in allowed, f"{where}: {describe(got, model)} (in flight: {in_flight})"
        d["after-reboot"] = 1
        if compact:
            d.compact()
        got["after-reboot"] = 1
        assert dict(d.items()) == got, where
    errors = [p for p in pysos.check(path) if p.get("severity", "error") == "error"]
    assert errors == [], where


@pytest.mark.parametrize("seed,garbage", [(1, False), (2, True)], ids=["dropped", "garbage"])
def test_power_cut_at_every_call(tmp_path, monkeypatch, seed, garbage):
    """A power cut at each files-layer call of a workload of sets, deletes, batches, rotations and compactions in "fsync" durability: after the reboot every acknowledged change is there and nothing else but the change in flight."""
    ops = workload(seed)
    model, in_flight, total = run_until_cut(monkeypatch, tmp_path / "full", ops, None, garbage, seed)
    assert in_flight is None and total > 100
    rng = random.Random(seed)
    cuts = sorted(set(range(1, total + 1, max(1, total // 45))) | {rng.randrange(1, total + 1) for _ in range(10)})
    for i, cut_at in enumerate(cuts):
        path = tmp_path / f"cut-{cut_at}"
        model, in_flight, _ = run_until_cut(monkeypatch, path, ops, cut_at, garbage, seed)
        check_after_reboot(path, model, in_flight, f"power cut at call {cut_at} of {total}", compact=i % 4 == 0)


def test_power_cut_model_drops_unsynced(tmp_path, monkeypatch):
    """The simulation itself: bytes written but never fsync'ed ("flush" durability) are gone after the reboot, so the power-loss tests above can fail."""
    path = tmp_path / "store"
    loss = PowerLoss(monkeypatch, path, cut_at=None)
    d = pysos.Dict(path, durability="flush", autocompact=False)
    d["synced"] = 1
    d.sync()
    d["unsynced"] = 2
    loss.restore()
    abandon(d)
    loss.reboot()
    with pysos.Dict(path, autocompact=False) as d:
        assert dict(d.items()) == {"synced": 1}
