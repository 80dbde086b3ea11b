"""The engine's layout holds: imports point downward, no private state crosses modules, a
closed store refuses every use, a reader refuses every change by its class."""

import ast
import pathlib

import pytest

import pysos
from pysos.engine import Reader, Writer
from pysos.segments import record

PYSOS = pathlib.Path(pysos.__file__).parent

# package -> packages/modules it must never import (the layers above it)
_FORBIDDEN = {
    "segments": ("pysos.engine", "pysos.compactor", "pysos._handle", "pysos.dict", "pysos.list", "pysos._check"),
    "engine": ("pysos.compactor", "pysos._handle", "pysos.dict", "pysos.list", "pysos._check"),
    "compactor": ("pysos.engine", "pysos._handle", "pysos.dict", "pysos.list"),
}


def _imports(path: pathlib.Path) -> set[str]:
    """Absolute names of the pysos modules a file imports (at any depth of the file)."""
    package = ".".join(("pysos",) + path.relative_to(PYSOS).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("pysos")}


@pytest.mark.parametrize("package", sorted(_FORBIDDEN))
def test_imports_point_downward(package):
    """segments imports nothing above it; the engine never imports the compactor or the
    collections; the compactor never imports the engine (it gets a writer handed in)."""
    for path in sorted((PYSOS / package).glob("*.py")):
        bad = {name for name in _imports(path) if name.startswith(_FORBIDDEN[package])}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_no_module_outside_the_engine_reads_a_stores_private_attributes():
    """Outside pysos/engine, nothing touches ``store._x`` / ``self._store._x``."""
    for path in sorted(PYSOS.rglob("*.py")):
        if "engine" in path.relative_to(PYSOS).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = node.value
                name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                assert name not in ("store", "_store"), f"{path.name}:{node.lineno} reads {name}.{node.attr}"


def test_every_module_is_under_500_lines():
    """No module grows back into one class that does everything."""
    sizes = {path.name: len(path.read_text().splitlines()) for path in PYSOS.rglob("*.py")}
    assert max(sizes.values()) < 500, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_a_closed_store_refuses_even_a_method_that_skips_the_gate(store_path):
    """After close, engine methods called without enter() raise the closed store's ValueError
    and write nothing."""
    d = pysos.Dict(store_path, autocompact=False)
    d["k"] = 1
    store = d._store
    d.close()
    line = record.encode_item("k", 2)
    for use in (
        lambda: store.get("k"),
        lambda: store.write("k", line, False),
        lambda: store.read_snapshot("k", 0, None),
        lambda: len(store.index),
        lambda: "k" in store.index,
        lambda: list(store.index),
    ):
        with pytest.raises(ValueError, match="closed pysos store"):
            use()
    with pysos.Dict(store_path) as again:
        assert dict(again.items()) == {"k": 1}


def test_a_reader_is_a_reader_class_that_refuses_every_change(store_path):
    """A readonly handle is a Reader: writes, batches and seals raise ReadOnlyError."""
    pysos.Dict(store_path).close()
    with pysos.Dict(store_path, readonly=True) as r:
        store = r._store
        assert isinstance(store, Reader) and not isinstance(store, Writer)
        with pytest.raises(pysos.ReadOnlyError):
            store.write("k", record.encode_item("k", 1), False)
        with pytest.raises(pysos.ReadOnlyError):
            with store.batch():
                pass
        with pytest.raises(pysos.ReadOnlyError):
            store.seal()


def test_the_read_paths_check_agrees_with_record_load(store_path):
    """Store.read spells out record.load's check (a call costs ~4 % of a read): for every
    byte of a record flipped in place, a read returns the value exactly when record.load
    accepts the line as a set record of that key."""
    import os

    d = pysos.Dict(store_path, autocompact=False)
    d["k"] = {"v": [1, 2]}
    segment_path = os.path.join(store_path, d._store.manifest.segments[-1])
    good = record.encode_item("k", {"v": [1, 2]})
    variants = [good]
    for at in range(len(good)):
        for mask in (0x01, 0x20, 0x40):
            line = bytearray(good)
            line[at] ^= mask
            variants.append(bytes(line))
    fd = os.open(segment_path, os.O_WRONLY)
    try:
        for line in variants:
            os.pwrite(fd, line, 0)
            obj = record.load(line)
            accepted = type(obj) is dict and obj.get("k") == "k" and "v" in obj
            try:
                value, read_ok = d["k"], True
            except pysos.CorruptionError:
                value, read_ok = None, False
            assert read_ok == accepted, line
            if read_ok:
                assert value == obj["v"]
    finally:
        os.pwrite(fd, good, 0)
        os.close(fd)
        d.close()


# CPython keeps at most 30 attributes of an instance in its compact layout (shared keys,
# SHARED_KEYS_MAX_SIZE in Objects/dictobject.c, 3.11-3.13); one more turns the instance's
# attributes into a plain dict and every attribute lookup of the hot paths costs more
# (~800 instructions, 4 %, per Dict write: tools/bench_instructions.py). The hot paths'
# attributes are slots (engine/core.py); the rest must stay within the limit.
_COMPACT_LAYOUT_MAX = 30


def test_store_instances_keep_the_compact_attribute_layout(store_path):
    """A Writer's and a Reader's __dict__ hold at most 30 attributes after opening, writing,
    expiring keys, batches, rotation, compaction and following."""
    with pysos.Dict(store_path, segment_size=4096) as d, pysos.Dict(store_path, readonly=True) as r:
        for i in range(200):
            d[f"k{i}"] = "x" * 50
        d.set("t", 1, expire=3600)
        with d.batch():
            d["b"] = 1
        d.compact()
        d["after"] = 1
        assert r["after"] == 1 and r["t"] == 1
        for store in (d._store, r._store):
            assert isinstance(store, (Writer, Reader))
            assert len(vars(store)) <= _COMPACT_LAYOUT_MAX, sorted(vars(store))
