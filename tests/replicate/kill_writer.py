"""A writer for the kill tests: numbered units, each a single set then the 'counter' key,
or a batch of three sets and the counter; after each unit returns it appends the unit's
number to the ack file."""

import os
import random
import sys
import time

import pysos


def main(path, acks, seed):
    rng = random.Random(int(seed))
    store = pysos.Dict(path, segment_size=16384)
    fd = os.open(acks, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    unit = 0
    while True:
        unit += 1
        if rng.random() < 0.3:
            with store.batch():
                for part in range(3):
                    store[f"b{unit}-{part}"] = unit
                store["counter"] = unit
        else:
            store[f"k{unit}"] = {"unit": unit, "pad": "x" * rng.randrange(60)}
            store["counter"] = unit
        os.write(fd, b"%d\n" % unit)
        time.sleep(0.002)  # ~400 units a second: a few rotations and compactions a trial


if __name__ == "__main__":
    main(*sys.argv[1:])
