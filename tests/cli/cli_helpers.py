"""Shared by the command-line tests: run ``python -m pysos`` as a real subprocess on
real stores, and check the one-line error contract."""

import os
import subprocess
import sys

import pysos

USERS = {
    "alice": {"name": "Alice", "age": 31, "langs": ["python", "c"]},
    "bob": {"name": "Bob", "age": 27, "langs": []},
    "user:1": {"name": "Carol <b>", "age": None, "langs": ["sql"]},
    7: {"name": "Seven", "age": 7, "langs": ["ada"]},
}
EVENTS = [{"type": "boot", "n": 1}, {"type": "login", "user": "alice"}, "plain text", 42, None]


def run(*args, input=None, env=None, timeout=120):
    """Run ``python -m pysos ARGS``; return the CompletedProcess (text mode)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "pysos", *map(str, args)],
        input=input, capture_output=True, text=True, timeout=timeout, env=full_env,
    )


def ok(*args, **kw):
    """Run a command that must succeed; return its stdout."""
    proc = run(*args, **kw)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    return proc.stdout


def user_error(proc, code, *fragments):
    """Assert the contract for a user mistake: exit ``code``, exactly one stderr line
    ``pysos: error: ...`` containing every fragment, and no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pysos: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def contents(path):
    """What the store at ``path`` holds, as a plain dict or list."""
    with pysos.open(path, readonly=True) as store:
        return list(store) if isinstance(store, pysos.List) else dict(store.items())
