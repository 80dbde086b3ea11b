"""The API reference: every public name documents its contract, and the reference builds
(pdoc, warnings as errors) from the docstrings."""

import inspect
import subprocess
import sys

import pysos
from pysos._handle import Handle

_OPERATIONS = {"__getitem__", "__setitem__", "__delitem__", "__len__", "__iter__",
               "__contains__", "__reversed__", "__eq__", "__iadd__", "__enter__", "__exit__",
               "__repr__"}


def _own_members():
    """(qualified name, object) of every public callable that pysos itself defines."""
    for name in pysos.__all__:
        obj = getattr(pysos, name)
        if callable(obj):
            yield name, obj
    for cls in (pysos.Dict, pysos.List, Handle):
        for name, obj in vars(cls).items():
            if (not name.startswith("_") or name in _OPERATIONS) and (
                    callable(obj) or isinstance(obj, property)):
                yield f"{cls.__name__}.{name}", obj


def test_every_public_name_has_its_own_docstring():
    """Every public class, function, method, property and operation pysos defines has a
    docstring of its own (help(pysos.Dict) used to say only 'See the README')."""
    missing = [name for name, obj in _own_members() if not (obj.__doc__ or "").strip()]
    assert missing == []
    assert "See the README" not in (pysos.Dict.__doc__ or "") + (pysos.List.__doc__ or "")


def test_docstrings_state_the_contract():
    """The reference says what opening raises and what a returned write survives."""
    assert "FileNotFoundError" in inspect.getdoc(pysos.open)
    for word in ("LockedError", "FormatError", "ReadOnlyError", "fsync", "power loss"):
        assert word in inspect.getdoc(Handle), word
    for cls in (pysos.Dict, pysos.List):
        doc = inspect.getdoc(cls)
        assert "nothing is written" in doc and "ReadOnlyError" in doc and "ValueError" in doc
    assert "atomic" in inspect.getdoc(Handle.batch)
    assert "reclaimed_bytes" in inspect.getdoc(Handle.compact)


def test_api_reference_builds_without_warnings(tmp_path):
    """`python -W error -m pdoc -o DIR pysos pysos._handle` (the README's docs command) builds
    the reference with no warning; it carries the docstrings, Dict's and List's shared
    methods (batch, compact...) on the page of their base class."""
    proc = subprocess.run([sys.executable, "-W", "error", "-m", "pdoc", "-o", str(tmp_path),
                           "pysos", "pysos._handle"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    page = (tmp_path / "pysos.html").read_text()
    for text in ('id="open"', "dbm", 'id="Dict.update"', 'id="List.insert"', 'id="LockedError"'):
        assert text in page, text
    handle = (tmp_path / "pysos" / "_handle.html").read_text()
    for name in ("batch", "compact", "close", "sync", "observe", "stats", "refresh"):
        assert f'id="Handle.{name}"' in handle, name
