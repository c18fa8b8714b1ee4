"""The runner: the process that executes one run, detached from whoever started it.

    python -m dumpdeck.backend.runner --config PATH --run ID

flock(job) → preflight → dumps (up to `parallel` at once, each with its
timeout = min(backup.timeout, what is left of max_runtime) and the stall
timeout) → retries with a growing delay (retry_delay × 2^attempt) for failed
or timed-out dumps (never for cancelled ones, nor once max_runtime is spent)
→ verification at the job's level → retention for the job's databases (only
when the run succeeded) → final status with a reason → post-run hooks
(`backend.postrun.after_run`).

`run_job_foreground` is what cron calls: the same run in the calling process,
under the job's flock; a second invocation while the first holds the lock is
recorded as `skipped` and raises LockedError (exit code 3).

The run row gets a heartbeat every second and each database's progress row
is updated at least once a second while its dump runs. SIGTERM/SIGINT cancel
the run (dumps killed, partials removed, status `cancelled`); SIGHUP is
ignored. A runner killed with SIGKILL is found by `StateStore.reap_lost`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from . import copies, credentials, encryption, postrun, retention, swap
from .catalog import scan
from .config import Config, JobConfig, ServerConfig, load_config, with_identity
from .dump import DumpProgress, DumpResult, dump_database
from .errors import CancelledError, ConfigError, DumpdeckError, LockedError, PrivilegeError, StallError, TimeoutError_
from .jobs import JobLock
from .logs import run_log, setup_logging
from .outcome import Outcome
from .preflight import PreflightReport, preflight
from .private import private_dir, restrict_umask
from .restore import restore_test
from .selection import ADHOC, RESTORE, job_for_run, lock_key, resolve_databases
from .state import DbProgress, Run, StateStore
from .units import format_bytes, format_duration
from .verify import CheckResult, VerifyReport, verify_file, verify_instream
from .vocabulary import DbStatus, EventLevel, RunStatus, Trigger

EVENT_LEVEL: dict[Outcome, EventLevel] = {
    Outcome.PASSED: "info",
    Outcome.FAILED: "error",
    Outcome.NOT_CHECKED: "warning",
}  # the event level of a verification check or run

log = logging.getLogger("dumpdeck.runner")

PROGRESS_EVERY = 0.5  # seconds between progress writes per database (heartbeat ≤ 1 s)
HEARTBEAT_EVERY = 1.0  # seconds between run heartbeats
LOCK_POLL = 0.5


@dataclass
class DbOutcome:
    database: str
    status: DbStatus  # succeeded | failed | timed-out | cancelled
    error: str | None = None
    path: Path | None = None
    attempts: int = 0


@dataclass
class _Mark:
    """When progress was last written for one dump attempt, and the file it writes."""

    last: float = 0.0
    file: str | None = None


def _now() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- signals


def install_signal_handlers(cancel: threading.Event) -> None:
    """SIGTERM/SIGINT set the cancel event; SIGHUP is ignored (the SSH session may go away)."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not cancel.is_set():
            log.warning("received %s: cancelling the run", signal.Signals(signum).name)
        cancel.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


# --------------------------------------------------------------------------- heartbeat


class _Heartbeat(threading.Thread):
    def __init__(self, store: StateStore, run_id: int):
        super().__init__(name=f"heartbeat-{run_id}", daemon=True)
        self.store = store
        self.run_id = run_id
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(HEARTBEAT_EVERY):
            try:
                self.store.heartbeat(self.run_id)
            except Exception as exc:  # the state db briefly unavailable must not kill the run
                log.warning("heartbeat failed: %s", exc)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=5)


# --------------------------------------------------------------------------- execute


