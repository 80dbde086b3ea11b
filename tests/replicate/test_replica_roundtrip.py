"""Replicate, then restore: what comes back is what the store held, for Dicts and Lists,
across rotations, compactions and batches; a step costs at most two PUTs and an idle
store sends nothing."""

import sys

import pysos
import pytest

from replicate_util import contents, replicator, restored


def test_dict_round_trip_through_rotations_compaction_and_batches(bucket, tmp_path):
    """A Dict restored after rotations, a compaction and batches equals the source."""
    store = pysos.Dict(tmp_path / "src", segment_size=4096, autocompact=False)
    rep = replicator(tmp_path / "src", bucket)
    for i in range(300):
        store[f"k{i}"] = {"i": i, "text": "x" * (i % 40)}
        if i % 50 == 49:
            rep.step()
    with store.batch():
        for i in range(0, 300, 3):
            del store[f"k{i}"]
        store["unicode \u2028 \U0001f600"] = [1.5, None, True, "\n"]
    rep.step()
    assert restored(bucket, tmp_path) == dict(store.items())
    store.compact()
    for i in range(300, 400):
        store[i] = i
    rep.step()
    assert len(store.stats()) and store.stats()["segments"] > 1
    assert restored(bucket, tmp_path) == dict(store.items())
    store.close()


def test_list_round_trip(bucket, tmp_path):
    """A List restored after inserts, deletes, a sort and rotations equals the source."""
    store = pysos.List(tmp_path / "src", segment_size=2048, autocompact=False)
    rep = replicator(tmp_path / "src", bucket)
    store.extend(range(200))
    rep.step()
    store.insert(0, "first")
    store.insert(100, {"middle": True})
    del store[5:40:3]
    store.reverse()
    rep.step()
    assert restored(bucket, tmp_path) == list(store)
    store.sort(key=str)
    store.compact()
    rep.step()
    assert restored(bucket, tmp_path) == list(store)
    store.close()


def test_a_step_with_writes_costs_at_most_two_puts_and_an_idle_store_sends_nothing(bucket, tmp_path):
    """Writes within one interval: 2 PUTs (log + MANIFEST); no writes: no request at all."""
    store = pysos.Dict(tmp_path / "src", autocompact=False)
    store["a"] = 1
    rep = replicator(tmp_path / "src", bucket)
    counters = rep.client.counters
    for round_ in range(5):
        for i in range(100):
            store[f"{round_}-{i}"] = i
        before = counters.snapshot()
        assert rep.step()
        after = counters.snapshot()
        assert after["puts"] - before["puts"] == 2
        assert after["gets"] == before["gets"] and after["lists"] == before["lists"] == 0
    before = counters.snapshot()
    for _ in range(5):
        assert not rep.step()
        rep.collect()
    assert counters.snapshot() == before
    store.close()


def test_a_half_written_batch_is_never_shipped(bucket, tmp_path):
    """Bytes of an unfinished batch at the end of the newest segment stay local."""
    store = pysos.Dict(tmp_path / "src", autocompact=False)
    store["before"] = 1
    store.close()
    from pysos.segments import manifest, record

    newest = tmp_path / "src" / manifest.read(str(tmp_path / "src")).segments[-1]
    with open(newest, "ab") as f:  # what a writer killed in the middle of a batch leaves
        f.write(record.BATCH_BEGIN_LINE + record.encode_set(b'"torn"', b"1"))
    rep = replicator(tmp_path / "src", bucket)
    assert rep.body["tail"]["size"] < newest.stat().st_size
    assert restored(bucket, tmp_path) == {"before": 1}


def test_importing_pysos_does_not_import_boto3(tmp_path):
    """boto3 is the extra's: 'import pysos' (and pysos.replicate) never loads it."""
    import subprocess

    code = "import sys, pysos, pysos.replicate, pysos.cli.main; print('boto3' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_replicate_once_from_the_command_line(bucket, tmp_path, kind):
    """'python -m pysos.replicate STORE URL --once' ships everything and exits 0."""
    import subprocess

    path = tmp_path / "src"
    store = pysos.Dict(path) if kind == "dict" else pysos.List(path)
    if kind == "dict":
        store.update({f"k{i}": i for i in range(50)})
    else:
        store.extend(range(50))
    out = subprocess.run([sys.executable, "-m", "pysos.replicate", str(path), bucket.url(), "--once"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert restored(bucket, tmp_path) == (dict(store.items()) if kind == "dict" else list(store))
    store.close()
    assert contents(path) is not None


def test_pysos_replicate_and_restore_at_from_the_pysos_command(bucket, tmp_path):
    """'pysos replicate --once' then 'pysos restore --at ISO-TIME' give the store as it was."""
    import subprocess
    import time

    path = tmp_path / "src"
    with pysos.Dict(path) as d:
        d["v"] = 1
    cli = [sys.executable, "-m", "pysos"]
    assert subprocess.run(cli + ["replicate", str(path), bucket.url(), "--once"], timeout=60).returncode == 0
    between = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))
    time.sleep(2.1)
    with pysos.Dict(path) as d:
        d["v"] = 2
    assert subprocess.run(cli + ["replicate", str(path), bucket.url(), "--once"], timeout=60).returncode == 0
    out = subprocess.run(cli + ["restore", "--at", between, bucket.url(), str(tmp_path / "then")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert contents(tmp_path / "then") == {"v": 1}
    assert subprocess.run(cli + ["restore", bucket.url(), str(tmp_path / "now")], timeout=60).returncode == 0
    assert contents(tmp_path / "now") == {"v": 2}


def test_a_slow_writers_many_chunks_are_merged_and_restore(bucket, tmp_path):
    """Hundreds of one-record steps into one segment: the commit names few parts (merged
    into pieces), and the restore is exact."""
    from pysos.replicate.uploader import MERGE

    store = pysos.Dict(tmp_path / "src", autocompact=False)
    rep = replicator(tmp_path / "src", bucket)
    for i in range(MERGE * 3 + 5):
        store[f"k{i}"] = i
        rep.step()
    parts = rep.body["tail"]["parts"]
    assert len(parts) < MERGE + 5 and max(p[3] for p in parts) >= 1
    assert restored(bucket, tmp_path) == dict(store.items())
    store.close()
