"""The progress bar: drawn on stderr when it is a terminal, absent when piped or --quiet."""

import os
import pty
import subprocess
import sys

import pysos
from cli_helpers import contents, run


def run_on_pty(*args):
    """Run ``python -m pysos ARGS`` with stderr on a pseudo-terminal; return
    (exit status, what the terminal received, stdout)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pysos", *map(str, args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    received = bytearray()
    try:
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not data:
                break
            received += data
    finally:
        os.close(master)
    stdout = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(timeout=120), received.decode(), stdout.decode()


def big_list(path, n=3000):
    with pysos.List(path) as items:
        with items.batch():
            items.extend({"n": i, "text": f"item {i}"} for i in range(n))
    return path


def test_import_and_export_draw_a_bar_on_a_terminal(tmp_path):
    """On a terminal, import and export draw a bar that ends at 100%."""
    src = big_list(tmp_path / "src")
    status, tty, out = run_on_pty("export", src, tmp_path / "src.jsonl")
    assert status == 0 and "exported 3,000 records" in out
    assert "\rexport [" in tty.replace("\x1b[K", "") and "100%" in tty and "3,000/3,000" in tty
    status, tty, out = run_on_pty("import", tmp_path / "copy", tmp_path / "src.jsonl")
    assert status == 0 and "imported 3,000 records" in out
    assert "\rimport [" in tty.replace("\x1b[K", "") and "100%" in tty and "KiB" in tty
    assert "Traceback" not in tty


def test_compact_and_check_show_activity_on_a_terminal(tmp_path):
    """compact and check show a running line on a terminal."""
    src = big_list(tmp_path / "src", 200)
    status, tty, _ = run_on_pty("compact", src)
    assert status == 0 and "\rcompact" in tty.replace("\x1b[K", "")
    status, tty, _ = run_on_pty("check", src)
    assert status == 0 and "\rcheck" in tty.replace("\x1b[K", "")


def test_no_bar_when_piped(tmp_path):
    """With stderr piped, import/export/compact write nothing on stderr."""
    src = big_list(tmp_path / "src")
    for args in (("export", src, tmp_path / "a.jsonl"), ("import", tmp_path / "b", tmp_path / "a.jsonl"),
                 ("export", "--csv", src, tmp_path / "a.csv"), ("compact", src)):
        proc = run(*args)
        assert proc.returncode == 0 and proc.stderr == "", (args, proc.stderr)
    assert contents(tmp_path / "b") == contents(src)


def test_quiet_silences_the_bar_on_a_terminal(tmp_path):
    """--quiet: no bar on a terminal, and no summary line on stdout."""
    src = big_list(tmp_path / "src", 100)
    status, tty, out = run_on_pty("export", "--quiet", src, tmp_path / "a.jsonl")
    assert status == 0 and tty == "" and out == ""
    status, tty, out = run_on_pty("import", "-q", tmp_path / "b", tmp_path / "a.jsonl")
    assert status == 0 and tty == "" and out == ""
    status, tty, out = run_on_pty("compact", "-q", src)
    assert status == 0 and tty == "" and out == ""


def _store_bytes(path):
    return sum(os.path.getsize(path / n) for n in os.listdir(path) if n.endswith(".jsonl"))


def test_check_compact_repair_show_bytes_of_a_known_total(tmp_path):
    """On a terminal, check, compact and repair draw a bar of bytes done out of the store's
    bytes (it used to be a counter stuck at 0: 'check  0  1.8s')."""
    src = big_list(tmp_path / "src", 3000)
    total_kib = f"{_store_bytes(src) / 1024:.1f} KiB"
    status, tty, _ = run_on_pty("check", src)
    screen = tty.replace("\x1b[K", "")
    assert status == 0 and "\rcheck [" in screen and f"100%  {total_kib}/{total_kib}" in screen, screen
    status, tty, _ = run_on_pty("compact", src)
    screen = tty.replace("\x1b[K", "")
    assert status == 0 and "\rcompact [" in screen and f"/{total_kib}" in screen, screen
    seg = max((n for n in os.listdir(src) if n.endswith(".jsonl")), key=lambda n: os.path.getsize(src / n))
    data = bytearray((src / seg).read_bytes())
    data[20] ^= 1  # damage the first record
    (src / seg).write_bytes(bytes(data))
    twice = f"{2 * _store_bytes(src) / 1024:.1f} KiB"
    status, tty, out = run_on_pty("repair", src)
    screen = tty.replace("\x1b[K", "")
    assert status == 0 and "repaired" in out, (out, screen)
    assert "\rrepair [" in screen and f"100%  {twice}/{twice}" in screen, screen