def execute(
    config: Config,
    store: StateStore,
    run_id: int,
    *,
    lock: JobLock | None = None,
    install_signals: bool = False,
    cancel: threading.Event | None = None,
) -> Run:
    """Execute a queued run to its final status; returns the final Run."""
    run = store.get_run(run_id)
    if run is None:
        raise DumpdeckError(f"no run {run_id} in {store.path}")
    if run.status != RunStatus.QUEUED:
        log.warning("run %s is %s, not queued: nothing to do", run_id, run.status)
        return run
    cancel = cancel or threading.Event()
    with contextlib.suppress(DumpdeckError, OSError):
        for path in credentials.remove_leftovers():  # option files of runs that were SIGKILLed
            log.warning("removed a credentials file left by a dead process: %s", path)
    with contextlib.suppress(DumpdeckError, OSError):
        swap.recover(config, store)  # a --replace swap a killed restore left half done: finished or rolled back
    previous = None
    if install_signals and threading.current_thread() is threading.main_thread():
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
        install_signal_handlers(cancel)
    try:
        return _execute(config, store, run, cancel, lock)
    finally:
        if previous is not None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def _execute(config: Config, store: StateStore, run: Run, cancel: threading.Event, lock: JobLock | None = None) -> Run:
    run_id = run.id
    job: JobConfig | None = None
    if run.job != RESTORE:
        try:
            job = job_for_run(config, run)
        except DumpdeckError as exc:
            return store.finish_run(run_id, RunStatus.FAILED, str(exc))

    own_lock: JobLock | None = None
    if lock is None:
        key = lock_key(run.job, run.server)
        own_lock = JobLock.for_key(config.lock_dir, key)
        if not own_lock.try_acquire(run_id):
            message = own_lock.describe_holder(run.job)
            if run.job not in (ADHOC, RESTORE):
                log.warning("%s", message)
                with store._write() as conn:
                    conn.execute("UPDATE progress SET status='skipped' WHERE run_id=?", (run_id,))
                return store.finish_run(run_id, RunStatus.SKIPPED, message)
            store.add_event(
                run_id, "info", "waiting", f"waiting for the running {run.job} run on {run.server}", own_lock.holder()
            )
            while not own_lock.try_acquire(run_id):
                if cancel.wait(LOCK_POLL):
                    return store.finish_run(run_id, RunStatus.CANCELLED, "cancelled while waiting in the queue")
        lock = own_lock
    else:
        private_dir(lock.path.parent, ours=True)
        if lock.fd is not None:
            info = lock.holder()
            info["run"] = run_id
            os.ftruncate(lock.fd, 0)
            os.pwrite(lock.fd, json.dumps(info).encode(), 0)

    now = _now()
    store.update_run(
        run_id, status=RunStatus.RUNNING, pid=os.getpid(), host=socket.gethostname(), started=now, heartbeat=now
    )
    store.add_event(
        run_id,
        "info",
        "start",
        f"run {run_id} ({run.job}, {run.trigger}) started: {len(run.databases)} database(s) on {run.server}",
        {"pid": os.getpid(), "databases": list(run.databases)},
    )
    log.info("run %s (%s) started by %s: %s", run_id, run.job, run.trigger, ", ".join(run.databases))
    beat = _Heartbeat(store, run_id)
    beat.start()
    try:
        try:
            if job is None:
                from .restore_real import run_restore

                status, reason = run_restore(config, store, run, cancel)
            else:
                status, reason, _outcomes = _run_body(config, store, run, job, cancel)
        except DumpdeckError as exc:  # a problem named by the engine (a password_file gone meanwhile, …)
            status, reason, _outcomes = RunStatus.FAILED, str(exc), []
        except Exception as exc:  # a bug must still end the run with a status
            log.exception("run %s crashed", run_id)
            status, reason = RunStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        if cancel.is_set() and status not in (RunStatus.CANCELLED,):
            status, reason = RunStatus.CANCELLED, reason or "cancelled"
        final = store.finish_run(run_id, status, reason)
        level: EventLevel = (
            "info"
            if final.status == RunStatus.SUCCEEDED
            else "warning"
            if final.status == RunStatus.CANCELLED
            else "error"
        )
        store.add_event(
            run_id, level, "finish", f"run {run_id} {final.status}: {final.reason}", {"status": final.status}
        )
        getattr(log, level)("run %s %s: %s", run_id, final.status, final.reason)
        _post_run(config, store, final)
        return store.get_run(run_id) or final
    finally:
        beat.stop()
        if own_lock is not None:
            own_lock.release()


