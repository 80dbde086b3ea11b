"""Benchmarks of replication to object storage, against a local S3 server (moto's, the one
the tests use, started here on 127.0.0.1).

    python tools/replicate_bench.py [--seconds 10] [--restore-mib 256] [--skip ...]

Prints a table:
- ``upload``: bytes uploaded per byte written, and PUTs per interval with writes and idle
  (a writer doing --rate writes/s of ~100-byte records, one replicator step per interval);
- ``lag``: from a write returning (in a writer process at --rate writes/s) to the commit
  that makes it restorable (replicator process, --interval 1), p50/p99;
- ``writer``: writer throughput and p99 latency with a replicator running beside it vs none;
- ``restore``: seconds and MiB/s to restore a store of --restore-mib MiB.
Wall-clock numbers: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import pysos  # noqa: E402
from pysos.replicate.client import S3, parse_url  # noqa: E402
from pysos.replicate.restore import restore  # noqa: E402
from pysos.replicate.uploader import Replicator  # noqa: E402
from pysos.segments import record  # noqa: E402

SERVER = os.path.join(ROOT, "tests", "replicate", "s3server.py")

WRITER = r"""
import sys, time, pysos
path, rate, seconds, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
d = pysos.Dict(path)
lat, n, start = [], 0, time.perf_counter()
while True:
    now = time.perf_counter()
    if now - start >= seconds:
        break
    if rate and n >= rate * (now - start):
        time.sleep(0.0005)
        continue
    t = time.time()
    d[f"key{n % 5000}"] = {"t": t, "n": n, "pad": "x" * 40}
    lat.append(time.perf_counter() - now)
    n += 1
d.close()
lat.sort()
with open(out, "w") as f:
    f.write(f"{n / seconds} {lat[len(lat) // 2]} {lat[int(len(lat) * 0.99)]}\n")
