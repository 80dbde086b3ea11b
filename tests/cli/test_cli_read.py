"""The read-only commands: info/stats, get, keys, dump. They never create a store and
work while another process holds the writer lock."""

import json
import os

import pysos
from cli_helpers import EVENTS, USERS, ok, run, user_error


def test_info_shows_kind_counts_bytes_and_free_locks(dict_store):
    """info prints kind, keys, segments, generation, the three byte counts and both locks."""
    out = ok("info", dict_store)
    for label in ("kind:", "keys:", "segments:", "generation:", "live bytes:",
                  "dead bytes:", "disk bytes:", "writer lock:", "compact lock:"):
        assert label in out, label
    assert "dict" in out and "free" in out


def test_stats_json_matches_the_store(dict_store):
    """stats --json is one JSON object whose figures are the store's own stats()."""
    info = json.loads(ok("stats", "--json", dict_store))
    with pysos.Dict(dict_store, readonly=True) as d:
        stats = d.stats()
    for name in ("kind", "keys", "segments", "live_bytes", "dead_bytes", "disk_bytes", "generation"):
        assert info[name] == stats[name], name
    assert info["keys"] == len(USERS)
    assert info["writer_pid"] is None and info["compact_pid"] is None


def test_info_names_the_writer_pid_while_a_writer_holds_the_store(dict_store):
    """info works while another process writes, and names that process's pid."""
    with pysos.Dict(dict_store) as d:
        d["fresh"] = 1
        out = ok("info", dict_store)
        info = json.loads(ok("info", "--json", dict_store))
    assert f"held by pid {os.getpid()}" in out
    assert info["writer_pid"] == os.getpid()
    assert info["keys"] == len(USERS) + 1


def test_get_prints_json_for_a_string_key(dict_store):
    """get KEY prints the value as JSON on stdout."""
    assert json.loads(ok("get", dict_store, "alice")) == USERS["alice"]


def test_get_parses_a_json_scalar_key(dict_store):
    """A key that parses as a JSON scalar (7) is that scalar, not the string "7"."""
    assert json.loads(ok("get", dict_store, "7")) == USERS[7]


def test_get_str_key_and_quoted_key_mean_the_string(dict_store):
    """--str-key 7 and '"7"' both name the string key "7" (absent here: exit 1)."""
    with pysos.Dict(dict_store) as d:
        d["7"] = "the string seven"
    assert json.loads(ok("get", "--str-key", dict_store, "7")) == "the string seven"
    assert json.loads(ok("get", dict_store, '"7"')) == "the string seven"
    assert json.loads(ok("get", dict_store, "7")) == USERS[7]


def test_get_raw_prints_a_string_without_quotes(dict_store):
    """--raw prints a str value as it is; a non-str value stays JSON."""
    with pysos.Dict(dict_store) as d:
        d["motd"] = 'say "hi"\nbye'
    assert ok("get", "--raw", dict_store, "motd") == 'say "hi"\nbye\n'
    assert ok("get", dict_store, "motd") == '"say \\"hi\\"\\nbye"\n'
    assert json.loads(ok("get", "--raw", dict_store, "bob")) == USERS["bob"]


def test_get_pretty_indents(dict_store):
    """--pretty prints indented JSON."""
    out = ok("get", "--pretty", dict_store, "alice")
    assert out.count("\n") > 3 and json.loads(out) == USERS["alice"]


def test_get_list_index_and_negative_index(list_store):
    """For a List, KEY is an index; -1 is the last item."""
    assert json.loads(ok("get", list_store, "1")) == EVENTS[1]
    assert json.loads(ok("get", list_store, "-1")) == EVENTS[-1]
    assert ok("get", "--raw", list_store, "2") == "plain text\n"


def test_get_missing_key_is_one_line_exit_1(dict_store):
    """A key that is not there: exit 1, one line naming the key."""
    user_error(run("get", dict_store, "carol"), 1, 'key "carol" not found')


def test_get_index_out_of_range_is_one_line_exit_1(list_store):
    """An index past the end: exit 1, one line giving the length."""
    user_error(run("get", list_store, "99"), 1, "index 99 out of range", "5 items")


