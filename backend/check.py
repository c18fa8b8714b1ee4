"""The dead-man's check: is every database backed up recently enough? One Nagios-style line.

`evaluate(config, now)` looks at the dumps on disk (the truth: a run that said
"succeeded" but whose file was deleted does not count) and the disks, and
returns a `CheckResult`:

- CRITICAL (2): a database has had no successful backup for longer than its
  `max_age` (the job's `max_age`, else `checks.max_age`), or never had one; a
  disk is above `disk.critical_percent`.
- WARNING (1): the newest dump of a database is anomalously small (below
  `checks.min_size_ratio` × the median of its earlier dumps); its newest dump
  failed verification; the last run of a database failed (while still within
  max_age); a disk is above `disk.warn_percent`.
- OK (0): none of the above.

Which databases: those covered by the configured jobs (literal names even
with no dump yet; patterns match the databases seen on disk or in runs); with
no jobs configured, every database with a dump on disk.

`check(config, now, notify=True)` also notifies (smart policy, key ``check``)
and retries pending notifications; it never raises because of a channel.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import trends
from .units import format_bytes, format_duration

log = logging.getLogger("dumpdeck.check")

OK, WARNING, CRITICAL = 0, 1, 2
LABELS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}


@dataclass(frozen=True)
class Problem:
    level: int  # WARNING | CRITICAL
    id: str  # stable: overdue:main/shop, small:main/shop, disk:/var/backups
    text: str  # for humans, with the figures


@dataclass(frozen=True)
class CheckResult:
    code: int
    line: str
    problems: tuple[Problem, ...] = ()
    databases: int = 0
    perfdata: dict = field(default_factory=dict)
    notified: object = None  # notify.Dispatch when it notified

    @property
    def label(self) -> str:
        return LABELS[self.code]


def _is_literal(name: str) -> bool:
    return not any(c in name for c in "*?[")


def expected_databases(
    config, entries: Sequence, run_dbs: Sequence[tuple[str, str]] = ()
) -> dict[tuple[str, str], float]:
    """(server, database) → max_age in seconds, for every database that must have fresh backups."""
    seen = {(e.server or "-", e.database) for e in entries} | set(run_dbs)
    if not config.jobs:
        return {key: config.checks.max_age for key in seen}
    from .jobs import matches_job

    out: dict[tuple[str, str], float] = {}
    for job in config.jobs.values():
        max_age = job.max_age or config.checks.max_age
        candidates = {(job.server, db) for db in job.databases if _is_literal(db)}
        candidates |= {(s, db) for s, db in seen if s == job.server}
        for key in candidates:
            if matches_job(job, key[1]):
                out[key] = min(max_age, out.get(key, max_age))
    return out


def evaluate(
    config, now: float | None = None, *, store=None, entries: Sequence | None = None, disk: Sequence | None = None
) -> CheckResult:
    now = time.time() if now is None else now
    now_dt = datetime.fromtimestamp(now, UTC)
    if entries is None:
        entries = trends.catalog_entries(config)
    problems: list[Problem] = []

    # the last outcome of each database in the recent runs (to report a failing one early)
    last_run: dict[tuple[str, str], tuple[str, str | None, datetime | None]] = {}
    if store is not None:
        try:
            for run in store.list_runs(limit=200):
                if run.status in ("queued", "running", "skipped"):
                    continue
                for p in store.progress(run.id):
                    key = (run.server, p.database)
                    if key not in last_run and p.status not in ("pending", "skipped", "cancelled"):
                        last_run[key] = (p.status, p.error or run.reason, run.finished)
        except Exception as exc:
            log.warning("dead-man's check: cannot read runs: %s", exc)

    expected = expected_databases(config, entries, list(last_run))
    by_db: dict[tuple[str, str], list] = {}
    for e in entries:
        by_db.setdefault((e.server or "-", e.database), []).append(e)
    oldest_age = 0.0
    newest_age: float | None = None
    for key in sorted(expected):
        server, db = key
        max_age = expected[key]
        es = sorted(by_db.get(key, []), key=lambda x: x.when, reverse=True)
        name = f"{server}/{db}"
        if not es:
            problems.append(Problem(CRITICAL, f"never:{name}", f"{name}: no successful backup on disk"))
            continue
        last = es[0]
        age = now - last.when.timestamp()
        oldest_age = max(oldest_age, age)
        newest_age = age if newest_age is None else min(newest_age, age)
        if age > max_age:
            problems.append(
                Problem(
                    CRITICAL,
                    f"overdue:{name}",
                    f"{name}: no successful backup for {format_duration(age)} (max_age {format_duration(max_age)})",
                )
            )
        # anomalously small
        cur = trends.sample_of(last)
        hist = [trends.sample_of(x) for x in es[1 : 1 + config.trends.window]]
        same_kind = [h.size for h in hist if h.raw == cur.raw]
        med = trends.median(same_kind)
        if (
            cur.size is not None
            and med
            and len(same_kind) >= trends.MIN_HISTORY
            and cur.size < med * config.checks.min_size_ratio
        ):
            problems.append(
                Problem(
                    WARNING,
                    f"small:{name}",
                    f"{name}: newest dump is {format_bytes(cur.size)}, "
                    f"{cur.size / med * 100:.0f}% of the median {format_bytes(med)} "
                    f"(min {config.checks.min_size_ratio * 100:.0f}%)",
                )
            )
        m = getattr(last, "manifest", None)
        if m is not None and m.verifications and m.verifications[-1].failed:
            problems.append(
                Problem(
                    WARNING,
                    f"verify:{name}",
                    f"{name}: newest dump failed verification level {m.verifications[-1].level}",
                )
            )
        lr = last_run.get(key)
        if lr and lr[0] not in ("succeeded",) and lr[2] is not None and lr[2] > last.when:
            reason = " ".join((lr[1] or lr[0]).split())[:160]
            problems.append(Problem(WARNING, f"failing:{name}", f"{name}: last run {lr[0]}: {reason}"))

    if disk is None:
        from .postrun import disk_lines

        try:
            disk = disk_lines(config)
        except Exception as exc:
            log.warning("dead-man's check: cannot read disk usage: %s", exc)
            disk = []
    disk_max = 0.0
    for d in disk:
        disk_max = max(disk_max, d.percent or 0.0)
        if d.level == "critical":
            problems.append(
                Problem(
                    CRITICAL,
                    f"disk:{d.path}",
                    f"disk {d.path}: {d.percent:.0f}% used (critical at {d.critical_percent:.0f}%)",
                )
            )
        elif d.level == "warning":
            problems.append(
                Problem(
                    WARNING,
                    f"disk:{d.path}",
                    f"disk {d.path}: {d.percent:.0f}% used (warning at {d.warn_percent:.0f}%)",
                )
            )

    code = max((p.level for p in problems), default=OK)
    perf = {
        "databases": len(expected),
        "overdue": sum(1 for p in problems if p.id.startswith(("overdue:", "never:"))),
        "small": sum(1 for p in problems if p.id.startswith("small:")),
        "oldest_age": int(oldest_age),
        "disk_max": f"{disk_max:.0f}%",
    }
    perf_text = " ".join(f"{k}={v}" for k, v in perf.items())
    if problems:
        worst = sorted(problems, key=lambda p: -p.level)
        summary = "; ".join(p.text for p in worst[:3])
        more = f" (+{len(worst) - 3} more)" if len(worst) > 3 else ""
        line = f"DUMPDECK {LABELS[code]} - {summary}{more} | {perf_text}"
    elif not expected:
        line = f"DUMPDECK OK - no databases to watch yet (no jobs and no dumps) | {perf_text}"
    else:
        line = (
            f"DUMPDECK OK - {len(expected)} database{'s' if len(expected) != 1 else ''} backed up, "
            f"oldest last success {format_duration(oldest_age)} ago"
            + (f", disk {disk_max:.0f}% used" if disk else "")
            + f" | {perf_text}"
        )
    line = " ".join(line.split())  # one line, whatever the names contain
    return CheckResult(code, line, tuple(problems), len(expected), perf)


def check(config, now: float | None = None, *, notify: bool = True) -> CheckResult:
    """evaluate() and, unless `notify` is False, notify per the smart policy (never raises for a channel)."""
    now = time.time() if now is None else now
    store = None
    try:
        if Path(config.state_db).exists() or notify:
            from .state import StateStore

            store = StateStore.open(config.state_db)
    except Exception as exc:
        log.warning("dead-man's check: state store unavailable: %s", exc)
        store = None
    try:
        result = evaluate(config, now, store=store)
        if notify and store is not None:
            result = _notify(config, store, result, now)
        return result
    finally:
        if store is not None:
            store.close()


def _notify(config, store, result: CheckResult, now: float) -> CheckResult:
    from dataclasses import replace

    from . import notify as notify_mod
    from .postrun import disk_lines

    try:
        notify_mod.retry_pending(config, store, now=now)
    except Exception:
        log.exception("dead-man's check: retrying pending notifications failed")
    status = {OK: "ok", WARNING: "warning", CRITICAL: "failed"}[result.code]
    detail = "\n".join(sorted(p.id for p in result.problems)) or None
    try:
        disk = disk_lines(config)
    except Exception:
        disk = []
    cfg_path = str(config.path) if getattr(config, "path", None) else None

    def compose(decision):
        return notify_mod.compose_check(
            result.line,
            [p.text for p in result.problems],
            decision.kind,
            decision.severity,
            disk=disk,
            failing_for=decision.failing_for,
            config_path=cfg_path,
        )

    try:
        d = notify_mod.dispatch(
            config,
            store,
            "check",
            status,
            compose,
            now=now,
            first_success=False,
            bad_severity="CRITICAL",
            detail=detail,
            policy="smart",
        )
    except Exception:
        log.exception("dead-man's check: notification failed")
        return result
    return replace(result, notified=d)
