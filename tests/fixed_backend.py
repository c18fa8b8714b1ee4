"""A test double of the console's backend adapter: fixed snapshots, a fixed clock, and a
record of what the console asked it to do (snapshot tests, unit tests of the screens)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from dumpdeck.backend.config import Config
from dumpdeck.backend.outcome import Outcome
from dumpdeck.tui.adapter import ConsoleBackend
from dumpdeck.tui.views import (
    CatalogSnapshot,
    CheckView,
    DiskSnapshot,
    DumpView,
    EventView,
    JobsSnapshot,
    LogChunk,
    ScheduleView,
    ServerSnapshot,
)


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
        events: dict[int, list[EventView]] | None = None,
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
        self.events = events or {}
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

    def run_events(self, run_id: int, limit: int = 500) -> list[EventView]:
        return list(self.events.get(run_id, ()))[-limit:]

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

    def restore_test(self, dump: DumpView, target: str, on_check, cancel=None) -> Outcome:
        self.calls.append(("restore_test", dump.key, target))
        for c in self.checks:
            on_check(c)
        return Outcome.combine(c.outcome for c in self.checks)

    def delete_dump(self, dump: DumpView) -> None:
        self.calls.append(("delete_dump", dump.key))
        self.catalog = replace(self.catalog, dumps=tuple(d for d in self.catalog.dumps if d.key != dump.key))
