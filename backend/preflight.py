"""Preflight before a run: the server answers, the account may dump, the disk can take it.

The size check estimates each dump's stored size as the database's data+index
size (information_schema) times a ratio: the median `bytes_stored /
inventory_bytes` of its earlier successful dumps (state history), or a
conservative default per codec (0.5 for zstd/gzip/xz, 1.0 for none). The sum,
plus 20 % headroom, must fit in the free space of the backup directory's
volume; otherwise the run fails at once with the figures.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import mysql
from .config import Config, ServerConfig
from .errors import ConnectError
from .units import format_bytes

DEFAULT_RATIO = {"zstd": 0.5, "gzip": 0.5, "xz": 0.5, "none": 1.0}
HEADROOM = 1.2
# SQL text is usually close to the data+index size; learned from history when available.
DEFAULT_RAW_RATIO = 0.85


@dataclass
class PreflightReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    estimates: dict[str, int] = field(default_factory=dict)      # stored bytes expected per database
    free_bytes: int | None = None
    needed_bytes: int = 0
    raw_estimates: dict[str, int] = field(default_factory=dict)  # SQL bytes expected (progress, ETA)
    inventory_bytes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ratio_source: dict[str, str] = field(default_factory=dict)   # "history (n runs)" | "default"
    db_problems: dict[str, str] = field(default_factory=dict)    # problems of one database only

    @property
    def fatal(self) -> list[str]:
        """Problems that stop the whole run (connection, space), not just one database."""
        own = set(self.db_problems.values())
        return [p for p in self.problems if p not in own]

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def existing_parent(path: Path) -> Path:
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def connect_with_retries(server: ServerConfig, *, retries: int = 2, delay: float = 1.0,
                         sleep: Callable[[float], None] = time.sleep,
                         on_retry: Callable[[int, float, str], None] | None = None):
    """Connect, retrying `retries` times with a growing delay (delay, 2×delay, 4×delay…)."""
    attempt = 0
    while True:
        try:
            return mysql.connect(server)
        except ConnectError as exc:
            if attempt >= retries or "access denied" in str(exc):
                raise
            wait = delay * (2 ** attempt)
            if on_retry is not None:
                on_retry(attempt + 1, wait, str(exc))
            sleep(wait)
            attempt += 1


def learned_ratios(store, server: str, database: str, limit: int = 10) -> tuple[float | None, float | None, int]:
    """(stored/inventory, raw/inventory, n) medians from earlier successful dumps, or Nones."""
    if store is None:
        return None, None, 0
    rows = [h for h in store.history(server, database, limit) if h.inventory_bytes and h.bytes_stored > 0]
    if not rows:
        return None, None, 0
    stored = statistics.median(h.bytes_stored / h.inventory_bytes for h in rows)
    raw = statistics.median(h.bytes_raw / h.inventory_bytes for h in rows)
    return stored, raw, len(rows)


def preflight(config: Config, server: ServerConfig | str, databases: list[str], *, retries: int = 2,
              delay: float = 1.0, sleep: Callable[[float], None] = time.sleep, store=None,
              on_retry: Callable[[int, float, str], None] | None = None) -> PreflightReport:
    server_cfg = config.server(server) if isinstance(server, str) or server is None else server
    report = PreflightReport(ok=False)
    try:
        conn = connect_with_retries(server_cfg, retries=retries, delay=delay, sleep=sleep, on_retry=on_retry)
    except ConnectError as exc:
        report.problems.append(f"{exc} (after {retries + 1} attempt{'s' if retries else ''})")
        return report
    try:
        info = mysql.server_info(conn, server_cfg)
        existing = set(mysql.list_databases(conn, _with_system(server_cfg)))
        present = [db for db in databases if db in existing]
        for db in databases:
            if db not in existing:
                report.db_problems[db] = f"server {server_cfg.name}: database {db!r} does not exist"
                report.problems.append(report.db_problems[db])
        inventory = {d.name: d for d in mysql.inventory(conn, server_cfg, present)} if present else {}
        for db in present:
            priv = mysql.check_dump_privileges(conn, info, db, inventory.get(db))
            if priv.missing:
                report.db_problems[db] = (
                    f"server {server_cfg.name}: user {info.user} lacks {', '.join(priv.missing)} on database {db!r}")
                report.problems.append(report.db_problems[db])
            report.warnings.extend(f"{db}: {w}" for w in priv.warnings)
    finally:
        conn.close()

    codec = config.backup.compression
    for db, inv in inventory.items():
        stored_ratio, raw_ratio, n = learned_ratios(store, server_cfg.name, db)
        if stored_ratio is None:
            stored_ratio = DEFAULT_RATIO.get(codec, 1.0)
            raw_ratio = DEFAULT_RAW_RATIO
            report.ratio_source[db] = "default"
        else:
            report.ratio_source[db] = f"history ({n} run{'s' if n != 1 else ''})"
        report.inventory_bytes[db] = inv.bytes
        report.estimates[db] = int(inv.bytes * stored_ratio)
        report.raw_estimates[db] = int(inv.bytes * (raw_ratio or DEFAULT_RAW_RATIO))
    report.needed_bytes = int(sum(report.estimates.values()) * HEADROOM)
    target = existing_parent(config.backup.dir)
    try:
        report.free_bytes = shutil.disk_usage(target).free
    except OSError as exc:
        report.problems.append(f"cannot read free space of {target}: {exc.strerror}")
    if report.free_bytes is not None and report.needed_bytes > report.free_bytes:
        biggest = sorted(report.estimates.items(), key=lambda kv: -kv[1])[:3]
        report.problems.append(
            f"not enough space in {config.backup.dir}: need about {format_bytes(report.needed_bytes)} "
            f"(estimated {format_bytes(sum(report.estimates.values()))} + 20% headroom; largest: "
            + ", ".join(f"{db} {format_bytes(b)}" for db, b in biggest)
            + f"), free {format_bytes(report.free_bytes)} on {target}")
    report.ok = not report.problems
    return report


def _with_system(server: ServerConfig) -> ServerConfig:
    """The same server, listing every database (an explicitly named system schema may be dumped)."""
    import dataclasses

    return dataclasses.replace(server, include_system=True, exclude_databases=())
