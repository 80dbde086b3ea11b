"""Real processes: a writer churns while ``python -m pysos.compactor`` compacts and a reader reads."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from compactor_util import contents, segment_bytes

PROCS = str(Path(__file__).with_name("compactor_procs.py"))
OPS = 8_000
SEGMENT = 4096


def test_disk_stays_bounded_under_churn_with_the_daemon(fast_tmp):
    """Writer (autocompact=False, 4 KiB segments, 300 keys, 8,000 sets/deletes), daemon
    (--min-dead-bytes 0 --interval 0.5) and reader run as processes; disk stays bounded.

    Bound asserted on every sample (every 5 ms) of the directory's segment + hint bytes:

        disk <= 3 * max_live + 32 * segment_size

    Threshold 0.5: a merge starts when the sealed garbage reaches about the live data
    (2 x live), and while it runs its outputs (1 x live more) sit beside its inputs;
    the constant covers the newest segment, hint files and the segments the writer fills
    while the daemon reacts and merges (32 x 4 KiB = 128 KiB). Without compaction the
    writer would leave about 0.9 MiB behind.
    At the end the store equals the writer's model, the reader saw no torn or wrong
    value, and SIGTERM stops the daemon with exit code 0 and no traceback."""
    path = str(fast_tmp / "store")
    writer_out, reader_out, stopfile = (str(fast_tmp / n) for n in ("writer.json", "reader.json", "stop"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-c", f"import pysos; pysos.Dict({path!r}, segment_size={SEGMENT}).close()"],
                   check=True)
    daemon_err = open(fast_tmp / "daemon.err", "w+")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "pysos.compactor", path, "--min-dead-bytes", "0", "--interval", "0.5",
         "--segment-size", str(SEGMENT)], stderr=daemon_err, env=env)
    reader = subprocess.Popen([sys.executable, PROCS, "reader", path, stopfile, reader_out], env=env)
    samples = []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            samples.append(segment_bytes(path))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    try:
        _wait_for_line(fast_tmp / "daemon.err", "watching 1 store")
        sampler.start()
        subprocess.run([sys.executable, PROCS, "writer", path, str(OPS), "7", writer_out],
                       check=True, env=env, timeout=300)
    finally:
        sampling.set()
        if sampler.is_alive():
            sampler.join()
        Path(stopfile).touch()
        reader.wait(timeout=60)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
    daemon_err.seek(0)
    log = daemon_err.read()
    assert daemon.returncode == 0, log
    assert "Traceback" not in log and "stopped after" in log
    compactions = log.count("bytes reclaimed")
    assert compactions >= 5, log

    with open(writer_out) as f:
        written = json.load(f)
    with open(reader_out) as f:
        read = json.load(f)
    assert read["errors"] == [] and read["reads"] > 0
    assert contents(path) == written["model"]

    bound = 3 * written["max_live"] + 32 * SEGMENT
    peak = max(samples)
    print(f"\nchurn: {len(samples)} samples, peak {peak} bytes, max live {written['max_live']} bytes, "
          f"bound {bound}, {compactions} compactions, {read['reads']} reads")
    assert peak <= bound, (peak, written["max_live"])


def _wait_for_line(path, text, timeout=60.0):
    deadline = time.monotonic() + timeout
    while text not in Path(path).read_text():
        assert time.monotonic() < deadline, f"daemon never logged {text!r}: {Path(path).read_text()}"
        time.sleep(0.02)
