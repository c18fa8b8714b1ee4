"""Logging: one main log shared by every process, one log per run, ISO 8601 times, the journal under systemd.

Several processes write the main log at once (detached runners, `job run` from cron, `backup`, the
demo, `check`). Python's RotatingFileHandler cannot share a file: after one process rotates, the
others keep writing into the renamed `.1`, out of sight of `tail -F` and of the console. Here every
writer uses a `SharedLogHandler`, a WatchedFileHandler that reopens the path whenever the file
under it was renamed or removed — by logrotate (see contrib/logrotate/dumpdeck; set `log.max_size: 0`
to leave rotation to it) or by another dumpdeck process. Size rotation (`log.max_size`, `log.keep`)
is done under an flock on `<log>.lock` by whichever writer sees the size exceeded first; the others
notice the new file before their next line. Each line is one O_APPEND write, so writers never
interleave within a line.

Each run also writes its own log, `<state_dir>/runs/<run id>.log` (one writer: the run's process),
whether it was started detached, by `backup`, or by cron through `job run`.

Timestamps are ISO 8601 with the UTC offset (2026-11-29T18:40:35.123+01:00). Under systemd
(JOURNAL_STREAM or INVOCATION_ID set) records also go to stderr, which the journal collects.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import logging.handlers
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from .config import Config

LOGGER = "dumpdeck"
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
RUN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the journal adds time, host and pid

_installed: list[logging.Handler] = []


class IsoFormatter(logging.Formatter):
    """asctime as ISO 8601 local time with milliseconds and the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class SharedLogHandler(logging.handlers.WatchedFileHandler):
    """A log file several processes append to, surviving rotation by any of them or by logrotate."""

    def __init__(self, filename: str | os.PathLike[str], max_bytes: int = 0, keep: int = 5):
        super().__init__(filename, encoding="utf-8", delay=True)
        self.max_bytes = max(0, int(max_bytes))
        self.keep = max(0, int(keep))

    def _open(self) -> io.TextIOWrapper:
        # O_APPEND (mode "a"): every line lands at the end whoever else writes
        return open(self.baseFilename, "a", encoding="utf-8", buffering=1)

    def emit(self, record: logging.LogRecord) -> None:
        # A logging handler never raises into the code that logs (a run must not fail because its log
        # directory went away): problems go to logging's own handleError.
        try:
            if self.max_bytes:
                with contextlib.suppress(FileNotFoundError):
                    st = os.stat(self.baseFilename)
                    if st.st_size and st.st_size + len(self.format(record).encode("utf-8")) + 1 > self.max_bytes:
                        self.rotate(st.st_ino)
            super().emit(record)  # reopens first when the path now names another file
        except Exception:
            self.handleError(record)

    def rotate(self, seen_inode: int) -> None:
        """Shift <log>.N → .N+1 …, <log> → .1, under the lock every dumpdeck writer takes for this."""
        with open(self.baseFilename + ".lock", "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                if os.stat(self.baseFilename).st_ino != seen_inode:
                    return  # another writer rotated while we waited: the file is a new one
            except FileNotFoundError:
                return
            if self.keep == 0:
                os.unlink(self.baseFilename)
                return
            for i in range(self.keep - 1, 0, -1):
                src = f"{self.baseFilename}.{i}"
                if os.path.exists(src):
                    os.replace(src, f"{self.baseFilename}.{i + 1}")
            os.replace(self.baseFilename, f"{self.baseFilename}.1")


def under_systemd() -> bool:
    return bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))


def run_log_path(config: Config, run_id: int) -> Path:
    return Path(config.runs_log_dir) / f"{run_id}.log"


def _run_handler(config: Config, run_id: int) -> logging.Handler:
    path = run_log_path(config, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(IsoFormatter(RUN_FORMAT))
    return handler


def setup_logging(config: Config, run_id: int | None = None, *, stderr: bool = False) -> logging.Logger:
    """Configure the `dumpdeck` logger; calling it again replaces the handlers it installed."""
    logger = logging.getLogger(LOGGER)
    for h in _installed:
        logger.removeHandler(h)
        h.close()
    _installed.clear()
    logger.setLevel(getattr(logging, config.log.level, logging.INFO))
    logger.propagate = False
    handlers: list[logging.Handler] = []
    try:
        Path(config.log.file).parent.mkdir(parents=True, exist_ok=True)
        main = SharedLogHandler(config.log.file, config.log.max_size, config.log.keep)
        main.setFormatter(IsoFormatter(FORMAT))
        handlers.append(main)
    except OSError as exc:
        logging.getLogger(LOGGER).warning("cannot open log file %s: %s", config.log.file, exc)
    if run_id is not None:
        handlers.append(_run_handler(config, run_id))
    if stderr or under_systemd():
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter(JOURNAL_FORMAT) if under_systemd() else IsoFormatter(RUN_FORMAT))
        handlers.append(err)
    for h in handlers:
        logger.addHandler(h)
        _installed.append(h)
    return logger


@contextlib.contextmanager
def run_log(config: Config, run_id: int) -> Iterator[Path]:
    """Also write `<state_dir>/runs/<run id>.log` while the block runs (a run inside this process)."""
    logger = logging.getLogger(LOGGER)
    handler = _run_handler(config, run_id)
    logger.addHandler(handler)
    try:
        yield run_log_path(config, run_id)
    finally:
        logger.removeHandler(handler)
        handler.close()


def tail(path: Path, lines: int = 50) -> list[str]:
    """The last `lines` lines of a log file (empty when it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = min(size, max(4096, lines * 200))
            f.seek(size - block)
            data = f.read()
    except OSError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]
