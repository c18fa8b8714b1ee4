"""One run: its databases' progress and its log, refreshed with the jobs poll."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes, format_duration

from .. import actions
from ..rows import run_status_tone
from ..widgets.table import Cell, KeyedTable, bar, tone_style

if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


class RunDetailScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "run"
    BINDINGS = actions.bindings("run")

    def __init__(self, run_id: int) -> None:
        super().__init__(id="run-screen")
        self.run_id = run_id
        self._log_text = ""
        self._reading = False

    def compose(self) -> ComposeResult:
        yield Static(f"Run #{self.run_id}", id="statusbar")
        with Vertical(id="run-progress-pane", classes="pane"):
            yield KeyedTable(
                [
                    ("database", "Database"),
                    ("status", "Status"),
                    ("progress", "Progress"),
                    ("bytes", "Bytes"),
                    ("rate", "Rate"),
                    ("elapsed", "Elapsed"),
                    ("table", "Table"),
                    ("error", "Error"),
                ],
                id="run-progress",
            )
        with Vertical(id="run-log-pane", classes="pane"):
            yield Log(id="run-log", max_lines=5000)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#run-log-pane").border_title = f"Log of run #{self.run_id}"
        self.query_one("#run-progress-pane").border_title = "Databases"
        self.render_state()

    def _run(self):
        for r in self.app.jobs.runs:
            if r.id == self.run_id:
                return r
        return None

    def render_state(self, what: str | None = None) -> None:
        if not self.is_mounted:
            return
        app = self.app
        run = self._run()
        if run is None:
            self.query_one("#statusbar", Static).update(f"Run #{self.run_id}: not among the recent runs")
        else:
            who = run.job or ""
            self.query_one("#statusbar", Static).update(
                f"Run #{run.id} · {who} · {run.server or ''} · {run.status}"
                + (f" · {run.reason}" if run.reason else "")
                + f" · trigger {run.trigger or '?'}"
            )
            rows = []
            now = app.now()
            for p in run.progress:
                elapsed = (now - p.started) if p.started else None
                tone = run_status_tone(p.status)
                rows.append(
                    (
                        p.database,
                        (
                            p.database,
                            Cell(p.status, p.status, style=tone_style(app, tone)),
                            Cell.of(bar(app, p.fraction, 10), p.fraction),
                            format_bytes(p.bytes_raw),
                            (format_bytes(p.rate) + "/s") if p.rate else "-",
                            format_duration(elapsed),
                            p.current_table or "",
                            (p.error or "")[:80],
                        ),
                        p,
                    )
                )
            self.query_one("#run-progress", KeyedTable).sync(rows)
        if not self._reading:
            self._reading = True
            self._read_log()

    @work(thread=True, group="run-log", exit_on_error=False, description="read a run's log")
    def _read_log(self) -> None:
        text = self.app.backend.run_log(self.run_id)
        self.app.call_from_thread(self._show_log, text)

    def _show_log(self, text: str) -> None:
        self._reading = False
        if not self.is_mounted or text == self._log_text:
            return
        log = self.query_one("#run-log", Log)
        if text.startswith(self._log_text) and self._log_text:
            new = text[len(self._log_text) :]
            log.write(printable(new, keep_newlines=True))
        else:
            log.clear()
            log.write(printable(text, keep_newlines=True))
        self._log_text = text

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if self.app.read_only and action in actions.DESTRUCTIVE_ACTIONS:
            return False
        if action == "cancel_run":
            run = self._run()
            return run is not None and run.active
        return True

    def action_cancel_run(self) -> None:
        run = self._run()
        if run is not None and run.active:
            self.app.confirm_cancel(run)

    def action_back(self) -> None:
        self.app.pop_screen()
