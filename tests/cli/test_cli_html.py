"""export --html: a self-contained page whose JavaScript lists the records and filters
them, checked in headless Chromium (Debian package ``chromium``)."""

import re
import shutil
import subprocess

import pysos
from cli_helpers import ok

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "chromium"


def rendered_dom(page, tmp_path, fragment=""):
    """The DOM of ``page`` after its scripts ran, from headless Chromium."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'chromium-profile'}",
         "--dump-dom", page.as_uri() + fragment],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def rows(dom):
    return re.findall(r'<tr class="record"><td class="key">(.*?)</td>', dom)


def test_html_page_renders_every_record_with_javascript(tmp_path):
    """The exported page shows each record (drawn by its script from the embedded JSON),
    a search box, and escapes markup in the data."""
    path = tmp_path / "users"
    with pysos.Dict(path) as d:
        d.update({"alice": {"city": "Paris"}, "bob": {"city": "Oslo"},
                  "evil": "</script><script>document.title='pwned'</script>", 7: [1, 2]})
    page = tmp_path / "users.html"
    assert "exported 4 records" in ok("export", "--html", path, page)
    html = page.read_text()
    assert 'class="record"' not in html  # the rows come from JavaScript, not from the file
    assert "http" not in html.replace("http-equiv", "")  # self-contained: nothing to fetch
    dom = rendered_dom(page, tmp_path)
    assert sorted(rows(dom)) == sorted(['"alice"', '"bob"', '"evil"', "7"])
    assert 'id="search"' in dom and "4 of 4 records" in dom
    assert "Paris" in dom and "Oslo" in dom
    assert "pwned" not in dom.split("<title>")[1].split("</title>")[0]
    assert "&lt;/script&gt;&lt;script&gt;" in dom


def test_html_search_filters_records(tmp_path):
    """#q=TEXT in the page address fills the search box and shows only matching records."""
    path = tmp_path / "events"
    with pysos.List(path) as items:
        items.extend([{"city": "Paris"}, {"city": "Oslo"}, {"city": "Parma"}])
    page = tmp_path / "events.html"
    ok("export", path, page)  # the format follows the extension
    dom = rendered_dom(page, tmp_path, "#q=par")
    assert rows(dom) == ["0", "2"] and "2 of 3 records match" in dom
