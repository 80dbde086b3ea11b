"""Segment scanning: whole units only, torn tails told apart from damage."""

import os

import pytest

from pysos.segments import record, segment


def _write(tmp_path, data: bytes):
    path = tmp_path / "seg-00000001.jsonl"
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def _set(key, value):
    return record.encode_set(record.encode_key(key), record.encode_value(value))


def _batch(*lines):
    return record.BATCH_BEGIN_LINE + b"".join(lines) + record.encode_batch_end(len(lines))


def test_scan_yields_records_with_offsets(tmp_path):
    """Each set/delete comes out with its key, offset and line; good_end is the file size."""
    a, b = _set("a", 1), record.encode_delete(record.encode_key("a"))
    fd = _write(tmp_path, a + b)
    scanner = segment.Scanner(fd)
    assert list(scanner) == [("set", "a", 0, a), ("delete", "a", len(a), b)]
    assert scanner.good_end == len(a + b) and scanner.problem is None and not scanner.incomplete_tail


def test_batch_records_come_only_when_the_batch_is_whole(tmp_path):
    """A batch cut anywhere before its end marker yields none of its records."""
    head = _set("x", 0)
    whole = head + _batch(_set("a", 1), _set("b", 2))
    for cut in range(len(head) + 1, len(whole)):
        fd = _write(tmp_path, whole[:cut])
        scanner = segment.Scanner(fd)
        assert [key for _, key, _, _ in scanner] == ["x"]
        assert scanner.good_end == len(head)
        assert scanner.problem is None and scanner.incomplete_tail
        os.close(fd)
    fd = _write(tmp_path, whole)
    assert [key for _, key, _, _ in segment.Scanner(fd)] == ["x", "a", "b"]


def test_a_batch_end_with_the_wrong_count_is_a_problem(tmp_path):
    """An end marker whose count does not match the records before it is reported."""
    data = record.BATCH_BEGIN_LINE + _set("a", 1) + record.encode_batch_end(2)
    scanner = segment.Scanner(_write(tmp_path, data))
    assert list(scanner) == [] and scanner.problem is not None


def test_torn_tail_versus_damage_in_the_middle(tmp_path):
    """Bad bytes followed only by garbage are a torn tail; followed by a valid record, damage."""
    a, b = _set("a", 1), _set("b", 2)
    torn = a + b[:-5] + b"\x00\x00\x00\n"
    fd = _write(tmp_path, torn)
    scanner = segment.Scanner(fd)
    list(scanner)
    offset, _ = scanner.problem
    assert offset == len(a) == scanner.good_end and segment.torn(fd, scanner.good_end, len(torn))
    os.close(fd)
    damaged = a + b"garbage\n" + b
    fd = _write(tmp_path, damaged)
    scanner = segment.Scanner(fd)
    list(scanner)
    offset, _ = scanner.problem
    assert offset == len(a) and not segment.torn(fd, scanner.good_end, len(damaged))


def test_scan_across_read_chunks_and_lines_longer_than_a_chunk(tmp_path, monkeypatch):
    """Records cut by chunk boundaries, and a record many chunks long, come out whole with
    their offsets; the long one is read in a few growing reads, not one per chunk."""
    monkeypatch.setattr(segment, "_CHUNK", 64)
    lines = [_set(f"k{i}", "v" * (i * 7 % 90)) for i in range(40)]
    lines.insert(20, _set("long", "x" * 50_000))
    fd = _write(tmp_path, b"".join(lines))
    reads = []
    real_pread = segment.files.pread
    monkeypatch.setattr(segment.files, "pread", lambda *a: reads.append(a) or real_pread(*a))
    scanner = segment.Scanner(fd)
    offsets = [sum(map(len, lines[:i])) for i in range(len(lines))]
    expected = [("set", record.parse(line)["k"], offset, line) for line, offset in zip(lines, offsets)]
    assert list(scanner) == expected
    assert scanner.good_end == sum(map(len, lines)) and scanner.problem is None
    long_reads = [a for a in reads if offsets[20] <= a[2] < offsets[21]]
    assert len(long_reads) <= 12  # 50,000 bytes in 64-byte chunks would be ~780 reads


def test_create_new_never_reuses_a_name(tmp_path):
    """Segment allocation skips names that exist (O_EXCL), so two allocators never collide."""
    name1, fd1 = segment.create_new(str(tmp_path), 3)
    name2, fd2 = segment.create_new(str(tmp_path), 3)
    assert (name1, name2) == ("seg-00000003.jsonl", "seg-00000004.jsonl")
    os.close(fd1), os.close(fd2)


@pytest.mark.parametrize("name, number", [("seg-00000001.jsonl", 1), ("seg-123456789.jsonl", 123456789), ("seg-1.jsonl", None), ("x.jsonl", None)])
def test_segment_names(name, number):
    """Segment names are seg-<8+ digits>.jsonl; anything else is not a segment."""
    assert segment.segment_number(name) == number
