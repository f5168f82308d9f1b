"""The one exception type the CLIs turn into a clear one-line message (no traceback)."""

import errno


class DataPrepError(Exception):
    """A user-facing failure: the message names the file or value at fault and the fix."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM stopped a job; the message says what was kept and how to resume."""


def is_disk_full(exc: OSError) -> bool:
    """ENOSPC, whether Python raised it or pyarrow (whose OSError carries the errno only in
    its message)."""
    return exc.errno == errno.ENOSPC or "No space left on device" in str(exc)
