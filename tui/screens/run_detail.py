"""One run: each database's result, the run's event stream and its log.

While the run is active the table is its live progress; once it is over the same rows
keep the result (status, try, raw and stored bytes, file, verification level, duration),
and the events say what happened after the dumps (verification steps, retention), as
`dumpdeck job status N` prints them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes, format_duration

from .. import actions
from ..rows import eta_text, level_text, rate_text, run_status_tone
from ..views import EventView, RunView
from ..widgets.layout import apply_breakpoints
from ..widgets.table import Cell, KeyedTable, tone_style

EVENT_TONES = {"error": "bad", "critical": "bad", "warning": "warn"}


def event_line(e: EventView) -> str:
    return f"{datetime.fromtimestamp(e.at, tz=UTC).strftime('%H:%M:%S')} {e.level:<7} {printable(e.message)}"


if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


class RunDetailScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "run"
    BINDINGS = actions.bindings("run")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, run_id: int) -> None:
        super().__init__(id="run-screen")
        self.run_id = run_id
        self._log_text = ""
        self._reading = False
        self._events: list[EventView] = []
        self._final_read = False  # the run is over and its events and log were read after that

    def compose(self) -> ComposeResult:
        yield Static(f"Run #{self.run_id}", id="statusbar")
        with Vertical(id="run-progress-pane", classes="pane"):
            yield KeyedTable(
                [
                    ("database", "Database"),
                    ("status", "Status"),
                    ("try", "Try"),
                    ("raw", "Raw"),
                    ("stored", "Stored"),
                    ("elapsed", "Duration"),
                    ("level", "Lvl"),
                    ("file", "File / table / error"),
                    ("rate", "Rate"),
                    ("eta", "ETA"),
                ],
                id="run-progress",
            )
        with Horizontal(id="run-body"):
            with Vertical(id="run-events-pane", classes="pane"):
                yield Log(id="run-events", max_lines=5000)
            with Vertical(id="run-log-pane", classes="pane"):
                yield Log(id="run-log", max_lines=5000)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        apply_breakpoints(self)
        self.query_one("#run-log-pane").border_title = f"Log of run #{self.run_id}"
        self.query_one("#run-events-pane").border_title = "Events (UTC)"
        self.query_one("#run-progress-pane").border_title = "Databases"
        self.query_one("#run-progress", KeyedTable).focus()
        self.render_state()

    def on_screen_resume(self) -> None:
        apply_breakpoints(self)
        self.render_state()

    def _run(self) -> RunView | None:
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
            now = app.now()
            dur = run.duration(now)
            parts = [f"Run #{run.id}", run.job or "", run.server or "", run.shown_status]
            if dur is not None:
                parts.append(format_duration(dur))
            parts.append(f"by {run.trigger or '?'}")
            if run.reason:
                parts.append(run.reason)
            self.query_one("#statusbar", Static).update(Text(printable(" · ".join(p for p in parts if p))))
            rows = []
            for p in run.progress:
                tone = run_status_tone(p.status)
                status = "cancelling" if run.shown_status == "cancelling" and p.live else p.status
                elapsed = p.elapsed(now)
                detail = p.error or (p.current_table if p.status == "running" else p.file) or ""
                rows.append(
                    (
                        p.database,
                        (
                            p.database,
                            Cell(status, status, style=tone_style(app, "warn" if status == "cancelling" else tone)),
                            Cell(str(p.attempt + 1) if p.started else "-", p.attempt, justify="right"),
                            Cell(format_bytes(p.bytes_raw) if p.bytes_raw else "-", p.bytes_raw, justify="right"),
                            Cell(
                                format_bytes(p.bytes_stored) if p.bytes_stored else "-", p.bytes_stored, justify="right"
                            ),
                            Cell(format_duration(elapsed) if elapsed is not None else "-", elapsed),
                            Cell(level_text(p.verified_level or 0), p.verified_level),
                            Cell(detail, detail, style=tone_style(app, "bad") if p.error else ""),
                            Cell(rate_text(p.rate), p.rate, justify="right"),
                            Cell(eta_text(p, now), p.eta(now)),
                        ),
                        p,
                    )
                )
            self.query_one("#run-progress", KeyedTable).sync(rows)
            self.query_one("#run-progress-pane").styles.height = min(len(rows), 12) + 3
        if not self._reading and not self._final_read:
            self._reading = True
            self._read_details(run is not None and not run.active)

    @work(thread=True, group="run-log", exit_on_error=False, description="read a run's events and log")
    def _read_details(self, final: bool) -> None:
        events = self.app.backend.run_events(self.run_id)
        text = self.app.backend.run_log(self.run_id)
        self.app.call_from_thread(self._show_details, events, text, final)

    def _show_details(self, events: list[EventView], text: str, final: bool) -> None:
        self._reading = False
        self._final_read = final
        if not self.is_mounted:
            return
        if events != self._events:
            log = self.query_one("#run-events", Log)
            if self._events and events[: len(self._events)] == self._events:
                log.write_lines([event_line(e) for e in events[len(self._events) :]])
            else:
                log.clear()
                log.write_lines([event_line(e) for e in events])
            self._events = events
            bad = sum(1 for e in events if EVENT_TONES.get(e.level) == "bad")
            self.query_one("#run-events-pane").border_title = f"Events ({len(events)}, UTC)" + (
                f" · {bad} error(s)" if bad else ""
            )
        if text == self._log_text:
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
