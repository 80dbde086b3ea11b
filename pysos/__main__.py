"""``python -m pysos``: the command line (see :mod:`pysos.cli`)."""

import sys

from pysos.cli import main

if __name__ == "__main__":
    sys.exit(main())
