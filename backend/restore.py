"""Level 4: the restore-test. Load a dump into a scratch database and compare.

Flow: L1–L3 (skipped when an earlier L3+ verification checked this exact sha256),
then on the target — the dump's own server (`same`), another configured server,
or a throwaway `mariadbd` (`sandbox`) — create `dumpdeck_rt_<random>_<db>`, load,
compare every table, view, routine, trigger and event of the manifest, count rows
and CHECKSUM TABLE each table, and drop the scratch database in a `finally`.

Safety:
- The dump is refused (a failed check, nothing loaded) when any statement would act
  outside the scratch database: USE, CREATE/DROP DATABASE, schema-qualified writes,
  server-wide statements (GRANT, SET GLOBAL, CHANGE MASTER, …). The same classification
  runs on every statement while loading, before it is sent.
- Every client input starts with the MariaDB sandbox-mode line, so `\\!` shell escapes
  in a dump cannot run. `sql_log_bin=0` is set where the account may (tried first,
  else a warning). On a real server (not the sandbox), DEFINER clauses are dropped and
  events are created DISABLEd, so nothing of the scratch copy runs by itself.
- Leftovers of an interrupted test are found by their prefix: `cleanup_scratch`.

Loader (the slow half; see bench/restore_load): the decoded stream is cut at the dump's
section markers (`-- Table structure for table …`). Each table's section loads on one
of `parallel` connections (a `mariadb` client process per job, fed over stdin, which
handles DELIMITER); a large table's INSERTs are split into chunks that load
concurrently once its CREATE TABLE ran (LOCK TABLES and DISABLE KEYS dropped for those).
The header's session settings (`/*!40101 SET … */`) start every job. View placeholders,
then after all tables: events, routines, final views and the footer, in one job, in the
original order. `parallel=1`, or a dump without section markers, loads the stream as is
through one client.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import manifest as manifest_mod
from . import mysql
from .codecs import StreamError, codec_for_path, open_decoded
from .config import Config, ServerConfig
from .credentials import client_credentials
from .errors import ConfigError, DumpdeckError
from .sqlstats import SANDBOX_LINE, Delimiter, Marker, SqlScanner, SqlStats, Statement
from .verify import CheckCallback, CheckResult, VerifyReport, _Ladder, record_report, verified_for, verify_file

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "dumpdeck_rt_"
CHUNK_BYTES = 16 * 1024 * 1024  # data per job when a table is split
BATCH_BYTES = 16 * 1024 * 1024  # small tables batched into one job up to this size
MEMORY_BYTES = 96 * 1024 * 1024  # decoded SQL held in memory waiting for a connection


class LoadError(DumpdeckError):
    """The client failed to load part of the dump."""


class ScopeError(LoadError):
    """The dump would write outside the scratch database."""


# --------------------------------------------------------------------------- scratch databases


def scratch_name(database: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", database) or "db"
    return (f"{SCRATCH_PREFIX}{secrets.token_hex(3)}_{safe}")[:64]


def cleanup_scratch(config: Config, server_name: str | None) -> list[str]:
    """Drop leftover `dumpdeck_rt_*` databases on a server; skips ones a session is using."""
    server = config.server(server_name)
    return _cleanup(server)


def _cleanup(server: ServerConfig) -> list[str]:
    conn = mysql.connect(server)
    dropped = []
    try:
        with conn.cursor() as cur:
            with contextlib.suppress(Exception):
                cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                (SCRATCH_PREFIX.replace("_", "\\_") + "%",),
            )
            names = [r[0] for r in cur.fetchall()]
            busy: set[str] = set()
            with contextlib.suppress(Exception):
                cur.execute(
                    "SELECT DISTINCT DB FROM information_schema.PROCESSLIST WHERE DB LIKE %s AND ID <> CONNECTION_ID()",
                    (SCRATCH_PREFIX.replace("_", "\\_") + "%",),
                )
                busy = {r[0] for r in cur.fetchall()}
            for name in names:
                if name in busy:
                    continue
                cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(name)}")
                dropped.append(name)
    finally:
        conn.close()
    return dropped


# --------------------------------------------------------------------------- the loader


@dataclass
class LoadResult:
    seconds: float
    bytes: int
    jobs: int
    connections: int
    mode: str  # parallel | sequential
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Job:
    id: int
    label: str
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    deps: frozenset[int] = frozenset()

    def add(self, raw: bytes) -> None:
        self.parts.append(raw)
        self.size += len(raw)


class _Scheduler:
    """Jobs in stream order; a worker takes the first whose dependencies are done. Bounded memory."""

    def __init__(self, limit: int):
        self.cv = threading.Condition()
        self.pending: list[_Job] = []
        self.done: set[int] = set()
        self.buffered = 0
        self.limit = limit
        self.closed = False
        self.error: BaseException | None = None

    def submit(self, job: _Job) -> None:
        with self.cv:
            while self.buffered > 0 and self.buffered + job.size > self.limit and self.error is None:
                self.cv.wait()
            if self.error is not None:
                raise self.error
            self.pending.append(job)
            self.buffered += job.size
            self.cv.notify_all()

    def take(self) -> _Job | None:
        with self.cv:
            while True:
                if self.error is not None:
                    return None
                for i, job in enumerate(self.pending):
                    if job.deps <= self.done:
                        return self.pending.pop(i)
                if self.closed and not self.pending:
                    return None
                self.cv.wait()

    def finish(self, job: _Job) -> None:
        with self.cv:
            self.done.add(job.id)
            self.buffered -= job.size
            self.cv.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cv:
            if self.error is None:
                self.error = exc
            self.cv.notify_all()

    def close(self) -> None:
        with self.cv:
            self.closed = True
            self.cv.notify_all()


_DEFINER_RE = re.compile(rb"DEFINER\s*=\s*(?:`[^`]*`|'[^']*'|[\w.%-]+)(?:\s*@\s*(?:`[^`]*`|'[^']*'|[\w.%-]+))?", re.I)
_EVENT_ENABLE_RE = re.compile(
    rb"\b(?:ENABLE|DISABLE\s+ON\s+(?:SLAVE|REPLICA))\b(?=\s+(?:COMMENT\s+'(?:[^'\\]|\\.)*'\s+)?DO\b)", re.I
)


class Loader:
    """Loads a decoded dump stream into one database through `mariadb` clients."""

    def __init__(
        self,
        server: ServerConfig,
        database: str,
        *,
        parallel: int = 2,
        init_sql: list[str] | None = None,
        neutralise: bool = False,
        client: str = "mariadb",
        chunk_bytes: int = CHUNK_BYTES,
        batch_bytes: int = BATCH_BYTES,
        memory_bytes: int = MEMORY_BYTES,
        cancel: threading.Event | None = None,
        fast_inserts: bool = True,
    ):
        self.server = server
        self.fast_inserts = fast_inserts
        self.database = database
        self.parallel = max(1, int(parallel or 1))
        self.init_sql = list(init_sql or [])
        self.neutralise = neutralise
        self.client = client
        self.chunk_bytes = chunk_bytes
        self.batch_bytes = batch_bytes
        self.memory_bytes = max(memory_bytes, 2 * chunk_bytes)
        self.cancel = cancel or threading.Event()
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    # ---------------------------------------------------------------- public

    def load(self, chunks: Iterable[bytes]) -> LoadResult:
        t0 = time.monotonic()
        with client_credentials(self.server) as (cred, env):
            self._argv = [
                self.client,
                f"--defaults-extra-file={cred}",
                f"--database={self.database}",
                "--max-allowed-packet=1G",
                "--batch",
                "--silent",
            ]
            if self.init_sql:
                self._argv.append("--init-command=" + "; ".join(self.init_sql))
            self._env = env
            if self.parallel <= 1:
                nbytes, jobs = self._sequential(chunks)
                mode, conns = "sequential", 1
            else:
                nbytes, jobs, mode = self._parallel(chunks)
                conns = self.parallel if mode == "parallel" else 1
        return LoadResult(time.monotonic() - t0, nbytes, jobs, conns, mode, self.warnings)

    def abort(self) -> None:
        self.cancel.set()
        with self._lock:
            for p in list(self._procs):
                with contextlib.suppress(ProcessLookupError):
                    p.kill()

    # ---------------------------------------------------------------- items

    def _items(self, chunks: Iterable[bytes]) -> Iterator[Statement | Marker | Delimiter]:
        scanner = SqlScanner(fast_inserts=self.fast_inserts)
        for chunk in chunks:
            if self.cancel.is_set():
                raise LoadError("restore-test cancelled")
            yield from scanner.feed(chunk)
        yield from scanner.finish()
        if scanner.unterminated is not None:
            raise LoadError(f"line {scanner.unterminated.line}: the SQL ends inside a statement; nothing more loaded")
        self.tail = scanner.tail
        self.total = scanner.bytes

    def _raw(self, item) -> bytes:
        if isinstance(item, Statement):
            if item.outside_scope:
                raise ScopeError(f"refused: {item.describe()} would act outside the scratch database")
            if self.neutralise and item.kind in (
                "create_view",
                "create_trigger",
                "create_procedure",
                "create_function",
                "create_event",
            ):
                raw = _DEFINER_RE.sub(b"", item.raw)
                if item.kind == "create_event":
                    raw = _EVENT_ENABLE_RE.sub(b"DISABLE", raw)
                return raw
        return item.raw

    # ---------------------------------------------------------------- client processes

    def _start(self, label: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self._env,
            close_fds=True,
            start_new_session=True,
        )
        with self._lock:
            self._procs.add(proc)
        if self.cancel.is_set():
            proc.kill()
        return proc

    def _finish(self, proc: subprocess.Popen, label: str, err_box: list[bytes]) -> None:
        rc = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        if rc != 0:
            msg = b"".join(err_box).decode("utf-8", errors="replace").strip().splitlines()
            msg = [m for m in msg if m.strip()]
            text = msg[-1] if msg else f"exit code {rc}"
            if self.cancel.is_set():
                raise LoadError("restore-test cancelled")
            raise LoadError(f"{label}: mariadb exited {rc}: {text}")

    @staticmethod
    def _drain(proc: subprocess.Popen, box: list[bytes]) -> threading.Thread:
        def run() -> None:
            assert proc.stderr is not None
            box.append(proc.stderr.read()[-4000:])

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def _run_job(self, label: str, parts: Iterable[bytes]) -> None:
        proc = self._start(label)
        box: list[bytes] = []
        t = self._drain(proc, box)
        assert proc.stdin is not None
        try:
            for part in parts:
                proc.stdin.write(part)
            proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        t.join()
        self._finish(proc, label, box)

    # ---------------------------------------------------------------- sequential

    def _sequential(self, chunks: Iterable[bytes]) -> tuple[int, int]:
        proc = self._start("load")
        box: list[bytes] = []
        t = self._drain(proc, box)
        assert proc.stdin is not None
        ok = False
        try:
            try:
                proc.stdin.write(SANDBOX_LINE + b"\n")
                for item in self._items(chunks):
                    proc.stdin.write(self._raw(item))
                proc.stdin.write(self.tail)
            except (BrokenPipeError, OSError):
                pass
            ok = True
        finally:
            if not ok:
                proc.kill()
            with contextlib.suppress(OSError):
                proc.stdin.close()
            t.join()
            if ok:
                self._finish(proc, "load", box)
            else:
                proc.wait()
                with self._lock:
                    self._procs.discard(proc)
        return self.total, 1

    # ---------------------------------------------------------------- parallel

    def _parallel(self, chunks: Iterable[bytes]) -> tuple[int, int, str]:
        sched = _Scheduler(self.memory_bytes)
        prefix: list[bytes] = [SANDBOX_LINE + b"\n"]
        jobs_made = 0
        workers: list[threading.Thread] = []

        def worker() -> None:
            while True:
                job = sched.take()
                if job is None:
                    return
                try:
                    self._run_job(job.label, [*prefix, *job.parts, b"\n"])
                except BaseException as exc:
                    sched.fail(exc)
                    self.abort()
                    return
                sched.finish(job)

        next_id = 0

        def new_job(label: str, deps: Iterable[int] = ()) -> _Job:
            nonlocal next_id, jobs_made
            next_id += 1
            jobs_made += 1
            return _Job(next_id, label, deps=frozenset(deps))

        items = self._items(chunks)
        # 1. header: session settings up to the first section marker
        header: list[Statement] = []
        first: Marker | None = None
        fallback_items: list = []
        for item in items:
            if isinstance(item, Marker):
                first = item
                break
            fallback_items.append(item)
            if isinstance(item, Statement):
                if item.kind != "set":
                    break
                header.append(item)
        if first is None:
            # not a sectioned dump (or the header holds more than SET): load it as it is
            self.warnings.append("no table sections found before other statements: loaded through one connection")
            self._sequential_from(fallback_items, items)
            return self.total, 1, "sequential"

        for st in header:
            prefix.append(self._raw(st).lstrip() + b"\n")
        all_ids: list[int] = []
        for _ in range(self.parallel):
            t = threading.Thread(target=worker, daemon=True, name="restore-load")
            t.start()
            workers.append(t)

        batch: _Job | None = None
        section: list = []  # items of the current section while it is small
        section_size = 0
        section_name: str | None = None
        split: dict | None = None  # a table being split: its DDL job id, chunk ids, the chunk being filled
        post: _Job | None = None

        def submit(job: _Job) -> None:
            sched.submit(job)
            all_ids.append(job.id)

        def flush_batch() -> None:
            nonlocal batch
            if batch is not None and batch.parts:
                submit(batch)
            batch = None

        def end_section() -> None:
            nonlocal section, section_size, section_name, split, batch
            if split is not None:
                if split["chunk"].parts:
                    submit(split["chunk"])
                    split["ids"].append(split["chunk"].id)
                tail = new_job(f"table `{section_name}` (after its data)", [*split["ids"], split["ddl"]])
                for it in section:
                    tail.add(self._raw(it))
                if tail.parts:
                    submit(tail)
                split = None
            elif section:
                if batch is None:
                    batch = new_job(f"`{section_name}`")
                elif not batch.label.endswith("…"):
                    batch.label += " …"
                for it in section:
                    batch.add(self._raw(it))
                if batch.size >= self.batch_bytes:
                    flush_batch()
            section, section_size, section_name = [], 0, None

        def start_split() -> None:
            """The current table is big: its DDL becomes a job, its INSERTs go out in chunks."""
            nonlocal section, split
            flush_batch()
            ddl = new_job(f"table `{section_name}` (structure)")
            chunk = new_job(f"table `{section_name}` (data)", [ddl.id])
            seen_insert = False
            for it in section:
                if isinstance(it, Statement) and it.kind in ("lock_tables", "alter_keys"):
                    continue
                if isinstance(it, Statement) and it.kind == "insert":
                    seen_insert = True
                (chunk if seen_insert else ddl).add(self._raw(it))
            submit(ddl)
            split = {"ddl": ddl.id, "ids": [], "chunk": chunk}
            section = []

        item = first
        try:
            while item is not None:
                if isinstance(item, Marker) and post is None and item.kind in ("events", "routines", "view_final"):
                    end_section()
                    flush_batch()
                    post = new_job("events, routines and views")
                if post is not None:
                    post.add(self._raw(item))
                elif isinstance(item, Marker):
                    if not (item.kind == "table_data" and item.name == section_name):
                        end_section()
                        section_name = item.name
                    if split is None:
                        section.append(item)
                        section_size += len(item.raw)
                    else:
                        section.append(item)
                elif split is not None:
                    if isinstance(item, Statement) and item.kind == "insert":
                        split["chunk"].add(self._raw(item))
                        if split["chunk"].size >= self.chunk_bytes:
                            submit(split["chunk"])
                            split["ids"].append(split["chunk"].id)
                            split["chunk"] = new_job(f"table `{section_name}` (data)", [split["ddl"]])
                    elif isinstance(item, Statement) and item.kind in ("alter_keys", "unlock_tables"):
                        pass  # dropped: the chunks of this table load concurrently
                    else:
                        self._raw(item)
                        section.append(item)
                else:
                    self._raw(item)  # the scope check runs now, before anything is queued
                    section.append(item)
                    section_size += len(item.raw)
                    if (
                        section_size >= self.chunk_bytes
                        and isinstance(item, Statement)
                        and item.kind == "insert"
                        and section_name is not None
                    ):
                        start_split()
                item = next(items, None)
            end_section()
            flush_batch()
            if post is None:
                post = new_job("footer")
            post.add(self.tail)
            post.deps = frozenset(all_ids)
            sched.submit(post)
            sched.close()
        except BaseException as exc:
            sched.fail(exc)
            self.abort()
            for t in workers:
                t.join()
            raise
        for t in workers:
            t.join()
        if sched.error is not None:
            raise sched.error
        return self.total, jobs_made, "parallel"

    def _sequential_from(self, first_items: list, rest: Iterator) -> None:
        def gen():
            for it in first_items:
                yield self._raw(it)
            for it in rest:
                yield self._raw(it)
            yield self.tail

        self._run_job("load", _prepend(SANDBOX_LINE + b"\n", gen()))


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def decoded_chunks(path: Path, codec: str | None = None) -> Iterator[bytes]:
    """The decoded SQL of a dump, chunk by chunk; StreamError at the end if it did not decode."""
    stream = open_decoded(path, codec or codec_for_path(path))
    ok = False
    try:
        yield from stream.chunks()
        ok = True
    finally:
        stream.close(check=ok)


# --------------------------------------------------------------------------- the restore-test


@dataclass
class _Target:
    label: str
    server: ServerConfig
    sandbox: object | None = None
    tmpdir: tempfile.TemporaryDirectory | None = None


def _open_target(config: Config, target: str, manifest, entry_server: str | None) -> _Target:
    if target == "sandbox":
        from .sandbox import Sandbox

        tmp = tempfile.TemporaryDirectory(prefix="dumpdeck-rt-sandbox-")
        try:
            sb = Sandbox.create(Path(tmp.name) / "srv").start()
        except BaseException:
            tmp.cleanup()
            raise
        server = ServerConfig(name="sandbox", host=None, socket=sb.socket, user="root")
        return _Target("sandbox", server, sb, tmp)
    if target == "same":
        name = (manifest.server or {}).get("name") if manifest is not None else None
        name = name or entry_server
        if name is None or name not in config.servers:
            if len(config.servers) == 1 and name is None:
                name = next(iter(config.servers))
            else:
                raise ConfigError(
                    f"restore-test target 'same': the dump's server {name or '(unknown)'} is not configured; "
                    f"choose --target sandbox or one of: {', '.join(config.servers)}"
                )
        return _Target(f"same ({name})", config.servers[name])
    return _Target(target, config.server(target))


def _close_target(t: _Target) -> None:
    if t.sandbox is not None:
        with contextlib.suppress(Exception):
            t.sandbox.destroy()  # type: ignore[attr-defined]
    if t.tmpdir is not None:
        with contextlib.suppress(Exception):
            t.tmpdir.cleanup()


def restore_test(
    path: Path,
    config: Config,
    target: str | None = None,
    on_check: CheckCallback | None = None,
    record: bool = True,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Run L1–L3 (unless already proven for this sha256), then load into a scratch database and compare."""
    path = Path(path)
    target = target or config.restore_test.target
    parallel = parallel or config.restore_test.parallel
    t0 = time.monotonic()
    report = VerifyReport(path=path, level_requested=4, level_reached=0, passed=False, target=target)
    ladder = _Ladder(report, on_check)

    def forward(c: CheckResult) -> None:
        report.checks.append(c)
        if on_check is not None:
            with contextlib.suppress(Exception):
                on_check(c)

    # ---- L1 always (cheap); L2–L3 unless an earlier verification proved this exact file
    l1 = verify_file(path, level=1, record=False)
    for c in l1.checks:
        forward(c)
    report.sha256 = l1.sha256
    if not l1.passed:
        return _finish(report, ladder, 0, t0, record, None)
    manifest = None
    with contextlib.suppress(manifest_mod.ManifestError):
        if manifest_mod.manifest_path(path).exists():
            manifest = manifest_mod.load(path)
    stats: SqlStats | None = None
    prior = verified_for(manifest, l1.sha256 or "", 3) if manifest is not None else None
    if prior is not None and all(t.exact_rows is not None for t in manifest.tables):
        ladder.add("levels 2–3", True, f"already verified at level {prior.level} on {prior.at} for this sha256", 3)
    else:
        full = verify_file(path, level=3, record=record)
        for c in full.checks:
            if c.level >= 2:
                forward(c)
        stats = full.stats
        if not full.passed:
            failed = [c for c in full.checks if not c.passed]
            ladder.failed_level = min(c.level for c in failed) if failed else 3
            ladder.add("restore", False, "refused: the dump did not pass levels 1–3, nothing was loaded", 4)
            return _finish(report, ladder, full.level_reached, t0, False, None)
        with contextlib.suppress(manifest_mod.ManifestError):
            if manifest is not None:
                manifest = manifest_mod.load(path)
    entry_server = None
    with contextlib.suppress(ValueError):
        rel = path.resolve().relative_to(Path(config.backup.dir).resolve()).parts
        entry_server = rel[0] if len(rel) == 3 else None
    database = manifest.database if manifest is not None else _guess_db(path)

    # ---- L4
    try:
        tgt = _open_target(config, target, manifest, entry_server)
    except DumpdeckError as exc:
        ladder.add("target", False, str(exc), 4)
        return _finish(report, ladder, 3, t0, record, None)
    report.target = tgt.label
    scratch = scratch_name(database)
    extra: dict = {}
    try:
        _restore_into(path, tgt, scratch, manifest, stats, ladder, parallel, cancel, extra)
    finally:
        try:
            _drop(tgt.server, scratch)
            ladder.add("scratch dropped", True, f"`{scratch}` dropped on {tgt.label}", 4)
        except Exception as exc:
            ladder.add(
                "scratch dropped",
                False,
                f"could not drop `{scratch}` on {tgt.label}: {exc}; run `dumpdeck clean --scratch`",
                4,
            )
        _close_target(tgt)
        if tgt.sandbox is not None:
            ladder.add("sandbox stopped", not tgt.sandbox.alive(), "sandbox mariadbd stopped and removed", 4)
    reached = 4 if ladder.ok_through(4) else 3
    return _finish(report, ladder, reached, t0, record, extra)