def _run_body(
    config: Config, store: StateStore, run: Run, job: JobConfig, cancel: threading.Event
) -> tuple[RunStatus, str, list[DbOutcome]]:
    t0 = time.monotonic()
    deadline = t0 + job.max_runtime
    server = config.server(run.server)
    databases = list(run.databases)
    if not databases:
        return RunStatus.FAILED, f"job {job.name}: no databases to back up", []

    def on_retry(attempt: int, wait: float, why: str) -> None:
        store.add_event(
            run.id,
            "warning",
            "preflight-retry",
            f"cannot connect yet (attempt {attempt}); retrying in {wait:g} s: {why}",
            {"attempt": attempt, "delay": wait},
        )

    def sleep(seconds: float) -> None:  # the wait between connection attempts ends with a cancel
        if cancel.wait(seconds):
            raise CancelledError("cancelled while waiting to connect")

    try:
        report = preflight(config, server, databases, store=store, on_retry=on_retry, sleep=sleep)
    except CancelledError as exc:
        return RunStatus.CANCELLED, str(exc), []
    for w in report.warnings:
        store.add_event(run.id, "warning", "preflight", w)
    if report.fatal:
        reason = "preflight failed: " + "; ".join(report.fatal)
        for db in databases:
            store.set_progress(
                DbProgress(
                    run.id,
                    db,
                    DbStatus.FAILED,
                    error=reason,
                    updated=_now(),
                    estimate=report.raw_estimates.get(db),
                    inventory_bytes=report.inventory_bytes.get(db),
                )
            )
        store.add_event(
            run.id,
            "error",
            "preflight",
            reason,
            {"free_bytes": report.free_bytes, "needed_bytes": report.needed_bytes, "estimates": report.estimates},
        )
        return RunStatus.FAILED, reason, []
    store.add_event(
        run.id,
        "info",
        "preflight",
        f"preflight ok: need about {format_bytes(report.needed_bytes)}, free {format_bytes(report.free_bytes)}",
        {
            "free_bytes": report.free_bytes,
            "needed_bytes": report.needed_bytes,
            "estimates": report.estimates,
            "ratio_source": report.ratio_source,
        },
    )

    outcomes: dict[str, DbOutcome] = {}
    todo = []
    for db in databases:
        if db in report.db_problems:
            outcomes[db] = DbOutcome(db, DbStatus.FAILED, report.db_problems[db])
            store.set_progress(DbProgress(run.id, db, DbStatus.FAILED, error=report.db_problems[db], updated=_now()))
        else:
            todo.append(db)

    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, job.parallel), thread_name_prefix=f"dump-{run.id}"
    ) as pool:
        futures = {
            pool.submit(_dump_one, config, store, run, job, server, db, report, deadline, cancel): db for db in todo
        }
        pending = set(futures)
        while pending:
            # Short waits keep the main thread responsive to signals.
            _done, pending = concurrent.futures.wait(pending, timeout=0.5)
        for fut, db in futures.items():
            try:
                outcomes[db] = fut.result()
            except Exception as exc:
                log.exception("dump worker for %s crashed", db)
                outcomes[db] = DbOutcome(db, DbStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}")

    ordered = [outcomes[db] for db in databases]
    ok = [o for o in ordered if o.status == DbStatus.SUCCEEDED]
    bad = [o for o in ordered if o.status != DbStatus.SUCCEEDED]
    if cancel.is_set() or any(o.status == DbStatus.CANCELLED for o in bad):
        status = RunStatus.CANCELLED
    elif not bad:
        status = RunStatus.SUCCEEDED
    elif all(o.status == DbStatus.TIMED_OUT for o in bad):
        status = RunStatus.TIMED_OUT
    else:
        status = RunStatus.FAILED
    elapsed = format_duration(time.monotonic() - t0)
    if status == RunStatus.SUCCEEDED:
        reason = f"{len(ok)} of {len(ordered)} database(s) dumped in {elapsed}"
    else:
        reason = f"{len(ok)} of {len(ordered)} database(s) dumped in {elapsed}; " + "; ".join(
            f"{o.database}: {o.status}: {o.error}" for o in bad
        )

    if config.copies and not cancel.is_set():
        _copies(config, store, run, cancel, deadline)
    if status == RunStatus.SUCCEEDED:
        _retention(config, store, run, job)
        for name in config.copies:
            _remote_retention(config, store, run, name)
    else:
        store.add_event(run.id, "info", "retention", f"retention skipped: the run {status}")
    return status, reason, ordered


