"""The one exception type the CLIs turn into a clear one-line message (no traceback)."""


class DataPrepError(Exception):
    """A user-facing failure: the message names the file or value at fault and the fix."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a job; the message says what was kept and how to resume."""
