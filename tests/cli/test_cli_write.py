"""The commands that change a store: set, del, compact; and their user mistakes."""

import json

import pysos
from cli_helpers import EVENTS, USERS, contents, ok, run, user_error


def test_set_stores_json_under_a_key(dict_store):
    """set KEY JSON stores the parsed value; get reads it back."""
    ok("set", dict_store, "carol", '{"name": "Carol", "tags": [1, 2.5, null, true]}')
    assert contents(dict_store)["carol"] == {"name": "Carol", "tags": [1, 2.5, None, True]}


def test_set_key_rules_int_string_and_raw_value(dict_store):
    """set 12 stores under the int 12, --str-key under "12"; --raw stores the text."""
    ok("set", dict_store, "12", '"int key"')
    ok("set", "--str-key", "--raw", dict_store, "12", "str key")
    data = contents(dict_store)
    assert data[12] == "int key" and data["12"] == "str key"


def test_set_replaces_a_list_item(list_store):
    """On a List, set INDEX JSON replaces that item (negative indexes too)."""
    ok("set", list_store, "0", '{"type": "reboot"}')
    ok("set", list_store, "-1", "[1, 2]")
    assert contents(list_store) == [{"type": "reboot"}, *EVENTS[1:-1], [1, 2]]


def test_set_bad_json_is_a_usage_error_and_writes_nothing(dict_store):
    """A VALUE that is not JSON: exit 2, one line with a hint, store unchanged."""
    line = user_error(run("set", dict_store, "k", "{oops"), 2, "invalid JSON value")
    assert "--raw" in line
    user_error(run("set", dict_store, "k", "NaN"), 2, "invalid JSON value")
    assert contents(dict_store) == USERS


def test_set_a_value_json_cannot_hold_exactly_is_refused(dict_store):
    """An int wider than 64 bits is refused by the store: exit 1, one line, nothing written."""
    user_error(run("set", dict_store, "big", str(2**70)), 1, "cannot store that value")
    assert "big" not in contents(dict_store)


def test_set_past_the_end_of_a_list_fails(list_store):
    """set on an index past the end of a List: exit 1, one line."""
    user_error(run("set", list_store, "5", "1"), 1, "out of range")
    assert contents(list_store) == EVENTS


def test_str_key_on_a_list_is_a_usage_error(list_store):
    """--str-key makes no sense for a List: exit 2."""
    user_error(run("get", "--str-key", list_store, "0"), 2, "--str-key")


def test_del_removes_a_key_and_a_list_item(dict_store, list_store):
    """del KEY removes it from a Dict; del INDEX removes that item from a List."""
    ok("del", dict_store, "alice")
    ok("del", dict_store, "7")
    assert set(contents(dict_store)) == {"bob", "user:1"}
    ok("del", list_store, "0")
    assert contents(list_store) == EVENTS[1:]


def test_del_missing_key_fails_with_one_line(dict_store):
    """del of a key that is not there: exit 1, one line naming the key."""
    user_error(run("del", dict_store, "nobody"), 1, '"nobody" not found')


def test_writing_to_a_store_locked_by_another_writer_fails_cleanly(dict_store):
    """set/del/import while another process holds the writer: exit 1, one line that names
    the lock holder and says reads still work; the writer's store is untouched."""
    with pysos.Dict(dict_store) as d:
        for args in (("set", dict_store, "k", "1"), ("del", dict_store, "alice")):
            line = user_error(run(*args), 1, "already open for writing", "read-only commands")
            assert "pid" in line
        assert json.loads(ok("get", dict_store, "alice")) == USERS["alice"]
        assert dict(d.items()) == USERS


def test_opening_the_wrong_kind_directory_fails_cleanly(tmp_path):
    """A directory holding other files: the core's FormatError becomes one line, exit 1."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "MANIFEST").write_text("not json")
    user_error(run("info", other), 1)
    user_error(run("set", other, "k", "1"), 1)


def test_compact_reclaims_dead_bytes(tmp_path):
    """compact merges segments: dead bytes are reclaimed, the data is unchanged."""
    path = tmp_path / "churn"
    with pysos.Dict(path, autocompact=False) as d:
        for i in range(300):
            d["k"] = {"i": i, "pad": "x" * 50}
        d["keep"] = 1
    result = json.loads(ok("compact", "--json", path))
    assert result["reclaimed_bytes"] > 0
    assert json.loads(ok("stats", "--json", path))["dead_bytes"] == 0
    assert contents(path) == {"k": {"i": 299, "pad": "x" * 50}, "keep": 1}
    assert "reclaimed" in ok("compact", path)


def test_compact_beside_a_running_writer(tmp_path):
    """With the writer lock held elsewhere, compact merges the sealed segments anyway."""
    path = tmp_path / "busy"
    with pysos.Dict(path, autocompact=False, segment_size=4096) as d:
        for i in range(400):
            d[i % 10] = {"i": i, "pad": "y" * 40}
        out = ok("compact", path)
        assert "beside its writer" in out and "reclaimed" in out
        d["after"] = True
        assert dict(d.items())[3] == {"i": 393, "pad": "y" * 40}
    assert contents(path)["after"] is True
    assert len(contents(path)) == 11


def test_compact_while_another_compaction_runs_fails_cleanly(dict_store):
    """While the compaction lock is held elsewhere, info names its pid and compact fails
    with one line (exit 1) instead of waiting."""
    import os

    from pysos.segments.locks import FileLock

    lock = FileLock(str(dict_store), "compact")
    lock.acquire(timeout=0)
    try:
        assert f"held by pid {os.getpid()}" in ok("info", dict_store).split("compact lock:")[1]
        user_error(run("compact", dict_store), 1, "already running", "--wait")
    finally:
        lock.release()
    assert "reclaimed" in ok("compact", dict_store)


def test_set_wait_outlasts_a_writer_that_leaves(dict_store):
    """set --wait SECONDS waits for the writer holding the store, then writes."""
    import subprocess
    import sys
    import time

    with pysos.Dict(dict_store):
        proc = subprocess.Popen([sys.executable, "-m", "pysos", "set", "--wait", "60",
                                 str(dict_store), "late", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1.5)
        assert proc.poll() is None  # still waiting (it would have failed at once without --wait)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert contents(dict_store)["late"] == 1
