"""The dashboard: databases, jobs, disk and log panes, live.

The screen never reads the backend itself: the App polls and keeps the latest
snapshots; `render_state()` turns them into rows. The App calls it after each
poll unless the user paused (`p`) or a modal is on top.

Running work is always in sight: active runs are pinned first in the Jobs pane,
which takes the rows it needs before the Databases pane gets empty ones.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Log, Static

from dumpdeck.backend.disk import grade
from dumpdeck.backend.naming import printable
from dumpdeck.backend.units import format_bytes, format_duration
from dumpdeck.backend.vocabulary import DbStatus

from .. import actions
from ..logtail import LEVEL_RANK, compact_log_line, log_level_of
from ..rows import (
    age_changes_at,
    age_text,
    bytes_text,
    database_rows,
    eta_text,
    level_text,
    rate_text,
    run_status_tone,
    severity_tone,
)
from ..views import DbProgressView, RunView
from ..widgets.layout import apply_breakpoints
from ..widgets.table import Cell, KeyedTable, OpenableTable, Row, bar, tone_style

LOG_LEVELS = (None, "INFO", "WARNING", "ERROR")
FINISHED_RUNS_SHOWN = 10
CLOCK_EVERY = 1.0  # seconds: ages and elapsed times are re-rendered at least this often
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


# Each pane carries a shown copy of its keys: the footer lists them while the focus is inside it.
class DatabasesPane(Pane):
    BINDINGS = actions.pane_bindings("databases")


class JobsPane(Pane):
    BINDINGS = actions.pane_bindings("jobs")


class DiskPane(Pane):
    BINDINGS = actions.pane_bindings("disk")


class LogPane(Pane):
    BINDINGS = actions.pane_bindings("log")


def jobs_rows_wanted(rows_active: int, rows_finished: int) -> tuple[int, int]:
    """(rows the Jobs pane must show: the active runs' rows plus two finished ones, rows it could use)."""
    return rows_active + min(2, rows_finished), rows_active + rows_finished


def split_rows(
    top: int, db_rows: int, jobs_must: int, jobs_could: int, *, db_min: int = 4, jobs_min: int = 2, scrollbar: int = 0
) -> tuple[int, int]:
    """Heights (borders and header included) of the Databases and Jobs panes sharing `top` rows.

    The Jobs pane first gets the rows its running work needs (the Databases pane keeps
    `db_min` rows of data); then the Databases pane gets what it can fill; rows it would
    leave empty go to the Jobs pane's older runs. `scrollbar`: the Jobs table's horizontal
    scrollbar row (wide layouts; its last column holds whole reasons)."""
    db_chrome, jobs_chrome = 3, 3 + scrollbar  # two borders and the header row
    jobs = min(max(jobs_must, jobs_min), max(jobs_min, top - db_chrome - jobs_chrome - db_min))
    db = top - jobs_chrome - jobs
    if db - db_chrome > db_rows:  # the Databases pane would show empty rows: the Jobs pane takes them
        spare = db - db_chrome - max(db_rows, db_min)
        extra = min(spare, max(0, jobs_could - jobs))
        jobs += extra
        db -= extra
    return db, jobs + jobs_chrome


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
        self._db_cells: dict[str, tuple[tuple, tuple]] = {}
        self._status_text = ""
        self._last_clock = 0.0
        self._next_age_change = 0.0  # when the first age text of the Databases pane changes
        self._grid_rows = ""
        self._shown_dbs = 0
        self._job_rows_count = (0, 0)  # rows of active runs, rows of finished ones
        self._last_busy: tuple = ()

    # ------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        yield Static("dumpdeck", id="statusbar")
        with Grid(id="panes"):
            with DatabasesPane(title="Databases", id="databases-pane"):
                yield Input(placeholder="filter databases (server or name)…", id="db-filter", classes="filter")
                yield OpenableTable(
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
            with JobsPane(title="Jobs", id="jobs-pane"):
                yield OpenableTable(
                    [
                        ("run", "Run"),
                        ("database", "Database"),
                        ("status", "Status"),
                        ("progress", "Progress"),
                        ("eta", "ETA"),
                        ("bytes", "Bytes"),
                        ("rate", "Rate"),
                        ("elapsed", "Elapsed"),
                        ("left", "Timeout in"),
                        ("table", "Table / result"),
                    ],
                    id="jobs",
                    follow_top=True,
                )
            with DiskPane(title="Disk", id="disk-pane"):
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
            with LogPane(title="Log · following", id="log-pane"):
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

    def on_resize(self, event) -> None:
        self._grid_rows = ""  # recompute the split for the new height
        self.call_after_refresh(self._after_layout_change)

    def _after_layout_change(self) -> None:
        self._fit_panes()
        if self.follow:
            self._log_to_end()

    # ------------------------------------------------------------------ rendering
    def render_state(self, what: str | None = None) -> None:
        """Render the panes that depend on the snapshot named by `what` (None: everything)."""
        app = self.app
        if not self.is_mounted:
            return
        self._render_status()
        # ages ("Last good") move with the clock, not only with polls: the databases are
        # re-rendered when the first of their age texts changes (at most once a second)
        clock = app.now()
        if what in (None, "servers", "catalog") or (
            clock >= self._next_age_change and clock - self._last_clock >= CLOCK_EVERY
        ):
            self._last_clock = clock
            self._render_databases()
        elif what == "jobs" and self._busy_changed():
            self._render_databases()
        if what in (None, "jobs"):
            self._render_jobs()
        if what in (None, "disk", "catalog"):
            self._render_disk()
        for pane_id, error in (("#jobs-pane", app.jobs.error), ("#disk-pane", app.disk.error)):
            self.query_one(pane_id, Pane).set_titles(subtitle=error or "")
        self._fit_panes()

    def _render_status(self) -> None:
        app = self.app
        reachable = sum(1 for s in app.servers.values() if s is not None and s.reachable)
        down = [s for s in app.servers.values() if s is not None and not s.reachable]
        active = len(app.jobs.active)
        parts = ["dumpdeck"]
        if app.jobs.interrupted:  # the target is half swapped until a recovery: say so first, and how
            where = printable(", ".join(app.jobs.interrupted))
            parts.append(f"restore swap interrupted: {where} (run: dumpdeck restore --recover)")
        parts.append(f"{reachable}/{len(app.config.servers)} servers up")
        if down:
            parts.append("down: " + ", ".join(f"{s.name} ({s.cause})" if s.cause else s.name for s in down))
        parts.append(f"{active} running" if active else "no runs active")
        parts.append(f"{len(app.catalog.dumps)} dumps")
        if app.read_only:
            parts.append("READ-ONLY")
        if app.paused:
            parts.append("PAUSED (p)")
        text = " · ".join(parts)
        if text != self._status_text:
            self._status_text = text
            self.query_one("#statusbar", Static).update(Text(text))

    def _busy_changed(self) -> bool:
        sig = tuple(
            (r.server, p.database, p.status, int((p.fraction or 0) * 100))
            for r in self.app.jobs.active
            for p in r.progress
        )
        changed = sig != self._last_busy
        self._last_busy = sig
        return changed

    def _render_databases(self) -> None:
        app = self.app
        self._busy_changed()
        now = app.now()
        rows = database_rows(app.servers, app.catalog, app.jobs, app.config, now)
        q = self.db_filter.lower()
        out: list[Row] = []
        # Cells are rebuilt only for rows whose content changed (a jobs poll changes the
        # one or two rows being dumped; the clock changes the ages); unchanged rows reuse
        # the very same cell tuple, so KeyedTable.sync skips them by identity.
        cache = self._db_cells
        fresh: dict[str, tuple[tuple, tuple]] = {}
        # the colours actually in use (theme_variables follow a theme change a little later)
        palette = tuple(tone_style(app, tone) for tone in ("ok", "warn", "bad", "busy", "accent"))
        max_age = app.config.checks.max_age
        next_change = float("inf")
        for r in rows:
            if r.last_good is not None:  # its age text, or its "stale" status, changes then
                next_change = min(next_change, age_changes_at(r.last_good, now))
                if r.last_good + max_age > now:
                    next_change = min(next_change, r.last_good + max_age)
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
        self._next_age_change = next_change
        table = self.query_one("#databases", KeyedTable)
        table.sync(out)
        self._shown_dbs = len(out)
        total = sum(1 for r in rows if not r.key.endswith("/"))
        pane = self.query_one("#databases-pane", Pane)
        title = f"Databases {len(out)}/{total}" if q else f"Databases ({total})"
        if self.selected:
            title += f" · {len(self.selected)} selected"
        pane.set_titles(title, f"filter: {self.db_filter}" if self.db_filter else "")

    # ------------------------------------------------------------------ jobs
    def _progress_cells(self, run: RunView, p: DbProgressView, now: float, first: str, name: str) -> tuple:
        app = self.app
        elapsed = p.elapsed(now)
        left = p.time_left(now)
        frac = p.fraction
        ptone = run_status_tone(p.status)
        status = "cancelling" if run.shown_status == "cancelling" and p.live else p.status
        if p.status == "running":
            prog = bar(app, frac, 8, "busy")
            if frac is not None:
                prog.append(f" {frac * 100:3.0f}%", style=tone_style(app, "warn") if frac > 1 else "")
        elif p.status == "succeeded":
            prog = bar(app, 1.0, 8, "ok")
        else:
            prog = bar(app, None, 8)
        eta = eta_text(p, now)
        detail = p.current_table if p.status == "running" else (p.error or (p.file or "").rsplit("/", 1)[-1])
        return (
            first,
            name,
            Cell(status, status, style=tone_style(app, "warn" if status == "cancelling" else ptone)),
            Cell.of(prog, frac),
            Cell(eta, p.eta(now), style=tone_style(app, "muted") if eta == "estimating" else ""),
            Cell(format_bytes(p.bytes_raw) if p.bytes_raw else "-", p.bytes_raw, justify="right"),
            Cell(rate_text(p.rate if p.status == "running" else None), p.rate, justify="right"),
            Cell(format_duration(elapsed) if elapsed is not None else "-", elapsed),
            Cell(
                format_duration(left) if left is not None else "-",
                left,
                style=tone_style(app, "warn") if left is not None and left < 300 else "",
            ),
            detail or "",
        )

    def _job_rows(self, run: RunView, now: float) -> list[tuple[str, tuple, object]]:
        app = self.app
        status = run.shown_status
        tone = "warn" if status == "cancelling" else run_status_tone(status)
        if run.active:
            if len(run.progress) == 1:
                p = run.progress[0]
                return [(f"{run.id}:{p.database}", self._progress_cells(run, p, now, f"#{run.id}", run.what()), run)]
            done = sum(1 for p in run.progress if not p.live)
            total_est = sum(p.estimate or 0 for p in run.progress)
            frac = run.bytes_raw / total_est if total_est else None
            prog = bar(app, frac, 8, "busy")
            if frac is not None:
                prog.append(f" {frac * 100:3.0f}%")
            rate = sum(p.rate for p in run.progress if p.status == "running")
            dur = run.duration(now)
            pending = sum(1 for p in run.progress if p.status == "pending")
            head = (
                f"#{run.id}",
                run.what(),
                Cell(status, status, style=tone_style(app, tone)),
                Cell.of(prog, frac),
                Cell("", None),
                Cell(format_bytes(run.bytes_raw), run.bytes_raw, justify="right"),
                Cell(rate_text(rate), rate, justify="right"),
                Cell(format_duration(dur) if dur is not None else "-", dur),
                Cell("", None),
                f"{done}/{len(run.progress)} done" + (f", {pending} queued" if pending else ""),
            )
            rows: list[Row] = [(f"{run.id}", head, run)]
            for p in run.progress:
                if p.status in (DbStatus.RUNNING, DbStatus.VERIFYING, DbStatus.RETRYING):
                    rows.append(
                        (f"{run.id}:{p.database}", self._progress_cells(run, p, now, "", f" {p.database}"), run)
                    )
            return rows
        dur = run.duration(now)
        ago = (now - run.finished) if run.finished else None
        raw = run.bytes_raw
        avg_rate = raw / dur if raw and dur else None
        return [
            (
                f"{run.id}",
                (
                    f"#{run.id}",
                    run.what(),
                    Cell(status, status, style=tone_style(app, tone)),
                    Cell.of(bar(app, 1.0, 8, "ok") if status == "succeeded" else bar(app, None, 8), None),
                    Cell("-", None),
                    Cell(format_bytes(raw) if raw else "-", raw, justify="right"),
                    Cell(rate_text(avg_rate), avg_rate, justify="right"),
                    Cell(format_duration(dur), dur),
                    Cell("-", None),
                    (f"{age_text(ago)}: " if ago is not None else "") + (run.reason or run.trigger or ""),
                ),
                run,
            )
        ]

    def _render_jobs(self) -> None:
        app = self.app
        now = app.now()
        active = list(app.jobs.active)
        finished = [r for r in app.jobs.runs if not r.active][:FINISHED_RUNS_SHOWN]
        out: list[Row] = []
        for run in active:
            out.extend(self._job_rows(run, now))
        pinned = [key for key, _, _ in out]
        for run in finished:
            out.extend(self._job_rows(run, now))
        self.query_one("#jobs", KeyedTable).sync(out, pinned=pinned)
        self._job_rows_count = (len(pinned), len(out) - len(pinned))
        pane = self.query_one("#jobs-pane", Pane)
        cancelling = sum(1 for r in active if r.shown_status == "cancelling")
        title = f"Jobs · {len(active)} running" if active else "Jobs"
        if cancelling:
            title += f" · {cancelling} cancelling"
        pane.set_titles(title)

    def _fit_panes(self) -> None:
        """Split the rows between the Databases and Jobs panes (see split_rows)."""
        if self.maximized is not None:
            return
        panes = self.query_one("#panes", Grid)
        avail = panes.size.height
        if avail <= 0:
            return
        wide = self.has_class("-wide")
        bottom = max(6, avail * 3 // 11) if wide else max(6, avail // 4)
        top = avail - bottom
        must, could = jobs_rows_wanted(*self._job_rows_count)
        db_rows = self._shown_dbs + (1 if self.query_one("#db-filter", Input).display else 0)
        db_h, jobs_h = split_rows(top, db_rows, must, could, scrollbar=1 if wide else 0)
        rows = f"{db_h} {jobs_h} 1fr"
        if rows != self._grid_rows:
            self._grid_rows = rows
            panes.styles.grid_rows = rows

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
        if reset:
            self.log_lines.clear()
        self.log_lines.extend(lines)  # kept first: the widget may not be there yet (or any more)
        if not self.is_mounted:
            return
        if reset:
            self.query_one("#log", Log).clear()
        if not self.follow:
            self._log_backlog += len(lines)
            self._log_title()
            return
        shown = [ln for ln in lines if self._log_match(ln)]
        if shown:
            self.query_one("#log", Log).write_lines(shown, scroll_end=False)
            self._log_to_end()

    def _log_to_end(self) -> None:
        """Following means the newest line is in sight, whatever a resize or maximize did to the
        scroll position (Log's own auto-scroll gives up once the view is not at the very end)."""
        self.query_one("#log", Log).scroll_end(animate=False, x_axis=False)

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
        log.write_lines([ln for ln in self.log_lines if self._log_match(ln)], scroll_end=False)
        if self.follow:
            self._log_to_end()
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
        self.call_after_refresh(self._after_layout_change)

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

    def action_select_all(self) -> None:
        """Select every database the (filtered) table shows."""
        table = self.query_one("#databases", KeyedTable)
        self.selected.update(k for k in table.row_keys if not k.endswith("/"))
        self._render_databases()

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

    def action_open_detail(self) -> None:
        """Enter: the run under the cursor (Jobs pane) or the database under the cursor."""
        if self._focused_pane() == "jobs":
            run = self._cursor_run()
            if run is not None:
                self.app.open_run(run.id)
            return
        table = self.query_one("#databases", KeyedTable)
        key = table.cursor_key
        if key:
            self.app.open_database(key)

    @on(DataTable.RowSelected, "#jobs")
    def _job_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        run = self._cursor_run()
        if run is not None:
            self.app.open_run(run.id)

    @on(DataTable.RowSelected, "#databases")
    def _database_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = self.query_one("#databases", KeyedTable).cursor_key
        if key:
            self.app.open_database(key)

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
        self._fit_panes()

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
            self.call_after_refresh(self._after_layout_change)
