"""The ``pysos`` command line (``python -m pysos``, the ``pysos`` script): one module per concern.

- :mod:`.main` builds the parser and turns every user mistake into one line and an exit
  status (:mod:`.errors`);
- :mod:`.read_cmds` info/stats, get, keys, dump, check: read-only, never create a store;
- :mod:`.write_cmds` set, del, compact, repair;
- :mod:`.transfer` import/export (JSON lines, CSV via :mod:`.csvio`, HTML via :mod:`.htmlpage`);
- :mod:`.access` opening stores, :mod:`.jsonio` keys and JSON, :mod:`.parsing` shared
  options, :mod:`.progress` the progress bar;
- :mod:`.demo` the README quickstart, as ``pysos demo``.
"""

from .main import main

__all__ = ["main"]
