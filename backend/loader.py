"""The SQL loader: feed a decoded dump into a database over parallel `mariadb` client connections.

Loader (the slow half; see bench/restore_load): the decoded stream is cut at the dump's
section markers (`-- Table structure for table …`). Each table's section loads on one
of `parallel` connections (a `mariadb` client process per job, fed over stdin, which
handles DELIMITER); a large table's INSERTs are split into chunks that load
concurrently once its CREATE TABLE ran (LOCK TABLES and DISABLE KEYS dropped for those).
Such a table, when InnoDB, is created without its plain secondary KEYs, which one
`ALTER TABLE … ADD KEY …` adds after the last chunk (as myloader does; `defer_secondary_keys`):
an index built by sorting once is far cheaper than random inserts into it from two connections,
and SHOW CREATE TABLE ends as in the dump.
The header's session settings (`/*!40101 SET … */`) start every job. View placeholders,
then after all tables: events, routines, final views and the footer, in one job, in the
original order. `parallel=1`, or a dump without section markers, loads the stream as is
through one client.

Every client runs with `--local-infile=0` (LOAD DATA LOCAL cannot read a file of this
host), `--binary-mode` (the client interprets no command of the stream but DELIMITER and
`\\C`: no `\\u`, `\\r`, `connect`, `use`, `source`, `\\!`, `system`) and starts its input with
the sandbox-mode line; it dies with the thread that started it (backend.lifeline). Each
statement is checked (`Statement.outside_scope`, backend.sqlstats) before it is queued, so
a refused statement never reaches a client.
"""

from __future__ import annotations

import contextlib
import logging
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .codecs import RawSource, codec_for_path, open_decoded
from .config import ServerConfig
from .credentials import client_credentials
from .errors import LoadError, ScopeError
from .lifeline import die_with_parent
from .sqlstats import SANDBOX_LINE, Delimiter, Marker, SqlScanner, Statement

Item = Statement | Marker | Delimiter

log = logging.getLogger(__name__)

CHUNK_BYTES = 16 * 1024 * 1024  # data per job when a table is split
BATCH_BYTES = 16 * 1024 * 1024  # small tables batched into one job up to this size
MEMORY_BYTES = 96 * 1024 * 1024  # decoded SQL held in memory waiting for a connection
DEFER_KEYS = True  # a split InnoDB table's plain secondary KEYs are added after its data (bench/ turns it off)


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
class LoadProgress:
    """Where a load stands: SQL bytes read from the dump and loaded (jobs finished), tables done."""

    bytes_read: int
    bytes_loaded: int
    tables_done: int
    tables_seen: int
    elapsed: float
    current: str | None = None


