"""Running a dump tool: the child's setup, reading its pipe in large batches, its markers, its exit.

Shared by the single stream (backend.dump) and the parallel dump (backend.pardump).
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import fcntl
import functools
import os
import re
import signal
import subprocess
import termios

from .codecs import exit_text

CHUNK = 1 << 20
TABLE_MARK = re.compile(rb"-- Dumping data for table `((?:[^`]|``)+)`")
STRUCT_MARK = re.compile(rb"-- Table structure for table `((?:[^`]|``)+)`")


def unquote_table(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").replace("``", "`")


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None


def child_setup() -> None:
    """In the child: die with the parent (PR_SET_PDEATHSIG), so no dump outlives its runner."""
    libc = _libc()
    if libc is not None:
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=10)


BATCH_WAIT = 0.003
_F_SETPIPE_SZ, _F_GETPIPE_SZ = 1031, 1032


def pipe_batch(fd: int) -> int:
    """Enlarge a pipe to CHUNK and return how many pending bytes make a read worth it (0: read at once).

    The dump tool writes 4 KiB at a time; reading each write as it comes costs a wake-up and a
    system call per 4 KiB on both sides (the profile's largest overhead). Waiting a few ms for a
    quarter of a 1 MiB pipe turns ~100,000 reads into ~1,000. A pipe the kernel would not enlarge
    (pipe-user-pages-soft reached) is read at once: waiting on 64 KiB would cap the rate."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHUNK)
    try:
        size = fcntl.fcntl(fd, _F_GETPIPE_SZ)
    except OSError:
        return 0
    return size // 4 if size >= CHUNK // 2 else 0


def pipe_pending(fd: int) -> int:
    """Bytes waiting in a pipe (FIONREAD)."""
    avail = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, avail)
    except OSError:
        return 1 << 30  # unknown: read now
    return avail[0]


def fmt_secs(seconds: float) -> str:
    from .units import format_duration

    return format_duration(seconds)


def clean_stderr(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip() and "Warning: Using a password" not in ln]
    return " | ".join(lines)[-2000:]


def describe_exit(tool: str, rc: int, stderr: str, database: str) -> str:
    name = os.path.basename(tool)
    if rc < 0:
        what = exit_text(name, rc)
    else:
        meaning = {
            2: "SQL or connection error",
            3: "consistency error or connection lost mid-dump; the file may end on a complete statement but is partial",
            5: "write error",
            6: "table not found",
        }.get(rc)
        what = f"{name} exited with code {rc}" + (f" ({meaning})" if meaning else "")
    return f"dump of {database!r} failed: {what}" + (f": {stderr}" if stderr else "")
