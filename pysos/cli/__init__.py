"""The ``pysos`` command line (``python -m pysos``): one module per concern.

- :mod:`.main` builds the parser and maps errors to one line and an exit status;
- :mod:`.read_cmds` info/stats, get, keys, dump, check (read-only, never create);
- :mod:`.write_cmds` set, del, compact, repair;
- :mod:`.transfer` import/export (JSON lines, CSV, HTML);
- :mod:`.csvio`, :mod:`.htmlpage`, :mod:`.jsonio`, :mod:`.progress`, :mod:`.access` helpers;
- :mod:`.demo` the README quickstart, as ``pysos demo``.
"""

from .main import main

__all__ = ["main"]
