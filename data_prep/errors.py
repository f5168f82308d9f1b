"""The one exception type the CLIs turn into a clear one-line message (no traceback)."""


class DataPrepError(Exception):
    """A user-facing failure: the message names the file or value at fault and the fix."""
