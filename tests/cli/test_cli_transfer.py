"""import and export: round trips (JSON lines and CSV, Dict and List), CSV dialect and
encoding detection, and every mistake an import or export can meet."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

import pysos
from cli_helpers import EVENTS, USERS, contents, ok, run, user_error

# Rows with every JSON type, strings that look like JSON, and fields some rows lack.
TRICKY_ROWS = [
    {"id": "a", "s": "123", "t": "true", "n": 12, "f": 1.5, "b": False, "z": None,
     "e": "", "q": '"quoted"', "sp": " 1", "l": [1, "x"], "o": {"k": [None]}},
    {"id": "b", "s": "line\nbreak, with; delimiters\t", "u": "é✓ <script>", "neg": -3},
    {"id": "7", "s": "null", "n": 0},
    {"id": 7, "s": "NaN", "n": 2**40},
]
STRING_ROWS = [
    {"id": "1", "name": "Ann", "city": "Köln"},
    {"id": "2", "name": "Bo, Jr.", "city": 'said "hi"'},
    {"id": "3", "name": "", "city": "Zürich"},
]


def make(path, data):
    cls = pysos.List if isinstance(data, list) else pysos.Dict
    with cls(path) as store:
        if isinstance(data, list):
            store.extend(data)
        else:
            store.update(data)
    return path


def test_jsonl_round_trip_dict(dict_store, tmp_path):
    """export to JSON lines, import into a new store: an equal Dict (int and str keys kept)."""
    out = tmp_path / "users.jsonl"
    assert "exported 4 records" in ok("export", dict_store, out)
    assert "imported 4 records" in ok("import", tmp_path / "copy", out)
    assert contents(tmp_path / "copy") == USERS
    assert isinstance(pysos.open(tmp_path / "copy", readonly=True), pysos.Dict)


def test_jsonl_round_trip_list(list_store, tmp_path):
    """export then import of a List gives an equal List, in order."""
    out = tmp_path / "events.jsonl"
    ok("export", list_store, out)
    ok("import", tmp_path / "copy", out)
    assert contents(tmp_path / "copy") == EVENTS


def test_dump_piped_into_import_from_stdin(dict_store, tmp_path):
    """pysos dump | pysos import STORE - copies a store."""
    dump = ok("dump", dict_store)
    ok("import", tmp_path / "copy", "-", input=dump)
    assert contents(tmp_path / "copy") == USERS


def test_csv_round_trip_list_of_string_rows(tmp_path):
    """A List of string rows survives CSV export/import unchanged (quotes, commas, UTF-8)."""
    src = make(tmp_path / "rows", STRING_ROWS)
    ok("export", src, tmp_path / "rows.csv")
    assert (tmp_path / "rows.csv").read_bytes().startswith(b"id,name,city\r\n1,Ann,K\xc3\xb6ln\r\n")
    ok("import", tmp_path / "copy", tmp_path / "rows.csv")
    assert contents(tmp_path / "copy") == STRING_ROWS


def test_csv_round_trip_dict_keyed_by_a_column(tmp_path):
    """A Dict of rows exported with --key id and imported with --key id is equal."""
    src = make(tmp_path / "people", {row["id"]: row for row in STRING_ROWS})
    ok("export", "--key", "id", src, tmp_path / "people.csv")
    ok("import", "--key", "id", tmp_path / "copy", tmp_path / "people.csv")
    assert contents(tmp_path / "copy") == contents(src)


def test_typed_csv_round_trip_keeps_every_type(tmp_path):
    """export --typed / import --typed round-trips ints, floats, bools, null, nested values,
    strings that look like JSON, empty strings and absent fields, for a List and a Dict."""
    src = make(tmp_path / "tricky", TRICKY_ROWS)
    ok("export", "--typed", src, tmp_path / "tricky.csv")
    ok("import", "--typed", tmp_path / "copy", tmp_path / "tricky.csv")
    assert contents(tmp_path / "copy") == TRICKY_ROWS

    keyed = make(tmp_path / "keyed", {row["id"]: row for row in TRICKY_ROWS})
    ok("export", "--typed", "--key", "id", keyed, tmp_path / "keyed.csv")
    ok("import", "--typed", "--key", "id", tmp_path / "keyed-copy", tmp_path / "keyed.csv")
    copy = contents(tmp_path / "keyed-copy")
    assert copy == contents(keyed) and 7 in copy and "7" in copy


def test_csv_import_sniffs_semicolons_and_detects_cp1252(tmp_path):
    """A cp1252 file with ';' delimiters (as spreadsheets write them) is read right."""
    src = tmp_path / "legacy.csv"
    src.write_bytes("name;price;note\r\nCafé;3,50;\"a;b\"\r\nNaïve;€2;x\r\n".encode("cp1252"))
    ok("import", tmp_path / "s", src)
    assert contents(tmp_path / "s") == [
        {"name": "Café", "price": "3,50", "note": "a;b"},
        {"name": "Naïve", "price": "€2", "note": "x"},
    ]


def test_csv_import_handles_a_utf8_bom_tabs_and_explicit_options(tmp_path):
    """A BOM is not part of the first column name; tabs are sniffed; --encoding and
    --delimiter override detection."""
    bom = tmp_path / "bom.tsv"
    bom.write_bytes("\ufeffk\tv\r\nx\t1\r\n".encode("utf-8"))
    ok("import", "--csv", "--key", "k", tmp_path / "a", bom)
    assert contents(tmp_path / "a") == {"x": {"k": "x", "v": "1"}}

    pipes = tmp_path / "pipes.txt"
    pipes.write_bytes("k|v\ny|ü\n".encode("latin-1"))
    ok("import", "--format", "csv", "--encoding", "latin-1", "--delimiter", "|",
       tmp_path / "b", pipes)
    assert contents(tmp_path / "b") == [{"k": "y", "v": "ü"}]


def test_csv_from_stdin(tmp_path):
    """CSV can come from stdin (--csv), dialect sniffed from its start."""
    ok("import", "--csv", tmp_path / "s", "-", input="a;b\n1;2\n3;4\n")
    assert contents(tmp_path / "s") == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_plain_jsonl_lines_as_values_or_keyed_by_a_field(tmp_path):
    """--plain: each line is a value (a List); --key FIELD: a Dict keyed by that field."""
    src = tmp_path / "plain.jsonl"
    src.write_text('{"id": 1, "v": "a"}\n\n{"id": "x", "v": [2]}\n')
    ok("import", "--plain", tmp_path / "l", src)
    assert contents(tmp_path / "l") == [{"id": 1, "v": "a"}, {"id": "x", "v": [2]}]
    ok("import", "--key", "id", tmp_path / "d", src)
    assert contents(tmp_path / "d") == {1: {"id": 1, "v": "a"}, "x": {"id": "x", "v": [2]}}


def test_import_appends_to_an_existing_store(list_store, tmp_path):
    """Importing into an existing List appends; into an existing Dict, updates."""
    src = tmp_path / "more.jsonl"
    src.write_text('{"index": 0, "value": "more"}\n')
    ok("import", list_store, src)
    assert contents(list_store) == EVENTS + ["more"]


def test_import_in_batches_keeps_the_batches_before_a_bad_line(tmp_path):
    """--keep-partial (or an existing store): a bad line stops the import with one line naming
    the line and exactly which records were committed; the batch holding it is discarded."""
    src = tmp_path / "bad.jsonl"
    good = [json.dumps({"index": i, "value": i}) for i in range(5)]
    src.write_text("\n".join(good + ["{broken"] + good) + "\n")
    user_error(run("import", "--keep-partial", "--batch-size", "2", tmp_path / "s", src), 1,
               "line 6: invalid JSON", "4 records (input lines 1-4) were committed to")
    assert contents(tmp_path / "s") == [0, 1, 2, 3]
    user_error(run("import", "--batch-size", "2", tmp_path / "s", src), 1,
               "line 6: invalid JSON", "4 records (input lines 1-4) were committed to")
    assert contents(tmp_path / "s") == [0, 1, 2, 3] * 2


@pytest.mark.parametrize("bad_line", [1, 3])
def test_import_into_a_new_store_is_all_or_nothing(tmp_path, bad_line):
    """A bad line anywhere in an import into a new store creates no store and leaves no
    staging directory; the error says nothing was imported (it used to leave an empty or
    partial store after line 3, none after line 1)."""
    lines = [json.dumps({"key": f"k{i}", "value": i}) for i in range(5)]
    lines[bad_line - 1] = "{broken"
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    user_error(run("import", "--batch-size", "1", tmp_path / "new", src), 1,
               f"line {bad_line}: invalid JSON", "nothing was imported", "was not created")
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl"]
    (tmp_path / "empty").mkdir()
    lines[bad_line - 1] = json.dumps({"key": "fixed", "value": 0})
    src.write_text("\n".join(lines) + "\n")
    assert "imported 5 records" in ok("import", "--batch-size", "1", tmp_path / "empty", src)
    assert len(contents(tmp_path / "empty")) == 5
    assert sorted(os.listdir(tmp_path)) == ["empty", "in.jsonl"]


def _import_until_committed(tmp_path, store, extra_args=()):
    """Start an import from a pipe, feed 2,000 records (two batches) and wait until they are
    committed (or, for a new store, staged); return the running process."""
    proc = subprocess.Popen([sys.executable, "-m", "pysos", "import", *extra_args, str(store), "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdin.write("".join(json.dumps({"key": f"k{i}", "value": i}) + "\n" for i in range(2500)))
    proc.stdin.flush()
    return proc


def test_ctrl_c_during_import_says_exactly_what_was_committed(tmp_path, dict_store):
    """SIGINT during an import into an existing store: exit 130, one line saying how many
    records (which input lines) were committed, and the store holds exactly those."""
    before = contents(dict_store)
    proc = _import_until_committed(tmp_path, dict_store)
    deadline = time.monotonic() + 60
    with pysos.Dict(dict_store, readonly=True) as reader:
        while len(reader) < len(before) + 2000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(reader) == len(before) + 2000
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.splitlines() == ["pysos: error: interrupted; 2,000 records (input lines 1-2,000) "
                                f"were committed to {dict_store}; the batch being written was discarded"]
    assert contents(dict_store) == {**before, **{f"k{i}": i for i in range(2000)}}


def test_ctrl_c_during_import_into_a_new_store_creates_nothing(tmp_path):
    """SIGINT during an import into a new store: exit 130, no store, no staging directory."""
    proc = _import_until_committed(tmp_path, tmp_path / "new")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        staged = [p for p in tmp_path.iterdir() if ".pysos-import-" in p.name]
        if staged and any(n.startswith("seg-") and (staged[0] / n).stat().st_size > 30_000
                          for n in os.listdir(staged[0])):
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted; nothing was imported" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_export_tsv_writes_tabs(dict_store, tmp_path):
    """export x.tsv writes tab-separated values (the format follows the extension)."""
    ok("export", "--key", "id", dict_store, tmp_path / "users.tsv")
    header = (tmp_path / "users.tsv").read_text().splitlines()[0]
    assert header.split("\t")[0] == "id" and "," not in header
    ok("import", "--key", "id", tmp_path / "back", tmp_path / "users.tsv")
    assert set(contents(tmp_path / "back")) == {"alice", "bob", "user:1", "7"}


def test_import_mistakes_are_one_line_each(tmp_path, list_store, dict_store):
    """Every import mistake: exit 1 (2 for a bad option), one clear line, no traceback."""
    def write(name, text):
        (tmp_path / name).write_text(text)
        return tmp_path / name

    user_error(run("import", tmp_path / "s", tmp_path / "missing.jsonl"), 1, "no such input file")
    user_error(run("import", tmp_path / "s", write("a.jsonl", "{bad\n")), 1,
               "line 1: invalid JSON")
    user_error(run("import", tmp_path / "s", write("b.jsonl", '{"value": 1}\n')), 1,
               "line 1: expected")
    user_error(run("import", tmp_path / "s", write("c.jsonl", "")), 1, "--kind")
    assert not (tmp_path / "s").exists()
    user_error(run("import", dict_store, write("d.jsonl", '{"index": 0, "value": 1}\n')), 1,
               "is a dict store")
    user_error(run("import", list_store, write("e.csv", "id,x\n1,2\n"), "--key", "id"), 1,
               "is a list store")
    user_error(run("import", "--key", "nope", tmp_path / "t", write("f.csv", "id,x\n1,2\n")),
               1, "no column 'nope'", "id, x")
    user_error(run("import", tmp_path / "t", write("g.csv", "a,b\n1,2,3\n")), 1,
               "line 2", "more cells")
    user_error(run("import", tmp_path / "t", write("h.html", "<p>")), 1, "cannot import HTML")
    user_error(run("import", "--key", "k", tmp_path / "t", write("i.jsonl", '{"k": [1]}\n')),
               1, "not a JSON scalar")
    user_error(run("import", tmp_path / "t", write("j.jsonl", '{"index":0,"value":1}\n'
                                                           '{"key":"a","value":1}\n')),
               1, "line 2", "list store")
    user_error(run("import", "--encoding", "klingon", tmp_path / "t", tmp_path / "a.jsonl"),
               2, "unknown encoding")
    user_error(run("import", "--encoding", "ascii", tmp_path / "u",
                   write("k.jsonl", '{"key": "é", "value": 1}\n')), 1, "not valid ascii")
    user_error(run("import", "--key", "id", tmp_path / "v", write("l.csv", "id,x\n,1\n")), 1,
               "line 2", "empty")


def test_import_into_a_locked_store_fails_cleanly(dict_store, tmp_path):
    """import while another process writes the store: exit 1, one line."""
    src = tmp_path / "x.jsonl"
    src.write_text('{"key": "x", "value": 1}\n')
    with pysos.Dict(dict_store):
        user_error(run("import", dict_store, src), 1, "already open for writing")


def test_export_mistakes_are_one_line_each(dict_store, list_store, tmp_path):
    """CSV of a Dict without --key, CSV of non-object values, --key on a List, a key column
    that disagrees with the key, and a missing output directory: exit 1, one line; no
    partial output file is left behind."""
    user_error(run("export", dict_store, tmp_path / "a.csv"), 1, "needs --key COLUMN")
    user_error(run("export", list_store, tmp_path / "b.csv"), 1, "needs every value to be an object",
               "item 2")
    user_error(run("export", "--key", "id", list_store, tmp_path / "c.csv"), 1, "dict stores")
    odd = make(tmp_path / "odd", {"k": {"id": "other"}})
    user_error(run("export", "--key", "id", odd, tmp_path / "d.csv"), 1, "not the key")
    user_error(run("export", dict_store, tmp_path / "no" / "dir.jsonl"), 1, "no directory")
    user_error(run("export", "--prefix", "a", list_store), 1, "needs a dict store")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events", "odd", "users"]


def test_export_replaces_the_target_only_when_complete(list_store, tmp_path):
    """A failed export leaves an existing target file as it was."""
    target = tmp_path / "keep.csv"
    target.write_text("old\n")
    user_error(run("export", list_store, target), 1)
    assert target.read_text() == "old\n"


def test_export_prefix_and_explicit_format_to_stdout(dict_store):
    """export --prefix --format jsonl to stdout writes only the matching records."""
    out = ok("export", "--prefix", "user:", "--format", "jsonl", dict_store)
    assert [json.loads(x) for x in out.splitlines()] == [{"key": "user:1", "value": USERS["user:1"]}]


def test_export_csv_with_encoding_and_delimiter(tmp_path):
    """--encoding and --delimiter shape the CSV written; import reads it back."""
    src = make(tmp_path / "rows", STRING_ROWS)
    out = tmp_path / "rows.csv"
    ok("export", "--encoding", "cp1252", "--delimiter", ";", src, out)
    assert out.read_bytes().startswith(b"id;name;city\r\n1;Ann;K\xf6ln")
    ok("import", tmp_path / "copy", out)
    assert contents(tmp_path / "copy") == STRING_ROWS


def test_import_of_empty_input_with_kind_creates_an_empty_store(tmp_path):
    """An empty input with --kind makes an empty store of that kind."""
    src = tmp_path / "empty.jsonl"
    src.write_text("")
    assert "imported 0 records" in ok("import", "--kind", "dict", tmp_path / "s", src)
    assert json.loads(ok("stats", "--json", tmp_path / "s"))["kind"] == "dict"


def test_dump_and_export_carry_deadlines_and_import_keeps_them(tmp_path):
    """A key that expires is dumped and exported with its deadline ("expires", Unix
    seconds); import gives it the same deadline, and skips one whose deadline passed in
    between. A key that never expires has no "expires"."""
    import json as json_module
    import time

    source, target = tmp_path / "source", tmp_path / "target"
    with pysos.Dict(source) as d:
        d["config"] = {"a": 1}
        d.set("session", "abc", expire=3600)
        d.set("brief", "x", expire=1.0)
        deadline = d.expires_at("session")
    dumped = [json_module.loads(line) for line in ok("dump", source).splitlines()]
    assert {row["key"]: row.get("expires") for row in dumped}["session"] == deadline
    assert [row for row in dumped if row["key"] == "config"] == [{"key": "config", "value": {"a": 1}}]
    exported = tmp_path / "out.jsonl"
    ok("export", source, exported)
    assert [json_module.loads(line) for line in exported.read_text().splitlines()] == dumped
    brief = [row["expires"] for row in dumped if row["key"] == "brief"][0]
    time.sleep(max(0.0, brief - time.time()) + 0.05)
    out = ok("import", target, exported)
    assert "imported 2 records" in out and "1 already expired" in out, out
    with pysos.Dict(target, readonly=True) as copy:
        assert dict(copy.items()) == {"config": {"a": 1}, "session": "abc"}
        assert copy.expires_at("config") is None
        assert copy.expires_at("session") == deadline  # the very number


def test_import_refuses_a_bad_deadline(tmp_path):
    """"expires" must be a number, and only for a Dict: else one error line, nothing imported."""
    for line, fragment in (('{"key": "a", "value": 1, "expires": "soon"}', "expires"),
                           ('{"key": "a", "value": 1, "expires": true}', "expires"),
                           ('{"key": "a", "value": 1, "expires": 1' + "0" * 400 + "}", "expires"),
                           ('{"index": 0, "value": 1, "expires": 2000000000}', "expected")):
        target = tmp_path / f"t{abs(hash(line))}"
        proc = run("import", target, "-", input=line + "\n")
        user_error(proc, proc.returncode, fragment)
        assert proc.returncode != 0 and not target.exists()


def test_an_expired_import_line_hides_the_older_value(tmp_path):
    """Importing a line whose deadline has passed into a store that has the key: the key is
    gone, as the line says (an expired record hides older ones in a store too)."""
    target = tmp_path / "target"
    with pysos.Dict(target) as d:
        d["k"] = "old"
        d["other"] = 1
    out = ok("import", target, "-", input='{"key": "k", "value": "new", "expires": 1000}\n')
    assert "imported 0 records" in out and "1 already expired" in out, out
    with pysos.Dict(target, readonly=True) as d:
        assert dict(d.items()) == {"other": 1}


def test_dump_rows_are_one_snapshot_with_its_deadlines(tmp_path):
    """The rows of dump/export are the snapshot taken when they start, deadlines included:
    a writer deleting a key or rewriting it without expiry meanwhile, and a key expiring
    meanwhile (which makes the reader look at the files again), change none of them."""
    from fake_clock import FakeClock
    from pysos.cli import access

    clock = FakeClock()
    restore = clock.install()
    try:
        path = tmp_path / "s"
        with pysos.Dict(path) as writer:
            writer["first"] = 0
            writer.set("e", 1, expire=5)
            writer["y"] = 2
            writer.set("z", 3, expire=3600)
            with pysos.Dict(path, readonly=True, refresh_interval=0) as reader:
                rows = access.rows(reader)
                got = [next(rows)]
                del writer["y"]
                writer["z"] = 4
                clock.advance(6)
                got += list(rows)
        assert got == [{"key": "first", "value": 0}, {"key": "e", "value": 1, "expires": clock.wall_now - 1},
                       {"key": "y", "value": 2}, {"key": "z", "value": 3, "expires": clock.wall_now - 6 + 3600}]
    finally:
        restore()
