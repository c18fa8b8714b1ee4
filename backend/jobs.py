"""Jobs: which databases a job covers, the per-job lock, and starting/cancelling runs.

A run is a row in the state store. `start_run` writes it (queued) and spawns
`python -m dumpdeck.backend.runner` in a new session with no terminal, its output in
the run's log file, so an SSH hang-up or the death of the starter does not
stop it. `run_job_foreground` is what cron calls: the same runner code in this
process, under the job's flock; a second invocation while the first holds the
lock is recorded as `skipped` and raises LockedError (exit code 3).

Locks are `flock`s on `<state_dir>/locks/<key>.lock`, held by the runner for
the whole run and released by the kernel when it dies. Named jobs lock on
their name; ad-hoc runs (a selection from the console or CLI) lock on
`adhoc-<server>` and wait in the queue for each other instead of being
skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import fnmatch
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import mysql
from .config import Config, JobConfig
from .errors import ConfigError, LockedError, UsageError
from .state import Run, StateStore, process_alive

ADHOC = "adhoc"
_GLOB = set("*?[")


# --------------------------------------------------------------------------- databases


def _is_pattern(name: str) -> bool:
    return any(c in _GLOB for c in name)


def matches_job(job: JobConfig, database: str) -> bool:
    """True when `database` is covered by the job's list/patterns and not excluded."""
    if any(fnmatch.fnmatchcase(database, pat) for pat in job.exclude):
        return False
    return any(fnmatch.fnmatchcase(database, pat) if _is_pattern(pat) else pat == database for pat in job.databases)


def resolve_databases(config: Config, job: JobConfig | str, *, available: list[str] | None = None) -> list[str]:
    """The job's databases: literal names as given (a missing one fails its dump visibly), patterns
    (`*`, globs) expanded against the server's databases, excludes (globs too) removed."""
    if isinstance(job, str):
        job = config.job(job)
    literal = [d for d in job.databases if not _is_pattern(d)]
    patterns = [d for d in job.databases if _is_pattern(d)]
    found: list[str] = []
    if patterns:
        if available is None:
            server = config.server(job.server)
            conn = mysql.connect(server)
            try:
                available = mysql.list_databases(conn, server)
            finally:
                conn.close()
        found = [d for d in available if any(fnmatch.fnmatchcase(d, p) for p in patterns)]
    out: list[str] = []
    for d in literal + found:
        if d not in out and not any(fnmatch.fnmatchcase(d, x) for x in job.exclude):
            out.append(d)
    return out


def adhoc_job(config: Config, server: str, databases: list[str]) -> JobConfig:
    """The job settings of an ad-hoc run: the given databases, up to 2 at once, verified to level 2,
    no retries, max_runtime = backup.timeout × databases (at least 1 h)."""
    return JobConfig(
        name=ADHOC,
        server=server,
        databases=tuple(databases),
        parallel=min(2, max(1, len(databases))),
        verify=2,
        max_runtime=max(config.backup.timeout * max(1, len(databases)), 3600.0),
    )


def job_for_run(config: Config, run: Run) -> JobConfig:
    if run.job == ADHOC or run.job not in config.jobs:
        if run.job != ADHOC:
            raise ConfigError(f"run {run.id}: job {run.job!r} is no longer in {config.path}")
        return adhoc_job(config, run.server, list(run.databases))
    return config.job(run.job)


def lock_key(run_job: str, server: str) -> str:
    return f"{ADHOC}-{server}" if run_job == ADHOC else run_job


# --------------------------------------------------------------------------- locks


@dataclass
class JobLock:
    """An flock on `<lock_dir>/<key>.lock`, with the holder's pid/host/run written inside."""

    path: Path
    fd: int | None = None

    @classmethod
    def for_key(cls, lock_dir: Path, key: str) -> JobLock:
        return cls(Path(lock_dir) / f"{key}.lock")

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def try_acquire(self, run_id: int | None = None) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "run": run_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd
        return True

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None

    def held_by_someone(self) -> bool:
        """Probe: True when another process holds the lock right now."""
        if self.fd is not None:
            return False
        if self.try_acquire():
            self.release()
            return False
        return True

    def describe_holder(self, job: str) -> str:
        h = self.holder()
        if not h:
            return f"job {job} is already running (lock {self.path} is held)"
        run = f", run {h['run']}" if h.get("run") is not None else ""
        return (
            f"job {job} is already running (pid {h.get('pid')} on {h.get('host')}{run}, "
            f"since {h.get('since')}); this invocation was skipped"
        )

    def __enter__(self) -> JobLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------------- starting runs


def _abs_config_path(config: Config) -> Path:
    if config.path is None:
        raise UsageError("a detached run needs a configuration file (the runner reads it again)")
    return Path(config.path).resolve()


