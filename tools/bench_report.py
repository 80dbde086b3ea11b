"""Tables, ratios, issue 6's targets and the chart for tools/bench.py."""

from __future__ import annotations

OPS = (("insert_ops", "insert/s"), ("read_ops", "read/s"), ("update_ops", "update/s"), ("delete_ops", "delete/s"))
LIST_OPS = (("append_ops", "append/s"), ("getitem_ops", "l[i]/s"), ("pop_ops", "pop()/s"),
            ("pop0_ops", "pop(0)/s"), ("insert0_ops", "insert(0, v)/s"))


def _ops(x):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}"


def _mb(x):
    return "n/a" if x is None else f"{x / 2**20:.1f}"


def _s(x):
    return "n/a" if x is None else f"{x:.3f}"


def _ratio(x):
    return "n/a" if x is None else f"{x:.2f}×"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _value_sizes(report):
    return sorted({r["value_size"] for r in report.get("dict", [])}, key=lambda v: (v != 0, v))


def dict_row(report, name, value_size=None):
    """The ok dict row `name` (at the first value size unless given), or None."""
    sizes = _value_sizes(report)
    if value_size is None and sizes:
        value_size = sizes[0]
    for r in report.get("dict", []):
        if r["row"] == name and r["value_size"] == value_size and r["status"] == "ok":
            return r
    return None


def _get(row, key):
    return None if row is None else row.get(key)


