"""Every table of the console moves its cursor with j/k, g/G (and Home/End): the dashboard's
Databases, Jobs and Disk panes, the dumps browser and its check ladder, a database's dumps and
runs, a run's databases, and the schedules."""

from __future__ import annotations

from dumpdeck.backend.outcome import Outcome
from dumpdeck.tui.app import make_app
from dumpdeck.tui.base import Ladder
from dumpdeck.tui.views import CheckView, ScheduleView
from dumpdeck.tui.widgets.table import KeyedTable

from .test_console_snapshots import fixed_backend


async def _walk(pilot, table: KeyedTable, name: str, moved: dict[str, int]) -> None:
    table.focus()
    await pilot.pause()
    n = table.row_count
    moved[name] = n
    if n < 2:
        return
    await pilot.press("G")
    assert table.cursor_row == n - 1, name
    await pilot.press("k")
    assert table.cursor_row == n - 2, name
    await pilot.press("g")
    assert table.cursor_row == 0, name
    await pilot.press("j")
    assert table.cursor_row == 1, name
    await pilot.press("end")
    assert table.cursor_row == n - 1, name
    await pilot.press("home")
    assert table.cursor_row == 0, name


async def test_j_k_g_G_move_the_cursor_in_every_table(tmp_path):
    be = fixed_backend(tmp_path)
    be.schedules = [
        ScheduleView("nightly", "main", "0 2 * * *", ("shop", "crm")),
        ScheduleView("hourly", "main", "0 * * * *", ("wiki",)),
        ScheduleView("weekly", "replica", "0 3 * * 0", ("orders",)),
    ]
    app = make_app(be.config, backend=be, live=False)
    # the check ladder of the newest dump: a finished verification, one row per check
    newest = be.catalog.dumps[0]
    app.ladders[newest.key] = Ladder(
        "verify",
        None,
        [CheckView(name, Outcome.PASSED, "ok", level) for level, name in ((1, "sha256"), (2, "footer"), (3, "rows"))],
        Outcome.PASSED,
    )
    moved: dict[str, int] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        for table_id in ("databases", "jobs", "disk"):
            await _walk(pilot, app.screen.query_one(f"#{table_id}", KeyedTable), table_id, moved)
        app.screen.query_one("#databases", KeyedTable).focus()
        await pilot.press("d")
        await pilot.pause()
        app.screen.show_ladder()
        await pilot.pause()
        await _walk(pilot, app.screen.query_one("#dumps", KeyedTable), "dumps", moved)
        await _walk(pilot, app.screen.query_one("#ladder", KeyedTable), "ladder", moved)
        await pilot.press("escape")
        await pilot.pause()
        app.open_database("main/shop")
        await pilot.pause()
        await app.workers.wait_for_complete()
        await _walk(pilot, app.screen.query_one("#db-dumps", KeyedTable), "db-dumps", moved)
        await _walk(pilot, app.screen.query_one("#db-runs", KeyedTable), "db-runs", moved)
        await pilot.press("escape")
        await pilot.pause()
        app.open_run(42)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await _walk(pilot, app.screen.query_one("#run-progress", KeyedTable), "run-progress", moved)
        await pilot.press("escape")
        await pilot.pause()
        app.action_open_schedules()
        await pilot.pause()
        await app.workers.wait_for_complete()
        await _walk(pilot, app.screen.query_one("#schedules", KeyedTable), "schedules", moved)
    small = [name for name, n in moved.items() if n < 2]
    assert not small, f"tables with fewer than 2 rows, their keys untested: {small} ({moved})"
