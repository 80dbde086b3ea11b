"""The README quickstart demo: ``python tools/demo.py [DIR]`` (same as ``pysos demo [DIR]``).

Creates a Dict and a List store in DIR (default: a temporary directory, removed at the
end), writes, reads back, deletes, compacts, and prints stats(). The code it runs is
pysos/cli/demo.py, so that an installed pysos has it too.
"""

import sys

from pysos.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
