"""Converting pysos 1.3 files into stores."""

import subprocess
import sys
from pathlib import Path

import pytest

import pysos

TOOL = Path(__file__).resolve().parents[2] / "tools" / "convert_pysos13.py"


def test_dict_file_converts_with_deleted_lines_skipped(tmp_path):
    """A 1.3 dict file becomes an equal Dict; commented (deleted) lines are skipped, last write wins."""
    old = tmp_path / "old.sos"
    old.write_bytes(
        b'# FILE-DICT v1\n"a"\t{"x": 1}\n#"gone"\t2\n"b"\t[1, 2]\n\n"a"\t"newer"\n'
    )
    result = subprocess.run([sys.executable, str(TOOL), str(old), str(tmp_path / "new")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    with pysos.open(tmp_path / "new") as store:
        assert isinstance(store, pysos.Dict) and dict(store.items()) == {"a": "newer", "b": [1, 2]}


def test_list_file_keeps_the_order_of_its_int_keys(tmp_path):
    """A 1.3 list file (int keys, possibly negative from insert(0)) becomes a List in key order."""
    old = tmp_path / "old.sos"
    old.write_bytes(b'# FILE-LIST v1\n0\t"b"\n1\t"c"\n-1\t"a"\n')
    subprocess.run([sys.executable, str(TOOL), str(old), str(tmp_path / "new")], check=True, capture_output=True)
    with pysos.open(tmp_path / "new") as store:
        assert isinstance(store, pysos.List) and list(store) == ["a", "b", "c"]


def test_opening_a_pysos13_file_as_a_store_says_what_it_is(tmp_path):
    """Passing a pysos 1.3 file (not a directory) raises FormatError pointing at the converter."""
    old = tmp_path / "old.sos"
    old.write_bytes(b'# FILE-DICT v1\n"a"\t1\n')
    with pytest.raises(pysos.FormatError, match="convert_pysos13"):
        pysos.Dict(old)


def test_a_line_without_a_tab_is_an_error(tmp_path):
    """A malformed 1.3 line gives one clear error line and a non-zero exit."""
    old = tmp_path / "old.sos"
    old.write_bytes(b'"a" 1\n')
    result = subprocess.run([sys.executable, str(TOOL), str(old), str(tmp_path / "new")], capture_output=True, text=True)
    assert result.returncode == 1 and "no tab" in result.stderr and "Traceback" not in result.stderr