"""


def start_server():
    proc = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    endpoint = f"http://127.0.0.1:{proc.stdout.readline().strip()}"
    os.environ.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")
    import boto3

    boto3.client("s3").create_bucket(Bucket="bench")
    return proc


def client(prefix):
    return S3(parse_url(f"s3://bench/{prefix}"))


def bench_upload(tmp, rate, intervals):
    """Bytes uploaded per byte written (1 MiB segments, so that sealed segments go up too);
    PUTs per step with writes and when idle."""
    path = os.path.join(tmp, "upload")
    store = pysos.Dict(path, segment_size=1 << 20)  # rotations (and compactions) within the run
    rep = Replicator(path, client("upload"), min_age=0)
    rep.start()
    counters = rep.client.counters
    base = counters.snapshot()
    written, puts_busy, n = 0, [], 0
    for _ in range(intervals):
        for _ in range(rate):
            key, value = f"key{n % 5000}", {"t": time.time(), "n": n, "pad": "x" * 40}
            store[key] = value
            written += len(record.encode_item(key, value))  # the bytes the writer appended
            n += 1
        before = counters.puts
        rep.collect()
        rep.step()
        puts_busy.append(counters.puts - before)
    uploaded = counters.bytes_up - base["bytes_up"]
    before = counters.snapshot()
    for _ in range(intervals):
        rep.collect()
        rep.step()
    after = counters.snapshot()
    idle = {k: after[k] - before[k] for k in ("puts", "gets", "lists", "deletes")}
    store.close()
    return {
        "bytes written": written, "bytes uploaded": uploaded,
        "uploaded per byte written": round(uploaded / written, 2),
        "PUTs per interval with writes (max)": max(puts_busy),
        "PUTs per interval with writes (mean)": round(statistics.mean(puts_busy), 2),
        f"requests in {intervals} idle intervals": idle,
    }


def _disk(path):
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(".jsonl"))


def bench_lag(tmp, rate, seconds):
    """Write-returned -> committed remotely, at ``rate`` writes/s, interval 1 s."""
    path = os.path.join(tmp, "lag")
    pysos.Dict(path).close()
    rep = Replicator(path, client("lag"), min_age=0)
    rep.start()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path, str(rate), str(seconds), os.path.join(tmp, "lag.out")])
    lags = []
    import orjson

    while writer.poll() is None or lags == []:
        time.sleep(max(0.0, 1.0 - (time.time() % 1.0)))
        old_tail = rep.body["tail"]
        if rep.step():
            done = time.time()
            tail = rep.body["tail"]
            start = old_tail["size"] if old_tail and old_tail["name"] == tail["name"] else 0
            with open(os.path.join(path, tail["name"]), "rb") as f:
                f.seek(start)
                chunk = f.read(tail["size"] - start)
            for line in chunk.splitlines():
                value = orjson.loads(line).get("v")
                if isinstance(value, dict) and "t" in value:
                    lags.append(done - value["t"])
        if writer.poll() is not None:
            break
    writer.wait()
    lags.sort()
    return {"writes measured": len(lags), "lag p50 s": round(lags[len(lags) // 2], 3),
            "lag p99 s": round(lags[int(len(lags) * 0.99)], 3)}


def _cpu(pid):
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_writer(tmp, seconds, server):
    """Writer throughput and p99 with a replicator process beside it vs none, and the CPU
    the replicator and the local S3 server used meanwhile (both share the writer's cores)."""
    results = {}
    for label in ("no replicator", "replicator beside it"):
        path = os.path.join(tmp, f"w-{label[:2]}")
        pysos.Dict(path).close()
        rep = None
        if label != "no replicator":
            rep = subprocess.Popen([sys.executable, "-m", "pysos.replicate", path, f"s3://bench/w{time.time()}"],
                                   stderr=subprocess.DEVNULL)
            time.sleep(2)
        out = os.path.join(tmp, f"w{label[:2]}.out")
        cpu = (_cpu(rep.pid) if rep else 0.0, _cpu(server.pid))
        subprocess.run([sys.executable, "-c", WRITER, path, "0", str(seconds), out], check=True)
        used = (_cpu(rep.pid) - cpu[0] if rep else 0.0, _cpu(server.pid) - cpu[1])
        if rep is not None:
            rep.terminate()
            rep.wait()
        ops, p50, p99 = map(float, open(out).read().split())
        results[label] = {"writes/s": round(ops), "p50 us": round(p50 * 1e6, 1), "p99 us": round(p99 * 1e6, 1),
                          "replicator CPU s": round(used[0], 1), "S3 server CPU s": round(used[1], 1)}
    return results


def bench_restore(tmp, mib):
    """Restore a store of ``mib`` MiB: seconds and MiB/s."""
    path = os.path.join(tmp, "big")
    value = "v" * 900
    with pysos.Dict(path) as d:
        n = mib * 1024
        for start in range(0, n, 10000):
            with d.batch():
                for i in range(start, min(n, start + 10000)):
                    d[i] = value
    size = _disk(path)
    rep = Replicator(path, client("big"), min_age=0)
    rep.start()
    t = time.perf_counter()
    restore("s3://bench/big", os.path.join(tmp, "big-restored"), client=client("big"))
    elapsed = time.perf_counter() - t
    return {"store MiB": round(size / 2**20), "restore s": round(elapsed, 1),
            "MiB/s": round(size / 2**20 / elapsed, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--restore-mib", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], choices=["upload", "lag", "writer", "restore"])
    args = parser.parse_args()
    server = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, run in (
                ("upload", lambda: bench_upload(tmp, args.rate, int(args.seconds * 3))),
                ("lag", lambda: bench_lag(tmp, args.rate, args.seconds)),
                ("writer", lambda: bench_writer(tmp, args.seconds, server)),
                ("restore", lambda: bench_restore(tmp, args.restore_mib)),
            ):
                if name not in args.skip:
                    print(f"{name}: {run()}", flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    main()
