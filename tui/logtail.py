"""The log tail: an incremental reader of the log file, and how its lines are shown.

`LogTail.read()` blocks on the file system (call it from a worker); the line helpers
are pure.
"""

from __future__ import annotations

import re
from pathlib import Path

from .views import LogChunk

LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
LEVEL_RANK = {"DEBUG": 0, "INFO": 1, "WARNING": 2, "ERROR": 3, "CRITICAL": 4}

_LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d[ T](\d\d:\d\d:\d\d)[,.]\d+(?:Z|[+-]\d\d:?\d\d)? (\w+)\s+(?:\[\d+\] )?(?:dumpdeck\.)?(.*)$"
)


class LogTail:
    """Incremental reader of a log file that survives rotation (inode change or truncation)."""

    def __init__(self, path: Path, initial_bytes: int = 64 * 1024):
        self.path = Path(path)
        self.offset: int | None = None
        self.inode: int | None = None
        self.initial_bytes = initial_bytes
        self._rest = b""

    def read(self, limit: int = 1024 * 1024) -> LogChunk:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return LogChunk(error=f"{self.path}: no log file yet")
        except OSError as exc:
            return LogChunk(error=f"{self.path}: {exc.strerror}")
        reset = False
        if self.offset is None or st.st_ino != self.inode or st.st_size < self.offset:
            reset = self.offset is not None
            self.inode = st.st_ino
            self.offset = max(0, st.st_size - self.initial_bytes) if not reset else 0
            self._rest = b""
            skip_partial = self.offset > 0
        else:
            skip_partial = False
        if st.st_size == self.offset:
            return LogChunk(reset=reset)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(limit)
        except OSError as exc:
            return LogChunk(error=f"{self.path}: {exc.strerror}")
        self.offset += len(data)
        data = self._rest + data
        parts = data.split(b"\n")
        self._rest = parts.pop()
        if skip_partial and parts:
            parts = parts[1:]
        return LogChunk(lines=tuple(p.decode("utf-8", "replace") for p in parts), reset=reset)


def log_level_of(line: str) -> str:
    for level in LEVELS:
        if f" {level} " in line or f"[{level}]" in line or line.startswith(level) or line.endswith(f" {level}"):
            return level
    return "INFO"


def compact_log_line(line: str) -> str:
    """`2025-06-15T15:01:00.000+02:00 INFO    [4242] dumpdeck.runner: msg` → `15:01:00 INFO runner: msg`
    (the older `2025-06-15 15:01:00,000` form too)."""
    m = _LOG_LINE.match(line)
    if not m:
        return line
    return f"{m.group(1)} {m.group(2)} {m.group(3)}"