def _guess_db(path: Path) -> str:
    from .catalog import scan

    name = path.name
    for e in scan(path.parent).entries:
        if e.path.name == name:
            return e.database
    return name.split(".sql")[0]


def _finish(
    report: VerifyReport, ladder: _Ladder, reached: int, t0: float, record: bool, extra: dict | None
) -> VerifyReport:
    report.level_reached = reached
    report.passed = reached >= report.level_requested
    report.duration = time.monotonic() - t0
    if record and extra is not None:
        record_report(report, extra=extra.get("manifest"))
    return report


def _drop(server: ServerConfig, scratch: str) -> None:
    conn = mysql.connect(server)
    try:
        with conn.cursor() as cur:
            with contextlib.suppress(Exception):
                cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(scratch)}")
    finally:
        conn.close()


def _restore_into(
    path: Path,
    tgt: _Target,
    scratch: str,
    manifest,
    stats: SqlStats | None,
    ladder: _Ladder,
    parallel: int,
    cancel: threading.Event | None,
    extra: dict,
) -> None:
    q = mysql.quote_ident(scratch)
    try:
        conn = mysql.connect(tgt.server)
    except DumpdeckError as exc:
        ladder.add("target", False, str(exc), 4)
        return
    init_sql: list[str] = []
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SET SESSION sql_log_bin=0")
                init_sql.append("SET SESSION sql_log_bin=0")
                binlog = "binary log off for the load"
            except Exception as exc:
                binlog = (
                    f"warning: cannot turn the binary log off ({exc.args[-1] if exc.args else exc}); loaded with it on"
                )
            try:
                cur.execute(f"CREATE DATABASE {q} CHARACTER SET utf8mb4")
            except Exception as exc:
                ladder.add(
                    "scratch database",
                    False,
                    f"cannot create `{scratch}` on {tgt.label}: "
                    f"{exc.args[-1] if exc.args else exc} (the account needs CREATE, DROP, INSERT, … "
                    f"ON `{SCRATCH_PREFIX.replace('_', chr(92) + '_')}%`.*)",
                    4,
                )
                return
        ladder.add("scratch database", True, f"`{scratch}` created on {tgt.label}; {binlog}", 4)
    finally:
        conn.close()

    loader = Loader(
        tgt.server, scratch, parallel=parallel, init_sql=init_sql, neutralise=tgt.sandbox is None, cancel=cancel
    )
    try:
        res = loader.load(decoded_chunks(path, manifest.codec if manifest is not None else None))
    except ScopeError as exc:
        ladder.add("scope", False, str(exc), 4)
        return
    except (LoadError, StreamError) as exc:
        ladder.add("load", False, str(exc), 4)
        return
    rate = res.bytes / res.seconds / 1e6 if res.seconds > 0 else 0
    ladder.add(
        "load",
        True,
        f"{res.bytes:,} bytes of SQL in {res.seconds:.1f}s ({rate:.1f} MB/s), {res.mode}, "
        f"{res.connections} connection(s), {res.jobs} job(s)"
        + ("; " + "; ".join(res.warnings) if res.warnings else ""),
        4,
        seconds=round(res.seconds, 3),
    )
    _compare(tgt.server, scratch, manifest, stats, ladder, extra)


