"""Console stories against the real scratch server: Textual's pilot drives the app, the backend is real.

Each test builds the app from the factory with a temporary config and state
directory, performs one user story with key presses, waits for the specific
condition it triggers (never a bare sleep), and asserts on backend state and
visible widgets.
"""

from __future__ import annotations

import time
from pathlib import Path

from dumpdeck.backend.config import load_config
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.sandbox import free_port
from dumpdeck.tui.app import Intervals, make_app
from dumpdeck.tui.screens.dumps import DumpsScreen
from dumpdeck.tui.screens.help import HelpScreen
from dumpdeck.tui.screens.modals import ConfirmModal, TargetChooser
from dumpdeck.tui.widgets.table import KeyedTable

FAST = Intervals(jobs=0.2, log=0.5, servers=2.0, catalog=1.0, disk=5.0)


async def until(pilot, predicate, timeout: float = 60.0, what: str = "condition"):
    """Let the app run until `predicate()` holds (checked between message-queue drains)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def db_table(app) -> KeyedTable:
    return app.screen.query_one("#databases", KeyedTable)


async def cursor_to(pilot, table: KeyedTable, key: str) -> None:
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.pause()


def visible_dbs(app) -> set[str]:
    from textual.css.query import NoMatches

    try:
        return {k.split("/", 1)[1] for k in db_table(app).row_keys}
    except NoMatches:  # the dashboard is not composed yet
        return set()


async def test_backup_two_databases_then_restore_test(write_config, make_db, mariadb):
    """Select two databases, back them up, watch both complete, open one in the browser, restore-test it."""
    a = make_db("console_a", rows=50)
    b = make_db("console_b", rows=50)
    config = load_config(write_config())
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: {a, b} <= visible_dbs(app), what="both databases listed")
        table = db_table(app)
        for db in (a, b):
            await cursor_to(pilot, table, f"main/{db}")
            await pilot.press("space")
        assert app.screen.selected == {f"main/{a}", f"main/{b}"}
        await pilot.press("b")
        run = await until(
            pilot,
            lambda: next((r for r in app.jobs.runs if set(r.databases) == {a, b}), None),
            what="the run to appear in the jobs pane",
        )
        await until(
            pilot,
            lambda: any(r.id == run.id and r.status == "succeeded" for r in app.jobs.runs),
            timeout=120,
            what=f"run #{run.id} to succeed",
        )
        jobs_keys = app.screen.query_one("#jobs", KeyedTable).row_keys
        assert str(run.id) in jobs_keys
        await until(pilot, lambda: {a, b} <= {d.database for d in app.catalog.dumps}, what="both dumps in the catalog")
        # the databases pane now shows a last good backup for both
        await until(
            pilot, lambda: all(db_table(app).raw(f"main/{db}").last_good for db in (a, b)), what="last good backup ages"
        )

        await pilot.press("d")
        assert isinstance(app.screen, DumpsScreen)
        await until(pilot, lambda: app.screen.query_one("#dumps", KeyedTable).row_count >= 2, what="dumps listed")
        dumps = app.screen.query_one("#dumps", KeyedTable)
        dump = next(d for d in app.catalog.dumps if d.database == a)
        await cursor_to(pilot, dumps, dump.key)
        assert str(dump.path) in str(app.screen.query_one("#details").render())

        await pilot.press("r")
        assert isinstance(app.screen, TargetChooser)
        chooser = app.screen
        targets = [o.id for o in chooser.query_one("OptionList").options]
        chooser.query_one("OptionList").highlighted = targets.index("same")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                (app.ladders.get(dump.key) and app.ladders[dump.key].outcome is not None)
                or (app.ladders.get(dump.key) and app.ladders[dump.key].error)
            ),
            timeout=120,
            what="the restore-test to finish",
        )
        ladder = app.ladders[dump.key]
        assert ladder.error is None, ladder.error
        assert ladder.outcome is Outcome.PASSED
        assert ladder.checks and all(c.passed for c in ladder.checks)
        assert any(c.level == 4 for c in ladder.checks)
        shown = app.screen.query_one("#ladder", KeyedTable)
        assert shown.row_count == len(ladder.checks)


async def test_cancel_running_job_after_confirmation(write_config, make_db, slow_tool):
    db = make_db("console_slow", rows=10)
    path = write_config()
    path.write_text(
        path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {slow_tool}\n")
    )
    config = load_config(path)
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: db in visible_dbs(app), what="database listed")
        await cursor_to(pilot, db_table(app), f"main/{db}")
        await pilot.press("b")
        run = await until(
            pilot,
            lambda: next(
                (r for r in app.jobs.active if db in r.databases and any(p.status == "running" for p in r.progress)),
                None,
            ),
            timeout=60,
            what="the dump to be running",
        )
        await pilot.press("2")
        jobs = app.screen.query_one("#jobs", KeyedTable)
        await until(pilot, lambda: f"{run.id}:{db}" in jobs.row_keys, what="progress row")
        jobs.move_cursor(row=jobs.get_row_index(f"{run.id}:{db}"))
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("n")  # first: change of mind, nothing happens
        assert not isinstance(app.screen, ConfirmModal)
        assert any(r.id == run.id for r in app.jobs.active)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmModal)
        await pilot.press("y")
        await until(
            pilot,
            lambda: any(r.id == run.id and r.status == "cancelled" for r in app.jobs.runs),
            timeout=60,
            what="the run to be cancelled",
        )
        assert not any(Path(config.backup.dir).rglob("*.partial"))


async def test_filter_databases(write_config, make_db):
    keep = make_db("filter_keepme", rows=5)
    other = make_db("filter_other", rows=5)
    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: {keep, other} <= visible_dbs(app), what="databases listed")
        await pilot.press("slash", *"keepme")
        assert visible_dbs(app) == {keep}
        assert "1/" in app.screen.query_one("#databases-pane").border_title
        await pilot.press("escape")
        assert {keep, other} <= visible_dbs(app)


async def test_help_screen_and_palette(write_config):
    from textual.command import CommandPalette

    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_table = app.screen.query_one("#help-table")
        from dumpdeck.tui.actions import ACTIONS

        assert help_table.row_count == len(ACTIONS)
        await pilot.press(*"verify")
        ids = [str(k.value) for k in help_table.rows]
        assert "verify" in ids and "quit" not in ids
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("colon")
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"dumps browser")
        await until(pilot, lambda: app.screen.query("CommandList").first().option_count > 0, what="palette hits")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DumpsScreen), what="the dumps browser")


async def test_read_only_hides_delete_and_backup(write_config):
    app = make_app(load_config(write_config()), read_only=True, intervals=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        dash = app.screen
        # a pane's keys are bound on the pane too ("screen.backup"): both copies must be hidden
        keys = {b.binding.action.removeprefix("screen.") for b in app.active_bindings.values()}
        assert "backup" not in keys and "toggle_select" in keys
        await pilot.press("d")
        assert isinstance(app.screen, DumpsScreen)
        keys = {b.binding.action for b in app.active_bindings.values()}
        assert "delete" not in keys and "restore_test" not in keys
        assert "verify" in keys
        await pilot.press("x")  # nothing: no modal
        assert isinstance(app.screen, DumpsScreen)
        await pilot.press("question_mark")
        ids = [str(k.value) for k in app.screen.query_one("#help-table").rows]
        assert "delete" not in ids and "cancel" not in ids and "verify" in ids
        assert dash is not None


async def test_unreachable_server_does_not_freeze(write_config, make_db):
    """A second server on a closed port shows as unreachable; the first one's databases and keys keep working."""
    db = make_db("reach_ok", rows=5)
    closed = free_port()
    path = write_config()
    text = path.read_text().replace(
        "backup:\n",
        f"  dead:\n    host: 127.0.0.1\n    port: {closed}\n    user: root\n    connect_timeout: 3\nbackup:\n",
        1,
    )
    path.write_text(text)
    app = make_app(load_config(path), intervals=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(
            pilot, lambda: app.servers.get("dead") is not None and db in visible_dbs(app), what="both servers polled"
        )
        assert app.servers["dead"].reachable is False
        assert "dead/" in db_table(app).row_keys
        assert db_table(app).raw("dead/").status == "unreachable: refused"
        # keys answer while the dead server keeps being polled
        before = db_table(app).cursor_row
        await pilot.press("down")
        assert db_table(app).cursor_row == before + 1
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "down: dead" in str(app.screen_stack[0].query_one("#statusbar").render())


async def test_delete_asks_and_the_last_verified_dump_needs_its_name(config, sample_db):
    """`x` deletes after a confirmation; the last verified dump of a database also needs its name typed."""
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.manifest import manifest_path
    from dumpdeck.backend.verify import verify_file

    older = dump_database(config.server("main"), config.backup, sample_db)
    newer = dump_database(config.server("main"), config.backup, sample_db)
    assert verify_file(newer.path, 2).passed  # only the newer one is verified
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        assert isinstance(app.screen, DumpsScreen)
        browser = app.screen
        await until(pilot, lambda: browser.query_one("#dumps", KeyedTable).row_count == 2, what="both dumps listed")
        table = browser.query_one("#dumps", KeyedTable)
        by_path = {d.path: d for d in app.catalog.dumps}

        await cursor_to(pilot, table, by_path[older.path].key)
        await pilot.press("x")
        assert isinstance(app.screen, ConfirmModal) and app.screen.require_text is None
        await pilot.press("n")  # changed my mind
        assert app.screen is browser and older.path.exists()
        await pilot.press("x")
        await pilot.press("y")
        await until(pilot, lambda: not older.path.exists(), what="the older dump to be deleted")
        assert not manifest_path(older.path).exists() and newer.path.exists()

        await until(pilot, lambda: table.row_count == 1, what="the browser to drop the deleted row")
        await cursor_to(pilot, table, by_path[newer.path].key)
        await pilot.press("x")
        modal = app.screen
        assert isinstance(modal, ConfirmModal) and modal.require_text == sample_db
        await pilot.press("y", "enter")  # neither confirms without the name
        assert app.screen is modal and newer.path.exists()
        modal.query_one("#confirm-text").value = ""
        await pilot.press(*sample_db, "enter")
        await until(pilot, lambda: not newer.path.exists(), what="the last verified dump to be deleted")
        assert not manifest_path(newer.path).exists()


async def test_keys_remapped_by_binding_id_from_the_config(write_config):
    """console.keys remaps by binding id; an unknown id is reported, naming the key path."""
    config = load_config(write_config("console:\n  keys:\n    dumps: f6\n    nonsense: z\n"))
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await pilot.press("d")  # the default key no longer opens the browser
        assert not isinstance(app.screen, DumpsScreen)
        await pilot.press("f6")
        assert isinstance(app.screen, DumpsScreen)
        await pilot.pause()
        assert any("console.keys.nonsense" in n.message for n in app._notifications)


async def test_no_color_is_honoured(write_config, monkeypatch):
    from textual.filter import Monochrome, NoColor

    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(80, 24)):
        assert app.no_color and any(isinstance(f, (Monochrome, NoColor)) for f in app._filters)


