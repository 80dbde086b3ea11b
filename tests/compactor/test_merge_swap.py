"""Merges and their atomic MANIFEST swap (pysos.compactor.merge), in one process."""

import os
import random

import pytest

import pysos
from compactor_util import churn, churned_store, contents, segment_bytes, unexpected_files
from pysos.compactor import merge
from pysos.compactor.throttle import Interrupted, Throttle
from pysos.segments import files, hints, index, manifest, segment


def _outputs(before, after):
    return [n for n in after.segments if n not in before.segments]


def test_merge_bumps_generation_and_names_outputs(store_path):
    """A merge publishes generation + 1 with the run replaced by its outputs, in place."""
    model = churned_store(store_path)
    before = manifest.read(str(store_path))
    start, stop = len(before.segments) - 6, len(before.segments) - 1  # recent: live records
    result = merge.compact_directory(str(store_path), segment_size=4096, choose=lambda d, m: (start, stop))
    after = manifest.read(str(store_path))
    assert after.generation == before.generation + 1 == result["generation"]
    outs = _outputs(before, after)
    assert outs and after.segments == before.segments[:start] + tuple(outs) + before.segments[stop:]
    assert result["segments_in"] == 5 and result["segments_out"] == len(outs)
    assert result["reclaimed_bytes"] == result["bytes_in"] - result["bytes_out"] > 0
    assert contents(store_path) == model


def test_outputs_have_valid_hints_matching_their_records(store_path):
    """Every output segment has a hint whose keys and locations are its live records', and
    whose tombstones are its tombstones."""
    churned_store(store_path)
    before = manifest.read(str(store_path))
    merge.compact_directory(str(store_path), segment_size=2048)
    after = manifest.read(str(store_path))
    outs = _outputs(before, after)
    assert len(outs) > 1  # several outputs of at most ~segment_size bytes
    for name in outs:
        path = os.path.join(store_path, name)
        fd = files.open_read(path)
        try:
            size = files.size(fd)
            records = [(kind, k, off, len(line)) for kind, k, off, line in segment.Scanner(fd, 0, size)]
        finally:
            files.close(fd)
        hint = hints.read(os.path.join(store_path, segment.hint_name(name)), name, size, "dict")
        assert hint is not None
        scanned = [(k, off, ln) for kind, k, off, ln in records if kind == "set"]
        assert list(hint.live()) == [(k, index.local_part(index.pack(0, off, ln))) for k, off, ln in scanned]
        assert list(hint.tombstones()) == [k for kind, k, _, _ in records if kind == "delete"]
        assert hint == hints.from_records(records, size)
    assert unexpected_files(store_path) == []


def test_retired_files_are_deleted_only_after_the_swap(store_path, monkeypatch):
    """No input segment or hint is unlinked while the MANIFEST still names it, and outputs
    and their hints exist before the MANIFEST that names them replaces the old one."""
    churned_store(store_path)
    directory = str(store_path)
    before = manifest.read(directory)
    events = []
    real_unlink, real_replace = files.unlink, files.replace

    def unlink(path):
        events.append(("unlink", os.path.basename(path), manifest.read(directory).segments))
        real_unlink(path)

    def replace(src, dst):
        if os.path.basename(dst) == manifest.NAME:
            new = manifest.decode(open(src, "rb").read(), src)
            present = set(os.listdir(directory))
            missing = [n for n in new.segments if n not in present]
            missing += [segment.hint_name(n) for n in new.segments
                        if n not in before.segments and segment.hint_name(n) not in present]
            events.append(("swap", missing, new.generation))
        real_replace(src, dst)

    monkeypatch.setattr(files, "unlink", unlink)
    monkeypatch.setattr(files, "replace", replace)
    merge.compact_directory(directory, segment_size=4096)
    swaps = [e for e in events if e[0] == "swap"]
    assert swaps == [("swap", [], before.generation + 1)]
    unlinked = [e for e in events if e[0] == "unlink"]
    assert {e[1] for e in unlinked} >= set(before.segments[:-1])
    for _, name, named_then in unlinked:
        seg = name if name.endswith(".jsonl") else name[: -len(".hint")] + ".jsonl"
        assert seg not in named_then, f"{name} deleted while the MANIFEST named {seg}"
    assert events.index(swaps[0]) < events.index(unlinked[0])


