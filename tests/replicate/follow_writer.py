"""The primary of the follower tests: batch b sets keys k0..k{N-1} to b (all or none of
them reaches any reader), with small segments (rotations) and a compaction every 25
batches; after each batch returns it appends "b time" to the ack file."""

import os
import sys
import time

import pysos


def main(path, acks, batches, size, pause):
    store = pysos.Dict(path, segment_size=8192)
    fd = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    for b in range(1, int(batches) + 1):
        with store.batch():
            for j in range(int(size)):
                store[f"k{j}"] = {"b": b, "pad": "x" * 30}
        os.write(fd, b"%d %.6f\n" % (b, time.time()))
        if b % 25 == 0:
            store.compact()
        time.sleep(float(pause))
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
