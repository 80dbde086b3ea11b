"""Opening and closing stores: paths, kinds, formats, missing stores, closed handles."""

import json
import os

import pytest

import pysos


def _tree(path):
    """Every file under ``path`` with its bytes (to check that nothing was created or changed)."""
    out = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


@pytest.mark.parametrize("cls", [pysos.Dict, pysos.List])
def test_creates_missing_directory_with_parents(tmp_path, cls):
    """A store opened on a missing path creates the directory and its parents."""
    path = tmp_path / "a" / "b" / "store"
    with cls(path) as s:
        assert len(s) == 0
    assert path.is_dir() and (path / "MANIFEST").is_file()


@pytest.mark.parametrize("cls", [pysos.Dict, pysos.List])
def test_accepts_str_and_pathlike(tmp_path, cls):
    """``path`` may be a str or an os.PathLike; both name the same store."""
    with cls(str(tmp_path / "s")) as s:
        s.append(1) if cls is pysos.List else s.__setitem__("a", 1)
    with cls(tmp_path / "s") as s:
        assert len(s) == 1


def test_empty_existing_directory_becomes_a_store(tmp_path):
    """An existing empty directory is not 'something else': a writer makes a store in it."""
    path = tmp_path / "empty"
    path.mkdir()
    with pysos.Dict(path) as d:
        d["a"] = 1
    with pysos.open(path) as d:
        assert dict(d.items()) == {"a": 1}


@pytest.mark.parametrize("cls", [pysos.Dict, pysos.List])
def test_context_manager_closes(store_path, cls):
    """Leaving a ``with`` block closes the store: it refuses use and frees the writer lock."""
    with cls(store_path) as s:
        pass
    with pytest.raises(ValueError):
        len(s)
    with cls(store_path) as again:  # the lock was released
        assert len(again) == 0


def test_closed_dict_raises_valueerror(store_path):
    """Every operation on a closed Dict raises ValueError, like a closed file; close() twice is fine."""
    d = pysos.Dict(store_path)
    d["a"] = 1
    d.close()
    d.close()
    ops = [
        lambda: d["a"], lambda: d.__setitem__("b", 2), lambda: d.__delitem__("a"), lambda: len(d),
        lambda: list(d), lambda: "a" in d, lambda: d.get("a"), lambda: list(d.keys()),
        lambda: list(d.values()), lambda: list(d.items()), lambda: d.pop("a"), lambda: d.popitem(),
        lambda: d.setdefault("z", 1), lambda: d.update(x=1), lambda: d.clear(), lambda: d.flush(),
        lambda: d.sync(), lambda: d.compact(), lambda: d.stats(), lambda: d.batch().__enter__(),
    ]
    for i, op in enumerate(ops):
        with pytest.raises(ValueError):
            op()
            pytest.fail(f"operation #{i} worked on a closed store")
    with pysos.Dict(store_path) as again:
        assert dict(again.items()) == {"a": 1}


def test_closed_list_raises_valueerror(store_path):
    """Every operation on a closed List raises ValueError, like a closed file."""
    l = pysos.List(store_path)
    l.extend([1, 2])
    l.close()
    ops = [
        lambda: l[0], lambda: l[0:1], lambda: l.__setitem__(0, 5), lambda: l.__delitem__(0),
        lambda: len(l), lambda: list(l), lambda: l.append(3), lambda: l.extend([3]),
        lambda: l.insert(0, 3), lambda: l.pop(), lambda: l.remove(1), lambda: l.index(1),
        lambda: l.count(1), lambda: l.reverse(), lambda: l.sort(), lambda: 1 in l,
    ]
    for i, op in enumerate(ops):
        with pytest.raises(ValueError):
            op()
            pytest.fail(f"operation #{i} worked on a closed store")
    with pysos.List(store_path) as again:
        assert list(again) == [1, 2]


@pytest.mark.parametrize("cls", [pysos.Dict, pysos.List])
@pytest.mark.parametrize("bogus", ["bogus", "FSYNC", "", "flush "])
def test_bad_durability_raises_valueerror(store_path, cls, bogus):
    """``durability=`` anything but "flush"/"fsync" raises ValueError."""
    with pytest.raises(ValueError):
        cls(store_path, durability=bogus)


def test_both_durabilities_open(store_path, durability):
    """"flush" and "fsync" are accepted and a write survives a reopen in both modes."""
    with pysos.Dict(store_path, durability=durability) as d:
        d["a"] = [1]
        d.flush()
        d.sync()
    with pysos.Dict(store_path, durability=durability) as d:
        assert d["a"] == [1]


