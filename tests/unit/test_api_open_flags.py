"""pysos.open's dbm flags ('r', 'w', 'c', 'n') and keyword-only options."""

import os

import pytest

import pysos


def _dict_store(path, items):
    with pysos.Dict(path) as d:
        d.update(items)


def test_flag_w_opens_read_write(store_path):
    """open(path, "w") opens an existing store for writing (it used to mean readonly)."""
    _dict_store(store_path, {"a": 1})
    with pysos.open(store_path, "w") as d:
        assert not d.readonly
        d["b"] = 2
    with pysos.open(store_path, "r") as d:
        assert dict(d.items()) == {"a": 1, "b": 2}


def test_default_flag_is_w(store_path):
    """open(path) is open(path, "w"): read-write."""
    _dict_store(store_path, {})
    with pysos.open(store_path) as d:
        assert not d.readonly


def test_flag_r_is_readonly(store_path):
    """open(path, "r") opens read-only: writes raise ReadOnlyError, beside a writer too."""
    _dict_store(store_path, {"a": 1})
    with pysos.Dict(store_path) as writer, pysos.open(store_path, "r") as d:
        assert d.readonly and d["a"] == 1
        with pytest.raises(pysos.ReadOnlyError):
            d["a"] = 2
        writer["a"] = 3
        assert d["a"] == 3


@pytest.mark.parametrize("flag", ["r", "w"])
def test_flags_r_and_w_need_an_existing_store(tmp_path, flag):
    """open(missing, "r"/"w") raises FileNotFoundError and creates nothing."""
    missing = tmp_path / "parent" / "store"
    with pytest.raises(FileNotFoundError):
        pysos.open(missing, flag)
    assert not (tmp_path / "parent").exists()


def test_flag_c_creates_a_dict_or_opens_what_is_there(tmp_path):
    """open(path, "c") creates a Dict store if missing, else opens the store's own kind."""
    with pysos.open(tmp_path / "new" / "d", "c") as d:
        assert isinstance(d, pysos.Dict) and not d.readonly and len(d) == 0
        d["k"] = "v"
    with pysos.open(tmp_path / "new" / "d", "c") as d:
        assert dict(d.items()) == {"k": "v"}
    with pysos.List(tmp_path / "l") as lst:
        lst.append(1)
    with pysos.open(tmp_path / "l", "c") as lst:
        assert isinstance(lst, pysos.List) and list(lst) == [1]


def test_flag_n_empties_or_creates(tmp_path):
    """open(path, "n") empties an existing store (Dict or List) and creates a Dict if missing."""
    _dict_store(tmp_path / "d", {"a": 1, "b": 2})
    with pysos.open(tmp_path / "d", "n") as d:
        assert isinstance(d, pysos.Dict) and len(d) == 0
        d["c"] = 3
    with pysos.open(tmp_path / "d", "r") as d:
        assert dict(d.items()) == {"c": 3}
    with pysos.List(tmp_path / "l") as lst:
        lst.extend([1, 2, 3])
    with pysos.open(tmp_path / "l", "n") as lst:
        assert isinstance(lst, pysos.List) and list(lst) == []
    with pysos.open(tmp_path / "fresh", "n") as d:
        assert isinstance(d, pysos.Dict) and len(d) == 0


def test_flag_n_on_a_locked_store_changes_nothing(store_path):
    """open(path, "n") while another handle writes raises LockedError and deletes nothing."""
    _dict_store(store_path, {"a": 1})
    with pysos.Dict(store_path) as writer:
        with pytest.raises(pysos.LockedError):
            pysos.open(store_path, "n")
        assert dict(writer.items()) == {"a": 1}


@pytest.mark.parametrize("flag", ["x", "rw", "", "R", None, True])
def test_unknown_flag_is_valueerror(store_path, flag):
    """An unknown flag raises ValueError naming the valid ones and creates nothing."""
    with pytest.raises(ValueError, match="'r', 'w', 'c', 'n'"):
        pysos.open(store_path, flag)
    assert not os.path.exists(store_path)


def test_readonly_keyword_still_accepted(store_path):
    """readonly=True keeps working as a keyword of open(); it contradicts 'c'/'n'."""
    _dict_store(store_path, {"a": 1})
    with pysos.open(store_path, readonly=True) as d:
        assert d.readonly
    with pysos.open(store_path, readonly=False) as d:
        assert not d.readonly
    with pytest.raises(ValueError, match="readonly"):
        pysos.open(store_path, "n", readonly=True)
    with pytest.raises(ValueError, match="readonly"):
        pysos.open(store_path, "r", readonly=False)
    with pysos.open(store_path, "r") as d:
        assert dict(d.items()) == {"a": 1}


@pytest.mark.parametrize("cls", [pysos.Dict, pysos.List])
def test_positional_option_is_a_clear_typeerror(store_path, cls):
    """Dict(path, "c") raises a TypeError that says options are keywords and names open()."""
    with pytest.raises(TypeError, match=r"keywords.*pysos\.open\(path, flag\)"):
        cls(store_path, "c")
    with pytest.raises(TypeError):
        cls(store_path, True)
    assert not os.path.exists(store_path)


def test_options_are_keyword_only():
    """Every option other than path (and open()'s flag) is keyword-only."""
    import inspect

    for fn in (pysos.Dict.__init__, pysos.List.__init__):
        params = list(inspect.signature(fn).parameters.values())
        assert [p.name for p in params[:2]] == ["self", "path"]
        assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_POSITIONAL) for p in params[2:])
    params = list(inspect.signature(pysos.open).parameters.values())
    assert [p.name for p in params[:2]] == ["path", "flag"]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:])