@dataclass
class _Job:
    id: int
    label: str
    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    deps: frozenset[int] = frozenset()
    tables: list[str] = field(default_factory=list)  # tables whose last part is in this job

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
        self.bytes_done = 0
        self.tables_done = 0

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
            self.bytes_done += job.size
            self.tables_done += len(job.tables)
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
        password: str | None = None,
        on_progress: Callable[[LoadProgress], None] | None = None,
        transform: Callable[[Statement | Marker | Delimiter], Statement | Marker | Delimiter | None] | None = None,
        progress_interval: float = 0.5,
        defer_keys: bool | None = None,
    ):
        # a split table's plain secondary KEYs: added after its data in one ALTER (defer_secondary_keys)
        self.defer_keys = DEFER_KEYS if defer_keys is None else defer_keys
        self.on_progress = on_progress
        self.transform = transform
        self.progress_interval = progress_interval
        self._sched: _Scheduler | None = None
        self._tables_seen = 0
        self._seq_done = 0  # sequential path: bytes written, tables passed
        self._seq_tables = 0
        self._current: str | None = None
        self._t0 = time.monotonic()
        self._last_emit = 0.0
        self.server = server
        self.password = password  # overrides the server's password source (a temporary account)
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
        self._procs: set[subprocess.Popen[bytes]] = set()
        self._lock = threading.Lock()
        self.warnings: list[str] = []

    # ---------------------------------------------------------------- public

    def load(self, chunks: Iterable[bytes]) -> LoadResult:
        try:
            return self._load(chunks)
        finally:
            # a decoder generator left mid-stream (a cancel, a failed load) ends now, its process with it,
            # not whenever the garbage collector gets to it (a traceback kept for the report holds it)
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _load(self, chunks: Iterable[bytes]) -> LoadResult:
        t0 = self._t0 = time.monotonic()
        with client_credentials(self.server, self.password, tool=self.client) as cred:
            self._pass_fds = cred.pass_fds
            self._argv = [
                self.client,
                cred.argument,
                f"--database={self.database}",
                "--max-allowed-packet=1G",
                "--batch",
                "--silent",
                "--local-infile=0",
                "--binary-mode",
            ]
            if self.init_sql:
                self._argv.append("--init-command=" + "; ".join(self.init_sql))
            self._env = cred.env
            if self.parallel <= 1:
                nbytes, jobs = self._sequential(chunks)
                mode, conns = "sequential", 1
            else:
                nbytes, jobs, mode = self._parallel(chunks)
                conns = self.parallel if mode == "parallel" else 1
        self._emit(force=True, done=True)
        return LoadResult(time.monotonic() - t0, nbytes, jobs, conns, mode, self.warnings)

    def abort(self) -> None:
        self.cancel.set()
        with self._lock:
            for p in list(self._procs):
                with contextlib.suppress(ProcessLookupError):
                    p.kill()

    # ---------------------------------------------------------------- items

    def progress(self, done: bool = False) -> LoadProgress:
        sched = self._sched
        read = getattr(self, "_scanner", None)
        nread = read.bytes if read is not None else 0
        if sched is not None:
            loaded, tables = sched.bytes_done, sched.tables_done
        else:
            loaded, tables = self._seq_done, self._seq_tables
        if done:
            loaded, tables = nread, self._tables_seen
        return LoadProgress(nread, loaded, tables, self._tables_seen, time.monotonic() - self._t0, self._current)

    def _emit(self, force: bool = False, done: bool = False) -> None:
        if self.on_progress is None:
            return
        now = time.monotonic()
        if not force and now - self._last_emit < self.progress_interval:
            return
        self._last_emit = now
        with contextlib.suppress(Exception):  # a broken observer never breaks a load
            self.on_progress(self.progress(done))

    def _items(self, chunks: Iterable[bytes]) -> Iterator[Item]:
        scanner = self._scanner = SqlScanner(fast_inserts=self.fast_inserts)
        transform = self.transform

        def out(found: Iterable[Item]) -> Iterator[Item]:
            for item in found:
                if isinstance(item, Marker) and item.kind in ("table_structure", "sequence_structure"):
                    self._tables_seen += 1
                    self._current = item.name
                kept = transform(item) if transform is not None else item
                if kept is not None:
                    yield kept

        for chunk in chunks:
            if self.cancel.is_set():
                raise LoadError("load cancelled")
            yield from out(scanner.feed(chunk))
            self._emit()
        yield from out(scanner.finish())
        if scanner.unterminated is not None:
            raise LoadError(f"line {scanner.unterminated.line}: the SQL ends inside a statement; nothing more loaded")
        self.tail = scanner.tail
        self.total = scanner.bytes

    def _raw(self, item: Item) -> bytes:
        if isinstance(item, Statement):
            if item.outside_scope:
                why = f" ({item.hazard})" if item.hazard else ""
                raise ScopeError(f"refused: {item.describe()} would act outside the scratch database{why}")
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

    def _start(self, label: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            self._argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=self._env,
            pass_fds=self._pass_fds,
            close_fds=True,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 (one prctl call, no locks taken)
        )
        with self._lock:
            self._procs.add(proc)
        if self.cancel.is_set():
            proc.kill()
        return proc

    def _finish(self, proc: subprocess.Popen[bytes], label: str, err_box: list[bytes]) -> None:
        rc = proc.wait()
        with self._lock:
            self._procs.discard(proc)
        if rc != 0:
            msg = b"".join(err_box).decode("utf-8", errors="replace").strip().splitlines()
            msg = [m for m in msg if m.strip()]
            text = msg[-1] if msg else f"exit code {rc}"
            if self.cancel.is_set():
                raise LoadError("load cancelled")
            raise LoadError(f"{label}: mariadb exited {rc}: {text}")

    @staticmethod
    def _drain(proc: subprocess.Popen[bytes], box: list[bytes]) -> threading.Thread:
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
                    raw = self._raw(item)
                    proc.stdin.write(raw)
                    self._seq_done += len(raw)
                    if isinstance(item, Marker) and item.kind in ("table_structure", "sequence_structure"):
                        self._seq_tables = self._tables_seen - 1
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
        sched = self._sched = _Scheduler(self.memory_bytes)
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
        seq_ids: list[int] = []  # jobs holding a CREATE SEQUENCE: a table's DEFAULT NEXTVAL needs it first

        def new_job(label: str, deps: Iterable[int] = ()) -> _Job:
            nonlocal next_id, jobs_made
            next_id += 1
            jobs_made += 1
            return _Job(next_id, label, deps=frozenset([*deps, *seq_ids]))

        items = self._items(chunks)
        # 1. header: session settings up to the first section marker
        header: list[Statement] = []
        first: Marker | None = None
        fallback_items: list[Item] = []
        for lead in items:
            if isinstance(lead, Marker):
                first = lead
                break
            fallback_items.append(lead)
            if isinstance(lead, Statement):
                if lead.kind != "set":
                    break
                header.append(lead)
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
        section: list[Item] = []  # items of the current section while it is small
        section_size = 0
        section_name: str | None = None
        split: dict[str, Any] | None = None  # a table being split: its DDL job id, chunk ids, the chunk being filled
        post: _Job | None = None

        deferred: dict[str, int] = {}  # a table whose KEYs come after its data -> the job that adds them

        def referenced(its: Iterable[Item]) -> set[int]:
            """Jobs adding deferred KEYs that a CREATE TABLE here references (its FOREIGN KEY needs them)."""
            out: set[int] = set()
            for it in its:
                if deferred and isinstance(it, Statement) and it.kind == "create_table":
                    for m in _REFERENCES_RE.finditer(it.raw):
                        job_id = deferred.get(m.group(1).replace(b"``", b"`").decode("utf-8", "replace"))
                        if job_id is not None:
                            out.add(job_id)
            return out

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
                if split["add_keys"] is not None:
                    tail.add(split["add_keys"])
                for it in section:
                    tail.add(self._raw(it))
                if section_name is not None:
                    tail.tables.append(section_name)
                    if split["add_keys"] is not None:
                        deferred[section_name] = tail.id
                submit(tail)
                split = None
            elif section:
                if batch is None:
                    batch = new_job(f"`{section_name}`")
                elif not batch.label.endswith("…"):
                    batch.label += " …"
                batch.deps = batch.deps | referenced(section)
                for it in section:
                    batch.add(self._raw(it))
                first_kind = section[0].kind if isinstance(section[0], Marker) else None
                if section_name is not None and first_kind in ("table_structure", "table_data", "sequence_structure"):
                    batch.tables.append(section_name)
                if first_kind == "sequence_structure":
                    seq_ids.append(batch.id)
                    flush_batch()
                elif batch.size >= self.batch_bytes:
                    flush_batch()
            section, section_size, section_name = [], 0, None

        def start_split() -> None:
            """The current table is big: its DDL becomes a job, its INSERTs go out in chunks."""
            nonlocal section, split
            flush_batch()
            ddl = new_job(f"table `{section_name}` (structure)", referenced(section))
            chunk = new_job(f"table `{section_name}` (data)", [ddl.id])
            seen_insert = False
            add_keys: bytes | None = None
            for it in section:
                if isinstance(it, Statement) and it.kind in ("lock_tables", "alter_keys"):
                    continue
                if isinstance(it, Statement) and it.kind == "insert":
                    seen_insert = True
                raw = self._raw(it)
                if self.defer_keys and isinstance(it, Statement) and it.kind == "create_table" and add_keys is None:
                    raw, add_keys = defer_secondary_keys(raw)
                (chunk if seen_insert else ddl).add(raw)
            submit(ddl)
            split = {"ddl": ddl.id, "ids": [], "chunk": chunk, "add_keys": add_keys}
            section = []

        item: Item | None = first
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

    def _sequential_from(self, first_items: list[Item], rest: Iterator[Item]) -> None:
        def gen() -> Iterator[bytes]:
            for it in first_items:
                yield self._raw(it)
            for it in rest:
                yield self._raw(it)
            yield self.tail

        self._run_job("load", _prepend(SANDBOX_LINE + b"\n", gen()))