async def test_quitting_with_a_running_job_says_it_continues(write_config, make_db, slow_tool):
    from dumpdeck.backend import jobs as jobs_mod
    from dumpdeck.backend.state import open_store

    db = make_db("console_quit", rows=10)
    path = write_config()
    path.write_text(
        path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {slow_tool}\n")
    )
    config = load_config(path)
    app = make_app(config, intervals=FAST)
    run = None
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: db in visible_dbs(app), what="database listed")
            await cursor_to(pilot, db_table(app), f"main/{db}")
            await pilot.press("b")
            run = await until(
                pilot,
                lambda: next((r for r in app.jobs.active if db in r.databases), None),
                what="the run to be active",
            )
            await pilot.press("q")
            assert isinstance(app.screen, ConfirmModal)
            assert "continue in the background" in app.screen.message
            await pilot.press("y")  # Cancel has the focus; y confirms
            await until(pilot, lambda: app.return_code is not None, what="the app to exit")
        assert app.return_code == 0
        # The run outlives the console: the state store still shows it running.
        with open_store(config) as store:
            assert store.get_run(run.id).status in ("queued", "running")
    finally:
        if run is not None:
            with open_store(config) as store:
                jobs_mod.cancel_run(store, run.id)


async def test_toasts_show_names_as_plain_text_not_markup(write_config):
    """A database named like Rich markup is shown as typed in a toast: not styled, not lost to a MarkupError."""
    from textual.widgets._toast import Toast

    app = make_app(load_config(write_config()), intervals=FAST)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        name = "x[/]y [bold]z[/bold]"
        app.notify(f"backup of {name}: failed")
        await until(pilot, lambda: list(app.screen.query(Toast)), what="the toast")
        [toast] = app.screen.query(Toast)
        shown = str(toast.render())
        assert f"backup of {name}: failed" in shown
