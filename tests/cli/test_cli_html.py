"""export --html: a self-contained page whose JavaScript draws the records as a compact
table you can search and sort, checked in a real headless Chromium (Debian package
``chromium``) driven over the DevTools protocol (tests/cli/browser.py)."""

import struct
import zlib

import pytest

import pysos
from browser import Browser
from cli_helpers import ok

ROWS = 'document.querySelectorAll("tr.record").length'
STATUS = 'document.getElementById("status").textContent'


def column(browser, n):
    """The texts of column ``n`` (1 = the key) of the rows drawn."""
    return browser.eval(f'[...document.querySelectorAll("tr.record td:nth-child({n})")]'
                        '.map(td => td.textContent)')


def set_search(browser, text):
    browser.eval('(s => { s.value = ""; s.dispatchEvent(new Event("input")); s.focus(); })'
                 '(document.getElementById("search"))')
    browser.type(text)


@pytest.fixture
def browser(tmp_path):
    with Browser(tmp_path / "chromium-profile") as b:
        yield b
        assert b.errors() == []


def test_html_page_shows_a_table_and_escapes_markup(tmp_path, browser):
    """The page draws one row per record (from the embedded data, not from HTML in the file),
    one column per field, is self-contained, and shows markup in the data as text."""
    path = tmp_path / "users"
    with pysos.Dict(path) as d:
        d.update({"alice": {"city": "Paris", "age": 31}, "bob": {"city": "Oslo"},
                  "evil": "</script><script>document.title='pwned'</script>", 7: [1, 2]})
    page = tmp_path / "users.html"
    assert "exported 4 records" in ok("export", "--html", path, page)
    html = page.read_text()
    assert 'class="record"' not in html  # rows come from the script, not from the file
    assert "http" not in html.replace("http-equiv", "")  # nothing to fetch
    browser.open(page.as_uri())
    assert browser.eval("document.title") == "pysos: users"
    assert browser.eval('[...document.querySelectorAll("th")].map(th => th.textContent)') == [
        "key", ".city", ".age", "value"]
    assert browser.eval(STATUS) == "4 of 4 records"
    assert sorted(column(browser, 1)) == sorted(['"alice"', '"bob"', '"evil"', "7"])
    rows = dict(zip(column(browser, 1), zip(column(browser, 2), column(browser, 3), column(browser, 4))))
    assert rows['"alice"'] == ("Paris", "31", "") and rows['"bob"'] == ("Oslo", "", "")
    assert rows["7"] == ("", "", "[1,2]")
    assert rows['"evil"'][2] == "</script><script>document.title='pwned'</script>"


def test_html_search_matches_json_as_get_prints_it_and_updates_the_address(tmp_path, browser):
    """#q= pre-fills the search; the search matches the compact JSON that get/dump print
    ("city":"Paris"), case-insensitively; typing updates #q= in the address."""
    path = tmp_path / "events"
    with pysos.List(path) as items:
        items.extend([{"city": "Paris"}, {"city": "Oslo"}, {"city": "Parma"}, "plain <b>"])
    page = tmp_path / "events.html"
    ok("export", path, page)  # the format follows the extension
    browser.open(page.as_uri() + "#q=par")
    assert column(browser, 1) == ["0", "2"] and browser.eval(STATUS) == "2 of 4 records match"
    set_search(browser, '"city":"paris"')
    assert column(browser, 1) == ["0"]
    assert browser.eval("decodeURIComponent(location.hash)") == '#q="city":"paris"'
    set_search(browser, "<b>")
    assert column(browser, 1) == ["3"]
    set_search(browser, "")
    assert browser.eval(ROWS) == 4 and browser.eval("location.hash") == ""


def test_html_sorts_by_a_column_numbers_as_numbers_missing_last(tmp_path, browser):
    """Clicking a header sorts by that column (numbers numerically, missing values last),
    again reverses it, and the address keeps the order (#sort=)."""
    path = tmp_path / "people"
    with pysos.Dict(path) as d:
        d.update({"a": {"age": 10}, "b": {"age": 9}, "c": {"name": "no age"}, "d": {"age": 100}})
    page = tmp_path / "people.html"
    ok("export", "--html", path, page)
    browser.open(page.as_uri())
    browser.eval('document.querySelectorAll("th")[1].click()')
    assert column(browser, 1) == ['"b"', '"a"', '"d"', '"c"']
    browser.eval('document.querySelectorAll("th")[1].click()')
    assert column(browser, 1) == ['"d"', '"a"', '"b"', '"c"']
    assert browser.eval("location.hash") == "#sort=.age&desc=1"
    browser.open(page.as_uri() + "#sort=.age&desc=1")
    assert column(browser, 1) == ['"d"', '"a"', '"b"', '"c"']


def _png_rows(data):
    """The pixel rows of an 8-bit RGB/RGBA PNG as lists of (r, g, b)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat = 8, b""
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
        elif kind == b"IDAT":
            idat += body
        at += 12 + length
    bpp = 4 if color == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return rows


def test_html_of_100k_keys_draws_only_what_is_in_view_and_reads_well(tmp_path, browser):
    """At 100,000 keys the page keeps only the rows in view in the document (it scrolls to
    the last record without drawing the rest), and a 1280x800 screenshot shows at least
    25 separate lines of text in the table, each record on one line."""
    path = tmp_path / "big"
    with pysos.Dict(path) as d, d.batch():
        for i in range(100_000):
            d[f"user:{i:06}"] = {"user": f"u{i}", "age": i % 90, "langs": ["python", "c"][: i % 3],
                                 "note": "a longer text that a table cell cuts short " * 3}
    page = tmp_path / "big.html"
    assert "exported 100,000 records" in ok("export", "--html", path, page)
    browser.open(page.as_uri())
    assert browser.eval(STATUS) == "100,000 of 100,000 records"
    assert 25 <= browser.eval(ROWS) <= 100
    assert browser.eval('+document.getElementById("table").dataset.rowsInView') >= 25
    browser.eval('(v => { v.scrollTop = v.scrollHeight; v.dispatchEvent(new Event("scroll")); })'
                 '(document.getElementById("view"))')
    browser.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
    assert '"user:099999"' in column(browser, 1) and browser.eval(ROWS) <= 100
    set_search(browser, '"user":"u4999"')
    assert column(browser, 1) == ['"user:004999"']
    set_search(browser, "")
    shot = browser.screenshot(tmp_path / "big.png")
    top = int(browser.eval('document.querySelector("tbody").getBoundingClientRect().top'))
    rows = _png_rows(shot.read_bytes())
    ink = [any(r + g + b < 3 * 140 for r, g, b in row) for row in rows[top:]]
    lines = sum(1 for before, now in zip([False] + ink, ink) if now and not before)
    assert lines >= 25, lines
