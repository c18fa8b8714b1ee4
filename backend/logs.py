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
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .config import Config
from .naming import printable
from .private import open_private, private_dir

LOGGER = "dumpdeck"
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
RUN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"  # the journal adds time, host and pid

_installed: list[logging.Handler] = []


class SafeFormatter(logging.Formatter):
    """One record, one line: control characters in a message (a database named with ESC or a
    newline) are escaped, so tailing the log on a terminal is safe and lines cannot be forged."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = printable(record.message)
        return super().formatMessage(record)


class IsoFormatter(SafeFormatter):
    """asctime as ISO 8601 local time with milliseconds and the UTC offset."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class _OneLineErrors:
    """A log file that cannot be written (disk full, directory gone) is said once, in one line on
    stderr, instead of a traceback for every record."""

    _told = False
    baseFilename: str

    def handleError(self, record: logging.LogRecord) -> None:
        if self._told:
            return
        self._told = True
        exc = sys.exc_info()[1]
        reason = getattr(exc, "strerror", None) or exc
        with contextlib.suppress(Exception):
            sys.stderr.write(f"dumpdeck: cannot write the log {self.baseFilename}: {reason}\n")


class _RunLogHandler(_OneLineErrors, logging.FileHandler):
    """A run's own log, created 0640 whatever the umask."""

    def _open(self) -> io.TextIOWrapper:
        return os.fdopen(open_private(self.baseFilename), "a", encoding="utf-8", buffering=1)


class SharedLogHandler(_OneLineErrors, logging.handlers.WatchedFileHandler):
    """A log file several processes append to, surviving rotation by any of them or by logrotate."""

    def __init__(self, filename: str | os.PathLike[str], max_bytes: int = 0, keep: int = 5):
        super().__init__(filename, encoding="utf-8", delay=True)
        self.max_bytes = max(0, int(max_bytes))
        self.keep = max(0, int(keep))

    def _open(self) -> io.TextIOWrapper:
        # O_APPEND (mode "a"): every line lands at the end whoever else writes; 0640 whatever the umask
        return os.fdopen(open_private(self.baseFilename), "a", encoding="utf-8", buffering=1)

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
        with os.fdopen(open_private(self.baseFilename + ".lock"), "a") as lock:
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
    with contextlib.suppress(OSError):  # said once, in one line, when a record cannot be written
        private_dir(path.parent, ours=True)
    handler = _RunLogHandler(path, encoding="utf-8", delay=True)
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
    # The file opens on its first record (delay): a directory that cannot be created or written is
    # said once, in one line, when something is logged (_OneLineErrors), never as a traceback.
    with contextlib.suppress(OSError):
        private_dir(Path(config.log.file).parent, 0o750)
    main = SharedLogHandler(config.log.file, config.log.max_size, config.log.keep)
    main.setFormatter(IsoFormatter(FORMAT))
    handlers.append(main)
    if run_id is not None:
        handlers.append(_run_handler(config, run_id))
    if stderr or under_systemd():
        err = logging.StreamHandler()
        err.setFormatter(SafeFormatter(JOURNAL_FORMAT) if under_systemd() else IsoFormatter(RUN_FORMAT))
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


_checks_log = logging.getLogger("dumpdeck.verify")


def log_check_start(kind: str, path: Path | str, target: str | None = None) -> None:
    """One line when a verify or restore-test starts (from the console or the CLI)."""
    on = f" on {target}" if target else ""
    _checks_log.info("%s of %s%s started", kind, Path(path).name, on)


class _Report(Protocol):
    """What a verification report tells (verify.VerifyReport)."""

    @property
    def passed(self) -> bool: ...
    @property
    def failed(self) -> bool: ...
    @property
    def summary(self) -> str: ...

    duration: float


def log_check_outcome(kind: str, path: Path | str, report: _Report | None = None, error: str | None = None) -> None:
    """One line with the outcome: passed (INFO), failed: the dump is bad (ERROR), not checked: the
    check could not run (WARNING). `report` is a verify.VerifyReport; `error` says why it could not run."""
    name = Path(path).name
    if report is None:
        _checks_log.warning("%s of %s not checked: %s", kind, name, error or "it could not run")
    elif report.passed:
        _checks_log.info("%s of %s: %s in %.1fs", kind, name, report.summary, report.duration)
    elif report.failed:
        _checks_log.error("%s of %s: %s (%.1fs)", kind, name, report.summary, report.duration)
    else:
        _checks_log.warning("%s of %s: %s (%.1fs)", kind, name, report.summary, report.duration)
