"""The peak memory of one piece of work in a long-lived process, on the local stack.

MiniStack's REPORT lines give ``Max Memory Used`` of its finished child processes, not of the
function, and a warm worker's lifetime peak (``ru_maxrss``) is that of its largest work so
far. Linux lets a process reset its peak (``VmHWM``) by writing 5 to ``/proc/self/clear_refs``:
reset before the work, read after. Only while requests are logged (the local stack); on
AWS, Lambda's own REPORT line gives the invocation's peak.
"""

from pathlib import Path

from jobkit.tooling.request_log import logging_requests

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def reset_peak() -> None:
    if not logging_requests():
        return
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak is the process's own since it started


def peak_mb() -> int | None:
    """The peak resident memory since ``reset_peak``, in MB; None where it cannot be read."""
    if not logging_requests():
        return None
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024  # kB
    except OSError:
        return None
    return None
