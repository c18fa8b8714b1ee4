"""What the console reads from the backend, as typed snapshots.

Every function here blocks (MySQL, SQLite, the file system) and is called from a
Textual thread worker, never from the event loop. Nothing here imports Textual:
the console turns these snapshots into widgets; the poll functions could as well
feed a test or a benchmark.

`ConsoleBackend` is the one seam between the console and the engine: the live
one calls the backend modules; `FixedBackend` replays fixed snapshots with a
fixed clock (snapshot tests, the benchmark's synthetic catalog).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dumpdeck.backend.config import Config
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.outcome import Outcome

Clock = Callable[[], float]


# --------------------------------------------------------------------------- snapshots


@dataclass(frozen=True)
class DatabaseView:
    """One database of one server, as the inventory reports it."""

    server: str
    name: str
    bytes: int
    tables: int
    consistent: bool = True


@dataclass(frozen=True)
class ServerSnapshot:
    name: str
    address: str
    reachable: bool
    databases: tuple[DatabaseView, ...] = ()
    error: str | None = None
    label: str = ""
    latency: float = 0.0
    polled_at: float = 0.0


@dataclass(frozen=True)
class DumpView:
    """One dump in the catalog (a thin, UI-friendly copy of the backend's DumpEntry)."""

    key: str  # stable row key: the path
    path: Path
    server: str
    database: str
    when: float  # epoch seconds
    size: int
    codec: str
    verified_level: int = 0
    verified_at: str | None = None
    last_result: str | None = None  # an Outcome value (passed | failed | not_checked) or None
    legacy: bool = False
    manifest_error: str | None = None
    manifest: Any = None  # backend.manifest.Manifest or None


@dataclass(frozen=True)
class CatalogSnapshot:
    dumps: tuple[DumpView, ...] = ()  # newest first
    partials: tuple[str, ...] = ()
    error: str | None = None
    scanned_at: float = 0.0
    raw: Any = field(default=None, compare=False, repr=False)  # the backend Catalog (for backend.disk)


@dataclass(frozen=True)
class DbProgressView:
    database: str
    status: str
    bytes_raw: int = 0
    bytes_stored: int = 0
    rate: float = 0.0
    current_table: str | None = None
    started: float | None = None
    updated: float | None = None
    estimate: int | None = None
    timeout: float | None = None
    eta: float | None = None  # seconds left, from earlier runs when known, else from the rate
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.estimate or self.bytes_raw > self.estimate:
            return None  # no estimate, or it was wrong (stale table statistics): unknown, not "100%"
        return max(0.0, self.bytes_raw / self.estimate)


@dataclass(frozen=True)
class RunView:
    id: int
    job: str | None
    server: str | None
    status: str  # queued | running | succeeded | failed | cancelled | lost ...
    trigger: str | None
    started: float | None
    finished: float | None
    databases: tuple[str, ...] = ()
    reason: str | None = None
    progress: tuple[DbProgressView, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


ACTIVE_STATUSES = frozenset({"queued", "starting", "running", "cancelling", "retrying", "waiting"})


@dataclass(frozen=True)
class JobsSnapshot:
    runs: tuple[RunView, ...] = ()
    error: str | None = None
    polled_at: float = 0.0

    @property
    def active(self) -> tuple[RunView, ...]:
        return tuple(r for r in self.runs if r.active)


@dataclass(frozen=True)
class VolumeView:
    path: str
    total: int
    used: int
    free: int
    days_until_full: float | None = None

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 0.0


@dataclass(frozen=True)
class FootprintView:
    server: str
    database: str
    bytes: int
    count: int


@dataclass(frozen=True)
class DiskSnapshot:
    volumes: tuple[VolumeView, ...] = ()
    footprint: tuple[FootprintView, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ScheduleView:
    job: str
    server: str
    schedule: str | None
    databases: tuple[str, ...]
    next_runs: tuple[float, ...] = ()
    last_status: str | None = None
    last_finished: float | None = None


@dataclass(frozen=True)
class LogChunk:
    lines: tuple[str, ...] = ()
    reset: bool = False
    error: str | None = None


@dataclass(frozen=True)
class CheckView:
    name: str
    outcome: Outcome  # True/False are accepted and read as passed/failed
    evidence: str
    level: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome.of(self.outcome))

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


# --------------------------------------------------------------------------- helpers


def _get(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        if obj is None:
            return default
        if isinstance(obj, dict):
            if name in obj:
                return obj[name]
        elif hasattr(obj, name):
            return getattr(obj, name)
    return default


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    return None


def check_view(check: Any) -> CheckView:
    return CheckView(
        name=str(_get(check, "name", default="?")),
        outcome=Outcome.of(_get(check, "outcome", "passed", default=None)),
        evidence=str(_get(check, "evidence", default="") or ""),
        level=int(_get(check, "level", default=0) or 0),
    )


def dump_view(entry: Any) -> DumpView:
    from dumpdeck.backend.catalog import DumpEntry

    if isinstance(entry, DumpEntry):  # the common case, 10,000 times per scan: no generic lookups
        last = entry.last_result
        return DumpView(
            key=entry.key,
            path=entry.path,
            server=entry.server or "?",
            database=entry.database,
            when=entry.when.timestamp(),
            size=entry.size,
            codec=entry.codec or "",
            verified_level=entry.verified_level,
            verified_at=entry.verified_at,
            last_result=None if last is None else Outcome.of(last).value,
            legacy=entry.legacy,
            manifest_error=entry.manifest_error,
            manifest=entry.manifest,
        )
    path = Path(_get(entry, "path"))
    when = _epoch(_get(entry, "when")) or 0.0
    last = _get(entry, "last_result")
    if last is not None:
        last = Outcome.of(last).value
    return DumpView(
        key=str(_get(entry, "key", default=None) or path),
        path=path,
        server=str(_get(entry, "server", default="") or "?"),
        database=str(_get(entry, "database", default="?")),
        when=when,
        size=int(_get(entry, "size", default=0) or 0),
        codec=str(_get(entry, "codec", default="") or ""),
        verified_level=int(_get(entry, "verified_level", default=0) or 0),
        verified_at=_get(entry, "verified_at"),
        last_result=last,
        legacy=bool(_get(entry, "legacy", default=False)),
        manifest_error=_get(entry, "manifest_error"),
        manifest=_get(entry, "manifest"),
    )


class LogTail:
    """Incremental reader of a log file that survives rotation (inode change or truncation)."""

    def __init__(self, path: Path, initial_bytes: int = 64 * 1024):
        self.path = Path(path)
        self.offset: int | None = None
        self.inode: int | None = None
        self.initial_bytes = initial_bytes
        self._rest = b""

    def read(self, limit: int = 1024 * 1024) -> LogChunk:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return LogChunk(error=f"{self.path}: no log file yet")
        except OSError as exc:
            return LogChunk(error=f"{self.path}: {exc.strerror}")
        reset = False
        if self.offset is None or st.st_ino != self.inode or st.st_size < self.offset:
            reset = self.offset is not None
            self.inode = st.st_ino
            self.offset = max(0, st.st_size - self.initial_bytes) if not reset else 0
            self._rest = b""
            skip_partial = self.offset > 0
        else:
            skip_partial = False
        if st.st_size == self.offset:
            return LogChunk(reset=reset)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(limit)
        except OSError as exc:
            return LogChunk(error=f"{self.path}: {exc.strerror}")
        self.offset += len(data)
        data = self._rest + data
        parts = data.split(b"\n")
        self._rest = parts.pop()
        if skip_partial and parts:
            parts = parts[1:]
        return LogChunk(lines=tuple(p.decode("utf-8", "replace") for p in parts), reset=reset)


def log_level_of(line: str) -> str:
    for level in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"):
        if f" {level} " in line or f"[{level}]" in line or line.startswith(level) or line.endswith(f" {level}"):
            return level
    return "INFO"


# --------------------------------------------------------------------------- backends


class ConsoleBackend:
    """The console's whole view of the engine. Every method blocks; call from a worker."""

    config: Config
    now: Clock

    def server_names(self) -> list[str]:
        raise NotImplementedError

    def poll_server(self, name: str) -> ServerSnapshot:
        raise NotImplementedError

    def poll_catalog(self, force: bool = False) -> CatalogSnapshot:
        raise NotImplementedError

    def poll_jobs(self) -> JobsSnapshot:
        raise NotImplementedError

    def poll_disk(self, catalog: CatalogSnapshot | None) -> DiskSnapshot:
        raise NotImplementedError

    def poll_log(self) -> LogChunk:
        raise NotImplementedError

    def poll_schedules(self) -> list[ScheduleView]:
        raise NotImplementedError

    def run_log(self, run_id: int, max_bytes: int = 256 * 1024) -> str:
        raise NotImplementedError

    def start_backup(self, server: str, databases: list[str]) -> int | None:
        raise NotImplementedError

    def run_job(self, job: str) -> int | None:
        raise NotImplementedError

    def cancel_run(self, run_id: int) -> None:
        raise NotImplementedError

    def verify(self, dump: DumpView, on_check: Callable[[CheckView], None], record: bool = True) -> bool:
        raise NotImplementedError

    def restore_test(self, dump: DumpView, target: str, on_check: Callable[[CheckView], None]) -> bool:
        raise NotImplementedError

    def delete_dump(self, dump: DumpView) -> None:
        raise NotImplementedError

    def restore_targets(self) -> list[tuple[str, str]]:
        """(value, label) pairs for the restore-test target chooser."""
        out = [
            ("same", "same server (scratch database dumpdeck_rt_…)"),
            ("sandbox", "sandbox (a throwaway mariadbd started for the test)"),
        ]
        for name in self.config.servers:
            out.append((name, f"server {name}"))
        return out


class LiveBackend(ConsoleBackend):
    """The real engine: backend.mysql, .catalog, .state, .jobs, .disk, .schedule, .verify, .restore."""

    def __init__(self, config: Config, now: Clock = time.time):
        self.config = config
        self.now = now
        self._log = LogTail(config.log.file)
        self._store = None
        self._store_lock = threading.Lock()
        self._history_cache: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._catalog_snap: CatalogSnapshot | None = None
        self._catalog_dirs: dict[str, int] = {}  # directory → st_mtime_ns at the last scan
        self._catalog_full = 0.0
        self._footprint: tuple[Any, dict] | None = None

    # ---------------------------------------------------------------- servers
    def server_names(self) -> list[str]:
        return list(self.config.servers)

    def poll_server(self, name: str) -> ServerSnapshot:
        from dumpdeck.backend import mysql

        server = self.config.servers[name]
        t0 = time.monotonic()
        try:
            conn = mysql.connect(server, timeout=min(server.connect_timeout, 5.0), read_timeout=30.0)
            try:
                info = mysql.server_info(conn, server)
                dbs = mysql.inventory(conn, server)
            finally:
                conn.close()
        except DumpdeckError as exc:
            return ServerSnapshot(
                name=name,
                address=server.address,
                reachable=False,
                error=str(exc),
                latency=time.monotonic() - t0,
                polled_at=self.now(),
            )
        except Exception as exc:  # a driver error mid-query: the server is there but not answering well
            return ServerSnapshot(
                name=name,
                address=server.address,
                reachable=False,
                error=f"server {name} ({server.address}): {exc}",
                latency=time.monotonic() - t0,
                polled_at=self.now(),
            )
        views = tuple(
            DatabaseView(server=name, name=d.name, bytes=d.bytes, tables=d.tables, consistent=d.consistent) for d in dbs
        )
        return ServerSnapshot(
            name=name,
            address=server.address,
            reachable=True,
            databases=views,
            label=info.label,
            latency=time.monotonic() - t0,
            polled_at=self.now(),
        )

    # ---------------------------------------------------------------- catalog
    def poll_catalog(self, force: bool = False) -> CatalogSnapshot:
        """The catalog; the previous snapshot object itself when no directory changed.

        A rescan of 10,000 dumps is 0.2-0.5 s of Python in a worker, and the GIL it holds is
        felt as keypress latency. Every change the catalog can see (a dump or manifest
        written, renamed or deleted, a partial file created) changes the mtime of the
        directory holding it, so stat'ing the few hundred directories of the last scan
        (a millisecond or two) tells whether anything changed. `force` (events, `r`) and
        FULL_RESCAN_EVERY rescan regardless."""
        try:
            from dumpdeck.backend import catalog
        except ImportError:
            return CatalogSnapshot(error="catalog not available (backend.catalog missing)", scanned_at=self.now())
        previous = self._catalog_snap
        if (
            not force
            and previous is not None
            and self._catalog_dirs
            and time.monotonic() - self._catalog_full < FULL_RESCAN_EVERY
            and _dir_mtimes(self._catalog_dirs) == self._catalog_dirs
        ):
            return previous
        root = str(self.config.backup.dir)
        dirs = _dir_tree_mtimes(root, getattr(catalog, "_MAX_DEPTH", 3))
        try:
            cat = catalog.scan(self.config.backup.dir)
        except DumpdeckError as exc:
            self._catalog_snap = None
            return CatalogSnapshot(error=str(exc), scanned_at=self.now())
        self._catalog_dirs, self._catalog_full = dirs, time.monotonic()
        dumps = tuple(dump_view(e) for e in cat.entries)
        partials = tuple(str(_get(p, "path", default=p)) for p in (getattr(cat, "partials", None) or ()))
        errors = "; ".join(getattr(cat, "errors", None) or []) or None
        self._catalog_snap = CatalogSnapshot(
            dumps=dumps, partials=partials, scanned_at=self.now(), error=errors, raw=cat
        )
        return self._catalog_snap

    # ---------------------------------------------------------------- state / jobs
    def _open_store(self):
        with self._store_lock:
            if self._store is None:
                from dumpdeck.backend import state

                if not self.config.state_db.exists():
                    return None
                self._store = state.StateStore.open(self.config.state_db)
            return self._store

    def poll_jobs(self) -> JobsSnapshot:
        try:
            store = self._open_store()
        except ImportError:
            return JobsSnapshot(error="job state not available (backend.state missing)", polled_at=self.now())
        except DumpdeckError as exc:
            return JobsSnapshot(error=str(exc), polled_at=self.now())
        if store is None:
            return JobsSnapshot(polled_at=self.now())
        try:
            if hasattr(store, "reap_lost"):
                store.reap_lost()
            runs = store.list_runs(limit=30)
            views = []
            for run in runs:
                rid = int(_get(run, "id", "run_id"))
                status = str(_get(run, "status", default="?"))
                progress: tuple[DbProgressView, ...] = ()
                if status in ACTIVE_STATUSES:
                    progress = tuple(self._progress_view(store, run, p) for p in store.progress(rid))
                views.append(
                    RunView(
                        id=rid,
                        job=_get(run, "job", "job_name"),
                        server=_get(run, "server"),
                        status=status,
                        trigger=_get(run, "trigger"),
                        started=_epoch(_get(run, "started", "started_at")),
                        finished=_epoch(_get(run, "finished", "finished_at")),
                        databases=tuple(_get(run, "databases", default=()) or ()),
                        reason=_get(run, "reason", "error"),
                        progress=progress,
                    )
                )
        except DumpdeckError as exc:
            return JobsSnapshot(error=str(exc), polled_at=self.now())
        return JobsSnapshot(runs=tuple(views), polled_at=self.now())

    def _progress_view(self, store, run, p) -> DbProgressView:
        database = str(_get(p, "database"))
        started = _epoch(_get(p, "started"))
        bytes_raw = int(_get(p, "bytes_raw", default=0) or 0)
        rate = float(_get(p, "rate", default=0.0) or 0.0)
        estimate = _get(p, "estimate")
        eta = None
        typical = self._typical_duration(store, str(_get(run, "server", default="") or ""), database)
        now = self.now()
        if typical is not None and started is not None:
            eta = max(0.0, typical - (now - started))
        elif estimate and rate > 0 and bytes_raw < int(estimate):
            eta = (int(estimate) - bytes_raw) / rate
        return DbProgressView(
            database=database,
            status=str(_get(p, "status", default="?")),
            bytes_raw=bytes_raw,
            bytes_stored=int(_get(p, "bytes_stored", default=0) or 0),
            rate=rate,
            current_table=_get(p, "current_table"),
            started=started,
            updated=_epoch(_get(p, "updated")),
            estimate=int(estimate) if estimate else None,
            timeout=_get(p, "timeout"),
            eta=eta,
            error=_get(p, "error", "reason"),
        )

    def _typical_duration(self, store, server: str, database: str) -> float | None:
        """Median duration of the last successful dumps of this database (cached for a minute)."""
        key = (server, database)
        cached = self._history_cache.get(key)
        if cached and time.monotonic() - cached[0] < 60:
            return cached[1]
        value = None
        if hasattr(store, "history"):
            try:
                rows = store.history(server, database, limit=10)
                durations = [
                    float(d)
                    for d in (_get(r, "duration") for r in rows)
                    if d and str(_get(r, "status", default="succeeded")) in ("succeeded", "ok", "done")
                ]
                if durations:
                    value = statistics.median(durations)
            except Exception:
                value = None
        self._history_cache[key] = (time.monotonic(), value)
        return value

    def run_log(self, run_id: int, max_bytes: int = 256 * 1024) -> str:
        path = self.config.runs_log_dir / f"{run_id}.log"
        try:
            with open(path, "rb") as f:
                f.seek(0, os.SEEK_END)
                size = f.tell()
                f.seek(max(0, size - max_bytes))
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return f"(no log yet: {path})"
        except OSError as exc:
            return f"({path}: {exc.strerror})"

    def start_backup(self, server: str, databases: list[str]) -> int | None:
        from dumpdeck.backend import jobs

        run = jobs.start_run(self.config, databases=list(databases), server=server, trigger="console")
        return _get(run, "id", "run_id")

    def run_job(self, job: str) -> int | None:
        from dumpdeck.backend import jobs

        run = jobs.start_run(self.config, job_name=job, trigger="console")
        return _get(run, "id", "run_id")

    def cancel_run(self, run_id: int) -> None:
        from dumpdeck.backend import jobs

        store = self._open_store()
        jobs.cancel_run(store, run_id)

    # ---------------------------------------------------------------- disk
    def poll_disk(self, catalog: CatalogSnapshot | None) -> DiskSnapshot:
        try:
            from dumpdeck.backend import disk
        except ImportError:
            disk = None
        vols: list[VolumeView] = []
        try:
            if disk is not None:
                backup_dir = str(self.config.backup.dir)
                for v in disk.volumes(self.config):
                    days = None
                    holds_backups = (
                        any(backup_dir.startswith(p) or p.startswith(backup_dir) for p in v.paths) or not v.paths
                    )
                    if holds_backups and catalog is not None and catalog.raw is not None:
                        days = disk.projection(self.config, catalog.raw, free_bytes=v.free)
                    vols.append(VolumeView(path=v.mount, total=v.total, used=v.used, free=v.free, days_until_full=days))
            else:
                vols.append(_statvfs_volume(self.config.backup.dir))
        except DumpdeckError as exc:
            return DiskSnapshot(error=str(exc))
        except OSError as exc:
            return DiskSnapshot(error=f"{self.config.backup.dir}: {exc.strerror}")
        foot: list[FootprintView] = []
        if catalog is not None:
            foot = footprint_of(catalog)
            if disk is not None and catalog.raw is not None:
                if self._footprint is None or self._footprint[0] is not catalog.raw:
                    self._footprint = (catalog.raw, disk.footprint(catalog.raw))  # 10,000 stats: once per scan
                sizes = self._footprint[1]
                foot = sorted(
                    (replace(f, bytes=int(sizes.get((f.server, f.database), f.bytes))) for f in foot),
                    key=lambda f: -f.bytes,
                )
        return DiskSnapshot(volumes=tuple(vols), footprint=tuple(foot))

    # ---------------------------------------------------------------- log
    def poll_log(self) -> LogChunk:
        return self._log.read()

    # ---------------------------------------------------------------- schedules
    def poll_schedules(self) -> list[ScheduleView]:
        try:
            from dumpdeck.backend import schedule
        except ImportError:
            schedule = None
        last: dict[str, RunView] = {}
        try:
            for run in self.poll_jobs().runs:
                if run.job and run.job not in last and not run.active:
                    last[run.job] = run
        except Exception:
            pass
        out = []
        for job in self.config.jobs.values():
            nexts: tuple[float, ...] = ()
            if job.schedule:
                try:
                    if schedule is not None and hasattr(schedule, "next_runs"):
                        nexts = tuple(_epoch(t) or 0.0 for t in schedule.next_runs(job, 3))
                    else:
                        nexts = _croniter_next(job.schedule, self.now(), 3)
                except Exception:
                    nexts = ()
            r = last.get(job.name)
            out.append(
                ScheduleView(
                    job=job.name,
                    server=job.server,
                    schedule=job.schedule,
                    databases=tuple(job.databases),
                    next_runs=nexts,
                    last_status=r.status if r else None,
                    last_finished=r.finished if r else None,
                )
            )
        return out

    # ---------------------------------------------------------------- verification
    def verify(self, dump: DumpView, on_check: Callable[[CheckView], None], record: bool = True) -> Outcome:
        from dumpdeck.backend import verify

        report = verify.verify_file(dump.path, level=3, on_check=lambda c: on_check(check_view(c)), record=record)
        return report.outcome

    def restore_test(self, dump: DumpView, target: str, on_check: Callable[[CheckView], None]) -> Outcome:
        from dumpdeck.backend import restore

        report = restore.restore_test(dump.path, self.config, target, on_check=lambda c: on_check(check_view(c)))
        return report.outcome

    def delete_dump(self, dump: DumpView) -> None:
        from dumpdeck.backend import catalog

        catalog.delete(dump.path, "deleted from the console")


FULL_RESCAN_EVERY = 600.0  # seconds: a full catalog rescan even when no directory mtime moved


def _dir_tree_mtimes(root: str, max_depth: int) -> dict[str, int]:
    """st_mtime_ns of `root` and its subdirectories down to `max_depth` (taken before a scan)."""
    out: dict[str, int] = {}
    todo = [(root, 0)]
    while todo:
        path, depth = todo.pop()
        try:
            st = os.stat(path)
            out[path] = st.st_mtime_ns
            # st_nlink == 2: no subdirectories (ext4, xfs, tmpfs…); skip listing its files
            if depth < max_depth and st.st_nlink != 2:
                with os.scandir(path) as it:
                    todo.extend(
                        (de.path, depth + 1)
                        for de in it
                        if not de.name.startswith(".") and de.is_dir(follow_symlinks=False)
                    )
        except OSError:
            out[path] = -1
    return out


def _dir_mtimes(dirs: dict[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for path in dirs:
        try:
            out[path] = os.stat(path).st_mtime_ns
        except OSError:
            out[path] = -1
    return out


def _statvfs_volume(path: Path) -> VolumeView:
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    st = os.statvfs(probe)
    total = st.f_blocks * st.f_frsize
    free = st.f_bavail * st.f_frsize
    used = total - st.f_bfree * st.f_frsize
    return VolumeView(path=str(path), total=total, used=used, free=free)


def footprint_of(catalog: CatalogSnapshot) -> list[FootprintView]:
    agg: dict[tuple[str, str], list[int]] = {}
    for d in catalog.dumps:
        a = agg.setdefault((d.server, d.database), [0, 0])
        a[0] += d.size
        a[1] += 1
    rows = [FootprintView(server=s, database=db, bytes=b, count=c) for (s, db), (b, c) in agg.items()]
    rows.sort(key=lambda f: -f.bytes)
    return rows


def project_days(catalog: CatalogSnapshot, volume: VolumeView, now: float, window: float = 14 * 86400) -> float | None:
    """Days until the volume is full at the rate dumps were written over the last two weeks."""
    recent = [d for d in catalog.dumps if now - window <= d.when <= now]
    if len(recent) < 2:
        return None
    span = max(86400.0, now - min(d.when for d in recent))
    per_day = sum(d.size for d in recent) / (span / 86400)
    if per_day <= 0:
        return None
    return volume.free / per_day


def _croniter_next(expr: str, now: float, n: int) -> tuple[float, ...]:
    from croniter import croniter

    it = croniter(expr, datetime.fromtimestamp(now, tz=UTC))
    return tuple(it.get_next(float) for _ in range(n))


class FixedBackend(ConsoleBackend):
    """Replays fixed snapshots with a fixed clock; records what the console asked it to do."""

    def __init__(
        self,
        config: Config,
        *,
        servers: Iterable[ServerSnapshot] = (),
        catalog: CatalogSnapshot | None = None,
        jobs: JobsSnapshot | None = None,
        disk: DiskSnapshot | None = None,
        log_lines: Iterable[str] = (),
        schedules: Iterable[ScheduleView] = (),
        now: float = 1_750_000_000.0,
        checks: Iterable[CheckView] = (),
    ):
        self.config = config
        self._now = now
        self.now = lambda: self._now
        self.servers = {s.name: s for s in servers}
        self.catalog = catalog or CatalogSnapshot()
        self.jobs = jobs or JobsSnapshot()
        self.disk = disk or DiskSnapshot()
        self._log_lines = tuple(log_lines)
        self._log_sent = False
        self.schedules = list(schedules)
        self.checks = tuple(checks)
        self.calls: list[tuple] = []

    def server_names(self) -> list[str]:
        return list(self.servers)

    def poll_server(self, name: str) -> ServerSnapshot:
        return self.servers[name]

    def poll_catalog(self, force: bool = False) -> CatalogSnapshot:
        return self.catalog

    def poll_jobs(self) -> JobsSnapshot:
        return self.jobs

    def poll_disk(self, catalog: CatalogSnapshot | None) -> DiskSnapshot:
        return self.disk

    def poll_log(self) -> LogChunk:
        if self._log_sent:
            return LogChunk()
        self._log_sent = True
        return LogChunk(lines=self._log_lines)

    def poll_schedules(self) -> list[ScheduleView]:
        return self.schedules

    def run_log(self, run_id: int, max_bytes: int = 256 * 1024) -> str:
        return f"run {run_id}: log\n"

    def start_backup(self, server: str, databases: list[str]) -> int | None:
        self.calls.append(("start_backup", server, tuple(databases)))
        return 1

    def run_job(self, job: str) -> int | None:
        self.calls.append(("run_job", job))
        return 1

    def cancel_run(self, run_id: int) -> None:
        self.calls.append(("cancel_run", run_id))

    def verify(self, dump: DumpView, on_check, record: bool = True) -> Outcome:
        self.calls.append(("verify", dump.key))
        for c in self.checks:
            on_check(c)
        return Outcome.combine(c.outcome for c in self.checks)

    def restore_test(self, dump: DumpView, target: str, on_check) -> Outcome:
        self.calls.append(("restore_test", dump.key, target))
        for c in self.checks:
            on_check(c)
        return Outcome.combine(c.outcome for c in self.checks)

    def delete_dump(self, dump: DumpView) -> None:
        self.calls.append(("delete_dump", dump.key))
        self.catalog = replace(self.catalog, dumps=tuple(d for d in self.catalog.dumps if d.key != dump.key))
