"""check() and repair() through the API: what they report, with which severity, and that
repair never deletes a byte it could not read."""

import os

import pytest

import pysos
from pysos.segments import manifest

from faultfs import reopen_equals


def build(path, n=40, segment_size=1200):
    model = {}
    with pysos.Dict(path, autocompact=False, segment_size=segment_size) as d:
        for i in range(n):
            d[f"k{i}"] = {"i": i, "pad": "c" * 20}
            model[f"k{i}"] = {"i": i, "pad": "c" * 20}
    return model


def names(path):
    return list(manifest.read(os.fspath(path)).segments)


def snapshot(path):
    return {n: (path / n).read_bytes() for n in sorted(os.listdir(path)) if (path / n).is_file() and not n.endswith(".lock")}


def test_healthy_store(store_path):
    """A healthy store: check() returns an empty list and changes nothing; repair() salvages every key, loses none, sets nothing aside, and leaves the same contents."""
    model = build(store_path)
    generation_before = manifest.read(os.fspath(store_path)).generation
    before = snapshot(store_path)
    assert pysos.check(store_path) == []
    assert snapshot(store_path) == before
    result = pysos.repair(store_path)
    assert (result["salvaged"], result["lost"], result["set_aside"], result["problems"]) == (len(model), 0, [], [])
    assert generation_before < result["generation"] == manifest.read(os.fspath(store_path)).generation
    reopen_equals(store_path, model)
    assert pysos.check(store_path) == []


def test_problem_shape_and_severities(store_path):
    """Each problem is a dict with file, offset, problem and severity; a torn tail and a leftover file are warnings, a checksum failure in a sealed segment is an error."""
    build(store_path)
    segs = names(store_path)
    with open(store_path / segs[-1], "ab") as f:
        f.write(b'{"c":"0000')                      # torn tail of the newest segment
    (store_path / "seg-99999999.jsonl").write_bytes(b"")  # a leftover of an interrupted rotation
    problems = pysos.check(store_path)
    assert problems and all(set(p) >= {"file", "offset", "problem", "severity"} for p in problems)
    assert {p["severity"] for p in problems} == {"warning"}, problems
    assert {p["file"] for p in problems} == {segs[-1], "seg-99999999.jsonl"}
    data = (store_path / segs[0]).read_bytes()
    (store_path / segs[0]).write_bytes(data[:5] + b"X" + data[6:])
    errors = [p for p in pysos.check(store_path) if p["severity"] == "error"]
    assert [(p["file"], p["offset"]) for p in errors] == [(segs[0], 0)]
    assert all(isinstance(p["problem"], str) and p["problem"] for p in errors)


def test_torn_tail_is_cut_by_the_writer_not_by_check(store_path):
    """check() only reports a torn tail; the next writer cuts it and then check() is clean."""
    model = build(store_path)
    newest = store_path / names(store_path)[-1]
    with open(newest, "ab") as f:
        f.write(b'{"c":"12345678","k":"half')
    size = newest.stat().st_size
    pysos.check(store_path)
    assert newest.stat().st_size == size
    reopen_equals(store_path, model)
    assert pysos.check(store_path) == []


def test_repair_never_deletes_damaged_bytes(store_path):
    """repair() moves every damaged segment into damaged/ byte for byte, reports lost records and the problems, and the repaired store passes check()."""
    model = build(store_path)
    segs = names(store_path)
    damaged = {}
    for name in segs[:2]:
        data = bytearray((store_path / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (store_path / name).write_bytes(bytes(data))
        damaged[name] = bytes(data)
    result = pysos.repair(store_path)
    assert result["lost"] >= 2
    assert result["salvaged"] <= len(model) - 2
    assert [p for p in result["problems"] if p["severity"] == "error"]
    assert len(result["set_aside"]) == 2
    kept = {os.path.basename(p): (store_path / p).read_bytes() for p in result["set_aside"]}
    for name, data in damaged.items():
        assert [v for k, v in kept.items() if k.endswith(name)] == [data]
    assert pysos.check(store_path) == []
    with pysos.Dict(store_path, readonly=True) as d:
        got = dict(d.items())
    assert all(model[k] == v for k, v in got.items()), "repair returned a wrong value"
    assert len(got) == result["salvaged"]


def test_repair_refuses_while_a_writer_is_open(store_path):
    """repair() with a writer open raises LockedError and touches nothing."""
    build(store_path)
    before = snapshot(store_path)
    with pysos.Dict(store_path, autocompact=False):
        with pytest.raises(pysos.LockedError):
            pysos.repair(store_path)
    assert snapshot(store_path) == before


def test_check_and_repair_of_nothing(tmp_path):
    """check() and repair() of a path with no store raise FileNotFoundError and create nothing."""
    missing = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError):
        pysos.check(missing)
    with pytest.raises(FileNotFoundError):
        pysos.repair(missing)
    assert not missing.exists()


def test_repair_is_idempotent(store_path):
    """A second repair() after a first finds nothing more to do and keeps the same contents."""
    model = build(store_path)
    data = bytearray((store_path / names(store_path)[0]).read_bytes())
    data[3] ^= 0x01
    (store_path / names(store_path)[0]).write_bytes(bytes(data))
    first = pysos.repair(store_path)
    second = pysos.repair(store_path)
    assert second["lost"] == 0 and second["set_aside"] == [] and second["salvaged"] == first["salvaged"]
    with pysos.Dict(store_path, readonly=True) as d:
        assert len(d) == first["salvaged"] and all(model[k] == v for k, v in d.items())
