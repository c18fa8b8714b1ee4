"""What happens after every run: trend flags, notifications, the status page.

The runner calls `after_run(config, store, run)` once a run has its final
status. In order, each step on its own (one failing does not stop the next):

1. trend flags (small / large / slow) written into the manifests of the run's dumps;
2. failed notifications from earlier events are retried;
3. the run is notified per the job's policy (always | failures | smart);
4. failed verifications of the run's dumps are notified;
5. disk levels (warning / critical) are notified;
6. the status page is regenerated at `report.file` (default `<state_dir>/report.html`);
7. the push heartbeat is pinged (`notify.heartbeat`: URL on success, URL/fail on failure);
8. the Prometheus textfile is rewritten (`metrics.textfile`).

It never raises: a backup that succeeded stays succeeded whatever SMTP, a
webhook or the report writer do. Problems are logged, recorded in the state
store (events, and the notification log for retries) and returned.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import manifest as manifest_mod
from . import metrics, notify, report, trends
from .catalog import DumpEntry
from .config import Config
from .disk import VolumeUsage, volumes
from .notify import heartbeat, policy
from .notify.heartbeat import Ping
from .outcome import Outcome
from .selection import ADHOC
from .state import DbProgress, Run, StateStore
from .vocabulary import DbStatus, RunStatus, Severity

log = logging.getLogger("dumpdeck.postrun")

# Run statuses that say nothing about the job's health: no notification, no state change.
NEUTRAL_STATUSES = frozenset({RunStatus.SKIPPED, RunStatus.CANCELLED, RunStatus.QUEUED, RunStatus.RUNNING})


@dataclass
class PostRunResult:
    run_id: int | None
    dispatches: list[notify.Dispatch] = field(default_factory=list)
    retried: list[notify.Delivery] = field(default_factory=list)
    flags: dict[str, list[str]] = field(default_factory=dict)  # database -> [flag text]
    report: Path | None = None
    heartbeat: Ping | None = None  # when one was sent
    metrics: Path | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def deliveries(self) -> list[notify.Delivery]:
        return [d for x in self.dispatches for d in x.deliveries]


def after_run(config: Config, store: StateStore, run: Run, *, now: float | None = None) -> PostRunResult:
    """Everything after a run. Never raises (see the module docstring)."""
    result = PostRunResult(run.id)
    try:
        _after_run(config, store, run, now if now is not None else time.time(), result)
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        _fail(store, result, "post-run", exc)
    return result


def _fail(store: StateStore, result: PostRunResult, step: str, exc: BaseException) -> None:
    text = f"{step} failed: {type(exc).__name__}: {exc}"
    log.exception("after run %s: %s", result.run_id, text)
    result.errors.append(text)
    try:
        store.add_event(result.run_id, "warning", "postrun", text)
    except Exception:  # the store itself may be the problem
        log.exception("could not record the post-run failure in the state store")


def _after_run(config: Config, store: StateStore, run: Run, now: float, result: PostRunResult) -> None:
    # fresh copy: the runner may hand us the record it had before finishing
    try:
        fresh = store.get_run(run.id)
        if fresh is not None:
            run = fresh
    except Exception as exc:
        _fail(store, result, "reading the run", exc)
    progress: list[DbProgress] = []
    try:
        progress = store.progress(run.id)
    except Exception as exc:
        _fail(store, result, "reading the run's progress", exc)

    entries: list[DumpEntry] = []
    try:
        entries = trends.catalog_entries(config)
    except Exception as exc:
        _fail(store, result, "scanning the backup directory", exc)

    manifests: dict[str, manifest_mod.Manifest] = {}
    for p in progress:
        if p.status == DbStatus.SUCCEEDED and p.file and not p.file.endswith(".partial"):
            try:
                manifests[p.database] = manifest_mod.load(Path(p.file))
            except Exception as exc:
                _fail(store, result, f"reading the manifest of {p.file}", exc)

    # 1. trend flags into the manifests
    for p in progress:
        m = manifests.get(p.database)
        if m is None or p.file is None:
            continue
        try:
            flags = flag_dump(config, Path(p.file), entries)
            result.flags[p.database] = [f.text for f in flags]
            if flags:
                manifests[p.database] = manifest_mod.load(Path(p.file))
        except Exception as exc:
            _fail(store, result, f"trend flags for {p.database}", exc)

    disk: list[VolumeUsage] = []
    try:
        disk = volumes(config)
    except Exception as exc:
        _fail(store, result, "reading disk usage", exc)

    # 2. retry what could not be delivered before
    try:
        result.retried = notify.retry_pending(config, store, now=now)
    except Exception as exc:
        _fail(store, result, "retrying pending notifications", exc)

    # 3. the run itself
    if run.status not in NEUTRAL_STATUSES:
        try:
            summary = summarize(config, run, progress, manifests, result.flags)
            status = "ok" if summary.ok else "failed"
            flagged = [d for d in summary.databases if d.flags or d.verification_failed]
            if status == "ok" and flagged:
                status = "warning"
            # one line per problem, so a new one while warning is news (see policy.decide)
            detail = (
                "\n".join(
                    [f"{f.split(':')[0]}:{d.database}" for d in flagged for f in d.flags]
                    + [f"verify:{d.database}" for d in flagged if d.verification_failed]
                )
                or None
            )
            cfg_path = str(config.path) if config.path else None

            def compose(decision: policy.Decision, summary: notify.RunSummary = summary) -> notify.Message:
                return notify.compose_run(
                    summary,
                    decision.kind,
                    decision.severity,
                    disk=disk,
                    failing_for=decision.failing_for,
                    streak=decision.streak,
                    config_path=cfg_path,
                )

            key = f"job:{run.job}" if run.job != ADHOC else f"job:{ADHOC}@{run.server}"
            result.dispatches.append(
                notify.dispatch(
                    config,
                    store,
                    key,
                    status,
                    compose,
                    now=now,
                    policy=policy.effective_policy(config, run.job),
                    detail=detail,
                )
            )
        except Exception as exc:
            _fail(store, result, "notifying the run", exc)
    else:
        log.info("run %s is %s: no notification", run.id, run.status)

    # 4. failed verifications of this run's dumps
    for p in progress:
        m = manifests.get(p.database)
        if m is None or not m.verifications or p.file is None:
            continue
        try:
            result.dispatches.append(
                notify_verification(config, store, run.server, p.database, p.file, m.verifications[-1], now=now)
            )
        except Exception as exc:
            _fail(store, result, f"notifying the verification of {p.database}", exc)

    # 5. disk levels
    for line in disk:
        try:
            result.dispatches.append(notify_disk(config, store, line, now=now))
        except Exception as exc:
            _fail(store, result, f"notifying disk {line.path}", exc)

    # 6. the status page
    try:
        result.report = report.write_report(config, store=store)  # rescan: the flags just changed manifests
    except Exception as exc:
        _fail(store, result, "writing the status page", exc)

    # 7. the push heartbeat (URL on success, URL/fail on failure)
    try:
        result.heartbeat = heartbeat.for_run(config, run)
        if result.heartbeat is not None and not result.heartbeat.ok:
            store.add_event(run.id, "warning", "heartbeat", result.heartbeat.error or "heartbeat ping failed")
    except Exception as exc:
        _fail(store, result, "pinging the heartbeat", exc)

    # 8. the Prometheus textfile
    try:
        result.metrics = metrics.write_textfile(config, store=store, disk=disk)
    except Exception as exc:
        _fail(store, result, "writing the metrics textfile", exc)

    for x in result.dispatches:
        for d in x.deliveries:
            if not d.ok and x.message is not None:
                try:
                    store.add_event(
                        run.id,
                        "warning",
                        "notify",
                        f"notification {x.message.subject!r} on {d.channel} failed: {d.error}; "
                        f"it will be retried with the next event",
                    )
                except Exception:
                    log.exception("could not record a failed notification event")


# --------------------------------------------------------------------------- pieces (also used by check)


def flag_dump(config: Config, dump_path: Path, entries: list[DumpEntry] | None = None) -> list[trends.TrendFlag]:
    """Compute trend flags of one dump against its database's history; write their names into
    its manifest (`flags`: small / large / slow). Returns the TrendFlags."""
    m = manifest_mod.load(dump_path)
    if entries is None:
        entries = trends.catalog_entries(config)
    server = (m.server or {}).get("name") or dump_path.parent.parent.name
    same = trends.history_for(entries, server, m.database)
    mine = [e for e in same if Path(e.path) == Path(dump_path)]
    when = mine[0].when if mine else datetime.fromisoformat(m.started.replace("Z", "+00:00"))
    history = [e for e in same if Path(e.path) != Path(dump_path) and e.when <= when]
    flags = trends.assess(
        trends.Sample(m.bytes_raw, m.duration, when.timestamp(), True),
        [trends.sample_of(e) for e in history],
        config.trends,
    )
    names = [f.name for f in flags]
    if names != list(m.flags):
        with manifest_mod.locked(dump_path):
            fresh = manifest_mod.load(dump_path)
            fresh.flags = names
            manifest_mod.save(fresh, dump_path)
    return flags


def summarize(
    config: Config,
    run: Run,
    progress: list[DbProgress],
    manifests: dict[str, manifest_mod.Manifest],
    flag_texts: dict[str, list[str]],
) -> notify.RunSummary:
    dbs = []
    for p in progress:
        m = manifests.get(p.database)
        duration = None
        if m is not None:
            duration = m.duration
        elif p.started is not None and p.updated is not None:
            duration = (p.updated - p.started).total_seconds()
        ver_failed = None
        if m is not None and m.verifications and m.verifications[-1].failed:
            v = m.verifications[-1]
            bad = [c for c in v.checks if manifest_mod.check_outcome(c) is Outcome.FAILED]
            ver_failed = f"level {v.level}: " + (
                "; ".join(f"{c.get('name')}: {c.get('evidence')}" for c in bad) or "failed"
            )
        status = p.status
        dbs.append(
            notify.DbOutcome(
                server=run.server,
                database=p.database,
                status=status,
                error=p.error,
                file=p.file if p.file and not p.file.endswith(".partial") else None,
                bytes_raw=(m.bytes_raw if m else (p.bytes_raw or None)),
                bytes_stored=(m.bytes_stored if m else (p.bytes_stored or None)),
                duration=duration,
                flags=tuple(flag_texts.get(p.database, ())),
                verified_level=(m.verified_level if m and m.verifications else p.verified_level),
                verification_failed=ver_failed,
            )
        )
    return notify.RunSummary(
        run_id=run.id,
        job=None if run.job == ADHOC else run.job,
        trigger=run.trigger,
        server=run.server,
        status=run.status,
        reason=run.reason,
        started=run.started,
        finished=run.finished,
        databases=tuple(dbs),
        log_path=run.log_path or notify.log_path_for(config, run.id),
    )


def notify_verification(
    config: Config,
    store: StateStore,
    server: str,
    database: str,
    file: str,
    verification: manifest_mod.Verification,
    *,
    now: float | None = None,
) -> notify.Dispatch:
    """Notify a failed verification (and the next passing one after it). Quiet while they pass.
    One that could not check (not checked) is a warning, never a failure."""
    now = time.time() if now is None else now
    bad = [c for c in verification.checks if manifest_mod.check_outcome(c) is not Outcome.PASSED]
    reason = (
        "; ".join(f"{c.get('name')}: {manifest_mod.check_outcome(c).label}: {c.get('evidence')}" for c in bad)
        or verification.outcome.label
    )

    def compose(decision: policy.Decision) -> notify.Message:
        return notify.compose_verification(
            server,
            database,
            str(file),
            verification.level,
            reason,
            decision.kind,
            decision.severity,
            at=verification.at,
        )

    return notify.dispatch(
        config,
        store,
        f"verify:{server}/{database}",
        {Outcome.PASSED: "ok", Outcome.FAILED: "failed", Outcome.NOT_CHECKED: "warning"}[verification.outcome],
        compose,
        now=now,
        first_success=False,
        policy="smart",
    )


def notify_disk(config: Config, store: StateStore, line: VolumeUsage, *, now: float | None = None) -> notify.Dispatch:
    now = time.time() if now is None else now
    status = {Severity.OK: "ok", Severity.WARNING: "warning", Severity.CRITICAL: "failed"}[line.level]

    def compose(decision: policy.Decision) -> notify.Message:
        return notify.compose_disk(line, decision.kind, decision.severity)

    return notify.dispatch(
        config,
        store,
        f"disk:{line.path}",
        status,
        compose,
        now=now,
        first_success=False,
        bad_severity="CRITICAL",
        policy="smart",
    )


def now_utc() -> datetime:
    return datetime.now(UTC)
