"""Is this process alive? The one answer for runners, sandboxes and the demo.

A pid is alive when a process with it exists and is not a zombie (a zombie
child of ours is dead for every purpose here). Given `started`, a process
created more than a moment after it is a newer one that reused the pid, and
the one we meant is gone. A process we may not inspect (another user's) exists,
so it is alive.
"""

from __future__ import annotations

import psutil

CLOCK_SLACK = 2.0  # seconds: create_time and our timestamps come from different clocks' rounding


def process_alive(pid: int, started: float | None = None) -> bool:
    """True when `pid` runs (not a zombie) and, given `started` (epoch seconds), was created no later."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or proc.create_time() <= started + CLOCK_SLACK
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
