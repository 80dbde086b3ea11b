"""``pysos ARGS...`` (``follow``) with every GET of an object but the MANIFEST slowed down
by PAUSE seconds: a long first copy, in a test's time. Usage: slow_follow.py PAUSE ARGS..."""

import sys
import time

from pysos.cli import main
from pysos.replicate import client

_get = client.S3.get


def slow_get(self, name, **options):
    if name != "MANIFEST":
        time.sleep(PAUSE)
    return _get(self, name, **options)


if __name__ == "__main__":
    PAUSE = float(sys.argv[1])
    client.S3.get = slow_get
    sys.exit(main(sys.argv[2:]))
