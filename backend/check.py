"""The dead-man's check: is every database backed up recently enough? One Nagios-style line.

`evaluate(config, now)` takes the verdict of `health` on every database (the
dumps on disk are the truth) and the disks, and returns a `CheckResult`:

- CRITICAL (2): a database has had no good backup for longer than its
  `max_age` (the strictest job's `max_age`, else `checks.max_age`), or never
  had one; a disk is above `disk.critical_percent`.
- WARNING (1): the newest dump of a database is anomalously small, or failed
  verification; the last run of a database failed (while still within
  max_age); a disk is above `disk.warn_percent`.
- OK (0): none of the above.

Which databases: `selection.expected_databases` (those covered by the
configured jobs; with no jobs, every database with a dump on disk).

`check(config, now, notify=True)` also notifies (smart policy, key ``check``)
and retries pending notifications; it never raises because of a channel. It raises
CheckUnknown (Nagios UNKNOWN, exit 3) when it cannot evaluate: an unreadable state
store or backup directory. The perfdata carry units and warn;crit thresholds.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from . import health, notify, trends
from .catalog import DumpEntry
from .config import Config
from .disk import VolumeUsage, volumes
from .errors import CheckUnknown
from .notify import policy
from .state import StateStore
from .units import format_duration
from .vocabulary import Severity

log = logging.getLogger("dumpdeck.check")

OK, WARNING, CRITICAL = Severity.OK.code, Severity.WARNING.code, Severity.CRITICAL.code
UNKNOWN = 3  # Nagios: the check cannot evaluate (a broken configuration, unreadable state or backups)
LABELS = {**{s.code: s.upper() for s in Severity}, UNKNOWN: "UNKNOWN"}


@dataclass(frozen=True)
class Perf:
    """One Nagios perfdata item: 'label'=value[UOM];[warn];[crit];[min];[max]."""

    label: str
    value: float
    uom: str = ""  # s | % | "" (a count)
    warn: float | None = None
    crit: float | None = None
    min: float | None = None
    max: float | None = None

    @property
    def text(self) -> str:
        def num(x: float | None) -> str:
            return "" if x is None else f"{x:g}"

        fields = [num(self.warn), num(self.crit), num(self.min), num(self.max)]
        while fields and fields[-1] == "":
            fields.pop()
        tail = (";" + ";".join(fields)) if fields else ""
        return f"{self.label}={self.value:g}{self.uom}{tail}"


def unknown_line(reason: str) -> str:
    """The status line when the check cannot evaluate (Nagios UNKNOWN, exit 3)."""
    return "DUMPDECK UNKNOWN - " + " ".join(reason.split())


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
    perfdata: dict[str, float] = field(default_factory=dict)  # label → value, for --json
    notified: notify.Dispatch | None = None
    perf: tuple[Perf, ...] = ()

    @property
    def label(self) -> str:
        return LABELS[self.code]


def evaluate(
    config: Config,
    now: float | None = None,
    *,
    store: StateStore | None = None,
    entries: Sequence[DumpEntry] | None = None,
    disk: Sequence[VolumeUsage] | None = None,
) -> CheckResult:
    now = time.time() if now is None else now
    if entries is None:
        entries = trends.catalog_entries(config)
    problems: list[Problem] = []

    runs: dict[tuple[str, str], health.LastRun] = {}
    if store is not None:
        try:
            runs = health.last_runs(store)
        except Exception as exc:
            log.warning("dead-man's check: cannot read runs: %s", exc)

    verdicts = health.assess(config, entries, now=now, runs=runs)
    ages = [a for a in (h.age(now) for h in verdicts) if a is not None]
    for h in verdicts:
        problems += [Problem(p.severity.code, p.id, p.text) for p in h.findings if p.severity != Severity.OK]

    if disk is None:
        try:
            disk = volumes(config)
        except Exception as exc:
            log.warning("dead-man's check: cannot read disk usage: %s", exc)
            disk = []
    disk_max = 0.0
    for d in disk:
        disk_max = max(disk_max, d.percent)
        if d.level == Severity.CRITICAL:
            problems.append(
                Problem(
                    CRITICAL,
                    f"disk:{d.path}",
                    f"disk {d.path}: {d.percent:.0f}% used (critical at {d.critical_percent:.0f}%)",
                )
            )
        elif d.level == Severity.WARNING:
            problems.append(
                Problem(
                    WARNING,
                    f"disk:{d.path}",
                    f"disk {d.path}: {d.percent:.0f}% used (warning at {d.warn_percent:.0f}%)",
                )
            )

    if config.copies and store is not None:
        try:
            from .catalog import Catalog
            from .copies import check_copies

            cat = Catalog(entries=sorted(entries, key=lambda e: e.when, reverse=True))
            when = datetime.fromtimestamp(now, UTC)
            for w in check_copies(config, store, cat, now=when):
                problems.append(Problem(WARNING, f"copy-{w.kind}:{w.destination}:{w.server}/{w.database}", w.message))
        except Exception as exc:
            log.warning("dead-man's check: cannot read the copies: %s", exc)

    code = max((p.level for p in problems), default=OK)
    oldest_age = max(ages, default=0.0)
    warn_pct = min((d.warn_percent for d in disk), default=config.disk.warn_percent)
    crit_pct = min((d.critical_percent for d in disk), default=config.disk.critical_percent)
    items = (
        Perf("databases", len(verdicts), min=0),
        # counts: any overdue database is CRITICAL, any anomalously small dump a WARNING (Nagios ranges: > 0 alerts)
        Perf("overdue", sum(1 for p in problems if p.id.startswith(("overdue:", "never:"))), crit=0, min=0),
        Perf("small", sum(1 for p in problems if p.id.startswith("small:")), warn=0, min=0),
        Perf(
            "oldest_age",
            int(oldest_age),
            "s",
            crit=int(min((h.max_age for h in verdicts), default=config.checks.max_age)),
            min=0,
        ),
        Perf("disk_max", round(disk_max, 1), "%", warn=warn_pct, crit=crit_pct, min=0, max=100),
    )
    perf = {p.label: p.value for p in items}
    perf_text = " ".join(p.text for p in items)
    if problems:
        worst = sorted(problems, key=lambda p: -p.level)
        summary = "; ".join(p.text for p in worst[:3])
        more = f" (+{len(worst) - 3} more)" if len(worst) > 3 else ""
        line = f"DUMPDECK {LABELS[code]} - {summary}{more} | {perf_text}"
    elif not verdicts:
        line = f"DUMPDECK OK - no databases to watch yet (no jobs and no dumps) | {perf_text}"
    else:
        line = (
            f"DUMPDECK OK - {len(verdicts)} database{'s' if len(verdicts) != 1 else ''} backed up, "
            f"oldest last success {format_duration(oldest_age)} ago"
            + (f", disk {disk_max:.0f}% used" if disk else "")
            + f" | {perf_text}"
        )
    line = " ".join(line.split())  # one line, whatever the names contain
    return CheckResult(code, line, tuple(problems), len(verdicts), perf, perf=items)


def check(config: Config, now: float | None = None, *, notify: bool = True) -> CheckResult:
    """evaluate() and, unless `notify` is False, notify per the smart policy (never raises for a channel)."""
    now = time.time() if now is None else now
    store = None
    state_db = Path(config.state_db)
    try:
        if state_db.exists() or notify:
            store = StateStore.open(state_db)
    except Exception as exc:
        if state_db.exists():  # it is there and cannot be read: the check cannot say what it should
            raise CheckUnknown(f"cannot read the state store {state_db}: {exc}") from None
        log.warning("dead-man's check: state store unavailable: %s", exc)
        store = None
    backup_dir = Path(config.backup.dir)
    if backup_dir.exists() and not os.access(backup_dir, os.R_OK | os.X_OK):
        raise CheckUnknown(f"cannot read the backup directory {backup_dir}: permission denied")
    try:
        result = evaluate(config, now, store=store)
        if notify and store is not None:
            result = _notify(config, store, result, now)
        return result
    finally:
        if store is not None:
            store.close()


def _notify(config: Config, store: StateStore, result: CheckResult, now: float) -> CheckResult:
    try:
        notify.retry_pending(config, store, now=now)
    except Exception:
        log.exception("dead-man's check: retrying pending notifications failed")
    status = {OK: "ok", WARNING: "warning", CRITICAL: "failed"}[result.code]
    detail = "\n".join(sorted(p.id for p in result.problems)) or None
    try:
        disk = volumes(config)
    except Exception:
        disk = []
    cfg_path = str(config.path) if config.path else None

    def compose(decision: policy.Decision) -> notify.Message:
        return notify.compose_check(
            result.line,
            [p.text for p in result.problems],
            decision.kind,
            decision.severity,
            disk=disk,
            failing_for=decision.failing_for,
            config_path=cfg_path,
        )

    try:
        d = notify.dispatch(
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