# --------------------------------------------------------------------------- one database


def _dump_one(
    config: Config,
    store: StateStore,
    run: Run,
    job: JobConfig,
    server: ServerConfig,
    db: str,
    report: PreflightReport,
    deadline: float,
    cancel: threading.Event,
) -> DbOutcome:
    attempts = job.retries + 1
    stall = job.stall_timeout or config.backup.stall_timeout
    raw_estimate = report.raw_estimates.get(db)
    inventory_bytes = report.inventory_bytes.get(db)
    outcome = DbOutcome(db, DbStatus.FAILED, "not started")
    base = DbProgress(run.id, db, DbStatus.PENDING, estimate=raw_estimate, inventory_bytes=inventory_bytes)
    mark = _Mark()
    for attempt in range(attempts):
        outcome.attempts = attempt + 1
        if cancel.is_set():
            outcome.status, outcome.error = DbStatus.CANCELLED, "cancelled before the dump started"
            break
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            outcome.status = DbStatus.TIMED_OUT
            outcome.error = f"max_runtime of {format_duration(job.max_runtime)} for job {job.name} is spent"
            break
        timeout = min(config.backup.timeout, remaining)
        by_runtime = remaining < config.backup.timeout
        started = _now()
        mark = _Mark()
        base = DbProgress(
            run.id,
            db,
            DbStatus.RUNNING,
            started=started,
            updated=started,
            estimate=raw_estimate,
            timeout=timeout,
            attempt=attempt,
            inventory_bytes=inventory_bytes,
        )
        store.set_progress(base)
        store.add_event(
            run.id,
            "info",
            "dump-start",
            f"{db}: dump started (attempt {attempt + 1} of {attempts}, timeout "
            f"{format_duration(timeout)}, stall timeout {format_duration(stall)})",
            {"database": db, "attempt": attempt, "at": time.time(), "timeout": timeout},
        )

        def on_progress(p: DumpProgress, base: DbProgress = base, mark: _Mark = mark) -> None:
            now = time.monotonic()
            if p.phase in ("failed", "done"):
                return
            new_file = p.partial is not None and p.partial != mark.file
            if not new_file and now - mark.last < PROGRESS_EVERY and p.phase != "finishing":
                return
            mark.last = now
            mark.file = p.partial or mark.file
            try:
                store.set_progress(
                    replace(
                        base,
                        bytes_raw=p.bytes_raw,
                        bytes_stored=p.bytes_stored,
                        rate=p.rate,
                        current_table=p.current_table,
                        updated=_now(),
                        file=mark.file,
                        estimate=p.estimate or base.estimate,
                    )
                )
            except Exception as exc:
                log.warning("progress write failed: %s", exc)

        try:
            result = dump_database(
                server,
                config.backup,
                db,
                on_progress=on_progress,
                cancel=cancel,
                timeout=timeout,
                stall_timeout=stall,
                estimate=raw_estimate,
                run_id=run.id,
                tables_include=job.table_patterns(db)[0],
                tables_exclude=job.table_patterns(db)[1],
                recipients=config.recipients(job),
                scan_content=job.verify >= 3,
            )
        except CancelledError as exc:
            outcome.status, outcome.error = DbStatus.CANCELLED, str(exc)
            break
        except TimeoutError_ as exc:
            # A stall is retried per `retries` whatever max_runtime is; only the wall clock cut short
            # by the job's budget (by_runtime) means the budget ran out.
            spent = by_runtime and not isinstance(exc, StallError)
            outcome.status = DbStatus.TIMED_OUT
            outcome.error = str(exc) + (
                f" (job {job.name} max_runtime of {format_duration(job.max_runtime)} reached)" if spent else ""
            )
            if spent:
                _final_progress(store, base, outcome)
                store.add_event(
                    run.id,
                    "error",
                    "dump-failed",
                    f"{db}: {outcome.error}",
                    {"database": db, "attempt": attempt, "status": outcome.status, "at": time.time()},
                )
                break
        except PrivilegeError as exc:
            outcome.status, outcome.error = DbStatus.FAILED, str(exc)
            _final_progress(store, base, outcome)
            store.add_event(
                run.id,
                "error",
                "dump-failed",
                f"{db}: {exc}",
                {"database": db, "attempt": attempt, "status": "failed", "at": time.time()},
            )
            break
        except DumpdeckError as exc:
            outcome.status, outcome.error = DbStatus.FAILED, str(exc)
        except Exception as exc:
            log.exception("dump of %s crashed", db)
            outcome.status, outcome.error = DbStatus.FAILED, f"internal error: {type(exc).__name__}: {exc}"
        else:
            outcome.status, outcome.error, outcome.path = DbStatus.SUCCEEDED, None, result.path
            m = result.manifest
            for w in result.warnings:
                store.add_event(run.id, "warning", "dump-warning", f"{db}: {w}", {"database": db})
            store.add_event(
                run.id,
                "info",
                "dump-done",
                f"{db}: {format_bytes(m.bytes_raw)} SQL → {format_bytes(m.bytes_stored)} "
                f"in {format_duration(m.duration)} ({result.path.name})",
                {
                    "database": db,
                    "file": str(result.path),
                    "bytes_raw": m.bytes_raw,
                    "bytes_stored": m.bytes_stored,
                    "duration": m.duration,
                    "sha256": m.sha256,
                },
            )
            if job.verify > 0:
                # the dump is written: its bytes are final and its clock for the dump stops counting
                store.set_progress(
                    replace(
                        base,
                        status=DbStatus.VERIFYING,
                        bytes_raw=m.bytes_raw,
                        bytes_stored=m.bytes_stored,
                        rate=0.0,
                        current_table=None,
                        updated=_now(),
                        file=str(result.path),
                    )
                )
            level, verr = _verify(config, store, run, db, result.path, job.verify, cancel, result)
            if verr:
                outcome.status, outcome.error = DbStatus.FAILED, verr
            store.set_progress(
                replace(
                    base,
                    status=outcome.status,
                    bytes_raw=m.bytes_raw,
                    bytes_stored=m.bytes_stored,
                    rate=m.bytes_raw / m.duration if m.duration else 0,
                    current_table=None,
                    updated=_now(),
                    file=str(result.path),
                    error=outcome.error,
                    verified_level=level,
                )
            )
            return outcome
        # failed or timed-out: maybe retry
        _final_progress(store, base, outcome, retrying=attempt + 1 < attempts)
        store.add_event(
            run.id,
            "error" if attempt + 1 >= attempts else "warning",
            "dump-failed",
            f"{db}: {outcome.status}: {outcome.error}",
            {"database": db, "attempt": attempt, "status": outcome.status, "at": time.time()},
        )
        if attempt + 1 >= attempts:
            break
        delay = job.retry_delay * (2**attempt)
        if time.monotonic() + delay >= deadline:
            outcome.error = (
                f"{outcome.error}; no retry: max_runtime of {format_duration(job.max_runtime)} "
                f"would be spent during the {format_duration(delay)} delay"
            )
            _final_progress(store, base, outcome)
            break
        store.add_event(
            run.id,
            "warning",
            "retry",
            f"{db}: retry {attempt + 2} of {attempts} in {format_duration(delay)}",
            {"database": db, "attempt": attempt + 1, "delay": delay, "at": time.time()},
        )
        if cancel.wait(delay):
            outcome.status, outcome.error = DbStatus.CANCELLED, "cancelled while waiting to retry"
            break
    _final_progress(store, base, outcome)
    return outcome


