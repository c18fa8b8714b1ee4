"""The dashboard: databases, jobs, disk and log panes, live.

The screen never reads the backend itself: the App polls and keeps the latest
snapshots; `render_state()` turns them into rows. The App calls it after each
poll unless the user paused (`p`) or a modal is on top.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Log, Static

from dumpdeck.backend.disk import grade
from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes, format_duration

from .. import actions
from ..logtail import LEVEL_RANK, compact_log_line, log_level_of
from ..rows import age_text, bytes_text, database_rows, level_text, run_status_tone, severity_tone
from ..views import RunView
from ..widgets.layout import apply_breakpoints
from ..widgets.table import Cell, KeyedTable, Row, bar, tone_style

LOG_LEVELS = (None, "INFO", "WARNING", "ERROR")
if TYPE_CHECKING:
    from textual import getters

    from ..base import ConsoleApp


class Pane(Vertical):
    """A titled, maximizable pane."""

    ALLOW_MAXIMIZE = True

    def __init__(self, *children, title: str, **kwargs):
        super().__init__(*children, **kwargs)
        self.border_title = title
        self._titles: dict[str, str] = {"border_title": title}

    def set_titles(self, title: str | None = None, subtitle: str | None = None) -> None:
        """Set the border title/subtitle, repainting only when the text changed (every poll sets them)."""
        for attr, value in (("border_title", title), ("border_subtitle", subtitle)):
            if value is not None and self._titles.get(attr) != value:
                self._titles[attr] = value
                setattr(self, attr, value)


class DashboardScreen(Screen[None]):
    if TYPE_CHECKING:  # the console's own App, with its state and actions
        app = getters.app(ConsoleApp)

    SCOPE = "dashboard"
    BINDINGS = actions.bindings("dashboard")
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.selected: set[str] = set()
        self.db_filter = ""
        self.log_filter = ""
        self.log_level: str | None = None
        self.follow = True
        self.log_lines: deque[str] = deque(maxlen=5000)
        self._log_backlog = 0
        self._last_busy: tuple = ()
        self._db_cells: dict[str, tuple[tuple, tuple]] = {}
        self._status_text = ""

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("dumpdeck", id="statusbar")
        with Grid(id="panes"):
            with Pane(title="Databases", id="databases-pane"):
                yield Input(placeholder="filter databases (server or name)…", id="db-filter", classes="filter")
                yield KeyedTable(
                    [
                        ("server", "Server"),
                        ("database", "  Database"),
                        ("size", "Size"),
                        ("tables", "Tbl"),
                        ("age", "Last good"),
                        ("level", "Lvl"),
                        ("status", "Status"),
                    ],
                    id="databases",
                )
            with Pane(title="Jobs", id="jobs-pane"):
                yield KeyedTable(
                    [
                        ("run", "Run"),
                        ("database", "Database"),
                        ("status", "Status"),
                        ("progress", "Progress"),
                        ("bytes", "Bytes"),
                        ("rate", "Rate"),
                        ("elapsed", "Elapsed"),
                        ("eta", "ETA"),
                        ("left", "Timeout in"),
                        ("table", "Table"),
                    ],
                    id="jobs",
                )
            with Pane(title="Disk", id="disk-pane"):
                yield KeyedTable(
                    [
                        ("what", "Volume / database"),
                        ("usage", "Usage"),
                        ("size", "Size"),
                        ("free", "Free"),
                        ("full", "Full in"),
                    ],
                    id="disk",
                )
            with Pane(title="Log · following", id="log-pane"):
                yield Input(placeholder="search the log…", id="log-filter", classes="filter")
                yield Log(max_lines=2000, id="log", auto_scroll=True)
        yield Footer(show_command_palette=False)

    def on_mount(self) -> None:
        apply_breakpoints(self)
        for f in self.query(".filter"):
            f.display = False
        self.query_one("#databases", KeyedTable).focus()
        self._rewrite_log()
        self.render_state()

    def on_screen_resume(self) -> None:
        apply_breakpoints(self)
        self.render_state()

    # ------------------------------------------------------------------ rendering
    def render_state(self, what: str | None = None) -> None:
        """Render the panes that depend on the snapshot named by `what` (None: everything)."""
        app = self.app
        if not self.is_mounted:
            return
        self._render_status()
        if what in (None, "servers", "catalog"):
            self._render_databases()
        elif what == "jobs":
            busy = self._busy_signature()
            if busy != self._last_busy:
                self._render_databases()
        if what in (None, "jobs"):
            self._render_jobs()
        if what in (None, "disk", "catalog"):
            self._render_disk()
        for pane_id, error in (("#jobs-pane", app.jobs.error), ("#disk-pane", app.disk.error)):
            self.query_one(pane_id, Pane).set_titles(subtitle=error or "")

    def _render_status(self) -> None:
        app = self.app
        reachable = sum(1 for s in app.servers.values() if s is not None and s.reachable)
        down = [s.name for s in app.servers.values() if s is not None and not s.reachable]
        active = len(app.jobs.active)
        parts = [f"dumpdeck · {reachable}/{len(app.config.servers)} servers up"]
        if down:
            parts.append("down: " + ", ".join(down))
        parts.append(f"{active} running" if active else "no runs active")
        parts.append(f"{len(app.catalog.dumps)} dumps")
        if app.read_only:
            parts.append("READ-ONLY")
        if app.paused:
            parts.append("PAUSED (p)")
        text = " · ".join(parts)
        if text != self._status_text:
            self._status_text = text
            self.query_one("#statusbar", Static).update(text)

    def _busy_signature(self) -> tuple:
        return tuple(
            (r.server, p.database, p.status, int((p.fraction or 0) * 100))
            for r in self.app.jobs.active
            for p in r.progress
        )

    def _render_databases(self) -> None:
        app = self.app
        self._last_busy = self._busy_signature()
        now = app.now()
        rows = database_rows(app.servers, app.catalog, app.jobs, app.config, now)
        q = self.db_filter.lower()
        out: list[Row] = []
        # Cells are rebuilt only for rows whose content changed (a jobs poll changes the
        # one or two rows being dumped); unchanged rows reuse the very same cell tuple, so
        # KeyedTable.sync skips them by identity and nothing is allocated for them.
        cache = self._db_cells
        fresh: dict[str, tuple[tuple, tuple]] = {}
        # the colours actually in use (theme_variables follow a theme change a little later)
        palette = tuple(tone_style(app, tone) for tone in ("ok", "warn", "bad", "busy", "accent"))
        for r in rows:
            if q and q not in r.database.lower() and q not in r.server.lower() and q not in r.status:
                continue
            age = age_text(r.age(now))
            selected = r.key in self.selected
            sig = (r, selected, age, palette)
            hit = cache.get(r.key)
            if hit is not None and hit[0] == sig:
                cells = hit[1]
            else:
                mark = "● " if selected else "  "
                cells = (
                    r.server,
                    Cell(mark + r.database, r.database, style=tone_style(app, "accent") if selected else ""),
                    Cell(bytes_text(r.bytes), r.bytes, justify="right"),
                    Cell("-" if r.tables is None else str(r.tables), r.tables, justify="right"),
                    # sorts by the dump's time (newest first), which does not move as the clock does
                    Cell(
                        age,
                        -r.last_good if r.last_good is not None else float("inf"),
                        style=tone_style(app, r.tone) if r.tone in ("warn", "bad") else "",
                    ),
                    Cell(level_text(r.level), r.level),
                    Cell(r.status, r.status, style=tone_style(app, r.tone)),
                )
            fresh[r.key] = (sig, cells)
            out.append((r.key, cells, r))
        self._db_cells = fresh
        table = self.query_one("#databases", KeyedTable)
        table.sync(out)
        total = sum(1 for r in rows if r.bytes is not None)
        pane = self.query_one("#databases-pane", Pane)
        title = f"Databases {len(out)}/{total}" if q else f"Databases ({total})"
        if self.selected:
            title += f" · {len(self.selected)} selected"
        pane.set_titles(title, f"filter: {self.db_filter}" if self.db_filter else "")

    def _job_rows(self, run: RunView) -> list[Row]:
        app = self.app
        now = app.now()
        tone = run_status_tone(run.status)
        rows: list[Row] = []
        if run.active and run.progress:
            for p in run.progress:
                elapsed = (now - p.started) if p.started else None
                left = None
                if p.timeout:
                    left = (p.timeout - now) if p.timeout > 1e9 else (p.timeout - (elapsed or 0))
                frac = p.fraction
                ptone = run_status_tone(p.status)
                prog = bar(app, frac, 8, "busy" if ptone == "busy" else ptone)
                if frac is not None:
                    prog.append(f" {frac * 100:3.0f}%")
                rows.append(
                    (
                        f"{run.id}:{p.database}",
                        (
                            f"#{run.id}",
                            p.database,
                            Cell(p.status, p.status, style=tone_style(app, ptone)),
                            Cell.of(prog, frac),
                            Cell(format_bytes(p.bytes_raw), p.bytes_raw, justify="right"),
                            Cell(format_bytes(p.rate) + "/s" if p.rate else "-", p.rate, justify="right"),
                            Cell(format_duration(elapsed), elapsed),
                            Cell(format_duration(p.eta), p.eta),
                            Cell(
                                format_duration(left),
                                left,
                                style=tone_style(app, "warn") if left is not None and left < 300 else "",
                            ),
                            p.current_table or "",
                        ),
                        run,
                    )
                )
        else:
            dur = (run.finished or now) - run.started if run.started else None
            what = (
                ", ".join(run.databases[:3]) + ("…" if len(run.databases) > 3 else "")
                if run.databases
                else (run.job or "")
            )
            ago = (now - run.finished) if run.finished else None
            rows.append(
                (
                    f"{run.id}",
                    (
                        f"#{run.id}",
                        what,
                        Cell(run.status, run.status, style=tone_style(app, tone)),
                        Cell("", None),
                        Cell("", None),
                        Cell("", None),
                        Cell(format_duration(dur), dur),
                        Cell(age_text(ago) if ago is not None else "", ago),
                        Cell("", None),
                        (run.reason or run.trigger or "")[:60],
                    ),
                    run,
                )
            )
        return rows

    def _render_jobs(self) -> None:
        app = self.app
        runs = list(app.jobs.active) + [r for r in app.jobs.runs if not r.active][:10]
        out: list[Row] = []
        for run in runs:
            out.extend(self._job_rows(run))
        self.query_one("#jobs", KeyedTable).sync(out)
        pane = self.query_one("#jobs-pane", Pane)
        active = len(app.jobs.active)
        pane.set_titles(f"Jobs · {active} running" if active else "Jobs")

    def _render_disk(self) -> None:
        app = self.app
        cfg = app.config.disk
        out: list[Row] = []
        for v in app.disk.volumes:
            pct = v.percent
            tone = severity_tone(grade(pct, cfg))
            b = bar(app, pct / 100, 8, tone)
            b.append(f" {pct:3.0f}%")
            full = "-" if v.days_until_full is None else f"{v.days_until_full:.0f} days"
            out.append(
                (
                    f"vol:{v.path}",
                    (
                        v.path,
                        Cell.of(b, pct),
                        Cell(format_bytes(v.total), v.total, justify="right"),
                        Cell(format_bytes(v.free), v.free, justify="right"),
                        Cell(
                            full,
                            v.days_until_full if v.days_until_full is not None else float("inf"),
                            style=tone_style(app, tone) if tone != "ok" else "",
                        ),
                    ),
                    v,
                )
            )
        biggest = max((f.bytes for f in app.disk.footprint), default=0)
        for f in app.disk.footprint[:200]:
            out.append(
                (
                    f"db:{f.server}/{f.database}",
                    (
                        f"  {f.server}/{f.database}",
                        Cell.of(bar(app, f.bytes / biggest if biggest else 0, 8, "accent"), f.bytes),
                        Cell(format_bytes(f.bytes), f.bytes, justify="right"),
                        Cell(f"{f.count} dumps", f.count),
                        Cell("", None),
                    ),
                    f,
                )
            )
        self.query_one("#disk", KeyedTable).sync(out)

    # ------------------------------------------------------------------ log
    def add_log_lines(self, lines, reset: bool = False) -> None:
        lines = [printable(compact_log_line(ln)) for ln in lines]
        if not self.is_mounted:
            if reset:
                self.log_lines.clear()
            self.log_lines.extend(lines)
            return
        if reset:
            self.log_lines.clear()
            self.query_one("#log", Log).clear()
        self.log_lines.extend(lines)
        if not self.follow:
            self._log_backlog += len(lines)
            self._log_title()
            return
        shown = [ln for ln in lines if self._log_match(ln)]
        if shown:
            self.query_one("#log", Log).write_lines(shown)

    def set_log_error(self, error: str | None) -> None:
        if self.is_mounted:
            self.query_one("#log-pane", Pane).set_titles(subtitle=error or "")

    def _log_match(self, line: str) -> bool:
        if self.log_filter and self.log_filter.lower() not in line.lower():
            return False
        return not (self.log_level and LEVEL_RANK.get(log_level_of(line), 1) < LEVEL_RANK[self.log_level])

    def _rewrite_log(self) -> None:
        log = self.query_one("#log", Log)
        log.clear()
        log.write_lines([ln for ln in self.log_lines if self._log_match(ln)])
        self._log_backlog = 0
        self._log_title()

    def _log_title(self) -> None:
        state = "following" if self.follow else f"paused ({self._log_backlog} new)"
        extra = []
        if self.log_level:
            extra.append(f"≥{self.log_level}")
        if self.log_filter:
            extra.append(f"“{self.log_filter}”")
        self.query_one("#log-pane", Pane).set_titles(" · ".join(["Log", state, *extra]))

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple) -> bool | None:
        return not (self.app.read_only and action in actions.DESTRUCTIVE_ACTIONS)

    def _focused_pane(self) -> str:
        w: DOMNode | None = self.focused
        while w is not None and not isinstance(w, Pane):
            w = w.parent
        return (w.id or "").replace("-pane", "") if w is not None else "databases"

    def action_focus_pane(self, name: str) -> None:
        target = {"databases": "#databases", "jobs": "#jobs", "disk": "#disk", "log": "#log"}[name]
        if self.maximized is not None:
            self.minimize()
        self.query_one(target).focus()

    def action_toggle_maximize(self) -> None:
        if self.maximized is not None:
            self.minimize()
        elif self.focused is not None:
            self.maximize(self.focused)

    def action_toggle_pause(self) -> None:
        self.app.paused = not self.app.paused
        if not self.app.paused:
            self.render_state(None)
        else:
            self._render_status()

    def action_refresh_now(self) -> None:
        self.app.poll_now()

    def action_toggle_select(self) -> None:
        table = self.query_one("#databases", KeyedTable)
        key = table.cursor_key
        if not key or key.endswith("/"):
            return
        self.selected.symmetric_difference_update({key})
        self._render_databases()
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1)

    def action_select_none(self) -> None:
        self.selected.clear()
        self._render_databases()

    def action_filter(self) -> None:
        pane = self._focused_pane()
        inp = self.query_one("#log-filter" if pane == "log" else "#db-filter", Input)
        inp.display = True
        inp.focus()

    def action_sort(self) -> None:
        pane = self._focused_pane()
        table = self.query_one(f"#{pane}") if pane in ("databases", "jobs", "disk") else None
        if isinstance(table, KeyedTable):
            table.cycle_sort()

    def action_backup(self) -> None:
        table = self.query_one("#databases", KeyedTable)
        keys = sorted(self.selected) or ([table.cursor_key] if table.cursor_key else [])
        by_server: dict[str, list[str]] = {}
        for key in keys:
            server, _, db = key.partition("/")
            if db:
                by_server.setdefault(server, []).append(db)
        if not by_server:
            self.app.notify("Nothing to back up: select databases with space", severity="warning")
            return
        for server, dbs in by_server.items():
            self.app.start_backup(server, dbs)
        self.selected.clear()
        self._render_databases()

    def _cursor_run(self) -> RunView | None:
        table = self.query_one("#jobs", KeyedTable)
        key = table.cursor_key
        return table.raw(key) if key else None

    def action_cancel_run(self) -> None:
        run = self._cursor_run()
        if run is None or not run.active:
            self.app.notify("No running run under the cursor (focus the jobs pane: 2)", severity="warning")
            return
        self.app.confirm_cancel(run)

    def action_run_detail(self) -> None:
        run = self._cursor_run()
        if run is not None:
            self.app.open_run(run.id)

    @on(DataTable.RowSelected, "#jobs")
    def _job_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_run_detail()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        if self.follow:
            self._rewrite_log()
        self._log_title()

    def action_log_level(self) -> None:
        i = LOG_LEVELS.index(self.log_level)
        self.log_level = LOG_LEVELS[(i + 1) % len(LOG_LEVELS)]
        self._rewrite_log()

    # ------------------------------------------------------------------ filters
    @on(Input.Changed, "#db-filter")
    def _db_filter(self, event: Input.Changed) -> None:
        self.db_filter = event.value
        self._render_databases()

    @on(Input.Changed, "#log-filter")
    def _log_filter(self, event: Input.Changed) -> None:
        self.log_filter = event.value
        self._rewrite_log()

    @on(Input.Submitted, ".filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        target = "#log" if event.input.id == "log-filter" else "#databases"
        if not event.value:
            event.input.display = False
        self.query_one(target).focus()

    def on_key(self, event) -> None:
        if event.key == "escape" and isinstance(self.focused, Input) and self.focused.has_class("filter"):
            event.stop()
            inp = self.focused
            inp.value = ""
            inp.display = False
            self.query_one("#log" if inp.id == "log-filter" else "#databases").focus()
        elif event.key == "escape" and self.maximized is not None:
            event.stop()
            self.minimize()
