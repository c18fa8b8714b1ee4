"""Database health: is the newest good backup of a database recent, and did nothing go wrong since?

One verdict, used by the dead-man's check, the status page and the console
alike. The dumps on disk are the truth (a run that said "succeeded" but whose
file was deleted does not count). The newest *good* dump of a database is its
newest dump with a readable manifest (or a legacy file) whose last
verification did not fail. Findings, most severe first:

- `never` (critical): no good dump on disk;
- `overdue` (critical): the newest good dump is older than the database's
  `max_age` (the strictest of the jobs covering it, else `checks.max_age`);
- `failing` (warning): its last run failed after the newest good dump;
- `verify-failed` (warning): its newest dump failed verification;
- `small` (warning): its newest dump is below `checks.min_size_ratio` × the
  median of its earlier dumps (at least `trends.MIN_HISTORY` of them);
- `unverified` (a note, not a problem): the newest good dump was never verified.

`judge` decides for one database from plain facts (the console has its own
snapshots); `assess` gathers those facts from catalog entries and recent runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from . import trends
from .catalog import DumpEntry
from .config import Config
from .outcome import Outcome
from .selection import expected_databases
from .state import StateStore
from .units import format_bytes, format_duration
from .vocabulary import DbStatus, RunStatus, Severity


class Finding(StrEnum):
    NEVER = "never"
    OVERDUE = "overdue"
    FAILING = "failing"
    VERIFY_FAILED = "verify-failed"
    SMALL = "small"
    UNVERIFIED = "unverified"

    @property
    def severity(self) -> Severity:
        return _SEVERITY[self]


_SEVERITY = {
    Finding.NEVER: Severity.CRITICAL,
    Finding.OVERDUE: Severity.CRITICAL,
    Finding.FAILING: Severity.WARNING,
    Finding.VERIFY_FAILED: Severity.WARNING,
    Finding.SMALL: Severity.WARNING,
    Finding.UNVERIFIED: Severity.OK,
}


@dataclass(frozen=True)
class Problem:
    finding: Finding
    id: str  # stable, for notifications: overdue:main/shop, small:main/shop
    text: str  # for humans, with the figures

    @property
    def severity(self) -> Severity:
        return self.finding.severity


@dataclass(frozen=True)
class LastRun:
    """How the newest finished run that dumped a database ended for it."""

    status: DbStatus
    reason: str | None
    finished: datetime | None


@dataclass(frozen=True)
class DbHealth:
    server: str
    database: str
    max_age: float
    last_success: float | None  # epoch seconds of the newest good dump
    verified_level: int  # of the newest good dump
    findings: tuple[Problem, ...] = ()

    @property
    def severity(self) -> Severity:
        return Severity.worst(p.severity for p in self.findings)

    @property
    def verdict(self) -> Finding | None:
        """The most severe finding (in the order of `Finding`), None when all is well."""
        return self.findings[0].finding if self.findings else None

    def has(self, finding: Finding) -> bool:
        return any(p.finding == finding for p in self.findings)

    def age(self, now: float) -> float | None:
        return None if self.last_success is None else max(0.0, now - self.last_success)


def is_good(dump: DumpEntry) -> bool:
    """A dump that counts as a backup: its manifest is readable (or it is a legacy file) and its last
    verification did not fail."""
    return not dump.manifest_error and dump.last_result is not Outcome.FAILED


def judge(
    server: str,
    database: str,
    *,
    now: float,
    max_age: float,
    last_success: float | None,
    verified_level: int = 0,
    verification_failed: int | None = None,
    last_run: LastRun | None = None,
    smaller: str | None = None,
) -> DbHealth:
    """The verdict on one database.

    `last_success`: epoch of its newest good dump; `verification_failed`: the level at which its newest
    dump failed verification (None: it did not); `last_run`: the newest finished run that dumped it;
    `smaller`: why its newest dump is anomalously small (None: it is not)."""
    name = f"{server}/{database}"
    found: list[Problem] = []
    if last_success is None:
        found.append(Problem(Finding.NEVER, f"never:{name}", f"{name}: no successful backup on disk"))
    else:
        age = now - last_success
        if age > max_age:
            found.append(
                Problem(
                    Finding.OVERDUE,
                    f"overdue:{name}",
                    f"{name}: no successful backup for {format_duration(age)} (max_age {format_duration(max_age)})",
                )
            )
    if (
        last_run is not None
        and last_run.status != DbStatus.SUCCEEDED
        and last_run.finished is not None
        and (last_success is None or last_run.finished.timestamp() > last_success)
    ):
        reason = " ".join((last_run.reason or last_run.status).split())[:160]
        found.append(Problem(Finding.FAILING, f"failing:{name}", f"{name}: last run {last_run.status}: {reason}"))
    if verification_failed is not None:
        found.append(
            Problem(
                Finding.VERIFY_FAILED,
                f"verify:{name}",
                f"{name}: newest dump failed verification level {verification_failed}",
            )
        )
    if smaller is not None:
        found.append(Problem(Finding.SMALL, f"small:{name}", f"{name}: {smaller}"))
    if last_success is not None and verified_level == 0:
        found.append(Problem(Finding.UNVERIFIED, f"unverified:{name}", f"{name}: newest good dump is not verified"))
    found.sort(key=lambda p: list(Finding).index(p.finding))
    return DbHealth(server, database, max_age, last_success, verified_level, tuple(found))


# --------------------------------------------------------------------------- from the catalog and the runs


def last_runs(store: StateStore, limit: int = 200) -> dict[tuple[str, str], LastRun]:
    """(server, database) → how the newest finished run that dumped it ended (cancelled and skipped
    databases say nothing about their health and are passed over)."""
    out: dict[tuple[str, str], LastRun] = {}
    for run in store.list_runs(limit=limit):
        if run.status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SKIPPED):
            continue
        for p in store.progress(run.id):
            key = (run.server, p.database)
            if key in out or p.status in (DbStatus.PENDING, DbStatus.SKIPPED, DbStatus.CANCELLED):
                continue
            out[key] = LastRun(DbStatus(p.status), p.error or run.reason, run.finished)
    return out


def smaller_than_usual(dumps: Sequence[DumpEntry], config: Config) -> str | None:
    """Why the newest of `dumps` (newest first) is anomalously small, or None."""
    if not dumps:
        return None
    cur = trends.sample_of(dumps[0])
    hist = [trends.sample_of(x) for x in dumps[1 : 1 + config.trends.window]]
    same_kind = [h.size for h in hist if h.raw == cur.raw]
    med = trends.median(same_kind)
    ratio = config.checks.min_size_ratio
    if cur.size is None or not med or len(same_kind) < trends.MIN_HISTORY or cur.size >= med * ratio:
        return None
    return (
        f"newest dump is {format_bytes(cur.size)}, {cur.size / med * 100:.0f}% of the median "
        f"{format_bytes(med)} (min {ratio * 100:.0f}%)"
    )


def assess_dumps(
    config: Config,
    server: str,
    database: str,
    dumps: Sequence[DumpEntry],
    *,
    now: float,
    max_age: float,
    last_run: LastRun | None = None,
) -> DbHealth:
    """The verdict on one database from its catalog entries (newest first)."""
    good = next((d for d in dumps if is_good(d)), None)
    newest = dumps[0] if dumps else None
    failed = None
    if newest is not None and newest.last_result is Outcome.FAILED:
        failed = (newest.last_level or 0) + 1  # the level it failed at: one above the level it proved
    return judge(
        server,
        database,
        now=now,
        max_age=max_age,
        last_success=good.when.timestamp() if good else None,
        verified_level=good.verified_level if good else 0,
        verification_failed=failed,
        last_run=last_run,
        smaller=smaller_than_usual(dumps, config),
    )


def group_by_database(entries: Iterable[DumpEntry]) -> dict[tuple[str, str], list[DumpEntry]]:
    """(server, database) → its dumps, newest first (a dump without a server is under "-")."""
    out: dict[tuple[str, str], list[DumpEntry]] = {}
    for e in entries:
        out.setdefault((e.server or "-", e.database), []).append(e)
    for dumps in out.values():
        dumps.sort(key=lambda e: e.when, reverse=True)
    return out


def assess(
    config: Config,
    entries: Sequence[DumpEntry],
    *,
    now: float | None = None,
    runs: dict[tuple[str, str], LastRun] | None = None,
) -> list[DbHealth]:
    """The verdict on every database that must have fresh backups (see `selection.expected_databases`),
    sorted by server and database."""
    now = datetime.now(UTC).timestamp() if now is None else now
    runs = runs or {}
    by_db = group_by_database(entries)
    expected = expected_databases(config, set(by_db) | set(runs))
    return [
        assess_dumps(
            config, server, db, by_db.get((server, db), []), now=now, max_age=max_age, last_run=runs.get((server, db))
        )
        for (server, db), max_age in sorted(expected.items())
    ]
