"""Logging: one rotating log for everything, and one plain log per run.

`setup_logging(config, run_id)` attaches a RotatingFileHandler (size and count
from `config.log`) to the `dumpdeck` logger and, for a run, a FileHandler on
`<state_dir>/runs/<run id>.log`, so the console can tail either. Several
processes append to the main log; rotation is done by whichever process sees
the size exceeded (a rare interleaved line at rotation is the accepted cost).
"""

from __future__ import annotations

import logging
import logging.handlers
import os
from pathlib import Path

from .config import Config

LOGGER = "dumpdeck"
FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] %(name)s: %(message)s"
RUN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"

_installed: list[logging.Handler] = []


def run_log_path(config: Config, run_id: int) -> Path:
    return Path(config.runs_log_dir) / f"{run_id}.log"


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
        main = logging.handlers.RotatingFileHandler(
            config.log.file,
            maxBytes=max(0, int(config.log.max_size)),
            backupCount=int(config.log.keep),
            encoding="utf-8",
            delay=True,
        )
        main.setFormatter(logging.Formatter(FORMAT))
        handlers.append(main)
    except OSError as exc:
        logging.getLogger(LOGGER).warning("cannot open log file %s: %s", config.log.file, exc)
    if run_id is not None:
        path = run_log_path(config, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        per_run = logging.FileHandler(path, encoding="utf-8")
        per_run.setFormatter(logging.Formatter(RUN_FORMAT))
        handlers.append(per_run)
    if stderr:
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter(RUN_FORMAT))
        handlers.append(err)
    for h in handlers:
        logger.addHandler(h)
        _installed.append(h)
    return logger


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
