"""Type checkers see pysos: mypy on the package (the config in pyproject.toml), on a typed
usage example with --strict, and through the Quickstart's editable install."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = Path(__file__).with_name("typed_usage.py")


def mypy(*args, cwd, env=None):
    """Run mypy in a subprocess; return (exit status, output)."""
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_package_passes_mypy():
    """`python -m mypy` at the project root (files and strictness from pyproject.toml) passes."""
    code, out = mypy(cwd=ROOT)
    assert code == 0, out


def _revealed(out):
    return {int(m[1]): m[2] for m in re.finditer(r':(\d+): note: Revealed type is "(.*)"', out)}


def _expected(source):
    found = {}
    for number, line in enumerate(source.splitlines(), 1):
        m = re.search(r"reveal_type\(.*\)\s+# (.*)$", line)
        if m:
            found[number] = m[1]
    return found


def test_typed_usage_example_passes_mypy_strict(tmp_path):
    """A user's code type-checks under --strict with precise types (Dict from `with`, not Any),
    and passing an option positionally is a type error (the example's ignores must be used)."""
    env = dict(os.environ, MYPYPATH=str(ROOT))
    code, out = mypy("--strict", "--cache-dir", str(tmp_path / "cache"), str(EXAMPLE),
                     cwd=tmp_path, env=env)
    assert code == 0, out
    expected = _expected(EXAMPLE.read_text())
    assert len(expected) >= 10
    assert _revealed(out) == expected, out


def test_editable_install_is_visible_to_mypy(tmp_path):
    """After the Quickstart's `pip install -e .` in a fresh venv, mypy finds pysos (a plain
    .pth path entry, not an import hook it cannot follow) and types `with pysos.Dict(...)`."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    # This environment's pip installs into the new venv (--python): no ensurepip run.
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           "--no-deps", "-e", str(ROOT)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pth = list((venv / "lib").glob("python*/site-packages/__editable__*pysos*.pth"))
    assert len(pth) == 1 and pth[0].read_text().strip() == str(ROOT), pth
    user = tmp_path / "app.py"
    user.write_text("import pysos\n\nwith pysos.Dict('data') as d:\n    reveal_type(d)\n")
    code, out = mypy("--strict", "--python-executable", str(python),
                     "--cache-dir", str(tmp_path / "cache"), str(user), cwd=tmp_path, env=env)
    assert code == 0, out
    assert _revealed(out) == {4: "pysos.dict.Dict"}, out
