"""A parallel dump of one database inside one consistent snapshot, written as the usual single `.sql.zst`.

The approach of mydumper and MySQL Shell, with the server's own dump tool writing the SQL:

1. A control connection stops commits — BACKUP STAGE BLOCK_COMMIT on MariaDB 10.4+, else FLUSH
   TABLES WITH READ LOCK — with a short `lock_wait_timeout`, and not at all while a long query runs
   (the lock could queue every writer behind it); it reads the binary-log file, position and GTID
   position while commits are stopped.
2. One `mariadb-dump --single-transaction` per unit of work starts: a group of tables, or a
   primary-key range (`--where`) of a table with more than `backup.chunk_rows` rows. Each opens
   START TRANSACTION WITH CONSISTENT SNAPSHOT and only then writes its first section marker
   (`-- Table structure for table` / `-- Dumping data for table`); that marker is the proof that its
   snapshot opened. Commits go on only when every unit has proven its snapshot, within
   SNAPSHOT_WAIT seconds; otherwise every unit is killed and the caller dumps one stream.
3. After the data units: a segment with events and routines, then one with the views — the
   order a single stream has. Triggers stay with their table's data (the last range of a split table).

Each segment is a run of zstd frames (zstd frames concatenate into one valid stream), compressed
by a pool shared by the segments (codecs.FrameWriter) into an unnamed temporary file beside the dump. The segments are
appended in order into the `.partial` file through the dump's HashingSink (count, sha256) as soon
as all earlier ones are complete. Each segment is a complete dump-tool output (header, footer),
and a table's ranges are adjacent, so `zstd -dc | mariadb`, the verification ladder and the
restore loader read the file as they read a single stream.

Whatever stands in the way of a proof (no RELOAD privilege; a lock timeout, when another backup
holds BACKUP STAGE, say; a long query; non-transactional tables) raises ParallelUnavailable, and
the first worker's bytes are dropped from the `.partial` file, before the caller dumps one stream.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pymysql

from . import mysql
from .codecs import FrameWriter, HashingSink
from .config import BackupConfig, ServerConfig
from .credentials import client_credentials
from .dumptool import (
    CHUNK,
    STRUCT_MARK,
    TABLE_MARK,
    buffered_env,
    child_setup,
    clean_stderr,
    describe_exit,
    enlarge_pipe,
    fmt_secs,
    kill_group,
    last_mark,
)
from .errors import CancelledError, DumpError, ParallelUnavailable, StallError, TimeoutError_

log = logging.getLogger("dumpdeck.dump")

MIN_BYTES = 64 * 1024**2  # a database smaller than this (estimated) dumps as one stream: workers cost more
LOCK_WAIT = 10  # seconds the lock that stops commits may wait (lock_wait_timeout)
LONG_QUERY = 60  # seconds: a query running this long makes the lock wait (and every writer queue)
SNAPSHOT_WAIT = 60.0  # seconds for every unit to prove its snapshot while the lock is held
# FLUSH TABLES WITH READ LOCK even where BACKUP STAGE exists: the path of MySQL and MariaDB < 10.4,
# run by the tests on the MariaDB they have. Not a setting: BACKUP STAGE is the better lock where it exists.
FORCE_FTWRL = False
PROOF_BUFFER = 64 * 1024  # a worker's stdout block: its first marker is out after at most this much SQL
HEADER_KEEP = 64 * 1024
TAIL_KEEP = 4096
FOOTER = b"-- Dump completed"
_PROOFS = (b"-- Table structure for table `", b"-- Dumping data for table `", FOOTER)
_INT_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
_OBJECT_OPTIONS = ("--routines", "--triggers", "--events")


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Unit:
    """One dump-tool process: tables, or one primary-key range of one table."""

    tables: tuple[str, ...]
    where: str | None = None
    size: int = 0  # estimated bytes
    create: bool = True  # write CREATE TABLE (the first range of a split table only)
    triggers: bool = True  # write the tables' triggers (the last range of a split table only)

    @property
    def label(self) -> str:
        names = ", ".join(self.tables[:3]) + (f" and {len(self.tables) - 3} more" if len(self.tables) > 3 else "")
        return names + (f" WHERE {self.where}" if self.where else "")


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def plan_units(
    sizes: dict[str, tuple[int, int]], keys: dict[str, tuple[str, int, int]], threads: int, chunk_rows: int
) -> list[Unit]:
    """Split the tables over about `threads` units of similar size.

    `sizes`: table → (estimated rows, estimated bytes); `keys`: table → (its integer primary-key
    column, min, max). A table with more than `chunk_rows` rows and such a key is split into
    primary-key ranges, as many as its share of the bytes earns (at most one per `chunk_rows`);
    the first and last ranges are open-ended, so rows outside the min..max read now are still
    dumped. The other tables are packed into the remaining units, largest first into the lightest."""
    total = sum(size for _, size in sizes.values()) or 1
    units: list[Unit] = []
    rest: list[tuple[str, int]] = []
    for name, (rows, size) in sorted(sizes.items(), key=lambda kv: (-kv[1][1], kv[0])):
        key = keys.get(name)
        pieces = 1
        if key is not None and chunk_rows > 0 and rows > chunk_rows:
            column, lo, hi = key
            pieces = min(math.ceil(rows / chunk_rows), max(1, round(threads * size / total)), max(1, hi - lo + 1))
        if pieces < 2 or key is None:
            rest.append((name, size))
            continue
        column, lo, hi = key
        step = (hi - lo + 1) / pieces
        bounds = [lo + round(step * i) for i in range(1, pieces)]
        col = quote(column)
        for i in range(pieces):
            conds = ([f"{col} >= {bounds[i - 1]}"] if i > 0 else []) + (
                [f"{col} < {bounds[i]}"] if i < pieces - 1 else []
            )
            units.append(Unit((name,), " AND ".join(conds), size // pieces, create=i == 0, triggers=i == pieces - 1))
    if rest:
        bins: list[tuple[int, list[str]]] = [(0, []) for _ in range(min(len(rest), max(1, threads - len(units))))]
        for name, size in rest:
            i = min(range(len(bins)), key=lambda j: bins[j][0])
            bins[i] = (bins[i][0] + size, [*bins[i][1], name])
        units += [Unit(tuple(sorted(names)), None, load) for load, names in bins]
    return units


def integer_keys(
    conn: pymysql.connections.Connection, database: str, names: list[str]
) -> dict[str, tuple[str, int, int]]:
    """table → (column, MIN, MAX) for the tables whose primary key is one integer column."""
    if not names:
        return {}
    with conn.cursor() as cur:
        cur.execute(
            "SELECT k.TABLE_NAME, MIN(k.COLUMN_NAME), MIN(c.DATA_TYPE), COUNT(*) "
            "FROM information_schema.KEY_COLUMN_USAGE k JOIN information_schema.COLUMNS c "
            "ON c.TABLE_SCHEMA = k.TABLE_SCHEMA AND c.TABLE_NAME = k.TABLE_NAME AND c.COLUMN_NAME = k.COLUMN_NAME "
            "WHERE k.TABLE_SCHEMA = %s AND k.CONSTRAINT_NAME = 'PRIMARY' GROUP BY k.TABLE_NAME",
            (database,),
        )
        found = {r[0]: r[1] for r in cur.fetchall() if int(r[3]) == 1 and str(r[2]).lower() in _INT_TYPES}
        out: dict[str, tuple[str, int, int]] = {}
        for name in names:
            column = found.get(name)
            if column is None:
                continue
            cur.execute(f"SELECT MIN({quote(column)}), MAX({quote(column)}) FROM {quote(database)}.{quote(name)}")
            row = cur.fetchone()
            if row and row[0] is not None:
                out[name] = (column, int(row[0]), int(row[1]))
    return out


# --------------------------------------------------------------------------- one segment


class Segment:
    """A dump-tool process whose stdout is compressed, by its own thread, into an unnamed temp file."""

    def __init__(
        self,
        label: str,
        argv: list[str],
        directory: Path,
        level: int,
        prove: bool,
        pool: ThreadPoolExecutor,
        sink: HashingSink | None = None,
        adaptive: bool = False,
    ):
        self.label = label
        self.pool = pool
        self.argv = argv
        self.level = level
        self.prove = prove  # must show a section marker: its snapshot opened
        self.sink = sink  # the first segment writes straight into the dump; the others into a temp file
        self.file: IO[bytes] | None = None if sink else tempfile.TemporaryFile(dir=directory)  # noqa: SIM115
        self.errfile: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 -- closed by close()
        self.proc: subprocess.Popen[bytes] | None = None
        self.raw = 0
        self.written = 0  # stored bytes written (into the sink or the temp file)
        self.header = bytearray()
        self.tail = b""
        self.current: str | None = None
        self.error: str | None = None
        self.opened = threading.Event()
        self.done = threading.Event()
        self.last_byte_at = time.monotonic()
        self.appended = 0  # stored bytes already copied into the dump file
        self._thread: threading.Thread | None = None
        self.abandoned = False  # closed: write nothing more
        self.frames = FrameWriter(self, level, 2, pool=pool, adaptive=adaptive)  # three frames in flight

    def start(self, env: dict[str, str], pass_fds: tuple[int, ...]) -> None:
        try:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=subprocess.PIPE,
                stderr=self.errfile,
                stdin=subprocess.DEVNULL,
                # small blocks: the marker that proves the snapshot must come out while commits wait
                env=buffered_env(env, PROOF_BUFFER),
                pass_fds=pass_fds,
                process_group=0,
                preexec_fn=child_setup,  # noqa: PLW1509 -- prctl(PR_SET_PDEATHSIG) only; takes no lock
                close_fds=True,
            )
        except OSError as exc:
            raise DumpError(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        self._thread = threading.Thread(target=self._pump, name="dump-segment", daemon=True)
        self._thread.start()

    def write(self, data: bytes | memoryview) -> int:
        """The FrameWriter's sink: the compressed frames, in order."""
        if self.abandoned:
            return len(data)
        if self.sink is not None:
            self.sink.write(data)
        else:
            assert self.file is not None
            self.file.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        """Nothing buffered here: the sink (or the temp file, read back by append_to) holds it."""

    def _pump(self) -> None:
        """Read the tool's output and hand it to the FrameWriter: the pool compresses each FRAME as
        one zstd frame while this thread reads on, which keeps the pipe drained."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        enlarge_pipe(fd)
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        carry = b""
        try:
            while True:
                n = os.readv(fd, [view])
                if n == 0:
                    break
                chunk = view[:n]
                self.raw += n
                self.last_byte_at = time.monotonic()
                if len(self.header) < HEADER_KEEP:
                    self.header += chunk[: HEADER_KEEP - len(self.header)]
                self.tail = (self.tail + bytes(chunk[-TAIL_KEEP:]))[-TAIL_KEEP:]
                if not self.opened.is_set():
                    look = carry + bytes(chunk)
                    if any(p in look for p in _PROOFS):
                        self.opened.set()
                    carry = look[-64:]
                if buf.find(b"-- Dumping data for table `", 0, n) >= 0:
                    self.current = last_mark(TABLE_MARK, chunk, self.current)
                elif buf.find(b"-- Table structure for table `", 0, n) >= 0:
                    self.current = last_mark(STRUCT_MARK, chunk, self.current)
                self.frames.write(chunk)
            self.frames.finish()
            rc = self.proc.wait()
            self.errfile.seek(0)
            stderr = clean_stderr(self.errfile.read(65536))
            if rc != 0:
                self.error = describe_exit(self.argv[0], rc, stderr, self.label)
            elif FOOTER not in self.tail:
                tool = os.path.basename(self.argv[0])
                self.error = f"{tool} exited 0 but {self.label} has no '-- Dump completed' footer"
            elif stderr:
                log.info("dump tool said (%s): %s", self.label, stderr)
        except BaseException as exc:  # disk full, a killed process: the main loop reports it
            self.error = self.error or f"{self.label}: {getattr(exc, 'strerror', None) or exc}"
            self.kill()
        finally:
            self.done.set()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            kill_group(self.proc)

    def append_to(self, sink: HashingSink, budget: int) -> bool:
        """Copy up to `budget` more stored bytes into the dump; True when the whole segment is in."""
        if self.file is None:
            return True  # written there directly
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        self.file.seek(self.appended)
        copied = 0
        while copied < budget:
            n = self.file.readinto(buf)  # type: ignore[attr-defined]  # a TemporaryFile is a BufferedRandom
            if not n:
                return True
            sink.write(view[:n])
            self.appended += n
            copied += n
        return False

    @property
    def pending(self) -> int:
        """Stored bytes not yet in the dump file."""
        return 0 if self.file is None else self.written - self.appended

    def close(self) -> None:
        self.abandoned = True
        self.kill()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for f in (self.file, self.errfile):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


# --------------------------------------------------------------------------- the dump


@dataclass
class ParallelResult:
    bytes_raw: int
    header: bytes  # the first segment's head
    units: int
    options: list[str]  # the options every unit shares
    coordinates: dict[str, Any] = field(default_factory=dict)
    current: str | None = None
    frame_levels: dict[int, int] = field(default_factory=dict)  # zstd frames per level, every segment


def unavailable_reason(
    backup: BackupConfig,
    tool_flavour: str,
    estimate: int,
    non_transactional: Sequence[str],
    sequences: Sequence[str] = (),
) -> str | None:
    """Why this dump cannot be a parallel one, before anything is tried; None when it can."""
    if backup.compression != "zstd":
        return f"backup.compression is {backup.compression} (the parallel dump writes zstd frames)"
    if tool_flavour != "mariadb":
        return "the dump tool is not mariadb-dump"
    if estimate < MIN_BYTES:
        return "the database is small"
    if sequences:
        return f"the database has sequences ({', '.join(sequences[:5])}), which the parallel dump does not place"
    if non_transactional:
        return (
            f"{len(non_transactional)} non-transactional table(s) ({', '.join(non_transactional[:5])}) "
            "cannot be read in one snapshot by several connections"
        )
    return None


def parallel_dump(
    server: ServerConfig,
    backup: BackupConfig,
    database: str,
    *,
    tool: str,
    base_options: tuple[str, ...],
    info: mysql.ServerInfo,
    tables: list[mysql.TableInfo],
    excluded: list[str],
    views: list[str],
    coordinates: bool,
    sink: HashingSink,
    directory: Path,
    cancel: threading.Event,
    timeout: float | None,
    stall_timeout: float | None,
    t0: float,
    report: Callable[[int, int, str | None], None],
) -> ParallelResult:
    """Dump `database` over `backup.threads` workers into `sink`; ParallelUnavailable (nothing
    written) when one snapshot cannot be proven, DumpError and its kin as a single stream would."""
    base = [o for o in base_options if o not in _OBJECT_OPTIONS] + list(backup.extra_options)
    data = [t for t in tables if t.kind not in ("VIEW", "SEQUENCE") and t.name not in excluded]
    sizes = {t.name: (t.rows, t.data_bytes) for t in data}
    ctl = mysql.connect(server)
    try:
        units = plan_units(
            sizes,
            integer_keys(ctl, database, [t.name for t in data if t.rows > backup.chunk_rows > 0]),
            backup.threads,
            backup.chunk_rows,
        )
        if len(units) < 2:
            raise ParallelUnavailable("the tables make a single unit of work", quiet=True)
        segments: list[Segment] = []
        pool = ThreadPoolExecutor(max_workers=max(2, backup.threads), thread_name_prefix="zstd")
        try:
            with client_credentials(server, tool=tool) as cred:
                coords = _lock(ctl, info, coordinates)
                for u in units:
                    argv = [tool, cred.argument, *base, "--skip-routines", "--skip-events"]
                    argv += ["--triggers"] if u.triggers else ["--skip-triggers"]
                    argv += [] if u.create else ["--no-create-info"]
                    argv += [f"--where={u.where}"] if u.where else []
                    first = sink if not segments else None
                    argv += ["--", database, *u.tables]
                    segments.append(
                        Segment(u.label, argv, directory, backup.level, True, pool, first, backup.adaptive_level)
                    )
                    segments[-1].start(cred.env, cred.pass_fds)
                _await_snapshots(segments, cancel)
                with ctl.cursor() as cur:
                    for statement in lock_statements(info)[1]:
                        cur.execute(statement)
                objects = [tool, cred.argument, *base, "--no-data", "--skip-triggers"]
                segments.append(
                    Segment(
                        "events and routines",
                        [*objects, "--no-create-info", "--routines", "--events", "--", database],
                        directory,
                        backup.level,
                        False,
                        pool,
                        adaptive=backup.adaptive_level,
                    )
                )
                segments[-1].start(cred.env, cred.pass_fds)
                if views:
                    view_argv = [*objects, "--skip-routines", "--skip-events", "--", database, *views]
                    segments.append(
                        Segment(
                            "views", view_argv, directory, backup.level, False, pool, adaptive=backup.adaptive_level
                        )
                    )
                    segments[-1].start(cred.env, cred.pass_fds)
                log.info(
                    "parallel dump of %s: %d units in one snapshot (%s)",
                    database,
                    len(units),
                    "; ".join(u.label for u in units),
                )
                # inside the block: a credentials file (where memfd is missing) outlives every reader
                current = _drain(segments, sink, cancel, timeout, stall_timeout, t0, report, database)
        finally:
            for s in segments:
                s.close()
            pool.shutdown(wait=True, cancel_futures=True)
        return ParallelResult(
            bytes_raw=sum(s.raw for s in segments),
            header=bytes(segments[0].header),
            units=len(units),
            options=base,
            coordinates=coords,
            current=current,
            frame_levels=dict(sum((s.frames.levels for s in segments), Counter())),
        )
    finally:
        with contextlib.suppress(Exception):
            ctl.close()


def lock_statements(info: mysql.ServerInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """How the control connection stops commits, and lets them go again.

    MariaDB 10.4+: BACKUP STAGE BLOCK_COMMIT. It blocks commits (and so the binary log) without
    flushing tables, so a transaction in the middle of its statements does not hold it up; under
    FLUSH TABLES WITH READ LOCK, such a transaction's next statement waits for the lock while the
    lock waits for its tables, until lock_wait_timeout (measured: busy writers made it fail).
    Elsewhere: FLUSH TABLES WITH READ LOCK."""
    if info.flavour == "mariadb" and info.version_tuple >= (10, 4, 0) and not FORCE_FTWRL:
        return ("BACKUP STAGE START", "BACKUP STAGE BLOCK_COMMIT"), ("BACKUP STAGE END",)
    return ("FLUSH TABLES WITH READ LOCK",), ("UNLOCK TABLES",)


def lock_name(info: mysql.ServerInfo) -> str:
    return lock_statements(info)[0][-1]


def _lock(ctl: pymysql.connections.Connection, info: mysql.ServerInfo, coordinates: bool) -> dict[str, Any]:
    """Stop commits on the control connection (lock_statements); the coordinates read meanwhile."""
    with ctl.cursor() as cur:
        cur.execute(
            "SELECT ID, TIME, LEFT(COALESCE(INFO, ''), 60) FROM information_schema.PROCESSLIST "
            "WHERE COMMAND NOT IN ('Sleep', 'Daemon', 'Binlog Dump', 'Killed') AND TIME >= %s "
            "AND ID <> CONNECTION_ID() AND COALESCE(INFO, '') <> '' ORDER BY TIME DESC LIMIT 1",
            (LONG_QUERY,),
        )
        row = cur.fetchone()
        if row:
            raise ParallelUnavailable(
                f"query {row[0]} has been running for {fmt_secs(int(row[1]))} ({row[2]!r}); "
                "the lock that stops commits could wait for it while every writer waits behind the lock"
            )
        cur.execute(f"SET SESSION lock_wait_timeout = {LOCK_WAIT}")
        try:
            for statement in lock_statements(info)[0]:
                cur.execute(statement)
        except pymysql.MySQLError as exc:
            code, msg = (*exc.args, "")[:2]
            raise ParallelUnavailable(f"{lock_name(info)} failed ({code}: {msg})") from None
        out: dict[str, Any] = {}
        if coordinates:
            cur.execute("SHOW MASTER STATUS")
            status = cur.fetchone()
            if status:
                out["binlog_file"], out["binlog_position"] = str(status[0]), int(status[1])
            cur.execute(
                "SELECT @@GLOBAL.gtid_binlog_pos" if info.flavour == "mariadb" else "SELECT @@GLOBAL.gtid_executed"
            )
            gtid = cur.fetchone()
            if gtid and gtid[0]:
                out["gtid"] = "".join(str(gtid[0]).split())
        return out


def _await_snapshots(segments: list[Segment], cancel: threading.Event) -> None:
    """Return when every unit has shown a marker written after its START TRANSACTION WITH CONSISTENT
    SNAPSHOT; ParallelUnavailable (every unit killed) when one fails or SNAPSHOT_WAIT passes."""
    deadline = time.monotonic() + SNAPSHOT_WAIT
    while True:
        waiting = [s for s in segments if s.prove and not s.opened.is_set()]
        failed = [s for s in segments if s.done.is_set() and s.error]
        if failed:
            raise ParallelUnavailable(f"a worker failed before its snapshot was proven: {failed[0].error}")
        if not waiting:
            return
        if cancel.is_set():
            raise CancelledError("dump cancelled")
        if time.monotonic() > deadline:
            raise ParallelUnavailable(
                f"{len(waiting)} worker(s) did not open their snapshot within {fmt_secs(SNAPSHOT_WAIT)} "
                f"while commits were blocked ({waiting[0].label})"
            )
        waiting[0].opened.wait(0.05)


def _drain(
    segments: list[Segment],
    sink: HashingSink,
    cancel: threading.Event,
    timeout: float | None,
    stall_timeout: float | None,
    t0: float,
    report: Callable[[int, int, str | None], None],
    database: str,
) -> str | None:
    """Watch the segments to the end and append each, in order, once it and all before it are done."""
    nxt = 0
    current: str | None = None
    while True:
        now = time.monotonic()
        raw = sum(s.raw for s in segments)
        live = [s for s in segments if not s.done.is_set()]
        for s in segments:
            if s.done.is_set() and s.error:
                raise DumpError(f"dump of {database!r} failed: {s.error}")
        if cancel.is_set():
            raise CancelledError(f"dump of {database!r} cancelled")
        if timeout and now - t0 > timeout:
            raise TimeoutError_(
                f"dump of {database!r} exceeded its timeout of {fmt_secs(timeout)} after {raw:,} bytes; killed"
            )
        if live and stall_timeout and now - max(s.last_byte_at for s in live) > stall_timeout:
            raise StallError(
                f"dump of {database!r} stalled: no output for {fmt_secs(stall_timeout)} "
                f"(after {raw:,} bytes, {live[0].label}); killed"
            )
        while nxt < len(segments) and segments[nxt].done.is_set():
            if not segments[nxt].append_to(sink, 64 * CHUNK):
                break
            nxt += 1
        marks = [s.current for s in live if s.current]
        current = marks[-1] if marks else current
        report(raw, sink.bytes + sum(s.pending for s in segments[nxt:]), current)
        if nxt == len(segments):
            return current
        if nxt < len(segments) and segments[nxt].done.is_set():
            continue  # more of a finished segment to copy
        if live:
            live[0].done.wait(0.2)
