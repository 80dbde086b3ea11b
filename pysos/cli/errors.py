"""How the command line fails: one exception type and the exit codes it maps to."""

EXIT_OK = 0
#: The command was understood but could not be done: no store there, key not found,
#: store locked by another writer, wrong kind of store, bad data in an import file.
EXIT_FAILED = 1
#: The command line itself is wrong: unknown option, a JSON argument that does not parse
#: (argparse uses 2 for its own errors too).
EXIT_USAGE = 2
#: ``check`` ran and found problems in the store.
EXIT_PROBLEMS = 3


class CliError(Exception):
    """A user mistake: printed as one ``pysos: error: ...`` line, then exit with ``code``."""

    def __init__(self, message, code=EXIT_FAILED):
        super().__init__(message)
        self.code = code