def _final_progress(store: StateStore, base: DbProgress, outcome: DbOutcome, retrying: bool = False) -> None:
    current = {p.database: p for p in store.progress(base.run_id)}.get(base.database, base)
    store.set_progress(
        replace(
            current,
            status=DbStatus.RETRYING if retrying else outcome.status,
            error=outcome.error,
            updated=_now(),
            file=None,
            rate=0.0,
        )
    )


# --------------------------------------------------------------------------- verification


def _verify(
    config: Config,
    store: StateStore,
    run: Run,
    db: str,
    path: Path,
    level: int,
    cancel: threading.Event,
    dump: DumpResult | None = None,
) -> tuple[int | None, str | None]:
    """Verify a fresh dump at `level` (1–3 verify_file, 4 restore-test). Returns (level proven, error or None).
    An encrypted dump's L2/L3 are the in-stream checks made before encryption (no identity needed here);
    its restore-test decrypts with encryption.identity_file, and is not checked without one.

    Only a failed verification is an error (the dump is bad). One that could not check (the restore-test
    target is down, cancelled, …) is a warning event: the dump keeps the level it proved."""
    if level <= 0 or cancel.is_set():
        return None, None

    def on_check(check: CheckResult) -> None:
        store.add_event(
            run.id,
            EVENT_LEVEL[check.outcome],
            "verify-check",
            f"{db}: L{check.level} {check.name}: {check.outcome.label}: {check.evidence}",
            {"database": db, "level": check.level, "outcome": check.outcome.value},
        )

    what = f"restore-test on {config.restore_test.target}" if level >= 4 else f"verification level {level}"
    store.add_event(run.id, "info", "verify-start", f"{db}: {what}", {"database": db, "level": level})
    try:
        result: VerifyReport | None = None
        if dump is not None and dump.plain is not None and level >= 2:
            stats = dump.scan.finish() if dump.scan is not None and level >= 3 else None
            result = verify_instream(path, min(level, 3), dump.plain, stats, on_check=on_check)
            if level >= 4 and not result.failed:
                result = None  # proven in-stream up to L3: the restore-test decrypts and loads it
        if result is None and level >= 4:
            result = restore_test(path, config, config.restore_test.target, on_check=on_check, cancel=cancel)
        elif result is None:
            result = verify_file(path, level, on_check=on_check, cancel=cancel)
    except DumpdeckError as exc:
        store.add_event(
            run.id,
            "warning",
            "verify-not-checked",
            f"{db}: {what} could not run: {exc}; the dump is not marked bad",
            {"database": db, "level": level, "outcome": Outcome.NOT_CHECKED.value},
        )
        return None, None
    data = {"database": db, "level": level, "reached": result.level_reached, "outcome": result.outcome.value}
    if result.outcome is Outcome.PASSED:
        store.add_event(run.id, "info", "verify-passed", f"{db}: {what} passed", data)
        return result.level_reached, None
    if result.outcome is Outcome.NOT_CHECKED:
        store.add_event(run.id, "warning", "verify-not-checked", f"{db}: {what}: {result.summary}", data)
        return result.level_reached or None, None
    store.add_event(run.id, "error", "verify-failed", f"{db}: {what} failed: {result.summary}", data)
    return 0, f"verification level {level} failed: {result.summary}"