def test_get_non_integer_index_on_a_list_is_a_usage_error(list_store):
    """A List index that is not an integer: exit 2."""
    user_error(run("get", list_store, "first"), 2, "integer")


def test_read_commands_on_a_missing_directory_create_nothing(tmp_path):
    """info/get/keys/dump/export/check on a missing path: exit 1, one line, nothing created."""
    missing = tmp_path / "nope"
    for args in (["info"], ["stats", "--json"], ["get", None, "k"], ["keys"], ["dump"],
                 ["export"], ["check"], ["set", None, "k", "1"], ["del", None, "k"],
                 ["compact"], ["repair"]):
        argv = [missing if a is None else a for a in args]
        if None not in args:
            argv.append(missing)
        user_error(run(*argv), 1, "no store at", "does not exist")
        assert not missing.exists(), args


def test_read_commands_on_a_directory_without_a_store_create_nothing(tmp_path):
    """A directory that holds no MANIFEST: exit 1, one line, the directory is left empty."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in (["info", empty], ["get", empty, "k"], ["dump", empty], ["check", empty]):
        user_error(run(*args), 1, "no store at", "MANIFEST")
    assert list(empty.iterdir()) == []


def test_keys_lists_every_key_as_json(dict_store):
    """keys prints each key as one JSON line (so 7 and "7" differ)."""
    keys = [json.loads(line) for line in ok("keys", dict_store).splitlines()]
    assert sorted(map(str, keys)) == sorted(map(str, USERS)) and 7 in keys


def test_keys_prefix_and_raw(dict_store):
    """--prefix keeps keys starting with it; --raw drops the quotes of string keys."""
    assert ok("keys", "--prefix", "user:", dict_store) == '"user:1"\n'
    assert ok("keys", "--raw", "--prefix", "a", dict_store) == "alice\n"
    assert ok("keys", "--prefix", "7", dict_store) == "7\n"


def test_keys_on_a_list_is_the_wrong_kind(list_store):
    """keys on a List store: exit 1, one line saying it needs a dict store."""
    user_error(run("keys", list_store), 1, "needs a dict store", "list store")


def test_dump_dict_is_json_lines_of_key_and_value(dict_store):
    """dump prints {"key":..,"value":..} lines covering the whole Dict."""
    lines = [json.loads(x) for x in ok("dump", dict_store).splitlines()]
    assert all(set(r) == {"key", "value"} for r in lines)
    assert {json.dumps(r["key"]): r["value"] for r in lines} == \
        {json.dumps(k): v for k, v in USERS.items()}


def test_dump_list_is_json_lines_of_index_and_value(list_store):
    """dump of a List prints {"index":i,"value":..} lines in order."""
    lines = [json.loads(x) for x in ok("dump", list_store).splitlines()]
    assert lines == [{"index": i, "value": v} for i, v in enumerate(EVENTS)]


def test_dump_prefix(dict_store):
    """dump --prefix keeps only the matching keys."""
    lines = [json.loads(x) for x in ok("dump", "--prefix", "b", dict_store).splitlines()]
    assert lines == [{"key": "bob", "value": USERS["bob"]}]


def test_reading_commands_work_while_a_writer_holds_the_store(dict_store):
    """get, keys, dump and export read a store that another process has open for writing,
    and see its latest writes."""
    with pysos.Dict(dict_store) as d:
        d["late"] = {"x": 1}
        assert json.loads(ok("get", dict_store, "late")) == {"x": 1}
        assert '"late"' in ok("keys", dict_store).splitlines()
        assert '{"key":"late","value":{"x":1}}' in ok("dump", dict_store).splitlines()
        assert '{"key":"late","value":{"x":1}}' in ok("export", dict_store).splitlines()


def test_dump_into_a_closed_pipe_is_quiet(tmp_path):
    """dump | head: the closed pipe ends the dump without a traceback."""
    import subprocess
    import sys

    path = tmp_path / "big"
    with pysos.List(path) as items:
        with items.batch():
            items.extend({"n": i, "pad": "x" * 100} for i in range(20000))
    proc = subprocess.run(
        f"{sys.executable} -m pysos dump {path} | head -n 1", shell=True,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.stdout.startswith('{"index":0,')
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr
