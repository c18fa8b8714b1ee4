"""Jobs: the per-job lock, and starting and cancelling detached runs.

A run is a row in the state store. `start_run` writes it (queued) and spawns
`python -m dumpdeck.backend.runner` in a new session with no terminal, its output in
the run's log file, so an SSH hang-up or the death of the starter does not
stop it. What cron calls, the same run in its own process under the job's flock,
is `runner.run_job_foreground`. Which databases a job covers and its lock key
are `selection`'s.

Locks are `flock`s on `<state_dir>/locks/<key>.lock`, held by the runner for
the whole run and released by the kernel when it dies. Named jobs lock on
their name; ad-hoc runs (a selection from the console or CLI) lock on
`adhoc-<server>` and wait in the queue for each other instead of being
skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import credentials
from .config import Config
from .errors import LockedError, UsageError
from .private import open_private, private_dir
from .processes import process_alive
from .selection import ADHOC, resolve_databases
from .state import Run, StateStore
from .vocabulary import RunStatus, Trigger

# --------------------------------------------------------------------------- locks


@dataclass
class JobLock:
    """An flock on `<lock_dir>/<key>.lock`, with the holder's pid/host/run written inside."""

    path: Path
    fd: int | None = None

    @classmethod
    def for_key(cls, lock_dir: Path, key: str) -> JobLock:
        return cls(Path(lock_dir) / f"{key}.lock")

    def holder(self) -> dict[str, Any]:
        """What the holder wrote into the lock file: pid, host, run, since (empty when unreadable)."""
        try:
            data = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def try_acquire(self, run_id: int | None = None) -> bool:
        private_dir(self.path.parent, ours=True)
        fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
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
    trigger: Trigger = "cli",
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
                store.create_run(job.name, trigger, srv, dbs, status=RunStatus.SKIPPED, reason=message)
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
        credentials.check_secrets(config, [srv], f"job {name}" if name != ADHOC else "this backup")
        run = store.create_run(name, trigger, srv, dbs, log_dir=config.runs_log_dir)
        return spawn_runner(config, store, run)
    finally:
        if own:
            store.close()


def spawn_runner(config: Config, store: StateStore, run: Run) -> Run:
    """Start the detached runner of a queued run (its own session, output to the run's log). Secret
    variables reach it through a pipe, never its environment."""
    config_path = _abs_config_path(config)
    assert run.log_path is not None  # created with log_dir
    log_path = Path(run.log_path)
    private_dir(log_path.parent, ours=True)
    secrets_fd = credentials.send_secrets(config)  # secret variables go through a pipe, not the environment
    argv = [sys.executable, "-m", "dumpdeck.backend.runner", "--config", str(config_path), "--run", str(run.id)]
    if secrets_fd is not None:
        argv += ["--secrets-fd", str(secrets_fd)]
    if config.encryption.identity_file is not None:  # `--identity` reaches the runner (a path, not the key)
        argv += ["--identity", str(config.encryption.identity_file)]
    with os.fdopen(open_private(log_path), "ab") as log:
        try:
            proc = subprocess.Popen(
                argv,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                pass_fds=(secrets_fd,) if secrets_fd is not None else (),
                cwd="/",
                env=credentials.scrubbed_env(config),
            )
        except OSError as exc:
            store.finish_run(run.id, RunStatus.FAILED, f"cannot start the runner: {exc.strerror}")
            raise UsageError(f"cannot start the runner: {exc.strerror}") from None
        finally:
            if secrets_fd is not None:
                os.close(secrets_fd)
    _children.append(proc)
    reap_children()
    # The runner records its own pid too; writing it here closes the window before it starts.
    current = store.get_run(run.id)
    if current is not None and current.pid is None:
        store.update_run(run.id, pid=proc.pid, host=socket.gethostname())
    started = store.get_run(run.id)
    assert started is not None
    return started


_children: list[subprocess.Popen[bytes]] = []


def reap_children() -> None:
    """Collect exit statuses of runners this process started (a long-lived console calls this on
    every poll), so a finished runner never lingers as a <defunct> child."""
    for proc in list(_children):
        if proc.poll() is not None:
            _children.remove(proc)


def cancel_run(store: StateStore, run_id: int) -> bool:
    """Ask a run to stop: SIGTERM to its runner's process group (the runner kills its dumps,
    removes partial files and records `cancelled`). A queued run without a runner is cancelled
    directly. False when the run is not active (or unknown)."""
    reap_children()
    run = store.get_run(run_id)
    if run is None or not run.active:
        return False
    store.add_event(
        run.id, "warning", "cancel", f"cancel requested for run {run.id} ({run.job})", {"by_pid": os.getpid()}
    )
    if run.pid is None or run.host != socket.gethostname():
        if run.pid is None:
            store.finish_run(run.id, RunStatus.CANCELLED, "cancelled before its runner started")
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
