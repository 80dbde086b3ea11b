"""Benchmark of ``pysos follow`` against a local S3 server (moto's, the one the tests use,
started here on 127.0.0.1), every part a real process:

    python tools/bench_follow.py [--rate 1000] [--seconds 30] [--interval 1] [--poll 0.5] [--idle 60]

A writer does --rate writes/s of ~60-byte records for --seconds; ``python -m pysos.replicate``
ships them every --interval s; ``pysos follow`` polls every --poll s into a local directory;
a reader process (``readonly=True``, opened before the writes start) reads a sample of the
writes (every 10th) as soon as it can. Prints:

- ``lag``: from a write returning in the writer to the reader on the follower's directory
  seeing it, p50/p99/max (target p99 <= 2.5 s at 1,000 writes/s, --interval 1, --poll 0.5);
- ``follower CPU``: CPU seconds per minute of the follower process while writes flow and
  while the store is idle (--idle s after everything was seen), and its requests.

``--json PATH`` also writes the figures as JSON. Wall-clock numbers: run on a quiet machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SERVER = os.path.join(ROOT, "tests", "replicate", "s3server.py")
SAMPLE = 10  # the reader looks for every 10th write

WRITER = r"""
import os, sys, time, pysos
path, rate, seconds, go, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
d = pysos.Dict(path)
d["ready"] = True
while not os.path.exists(go):
    time.sleep(0.01)
acks, n, start = [], 0, time.perf_counter()
while True:
    now = time.perf_counter()
    if now - start >= seconds:
        break
    if n >= rate * (now - start):
        time.sleep(0.0005)
        continue
    d[f"key{n % 5000}"] = {"n": n, "pad": "x" * 30}
    if n % SAMPLE == 0:
        acks.append((n, time.time()))
    n += 1
d.close()
with open(out, "w") as f:
    f.write("\n".join(f"{n} {t:.6f}" for n, t in acks) + "\n")
""".replace("SAMPLE", str(SAMPLE))

READER = r"""
import os, sys, time, pysos
path, last, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
d = pysos.Dict(path, readonly=True)
with open(out + ".ready", "w"):
    pass
seen, n = [], 0
deadline = time.monotonic() + 600
while time.monotonic() < deadline and not os.path.exists(out + ".stop"):
    value = d.get(f"key{n % 5000}")
    if value is not None and value["n"] >= n:
        seen.append((n, time.time()))
        n += SAMPLE
        continue
    time.sleep(0.001)
with open(out, "w") as f:
    f.write("\n".join(f"{n} {t:.6f}" for n, t in seen) + "\n")
