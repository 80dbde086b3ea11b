"""What the command line tells a user who is one step off: the other key type, '--' for
keys starting with '-', which options apply, and where the daemon is."""

import subprocess
import sys

import pysos
from cli_helpers import ok, run, user_error


def test_missed_lookup_suggests_the_key_of_the_other_type(tmp_path):
    """CSV keys are strings: 'get STORE 1' misses the int 1 and names the string key "1"
    with the command that finds it (and the reverse for --str-key)."""
    (tmp_path / "people.csv").write_text("id,name\n1,Ann\n")
    ok("import", "--key", "id", tmp_path / "people", tmp_path / "people.csv")
    line = user_error(run("get", tmp_path / "people", "1"), 1, "key 1 not found",
                      'the string key "1"', f"pysos get {tmp_path / 'people'} --str-key 1")
    assert ok("get", tmp_path / "people", "--str-key", "1").strip() == '{"id":"1","name":"Ann"}'
    user_error(run("del", tmp_path / "people", "1"), 1, 'the string key "1"', "pysos del")
    with pysos.Dict(tmp_path / "ints") as d:
        d[7] = "seven"
    user_error(run("get", "--str-key", tmp_path / "ints", "7"), 1, 'key "7" not found',
               "the int key 7", f"pysos get {tmp_path / 'ints'} 7")
    assert "there is" not in user_error(run("get", tmp_path / "ints", "8"), 1, "key 8 not found")


def test_a_key_starting_with_dash_gets_the_double_dash_hint(dict_store):
    """'get STORE -x' says to put the key after '--'; with '--' it is looked up as a key."""
    user_error(run("get", dict_store, "-x"), 2, "required: KEY", f"pysos get STORE -- -x")
    user_error(run("get", dict_store, "--", "-x"), 1, 'key "-x" not found')
    assert "'--'" not in user_error(run("get", dict_store), 2, "required: KEY")


def test_export_key_with_json_lines_is_an_error(dict_store, tmp_path):
    """export --key to JSON lines (where it used to be silently ignored) is a usage error
    and writes nothing."""
    user_error(run("export", "--key", "id", dict_store, tmp_path / "out.jsonl"), 2,
               "--key names the CSV column")
    assert not (tmp_path / "out.jsonl").exists()


def test_help_names_the_daemon_and_the_daemon_help_has_examples():
    """'pysos --help' names the compaction daemon; its own --help shows examples."""
    assert "python -m pysos.compactor data/users" in ok("--help")
    proc = subprocess.run([sys.executable, "-m", "pysos.compactor", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "examples:" in proc.stdout
    assert "python -m pysos.compactor --once data/users" in proc.stdout


def test_compact_wait_help_speaks_of_the_compaction(dict_store):
    """compact --wait's help says it waits for a running compaction, not for a writer."""
    text = " ".join(ok("compact", "--help").split())
    assert "wait up to SECONDS for a compaction already running" in text
    assert "another writer" not in text
