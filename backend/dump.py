"""One dump of one database: command line, credentials, pipeline, progress.

The dump tool's stdout is read in 1 MiB chunks; each chunk is compressed
(zstd in-process, or fed to gzip/xz), and the stored bytes are counted and
hashed on their way into `<name>.partial`. The same pass keeps the header
(binlog coordinates), the tail (footer) and the current table from the
`-- Dumping data for table` markers, so nothing reads the data twice.

A dump counts only if the dump tool and the compressor exited 0, the footer
`-- Dump completed` is present, and the file was fsynced and renamed from
`.partial`. Anything else raises DumpError with the reason and leaves no
partial file. The `.partial` file is flock'ed while it is written, so
`dumpdeck clean` can tell a live dump from a leftover.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import logging
import os
import re
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import encryption, flavour, mysql, pardump
from . import manifest as manifest_mod
from .codecs import EXTENSIONS, HashingSink, PlainTap, make_encoder
from .config import BackupConfig, ServerConfig
from .credentials import client_credentials
from .dumptool import CHUNK, buffered_env, enlarge_pipe
from .dumptool import STRUCT_MARK as _STRUCT_MARK
from .dumptool import TABLE_MARK as _TABLE_MARK
from .dumptool import child_setup as _child_setup
from .dumptool import clean_stderr as _clean_stderr
from .dumptool import describe_exit as _describe_exit
from .dumptool import fmt_secs as _fmt_secs
from .dumptool import kill_group as _kill_group
from .dumptool import last_mark as _last_mark
from .errors import (
    CancelledError,
    ConnectError,
    DumpdeckError,
    DumpError,
    ParallelUnavailable,
    StallError,
    TimeoutError_,
)
from .naming import dump_basename, safe_name

if TYPE_CHECKING:
    from .sqlstats import StatsCollector

FOOTER = b"-- Dump completed"
HEADER_KEEP = 64 * 1024
TAIL_KEEP = 4096  # the footer, and MariaDB's deferred `-- SET GLOBAL gtid_slave_pos=` just before it
_RESERVED_OPTIONS = ("--compact", "--skip-comments", "--all-databases", "--databases", "-B", "-A")

log = logging.getLogger("dumpdeck.dump")

ProgressCallback = Callable[["DumpProgress"], None]


@dataclass
class DumpProgress:
    """A snapshot of a running dump, emitted at most every `interval` seconds and at the end."""

    server: str
    database: str
    phase: str  # preflight | dumping | finishing | done | failed
    bytes_raw: int = 0
    bytes_stored: int = 0
    rate: float = 0.0  # raw bytes per second, recent
    current_table: str | None = None
    elapsed: float = 0.0
    estimate: int | None = None  # expected raw bytes
    timeout: float | None = None
    partial: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.estimate or self.bytes_raw > self.estimate:
            return None  # no estimate, or it was wrong (stale table statistics): unknown
        return self.bytes_raw / self.estimate


@dataclass
class DumpResult:
    server: str
    database: str
    path: Path
    manifest: manifest_mod.Manifest
    warnings: list[str] = field(default_factory=list)
    # an encrypted dump: the plaintext as it went in (L2 in-stream) and its scan (L3 in-stream, when asked)
    plain: PlainTap | None = None
    scan: StatsCollector | None = None

    @property
    def bytes_raw(self) -> int:
        return self.manifest.bytes_raw

    @property
    def bytes_stored(self) -> int:
        return self.manifest.bytes_stored

    @property
    def duration(self) -> float:
        return self.manifest.duration


# --------------------------------------------------------------------------- tool choice


def choose_tool(info: mysql.ServerInfo, backup: BackupConfig) -> str:
    if backup.dump_tool:
        found = shutil.which(backup.dump_tool) or (backup.dump_tool if os.path.exists(backup.dump_tool) else None)
        if not found:
            raise DumpError(f"backup.dump_tool {backup.dump_tool!r} was not found")
        return found
    names = ("mariadb-dump", "mysqldump") if info.flavour == "mariadb" else ("mysqldump", "mariadb-dump")
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise DumpError(
        f"no dump tool found for {info.label} (looked for {', '.join(names)}); "
        "install it with: apt-get install -y mariadb-client"
    )


@functools.lru_cache(maxsize=16)
def tool_version(tool: str) -> str:
    try:
        out = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.splitlines()[0] if out else "unknown"


BASE_OPTIONS = (
    "--single-transaction",
    "--quick",
    "--routines",
    "--triggers",
    "--events",
    "--no-tablespaces",
    "--max-allowed-packet=1G",
)


def dump_charset(conn: mysql.Connection, database: str, tool: str) -> str:
    """The character set the dump tool talks in: `binary` where it is safe, else `utf8mb4`.

    binary: every value leaves the server as stored and the tool escapes it byte by byte, which costs
    half the tool's CPU of utf8mb4 (whose escaping checks every multibyte character); the dump's
    `SET NAMES binary` puts the same bytes back whatever each column's character set (mydumper's
    way; a latin1 column's bytes are not converted twice). BLOBs then need no --hex-blob either: no
    character set reads them on the way back. Not where a table definition holds a literal outside
    ASCII (a latin1 column's DEFAULT 'déjà', ENUM values): mariadb-dump wraps CREATE TABLE in
    character_set_client=utf8mb4 but leaves the connection binary, so such a literal would come back
    as its UTF-8 bytes ('dÃ©jÃ '). Such a database is dumped in utf8mb4, with --hex-blob. So is every
    database dumped by MySQL's mysqldump: its binary output was never run here (tests/test_charsets.py
    runs MariaDB's)."""
    if flavour.tool_info(tool).flavour != flavour.MARIADB:
        return "utf8mb4"
    why = mysql.non_ascii_definition(conn, database)
    if why:
        log.info("dump of %s in utf8mb4, not binary: %s", database, why)
        return "utf8mb4"
    return "binary"


def charset_options(charset: str) -> list[str]:
    return [f"--default-character-set={charset}"] + ([] if charset == "binary" else ["--hex-blob"])


def dump_options(
    info: mysql.ServerInfo,
    tool: str,
    coordinates: bool,
    warnings: list[str] | None = None,
    charset: str = "binary",
) -> list[str]:
    """The dump tool's options: the fixed ones, the character set's (dump_charset), plus coordinates
    and GTID flags in the tool's dialect (backend.flavour); a reason why coordinates cannot be recorded
    is appended to `warnings`."""
    flags = flavour.coordinate_flags(
        flavour.tool_info(tool), info.flavour, info.version_tuple, info.gtid_mode, coordinates
    )
    if warnings is not None:
        warnings.extend(flags.warnings)
    return [*BASE_OPTIONS, *charset_options(charset), *flags.options]


def excluded_tables(names: list[str], include: tuple[str, ...] | None, exclude: tuple[str, ...]) -> list[str]:
    """The tables a job's `tables.include` / `tables.exclude` globs leave out of a dump."""
    import fnmatch

    out = []
    for name in names:
        left_out = include is not None and not any(fnmatch.fnmatchcase(name, p) for p in include)
        if left_out or any(fnmatch.fnmatchcase(name, p) for p in exclude):
            out.append(name)
    return out


# --------------------------------------------------------------------------- header parsing


_CHANGE_MASTER = re.compile(
    rb"CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^']+)',\s*(?:MASTER|SOURCE)_LOG_POS=(\d+)"
)
# MariaDB: `-- SET GLOBAL gtid_slave_pos='0-1-17';` on a line of its own (in the header with --gtid, else
# deferred to just before the footer); anchored, so a row's data can never pose as it
_GTID_MARIADB = re.compile(rb"^-- SET GLOBAL gtid_slave_pos='([^']*)';", re.MULTILINE)
# MySQL: SET @@GLOBAL.GTID_PURGED=/*!80000 '+'*/ 'uuid:1-5,\nuuid:1-3';  (inside /* */ with COMMENTED)
_GTID_MYSQL = re.compile(rb"^(?:/\* )?SET @@GLOBAL\.GTID_PURGED=(?:/\*!\d+ '\+'\*/ )?'\+?([^']*)'", re.MULTILINE)


def parse_coordinates(header: bytes, tail: bytes = b"") -> dict[str, Any]:
    """Binary-log file and position, and the GTID set, from a dump's header (and its tail, where
    MariaDB writes the GTID position)."""
    out: dict[str, Any] = {}
    m = _CHANGE_MASTER.search(header)
    if m:
        out["binlog_file"] = m.group(1).decode()
        out["binlog_position"] = int(m.group(2))
    m = _GTID_MARIADB.search(header) or _GTID_MYSQL.search(header) or _GTID_MARIADB.search(tail)
    if m and m.group(1):
        out["gtid"] = "".join(m.group(1).decode().split())
    return out


# --------------------------------------------------------------------------- the dump


def target_paths(
    backup_dir: Path, server: str, database: str, when: datetime, codec: str, encrypted: bool = False
) -> tuple[Path, Path]:
    directory = Path(backup_dir) / server / safe_name(database)
    ext = EXTENSIONS[codec] + (encryption.EXTENSION if encrypted else "")
    final = directory / dump_basename(database, when, ext)
    return final, Path(str(final) + ".partial")


def dump_database(
    server: ServerConfig,
    backup: BackupConfig,
    database: str,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
    stall_timeout: float | None = None,
    estimate: int | None = None,
    run_id: int | None = None,
    progress_interval: float = 0.5,
    dump_tool: str | None = None,
    tables_include: tuple[str, ...] | None = None,
    tables_exclude: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
    recipients: encryption.Recipients | None = None,
    scan_content: bool = False,
) -> DumpResult:
    """Dump one database to `<backup.dir>/<server>/<db>/<db>-<stamp>.sql.<ext>` with its manifest.

    With `recipients` the compressed stream is encrypted with age (`.sql.zst.age`) in the same pipeline
    (always one stream: age takes one); the plaintext's sha256, head and tail are kept for the in-stream
    L2 (and, with `scan_content`, the L3 statistics), since checking them later needs the identity."""
    timeout = timeout if timeout is not None else backup.timeout
    stall_timeout = stall_timeout if stall_timeout is not None else backup.stall_timeout
    cancel = cancel or threading.Event()
    t0 = time.monotonic()
    started = datetime.now(UTC)

    def emit(p: DumpProgress) -> None:
        if on_progress is not None:
            try:
                on_progress(p)
            except Exception:  # a broken observer never breaks a dump
                pass

    emit(DumpProgress(server.name, database, "preflight", estimate=estimate, timeout=timeout))

    # ---- preflight: connect, the database exists, privileges, inventory
    conn = mysql.connect(server)
    try:
        info = mysql.server_info(conn, server)
        if not mysql.database_exists(conn, database):
            raise DumpError(f"server {server.name}: database {database!r} does not exist")
        inv = mysql.inventory(conn, server, [database])[0]
        privs = mysql.require_dump_privileges(conn, info, database, inv)
        table_rows = mysql.tables(conn, database)
        objects = mysql.object_names(conn, database)
        tool = dump_tool or choose_tool(info, backup)
        charset = dump_charset(conn, database, tool)
    finally:
        conn.close()
    warnings = list(privs.warnings)
    if inv.non_transactional:
        warnings.append(
            f"not consistent: {len(inv.non_transactional)} non-transactional table(s) "
            f"({', '.join(inv.non_transactional[:5])}{', …' if len(inv.non_transactional) > 5 else ''}) "
            "are not covered by --single-transaction"
        )
    if estimate is None:
        estimate = int(inv.bytes * 0.85) or None

    options = dump_options(info, tool, privs.coordinates, warnings, charset)
    for opt in backup.extra_options:
        if opt.split("=")[0] in _RESERVED_OPTIONS:
            raise DumpError(f"backup.extra_options: {opt} would remove the completeness footer or change the scope")
        options.append(opt)
    excluded = excluded_tables([t.name for t in table_rows if t.kind != "VIEW"], tables_include, tables_exclude)
    ignore = [f"--ignore-table={database}.{t}" for t in excluded]

    encrypted = recipients is not None
    final, partial = target_paths(backup.dir, server.name, database, started, backup.compression, encrypted)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DumpError(f"cannot create {final.parent}: {exc.strerror}") from None
    f = None
    for bump in range(60):
        # Two dumps of one database in the same second must not share a name: the later one
        # takes the next free second in its *name* (the manifest keeps the true start time).
        final, partial = target_paths(
            backup.dir, server.name, database, started + timedelta(seconds=bump), backup.compression, encrypted
        )
        if final.exists():
            continue
        try:
            f = os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640), "wb")
            break
        except FileExistsError:
            continue
        except OSError as exc:
            raise DumpError(f"cannot create {partial}: {exc.strerror}") from None
    if f is None:
        raise DumpError(f"no free file name for a dump of {database!r} in {final.parent}")
    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)

    proc: subprocess.Popen[bytes] | None = None
    encoder = None
    tap: PlainTap | None = None
    scan: StatsCollector | None = None
    stderr_buf = bytearray()
    ok = False
    try:
        sink = HashingSink(f)
        par: pardump.ParallelResult | None = None
        rate = 0.0
        if backup.threads > 1 and not backup.single_stream:
            why = (
                "it is encrypted (age takes one stream)"
                if encrypted
                else pardump.unavailable_reason(
                    backup,
                    flavour.tool_info(tool).flavour,
                    estimate or 0,
                    inv.non_transactional,
                    [t.name for t in table_rows if t.kind == "SEQUENCE"],
                )
            )
            if why is not None:
                log.info("dump of %s as one stream: %s", database, why)
            else:
                pace = {"at": t0, "raw": 0.0, "emitted": 0.0, "rate": 0.0}

                def report(raw_now: int, stored_now: int, table: str | None) -> None:
                    now = time.monotonic()
                    if now - pace["emitted"] < progress_interval:
                        return
                    if now - pace["at"] >= 1.0:
                        pace["rate"] = (raw_now - pace["raw"]) / (now - pace["at"])
                        pace["at"], pace["raw"] = now, raw_now
                    pace["emitted"] = now
                    emit(
                        DumpProgress(
                            server.name,
                            database,
                            "dumping",
                            raw_now,
                            stored_now,
                            pace["rate"],
                            table,
                            now - t0,
                            estimate,
                            timeout,
                            str(partial),
                        )
                    )

                try:
                    par = pardump.parallel_dump(
                        server,
                        backup,
                        database,
                        tool=tool,
                        base_options=(*BASE_OPTIONS, *charset_options(charset)),
                        info=info,
                        tables=table_rows,
                        excluded=excluded,
                        views=objects["views"],
                        coordinates=privs.coordinates,
                        sink=sink,
                        directory=final.parent,
                        cancel=cancel,
                        timeout=timeout,
                        stall_timeout=stall_timeout,
                        t0=t0,
                        report=report,
                    )
                    rate = pace["rate"]
                except ParallelUnavailable as exc:
                    f.seek(0)  # the first worker writes straight into the file: start it again
                    f.truncate()
                    sink = HashingSink(f)
                    if exc.quiet:
                        log.info("dump of %s as one stream: %s", database, exc)
                    else:
                        log.warning("dump of %s as one stream: %s", database, exc)
                        warnings.append(f"parallel dump not used, dumped as one stream: {exc}")
        if par is None:
            if encrypted and scan_content:
                from .sqlstats import StatsCollector  # 40 ms of imports, for this case only

                scan = StatsCollector()
            tap = PlainTap(scan.feed if scan is not None else None) if encrypted else None
            encoder = make_encoder(
                backup.compression,
                backup.level,
                backup.threads,
                sink,
                _child_setup,
                recipients=recipients,
                tap=tap,
                adaptive=backup.adaptive_level,
            )
            with client_credentials(server, tool=tool) as cred:
                argv = [tool, cred.argument, *options, *ignore, "--", database]
                try:
                    proc = subprocess.Popen(
                        argv,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        stdin=subprocess.DEVNULL,
                        env=buffered_env(cred.env, CHUNK // 4),
                        pass_fds=cred.pass_fds,
                        process_group=0,
                        preexec_fn=_child_setup,  # noqa: PLW1509 -- prctl(PR_SET_PDEATHSIG) only; takes no lock
                        close_fds=True,
                    )
                except OSError as exc:
                    raise DumpError(f"cannot start {tool}: {exc.strerror}") from None

                def read_stderr() -> None:
                    assert proc is not None and proc.stderr is not None
                    for line in proc.stderr:
                        if len(stderr_buf) < 65536:
                            stderr_buf.extend(line)

                err_thread = threading.Thread(target=read_stderr, name="dump-stderr", daemon=True)
                err_thread.start()

                assert proc.stdout is not None
                fd = proc.stdout.fileno()
                enlarge_pipe(fd)
                poller = select.poll()
                poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                header = bytearray()
                tail = b""
                raw = 0
                current: str | None = None
                last_byte_at = time.monotonic()
                last_emit = 0.0
                rate_mark = (t0, 0)
                rate = 0.0
                while True:
                    now = time.monotonic()
                    if cancel.is_set():
                        _kill_group(proc)
                        raise CancelledError(f"dump of {database!r} cancelled")
                    if timeout and now - t0 > timeout:
                        _kill_group(proc)
                        raise TimeoutError_(
                            f"dump of {database!r} exceeded its timeout of {_fmt_secs(timeout)} "
                            f"after {raw:,} bytes; killed"
                        )
                    if stall_timeout and now - last_byte_at > stall_timeout:
                        _kill_group(proc)
                        raise StallError(
                            f"dump of {database!r} stalled: no output for {_fmt_secs(stall_timeout)} "
                            f"(after {raw:,} bytes, table {current or 'none yet'}); killed"
                        )
                    if not poller.poll(200):
                        pass
                    else:
                        n = os.readv(fd, [view])
                        if n == 0:
                            break
                        chunk = view[:n]
                        raw += n
                        last_byte_at = time.monotonic()
                        if len(header) < HEADER_KEEP:
                            header += chunk[: HEADER_KEEP - len(header)]
                        tail = (tail + bytes(chunk[-TAIL_KEEP:]))[-TAIL_KEEP:]
                        # bytearray.find (memmem) first: most chunks hold no marker, and the
                        # regex engine scanning every byte was 2% of the dump's CPU
                        # (a marker cut by the chunk's end matches neither, as before)
                        if buf.find(b"-- Dumping data for table `", 0, n) >= 0:
                            current = _last_mark(_TABLE_MARK, chunk, current)
                        elif current is None and buf.find(b"-- Table structure for table `", 0, n) >= 0:
                            current = _last_mark(_STRUCT_MARK, chunk, current)
                        try:
                            encoder.write(chunk)
                        except OSError as exc:
                            _kill_group(proc)
                            raise DumpError(f"writing {partial} failed: {exc.strerror}") from None
                    now = time.monotonic()
                    if now - last_emit >= progress_interval:
                        span = now - rate_mark[0]
                        if span >= 1.0:
                            rate = (raw - rate_mark[1]) / span
                            rate_mark = (now, raw)
                        elif rate == 0.0 and now > t0:
                            rate = raw / (now - t0)
                        last_emit = now
                        emit(
                            DumpProgress(
                                server.name,
                                database,
                                "dumping",
                                raw,
                                sink.bytes,
                                rate,
                                current,
                                now - t0,
                                estimate,
                                timeout,
                                str(partial),
                            )
                        )
                rc = proc.wait()
                err_thread.join(timeout=5)
            stderr_text = _clean_stderr(bytes(stderr_buf))
            if rc != 0:
                raise DumpError(_describe_exit(tool, rc, stderr_text, database))
            if FOOTER not in tail:
                raise DumpError(
                    f"{os.path.basename(tool)} exited 0 but the output has no '-- Dump completed' footer: "
                    "the dump is incomplete" + (f" ({stderr_text})" if stderr_text else "")
                )
        else:
            raw, header, tail, current, stderr_text = par.bytes_raw, bytearray(par.header), b"", par.current, ""
        emit(
            DumpProgress(
                server.name,
                database,
                "finishing",
                raw,
                sink.bytes,
                rate,
                current,
                time.monotonic() - t0,
                estimate,
                timeout,
                str(partial),
            )
        )
        try:
            if encoder is not None:
                encoder.close()
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            raise DumpError(f"writing {partial} failed: {exc.strerror}") from None
        try:
            os.link(partial, final)  # never replaces an existing dump, unlike rename
        except FileExistsError:
            raise DumpError(f"{final} appeared while dumping; refusing to replace it") from None
        os.unlink(partial)
        with contextlib.suppress(OSError):
            fd_dir = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(fd_dir)
            os.close(fd_dir)
        finished = datetime.now(UTC)
        coords = par.coordinates if par is not None else parse_coordinates(bytes(header), bytes(tail))
        frame_levels = par.frame_levels if par is not None else encoder.frame_levels if encoder is not None else {}
        m = manifest_mod.Manifest(
            database=database,
            server={
                "name": server.name,
                "host": server.address,
                "flavour": info.flavour,
                "version": info.version,
                "hostname": info.hostname,
            },
            tool={"path": tool, "version": tool_version(tool)}
            | ({"workers": par.units, "snapshot": pardump.lock_name(info)} if par is not None else {}),
            options=par.options if par is not None else options,
            started=started.isoformat(timespec="seconds"),
            finished=finished.isoformat(timespec="seconds"),
            duration=round(time.monotonic() - t0, 3),
            bytes_raw=raw,
            bytes_stored=sink.bytes,
            codec=backup.compression,
            level=backup.level if backup.compression != "none" else 0,
            frame_levels={str(k): v for k, v in sorted(frame_levels.items())},
            sha256=sink.sha.hexdigest(),
            file=final.name,
            tables=[
                manifest_mod.TableEntry(t.name, t.engine, t.rows, t.data_bytes + t.index_bytes)
                for t in table_rows
                if t.kind not in ("VIEW", "SEQUENCE") and t.name not in excluded
            ],
            sequences=[t.name for t in table_rows if t.kind == "SEQUENCE" and t.name not in excluded],
            excluded=excluded,
            tags=list(tags),
            views=objects["views"],
            procedures=objects["procedures"],
            functions=objects["functions"],
            triggers=objects["triggers"],
            events=objects["events"],
            non_transactional=list(inv.non_transactional),
            coordinates=coords,
            warnings=warnings + ([f"dump tool said: {stderr_text}"] if stderr_text else []),
            run_id=run_id,
            encryption=recipients.manifest_record(encryption.age_version()) if recipients is not None else None,
            sha256_sql=tap.sha.hexdigest() if tap is not None else None,
        )
        try:
            manifest_mod.save(m, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                final.unlink()
            raise DumpError(f"writing the manifest of {final.name} failed: {exc.strerror}") from None
        ok = True
        emit(
            DumpProgress(
                server.name, database, "done", raw, sink.bytes, rate, current, m.duration, estimate, timeout, str(final)
            )
        )
        return DumpResult(server.name, database, final, m, warnings, tap, scan)
    except (DumpdeckError, ConnectError):
        raise
    except OSError as exc:
        raise DumpError(f"dump of {database!r} failed: {exc.strerror or exc}") from None
    finally:
        if not ok:
            if proc is not None and proc.poll() is None:
                _kill_group(proc)
            if encoder is not None:
                encoder.abort()
            with contextlib.suppress(OSError):
                os.unlink(partial)
            emit(
                DumpProgress(
                    server.name, database, "failed", elapsed=time.monotonic() - t0, estimate=estimate, timeout=timeout
                )
            )
        with contextlib.suppress(OSError):
            f.close()
