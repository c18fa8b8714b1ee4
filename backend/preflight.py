"""Preflight before a run: the server answers, the account may dump, the disk can take it.

The size check estimates each dump's stored size as the database's data+index
size (information_schema) times a ratio: the median `bytes_stored /
inventory_bytes` of its earlier successful dumps (state history), or a
conservative default per codec (0.5 for zstd/gzip/xz, 1.0 for none). The sum,
plus 20 % headroom, must fit in the free space of the backup directory's
volume; otherwise the run fails at once with the figures.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import disk, mysql
from .config import Config, ServerConfig
from .errors import ConnectError
from .state import StateStore
from .units import format_bytes

DEFAULT_RATIO = {"zstd": 0.5, "gzip": 0.5, "xz": 0.5, "none": 1.0}
HEADROOM = 1.2
# SQL text is usually close to the data+index size; learned from history when available.
DEFAULT_RAW_RATIO = 0.85


@dataclass
class PreflightReport:
    ok: bool
    problems: list[str] = field(default_factory=list)
    estimates: dict[str, int] = field(default_factory=dict)  # stored bytes expected per database
    free_bytes: int | None = None
    needed_bytes: int = 0
    raw_estimates: dict[str, int] = field(default_factory=dict)  # SQL bytes expected (progress, ETA)
    inventory_bytes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ratio_source: dict[str, str] = field(default_factory=dict)  # "history (n runs)" | "default"
    db_problems: dict[str, str] = field(default_factory=dict)  # problems of one database only

    @property
    def fatal(self) -> list[str]:
        """Problems that stop the whole run (connection, space), not just one database."""
        own = set(self.db_problems.values())
        return [p for p in self.problems if p not in own]

    @property
    def reason(self) -> str:
        return "; ".join(self.problems)


def connect_with_retries(
    server: ServerConfig,
    *,
    retries: int = 2,
    delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, float, str], None] | None = None,
) -> mysql.Connection:
    """Connect, retrying `retries` times with a growing delay (delay, 2×delay, 4×delay…). A refused
    password is never retried: one wrong login, not several toward the server's lockout counters."""
    attempt = 0
    while True:
        try:
            return mysql.connect(server)
        except ConnectError as exc:
            if "access denied" in str(exc):
                raise
            if attempt >= retries:
                raise ConnectError(f"{exc} (after {attempt + 1} attempts)" if attempt else str(exc)) from None
            wait = delay * (2**attempt)
            if on_retry is not None:
                on_retry(attempt + 1, wait, str(exc))
            sleep(wait)
            attempt += 1


def learned_ratios(
    store: StateStore | None, server: str, database: str, limit: int = 10
) -> tuple[float | None, int | None, int]:
    """(compression ratio stored/raw, SQL bytes of the recent dumps scaled to today's inventory, n).

    Deliberately not `x / inventory`: InnoDB's table statistics are often stale right after a
    bulk load (a 250 MB table can show 16 KiB), and a ratio learned against such a figure
    would later demand terabytes of free space. The compression ratio and the real size of
    the last dumps are measured facts; the inventory only scales them, within x0.5..x2."""
    if store is None:
        return None, None, 0
    rows = [h for h in store.history(server, database, limit) if h.bytes_raw > 0 and h.bytes_stored > 0]
    if not rows:
        return None, None, 0
    compression = statistics.median(h.bytes_stored / h.bytes_raw for h in rows)
    recent = rows[:3]  # history is newest first
    raw = statistics.median(h.bytes_raw for h in recent)
    return compression, int(raw), len(rows)


def _scaled(raw: int, then_inventory: int | None, now_inventory: int) -> int:
    if not then_inventory or not now_inventory:
        return raw
    return int(raw * min(2.0, max(0.5, now_inventory / then_inventory)))


def preflight(
    config: Config,
    server: ServerConfig | str,
    databases: list[str],
    *,
    retries: int = 2,
    delay: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    store: StateStore | None = None,
    on_retry: Callable[[int, float, str], None] | None = None,
) -> PreflightReport:
    server_cfg = config.server(server) if isinstance(server, str) or server is None else server
    report = PreflightReport(ok=False)
    try:
        conn = connect_with_retries(server_cfg, retries=retries, delay=delay, sleep=sleep, on_retry=on_retry)
    except ConnectError as exc:
        report.problems.append(str(exc))
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
                    f"server {server_cfg.name}: user {info.user} lacks {', '.join(priv.missing)} on database {db!r}"
                )
                report.problems.append(report.db_problems[db])
            report.warnings.extend(f"{db}: {w}" for w in priv.warnings)
    finally:
        conn.close()

    codec = config.backup.compression
    for db, inv in inventory.items():
        compression, recent_raw, n = learned_ratios(store, server_cfg.name, db)
        report.inventory_bytes[db] = inv.bytes
        if compression is None or recent_raw is None:
            report.ratio_source[db] = "default"
            report.raw_estimates[db] = int(inv.bytes * DEFAULT_RAW_RATIO)
            report.estimates[db] = int(inv.bytes * DEFAULT_RATIO.get(codec, 1.0))
            continue
        report.ratio_source[db] = f"history ({n} run{'s' if n != 1 else ''})"
        assert store is not None  # learned_ratios found a history
        latest = store.history(server_cfg.name, db, 1)
        raw = _scaled(recent_raw, latest[0].inventory_bytes if latest else None, inv.bytes)
        report.raw_estimates[db] = raw
        # the compression ratio of earlier runs applies to the same codec only
        report.estimates[db] = int(
            raw
            * (
                compression
                if _same_codec(store, server_cfg.name, db, codec)
                else DEFAULT_RATIO.get(codec, 1.0) / DEFAULT_RAW_RATIO
            )
        )
    report.needed_bytes = int(sum(report.estimates.values()) * HEADROOM)
    target = disk.existing(config.backup.dir)
    try:
        report.free_bytes = disk.usage(target).free
    except OSError as exc:
        report.problems.append(f"cannot read free space of {target}: {exc.strerror}")
    if report.free_bytes is not None and report.needed_bytes > report.free_bytes:
        biggest = sorted(report.estimates.items(), key=lambda kv: -kv[1])[:3]
        report.problems.append(
            f"not enough space in {config.backup.dir}: need about {format_bytes(report.needed_bytes)} "
            f"(estimated {format_bytes(sum(report.estimates.values()))} + 20% headroom; largest: "
            + ", ".join(f"{db} {format_bytes(b)}" for db, b in biggest)
            + f"), free {format_bytes(report.free_bytes)} on {target}"
        )
    report.ok = not report.problems
    return report


def _with_system(server: ServerConfig) -> ServerConfig:
    """The same server, listing every database (an explicitly named system schema may be dumped)."""
    import dataclasses

    return dataclasses.replace(server, include_system=True, exclude_databases=())


def _same_codec(store: StateStore, server: str, database: str, codec: str) -> bool:
    """Whether the latest successful dump used `codec` (its file name tells)."""
    from .codecs import codec_for_path

    latest = store.history(server, database, 1)
    return not latest or latest[0].file is None or codec_for_path(latest[0].file) == codec
