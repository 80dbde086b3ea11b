"""The command line as a whole: help with examples for every command, usage errors,
the console-script entry point, check/repair, and the demo."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pysos
from cli_helpers import ok, run, user_error
from pysos.__main__ import main

COMMANDS = ["info", "stats", "get", "keys", "dump", "check", "set", "del", "compact",
            "repair", "import", "export", "demo"]
ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_command_and_the_key_rules():
    """pysos --help names every command, the key rules and the exit statuses."""
    out = ok("--help")
    for name in COMMANDS:
        assert name in out, name
    assert "--str-key" in out and "exit status" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_examples(name, capsys):
    """pysos COMMAND --help exits 0 and shows at least one example (in-process: cheap)."""
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"pysos {name}" in out


def test_usage_errors_are_one_line_exit_2():
    """No command, an unknown command, an unknown option, a missing argument: exit 2, one line."""
    user_error(run(), 2, "required")
    user_error(run("frobnicate"), 2, "invalid choice")
    user_error(run("info", "--bogus", "x"), 2, "unrecognized arguments")
    user_error(run("get", "only-a-store"), 2, "required")


def test_version():
    """--version prints the version."""
    assert ok("--version").startswith("pysos ")


def test_main_is_the_console_script_entry_and_returns_the_status(tmp_path, capsys):
    """pysos.__main__.main(argv) returns the exit status instead of exiting."""
    assert main(["info", str(tmp_path / "nothing")]) == 1
    assert capsys.readouterr().err.startswith("pysos: error: no store at")
    assert main(["--version"]) == 0


def test_check_reports_a_healthy_store(tmp_path):
    """check on a healthy store: exit 0 and says so (needs pysos.check)."""
    path = tmp_path / "s"
    with pysos.Dict(path) as d:
        d["a"] = 1
    assert "healthy" in ok("check", path)
    assert run("check", "--json", path).stdout == ""


def test_check_finds_a_damaged_record_and_repair_salvages_the_rest(tmp_path):
    """A flipped byte in a sealed segment: check exits 3 and names the file; repair then
    salvages the intact records and check passes (needs pysos.check and pysos.repair)."""
    path = tmp_path / "s"
    with pysos.Dict(path, segment_size=200, autocompact=False) as d:
        for i in range(20):
            d[f"k{i}"] = "v" * 20
    first = sorted(path.glob("seg-*.jsonl"))[0]
    data = bytearray(first.read_bytes())
    data[data.index(b"vvvv")] ^= 0x01
    first.write_bytes(bytes(data))
    proc = run("check", path)
    assert proc.returncode == 3 and first.name in proc.stdout and "Traceback" not in proc.stderr
    problems = [json.loads(x) for x in run("check", "--json", path).stdout.splitlines()]
    assert problems and problems[0]["file"].endswith(first.name)
    report = json.loads(ok("repair", "--json", path))
    assert report["lost"] >= 1 and report["salvaged"] >= 18
    assert "healthy" in ok("check", path)
    assert len(json.loads(ok("info", "--json", path)).get("kind", "")) > 0


def test_demo_command_and_tools_demo(tmp_path):
    """pysos demo DIR and python tools/demo.py DIR run the quickstart and print stats()."""
    out = ok("demo", tmp_path / "a")
    assert "compact() ->" in out and "stats() ->" in out
    assert json.loads(ok("stats", "--json", tmp_path / "a" / "users"))["keys"] == 502
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "demo.py"), str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "stats() ->" in proc.stdout



def test_demo_without_a_directory_cleans_up(capsys, monkeypatch, tmp_path):
    """pysos demo with no DIR works in a temporary directory and removes it afterwards."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    assert main(["demo"]) == 0
    assert "users['alice'] =" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
