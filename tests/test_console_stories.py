"""More console stories: the log pane's search and level filter, the theme key, and a job run
from the schedules screen (a real run against the scratch server) opened with its log."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Log

from dumpdeck.backend.config import load_config
from dumpdeck.tui.app import make_app
from dumpdeck.tui.screens.run_detail import RunDetailScreen
from dumpdeck.tui.screens.schedules import SchedulesScreen
from dumpdeck.tui.widgets.table import KeyedTable, tone_style

from .test_console import FAST, db_table, until, visible_dbs

LOG_LINES = [
    "2026-01-02 03:04:05,000 INFO    [4242] dumpdeck.runner: run 7 started for alpha_db",
    "2026-01-02 03:04:06,000 WARNING [4242] dumpdeck.runner: alpha_db has MyISAM tables",
    "2026-01-02 03:04:07,000 ERROR   [4242] dumpdeck.runner: beta_db failed: mariadb-dump exited 2",
    "2026-01-02 03:04:08,000 INFO    [4242] dumpdeck.runner: run 7 finished",
]


async def test_log_pane_search_and_level_filter(write_config):
    config = load_config(write_config())
    config.log.file.parent.mkdir(parents=True, exist_ok=True)
    config.log.file.write_text("\n".join(LOG_LINES) + "\n")
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.screen.query_one("#log", Log)
        await until(pilot, lambda: len(log.lines) == 4, what="the four log lines")
        assert log.lines[0] == "03:04:05 INFO runner: run 7 started for alpha_db"  # compacted
        await pilot.press("4", "slash", *"alpha", "enter")
        assert [ln.split(" ", 2)[1] for ln in log.lines] == ["INFO", "WARNING"]
        assert "“alpha”" in str(app.screen.query_one("#log-pane").border_title)
        await pilot.press("slash", "escape")  # clears the search
        assert len(log.lines) == 4
        await pilot.press("l", "l")  # all → ≥INFO → ≥WARNING
        assert [ln.split(" ", 2)[1] for ln in log.lines] == ["WARNING", "ERROR"]
        await pilot.press("l")  # ≥ERROR
        assert log.lines == ["03:04:07 ERROR runner: beta_db failed: mariadb-dump exited 2"]
        assert "≥ERROR" in str(app.screen.query_one("#log-pane").border_title)
        # a line arriving now is filtered the same way
        with config.log.file.open("a") as f:
            f.write(
                "2026-01-02 03:05:00,000 INFO    [4242] dumpdeck.runner: quiet\n"
                "2026-01-02 03:05:01,000 ERROR   [4242] dumpdeck.runner: loud\n"
            )
        await until(pilot, lambda: len(log.lines) == 2, what="the new ERROR line")
        assert log.lines[-1].endswith("runner: loud")


async def test_theme_key_recolours_rows(write_config, make_db):
    db = make_db("console_theme", rows=3)
    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: db in visible_dbs(app), what="the database listed")
        before = app.theme
        status = db_table(app).get_cell(f"main/{db}", "status")
        assert status.style == tone_style(app, "bad")  # never backed up
        await pilot.press("f9")
        assert app.theme != before
        await until(
            pilot,
            lambda: db_table(app).get_cell(f"main/{db}", "status").style == tone_style(app, "bad"),
            what="the status cell in the new theme's colour",
        )
        assert db_table(app).get_cell(f"main/{db}", "status").style != status.style  # the colour did change


async def test_schedules_run_now_then_run_detail(write_config, make_db):
    """`t` schedules, `n` runs the job now; once it is over, the Jobs pane keeps its bytes and rate and
    its detail keeps each database's result (status, try, bytes, file, level) and the event stream."""
    db = make_db("console_sched", rows=20)
    config = load_config(
        write_config(f"""
        jobs:
          nightly:
            server: main
            databases: [{db}]
            schedule: "0 3 * * *"
        """)
    )
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: db in visible_dbs(app), what="the database listed")
        await pilot.press("t")
        assert isinstance(app.screen, SchedulesScreen)
        table = app.screen.query_one("#schedules", KeyedTable)
        await until(pilot, lambda: table.row_count == 1, what="the job listed")
        await pilot.press("n")
        run = await until(
            pilot,
            lambda: next((r for r in app.jobs.runs if r.job == "nightly"), None),
            what="the job's run in the state store",
        )
        await until(
            pilot,
            lambda: any(r.id == run.id and r.status == "succeeded" for r in app.jobs.runs),
            timeout=120,
            what=f"run #{run.id} to succeed",
        )
        await until(pilot, lambda: any(d.database == db for d in app.catalog.dumps), what="the dump in the catalog")
        await pilot.press("escape", "2")
        jobs = app.screen.query_one("#jobs", KeyedTable)
        await until(pilot, lambda: str(run.id) in jobs.row_keys, what="the run in the jobs pane")
        jobs.move_cursor(row=jobs.get_row_index(str(run.id)))
        finished_row = [str(c) for c in jobs.get_row(str(run.id))]
        assert finished_row[2] == "succeeded"
        assert finished_row[5].endswith("B") and finished_row[5] != "-", finished_row  # bytes kept
        assert finished_row[6].endswith("/s"), finished_row  # and the rate
        await pilot.press("enter")
        assert isinstance(app.screen, RunDetailScreen) and app.screen.run_id == run.id
        log = app.screen.query_one("#run-log", Log)
        await until(pilot, lambda: any(db in ln for ln in log.lines), what="the run's log mentioning the database")
        assert "succeeded" in str(app.screen.query_one("#statusbar").render())
        progress = app.screen.query_one("#run-progress", KeyedTable)
        cells = [str(c) for c in progress.get_row(db)]
        final = next(p for p in next(r for r in app.jobs.runs if r.id == run.id).progress if p.database == db)
        assert cells[1] == "succeeded" and cells[2] == "1"  # status, try
        assert cells[3] != "-" and cells[4] != "-"  # raw and stored bytes
        assert cells[6] == f"L{final.verified_level}" and final.verified_level  # verification level
        assert cells[7] == final.file and Path(final.file).exists()  # the dump file
        events = app.screen.query_one("#run-events", Log)
        await until(pilot, lambda: any("retention" in ln for ln in events.lines), what="the run's events")
        assert any("dump started" in ln for ln in events.lines)
