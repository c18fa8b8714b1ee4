"""The state store: one SQLite database (WAL) shared by runners and any number of readers.

Runs, per-database progress (with a heartbeat), events, and the notification
state live here. One process writes a run (its runner); consoles and CLI
commands read. Every connection uses WAL, a busy timeout, and short
transactions, so readers never see "database is locked" while a runner writes.

Connections are per thread and per process: a `StateStore` may be shared by
threads (each gets its own sqlite3 connection) and survives a fork (the child
opens fresh connections).

The schema is versioned with ``PRAGMA user_version`` and upgraded by an
ordered list of migrations; each migration runs once, in its own transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, overload

from .catalog import remove_orphan_partial
from .config import Config
from .errors import StateError
from .outcome import Outcome
from .private import open_private, private_dir, tighten
from .processes import process_alive
from .vocabulary import (
    FINAL_RUN_STATUSES,
    TRIGGERS,
    DbStatus,
    EventLevel,
    RunStatus,
    Trigger,
)

# A runner writes its heartbeat every second; one silent this long is presumed dead.
HEARTBEAT_STALE = 60.0
# A queued run whose runner never reported within this long is presumed lost.
QUEUED_STALE = 120.0
BUSY_TIMEOUT_MS = 15000


# --------------------------------------------------------------------------- records


@overload
def _dt(value: float) -> datetime: ...
@overload
def _dt(value: float | None) -> datetime | None: ...
def _dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


@overload
def _ts(value: datetime | float) -> float: ...
@overload
def _ts(value: datetime | float | None) -> float | None: ...
def _ts(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


@dataclass(frozen=True)
class Run:
    id: int
    job: str
    trigger: Trigger
    databases: tuple[str, ...]
    server: str
    status: RunStatus
    pid: int | None
    host: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    reason: str | None
    attempt: int
    log_path: str | None
    heartbeat: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status.active

    @property
    def duration(self) -> float | None:
        if self.started is None:
            return None
        end = self.finished or datetime.now(UTC)
        return (end - self.started).total_seconds()


@dataclass(frozen=True)
class DbProgress:
    """One database within a run. `status`: pending, running, verifying (dumped, its verification
    runs), retrying, succeeded, failed, timed-out, cancelled, skipped. `updated` is the heartbeat;
    `file` is the partial while the dump runs and the final dump afterwards."""

    run_id: int
    database: str
    status: DbStatus = DbStatus.PENDING
    bytes_raw: int = 0
    bytes_stored: int = 0
    rate: float = 0.0
    current_table: str | None = None
    started: datetime | None = None
    updated: datetime | None = None
    estimate: int | None = None
    timeout: float | None = None
    file: str | None = None
    error: str | None = None
    attempt: int = 0
    inventory_bytes: int | None = None  # data+index size seen by preflight (for ratios)
    verified_level: int | None = None

    @property
    def elapsed(self) -> float | None:
        if self.started is None:
            return None
        end = self.updated or datetime.now(UTC)
        return max(0.0, (end - self.started).total_seconds())

    @property
    def time_left(self) -> float | None:
        """Seconds until this dump's timeout, from its start."""
        if self.timeout is None or self.started is None:
            return None
        return self.timeout - (datetime.now(UTC) - self.started).total_seconds()


@dataclass(frozen=True)
class Event:
    id: int
    run_id: int | None
    at: datetime
    level: EventLevel
    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class HistoryRow:
    """A finished, successful dump of one database, for ETAs, compression ratios and trends."""

    run_id: int
    server: str
    database: str
    bytes_raw: int
    bytes_stored: int
    inventory_bytes: int | None
    duration: float
    finished: datetime
    file: str | None


@dataclass
class CopyRecord:
    """The state of one dump's copy at one destination (backend.copies writes it)."""

    file: str  # the local dump path
    destination: str
    server: str | None
    database: str
    remote_path: str  # below the destination root: <server>/<database>/<file>
    outcome: Outcome  # passed = verified there; failed = not made, or made and did not verify
    size: int | None = None
    sha256: str | None = None
    method: str | None = None  # how it was verified: "hashsum" (the storage's sha256) or "read back"
    verified_at: datetime | None = None
    attempts: int = 0  # failed tries since the last success
    next_try: datetime | None = None  # a failed copy is not tried again before this
    error: str | None = None
    removed: datetime | None = None  # deleted at the destination by its retention: never copied again