def _compare(
    server: ServerConfig, scratch: str, manifest, stats: SqlStats | None, ladder: _Ladder, extra: dict
) -> None:
    conn = mysql.connect(server, scratch, read_timeout=3600)
    try:
        with conn.cursor() as cur:
            objects = mysql.object_names(conn, scratch)
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                "AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
                (scratch,),
            )
            tables = [r[0] for r in cur.fetchall()]
            if manifest is not None:
                want_tables = [t.name for t in manifest.tables]
                want = {
                    k: list(getattr(manifest, k)) for k in ("views", "procedures", "functions", "triggers", "events")
                }
            elif stats is not None:
                want_tables = list(stats.tables)
                want = {k: list(getattr(stats, k)) for k in ("views", "procedures", "functions", "triggers", "events")}
            else:
                want_tables, want = tables, objects
            missing = [t for t in want_tables if t not in set(tables)]
            if missing:
                ladder.add(
                    "tables present",
                    False,
                    f"{len(missing)} of {len(want_tables)} table(s) missing after "
                    f"the load: {', '.join('`' + m + '`' for m in missing[:5])}",
                    4,
                )
            else:
                ladder.add("tables present", True, f"all {len(want_tables)} tables", 4)
            missing_objs = []
            for kind, names in want.items():
                have = set(objects.get(kind, []))
                missing_objs += [f"{kind[:-1]} `{n}`" for n in names if n not in have]
            total = sum(len(v) for v in want.values())
            if missing_objs:
                ladder.add(
                    "objects present",
                    False,
                    f"{len(missing_objs)} of {total} missing: " + ", ".join(missing_objs[:5]),
                    4,
                )
            else:
                ladder.add("objects present", True, ", ".join(f"{len(v)} {k}" for k, v in want.items()), 4)

            figures: dict[str, dict] = {}
            for t in tables:
                qt = mysql.quote_ident(t)
                cur.execute(f"SELECT COUNT(*) FROM {qt}")
                rows = int(cur.fetchone()[0])
                cur.execute(f"CHECKSUM TABLE {qt}")
                row = cur.fetchone()
                figures[t] = {"rows": rows, "checksum": int(row[1]) if row and row[1] is not None else None}
            expected: dict[str, int] = {}
            if manifest is not None:
                expected = {t.name: t.exact_rows for t in manifest.tables if t.exact_rows is not None}
            elif stats is not None:
                expected = dict(stats.tables)
            wrong = [
                f"`{t}` {figures[t]['rows']:,} rows, dump has {n:,}"
                for t, n in expected.items()
                if t in figures and figures[t]["rows"] != n
            ]
            total_rows = sum(f["rows"] for f in figures.values())
            if wrong:
                ladder.add(
                    "row counts", False, f"{len(wrong)} table(s) differ: " + "; ".join(wrong[:3]), 4, tables=figures
                )
            else:
                basis = (
                    f"equal to the dump's exact counts for {len(expected)} tables"
                    if expected
                    else "no exact counts to compare"
                )
                ladder.add(
                    "row counts", True, f"{total_rows:,} rows in {len(figures)} tables, {basis}", 4, tables=figures
                )
            ladder.add(
                "checksums",
                True,
                f"CHECKSUM TABLE recorded for {len(figures)} tables",
                4,
                checksums={t: f["checksum"] for t, f in figures.items()},
            )
            if manifest is not None:
                updated = []
                for t in manifest.tables:
                    if t.exact_rows is None and t.name in figures and not wrong:
                        import dataclasses

                        t = dataclasses.replace(t, exact_rows=figures[t.name]["rows"])
                    updated.append(t)
                extra["manifest"] = {"tables": updated}
            else:
                extra["manifest"] = {}
    finally:
        conn.close()