# --------------------------------------------------------------------------- retention, hooks


def _copies(config: Config, store: StateStore, run: Run, cancel: threading.Event, deadline: float) -> None:
    """Off-host copies of this run's databases (and earlier copies of them still due), every
    destination at once, within the job's max_runtime (`deadline`) and stopped by a cancel mid-upload.
    A destination that fails is an event naming it and why; it never fails the run (the local dump is
    good), and later runs try again."""
    try:
        results = copies.run_copies(
            config, store, scan(config.backup.dir), run_id=run.id, server=run.server, databases=run.databases,
            cancel=cancel, deadline=deadline,
        )  # fmt: skip
    except Exception as exc:
        log.exception("copies failed")
        store.add_event(run.id, "error", "copy-failed", f"off-host copies failed: {exc}")
        return
    for name, results_of in results.items():
        ok = sum(1 for r in results_of if r.passed)
        if results_of:
            store.add_event(
                run.id,
                "info" if ok == len(results_of) else "error",
                "copies",
                f"copies to {name}: {ok} of {len(results_of)} made and verified",
                {"destination": name, "verified": ok, "tried": len(results_of)},
            )


def _remote_retention(config: Config, store: StateStore, run: Run, name: str) -> None:
    dest = config.copies[name]
    if dest.retention is None or dest.retention.empty:
        return
    try:
        rp = copies.apply_remote(config, store, copies.plan_remote(config, store, name), dry_run=False)
    except Exception as exc:
        log.exception("retention at %s failed", name)
        store.add_event(run.id, "error", "retention", f"retention at {name} failed: {exc}", {"destination": name})
        return
    for db in rp.held:
        store.add_event(
            run.id, "error", "retention-held",
            f"retention at {name}: nothing of {db} deleted: no copy of it passed the floor re-check",
            {"destination": name, "database": db},
        )  # fmt: skip
    for err in rp.errors:
        store.add_event(run.id, "error", "retention", f"retention at {name}: {err}", {"destination": name})
    store.add_event(
        run.id, "info", "retention",
        f"retention at {name}: kept {sum(1 for d in rp.decisions if d.keep)}, deleted {len(rp.deleted)}",
        {"destination": name, "deleted": rp.deleted},
    )  # fmt: skip