@pytest.mark.parametrize("opener", [
    lambda p: pysos.Dict(p, readonly=True),
    lambda p: pysos.List(p, readonly=True),
    lambda p: pysos.open(p),
    lambda p: pysos.open(p, readonly=True),
])
def test_missing_store_raises_filenotfound_and_creates_nothing(tmp_path, opener):
    """readonly=True or pysos.open on a path without a store raises FileNotFoundError and creates nothing."""
    missing = tmp_path / "parent" / "store"
    with pytest.raises(FileNotFoundError):
        opener(missing)
    assert not (tmp_path / "parent").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError):
        opener(empty)
    assert os.listdir(empty) == []


def test_load_is_open(store_path):
    """pysos.load is an alias of pysos.open."""
    with pysos.List(store_path) as l:
        l.append("x")
    with pysos.load(store_path) as s:
        assert isinstance(s, pysos.List) and list(s) == ["x"]


@pytest.mark.parametrize("opener", [
    lambda p: pysos.Dict(p),
    lambda p: pysos.List(p),
    lambda p: pysos.Dict(p, readonly=True),
    lambda p: pysos.open(p),
])
def test_directory_of_unrelated_files_is_formaterror(tmp_path, opener):
    """A directory holding other files (no MANIFEST) raises FormatError and its files are untouched."""
    path = tmp_path / "photos"
    path.mkdir()
    (path / "notes.txt").write_text("hello\n")
    (path / "data.jsonl").write_text('{"a": 1}\n')
    (path / "sub").mkdir()
    before = _tree(path)
    with pytest.raises(pysos.FormatError):
        opener(path)
    after = _tree(path)
    assert {k: v for k, v in after.items() if k in before} == before


def test_manifest_that_is_not_pysos_is_formaterror(store_path):
    """A MANIFEST that is not a pysos manifest, or names an unknown format version, raises FormatError."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    manifest = store_path / "MANIFEST"
    good = manifest.read_text()
    data = json.loads(good)
    data["version"] = 999
    manifest.write_text(json.dumps(data))
    with pytest.raises(pysos.FormatError):
        pysos.Dict(store_path)
    manifest.write_text(json.dumps({"something": "else"}))
    with pytest.raises(pysos.FormatError):
        pysos.open(store_path)
    manifest.write_text(good)
    with pysos.Dict(store_path) as d:
        assert d["a"] == 1


def test_dict_store_opened_as_list_is_formaterror(store_path):
    """Opening a Dict store as a List raises FormatError and leaves the store intact."""
    with pysos.Dict(store_path) as d:
        d["a"] = 1
    with pytest.raises(pysos.FormatError):
        pysos.List(store_path)
    with pytest.raises(pysos.FormatError):
        pysos.List(store_path, readonly=True)
    with pysos.Dict(store_path) as d:
        assert dict(d.items()) == {"a": 1}


def test_list_store_opened_as_dict_is_formaterror(store_path):
    """Opening a List store as a Dict raises FormatError and leaves the store intact."""
    with pysos.List(store_path) as l:
        l.extend([1, 2])
    with pytest.raises(pysos.FormatError):
        pysos.Dict(store_path)
    with pytest.raises(pysos.FormatError):
        pysos.Dict(store_path, readonly=True)
    with pysos.List(store_path) as l:
        assert list(l) == [1, 2]


@pytest.mark.parametrize("readonly", [False, True])
def test_open_returns_the_right_kind(tmp_path, readonly):
    """pysos.open returns a Dict for a dict store and a List for a list store."""
    with pysos.Dict(tmp_path / "d") as d:
        d["k"] = "v"
    with pysos.List(tmp_path / "l") as l:
        l.append("v")
    with pysos.open(tmp_path / "d", readonly=readonly) as s:
        assert isinstance(s, pysos.Dict) and dict(s.items()) == {"k": "v"}
    with pysos.open(tmp_path / "l", readonly=readonly) as s:
        assert isinstance(s, pysos.List) and list(s) == ["v"]


def test_errors_subclass_error():
    """Every pysos error subclasses pysos.Error, itself an Exception."""
    assert issubclass(pysos.Error, Exception)
    for name in ["LockedError", "ReadOnlyError", "FormatError", "CorruptionError"]:
        assert issubclass(getattr(pysos, name), pysos.Error)
