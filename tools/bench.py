#!/usr/bin/env python3
"""Benchmark pysos against its peers and the raw limit (issue 6).

    python tools/bench.py                       # every store, N = 100,000
    python tools/bench.py --value-size 0,1000   # also a run with 1,000-byte values
    python tools/bench.py --only pysos,pysos13,raw --repeat 3 --out bench-out
    python tools/bench.py --big                 # adds the reopen of a 1,000,000-key store

Each measurement runs in a child process of its own (so peak RSS belongs to one
store). Prints markdown tables and writes bench.json, bench.md and bench.png
(if matplotlib is installed) to --out. Rows whose module is missing are
reported as "not installed". Dependencies: the `bench` extra in pyproject.toml.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_stores as stores  # noqa: E402

ROOT = HERE.parent
SECTIONS = ("dict", "list", "readers", "latency", "big")
# rows of the other sections that --only also accepts (the store rows select them too)
EXTRA_ROWS = {"list", "pysos-refresh-0.5", "pysos-autocompact", "pysos-no-autocompact"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=100_000, help="keys per dict workload (default 100,000)")
    p.add_argument("--value-size", default="0",
                   help="comma list of value sizes in bytes of JSON; 0 = the pysos 1.3 README "
                        'value {"some": "object_<i>"} (default 0)')
    p.add_argument("--only", default="", help="comma list of row names (see --list-rows)")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; medians are reported")
    p.add_argument("--out", default=str(ROOT / "bench-out"), help="directory for bench.json/.md/.png")
    p.add_argument("--sync-n", type=int, default=5_000,
                   help="operations per phase for rows that fsync every change (default 5,000)")
    p.add_argument("--phase-cap", type=float, default=30.0,
                   help="a dict phase that runs longer stops there and reports the rate so far (default 30 s)")
    p.add_argument("--list-sizes", default="",
                   help="comma list of List sizes (default N/10 and 10*N: 10k and 1M at N = 100,000)")
    p.add_argument("--list-ops", type=int, default=2000, help="operations timed per List op (default 2,000)")
    p.add_argument("--big", action="store_true", help="also reopen a --big-n key store (slow)")
    p.add_argument("--big-n", type=int, default=1_000_000)
    p.add_argument("--sections", default="dict,list,readers,latency",
                   help="comma list among " + ",".join(SECTIONS) + " (--big adds big)")
    p.add_argument("--workdir", default="", help="where stores are written (default: a temp dir under --out)")
    p.add_argument("--pysos13-dir", default=str(ROOT / "bench-out" / "_pysos13"),
                   help="cache of pysos 1.3.0 from PyPI (installed there with pip --target if missing)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds before a child is killed")
    p.add_argument("--list-rows", action="store_true", help="print the row names and exit")
    p.add_argument("--render", metavar="JSON", help="only rewrite bench.md/.png in --out from an earlier bench.json")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---------------------------------------------------------------- children


def run_child(spec, timeout, expect_kill=False):
    """Run one workload in a child process; return its result dict (status ok / not installed / error)."""
    fd, result_path = tempfile.mkstemp(prefix="bench-", suffix=".json")
    os.close(fd)
    spec = {**spec, "result": result_path, "bench": str(Path(__file__).resolve())}
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
        text = Path(result_path).read_text()
        if expect_kill:
            return {"status": "ok", "returncode": proc.returncode}
        if proc.returncode != 0 or not text:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
            return {"status": "error", "reason": " ".join(tail) or f"exit {proc.returncode}"}
        return json.loads(text)
    except subprocess.TimeoutExpired:
        return {"status": "error", "reason": f"timed out after {timeout:.0f} s"}
    finally:
        os.unlink(result_path)


def median_of(runs):
    """Merge repeated runs: numbers become their median; the first run's other fields are kept."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return runs[0]
    merged = dict(ok[0])
    samples = {}
    for key, value in ok[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
            merged[key] = statistics.median(values)
            if key.endswith("_ops") and len(values) > 1:
                samples[key] = values
    merged["runs"] = len(ok)
    if samples:
        merged["samples"] = samples  # every run's rate, to judge the noise behind a median
    return merged


class Runner:
    def __init__(self, args):
        self.args = args
        self.n = args.n
        self.only = {s.strip() for s in args.only.split(",") if s.strip()}
        self.workdir = Path(args.workdir or tempfile.mkdtemp(prefix="_work-", dir=args.out))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pysos13_dir = args.pysos13_dir

    def selected(self, name, base=None):
        return not self.only or name in self.only or (base is not None and base in self.only)

    def fresh_dir(self, label):
        path = Path(tempfile.mkdtemp(prefix=label.replace("/", "_") + "-", dir=self.workdir))
        return path

    def child(self, spec, expect_kill=False):
        spec = {"pysos13_dir": self.pysos13_dir, **spec}
        return run_child(spec, self.args.timeout, expect_kill)

    def say(self, *parts):
        print("[bench]", *parts, file=sys.stderr, flush=True)

    # -- dict rows

    def dict_run(self, name, value_size, r):
        """One run of the dict workload for one row, then its reopen in a fresh process."""
        row = stores.make_row(name)
        n = min(self.n, self.args.sync_n) if name in stores.SYNC_ROWS else self.n
        directory = self.fresh_dir(name)
        started = time.perf_counter()
        spec = {"row": name, "n": n, "value_size": value_size, "dir": str(directory),
                "phase_cap": self.args.phase_cap}
        result = self.child({**spec, "mode": "dict"})
        if result["status"] == "ok" and row.can_reopen:
            reopened = self.child({**spec, "mode": "reopen"})
            if reopened["status"] != "ok":
                result = reopened
            else:
                result.update(reopened)
        shutil.rmtree(directory, ignore_errors=True)
        shutil.rmtree(str(directory) + "-compacted", ignore_errors=True)
        self.say(f"dict {name} value_size={value_size} run {r + 1}: {result['status']}"
                 f" in {time.perf_counter() - started:.1f} s")
        return result

    def dict_rows(self, names, value_size, probe):
        """Every row once per repeat, round robin, so a change of machine load hits all rows alike."""
        runs = {name: [] for name in names}
        for r in range(self.args.repeat):
            for name in names:
                if runs[name] and runs[name][-1]["status"] != "ok":
                    continue
                runs[name].append(self.dict_run(name, value_size, r))
        rows = []
        for name in names:
            row = stores.make_row(name)
            merged = median_of(runs[name])
            merged.update(row=name, label=row.label, value_size=value_size, kill9=row.kill9,
                          power=row.power, note=row.note,
                          n=min(self.n, self.args.sync_n) if name in stores.SYNC_ROWS else self.n)
            if merged["status"] == "ok" and probe:
                merged["kill9_tested"] = self.probe(name, row)
            rows.append(merged)
        return rows

    def probe(self, name, row):
        """Kill a writer with SIGKILL after 1,000 changes; count what a reopen gets wrong."""
        if not row.can_reopen:
            return "no (in memory)"
        directory = self.fresh_dir(name + "-probe")
        spec = {"row": name, "dir": str(directory)}
        killed = self.child({**spec, "mode": "probe"}, expect_kill=True)
        check = self.child({**spec, "mode": "probe-check"})
        shutil.rmtree(directory, ignore_errors=True)
        if killed.get("returncode") != -9 or check["status"] != "ok":
            return f"probe failed ({check.get('reason', killed)})"
        if check["wrong"] == 0:
            return "yes"
        return f"no: {check['wrong']}/{check['changes']} wrong"

    def run_dict(self):
        rows = []
        sizes = [int(s) for s in self.args.value_size.split(",") if s.strip()]
        names = [name for name in stores.ROWS if self.selected(name)]
        for i, value_size in enumerate(sizes):
            rows += self.dict_rows(names, value_size, probe=(i == 0))
        return rows

    # -- lists

    def run_list(self):
        sizes = ([int(s) for s in self.args.list_sizes.split(",")] if self.args.list_sizes
                 else [max(10, self.n // 10), self.n * 10])
        rows = []
        for size in sizes:
            for store, base in (("pysos", "pysos"), ("pysos13", "pysos13"), ("list", "dict")):
                if not self.selected(store, base):
                    continue
                runs = []
                for _ in range(self.args.repeat):
                    directory = self.fresh_dir("list-" + store)
                    started = time.perf_counter()
                    result = self.child({"mode": "list", "store": store, "size": size, "dir": str(directory),
                                         "ops": self.args.list_ops, "cap_s": 10.0})
                    shutil.rmtree(directory, ignore_errors=True)
                    self.say(f"list {store} size={size}: {result['status']}"
                             f" in {time.perf_counter() - started:.1f} s")
                    runs.append(result)
                    if result["status"] != "ok":
                        break
                rows.append({**median_of(runs), "store": store, "size": size})
        return rows

    # -- a reader beside a writer; write latency with and without compaction

    def run_readers(self):
        rows = []
        for name, interval in (("pysos", 0.0), ("pysos-refresh-0.5", 0.5)):
            if not self.selected(name, "pysos"):
                continue
            runs = []
            for _ in range(self.args.repeat):
                directory = self.fresh_dir("readers")
                result = self.child({"mode": "readers", "n": self.n, "writes": self.n,
                                     "refresh_interval": interval, "dir": str(directory)})
                shutil.rmtree(directory, ignore_errors=True)
                self.say(f"readers {name}: {result['status']}")
                runs.append(result)
                if result["status"] != "ok":
                    break
            rows.append({**median_of(runs), "row": name, "refresh_interval": interval, "n": self.n})
        return rows

    def run_latency(self):
        rows = []
        for name, autocompact in (("pysos-autocompact", True), ("pysos-no-autocompact", False)):
            if not self.selected(name, "pysos"):
                continue
            runs = []
            for _ in range(self.args.repeat):
                directory = self.fresh_dir("latency")
                result = self.child({"mode": "latency", "n": self.n, "autocompact": autocompact,
                                     "segment_size": 4 * 2**20, "dir": str(directory)})
                shutil.rmtree(directory, ignore_errors=True)
                self.say(f"latency {name}: {result['status']}")
                runs.append(result)
                if result["status"] != "ok":
                    break
            rows.append({**median_of(runs), "row": name, "autocompact": autocompact, "n": self.n,
                         "segment_size": 4 * 2**20})
        return rows

    # -- the million-key reopen

    def run_big(self):
        rows = []
        n = self.args.big_n
        for name in ("pysos", "pysos13"):
            if not self.selected(name):
                continue
            directory = self.fresh_dir("big-" + name)
            spec = {"row": name, "n": n, "dir": str(directory)}
            result = self.child({**spec, "mode": "big-build"})
            if result["status"] == "ok":
                runs = [self.child({**spec, "mode": "reopen", "compact": False}) for _ in range(self.args.repeat)]
                result.update({k: v for k, v in median_of(runs).items() if k != "runs"})
                if name == "pysos" and result["status"] == "ok":
                    compacted = self.child({**spec, "mode": "big-compact"})
                    runs = [self.child({**spec, "mode": "reopen", "compact": False})
                            for _ in range(self.args.repeat)]
                    after = median_of(runs)
                    result.update(compact_s=compacted.get("compact_s"),
                                  reopen_compacted_s=after.get("reopen_s"),
                                  reopen_compacted_rss_delta=after.get("reopen_rss_delta"))
            shutil.rmtree(directory, ignore_errors=True)
            self.say(f"big {name}: {result['status']}")
            rows.append({**result, "row": name, "n": n})
        return rows


def machine():
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "loadavg_start": round(os.getloadavg()[0], 2), "cpu": cpu or platform.processor(),
            "python": platform.python_version(), "platform": platform.platform(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        import bench_workloads

        bench_workloads.main(json.loads(args.child))
        return 0
    if args.list_rows:
        for name, cls in stores.ROWS.items():
            print(f"{name:24} {cls.label}")
        print(f"{'list':24} plain list (List section; also selected by dict)")
        print(f"{'pysos-refresh-0.5':24} reader with refresh_interval=0.5 (readers section; also selected by pysos)")
        print(f"{'pysos-autocompact':24} churn latency, autocompact on (latency section; also selected by pysos)")
        print(f"{'pysos-no-autocompact':24} churn latency, autocompact off (latency section; also selected by pysos)")
        return 0
    import bench_report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.render:
        report = json.loads(Path(args.render).read_text())
        report["targets"] = bench_report.targets(report)
        return write_outputs(report, out, bench_report)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    if args.big and "big" not in sections:
        sections.append("big")
    runner = Runner(args)
    unknown = runner.only - set(stores.ROWS) - EXTRA_ROWS
    if unknown:
        print(f"unknown row(s) in --only: {', '.join(sorted(unknown))}; see --list-rows", file=sys.stderr)
        return 2
    if any(runner.selected(name) for name in ("pysos13",)):
        stores.install_pysos13(args.pysos13_dir)
    started = time.perf_counter()
    report = {
        "meta": {**machine(), "command": "python tools/bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
                 "n": args.n, "repeat": args.repeat, "sync_n": args.sync_n, "value_sizes": args.value_size,
                 "phase_cap": args.phase_cap, "sections": sections},
    }
    try:
        for section in sections:
            report[section] = getattr(runner, "run_" + section)()
    finally:
        if not args.workdir:
            shutil.rmtree(runner.workdir, ignore_errors=True)
    report["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    report["meta"]["loadavg_end"] = round(os.getloadavg()[0], 2)
    report["targets"] = bench_report.targets(report)
    return write_outputs(report, out, bench_report)


def write_outputs(report, out, bench_report):
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    markdown = bench_report.markdown(report)
    (out / "bench.md").write_text(markdown)
    chart = bench_report.chart(report, out / "bench.png")
    print(markdown)
    print(f"wrote {out / 'bench.json'}, {out / 'bench.md'}" + (f", {chart}" if chart else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