def test_tombstone_survives_while_an_older_segment_holds_the_key(store_path):
    """Merging a run that excludes the oldest segment keeps a delete whose key is set there."""
    with pysos.Dict(store_path, segment_size=200, autocompact=False) as d:
        d["victim"] = "old value"
        d["pad0"] = "p" * 250          # rotates: "victim" stays in the first segment
        del d["victim"]
        for i in range(10):
            d[f"f{i}"] = "f" * 150
    before = manifest.read(str(store_path))
    assert len(before.segments) > 3
    merge.compact_directory(str(store_path), segment_size=4096,
                            choose=lambda d, m: (1, len(m.segments) - 1))
    after = manifest.read(str(store_path))
    assert after.segments[0] == before.segments[0]
    assert "victim" not in contents(store_path)
    assert _files_holding(store_path, b'"k":"victim","d":1') != []
    merge.compact_all(str(store_path), segment_size=4096)  # now both go: nothing is older
    assert "victim" not in contents(store_path)
    assert _files_holding(store_path, b'"victim"') == []


def _files_holding(path, needle):
    return [n for n in sorted(os.listdir(path)) if n.endswith(".jsonl") and needle in (path / n).read_bytes()]


def test_full_compaction_reclaims_all_garbage_in_bounded_merges(store_path, monkeypatch):
    """compact_all merges every sealed segment in merges of at most max_merge_bytes each,
    never using more than that on top of the store, and leaves no dead bytes behind."""
    model = churned_store(store_path, n=1500, segment_size=1024)
    directory = str(store_path)
    start_bytes = segment_bytes(store_path)
    peaks = []
    real_replace = files.replace

    def replace(src, dst):
        if os.path.basename(dst) == manifest.NAME:
            peaks.append(segment_bytes(store_path))
        real_replace(src, dst)

    monkeypatch.setattr(files, "replace", replace)
    bound = 8 * 1024
    result = merge.compact_all(directory, segment_size=4096, max_merge_bytes=bound)
    assert result["merges"] == len(peaks) > 3
    assert max(peaks) <= start_bytes + bound + 4096  # + the outputs' hint files
    assert contents(store_path) == model
    with pysos.Dict(store_path, autocompact=False) as d:
        d.compact()  # seals the newest segment too
        assert d.stats()["dead_bytes"] == 0
        assert d == model


def test_merge_reports_every_written_byte_to_the_throttle(store_path):
    """The throttle sees exactly the output bytes (plus zero-byte checkpoints)."""
    churned_store(store_path)
    calls = []
    result = merge.compact_directory(str(store_path), segment_size=4096, throttle=calls.append)
    assert sum(calls) == result["bytes_out"] > 0
    assert 0 in calls  # checkpoints where a stopping compactor can give up


def test_interrupted_merge_publishes_nothing_and_leaves_no_files(store_path):
    """A merge stopped by its throttle deletes its outputs and leaves the MANIFEST as it was."""
    model = churned_store(store_path)
    before = manifest.read(str(store_path))
    names_before = sorted(os.listdir(store_path))
    throttle = Throttle(None)
    throttle.stop.set()
    with pytest.raises(Interrupted):
        merge.compact_directory(str(store_path), segment_size=4096, throttle=throttle)
    assert manifest.read(str(store_path)) == before
    assert sorted(os.listdir(store_path)) == names_before
    assert contents(store_path) == model


