"""The README runs as written: every shell and Python block, in order, in a fresh
directory, with the outputs it shows.

Blocks, in README order:
- ```python: run as a script; a ```text block right after it is its expected stdout.
- ```console: each ``$ command`` runs in bash; the lines up to the next ``$`` are its
  expected output (stdout and stderr together).
- ```bash: each line runs in bash and must exit 0.
An expected line ``...`` stands for any number of lines, and ``...`` inside a line for
any text. A block preceded by ``<!-- readme-test: skip: REASON -->`` is not run; the
reason must say what runs it instead.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_BLOCK = re.compile(
    r"(?:<!-- readme-test: (?P<directive>[^>]*?) -->[ \t]*\n(?:[ \t]*\n)*)?"
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)


def readme_blocks(text):
    """(line number, language, body, directive) of each fenced block of ``text``."""
    for m in _BLOCK.finditer(text):
        line = text.count("\n", 0, m.start("lang")) + 1
        yield line, m["lang"], textwrap.dedent(m["body"]), (m["directive"] or "").strip()


def matches(expected, actual):
    """Whether ``actual`` output is ``expected``, with ``...`` lines and ``...`` in a line."""
    pattern = ""
    for line in expected.splitlines():
        if line.strip() == "...":
            pattern += r"(?:.*\n)*?"
        else:
            pattern += re.escape(line.rstrip()).replace(r"\.\.\.", ".*?") + r"\n"
    text = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return re.fullmatch(pattern, text) is not None


def console_steps(body):
    """(command, expected output) pairs of a ```console block."""
    steps = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append([line[2:], []])
        else:
            assert steps, f"output before any command: {line!r}"
            steps[-1][1].append(line)
    return [(cmd, "\n".join(out)) for cmd, out in steps]


def _environment(tmp_path):
    """PATH with ``python`` and ``pysos`` of this interpreter first; pysos importable."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    pysos_cmd = bin_dir / "pysos"
    pysos_cmd.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pysos "$@"\n')
    pysos_cmd.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               COLUMNS="100", LC_ALL="C.UTF-8")
    env.pop("PYSOS_SOAK_SECONDS", None)
    return env


def _run(command, cwd, env):
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_readme_blocks_run_in_order_with_the_outputs_shown(tmp_path):
    """Every README shell and Python block runs in order on a fresh directory and prints
    what the README shows (so the README cannot drift from what pysos does)."""
    work = tmp_path / "work"
    work.mkdir()
    env = _environment(tmp_path)
    blocks = list(readme_blocks(README.read_text(encoding="utf-8")))
    failures, ran = [], 0
    pending_python = None  # (line, CompletedProcess) of a python block awaiting its ```text
    for line, lang, body, directive in blocks:
        if lang == "text" and pending_python is not None:
            where, proc = pending_python
            pending_python = None
            if not matches(body, proc.stdout):
                failures.append(f"README.md:{where}: python printed\n{proc.stdout}\nREADME shows\n{body}")
            continue
        pending_python = None
        if directive.startswith("skip"):
            assert re.match(r"skip: \S", directive), f"README.md:{line}: a skip needs a reason"
            continue
        if lang == "python":
            script = tmp_path / f"readme_{line}.py"
            script.write_text(body)
            proc = subprocess.run([sys.executable, str(script)], cwd=work, env=env,
                                  capture_output=True, text=True, timeout=120)
            ran += 1
            if proc.returncode != 0:
                failures.append(f"README.md:{line}: python block failed:\n{proc.stderr}")
            pending_python = (line, proc)
        elif lang == "console":
            for command, expected in console_steps(body):
                proc = _run(command, work, env)
                ran += 1
                out = proc.stdout + proc.stderr
                if not matches(expected, out):
                    failures.append(f"README.md:{line}: $ {command}\nprinted (exit {proc.returncode}):\n"
                                    f"{out}\nREADME shows:\n{expected}")
                elif proc.returncode != 0 and not re.search(r"error|problem", expected):
                    failures.append(f"README.md:{line}: $ {command}: exit {proc.returncode}\n{out}")
        elif lang in ("bash", "sh"):
            for command in body.splitlines():
                if command.strip() and not command.lstrip().startswith("#"):
                    proc = _run(command, work, env)
                    ran += 1
                    if proc.returncode != 0:
                        failures.append(f"README.md:{line}: $ {command}: exit {proc.returncode}\n"
                                        f"{proc.stdout}{proc.stderr}")
    assert ran > 30, f"only {ran} README commands found: did the block syntax change?"
    assert not failures, "\n\n".join(failures)


def test_matches_understands_ellipsis():
    """The README output matcher: '...' lines match any lines, '...' in a line any text."""
    assert matches("a\n...\nz", "a\nb\nc\nz\n")
    assert matches("a\n...\nz", "a\nz\n")
    assert matches("pid ... here", "pid 4242 here")
    assert not matches("a\nz", "a\nb\nz\n")
    assert not matches("exported 5 records", "exported 6 records")
