"""What a screen may use of the console app: its polled state and the actions it offers.

The screens import this, never `tui.app` (which imports the screens), so the console's import
graph has no cycle, at run time or for the type checker. `DumpdeckApp` fills it in.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from textual.app import App

from dumpdeck.backend.config import Config
from dumpdeck.backend.outcome import Outcome

from .adapter import ConsoleBackend
from .views import (
    CatalogSnapshot,
    CheckView,
    DiskSnapshot,
    DumpView,
    JobsSnapshot,
    RunView,
    ScheduleView,
    ServerSnapshot,
)


@dataclass
class Ladder:
    """A verification or restore-test in progress or finished, attached to one dump."""

    kind: str  # verify | restore-test
    target: str | None
    checks: list[CheckView] = field(default_factory=list)
    outcome: Outcome | None = None  # None while running
    error: str | None = None
    started: float = 0.0
    cancel: threading.Event = field(default_factory=threading.Event)  # set: stop it (a restore-test)

    @property
    def running(self) -> bool:
        return self.outcome is None and self.error is None


class ConsoleApp(App[int]):
    """The console's state (replaced by each poll) and actions, as the screens see them; it exits with a code."""

    config: Config
    backend: ConsoleBackend
    read_only: bool
    paused: bool
    now: Callable[[], float]
    servers: dict[str, ServerSnapshot | None]
    catalog: CatalogSnapshot
    jobs: JobsSnapshot
    disk: DiskSnapshot
    schedules: list[ScheduleView]
    ladders: dict[str, Ladder]

    def poll_now(self) -> None:
        raise NotImplementedError

    def open_run(self, run_id: int) -> None:
        raise NotImplementedError

    def open_database(self, key: str) -> None:
        raise NotImplementedError

    def confirm_cancel_check(self, dump: DumpView) -> None:
        raise NotImplementedError

    def start_backup(self, server: str, databases: list[str]) -> None:
        raise NotImplementedError

    def run_job_now(self, job: str) -> None:
        raise NotImplementedError

    def confirm_cancel(self, run: RunView) -> None:
        raise NotImplementedError

    def start_verify(self, dump: DumpView) -> None:
        raise NotImplementedError

    def choose_restore_target(self, dump: DumpView) -> None:
        raise NotImplementedError

    def confirm_delete(self, dump: DumpView) -> None:
        raise NotImplementedError