def _retention(config: Config, store: StateStore, run: Run, job: JobConfig) -> None:
    try:
        catalog = scan(config.backup.dir)
        decisions = retention.plan_for_config(config, catalog, job=job, pinned=copies.unshipped(config, store, catalog))
        decisions = [d for d in decisions if d.entry.server == run.server and d.entry.database in run.databases]
        rechecks = retention.recheck_floors(decisions)
        for rc in rechecks:
            for d in rc.checked:
                if d.recheck is None:
                    continue
                o = d.recheck.outcome
                store.add_event(
                    run.id,
                    EVENT_LEVEL[o],
                    "retention-recheck",
                    f"retention: floor re-check of {rc.database}: {d.entry.path.name}: {d.recheck.summary}",
                    {"database": rc.database, "file": str(d.entry.path), "outcome": o.value},
                )
            if rc.held:
                store.add_event(
                    run.id,
                    "error",
                    "retention-held",
                    f"retention: nothing of {rc.database} deleted: no dump of it passed the floor re-check",
                    {"database": rc.database},
                )
        deleted = retention.apply(
            decisions, dry_run=False, partials=catalog.partials, partial_max_age=config.retention.partial_max_age
        )
    except Exception as exc:
        log.exception("retention failed")
        store.add_event(run.id, "error", "retention", f"retention failed: {exc}")
        return
    kept = sum(1 for d in decisions if d.keep)
    store.add_event(
        run.id,
        "info",
        "retention",
        f"retention: kept {kept}, deleted {len(deleted)}",
        {"deleted": [str(p) for p in deleted], "kept": kept},
    )