# --------------------------------------------------------------------------- schema


MIGRATIONS: list[str] = [
    # 1: runs, progress, events
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        trigger TEXT NOT NULL,
        databases TEXT NOT NULL DEFAULT '[]',
        server TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        pid INTEGER,
        host TEXT,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        reason TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        log_path TEXT,
        heartbeat REAL
    );
    CREATE INDEX runs_status ON runs(status);
    CREATE INDEX runs_job ON runs(job, id);
    CREATE TABLE progress (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        database TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        bytes_raw INTEGER NOT NULL DEFAULT 0,
        bytes_stored INTEGER NOT NULL DEFAULT 0,
        rate REAL NOT NULL DEFAULT 0,
        current_table TEXT,
        started REAL,
        updated REAL,
        estimate INTEGER,
        timeout REAL,
        file TEXT,
        error TEXT,
        attempt INTEGER NOT NULL DEFAULT 0,
        inventory_bytes INTEGER,
        verified_level INTEGER,
        PRIMARY KEY (run_id, database)
    );
    CREATE INDEX progress_db ON progress(database, status);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER,
        at REAL NOT NULL,
        level TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        data TEXT
    );
    CREATE INDEX events_run ON events(run_id, id);
    """,
    # 2: notification state (owned by backend/notify; stored here so every process shares it)
    """
    CREATE TABLE notify_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated REAL NOT NULL
    );
    CREATE TABLE notifications (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        channel TEXT NOT NULL,
        key TEXT NOT NULL,
        subject TEXT NOT NULL,
        ok INTEGER NOT NULL,
        error TEXT,
        payload TEXT,
        attempts INTEGER NOT NULL DEFAULT 1,
        sent_at REAL
    );
    CREATE INDEX notifications_pending ON notifications(ok, id);
    """,
    # 3: off-host copies (owned by backend/copies): one row per dump and destination
    """
    CREATE TABLE copies (
        file TEXT NOT NULL,
        destination TEXT NOT NULL,
        server TEXT,
        database TEXT NOT NULL,
        remote_path TEXT NOT NULL,
        outcome TEXT NOT NULL,
        size INTEGER,
        sha256 TEXT,
        method TEXT,
        verified_at REAL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try REAL,
        error TEXT,
        removed REAL,
        updated REAL NOT NULL,
        PRIMARY KEY (file, destination)
    );
    CREATE INDEX copies_db ON copies(destination, server, database);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

_RUN_COLS = (
    "id",
    "job",
    "trigger",
    "databases",
    "server",
    "status",
    "pid",
    "host",
    "created",
    "started",
    "finished",
    "reason",
    "attempt",
    "log_path",
    "heartbeat",
)
_PROGRESS_COLS = (
    "run_id",
    "database",
    "status",
    "bytes_raw",
    "bytes_stored",
    "rate",
    "current_table",
    "started",
    "updated",
    "estimate",
    "timeout",
    "file",
    "error",
    "attempt",
    "inventory_bytes",
    "verified_level",
)
_RUN_TIME_COLS = {"created", "started", "finished", "heartbeat"}


def _row_to_run(row: sqlite3.Row) -> Run:
    return Run(
        id=row["id"],
        job=row["job"],
        trigger=row["trigger"],
        databases=tuple(json.loads(row["databases"] or "[]")),
        server=row["server"],
        status=RunStatus(row["status"]),
        pid=row["pid"],
        host=row["host"],
        created=_dt(row["created"]),
        started=_dt(row["started"]),
        finished=_dt(row["finished"]),
        reason=row["reason"],
        attempt=row["attempt"],
        log_path=row["log_path"],
        heartbeat=_dt(row["heartbeat"]),
    )


def _row_to_progress(row: sqlite3.Row) -> DbProgress:
    return DbProgress(
        run_id=row["run_id"],
        database=row["database"],
        status=DbStatus(row["status"]),
        bytes_raw=row["bytes_raw"],
        bytes_stored=row["bytes_stored"],
        rate=row["rate"],
        current_table=row["current_table"],
        started=_dt(row["started"]),
        updated=_dt(row["updated"]),
        estimate=row["estimate"],
        timeout=row["timeout"],
        file=row["file"],
        error=row["error"],
        attempt=row["attempt"],
        inventory_bytes=row["inventory_bytes"],
        verified_level=row["verified_level"],
    )


