"""Job selection: which databases a job covers, how old their newest backup may be, and its lock key.

A job names databases literally (`shop`) or by glob (`*`, `shop_*`), minus its
`exclude` globs. Literal names stay in the selection even when the server
does not list them, so a missing database fails its dump visibly instead of
vanishing from the run. Ad-hoc runs (a selection from the console or the CLI)
are the job `adhoc` on one server; they lock on `adhoc-<server>`, named jobs on
their name.

Nothing here starts or watches a run (that is `jobs` and `runner`): these are
the answers every other module asks the configuration about a database.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from . import mysql
from .config import Config, JobConfig
from .errors import ConfigError
from .state import Run

ADHOC = "adhoc"
_GLOB = frozenset("*?[")


def is_pattern(name: str) -> bool:
    """True when `name` is a glob (`*`, `?`, `[…]`) rather than one database."""
    return any(c in _GLOB for c in name)


def matches_job(job: JobConfig, database: str) -> bool:
    """True when `database` is covered by the job's list/patterns and not excluded."""
    if any(fnmatch.fnmatchcase(database, pat) for pat in job.exclude):
        return False
    return any(fnmatch.fnmatchcase(database, pat) if is_pattern(pat) else pat == database for pat in job.databases)


def resolve_databases(config: Config, job: JobConfig | str, *, available: list[str] | None = None) -> list[str]:
    """The job's databases: literal names as given (a missing one fails its dump visibly), patterns
    (`*`, globs) expanded against the server's databases, excludes (globs too) removed."""
    if isinstance(job, str):
        job = config.job(job)
    literal = [d for d in job.databases if not is_pattern(d)]
    patterns = [d for d in job.databases if is_pattern(d)]
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


def adhoc_job(config: Config, server: str, databases: Iterable[str]) -> JobConfig:
    """The job settings of an ad-hoc run: the given databases, up to 2 at once, verified to level 2,
    no retries, max_runtime = backup.timeout × databases (at least 1 h)."""
    dbs = tuple(databases)
    return JobConfig(
        name=ADHOC,
        server=server,
        databases=dbs,
        parallel=min(2, max(1, len(dbs))),
        verify=2,
        max_runtime=max(config.backup.timeout * max(1, len(dbs)), 3600.0),
    )


def job_for_run(config: Config, run: Run) -> JobConfig:
    """The job a run executes: its named job as configured now, or the ad-hoc settings."""
    if run.job == ADHOC:
        return adhoc_job(config, run.server, run.databases)
    if run.job not in config.jobs:
        raise ConfigError(f"run {run.id}: job {run.job!r} is no longer in {config.path}")
    return config.job(run.job)


RESTORE = "restore"  # the job name of restore runs (backend.restore_real)


def lock_key(job: str, server: str) -> str:
    """The name of a run's flock: the job's name, or `adhoc-<server>` / `restore-<server>` (those queue)."""
    return f"{job}-{server}" if job in (ADHOC, RESTORE) else job


def covers(job: JobConfig, server: str | None, database: str) -> bool:
    """True when the job backs up `database` on `server` (any server when `server` is None)."""
    if server is not None and job.server != server:
        return False
    return database in job.databases if job.name == ADHOC else matches_job(job, database)


# --------------------------------------------------------------------------- how fresh a backup must be


def job_max_age(config: Config, job: JobConfig) -> float:
    """Seconds the newest good backup of the job's databases may be old (`checks.max_age` unless set)."""
    return job.max_age or config.checks.max_age


def max_age_for(config: Config, server: str | None, database: str) -> float:
    """Seconds the newest good backup of a database may be old: the strictest of the jobs covering
    it, else `checks.max_age`."""
    ages = [job_max_age(config, j) for j in config.jobs.values() if covers(j, server, database)]
    return min(ages, default=config.checks.max_age)


def expected_databases(config: Config, seen: Iterable[tuple[str, str]] = ()) -> dict[tuple[str, str], float]:
    """(server, database) → max_age in seconds, for every database that must have fresh backups.

    With jobs configured: the literal names of every job (even with no dump yet), and the databases
    in `seen` (on disk or in runs) that a job covers. Without jobs: every database in `seen`."""
    seen = set(seen)
    if not config.jobs:
        return {key: config.checks.max_age for key in seen}
    out: dict[tuple[str, str], float] = {}
    for job in config.jobs.values():
        max_age = job_max_age(config, job)
        candidates = {(job.server, db) for db in job.databases if not is_pattern(db)}
        candidates |= {(s, db) for s, db in seen if s == job.server}
        for key in candidates:
            if matches_job(job, key[1]):
                out[key] = min(max_age, out.get(key, max_age))
    return out