def start_run(
    config: Config,
    job_name: str | None = None,
    *,
    databases: list[str] | None = None,
    server: str | None = None,
    trigger: str = "cli",
    store: StateStore | None = None,
) -> Run:
    """Queue a run and spawn its detached runner. Returns the run (queued, with the runner pid).

    With `job_name`: that job's databases (or `databases`, a subset). Without: an ad-hoc run of
    `databases` on `server`. A named job whose lock is held is recorded as skipped and raises
    LockedError naming the holder."""
    own = store is None
    store = store or StateStore.open(config.state_db)
    try:
        if job_name is not None and job_name != ADHOC:
            job = config.job(job_name)
            dbs = list(databases) if databases else resolve_databases(config, job)
            srv = job.server
            lock = JobLock.for_key(config.lock_dir, job.name)
            if lock.held_by_someone():
                message = lock.describe_holder(job.name)
                store.create_run(job.name, trigger, srv, dbs, status="skipped", reason=message)
                raise LockedError(message)
            name = job.name
        else:
            if not databases:
                raise UsageError("name the databases to back up (or a job)")
            srv = config.server(server).name
            dbs = list(dict.fromkeys(databases))
            name = ADHOC
        if not dbs:
            raise UsageError(f"job {name}: no databases match {', '.join(config.job(name).databases)}")
        run = store.create_run(name, trigger, srv, dbs, log_dir=config.runs_log_dir)
        config_path = _abs_config_path(config)
        log_path = Path(run.log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "dumpdeck.backend.runner",
                        "--config",
                        str(config_path),
                        "--run",
                        str(run.id),
                    ],
                    start_new_session=True,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    close_fds=True,
                    cwd="/",
                    env=_runner_env(),
                )
            except OSError as exc:
                store.finish_run(run.id, "failed", f"cannot start the runner: {exc.strerror}")
                raise UsageError(f"cannot start the runner: {exc.strerror}") from None
        _children.append(proc)
        _reap_children()
        # The runner records its own pid too; writing it here closes the window before it starts.
        current = store.get_run(run.id)
        if current is not None and current.pid is None:
            store.update_run(run.id, pid=proc.pid, host=socket.gethostname())
        return store.get_run(run.id)  # type: ignore[return-value]
    finally:
        if own:
            store.close()


_children: list[subprocess.Popen] = []


def _reap_children() -> None:
    """Collect exit statuses of runners this process started (a long-lived console), so no zombies."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


def _runner_env() -> dict:
    """The runner's environment: ours, without a password a client could pick up. It finds the
    package the way this process did (the installed `dumpdeck`), never through PYTHONPATH."""
    env = dict(os.environ)
    env.pop("MYSQL_PWD", None)
    return env


def cancel_run(store: StateStore, run_id: int) -> bool:
    """Ask a run to stop: SIGTERM to its runner's process group (the runner kills its dumps,
    removes partial files and records `cancelled`). A queued run without a runner is cancelled
    directly. False when the run is not active (or unknown)."""
    _reap_children()
    run = store.get_run(run_id)
    if run is None or not run.active:
        return False
    store.add_event(
        run.id, "warning", "cancel", f"cancel requested for run {run.id} ({run.job})", {"by_pid": os.getpid()}
    )
    if run.pid is None or run.host != socket.gethostname():
        if run.pid is None:
            store.finish_run(run.id, "cancelled", "cancelled before its runner started")
            return True
        raise UsageError(f"run {run.id} runs on host {run.host}; cancel it there")
    if not process_alive(run.pid):
        store.reap_lost()
        return False
    try:
        if os.getpgid(run.pid) == run.pid:
            os.killpg(run.pid, signal.SIGTERM)
        else:  # a foreground `job run` inside someone else's process group: signal it alone
            os.kill(run.pid, signal.SIGTERM)
    except ProcessLookupError:
        store.reap_lost()
        return False
    except PermissionError:
        raise UsageError(f"not permitted to signal run {run.id}'s runner (pid {run.pid}); run as its user") from None
    return True


def run_job_foreground(config: Config, job_name: str, trigger: str = "cron") -> int:
    """Run a job in this process under its lock (what cron calls). Returns 0 when the run
    succeeded, 1 otherwise; raises LockedError (exit code 3) after recording a skipped run
    when the job is already running."""
    from . import runner

    job = config.job(job_name)
    store = StateStore.open(config.state_db)
    try:
        lock = JobLock.for_key(config.lock_dir, job.name)
        if not lock.try_acquire():
            message = lock.describe_holder(job.name)
            store.create_run(job.name, trigger, job.server, [], status="skipped", reason=message)
            raise LockedError(message)
        try:
            try:
                dbs = resolve_databases(config, job)
            except Exception as exc:  # unreachable server: the run still gets a record
                run = store.create_run(job.name, trigger, job.server, [], log_dir=config.runs_log_dir)
                store.update_run(run.id, pid=os.getpid(), host=socket.gethostname())
                failed = store.finish_run(run.id, "failed", f"cannot list the databases of job {job.name}: {exc}")
                runner._post_run(config, store, failed)  # a cron job on a dead server must be heard of
                return 1
            run = store.create_run(job.name, trigger, job.server, dbs, log_dir=config.runs_log_dir)
            store.update_run(run.id, pid=os.getpid(), host=socket.gethostname())
            final = runner.execute(config, store, run.id, lock=lock, install_signals=True)
        finally:
            lock.release()
        return 0 if final.status == "succeeded" else 1
    finally:
        store.close()


def replace_job(job: JobConfig, **changes) -> JobConfig:
    return dataclasses.replace(job, **changes)
