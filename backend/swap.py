"""The swap of a `--replace` restore, crash-safe: the target ends fully old or fully new, never half.

Before its first change the swap writes a journal to the state store (an event of kind
`swap-journal`): the target and scratch databases, which tables move out and in, the SHOW CREATE
text of every object of the target it will drop, and the statements of the dump's objects it will
create. Every later phase adds an event under the same journal id:

    prepared → (CREATE DATABASE old; drop the target's triggers/views that block the move;
                one RENAME TABLE: target tables → old, staged tables → target)
             → renamed → (the target's routines/events go; the dump's objects are created)
             → done → (old and staging dropped) → closed
    or, on a failure:  → rolled-back → closed

A process killed at any point leaves an open journal. `recover()` (run by the next restore, by
every runner start and by `dumpdeck restore --recover`) resolves each one whose process is gone,
from what the server holds now (RENAME TABLE is atomic, so the tables are either all moved or none):
not moved → roll back (the dropped objects are created again from their SHOW CREATE text, the
scratch databases dropped); moved → finish (the dump's objects are created again, idempotently),
or, if that fails, roll back (the tables renamed back, the old objects created again).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
import pymysql.cursors

from . import mysql
from .config import Config, ServerConfig
from .errors import DumpdeckError, RestoreError
from .jobs import JobLock
from .processes import process_alive

if TYPE_CHECKING:
    from .state import StateStore

log = logging.getLogger(__name__)

JOURNAL_KIND = "swap-journal"
# Test hook: "STEP:PATH" makes the swap write PATH and wait forever at STEP (a test then kills it).
PAUSE_ENV = "DUMPDECK_TEST_SWAP_PAUSE"
STEPS = ("journaled", "objects-dropped", "renamed", "replaying", "replayed", "done")

Saved = tuple[str, str, str, str]  # (VIEW|TRIGGER|PROCEDURE|FUNCTION|EVENT, name, sql_mode, statement)
StepCallback = Callable[[str], None]


@dataclass
class DumpObject:
    """A view, routine, trigger or event as the dump creates it, with the session settings set before it."""

    kind: str  # view | trigger | procedure | function | event
    name: str
    sets: list[str]
    text: str


@dataclass
class SwapJournal:
    server: str
    database: str
    stage: str
    old: str
    move_out: list[str]  # the target's tables moved to `old`
    move_in: list[str]  # the staged tables moved into the target
    drop_before: list[Saved]  # the target's objects dropped before the RENAME (they block it)
    drop_after: list[Saved]  # the target's objects dropped after it (replaced by the dump's)
    create: list[DumpObject]  # the dump's objects created in the target after the RENAME
    stage_drop: list[Saved] = field(default_factory=list)  # staging's triggers and views (dropped with staging)
    run_id: int | None = None
    id: str = field(default_factory=lambda: secrets.token_hex(6))
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    started: float = field(default_factory=time.time)
    phase: str = "prepared"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SwapJournal:
        d = dict(d)
        for key in ("drop_before", "drop_after", "stage_drop"):
            d[key] = [tuple(s) for s in d.get(key, [])]
        d["create"] = [DumpObject(**o) for o in d.get("create", [])]
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}})


# --------------------------------------------------------------------------- the journal


def _record(store: StateStore, j: SwapJournal, phase: str, message: str, *, full: bool = False) -> None:
    j.phase = phase
    data: dict[str, Any] = j.to_dict() if full else {"id": j.id, "phase": phase}
    store.add_event(j.run_id, "info", JOURNAL_KIND, f"swap of `{j.database}` on {j.server}: {message}", data)


def open_journals(store: StateStore) -> list[SwapJournal]:
    """Journals whose swap was never closed (its process died, or it is still running)."""
    found: dict[str, SwapJournal] = {}
    since = 0
    while True:
        batch = store.events(since_id=since, kind=JOURNAL_KIND, limit=500)
        if not batch:
            break
        for ev in batch:
            since = ev.id
            jid = ev.data.get("id")
            if not jid:
                continue
            if "server" in ev.data:
                found[jid] = SwapJournal.from_dict(ev.data)
            elif jid in found:
                found[jid].phase = str(ev.data.get("phase"))
    return [j for j in found.values() if j.phase != "closed"]


def _checkpoint(step: str) -> None:
    spec = os.environ.get(PAUSE_ENV)
    if not spec or spec.split(":", 1)[0] != step:
        return
    marker = spec.split(":", 1)[1] if ":" in spec else ""
    if marker:
        with open(marker, "w") as fh:
            fh.write(f"{os.getpid()} {step}\n")
    while True:  # a test kills this process here
        time.sleep(1)


# --------------------------------------------------------------------------- the server's side


def show_creates(server: ServerConfig, db: str, only: dict[str, list[str]] | None = None) -> list[Saved]:
    """Every view, trigger, routine and event of `db` (or those in `only`) as (kind, name, sql_mode, statement)."""
    out: list[Saved] = []
    conn = mysql.connect(server, db)
    try:
        objs = mysql.object_names(conn, db)
        with conn.cursor() as cur:
            for kind, names in objs.items():
                word = {"views": "VIEW", "procedures": "PROCEDURE", "functions": "FUNCTION"}.get(kind)
                word = word or {"triggers": "TRIGGER", "events": "EVENT"}[kind]
                for n in names:
                    if only is not None and n not in only.get(kind, []):
                        continue
                    cur.execute(f"SHOW CREATE {word} {mysql.quote_ident(n)}")
                    row = cur.fetchone()
                    if row is None:
                        continue
                    if word == "VIEW":
                        out.append((word, n, "", row[1]))
                    elif word == "EVENT":
                        out.append((word, n, row[1], row[3]))
                    else:
                        out.append((word, n, row[1], row[2]))
    finally:
        conn.close()
    return out


def _present(server: ServerConfig, db: str) -> dict[str, set[str]]:
    conn = mysql.connect(server)
    try:
        if not mysql.database_exists(conn, db):
            return {}
        names = {k: set(v) for k, v in mysql.object_names(conn, db).items()}
        names["tables"] = {t.name for t in mysql.tables(conn, db) if t.kind != "VIEW"}
        return names
    finally:
        conn.close()


def _recreate_missing(server: ServerConfig, db: str, saved: list[Saved]) -> list[str]:
    """Create again those saved objects `db` does not hold now (views may need several rounds); what failed."""
    have = _present(server, db)
    plural = {"VIEW": "views", "PROCEDURE": "procedures", "FUNCTION": "functions", "TRIGGER": "triggers"}
    pending = [s for s in saved if s[1] not in have.get(plural.get(s[0], "events"), set())]
    errors: list[str] = []
    if not pending:
        return errors
    conn = mysql.connect(server, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.sql_mode")
            row = cur.fetchone()
            base_mode = row[0] if row else ""
            for _round in range(len(pending) + 1):
                left, errors = [], []
                for kind, name, mode, sql in pending:
                    try:
                        cur.execute("SET SESSION sql_mode=%s", (mode or base_mode,))
                        cur.execute(sql)
                    except pymysql.MySQLError as exc:
                        left.append((kind, name, mode, sql))
                        errors.append(f"{kind.lower()} `{name}`: {exc.args[-1] if exc.args else exc}")
                if not left or len(left) == len(pending):
                    break
                pending = left
    finally:
        conn.close()
    return errors


def replay(
    server: ServerConfig, db: str, objects: list[DumpObject], on_created: Callable[[], None] | None = None
) -> None:
    """Create the dump's objects in `db`: views first (in rounds, a view may name another), then
    routines, triggers and events, each after the session settings the dump set for it."""
    order = {"view": 0, "procedure": 1, "function": 1, "trigger": 2, "event": 3}
    pending = sorted(objects, key=lambda o: order.get(o.kind, 9))
    conn = mysql.connect(server, db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@SESSION.sql_mode, @@SESSION.character_set_client, @@SESSION.collation_connection")
            base = cur.fetchone()
            for _round in range(len(pending) + 1):
                left, errors = [], []
                for o in pending:
                    try:
                        cur.execute("SET SESSION sql_mode=%s, character_set_client=%s, collation_connection=%s", base)
                        for s in o.sets:
                            if "@saved" in s or "@OLD" in s:
                                continue
                            cur.execute(s)
                        cur.execute(o.text)
                        if on_created is not None:
                            on_created()
                    except pymysql.MySQLError as exc:
                        left.append(o)
                        errors.append(f"{o.kind} `{o.name}`: {exc.args[-1] if exc.args else exc}")
                if not left:
                    return
                if len(left) == len(pending):
                    raise RestoreError("cannot create " + "; ".join(errors[:3]))
                pending = left
    finally:
        conn.close()


def _drop(cur: pymysql.cursors.Cursor, db: str, objects: list[tuple[str, str]]) -> None:
    for kind, name in objects:
        cur.execute(f"DROP {kind.upper()} IF EXISTS {mysql.quote_ident(db)}.{mysql.quote_ident(name)}")


def _fix_sequence_defaults(cur: pymysql.cursors.Cursor, db: str, stage: str) -> None:
    """A column default `nextval(`stage`.`seq`)` keeps naming staging after the RENAME: point it at the target."""
    q = mysql.quote_ident
    cur.execute(
        "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA=%s AND COLUMN_DEFAULT LIKE %s",
        (db, "%" + q(stage).replace("_", "\\_") + ".%"),
    )
    for table, column, default in cur.fetchall():
        fixed = default.replace(q(stage) + ".", q(db) + ".")
        cur.execute(f"ALTER TABLE {q(db)}.{q(table)} ALTER COLUMN {q(column)} SET DEFAULT ({fixed})")


def _renamed(server: ServerConfig, j: SwapJournal) -> bool:
    """Did the one RENAME TABLE happen? (It is atomic: all pairs moved, or none.)"""
    target = _present(server, j.database).get("tables", set())
    if j.move_in:
        staged = _present(server, j.stage).get("tables", set())
        return all(t in target and t not in staged for t in j.move_in)
    old = _present(server, j.old).get("tables", set())
    return all(t in old for t in j.move_out)


# --------------------------------------------------------------------------- forward, back, cleanup


def _forward(server: ServerConfig, j: SwapJournal) -> None:
    """After the RENAME: the target's replaced objects go, the dump's come in. Idempotent."""
    conn = mysql.connect(server, read_timeout=3600)
    try:
        with conn.cursor() as cur:
            _fix_sequence_defaults(cur, j.database, j.stage)
            _drop(cur, j.database, [(s[0], s[1]) for s in j.drop_after])
            _drop(cur, j.database, [(o.kind, o.name) for o in j.create])  # a half-finished replay starts again
    finally:
        conn.close()
    first = {"done": False}

    def created() -> None:
        if not first["done"]:
            first["done"] = True
            _checkpoint("replaying")

    replay(server, j.database, j.create, on_created=created)


def _back(server: ServerConfig, j: SwapJournal, renamed: bool) -> list[str]:
    """Put the target back as it was; returns the objects that could not be created again."""
    q = mysql.quote_ident
    if renamed:
        conn = mysql.connect(server, read_timeout=3600)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION foreign_key_checks=0")
                _drop(cur, j.database, [(o.kind, o.name) for o in j.create])
                cur.execute(f"CREATE DATABASE IF NOT EXISTS {q(j.stage)}")
                back = [f"{q(j.database)}.{q(t)} TO {q(j.stage)}.{q(t)}" for t in j.move_in]
                back += [f"{q(j.old)}.{q(t)} TO {q(j.database)}.{q(t)}" for t in j.move_out]
                if back:
                    cur.execute("RENAME TABLE " + ", ".join(back))
        finally:
            conn.close()
    return _recreate_missing(server, j.database, j.drop_after + j.drop_before)


def _cleanup(server: ServerConfig, j: SwapJournal) -> None:
    q = mysql.quote_ident
    conn = mysql.connect(server, read_timeout=3600)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks=0")
            cur.execute(f"DROP DATABASE IF EXISTS {q(j.stage)}")
            cur.execute(f"DROP DATABASE IF EXISTS {q(j.old)}")
    finally:
        conn.close()


def _lock(lock_dir: Path, j: SwapJournal) -> JobLock | None:
    """The journal's flock: held by the swapping process, then by whoever recovers it (the kernel drops it
    when either dies). None: someone holds it."""
    lock = JobLock.for_key(lock_dir, f"swap-{j.id}")
    return lock if lock.try_acquire(j.run_id) else None


def _unlock(lock: JobLock, closed: bool) -> None:
    if closed:
        with contextlib.suppress(OSError):
            lock.path.unlink()
    lock.release()


def swap(server: ServerConfig, j: SwapJournal, store: StateStore, step: StepCallback, lock_dir: Path) -> None:
    """Swap the staged tables into the target, journaled. Returns when the target holds the restored data
    and the scratch databases are gone; on a failure puts the target back and raises RestoreError."""
    lock = _lock(lock_dir, j)
    if lock is None:
        raise RestoreError(f"the swap's lock is held by another process; `{j.database}` was not touched")
    try:
        _swap(server, j, store, step)
    finally:
        _unlock(lock, j.phase == "closed")


def _swap(server: ServerConfig, j: SwapJournal, store: StateStore, step: StepCallback) -> None:
    q = mysql.quote_ident
    try:
        _record(store, j, "prepared", "journal written before the first change", full=True)
    except DumpdeckError as exc:
        raise RestoreError(f"the swap's journal could not be written ({exc}); `{j.database}` was not touched") from None
    _checkpoint("journaled")
    renamed = False
    try:
        conn = mysql.connect(server, read_timeout=3600)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION foreign_key_checks=0")
                cur.execute(f"CREATE DATABASE {q(j.old)}")
                # triggers cannot move across databases with their table; views cannot move at all
                _drop(cur, j.database, [(s[0], s[1]) for s in j.drop_before])
                _drop(cur, j.stage, [(s[0], s[1]) for s in j.stage_drop])
                _checkpoint("objects-dropped")
                pairs = [f"{q(j.database)}.{q(t)} TO {q(j.old)}.{q(t)}" for t in j.move_out]
                pairs += [f"{q(j.stage)}.{q(t)} TO {q(j.database)}.{q(t)}" for t in j.move_in]
                if pairs:
                    cur.execute("RENAME TABLE " + ", ".join(pairs))
                renamed = True
        finally:
            conn.close()
        _checkpoint("renamed")
        _record(store, j, "renamed", f"{len(j.move_in)} table(s) in, {len(j.move_out)} out")
        step(f"swapped {len(j.move_in)} table(s) in with one RENAME TABLE ({len(j.move_out)} moved out)")
        _forward(server, j)
        _checkpoint("replayed")
        step(f"created {len(j.create)} view(s), routine(s), trigger(s) and event(s) from the dump")
    except Exception as exc:
        why = exc.args[-1] if getattr(exc, "args", None) else exc
        try:
            problems = _back(server, j, renamed)
        except (pymysql.MySQLError, DumpdeckError) as back_exc:
            raise RestoreError(
                f"swap failed ({why}) and putting `{j.database}` back failed too "
                f"({back_exc.args[-1] if back_exc.args else back_exc}): its journal stays open; "
                "`dumpdeck restore --recover` finishes or rolls back the swap"
            ) from None
        with contextlib.suppress(DumpdeckError):
            _record(store, j, "rolled-back", f"rolled back ({why})")
        with contextlib.suppress(pymysql.MySQLError):
            _cleanup(server, j)
            with contextlib.suppress(DumpdeckError):
                _record(store, j, "closed", "scratch databases dropped")
        extra = f"; could not re-create: {'; '.join(problems[:3])}" if problems else ""
        raise RestoreError(
            f"swap failed ({why}); `{j.database}` was put back as it was{extra}; the safety dump holds its data"
        ) from None
    try:
        _record(store, j, "done", "the target holds the restored data")
    except DumpdeckError as exc:  # the target is restored; a recovery would finish the (finished) swap again
        log.warning("swap of `%s`: the journal's done phase could not be written: %s", j.database, exc)
    _checkpoint("done")
    _cleanup(server, j)
    with contextlib.suppress(DumpdeckError):
        _record(store, j, "closed", "old tables and staging dropped")


# --------------------------------------------------------------------------- recovery


def _owner_alive(j: SwapJournal, store: StateStore) -> bool:
    if j.host == socket.gethostname():
        return process_alive(j.pid, j.started)
    if j.run_id is not None:  # another host: its run's heartbeat says
        run = store.get_run(j.run_id)
        return run is not None and run.active
    return True  # another host and no run to ask: never touched from here


def interrupted(store: StateStore) -> list[SwapJournal]:
    """Open journals whose process is gone: swaps waiting for a recovery (read only; nothing is resolved)."""
    return [j for j in open_journals(store) if not _owner_alive(j, store)]


def recover(config: Config, store: StateStore, *, server: str | None = None) -> list[tuple[SwapJournal, str, bool]]:
    """Resolve every open swap journal whose process is gone (and that no other process is resolving):
    (journal, what was done, ok)."""
    journals = open_journals(store)
    if not journals:
        return []
    store.reap_lost()
    out: list[tuple[SwapJournal, str, bool]] = []
    for j in journals:
        if server is not None and j.server != server:
            continue
        if _owner_alive(j, store):
            continue
        lock = _lock(config.lock_dir, j)
        if lock is None:
            continue  # its process still runs, or another process is resolving it right now
        try:
            srv = config.server(j.server)
            message = _resolve(srv, j, store)
            out.append((j, message, True))
            log.warning("swap of `%s` on %s left by pid %s: %s", j.database, j.server, j.pid, message)
        except (pymysql.MySQLError, DumpdeckError, OSError) as exc:
            why = exc.args[-1] if exc.args else exc
            out.append((j, f"not resolved ({why}); `dumpdeck restore --recover` tries again", False))
            log.error("swap of `%s` on %s left by pid %s not resolved: %s", j.database, j.server, j.pid, why)
        finally:
            _unlock(lock, j.phase == "closed")
    return out


def _resolve(server: ServerConfig, j: SwapJournal, store: StateStore) -> str:
    if j.phase in ("done", "rolled-back"):
        was_done = j.phase == "done"
        _cleanup(server, j)
        _record(store, j, "closed", "scratch databases dropped by recovery")
        return (
            "finished: the target held the restored data; scratch databases dropped"
            if was_done
            else "rolled back: the target was as it was; scratch databases dropped"
        )
    renamed = _renamed(server, j)
    if renamed:
        try:
            _forward(server, j)
        except (pymysql.MySQLError, DumpdeckError) as exc:
            why = exc.args[-1] if exc.args else exc
            problems = _back(server, j, True)
            _record(store, j, "rolled-back", f"recovery could not finish ({why}): rolled back")
            _cleanup(server, j)
            _record(store, j, "closed", "scratch databases dropped by recovery")
            extra = f"; could not re-create: {'; '.join(problems[:3])}" if problems else ""
            return f"rolled back: finishing failed ({why}); the target is as it was{extra}"
        _record(store, j, "done", "finished by recovery")
        _cleanup(server, j)
        _record(store, j, "closed", "old tables and staging dropped by recovery")
        return "finished: the tables had been swapped, the dump's objects are created; old tables dropped"
    problems = _back(server, j, False)
    _record(store, j, "rolled-back", "rolled back by recovery")
    _cleanup(server, j)
    _record(store, j, "closed", "scratch databases dropped by recovery")
    extra = f"; could not re-create: {'; '.join(problems[:3])}" if problems else ""
    return f"rolled back: the tables had not been swapped; the target's objects are back{extra}"
