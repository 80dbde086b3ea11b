"""A reader of a follower's directory, opened once: it refreshes, reads every key of the
batch, and checks they all carry the same batch number (never a torn batch) that never
goes backwards; it writes "b time-first-seen" lines to OUT until it sees batch LAST
(exit 0), or "torn ..."/"backwards ..." (exit 1), or gives up after TIMEOUT s (exit 2)."""

import sys
import time

import pysos


def main(path, size, last, out, timeout):
    store = pysos.Dict(path, readonly=True, refresh_interval=3600)
    seen, lines = 0, []
    deadline = time.monotonic() + float(timeout)
    code = 2
    while time.monotonic() < deadline:
        store.refresh()
        values = {(store.get(f"k{j}") or {}).get("b", 0) for j in range(int(size))}
        now = time.time()
        if len(values) != 1:
            lines.append(f"torn {sorted(values)}")
            code = 1
            break
        (b,) = values
        if b < seen:
            lines.append(f"backwards {b} after {seen}")
            code = 1
            break
        if b > seen:
            lines.append(f"{b} {now:.6f}")
            seen = b
        if seen >= int(last):
            code = 0
            break
        time.sleep(0.002)
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
