"""The console's backend adapter: the one seam between the console and the engine.

Every method blocks (MySQL, SQLite, the file system) and is called from a Textual
thread worker, never from the event loop. Nothing here imports Textual. `LiveBackend`
calls the engine's modules and turns their records into the view models of
`tui/views.py`; tests replace it with a double that replays fixed snapshots
(`tests/fixed_backend.py`).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from dumpdeck.backend import catalog as catalog_mod
from dumpdeck.backend import disk as disk_mod
from dumpdeck.backend import jobs as jobs_mod
from dumpdeck.backend import mysql, schedule
from dumpdeck.backend import state as state_mod
from dumpdeck.backend import swap as swap_mod
from dumpdeck.backend.catalog import DumpEntry
from dumpdeck.backend.config import Config
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.logs import log_check_outcome, log_check_start
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.state import DbProgress, Run, StateStore
from dumpdeck.backend.verify import CheckResult

from .logtail import LogTail
from .views import (
    CatalogSnapshot,
    CheckView,
    Clock,
    DatabaseView,
    DbProgressView,
    DiskSnapshot,
    DumpView,
    EventView,
    FootprintView,
    JobsSnapshot,
    LogChunk,
    RunView,
    ScheduleView,
    ServerSnapshot,
    VolumeView,
    footprint_of,
)

FULL_RESCAN_EVERY = 600.0  # seconds: a full catalog rescan even when no directory mtime moved


def _ts(value) -> float | None:
    return None if value is None else value.timestamp()


def check_view(check: CheckResult) -> CheckView:
    return CheckView(name=check.name, outcome=check.outcome, evidence=check.evidence or "", level=check.level)


def dump_view(entry: DumpEntry) -> DumpView:
    """One catalog entry as the console shows it (10,000 times per scan: plain attribute reads)."""
    last = entry.last_result
    return DumpView(
        key=entry.key,
        path=entry.path,
        server=entry.server or "?",
        database=entry.database,
        when=entry.when.timestamp(),
        size=entry.size,
        codec=entry.codec_label,
        verified_level=entry.verified_level,
        verified_at=entry.verified_at,
        last_result=None if last is None else Outcome.of(last).value,
        legacy=entry.legacy,
        manifest_error=entry.manifest_error,
        manifest=entry.manifest,
    )


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

    def run_events(self, run_id: int, limit: int = 500) -> list[EventView]:
        raise NotImplementedError

    def start_backup(self, server: str, databases: list[str]) -> int | None:
        raise NotImplementedError

    def run_job(self, job: str) -> int | None:
        raise NotImplementedError

    def cancel_run(self, run_id: int) -> None:
        raise NotImplementedError

    def verify(self, dump: DumpView, on_check: Callable[[CheckView], None], record: bool = True) -> Outcome:
        raise NotImplementedError

    def restore_test(
        self,
        dump: DumpView,
        target: str,
        on_check: Callable[[CheckView], None],
        cancel: threading.Event | None = None,
    ) -> Outcome:
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


SWAP_CHECK = 5.0  # seconds between two looks for --replace swaps a killed restore left open


class LiveBackend(ConsoleBackend):
    """The real engine: backend.mysql, .catalog, .state, .jobs, .disk, .schedule, .verify, .restore."""

    def __init__(self, config: Config, now: Clock = time.time):
        self.config = config
        self.now = now
        self._log = LogTail(config.log.file)
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()
        self._history_cache: dict[tuple[str, str], tuple[float, float | None]] = {}
        self._finished: dict[int, RunView] = {}  # a finished run never changes again: read it once
        self._interrupted: tuple[str, ...] = ()  # swaps left open by a killed restore, read every SWAP_CHECK s
        self._next_swap_check = 0.0
        self._catalog_snap: CatalogSnapshot | None = None
        self._catalog_dirs: dict[str, int] = {}  # directory → st_mtime_ns at the last scan
        self._catalog_full = 0.0
        self._footprint: tuple[object, dict] | None = None

    # ---------------------------------------------------------------- servers
    def server_names(self) -> list[str]:
        return list(self.config.servers)

    def poll_server(self, name: str) -> ServerSnapshot:
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
                cause=getattr(exc, "cause", None) or "error",
            )
        except Exception as exc:  # a driver error mid-query: the server is there but not answering well
            return ServerSnapshot(
                name=name,
                address=server.address,
                reachable=False,
                error=f"server {name} ({server.address}): {exc}",
                latency=time.monotonic() - t0,
                polled_at=self.now(),
                cause=mysql.connect_cause(exc),
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
        dirs = _dir_tree_mtimes(root, catalog_mod.MAX_DEPTH)
        try:
            cat = catalog_mod.scan(self.config.backup.dir)
        except DumpdeckError as exc:
            self._catalog_snap = None
            return CatalogSnapshot(error=str(exc), scanned_at=self.now())
        self._catalog_dirs, self._catalog_full = dirs, time.monotonic()
        dumps = tuple(dump_view(e) for e in cat.entries)
        partials = tuple(str(p.path) for p in cat.partials)
        errors = "; ".join(cat.errors) or None
        self._catalog_snap = CatalogSnapshot(
            dumps=dumps, partials=partials, scanned_at=self.now(), error=errors, raw=cat
        )
        return self._catalog_snap

    # ---------------------------------------------------------------- state / jobs
    def _open_store(self) -> StateStore | None:
        with self._store_lock:
            if self._store is None:
                if not self.config.state_db.exists():
                    return None
                self._store = state_mod.StateStore.open(self.config.state_db)
            return self._store

    def poll_jobs(self) -> JobsSnapshot:
        """The recent runs, each with its databases' progress: live for active runs, the final
        figures (status, try, bytes, file, level) for finished ones, which are read only once."""
        jobs_mod.reap_children()  # runners this console started: no <defunct> once they exit
        try:
            store = self._open_store()
            if store is None:
                return JobsSnapshot(polled_at=self.now())
            store.reap_lost()
            views = []
            for run in store.list_runs(limit=30):
                if not run.active and run.id in self._finished:
                    views.append(self._finished[run.id])
                    continue
                live = run.active
                progress = tuple(self._progress_view(store, run, p, live) for p in store.progress(run.id))
                cancel_at = None
                if live:
                    cancels = store.events(run.id, kind="cancel", limit=1)
                    cancel_at = _ts(cancels[0].at) if cancels else None
                view = _run_view(run, progress, cancel_at)
                if not live:
                    self._finished[run.id] = view
                views.append(view)
            keep = {v.id for v in views}
            for rid in [r for r in self._finished if r not in keep]:
                del self._finished[rid]
            if self.now() >= self._next_swap_check:
                self._next_swap_check = self.now() + SWAP_CHECK
                self._interrupted = tuple(f"{j.server}/{j.database}" for j in swap_mod.interrupted(store))
        except DumpdeckError as exc:
            return JobsSnapshot(error=str(exc), polled_at=self.now())
        return JobsSnapshot(runs=tuple(views), polled_at=self.now(), interrupted=self._interrupted)

    def _progress_view(self, store: StateStore, run: Run, p: DbProgress, live: bool) -> DbProgressView:
        typical = self._typical_duration(store, run.server or "", p.database) if live else None
        return DbProgressView(
            database=p.database,
            status=p.status,
            bytes_raw=p.bytes_raw,
            bytes_stored=p.bytes_stored,
            rate=p.rate,
            current_table=p.current_table,
            started=_ts(p.started),
            updated=_ts(p.updated),
            estimate=p.estimate or None,
            timeout=p.timeout,
            typical=typical,
            error=p.error,
            attempt=p.attempt,
            file=p.file,
            verified_level=p.verified_level,
        )

    def run_events(self, run_id: int, limit: int = 500) -> list[EventView]:
        store = self._open_store()
        if store is None:
            return []
        events = store.events(run_id, limit=100_000)[-limit:]
        return [EventView(at=e.at.timestamp(), level=e.level, kind=e.kind, message=e.message) for e in events]

    def _typical_duration(self, store: StateStore, server: str, database: str) -> float | None:
        """Median duration of the last successful dumps of this database (cached for a minute)."""
        key = (server, database)
        cached = self._history_cache.get(key)
        if cached and time.monotonic() - cached[0] < 60:
            return cached[1]
        durations = [r.duration for r in store.history(server, database, limit=10) if r.duration]
        value = statistics.median(durations) if durations else None
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
        return jobs_mod.start_run(self.config, databases=list(databases), server=server, trigger="console").id

    def run_job(self, job: str) -> int | None:
        return jobs_mod.start_run(self.config, job_name=job, trigger="console").id

    def cancel_run(self, run_id: int) -> None:
        store = self._open_store()
        if store is None:
            raise DumpdeckError(f"no state database at {self.config.state_db}")
        jobs_mod.cancel_run(store, run_id)

    # ---------------------------------------------------------------- disk
    def poll_disk(self, catalog: CatalogSnapshot | None) -> DiskSnapshot:
        vols: list[VolumeView] = []
        try:
            for v in disk_mod.volumes(self.config):
                days = None
                if v.holds_backups and catalog is not None and catalog.raw is not None:
                    days = disk_mod.projection(self.config, catalog.raw, free_bytes=v.free)
                vols.append(
                    VolumeView(
                        path=v.mount, total=v.total, used=v.used, free=v.free, days_until_full=days, percent=v.percent
                    )
                )
        except DumpdeckError as exc:
            return DiskSnapshot(error=str(exc))
        except OSError as exc:
            return DiskSnapshot(error=f"{self.config.backup.dir}: {exc.strerror}")
        foot: list[FootprintView] = []
        if catalog is not None:
            foot = footprint_of(catalog)
            if catalog.raw is not None:
                if self._footprint is None or self._footprint[0] is not catalog.raw:
                    self._footprint = (catalog.raw, disk_mod.footprint(catalog.raw))  # 10,000 stats: once per scan
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
        last: dict[str, RunView] = {}
        for run in self.poll_jobs().runs:
            if run.job and run.job not in last and not run.active:
                last[run.job] = run
        out = []
        for job in self.config.jobs.values():
            nexts = tuple(t.timestamp() for t in schedule.next_runs(job, 3)) if job.schedule else ()
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

        log_check_start("verify", dump.path)
        try:
            report = verify.verify_file(dump.path, level=3, on_check=lambda c: on_check(check_view(c)), record=record)
        except DumpdeckError as exc:
            log_check_outcome("verify", dump.path, error=str(exc))
            raise
        log_check_outcome("verify", dump.path, report)
        return report.outcome

    def restore_test(
        self,
        dump: DumpView,
        target: str,
        on_check: Callable[[CheckView], None],
        cancel: threading.Event | None = None,
    ) -> Outcome:
        from dumpdeck.backend import restore

        log_check_start("restore-test", dump.path, target)
        try:
            report = restore.restore_test(
                dump.path, self.config, target, on_check=lambda c: on_check(check_view(c)), cancel=cancel
            )
        except DumpdeckError as exc:
            stopped = cancel is not None and cancel.is_set()
            log_check_outcome("restore-test", dump.path, error="stopped by the operator" if stopped else str(exc))
            raise
        if cancel is not None and cancel.is_set() and not report.passed:
            log_check_outcome("restore-test", dump.path, error="stopped by the operator")
        else:
            log_check_outcome("restore-test", dump.path, report)
        return report.outcome

    def delete_dump(self, dump: DumpView) -> None:
        catalog_mod.delete(dump.path, "deleted from the console")


def _run_view(run: Run, progress: tuple[DbProgressView, ...], cancel_requested: float | None = None) -> RunView:
    return RunView(
        id=run.id,
        job=run.job,
        server=run.server,
        status=run.status,
        trigger=run.trigger,
        started=_ts(run.started),
        finished=_ts(run.finished),
        databases=tuple(run.databases),
        reason=run.reason,
        progress=progress,
        cancel_requested=cancel_requested,
    )


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
