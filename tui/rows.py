"""Snapshots → table rows. Pure functions (no Textual, no I/O), so they are cheap to test.

A status is a word plus a tone (ok | warn | bad | busy | muted); the widgets map
tones to theme colours, so no colour is decided here.
"""

from __future__ import annotations

from dataclasses import dataclass

from dumpdeck.backend.config import Config
from dumpdeck.backend.units import format_bytes, format_duration

from .views import CatalogSnapshot, DumpView, JobsSnapshot, RunView, ServerSnapshot

LEVEL_NAMES = {0: "-", 1: "L1 file", 2: "L2 stream", 3: "L3 content", 4: "L4 restore"}


@dataclass(frozen=True)
class DbRow:
    key: str  # "server/database" (stable row key)
    server: str
    database: str
    bytes: int | None
    tables: int | None
    last_good: float | None  # epoch of the newest good dump
    level: int
    status: str
    tone: str

    def age(self, now: float) -> float | None:
        return None if self.last_good is None else max(0.0, now - self.last_good)


def db_key(server: str, database: str) -> str:
    return f"{server}/{database}"


_good_cache: dict[int, tuple[CatalogSnapshot, dict]] = {}


def newest_good(catalog: CatalogSnapshot) -> dict[tuple[str, str], DumpView]:
    """The newest dump per (server, database) that is not known to be bad (dumps are newest first)."""
    cached = _good_cache.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    out = _newest_good(catalog)
    _good_cache.clear()
    _good_cache[id(catalog)] = (catalog, out)
    return out


def _newest_good(catalog: CatalogSnapshot) -> dict[tuple[str, str], DumpView]:
    out: dict[tuple[str, str], DumpView] = {}
    for d in catalog.dumps:
        k = (d.server, d.database)
        if k in out or d.manifest_error or d.last_result == "failed":
            continue
        out[k] = d
    return out


def database_rows(
    servers: dict[str, ServerSnapshot | None], catalog: CatalogSnapshot, jobs: JobsSnapshot, config: Config, now: float
) -> list[DbRow]:
    good = newest_good(catalog)
    busy: dict[tuple[str, str], str] = {}
    for run in jobs.active:
        for p in run.progress:
            if p.status in ("running", "dumping", "queued", "starting", "finishing", "verifying"):
                frac = p.fraction
                busy[(run.server or "", p.database)] = f"dumping {frac * 100:.0f}%" if frac is not None else p.status
    rows: list[DbRow] = []
    for name in config.servers:
        snap = servers.get(name)
        if snap is None:
            rows.append(
                DbRow(
                    key=db_key(name, ""),
                    server=name,
                    database="…",
                    bytes=None,
                    tables=None,
                    last_good=None,
                    level=0,
                    status="connecting",
                    tone="muted",
                )
            )
            continue
        if not snap.reachable:
            rows.append(
                DbRow(
                    key=db_key(name, ""),
                    server=name,
                    database="(unreachable)",
                    bytes=None,
                    tables=None,
                    last_good=None,
                    level=0,
                    status="unreachable",
                    tone="bad",
                )
            )
            continue
        for db in snap.databases:
            d = good.get((name, db.name))
            last = d.when if d else None
            level = d.verified_level if d else 0
            if (name, db.name) in busy:
                status, tone = busy[(name, db.name)], "busy"
            elif d is None:
                status, tone = "never", "bad"
            elif now - d.when > config.checks.max_age:
                status, tone = "stale", "warn"
            elif level == 0:
                status, tone = "unverified", "warn"
            elif not db.consistent:
                # MyISAM/Aria/MEMORY tables: --single-transaction cannot make their data consistent
                status, tone = "ok, not consistent", "warn"
            else:
                status, tone = "ok", "ok"
            rows.append(
                DbRow(
                    key=db_key(name, db.name),
                    server=name,
                    database=db.name,
                    bytes=db.bytes,
                    tables=db.tables,
                    last_good=last,
                    level=level,
                    status=status,
                    tone=tone,
                )
            )
    return rows


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return format_duration(seconds) + " ago" if seconds >= 1 else "now"


def level_text(level: int) -> str:
    return f"L{level}" if level else "-"


def bytes_text(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


def run_status_tone(status: str) -> str:
    return {
        "succeeded": "ok",
        "ok": "ok",
        "done": "ok",
        "failed": "bad",
        "lost": "bad",
        "timeout": "bad",
        "cancelled": "warn",
        "partial": "warn",
    }.get(status, "busy")


def run_title(run: RunView) -> str:
    what = run.job or (", ".join(run.databases[:3]) + ("…" if len(run.databases) > 3 else ""))
    return f"#{run.id} {what}"