def _div(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def ratios(report, value_size=None):
    """pysos against pysos 1.3, semidbm and the raw limit, per operation."""
    pysos = dict_row(report, "pysos", value_size)
    pairs = [
        ("pysos / pysos 1.3", pysos, dict_row(report, "pysos13", value_size)),
        ("pysos / semidbm", pysos, dict_row(report, "semidbm", value_size)),
        ("pysos / raw log", pysos, dict_row(report, "raw", value_size)),
        ("pysos fsync / raw + fdatasync", dict_row(report, "pysos-fsync", value_size),
         dict_row(report, "raw-fdatasync", value_size)),
        ("pysos batch / pysos", dict_row(report, "pysos-batch", value_size), pysos),
        ("pysos expire / pysos", dict_row(report, "pysos-expire", value_size), pysos),
        ("diskcache expire / pysos expire", dict_row(report, "diskcache-expire", value_size),
         dict_row(report, "pysos-expire", value_size)),
    ]
    return [(label, [_div(_get(a, k), _get(b, k)) for k, _ in OPS]) for label, a, b in pairs]


def targets(report):
    """Issue 6's targets with the measured ratio; met is None when a figure is missing."""
    def row(name):
        return dict_row(report, name)

    out = []

    def add(text, measured, goal, at_least=True):
        met = None if measured is None else (measured >= goal if at_least else measured <= goal)
        out.append({"target": text, "measured": measured, "goal": ("≥ " if at_least else "≤ ") + f"{goal:g}",
                    "met": met})

    p, old, semi, raw = row("pysos"), row("pysos13"), row("semidbm"), row("raw")
    add("writes (flush) vs pysos 1.3", _div(_get(p, "insert_ops"), _get(old, "insert_ops")), 3)
    add("writes (flush) vs semidbm", _div(_get(p, "insert_ops"), _get(semi, "insert_ops")), 1)
    add("writes (flush) vs raw append log", _div(_get(p, "insert_ops"), _get(raw, "insert_ops")), 0.6)
    add('writes ("fsync") vs raw + fdatasync',
        _div(_get(row("pysos-fsync"), "insert_ops"), _get(row("raw-fdatasync"), "insert_ops")), 0.8)
    add("writes in batch() of 1,000 vs per call", _div(_get(row("pysos-batch"), "insert_ops"),
                                                      _get(p, "insert_ops")), 3)
    expiring = row("pysos-expire")  # issue 19: expiry costs at most 10 % (ops/s at least 1/1.1 of without)
    add("writes with expire=3600 vs without", _div(_get(expiring, "insert_ops"), _get(p, "insert_ops")), 0.91)
    add("updates with expire=3600 vs without", _div(_get(expiring, "update_ops"), _get(p, "update_ops")), 0.91)
    add("reads with expire=3600 vs without", _div(_get(expiring, "read_ops"), _get(p, "read_ops")), 0.91)
    add("reads vs pysos 1.3", _div(_get(p, "read_ops"), _get(old, "read_ops")), 2)
    add("reads vs semidbm", _div(_get(p, "read_ops"), _get(semi, "read_ops")), 1)
    add("reads vs raw pread", _div(_get(p, "read_ops"), _get(raw, "read_ops")), 0.7)
    add("updates vs pysos 1.3", _div(_get(p, "update_ops"), _get(old, "update_ops")), 3)
    add("deletes vs pysos 1.3", _div(_get(p, "delete_ops"), _get(old, "delete_ops")), 3)
    big = {r["row"]: r for r in report.get("big", []) if r.get("status") == "ok"}
    big_n = next(iter(big.values()), {}).get("n", 1_000_000)
    add(f"reopen of {big_n:,} keys (compacted, hints) vs pysos 1.3 (time)",
        _div(_get(big.get("pysos"), "reopen_compacted_s"), _get(big.get("pysos13"), "reopen_s")), 0.25, False)
    add("peak RSS per key vs pysos 1.3 (whole workload)",
        _div(_get(p, "rss_delta_per_key"), _get(old, "rss_delta_per_key")), 0.8, False)
    add("peak RSS per key vs pysos 1.3 (reopen in a fresh process)",
        _div(_get(p, "reopen_rss_per_key"), _get(old, "reopen_rss_per_key")), 0.8, False)
    lists = [r for r in report.get("list", []) if r.get("store") == "pysos" and r.get("status") == "ok"]
    if lists:
        biggest = max(lists, key=lambda r: r["size"])
        for key, label in LIST_OPS:
            add(f"List {label.replace('/s', '')} at {biggest['size']:,} items (ops/s)", biggest.get(key), 50_000)
    add("disk after compaction vs raw log compacted",
        _div(_get(p, "disk_compacted"), _get(raw, "disk_compacted")), 1.1, False)
    lat = {r["row"]: r for r in report.get("latency", []) if r.get("status") == "ok"}
    add("p99 write latency, compaction running vs not",
        _div(_get(lat.get("pysos-autocompact"), "p99_us"), _get(lat.get("pysos-no-autocompact"), "p99_us")),
        3, False)
    return out


def _status(r):
    return r.get("reason", r["status"])


def markdown(report):
    meta = report["meta"]
    parts = [
        "# pysos benchmark",
        "",
        f"Machine: {meta['nproc']} CPUs, {meta['cpu']}, Python {meta['python']}, {meta['platform']}; "
        f"{meta['date']}; took {meta.get('seconds', '?')} s; load average {meta.get('loadavg_start')} at the start, "
        f"{meta.get('loadavg_end')} at the end.",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"N = {meta['n']:,} keys (rows that fsync every change: {min(meta['n'], meta['sync_n']):,}); "
        f"medians of {meta['repeat']} run(s). Throughput in operations per second.",
    ]
    for size in _value_sizes(report):
        rows = []
        for r in report["dict"]:
            if r["value_size"] != size:
                continue
            if r["status"] != "ok":
                rows.append([r["row"], r["label"], r["n"], _status(r)] + [""] * 9 + [r["kill9"], r["power"]])
                continue
            capped = {c.split()[0] for c in r.get("capped", [])}
            rows.append([r["row"], r["label"], f"{r['n']:,}"] + [
                _ops(r.get(k)) + ("*" if k.split("_")[0] in capped else "") for k, _ in OPS] + [
                _s(r.get("reopen_s")), _mb(r.get("disk_bytes")), _mb(r.get("disk_compacted")),
                _mb(r.get("peak_rss")), f"{r['rss_delta_per_key']:.0f}",
                "n/a" if r.get("reopen_rss_per_key") is None else f"{r['reopen_rss_per_key']:.0f}",
                r["kill9"] + (f" (tested: {r['kill9_tested']})" if "kill9_tested" in r else ""), r["power"]])
        what = "the pysos 1.3 README value" if size == 0 else f"{size:,}-byte values"
        parts += ["", f"## Dict, {what}", "",
                  _table(["row", "store", "n"] + [h for _, h in OPS] + [
                      "reopen + len() s", "disk MB", "disk MB compacted", "peak RSS MB", "RSS B/key (run)",
                      "RSS B/key (reopen)", "survives kill -9", "survives power loss"], rows)]
        capped = [f"`{r['row']}` {c}" for r in report["dict"] if r["value_size"] == size for c in r.get("capped", [])]
        if capped:
            parts += ["", f"\\* stopped after {report['meta'].get('phase_cap', '?')} s: " + ", ".join(capped)
                      + " operations done (later phases then use the keys that exist)."]
        if size == _value_sizes(report)[0]:
            parts += ["", "Rows:", ""] + [f"- `{r['row']}`: {r['label']}" + (f"; {r['note']}" if r.get("note") else "")
                                          for r in report["dict"] if r["value_size"] == size]
        parts += ["", "Ratios:", "",
                  _table(["ratio"] + [h.replace("/s", "") for _, h in OPS],
                         [[label] + [_ratio(x) for x in values] for label, values in ratios(report, size)])]
    if report.get("list"):
        rows = [[r["store"], f"{r['size']:,}"] + ([_ops(r.get(k)) for k, _ in LIST_OPS] + [_s(r.get("build_s"))]
                                                    if r["status"] == "ok" else [_status(r)] + [""] * 5)
                for r in report["list"]]
        parts += ["", "## List", "", "n/a: the store does not support the operation.", "",
                  _table(["store", "items"] + [h for _, h in LIST_OPS] + ["build s"], rows)]
    if report.get("readers"):
        rows = [[r["row"], r["refresh_interval"]] + ([_ops(r.get("alone_read_ops")), _ops(r.get("busy_read_ops")),
                                                      _ops(r.get("write_ops"))]
                                                     if r["status"] == "ok" else [_status(r), "", ""])
                for r in report["readers"]]
        parts += ["", "## A reader process beside a writer process", "",
                  "A `readonly=True` handle reads random keys alone, then while another process updates "
                  "random keys as fast as it can.", "",
                  _table(["reader", "refresh_interval", "reads/s alone", "reads/s while writing",
                          "writer writes/s"], rows)]
    if report.get("latency"):
        rows = [[r["row"], r["autocompact"]] + ([_ops(r.get("write_ops")), f"{r['p50_us']:.1f}",
                                                 f"{r['p99_us']:.1f}", f"{r['max_us']:.0f}", r["generations"],
                                                 r["segments"], _mb(r.get("dead_bytes"))]
                                                if r["status"] == "ok" else [_status(r)] + [""] * 6)
                for r in report["latency"]]
        parts += ["", "## Write latency under churn", "",
                  "3 updates per key of ~100-byte values on a store of N keys, segment_size 4 MiB. "
                  "Manifest generations count segment rotations and compactions.", "",
                  _table(["row", "autocompact", "writes/s", "p50 µs", "p99 µs", "max µs",
                          "manifest generations", "segments at end", "dead MB at end"], rows)]
    if report.get("big"):
        rows = [[r["row"], f"{r['n']:,}"] + ([_s(r.get("build_s")), _mb(r.get("disk_bytes")), _s(r.get("reopen_s")),
                                              _mb(r.get("reopen_rss_delta")), _s(r.get("compact_s")),
                                              _s(r.get("reopen_compacted_s")),
                                              _mb(r.get("reopen_compacted_rss_delta"))]
                                             if r["status"] == "ok" else [_status(r)] + [""] * 6)
                for r in report["big"]]
        parts += ["", "## Reopen of a big store", "",
                  _table(["store", "keys", "build s", "disk MB", "reopen + len() s", "reopen RSS MB",
                          "compact s", "reopen after compact s", "reopen after compact RSS MB"], rows)]
    rows = [[t["target"], _ratio(t["measured"]) if t["goal"][2:] != "50000" else _ops(t["measured"]),
             t["goal"], {True: "met", False: "NOT met", None: "not measured"}[t["met"]]]
            for t in report.get("targets", [])]
    parts += ["", "## Issue 6 targets", "", _table(["target", "measured", "goal", "status"], rows), ""]
    return "\n".join(parts)


def chart(report, path):
    """A log-scale bar chart of per-operation throughput by store; returns the path or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    sizes = _value_sizes(report)
    if not sizes:
        return None
    rows = [r for r in report["dict"] if r["value_size"] == sizes[0] and r["status"] == "ok"]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.55 * len(rows) + 1.5))
    height = 0.8 / len(OPS)
    for j, (key, label) in enumerate(OPS):
        ys = [i + j * height for i in range(len(rows))]
        ax.barh(ys, [r.get(key) or 0 for r in rows], height=height, label=label.replace("/s", ""))
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))])
    ax.set_yticklabels([r["row"] for r in rows])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("operations per second (log scale)")
    what = "pysos 1.3 README values" if sizes[0] == 0 else f"{sizes[0]:,}-byte values"
    ax.set_title(f"Throughput by store, N = {report['meta']['n']:,}, {what} ({report['meta']['date']})")
    ax.grid(axis="x", which="both", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
