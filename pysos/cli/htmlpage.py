"""``export --html``: one self-contained static page (no network, no files beside it)
that shows a store's records and filters them as you type.

The records are embedded as JSON in a ``<script type="application/json">`` element and
drawn by the page's own JavaScript, at most ``LIMIT`` rows at a time; ``#q=text`` at the
end of the page's address pre-fills the search box.
"""

import html

from .jsonio import dumps

LIMIT = 500

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pysos export --html">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em; }}
#meta, #status {{ color: #666; margin: .3em 0; }}
#search {{ font-size: 1.1em; padding: .3em .5em; width: min(40em, 95%); }}
table {{ border-collapse: collapse; margin-top: .8em; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .3em .6em; text-align: left;
         vertical-align: top; }}
td.key {{ font-family: ui-monospace, monospace; white-space: nowrap; color: #05a; }}
td.value pre {{ margin: 0; white-space: pre-wrap; word-break: break-word; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p id="meta">{meta}</p>
<input id="search" type="search" placeholder="Search keys and values" autofocus>
<p id="status"></p>
<table><thead><tr><th>{key_heading}</th><th>value</th></tr></thead>
<tbody id="records"></tbody></table>
<script type="application/json" id="pysos-data">{{"kind":{kind},"records":["""

_TAIL = """]}</script>
<script>
"use strict";
(function () {
  const LIMIT = %d;
  const data = JSON.parse(document.getElementById("pysos-data").textContent);
  const rows = data.records.map(function (r) {
    const key = JSON.stringify(r[0]), value = JSON.stringify(r[1], null, 2);
    return {key: key, value: value, text: (key + "\\n" + value).toLowerCase()};
  });
  const search = document.getElementById("search");
  const body = document.getElementById("records");
  const status = document.getElementById("status");
  function render() {
    const q = search.value.trim().toLowerCase();
    const hits = q ? rows.filter(function (r) { return r.text.includes(q); }) : rows;
    const frag = document.createDocumentFragment();
    hits.slice(0, LIMIT).forEach(function (r) {
      const tr = document.createElement("tr");
      tr.className = "record";
      const k = document.createElement("td");
      k.className = "key";
      k.textContent = r.key;
      const v = document.createElement("td");
      v.className = "value";
      const pre = document.createElement("pre");
      pre.textContent = r.value;
      v.appendChild(pre);
      tr.append(k, v);
      frag.appendChild(tr);
    });
    body.replaceChildren(frag);
    status.textContent = hits.length + " of " + rows.length + " records" +
      (q ? " match" : "") + (hits.length > LIMIT ? " (showing the first " + LIMIT + ")" : "");
  }
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("q")) search.value = hash.get("q");
  search.addEventListener("input", render);
  render();
})();
</script>
</body>
</html>
"""


def _embed(value):
    # "<" only occurs inside JSON strings, where \\u003c means the same: so no
    # "</script>" or "<!--" can end the data element early.
    return dumps(value).replace("<", "\\u003c")


class HtmlWriter:
    """Write the page to a text stream: ``add(key_or_index, value)`` per record, then ``close()``."""

    def __init__(self, stream, *, title, kind, meta=""):
        self.stream, self.first = stream, True
        stream.write(_HEAD.format(
            title=html.escape(title), meta=html.escape(meta), kind=_embed(kind),
            key_heading="index" if kind == "list" else "key",
        ))

    def add(self, key, value):
        self.stream.write(("" if self.first else ",\n") + _embed([key, value]))
        self.first = False

    def close(self):
        self.stream.write(_TAIL % LIMIT)
