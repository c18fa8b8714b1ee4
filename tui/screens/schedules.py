"""Schedules: the jobs from the config with their next run times and last result; run one now."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from .. import actions
from ..rows import age_text, run_status_tone
from ..widgets.table import Cell, KeyedTable, tone_style

if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%a %m-%d %H:%M")


class SchedulesScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "schedules"
    BINDINGS = actions.bindings("schedules")

    def __init__(self) -> None:
        super().__init__(id="schedules-screen")

    def compose(self) -> ComposeResult:
        yield Static("Schedules", id="statusbar")
        with Vertical(id="schedules-pane", classes="pane"):
            yield KeyedTable(
                [
                    ("job", "Job"),
                    ("server", "Server"),
                    ("schedule", "Schedule"),
                    ("next", "Next runs (UTC)"),
                    ("last", "Last result"),
                    ("dbs", "Databases"),
                ],
                id="schedules",
            )
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#schedules-pane").border_title = "Jobs"
        self.query_one("#schedules").focus()
        self.render_state()

    def render_state(self, what: str | None = None) -> None:
        if not self.is_mounted:
            return
        app = self.app
        now = app.now()
        rows = []
        for s in app.schedules:
            nxt = ", ".join(_when(t) for t in s.next_runs[:2]) if s.next_runs else ("manual" if not s.schedule else "-")
            last = (
                "never run"
                if s.last_status is None
                else (f"{s.last_status} {age_text(now - s.last_finished) if s.last_finished else ''}".strip())
            )
            rows.append(
                (
                    s.job,
                    (
                        s.job,
                        s.server,
                        s.schedule or "-",
                        nxt,
                        Cell(
                            last,
                            last,
                            style=tone_style(app, run_status_tone(s.last_status or "-")) if s.last_status else "",
                        ),
                        ", ".join(s.databases),
                    ),
                    s,
                )
            )
        self.query_one("#schedules", KeyedTable).sync(rows)
        count = len(app.config.jobs)
        self.query_one("#statusbar", Static).update(
            f"Schedules · {count} job(s) in {app.config.path}" + (" · READ-ONLY" if app.read_only else "")
        )

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.app.read_only and action in actions.DESTRUCTIVE_ACTIONS)

    def action_run_now(self) -> None:
        table = self.query_one("#schedules", KeyedTable)
        key = table.cursor_key
        if key:
            self.app.run_job_now(key)

    def action_back(self) -> None:
        self.app.pop_screen()