# --------------------------------------------------------------------------- the store


class StateStore:
    """Runs, progress, events and notification state in `<state_dir>/state.db`."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path | str) -> StateStore:
        store = cls(Path(path))
        try:
            private_dir(store.path.parent)
            os.close(open_private(store.path, os.O_RDWR | os.O_CREAT))  # sqlite would create it 0644
        except OSError as exc:
            raise StateError(f"cannot create the state database {store.path}: {exc.strerror}") from None
        store._migrate()
        for side in ("-wal", "-shm"):
            tighten(store.path.with_name(store.path.name + side))
        return store

    # ------------------------------------------------------------------ connections

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StateError(f"state store {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        pid = getattr(self._local, "pid", None)
        if conn is not None and pid == os.getpid():
            return cast(sqlite3.Connection, conn)
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state database {self.path}: {exc}") from None
        conn.row_factory = sqlite3.Row
        with self._errors():
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        self._local.conn = conn
        self._local.pid = os.getpid()
        with self._all_lock:
            self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite failures (disk full, read-only or unwritable directory, I/O errors) as one StateError
        naming the database: the CLI prints one line and exits 1, never a traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            hint = ""
            text = str(exc)
            if "full" in text:
                hint = f" (free space on the file system of {self.path.parent})"
            elif "readonly" in text or "unable to open" in text or "I/O" in text:
                hint = f" (check that {self.path.parent} is writable by this user)"
            raise StateError(f"state database {self.path}: {text}{hint}") from None
        except OSError as exc:
            raise StateError(f"state directory {self.path.parent}: {exc.strerror}") from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction (BEGIN IMMEDIATE: takes the write lock up front, waits busy_timeout)."""
        conn = self._conn()
        with self._errors():
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        conn = self._conn()
        with self._errors():
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._all_lock:
            conns, self._all = self._all, []
        for conn in conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
        self._closed = True

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ schema

    def _migrate(self) -> None:
        # Serialise migrations across processes with an flock beside the database.
        lock_path = self.path.with_name(self.path.name + ".migrate.lock")
        with self._errors(), os.fdopen(open_private(lock_path), "a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            conn = self._conn()
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{self.path} has schema version {version}, newer than this dumpdeck understands "
                    f"({SCHEMA_VERSION}); upgrade dumpdeck"
                )
            for number in range(version, SCHEMA_VERSION):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for statement in _split_sql(MIGRATIONS[number]):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={number + 1}")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        conn = self._conn()
        with self._errors():
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ runs

    def create_run(
        self,
        job: str,
        trigger: Trigger,
        server: str,
        databases: list[str] | tuple[str, ...],
        *,
        status: RunStatus = RunStatus.QUEUED,
        reason: str | None = None,
        log_dir: Path | None = None,
    ) -> Run:
        if trigger not in TRIGGERS:
            raise ValueError(f"trigger must be one of {TRIGGERS}, not {trigger!r}")
        status = RunStatus(status)  # a word that is no status fails here, not in a reader
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (job, trigger, databases, server, status, created, reason, host, finished) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job,
                    trigger,
                    json.dumps(list(databases)),
                    server,
                    status,
                    now,
                    reason,
                    socket.gethostname(),
                    now if status in FINAL_RUN_STATUSES else None,
                ),
            )
            run_id = cur.lastrowid
            assert run_id is not None  # an INSERT sets it
            if log_dir is not None:
                conn.execute("UPDATE runs SET log_path=? WHERE id=?", (str(Path(log_dir) / f"{run_id}.log"), run_id))
            conn.executemany(
                "INSERT INTO progress (run_id, database, status) VALUES (?, ?, ?)",
                [
                    (run_id, db, DbStatus.SKIPPED if status == RunStatus.SKIPPED else DbStatus.PENDING)
                    for db in databases
                ],
            )
        run = self.get_run(run_id)
        assert run is not None
        return run

    def update_run(self, run_id: int, **fields: Any) -> Run:
        unknown = set(fields) - set(_RUN_COLS[1:])
        if unknown:
            raise ValueError(f"unknown run field(s): {', '.join(sorted(unknown))}")
        if "status" in fields:
            fields["status"] = RunStatus(fields["status"])  # a word that is no status fails here
        values: list[object] = []
        for key, value in fields.items():
            if key in _RUN_TIME_COLS:
                values.append(_ts(value))
            elif key == "databases":
                values.append(json.dumps(list(value)))
            else:
                values.append(value)
        if fields:
            with self._write() as conn:
                conn.execute(f"UPDATE runs SET {', '.join(f'{k}=?' for k in fields)} WHERE id=?", (*values, run_id))
        run = self.get_run(run_id)
        if run is None:
            raise StateError(f"no run {run_id} in {self.path}")
        return run

    def finish_run(self, run_id: int, status: RunStatus, reason: str | None) -> Run:
        """Set a final status, unless the run already has one (first final status wins)."""
        if status not in FINAL_RUN_STATUSES:
            raise ValueError(f"{status!r} is not a final status")
        with self._write() as conn:
            conn.execute(
                "UPDATE runs SET status=?, reason=?, finished=? WHERE id=? AND status IN ('queued', 'running')",
                (status, reason, time.time(), run_id),
            )
        run = self.get_run(run_id)
        assert run is not None
        return run

    def heartbeat(self, run_id: int) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET heartbeat=? WHERE id=?", (time.time(), run_id))

    def get_run(self, run_id: int) -> Run | None:
        rows = self._read("SELECT * FROM runs WHERE id=?", (run_id,))
        return _row_to_run(rows[0]) if rows else None

    def list_runs(
        self, limit: int = 50, job: str | None = None, active_only: bool = False, status: RunStatus | None = None
    ) -> list[Run]:
        where, params = [], []
        if job is not None:
            where.append("job=?")
            params.append(job)
        if active_only:
            where.append("status IN ('queued', 'running')")
        if status is not None:
            where.append("status=?")
            params.append(status)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ?"
        return [_row_to_run(r) for r in self._read(sql, (*params, limit))]

    def run_outcomes(self) -> list[tuple[str, str, int, float | None]]:
        """(job, status, runs, when the last of them finished) over every recorded run (for metrics)."""
        rows = self._read("SELECT job, status, COUNT(*), MAX(finished) FROM runs GROUP BY job, status ORDER BY 1, 2")
        return [(r[0], r[1], int(r[2]), r[3]) for r in rows]

    # ------------------------------------------------------------------ progress

    def progress(self, run_id: int) -> list[DbProgress]:
        rows = self._read("SELECT * FROM progress WHERE run_id=? ORDER BY rowid", (run_id,))
        return [_row_to_progress(r) for r in rows]

    def set_progress(self, p: DbProgress) -> None:
        """Insert or replace one database's progress row (the runner's heartbeat)."""
        values = []
        for col in _PROGRESS_COLS:
            value = getattr(p, col)
            if col in ("started", "updated"):
                value = _ts(value)
            values.append(value)
        if values[_PROGRESS_COLS.index("updated")] is None:
            values[_PROGRESS_COLS.index("updated")] = time.time()
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO progress ({', '.join(_PROGRESS_COLS)}) "
                f"VALUES ({', '.join('?' * len(_PROGRESS_COLS))}) ON CONFLICT (run_id, database) DO UPDATE SET "
                + ", ".join(f"{c}=excluded.{c}" for c in _PROGRESS_COLS[2:]),
                values,
            )

    # ------------------------------------------------------------------ events

    def add_event(
        self, run_id: int | None, level: EventLevel, kind: str, message: str, data: dict[str, Any] | None = None
    ) -> int:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO events (run_id, at, level, kind, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, time.time(), level, kind, message, json.dumps(data or {}, default=str)),
            )
            assert cur.lastrowid is not None  # an INSERT sets it
            return cur.lastrowid

    def events(
        self, run_id: int | None = None, since_id: int = 0, limit: int = 200, kind: str | None = None
    ) -> list[Event]:
        where: list[str] = ["id > ?"]
        params: list[object] = [since_id]
        if run_id is not None:
            where.append("run_id=?")
            params.append(run_id)
        if kind is not None:
            where.append("kind=?")
            params.append(kind)
        rows = self._read(f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?", (*params, limit))
        return [
            Event(
                r["id"], r["run_id"], _dt(r["at"]), r["level"], r["kind"], r["message"], json.loads(r["data"] or "{}")
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ lost runs

    def reap_lost(
        self,
        now: datetime | float | None = None,
        *,
        stale_after: float = HEARTBEAT_STALE,
        queued_after: float = QUEUED_STALE,
    ) -> list[Run]:
        """Mark runs whose runner is gone as `lost` and remove their partial files.

        A queued or running run is lost when its runner pid (on this host) no longer
        exists (or is a zombie, or is a newer process reusing the pid), or when its
        heartbeat is older than `stale_after` seconds (any host), or when it stayed
        queued without a runner for `queued_after` seconds.
        """
        now_ts = _ts(now) if now is not None else time.time()
        here = socket.gethostname()
        lost: list[tuple[Run, str]] = []
        for run in self.list_runs(limit=1000, active_only=True):
            why = _lost_reason(run, now_ts, here, stale_after, queued_after)
            if why:
                lost.append((run, why))
        out = []
        for run, why in lost:
            removed = []
            for p in self.progress(run.id):
                if p.file and p.file.endswith(".partial") and remove_orphan_partial(Path(p.file), wait=3.0):
                    removed.append(p.file)
            with self._write() as conn:
                cur = conn.execute(
                    "UPDATE runs SET status='lost', reason=?, finished=? WHERE id=? AND status IN ('queued','running')",
                    (why, now_ts, run.id),
                )
                changed = cur.rowcount
                if changed:
                    conn.execute(
                        "UPDATE progress SET status='failed', error=COALESCE(error, 'runner lost') "
                        "WHERE run_id=? AND status IN ('pending', 'running', 'verifying', 'retrying')",
                        (run.id,),
                    )
                    conn.execute("UPDATE progress SET file=NULL WHERE run_id=? AND file LIKE '%.partial'", (run.id,))
            if changed:
                self.add_event(
                    run.id, "error", "lost", f"run {run.id} ({run.job}) lost: {why}", {"removed_partials": removed}
                )
                out.append(self.get_run(run.id))
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ history

    def last_success(self, server: str, database: str) -> Run | None:
        rows = self._read(
            "SELECT r.* FROM runs r JOIN progress p ON p.run_id = r.id "
            "WHERE r.server=? AND p.database=? AND p.status='succeeded' ORDER BY p.updated DESC LIMIT 1",
            (server, database),
        )
        return _row_to_run(rows[0]) if rows else None

    def latest_attempt(self, server: str, database: str) -> DbProgress | None:
        """The most recent finished dump attempt of a database (any status but pending/running)."""
        rows = self._read(
            "SELECT p.* FROM progress p JOIN runs r ON p.run_id = r.id WHERE r.server=? AND p.database=? "
            "AND p.status NOT IN ('pending', 'running', 'verifying', 'retrying', 'skipped') "
            "ORDER BY p.run_id DESC LIMIT 1",
            (server, database),
        )
        return _row_to_progress(rows[0]) if rows else None

    def history(self, server: str, database: str, limit: int = 10) -> list[HistoryRow]:
        """Successful dumps of one database, newest first."""
        rows = self._read(
            "SELECT p.*, r.server AS srv FROM progress p JOIN runs r ON p.run_id = r.id "
            "WHERE r.server=? AND p.database=? AND p.status='succeeded' AND p.started IS NOT NULL "
            "ORDER BY p.updated DESC LIMIT ?",
            (server, database, limit),
        )
        return [
            HistoryRow(
                run_id=r["run_id"],
                server=r["srv"],
                database=r["database"],
                bytes_raw=r["bytes_raw"],
                bytes_stored=r["bytes_stored"],
                inventory_bytes=r["inventory_bytes"],
                duration=max(0.0, (r["updated"] or r["started"]) - r["started"]),
                finished=_dt(r["updated"]),
                file=r["file"],
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ off-host copies

    def set_copy(self, rec: CopyRecord) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO copies (file, destination, server, database, remote_path, outcome, size, "
                "sha256, method, verified_at, attempts, next_try, error, removed, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.file,
                    rec.destination,
                    rec.server,
                    rec.database,
                    rec.remote_path,
                    str(rec.outcome),
                    rec.size,
                    rec.sha256,
                    rec.method,
                    _ts(rec.verified_at),
                    rec.attempts,
                    _ts(rec.next_try),
                    rec.error,
                    _ts(rec.removed),
                    time.time(),
                ),
            )

    def copies(self, destination: str | None = None, file: str | None = None) -> list[CopyRecord]:
        """Copy records (of one destination, of one dump file), newest first."""
        sql, params = "SELECT * FROM copies WHERE 1=1", []
        if destination is not None:
            sql += " AND destination=?"
            params.append(destination)
        if file is not None:
            sql += " AND file=?"
            params.append(file)
        rows = self._read(sql + " ORDER BY updated DESC", params)
        return [
            CopyRecord(
                file=r["file"],
                destination=r["destination"],
                server=r["server"],
                database=r["database"],
                remote_path=r["remote_path"],
                outcome=Outcome(r["outcome"]),
                size=r["size"],
                sha256=r["sha256"],
                method=r["method"],
                verified_at=_dt(r["verified_at"]),
                attempts=r["attempts"],
                next_try=_dt(r["next_try"]),
                error=r["error"],
                removed=_dt(r["removed"]),
            )
            for r in rows
        ]

    def forget_copy(self, file: str, destination: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM copies WHERE file=? AND destination=?", (file, destination))

    # ------------------------------------------------------------------ notifications

    def get_notify_state(self, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT value FROM notify_state WHERE key=?", (key,))
        return json.loads(rows[0]["value"]) if rows else None

    def set_notify_state(self, key: str, value: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO notify_state (key, value, updated) VALUES (?, ?, ?)",
                (key, json.dumps(value, default=str), time.time()),
            )

    def record_notification(
        self,
        channel: str,
        key: str,
        subject: str,
        ok: bool,
        error: str | None,
        payload: dict[str, Any] | None = None,
    ) -> int:
        """Record one delivery attempt; failed ones (ok=False) are returned by pending_notifications()."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO notifications (at, channel, key, subject, ok, error, payload, sent_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time.time(),
                    channel,
                    key,
                    subject,
                    1 if ok else 0,
                    error,
                    json.dumps(payload, default=str) if payload is not None else None,
                    time.time() if ok else None,
                ),
            )
            assert cur.lastrowid is not None  # an INSERT sets it
            return cur.lastrowid

    def notifications(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM notifications ORDER BY id DESC LIMIT ?", (limit,))
        return [_notification_dict(r) for r in rows]

    def pending_notifications(self) -> list[dict[str, Any]]:
        rows = self._read("SELECT * FROM notifications WHERE ok=0 ORDER BY id")
        return [_notification_dict(r) for r in rows]

    def mark_notification_sent(self, notification_id: int) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE notifications SET ok=1, sent_at=?, error=NULL, attempts=attempts+1 WHERE id=?",
                (time.time(), notification_id),
            )

    def mark_notification_failed(self, notification_id: int, error: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE notifications SET error=?, attempts=attempts+1 WHERE id=?", (error, notification_id))


def _notification_dict(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": r["id"],
        "at": _dt(r["at"]),
        "channel": r["channel"],
        "key": r["key"],
        "subject": r["subject"],
        "ok": bool(r["ok"]),
        "error": r["error"],
        "attempts": r["attempts"],
        "sent_at": _dt(r["sent_at"]),
        "payload": json.loads(r["payload"]) if r["payload"] else None,
    }


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


# --------------------------------------------------------------------------- liveness


def _lost_reason(run: Run, now: float, here: str, stale_after: float, queued_after: float) -> str | None:
    beat = _ts(run.heartbeat) or _ts(run.started)
    if run.pid is not None and run.host == here:
        # The runner records `started` after it began, so a process created later is a reused pid.
        reference = _ts(run.started) if run.started is not None else _ts(run.created) + 60.0
        if not process_alive(run.pid, reference):
            return f"runner pid {run.pid} on {run.host} is gone (killed or crashed)"
    if run.status == RunStatus.RUNNING and beat is not None and now - beat > stale_after:
        return f"no heartbeat for {int(now - beat)} s (runner pid {run.pid} on {run.host})"
    if run.status == RunStatus.QUEUED and run.pid is None and now - _ts(run.created) > queued_after:
        return f"queued for {int(now - _ts(run.created))} s and no runner picked it up"
    return None


def open_store(config: Config) -> StateStore:
    """The store of a loaded Config."""
    return StateStore.open(config.state_db)