def _post_run(config: Config, store: StateStore, run: Run) -> None:
    """Notifications, report and metrics after a run (backend.postrun.after_run). Never raises."""
    try:
        postrun.after_run(config, store, run)
    except Exception as exc:  # notifications must never fail a backup
        log.exception("post-run hook failed")
        with contextlib.suppress(Exception):
            store.add_event(run.id, "warning", "postrun", f"post-run hook failed: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- in this process (cron)


def run_job_foreground(config: Config, job_name: str, trigger: Trigger = "cron") -> int:
    """Run a job in this process under its lock (what cron calls). Returns 0 when the run
    succeeded, 1 otherwise; raises LockedError (exit code 3) after recording a skipped run
    when the job is already running."""
    return 0 if run_job(config, job_name, trigger).status == RunStatus.SUCCEEDED else 1


def run_job(config: Config, job_name: str, trigger: Trigger = "cron") -> Run:
    """`run_job_foreground`, returning this run's final record (not the job's newest run: another
    run of the job may have started, or been skipped, meanwhile). A secret of the job's server that
    cannot be read raises ConfigError (exit 2) after recording the failed run, so it is notified."""
    job = config.job(job_name)
    try:
        credentials.check_secrets(config, [job.server], f"job {job.name}")
    except ConfigError as exc:
        with StateStore.open(config.state_db) as store:
            run = store.create_run(job.name, trigger, job.server, [], log_dir=config.runs_log_dir)
            _post_run(config, store, store.finish_run(run.id, RunStatus.FAILED, f"configuration: {exc}"))
        raise
    store = StateStore.open(config.state_db)
    try:
        lock = JobLock.for_key(config.lock_dir, lock_key(job.name, job.server))
        if not lock.try_acquire():
            message = lock.describe_holder(job.name)
            store.create_run(job.name, trigger, job.server, [], status=RunStatus.SKIPPED, reason=message)
            raise LockedError(message)
        try:
            try:
                dbs = resolve_databases(config, job)
            except Exception as exc:  # unreachable server: the run still gets a record (and its log)
                run = store.create_run(job.name, trigger, job.server, [], log_dir=config.runs_log_dir)
                store.update_run(run.id, pid=os.getpid(), host=socket.gethostname())
                reason = f"cannot list the databases of job {job.name}: {exc}"
                with run_log(config, run.id):
                    log.error("run %s (%s) failed: %s", run.id, job.name, reason)
                    failed = store.finish_run(run.id, RunStatus.FAILED, reason)
                    _post_run(config, store, failed)  # a cron job on a dead server must be heard of
                return failed
            run = store.create_run(job.name, trigger, job.server, dbs, log_dir=config.runs_log_dir)
            store.update_run(run.id, pid=os.getpid(), host=socket.gethostname())
            with run_log(config, run.id):  # cron runs get their per-run log like detached ones
                final = execute(config, store, run.id, lock=lock, install_signals=True)
        finally:
            lock.release()
        return final
    finally:
        store.close()


# --------------------------------------------------------------------------- entry point


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dumpdeck.backend.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--run", required=True, type=int)
    parser.add_argument("--secrets-fd", type=int, help="read secret variables (JSON) from this descriptor")
    parser.add_argument("--identity", type=Path, help="the age identity file (instead of encryption.identity_file)")
    args = parser.parse_args(argv)
    restrict_umask()
    if args.secrets_fd is not None:
        credentials.receive_secrets(args.secrets_fd)
    cancel = threading.Event()
    install_signal_handlers(cancel)
    with contextlib.suppress(OSError):
        os.setsid()  # already a session leader when spawned by start_run; harmless otherwise
    try:
        config = load_config(args.config)
        if args.identity is not None:
            config = with_identity(config, args.identity)
    except DumpdeckError as exc:
        sys.stderr.write(f"runner: {exc}\n")
        return 2
    credentials.capture_env_secrets(config)
    encryption.use_identity(config.encryption.identity_file)  # every reader of an encrypted dump uses it
    setup_logging(config, args.run)
    store = StateStore.open(config.state_db)
    try:
        run = store.get_run(args.run)
        if run is None:
            log.error("no run %s in %s", args.run, config.state_db)
            return 2
        if run.status == RunStatus.QUEUED:
            store.update_run(args.run, pid=os.getpid(), host=socket.gethostname())
        final = execute(config, store, args.run, cancel=cancel)
        return {"succeeded": 0, "skipped": 3}.get(final.status, 1)
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
