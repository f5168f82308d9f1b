"""User-facing failures of `bench`; the CLI prints them as one line, without a traceback."""


class BenchError(Exception):
    """Something the user can fix: the message names the file or value and the fix."""