_REFERENCES_RE = re.compile(rb"\bREFERENCES `((?:[^`]|``)*)` \(")
_KEY_LINE_RE = re.compile(rb"^\s+KEY `(?:[^`]|``)*` \(")
_BAIL_LINE_RE = re.compile(rb"^\s+(?:CONSTRAINT|FOREIGN|FULLTEXT|SPATIAL|VECTOR|PERIOD)\b", re.I)
_FIRST_COL_RE = re.compile(rb"\(`((?:[^`]|``)*)`")
_COL_RE = re.compile(rb"^\s+`((?:[^`]|``)*)` ")


def defer_secondary_keys(create: bytes) -> tuple[bytes, bytes | None]:
    """A CREATE TABLE (as SHOW CREATE TABLE prints it) without its plain secondary KEYs, and the
    `ALTER TABLE … ADD KEY …` that adds them back after the data, or (create, None) when in doubt.

    Only InnoDB tables whose indexes are PRIMARY/UNIQUE plus plain KEYs: a table with a FOREIGN
    KEY, CHECK constraint, FULLTEXT/SPATIAL/VECTOR index or PERIOD is left as it is, and so is one
    whose AUTO_INCREMENT column leads one of the plain keys (the CREATE would need that key).
    Added back in their order after the unique keys, the keys show in SHOW CREATE TABLE as before.
    """
    start = create.find(b"CREATE TABLE")
    if start < 0:
        return create, None
    head_end = create.find(b"(\n", start)
    close = create.find(b"\n)", head_end)
    if head_end < 0 or close < head_end:
        return create, None
    options = create[close:]
    if not re.search(rb"\bENGINE=InnoDB\b", options) or b"PARTITION" in options:
        return create, None
    lines = create[head_end + 2 : close].split(b"\n")
    kept: list[bytes] = []
    keys: list[bytes] = []
    autoinc: set[bytes] = set()
    for line in lines:
        if _BAIL_LINE_RE.match(line):
            return create, None
        col = _COL_RE.match(line)
        if col and b" AUTO_INCREMENT" in line:
            autoinc.add(col.group(1))
        if _KEY_LINE_RE.match(line):
            keys.append(line.strip().rstrip(b","))
        elif keys:
            return create, None  # something after a plain key: keep the order as it is
        else:
            kept.append(line)
    if not keys or not kept or not kept[-1].endswith(b","):
        return create, None
    kept[-1] = kept[-1][:-1]  # the line before the first plain key ends the definition now
    for key in keys:
        first = _FIRST_COL_RE.search(key)
        if first is None or first.group(1) in autoinc:
            return create, None
    m = re.match(rb"CREATE TABLE (`(?:[^`]|``)*`)", create[start:])
    if m is None:
        return create, None
    body = b"\n".join(kept)
    new = create[: head_end + 2] + body + create[close:]
    alter = b"ALTER TABLE " + m.group(1) + b" " + b", ".join(b"ADD " + k for k in keys) + b";\n"
    return new, alter


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def decoded_chunks(path: Path, codec: str | None = None, raw: RawSource | None = None) -> Iterator[bytes]:
    """The decoded SQL of a dump, chunk by chunk; StreamError at the end if it did not decode.
    `raw`: the stored bytes come from this stream (a remote copy) instead of the file at `path`."""
    stream = open_decoded(path, codec or codec_for_path(path), raw=raw)
    ok = False
    try:
        yield from stream.chunks()
        ok = True
    finally:
        stream.close(check=ok)
