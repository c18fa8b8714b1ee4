"""Private files: state, logs, run logs, the report and lock files are readable by the owner (and
its group), never by others, and writable by the owner only, whatever the umask.

Directories are created 0700 (state, runs, locks) or 0750 (the log directory may be shared with a
log reader group); files are created 0600 or 0640. `restrict_umask` at the start of the CLI and the
runner makes everything else a dumpdeck process creates at most 0640/0750 too.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

FILE_MODE = 0o640
SECRET_FILE_MODE = 0o600
DIR_MODE = 0o700
_NOT_PRIVATE = 0o027  # group write, and every bit for others


def restrict_umask() -> None:
    """Keep the umask's bits and add group-write and other: nothing this process creates is world-readable."""
    current = os.umask(0o077)
    os.umask(current | _NOT_PRIVATE)


def private_dir(path: Path | str, mode: int = DIR_MODE, *, ours: bool = False) -> Path:
    """Create `path` (and its parents) with `mode` if needed. An existing directory is tightened only
    when it is dumpdeck's own (`ours`: runs/, locks/): a configured directory such as /var/log is
    never changed (its files are private by their own modes)."""
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True, mode=mode)
        tighten(path, mode)
    elif ours:
        tighten(path, mode)
    return path


def tighten(path: Path | str, mode: int = FILE_MODE) -> None:
    """Remove what `mode` does not allow from an existing file or directory we own (others' bits,
    group write). Never widens; silently leaves files of other owners alone."""
    with contextlib.suppress(OSError):
        st = os.lstat(path)
        if st.st_uid != os.getuid() or stat.S_ISLNK(st.st_mode):
            return
        current = stat.S_IMODE(st.st_mode)
        wanted = current & mode
        if wanted != current:
            os.chmod(path, wanted)


def open_private(path: Path | str, flags: int = os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode: int = FILE_MODE) -> int:
    """os.open with a private creation mode, tightening a file that already existed."""
    fd = os.open(path, flags | os.O_CLOEXEC, mode)
    with contextlib.suppress(OSError):
        st = os.fstat(fd)
        if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & ~mode:
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & mode)
    return fd