""".replace("SAMPLE", str(SAMPLE))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_follow: timed out waiting for {what}")
        time.sleep(0.02)


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=1000.0, help="writes per second (default 1000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of writes (default 30)")
    parser.add_argument("--interval", type=float, default=1.0, help="replicate --interval (default 1)")
    parser.add_argument("--poll", type=float, default=0.5, help="follow --interval (default 0.5)")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle CPU measurement (default 60)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args(argv)

    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
               AWS_CONFIG_FILE="/nonexistent", AWS_SHARED_CREDENTIALS_FILE="/nonexistent")
    procs: list[subprocess.Popen] = []
    server = subprocess.Popen([sys.executable, SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(server)
    try:
        port = server.stdout.readline().strip()
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
        import boto3

        s3 = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="bench",
                          aws_secret_access_key="bench", region_name="us-east-1")
        s3.create_bucket(Bucket="bench-follow")
        url = "s3://bench-follow/store"
        with tempfile.TemporaryDirectory() as tmp:
            src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
            go, acks, seen = (os.path.join(tmp, n) for n in ("go", "acks", "seen"))
            writer = subprocess.Popen([sys.executable, "-c", WRITER, src, str(args.rate), str(args.seconds), go, acks],
                                      env=env)
            procs.append(writer)
            wait_for(lambda: os.path.exists(os.path.join(src, "MANIFEST")), 60, "the writer")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "pysos.replicate", src, url, "--interval", str(args.interval)],
                env=env, stderr=subprocess.DEVNULL))
            wait_for(lambda: s3.list_objects_v2(Bucket="bench-follow", Prefix="store/MANIFEST").get("KeyCount"),
                     60, "the replicator's first commit")
            log = open(os.path.join(tmp, "follow.log"), "w+")
            follower = subprocess.Popen(
                [sys.executable, "-m", "pysos.replicate.follow", url, dst, "--interval", str(args.poll)],
                env=env, stderr=log)
            procs.append(follower)
            wait_for(lambda: os.path.exists(os.path.join(dst, "MANIFEST")) or follower.poll() is not None
                     or time.sleep(0.2), 120, "the follower's first copy")
            if follower.poll() is not None:
                log.seek(0)
                raise SystemExit(f"bench_follow: the follower exited: {log.read()[-500:]}")
            reader = subprocess.Popen([sys.executable, "-c", READER, dst, "0", seen], env=env)
            procs.append(reader)
            wait_for(lambda: os.path.exists(seen + ".ready"), 60, "the reader")
            cpu_start, t_start = cpu_seconds(follower.pid), time.monotonic()
            open(go, "w").close()
            writer.wait()
            written = [tuple(map(float, line.split())) for line in open(acks).read().split("\n")[:-1]]
            last = int(written[-1][0])
            wait_for(lambda: _newest_in(dst) >= last or time.sleep(0.1), 120, "the follower to catch up")
            cpu_busy, t_busy = cpu_seconds(follower.pid) - cpu_start, time.monotonic() - t_start
            cpu_idle0, t_idle0 = cpu_seconds(follower.pid), time.monotonic()
            time.sleep(args.idle)
            cpu_idle, t_idle = cpu_seconds(follower.pid) - cpu_idle0, time.monotonic() - t_idle0
            open(seen + ".stop", "w").close()
            reader.wait(60)
            follower.terminate()
            follower.wait(60)
            log.seek(0)
            stats = _stats(log.read())
            at = {int(n): t for n, t in written}
            lags = [float(t) - at[int(n)] for n, t in (line.split() for line in open(seen).read().split("\n")[:-1])
                    if int(n) in at]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
    figures = {
        "rate": args.rate, "seconds": args.seconds, "interval": args.interval, "poll": args.poll,
        "samples": len(lags), "lag_p50": statistics.median(lags), "lag_p99": percentile(lags, 0.99),
        "lag_max": max(lags), "cpu_per_min_writing": cpu_busy / t_busy * 60, "cpu_per_min_idle": cpu_idle / t_idle * 60,
        "idle_seconds": t_idle, "follower_requests": stats,
    }
    print(f"writes: {args.rate:.0f}/s for {args.seconds:.0f} s; replicate --interval {args.interval:g}; "
          f"follow --interval {args.poll:g}; {len(lags)} sampled writes")
    print(f"lag, write returned -> seen by a reader of the follower: p50 {figures['lag_p50']:.2f} s, "
          f"p99 {figures['lag_p99']:.2f} s, max {figures['lag_max']:.2f} s")
    print(f"follower CPU: {figures['cpu_per_min_writing']:.2f} CPU-s/min while writes flow, "
          f"{figures['cpu_per_min_idle']:.2f} CPU-s/min idle ({t_idle:.0f} s)")
    print(f"follower requests: {stats}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return 0


def _newest_in(directory: str) -> int:
    """The newest write the follower's copy holds (the reader sees it within a millisecond)."""
    import pysos

    with pysos.Dict(directory, readonly=True) as d:
        return max((v["n"] for k, v in d.items() if k.startswith("key")), default=-1)


def _stats(log: str) -> dict:
    """The follower's request counters from its last log line ('stopping ({...})')."""
    for line in reversed(log.splitlines()):
        if "stopping (" in line:
            return ast.literal_eval(line.split("stopping (", 1)[1].rstrip(")"))
    return {}


if __name__ == "__main__":
    sys.exit(main())
