"""``export --html``: one self-contained static page (no network, no files beside it)
that shows a store's records as a compact table you can search and sort.

The records are embedded as JSON in a ``<script type="application/json">`` element and
drawn by the page's own JavaScript. Objects get one column per field (the first
``MAX_COLUMNS`` fields of the first ``COLUMN_SAMPLE`` records, in order of first
appearance; other fields, and values that are not objects, go to a last "value" column). Only the rows in view are in the document, so a
page of 100,000 records scrolls as fast as one of 100. The search matches keys and
values as ``get`` and ``dump`` print them (compact JSON, e.g. ``"user":"u4999"``), case
insensitive; clicking a column header sorts by it; clicking a row shows its whole value.
The address keeps the state: ``#q=text&sort=column&desc=1``.
"""

import html

from .jsonio import dumps

MAX_COLUMNS = 12
#: Columns come from the fields of the first records (the others' fields show in "value").
COLUMN_SAMPLE = 2000

_HEAD = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pysos export --html">
<title>{title}</title>
<style>
html, body {{ height: 100%; margin: 0; }}
body {{ font: 13px/1.3 system-ui, sans-serif; color: #222; display: flex; flex-direction: column; }}
header {{ padding: .5em .8em .3em; border-bottom: 1px solid #ccc; background: #f7f7f7; }}
h1 {{ font-size: 1.1em; margin: 0; display: inline; }}
#meta {{ color: #666; margin-left: .8em; }}
#search {{ font-size: 1em; padding: .2em .4em; width: min(36em, 60%); margin-top: .3em; }}
#status {{ color: #555; margin-left: .8em; }}
#view {{ flex: 1; overflow: auto; position: relative; }}
table {{ border-collapse: collapse; table-layout: fixed; width: 100%; }}
th {{ position: sticky; top: 0; background: #eef; text-align: left; padding: 0 .5em;
      height: 22px; border-bottom: 1px solid #99a; cursor: pointer; white-space: nowrap;
      overflow: hidden; text-overflow: ellipsis; user-select: none; }}
th.sorted::after {{ content: " \\25B2"; }}
th.sorted.desc::after {{ content: " \\25BC"; }}
td {{ height: 20px; padding: 0 .5em; white-space: nowrap; overflow: hidden;
      text-overflow: ellipsis; border-bottom: 1px solid #eee; }}
tr.record:nth-child(even) td {{ background: #fafafa; }}
tr.record:hover td {{ background: #eef5ff; cursor: pointer; }}
tr.record.selected td {{ background: #dde9ff; }}
td.key {{ font-family: ui-monospace, monospace; color: #05a; }}
td.json {{ font-family: ui-monospace, monospace; color: #444; }}
#detail {{ max-height: 35vh; overflow: auto; margin: 0; padding: .5em .8em; border-top: 2px solid #99a;
          background: #fcfcf6; font: 12px/1.35 ui-monospace, monospace; white-space: pre-wrap;
          word-break: break-word; }}
#detail[hidden] {{ display: none; }}
</style>
</head>
<body>
<header>
<h1>{title}</h1><span id="meta">{meta}</span><br>
<input id="search" type="search" placeholder="Search keys and values (as get prints them: &quot;user&quot;:&quot;u1&quot;)" autofocus>
<span id="status"></span>
</header>
<div id="view"><table id="table"><colgroup id="cols"></colgroup><thead><tr id="heads"></tr></thead>
<tbody id="records"></tbody></table></div>
<pre id="detail" hidden></pre>
<script type="text/plain" id="pysos-data">{{"kind":{kind},"max_columns":{max_columns},"sample":{sample}}}
"""

_TAIL = """</script>
<script>
"use strict";
(function () {
  const started = performance.now();
  // One line per record, [key,value] in compact JSON as get and dump print it; a record
  // is parsed only when it is drawn or sorted, its text lowercased only when searched.
  const lines = document.getElementById("pysos-data").textContent.split("\\n");
  const data = JSON.parse(lines[0]);
  const keyName = data.kind === "list" ? "index" : "key";
  const records = [];
  for (let i = 1; i < lines.length; i++) if (lines[i]) records.push({line: lines[i], order: i - 1});
  function parsed(rec) {
    if (rec.keyText === undefined) {
      const r = JSON.parse(rec.line);
      rec.key = r[0]; rec.value = r[1]; rec.keyText = JSON.stringify(r[0]);
      rec.isObject = r[1] !== null && typeof r[1] === "object" && !Array.isArray(r[1]);
    }
    return rec;
  }
  function text(rec) {  // what a search matches: the record's JSON, "<" as itself
    if (rec.text === undefined) rec.text = rec.line.replaceAll("\\\\u003c", "<").toLowerCase();
    return rec.text;
  }
  // Columns: the first max_columns fields of the first `sample` object values, in order of
  // first appearance; "value" holds the other fields (or the value, when not an object).
  const fields = [], seen = new Set();
  let rest = false;
  records.slice(0, data.sample).forEach(function (rec) {
    parsed(rec);
    if (!rec.isObject) { rest = true; return; }
    for (const f of Object.keys(rec.value)) {
      if (!seen.has(f)) {
        seen.add(f);
        if (fields.length < data.max_columns) fields.push(f); else rest = true;
      }
    }
  });
  if (records.length > data.sample) rest = true;
  const fieldSet = new Set(fields);
  const columns = [keyName].concat(fields.map(function (f) { return "." + f; }));
  if (rest || !fields.length) columns.push("value");

  function cell(rec, col) {  // [text, css class] of one cell
    if (col === keyName) return [rec.keyText, "key"];
    let v;
    if (col === "value") {
      if (!rec.isObject) v = rec.value;
      else {
        const other = {};
        let any = false;
        for (const f of Object.keys(rec.value)) if (!fieldSet.has(f)) { other[f] = rec.value[f]; any = true; }
        if (!any) return ["", "missing"];
        v = other;
      }
    } else {
      const f = col.slice(1);
      if (!rec.isObject || !(f in rec.value)) return ["", "missing"];
      v = rec.value[f];
    }
    return typeof v === "string" ? [v, ""] : [JSON.stringify(v), "json"];
  }
  function sortValue(rec, col) {
    if (col === keyName) return rec.key;
    if (col === "value") return rec.isObject ? undefined : rec.value;
    return rec.isObject ? rec.value[col.slice(1)] : undefined;
  }
  function rank(v) {  // numbers, then strings, then the rest, then missing
    return typeof v === "number" ? 0 : typeof v === "string" ? 1 : v === undefined ? 3 : 2;
  }
  function compare(a, b) {
    const ra = rank(a), rb = rank(b);
    if (ra !== rb) return ra - rb;
    if (ra === 0) return a - b;
    if (ra === 1) return a < b ? -1 : a > b ? 1 : 0;
    if (ra === 2) { const x = JSON.stringify(a), y = JSON.stringify(b); return x < y ? -1 : x > y ? 1 : 0; }
    return 0;
  }

  const search = document.getElementById("search");
  const view = document.getElementById("view");
  const body = document.getElementById("records");
  const heads = document.getElementById("heads");
  const cols = document.getElementById("cols");
  const status = document.getElementById("status");
  const detail = document.getElementById("detail");
  const table = document.getElementById("table");
  let sortCol = null, desc = false, hits = records, rowHeight = 21, selected = null;

  columns.forEach(function (col, i) {
    const c = document.createElement("col");
    if (i === 0) c.style.width = data.kind === "list" ? "5em" : "14em";
    cols.appendChild(c);
    const th = document.createElement("th");
    th.textContent = col;
    th.title = "sort by " + col;
    th.addEventListener("click", function () {
      if (sortCol === col) desc = !desc; else { sortCol = col; desc = false; }
      update(true);
    });
    heads.appendChild(th);
  });

  function readHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    search.value = h.get("q") || "";
    sortCol = columns.indexOf(h.get("sort")) >= 0 ? h.get("sort") : null;
    desc = h.get("desc") === "1";
  }
  function writeHash() {
    const h = new URLSearchParams();
    if (search.value) h.set("q", search.value);
    if (sortCol) h.set("sort", sortCol);
    if (sortCol && desc) h.set("desc", "1");
    const hash = h.toString() ? "#" + h.toString() : "";
    if (hash !== location.hash) {
      try { history.replaceState(null, "", hash || location.pathname + location.search); }
      catch (e) { location.replace(hash || "#"); }
    }
  }
  function filterAndSort() {
    const q = search.value.trim().toLowerCase();
    hits = q ? records.filter(function (r) { return text(r).includes(q); }) : records.slice();
    if (sortCol) {
      const col = sortCol, sign = desc ? -1 : 1;
      hits.forEach(function (r) { r.sortKey = sortValue(parsed(r), col); });
      hits.sort(function (a, b) {
        const ra = rank(a.sortKey), rb = rank(b.sortKey);
        if (ra === 3 || rb === 3) return (ra === 3) - (rb === 3) || a.order - b.order;  // missing: last
        return sign * compare(a.sortKey, b.sortKey) || a.order - b.order;
      });
    }
    heads.childNodes.forEach(function (th, i) {
      th.className = columns[i] === sortCol ? (desc ? "sorted desc" : "sorted") : "";
    });
    status.textContent = hits.length.toLocaleString("en") + " of " +
      records.length.toLocaleString("en") + " records" + (q ? " match" : "");
  }
  function pad(height) {
    const tr = document.createElement("tr");
    tr.className = "pad";
    tr.style.height = height + "px";
    return tr;
  }
  function draw() {  // only the rows in view (and a few around them) are in the document
    const visible = Math.ceil(view.clientHeight / rowHeight) + 1;
    const first = Math.max(0, Math.floor(view.scrollTop / rowHeight) - 5);
    const last = Math.min(hits.length, first + visible + 10);
    const frag = document.createDocumentFragment();
    frag.appendChild(pad(first * rowHeight));
    for (let i = first; i < last; i++) {
      const rec = parsed(hits[i]);
      const tr = document.createElement("tr");
      tr.className = rec === selected ? "record selected" : "record";
      tr.dataset.row = i;
      columns.forEach(function (col) {
        const [text, cls] = cell(rec, col);
        const td = document.createElement("td");
        if (cls) td.className = cls;
        td.textContent = text;
        if (text.length > 20) td.title = text;
        tr.appendChild(td);
      });
      frag.appendChild(tr);
    }
    frag.appendChild(pad((hits.length - last) * rowHeight));
    body.replaceChildren(frag);
    const row = body.querySelector("tr.record");
    if (row && Math.abs(row.getBoundingClientRect().height - rowHeight) > 0.5) {
      rowHeight = row.getBoundingClientRect().height;  // the real height, once: redraw with it
      return draw();
    }
    table.dataset.rowsInView = Math.min(hits.length, Math.floor((view.clientHeight - 22) / rowHeight));
  }
  function update(keepScroll) {
    filterAndSort();
    writeHash();
    if (!keepScroll) view.scrollTop = 0;
    draw();
  }
  body.addEventListener("click", function (event) {
    const tr = event.target.closest("tr.record");
    if (!tr) return;
    selected = hits[+tr.dataset.row];
    detail.textContent = selected.keyText + "\\n" + JSON.stringify(selected.value, null, 2);
    detail.hidden = false;
    draw();
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { detail.hidden = true; selected = null; draw(); }
  });
  let scheduled = false;
  view.addEventListener("scroll", function () {
    if (!scheduled) { scheduled = true; requestAnimationFrame(function () { scheduled = false; draw(); }); }
  });
  window.addEventListener("resize", draw);
  search.addEventListener("input", function () { update(false); });
  window.addEventListener("hashchange", function () { readHash(); filterAndSort(); draw(); });
  readHash();
  update(false);
  document.body.dataset.renderMs = Math.round(performance.now() - started);
})();
</script>
</body>
</html>
"""


def _embed(value):
    # "<" only occurs inside JSON strings, where \\u003c means the same: so no
    # "</script>" or "<!--" can end the data element early. JSON has no raw newline, so
    # each record is one line.
    return dumps(value).replace("<", "\\u003c")


class HtmlWriter:
    """Write the page to a text stream: ``add(key_or_index, value)`` per record, then ``close()``."""

    def __init__(self, stream, *, title, kind, meta=""):
        self.stream = stream
        stream.write(_HEAD.format(
            title=html.escape(title), meta=html.escape(meta), kind=_embed(kind),
            max_columns=MAX_COLUMNS, sample=COLUMN_SAMPLE,
        ))

    def add(self, key, value):
        self.stream.write(_embed([key, value]) + "\n")

    def close(self):
        self.stream.write(_TAIL)
