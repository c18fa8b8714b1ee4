"""Snapshots → table rows. Pure functions (no Textual, no I/O), so they are cheap to test.

A status is a word plus a tone (ok | warn | bad | busy | muted); the widgets map
tones to theme colours, so no colour is decided here. Whether a database is in
good health is the backend's verdict (`backend.health.judge`), the same one the
dead-man's check and the status page give.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dumpdeck.backend import health
from dumpdeck.backend.config import Config
from dumpdeck.backend.health import Finding
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.selection import max_age_for
from dumpdeck.backend.units import format_bytes, format_duration
from dumpdeck.backend.vocabulary import DbStatus, RunStatus, Severity

from .views import CatalogSnapshot, DbProgressView, DumpView, JobsSnapshot, RunView, ServerSnapshot

Tone = Literal["ok", "warn", "bad", "busy", "muted"]


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
    tone: Tone

    def age(self, now: float) -> float | None:
        return None if self.last_good is None else max(0.0, now - self.last_good)


def db_key(server: str, database: str) -> str:
    return f"{server}/{database}"


@dataclass(frozen=True)
class Newest:
    """Per (server, database): its newest dump, and its newest good one (see `backend.health.is_good`)."""

    dump: dict[tuple[str, str], DumpView]
    good: dict[tuple[str, str], DumpView]


_newest_cache: dict[int, tuple[CatalogSnapshot, Newest]] = {}


def newest(catalog: CatalogSnapshot) -> Newest:
    """The newest and the newest good dump of every database (cached per catalog snapshot)."""
    cached = _newest_cache.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    out = _newest(catalog)
    _newest_cache.clear()
    _newest_cache[id(catalog)] = (catalog, out)
    return out


def newest_good(catalog: CatalogSnapshot) -> dict[tuple[str, str], DumpView]:
    """The newest dump per (server, database) that is not known to be bad (dumps are newest first)."""
    return newest(catalog).good


def _newest(catalog: CatalogSnapshot) -> Newest:
    dump: dict[tuple[str, str], DumpView] = {}
    good: dict[tuple[str, str], DumpView] = {}
    for d in catalog.dumps:
        k = (d.server, d.database)
        dump.setdefault(k, d)
        if k not in good and not d.manifest_error and d.last_result != Outcome.FAILED:
            good[k] = d
    return Newest(dump, good)


FINDING_WORDS = {
    Finding.NEVER: "never",
    Finding.OVERDUE: "overdue",
    Finding.FAILING: "failing",
    Finding.VERIFY_FAILED: "verify failed",
    Finding.SMALL: "small",
    Finding.UNVERIFIED: "unverified",
}
SEVERITY_TONES: dict[Severity, Tone] = {Severity.OK: "ok", Severity.WARNING: "warn", Severity.CRITICAL: "bad"}


def severity_tone(severity: Severity) -> Tone:
    return SEVERITY_TONES[severity]


def database_health(server: str, database: str, latest: Newest, config: Config, now: float) -> health.DbHealth:
    """The backend's verdict on one database, from the console's catalog snapshot."""
    good = latest.good.get((server, database))
    last = latest.dump.get((server, database))
    return health.judge(
        server,
        database,
        now=now,
        max_age=max_age_for(config, server, database),
        last_success=good.when if good else None,
        verified_level=good.verified_level if good else 0,
        verification_failed=(last.verified_level + 1)
        if last is not None and last.last_result == Outcome.FAILED
        else None,
    )


_known_cache: dict[int, tuple[CatalogSnapshot, dict]] = {}


def catalog_databases(catalog: CatalogSnapshot) -> dict[str, list[str]]:
    """Database names per server that the catalog holds dumps of (sorted), cached per snapshot."""
    cached = _known_cache.get(id(catalog))
    if cached is not None and cached[0] is catalog:
        return cached[1]
    out: dict[str, set[str]] = {}
    for d in catalog.dumps:
        out.setdefault(d.server, set()).add(d.database)
    result = {s: sorted(names) for s, names in out.items()}
    _known_cache.clear()
    _known_cache[id(catalog)] = (catalog, result)
    return result


def busy_status(p: DbProgressView) -> str | None:
    """What the Databases pane says of a database a run is working on (None: not at work; one
    waiting its turn shows its health)."""
    if p.status == DbStatus.RUNNING:
        frac = p.fraction
        return f"dumping {frac * 100:.0f}%" if frac is not None else "dumping"
    if p.status in (DbStatus.VERIFYING, DbStatus.RETRYING):
        return str(p.status)
    return None


def database_rows(
    servers: dict[str, ServerSnapshot | None], catalog: CatalogSnapshot, jobs: JobsSnapshot, config: Config, now: float
) -> list[DbRow]:
    latest = newest(catalog)
    busy: dict[tuple[str, str], str] = {}
    for run in jobs.active:
        for p in run.progress:
            text = busy_status(p)
            if text is not None:
                busy[(run.server or "", p.database)] = text
    known = catalog_databases(catalog)
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
            # A server being down is when the age of its last good dump matters most: every
            # database it is known to have (its last inventory, the catalog) stays listed.
            down = f"unreachable: {snap.cause}" if snap.cause else "unreachable"
            inventory = {db.name: db for db in snap.databases}
            names = sorted(set(inventory) | set(known.get(name, ())))
            if not names:
                # "none known" only once the catalog has been read: before that, its databases are not known yet
                rows.append(
                    DbRow(
                        key=db_key(name, ""),
                        server=name,
                        database="(none known)" if catalog.scanned_at else "…",
                        bytes=None,
                        tables=None,
                        last_good=None,
                        level=0,
                        status=down,
                        tone="bad",
                    )
                )
            for db_name in names:
                verdict = database_health(name, db_name, latest, config, now)
                inv = inventory.get(db_name)
                rows.append(
                    DbRow(
                        key=db_key(name, db_name),
                        server=name,
                        database=db_name,
                        bytes=inv.bytes if inv else None,
                        tables=inv.tables if inv else None,
                        last_good=verdict.last_success,
                        level=verdict.verified_level,
                        status=busy.get((name, db_name), down),
                        tone="busy" if (name, db_name) in busy else "bad",
                    )
                )
            continue
        for db in snap.databases:
            verdict = database_health(name, db.name, latest, config, now)
            last = verdict.last_success
            level = verdict.verified_level
            status: str
            tone: Tone
            if (name, db.name) in busy:
                status, tone = busy[(name, db.name)], "busy"
            elif verdict.verdict is not None:
                status = FINDING_WORDS[verdict.verdict]
                tone = "warn" if verdict.verdict == Finding.UNVERIFIED else severity_tone(verdict.severity)
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
    """An age that moves with the clock at the resolution that matters: seconds in the first
    minute, then minutes ("11m ago", "3h05m ago", "2d4h ago")."""
    if seconds is None:
        return "never"
    if seconds < 1:
        return "now"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    return format_duration(seconds) + " ago"


def age_changes_at(since: float, now: float) -> float:
    """When the text of age_text(now - since) next changes (seconds resolution, then minutes)."""
    age = max(0.0, now - since)
    if age < 60:
        return since + int(age) + 1
    return since + (int(age // 60) + 1) * 60


def eta_text(p, now: float) -> str:
    """A dump's ETA: a duration once there is signal enough, 'estimating' before, '-' when over."""
    if p.status != "running":
        return "-"
    eta = p.eta(now)
    return "estimating" if eta is None else format_duration(eta)


def rate_text(rate: float | None) -> str:
    return format_bytes(rate) + "/s" if rate else "-"


def level_text(level: int) -> str:
    return f"L{level}" if level else "-"


def bytes_text(n: int | None) -> str:
    return "-" if n is None else format_bytes(n)


STATUS_TONES: dict[str, Tone] = {
    RunStatus.QUEUED: "busy",
    RunStatus.RUNNING: "busy",
    RunStatus.SUCCEEDED: "ok",
    RunStatus.FAILED: "bad",
    RunStatus.TIMED_OUT: "bad",
    RunStatus.LOST: "bad",
    RunStatus.CANCELLED: "warn",
    RunStatus.SKIPPED: "muted",
    DbStatus.PENDING: "busy",
    DbStatus.RETRYING: "busy",
    DbStatus.VERIFYING: "busy",
    "cancelling": "warn",  # the console's word for an active run whose cancel was sent
}


def run_status_tone(status: RunStatus | DbStatus | str) -> Tone:
    """The tone of a run's or a database's status; a word that is no status is muted, never "in progress"."""
    return STATUS_TONES.get(status, "muted")


def run_title(run: RunView) -> str:
    return f"#{run.id} {run.what()}"
