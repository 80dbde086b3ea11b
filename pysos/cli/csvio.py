"""CSV in and out: encoding and dialect detection (like pysos 1.3's ``csv2sos``, without
chardet), and the cell encoding that makes ``--typed`` round trips exact.

Cells are strings. Without ``--typed`` they stay strings on import (as ``csv2sos`` did),
and non-string values are written as JSON text on export (lossy, spreadsheet-friendly).
With ``--typed`` a cell that parses as JSON is that value (``12``, ``true``, ``null``,
``[1,2]``), any other cell is a string, and an empty cell means "no such field"; export
quotes a string as JSON exactly when reading it back would not give that string.
"""

import codecs
import csv
import io
import itertools

from .errors import CliError
from .jsonio import dumps, loads, parse_key

SAMPLE = 64 * 1024
DELIMITERS = ",;\t|"
_CHUNK = 1024 * 1024
MISSING = object()  # an empty cell under --typed: the row has no such field


def _decodes(path, encoding):
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path):
    """UTF-16 by its BOM, else UTF-8 (BOM or not) if the whole file decodes, else
    cp1252 if it decodes, else latin-1 (which decodes any bytes)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for encoding in ("utf-8-sig", "cp1252"):
        if _decodes(path, encoding):
            return encoding
    return "latin-1"


def delimiter_arg(text):
    """``--delimiter`` value: one character, or ``tab`` / ``\\t``."""
    if text in ("tab", "\\t", "TAB"):
        return "\t"
    if len(text) != 1:
        raise ValueError("the delimiter must be one character")
    return text


def _consistency(sample, delimiter, quotechar):
    """How well ``delimiter`` splits the sample: (share of rows with as many cells as
    the header, number of header cells); (0, 0) if the header would be one cell."""
    try:
        rows = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter,
                                      quotechar=quotechar) if r]
    except csv.Error:
        return (0.0, 0)
    if not rows or len(rows[0]) < 2:
        return (0.0, 0)
    width = len(rows[0])
    return (sum(len(r) == width for r in rows) / len(rows), width)


def sniff(sample, delimiter=None):
    """The CSV dialect of a text sample (the start of the input, whole lines).

    ``csv.Sniffer`` (as pysos 1.3's ``csv2sos``) proposes the quote character and a
    delimiter among , ; tab |; each candidate is then checked by splitting the sample,
    and the one that gives the most rows as wide as the header wins (the Sniffer's own
    choice on a tie: it is fooled by a delimiter inside quotes, this is not). ``delimiter``
    skips the guessing. Doubled quotes always mean one quote (RFC 4180).
    """

    class Dialect(csv.excel):
        pass

    if delimiter:
        Dialect.delimiter = delimiter
        return Dialect
    try:
        sniffed = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:
        sniffed = None
    if sniffed is not None:
        Dialect.quotechar = sniffed.quotechar
    candidates = sorted(DELIMITERS, key=lambda d: d != getattr(sniffed, "delimiter", ","))
    Dialect.delimiter = max(candidates, key=lambda d: _consistency(sample, d, Dialect.quotechar))
    if sniffed is not None and sniffed.delimiter == Dialect.delimiter:
        Dialect.skipinitialspace = sniffed.skipinitialspace
    return Dialect


def lines_and_dialect(stream, delimiter=None):
    """(an iterable of the stream's lines, its dialect): the start of the stream is read
    for sniffing and given back first, so this works on pipes too."""
    sample = stream.read(SAMPLE)
    sample += stream.readline()
    return itertools.chain(io.StringIO(sample, newline=""), stream), sniff(sample, delimiter)


def decode_cell(cell, typed):
    """A cell's value (see the module docstring); ``MISSING`` for an empty typed cell."""
    if not typed:
        return cell
    if cell == "":
        return MISSING
    try:
        return loads(cell)
    except ValueError:
        return cell


def decode_key(cell, typed):
    """A Dict key from the ``--key`` column: under ``typed`` the rule for keys on the
    command line (JSON scalar if it parses, else the text), else the text."""
    return parse_key(cell) if typed else cell


def _reads_back(text, decode):
    decoded = decode(text)
    return isinstance(decoded, str) and decoded == text


def encode_cell(value, typed):
    """The text of one cell: a string as it is unless (``typed``) reading the cell back
    would not give that string; None as an empty cell (untyped); anything else as JSON."""
    if isinstance(value, str):
        if not typed or _reads_back(value, lambda t: decode_cell(t, True)):
            return value
        return dumps(value)
    if value is None and not typed:
        return ""
    return dumps(value)


def encode_key(key, typed):
    """The text of the ``--key`` cell for a Dict key (same rule as :func:`encode_cell`)."""
    if isinstance(key, str) and (not typed or _reads_back(key, parse_key)):
        return key
    return dumps(key)


def read_rows(lines, dialect, *, typed=False, key=None):
    """Yield ``(line_number, key, row_dict)`` from CSV lines that start with a header;
    ``key`` names the column that holds the key (None: no key, a List row)."""
    reader = csv.DictReader(lines, dialect=dialect)
    try:
        fields = reader.fieldnames or []
        if len(set(fields)) != len(fields):
            dup = sorted({f for f in fields if fields.count(f) > 1})
            raise CliError(f"the CSV header names a column twice: {', '.join(dup)}")
        if key is not None and key not in fields:
            raise CliError(f"no column {key!r} in the CSV header "
                           f"(columns: {', '.join(fields) or 'none'})")
        for row in reader:
            if None in row:
                raise CliError(f"line {reader.line_num}: more cells than header columns")
            values = {}
            for name, cell in row.items():
                value = MISSING if cell is None else decode_cell(cell, typed)
                if value is not MISSING:  # short rows: trailing columns are absent
                    values[name] = value
            if key is None:
                yield reader.line_num, None, values
            elif not row[key]:
                raise CliError(f"line {reader.line_num}: the {key!r} cell is empty")
            else:
                yield reader.line_num, decode_key(row[key], typed), values
    except csv.Error as exc:
        raise CliError(f"line {reader.line_num}: bad CSV ({exc})") from None


def check_row(where, value):
    """Every exported value must be an object whose fields become columns."""
    if not isinstance(value, dict):
        raise CliError(
            f"CSV export needs every value to be an object (a row); {where} holds "
            f"{type(value).__name__}: export JSON lines instead"
        )


def writer(stream, fields, delimiter=","):
    """A csv.DictWriter for ``fields``, its header already written."""
    out = csv.DictWriter(stream, fieldnames=fields, delimiter=delimiter, lineterminator="\r\n")
    out.writeheader()
    return out


def text_reader(path, encoding):
    """(text stream, raw binary file whose ``tell()`` counts the bytes read so far)."""
    raw = open(path, "rb", buffering=0)
    return io.TextIOWrapper(io.BufferedReader(raw), encoding=encoding, newline=""), raw
