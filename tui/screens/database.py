"""One database (Enter on a row of the Databases pane): its server's state, its dumps, its last runs.

Everything shown comes from the App's snapshots (the catalog, the recent runs, the last
server poll), so the screen opens at once, also while the server is down: that is when
the age of the newest good dump and the reason the server is down matter most.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes, format_duration

from .. import actions
from ..rows import age_text, database_rows, db_key, level_text, run_status_tone
from ..widgets.layout import apply_breakpoints
from ..widgets.table import Cell, KeyedTable, OpenableTable, tone_style

if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).strftime("%Y-%m-%d %H:%M") if epoch else "?"


class DatabaseScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "database"
    BINDINGS = actions.bindings("database")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self, server: str, database: str) -> None:
        super().__init__(id="database-screen")
        self.server = server
        self.database = database

    def compose(self) -> ComposeResult:
        yield Static(Text(printable(f"{self.server}/{self.database}")), id="statusbar")
        with VerticalScroll(id="db-server-pane", classes="pane"):
            yield Static("", id="db-server")
        with Horizontal(id="db-body"):
            with Vertical(id="db-dumps-pane", classes="pane"):
                yield OpenableTable(
                    [
                        ("when", "When (UTC)"),
                        ("age", "Age"),
                        ("size", "Size"),
                        ("level", "Lvl"),
                        ("result", "Last check"),
                        ("file", "File"),
                    ],
                    id="db-dumps",
                )
            with Vertical(id="db-runs-pane", classes="pane"):
                yield OpenableTable(
                    [
                        ("run", "Run"),
                        ("when", "Started (UTC)"),
                        ("status", "Status"),
                        ("raw", "Raw"),
                        ("took", "Took"),
                        ("result", "Result"),
                    ],
                    id="db-runs",
                )
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        apply_breakpoints(self)
        self.query_one("#db-server-pane").border_title = Text(printable(f"Server {self.server}"))
        self.query_one("#db-dumps-pane").border_title = "Dumps (newest first)"
        self.query_one("#db-runs-pane").border_title = "Last runs"
        self.query_one("#db-dumps", KeyedTable).focus()
        self.render_state()

    def on_screen_resume(self) -> None:
        apply_breakpoints(self)
        self.render_state()

    def render_state(self, what: str | None = None) -> None:
        if not self.is_mounted:
            return
        app = self.app
        now = app.now()
        key = db_key(self.server, self.database)
        row = next(
            (r for r in database_rows(app.servers, app.catalog, app.jobs, app.config, now) if r.key == key), None
        )
        parts = [f"{self.server}/{self.database}"]
        if row is not None:
            if row.bytes is not None:
                parts.append(f"{format_bytes(row.bytes)}, {row.tables} tables")
            parts.append(f"last good {age_text(row.age(now))}" + (f" ({level_text(row.level)})" if row.level else ""))
            parts.append(row.status)
        self.query_one("#statusbar", Static).update(Text(printable(" · ".join(parts))))
        self.query_one("#db-server", Static).update(Text(printable(self.server_text(now), keep_newlines=True)))

        dumps = [d for d in app.catalog.dumps if d.server == self.server and d.database == self.database]
        rows = []
        for d in dumps:
            tone = "bad" if d.last_result == "failed" or d.manifest_error else ("ok" if d.verified_level else "warn")
            result = "manifest error" if d.manifest_error else (d.last_result or ("legacy" if d.legacy else "-"))
            rows.append(
                (
                    d.key,
                    (
                        Cell(_when(d.when), d.when),
                        Cell(age_text(max(0.0, now - d.when)), -d.when),
                        Cell(format_bytes(d.size), d.size, justify="right"),
                        Cell(level_text(d.verified_level), d.verified_level, style=tone_style(app, tone)),
                        Cell(result, result, style=tone_style(app, tone)),
                        d.path.name,
                    ),
                    d,
                )
            )
        self.query_one("#db-dumps", KeyedTable).sync(rows)
        self.query_one("#db-dumps-pane").border_title = f"Dumps ({len(dumps)}, newest first)"

        runs = []
        for run in app.jobs.runs:
            if run.server != self.server or self.database not in run.databases:
                continue
            p = next((p for p in run.progress if p.database == self.database), None)
            status = p.status if p is not None else run.shown_status
            took = p.elapsed(now) if p is not None else run.duration(now)
            result = (p.error or (p.file or "").rsplit("/", 1)[-1]) if p is not None else (run.reason or "")
            runs.append(
                (
                    str(run.id),
                    (
                        f"#{run.id}",
                        Cell(_when(run.started) if run.started else "queued", run.started),
                        Cell(status, status, style=tone_style(app, run_status_tone(status))),
                        Cell(format_bytes(p.bytes_raw) if p and p.bytes_raw else "-", p.bytes_raw if p else 0),
                        Cell(format_duration(took) if took is not None else "-", took),
                        result,
                    ),
                    run,
                )
            )
        self.query_one("#db-runs", KeyedTable).sync(runs)
        self.query_one("#db-runs-pane").border_title = f"Last runs ({len(runs)})"

    def server_text(self, now: float) -> str:
        snap = self.app.servers.get(self.server)
        if snap is None:
            return "not polled yet"
        if snap.reachable:
            return (
                f"up · {snap.label or 'version unknown'} · {snap.address} · answered in {snap.latency * 1000:.0f} ms "
                f"({age_text(max(0.0, now - snap.polled_at))})"
            )
        since = f" for {format_duration(now - snap.down_since)}" if snap.down_since else ""
        lines = [f"DOWN{since}: {snap.cause or 'unreachable'} · {snap.address}", snap.error or ""]
        if snap.databases:
            lines.append("(sizes are from its last answer; the dumps below are on disk and unaffected)")
        return "\n".join(line for line in lines if line)

    @on(DataTable.RowSelected, "#db-runs")
    def _run_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        run = self.query_one("#db-runs", KeyedTable).raw(str(event.row_key.value))
        if run is not None:
            self.app.open_run(run.id)

    @on(DataTable.RowSelected, "#db-dumps")
    def _dump_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_dumps()

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.app.read_only and action in actions.DESTRUCTIVE_ACTIONS)

    def action_backup(self) -> None:
        self.app.start_backup(self.server, [self.database])

    def action_dumps(self) -> None:
        from .dumps import DumpsScreen

        self.app.push_screen(DumpsScreen(scope=(self.server, self.database)))

    def action_back(self) -> None:
        self.app.pop_screen()
