"""Child processes that die with the thread that started them (Linux `PR_SET_PDEATHSIG`).

A restore-test's sandbox `mariadbd` and its `mariadb` loader clients must not outlive a
restore-test that was killed (SIGKILL leaves no chance to clean up). The kernel sends the
child SIGKILL when the thread that forked it ends, whatever the reason.

Use `die_with_parent()` as `preexec_fn`. It runs in the child after `subprocess` changed
the user and group (a credential change clears the setting, so it must come after), and
it exits at once if the parent is already gone. Linux only; elsewhere it does nothing and
`dumpdeck clean` is the fallback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1

_prctl: Callable[..., int] | None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    _prctl = _libc.prctl
    _prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    _prctl.restype = ctypes.c_int
except (OSError, AttributeError):  # not Linux/glibc: no parent-death signal
    _prctl = None

AVAILABLE = _prctl is not None


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A `preexec_fn` that makes the child receive `sig` when this thread dies (None where unsupported)."""
    if _prctl is None:
        return None
    parent = os.getpid()
    prctl = _prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the setting took effect
            os._exit(1)

    return preexec