def _die_in_child(directory, when):
    """Fork; in the child run a merge that exits abruptly (os._exit) at ``when``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            real_replace, real_unlink = files.replace, files.unlink

            def replace(src, dst):
                if when == "before-swap" and os.path.basename(dst) == manifest.NAME:
                    os._exit(9)
                real_replace(src, dst)

            def unlink(path):
                if when == "after-swap":
                    os._exit(9)
                real_unlink(path)

            files.replace, files.unlink = replace, unlink
            merge.compact_directory(directory, segment_size=2048)
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 9


@pytest.mark.parametrize("opener", ["compaction", "open"])
def test_merge_killed_before_swap_leaves_outputs_that_are_removed(store_path, opener):
    """A merge that dies before its swap leaves unnamed outputs (and hints); the next
    compaction, or the next writable open, deletes them; no data changes."""
    model = churned_store(store_path)
    directory = str(store_path)
    before = manifest.read(directory)
    _die_in_child(directory, "before-swap")
    assert manifest.read(directory) == before
    leftovers = unexpected_files(store_path)
    assert any(n.endswith(".jsonl") for n in leftovers) and any(n.endswith(".hint") for n in leftovers)
    assert contents(store_path) == model  # readers ignore them
    if opener == "compaction":
        merge.compact_directory(directory, segment_size=2048)
    else:
        pysos.Dict(store_path, autocompact=False).close()
    assert unexpected_files(store_path) == []
    assert contents(store_path) == model


def test_merge_killed_after_swap_leaves_retired_files_that_are_removed(store_path):
    """A merge that dies between its swap and its deletes lost nothing; the next open deletes
    the retired segments."""
    model = churned_store(store_path)
    directory = str(store_path)
    before = manifest.read(directory)
    _die_in_child(directory, "after-swap")
    after = manifest.read(directory)
    assert after.generation == before.generation + 1
    assert set(before.segments[:-1]) <= set(unexpected_files(store_path))
    assert contents(store_path) == model
    pysos.Dict(store_path, autocompact=False).close()
    assert unexpected_files(store_path) == []
    assert contents(store_path) == model


def test_open_reader_keeps_working_across_a_compaction(store_path):
    """A reader that holds retired segments open keeps reading correct values, then adopts
    the new generation without reopening."""
    model = churned_store(store_path)
    with pysos.Dict(store_path, readonly=True) as reader:
        assert dict(reader.items()) == model
        generation = reader.stats()["generation"]
        merge.compact_directory(str(store_path), segment_size=4096)
        assert dict(reader.items()) == model
        assert reader.stats()["generation"] == generation + 1
        assert reader.stats()["segments"] == len(manifest.read(str(store_path)).segments)


def test_writer_keeps_writing_across_an_outside_compaction(store_path):
    """A writer whose sealed segments another compactor merges keeps reading and writing."""
    rng = random.Random(3)
    model = {}
    with pysos.Dict(store_path, segment_size=1024, autocompact=False) as d:
        for _ in range(4):
            churn(d, model, rng, 300)
            merge.compact_directory(str(store_path), segment_size=4096)
            assert dict(d.items()) == model
        d.refresh()
        assert d.stats()["generation"] == manifest.read(str(store_path)).generation
    assert contents(store_path) == model


def test_list_store_compacts_with_tuple_position_keys(fast_tmp):
    """A List (whose inserted items have array position keys) keeps its order through merges."""
    path = fast_tmp / "list"
    model = []
    with pysos.List(path, segment_size=512, autocompact=False) as items:
        rng = random.Random(5)
        for i in range(400):
            r = rng.random()
            if r < 0.4 or not model:
                items.append(i)
                model.append(i)
            elif r < 0.7:
                at = rng.randrange(len(model) + 1)
                items.insert(at, i)
                model.insert(at, i)
            elif r < 0.85:
                at = rng.randrange(len(model))
                items[at] = -i
                model[at] = -i
            else:
                at = rng.randrange(len(model))
                del items[at]
                del model[at]
        result = items.compact()
        assert result["reclaimed_bytes"] > 0
        assert list(items) == model
    assert contents(path) == model
    assert unexpected_files(path) == []


def test_error_after_the_swap_keeps_the_published_outputs(store_path, monkeypatch):
    """If the directory fsync after the MANIFEST replace fails, the merge raises but deletes
    nothing the new MANIFEST names: the store stays whole and the next open cleans up."""
    model = churned_store(store_path)
    directory = str(store_path)
    real_replace, real_fsync_dir = files.replace, files.fsync_dir
    swapped = []

    def replace(src, dst):
        real_replace(src, dst)
        swapped.append(os.path.basename(dst) == manifest.NAME)

    def fsync_dir(path):
        if swapped and swapped[-1]:
            raise OSError(5, "injected EIO after the swap")
        real_fsync_dir(path)

    monkeypatch.setattr(files, "replace", replace)
    monkeypatch.setattr(files, "fsync_dir", fsync_dir)
    with pytest.raises(OSError):
        merge.compact_directory(directory, segment_size=4096)
    monkeypatch.undo()
    current = manifest.read(directory)
    assert all((store_path / name).exists() for name in current.segments)
    assert contents(store_path) == model
    pysos.Dict(store_path, autocompact=False).close()
    assert unexpected_files(store_path) == [] and contents(store_path) == model


def test_failed_pid_note_leaves_the_compaction_lock_free(store_path, monkeypatch):
    """A failure while noting our pid in compact.lock (informative only) neither stops the
    compaction nor leaves the lock held."""
    model = churned_store(store_path, n=50)
    from pysos.segments import locks

    def truncate(fd, length):
        raise OSError(28, "injected ENOSPC")

    monkeypatch.setattr(files, "truncate", truncate)
    result = merge.compact_directory(str(store_path), segment_size=4096)
    monkeypatch.undo()
    assert result["reclaimed_bytes"] > 0
    assert contents(store_path) == model
    lock = locks.FileLock(str(store_path), locks.COMPACT)
    lock.acquire(timeout=0.0)
    lock.release()
