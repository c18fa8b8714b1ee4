"""Console story: the dumps browser's Restore action — the plan, `--replace` needs the name typed,
the restore runs detached and shows in the Jobs pane, and the database equals the dump afterwards."""

from __future__ import annotations

from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.state import open_store
from dumpdeck.tui.app import make_app
from dumpdeck.tui.screens.dumps import DumpsScreen
from dumpdeck.tui.screens.modals import RestoreModal
from dumpdeck.tui.widgets.table import KeyedTable

from .helpers import table_checksums
from .test_console import FAST, cursor_to, until


async def open_restore_dialog(pilot, app, path) -> tuple[DumpsScreen, RestoreModal]:
    """`d`, the cursor on the dump at `path`, `o`: (the dumps browser, the Restore dialog)."""
    await pilot.press("d")
    browser = app.screen
    assert isinstance(browser, DumpsScreen)
    table = browser.query_one("#dumps", KeyedTable)
    await until(pilot, lambda: table.row_count == 1, what="the dump listed")
    await cursor_to(pilot, table, next(d.key for d in app.catalog.dumps if d.path == path))
    await pilot.press("o")
    modal = app.screen
    assert isinstance(modal, RestoreModal)
    return browser, modal


async def test_restore_from_the_dumps_browser_with_typed_confirmation(write_config, mariadb, sample_db):
    config = load_config(write_config())
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = table_checksums(mariadb, sample_db)
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id < 100")  # the mistake to undo
    assert table_checksums(mariadb, sample_db) != at_dump

    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        browser, modal = await open_restore_dialog(pilot, app, path)
        plan = modal.query_one("#restore-plan")
        go = modal.query_one("#restore-go")
        # the default is a new name: the plan says nothing is replaced
        await until(pilot, lambda: "replaces nothing" in str(plan.render()), what="the plan for a new name")
        assert not go.disabled
        # into the live database: refused until --replace is ticked …
        modal.query_one("#restore-into").value = sample_db
        await until(pilot, lambda: "not empty" in str(plan.render()), what="the refusal")
        assert go.disabled
        modal.query_one("#restore-replace").value = True
        await until(pilot, lambda: "replace in place" in str(plan.render()), what="the replace plan")
        # … and the name typed: a wrong one does not enable it
        confirm = modal.query_one("#restore-confirm")
        assert confirm.display
        confirm.focus()
        await pilot.press(*"wrong", "enter")
        assert app.screen is modal and go.disabled
        confirm.value = ""
        await pilot.press(*sample_db)
        await until(pilot, lambda: not go.disabled, what="the button to enable")
        await pilot.press("enter")
        await until(pilot, lambda: app.screen is browser, what="the modal to close")

        def restore_run():
            return next((r for r in app.jobs.runs if r.job == "restore"), None)

        seen = await until(pilot, restore_run, what="the restore in the Jobs pane")
        assert seen.databases == (sample_db,) and seen.trigger == "console"
        with open_store(config) as store:
            await until(
                pilot,
                lambda: (r := store.get_run(seen.id)) is not None and r.status == "succeeded",
                timeout=120,
                what="the restore run to succeed",
            )
    assert table_checksums(mariadb, sample_db) == at_dump


async def test_restore_dialog_takes_tables_and_definer(write_config, mariadb, sample_db):
    """The dialog's `only tables` and `Definers: mine` reach the plan (a name not in the dump is refused
    before anything runs) and the run: just those tables with the objects that need only them."""
    from dumpdeck.backend.restore_real import request_of

    from .helpers import drop_database, object_inventory

    config = load_config(write_config())
    path = dump_database(config.server("main"), config.backup, sample_db).path
    target = f"{sample_db}_sub"
    drop_database(mariadb, target)
    app = make_app(config, intervals=FAST)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            browser, modal = await open_restore_dialog(pilot, app, path)
            plan = modal.query_one("#restore-plan")
            go = modal.query_one("#restore-go")
            modal.query_one("#restore-into").value = target
            modal.query_one("#restore-tables").value = "orders, nope"
            await until(pilot, lambda: "`nope`" in str(plan.render()), what="the refusal of a table not in the dump")
            assert "not in the dump" in str(plan.render()) and go.disabled
            modal.query_one("#restore-tables").value = "orders"
            modal.query_one("#restore-definer").value = True
            await until(pilot, lambda: "subset of 1 asked for" in str(plan.render()), what="the subset plan")
            assert "objects belong to the restoring account" in str(plan.render())
            await until(pilot, lambda: not go.disabled, what="the button to enable")
            req = modal.request()
            assert req.tables == ["orders"] and req.definer == "current" and not req.replace
            go.press()
            await until(pilot, lambda: app.screen is browser, what="the modal to close")
            seen = await until(pilot, lambda: next((r for r in app.jobs.runs if r.job == "restore"), None), what="run")
            with open_store(config) as store:
                final = await until(
                    pilot,
                    lambda: (r := store.get_run(seen.id)) is not None and not r.active and r,
                    timeout=120,
                    what="the restore run to end",
                )
                assert final.status == "succeeded", final.reason
                ran = request_of(store, seen.id)  # what the runner executed
                assert ran is not None and ran.tables == ["orders"] and ran.definer == "current"
        assert table_checksums(mariadb, target) == {"orders": table_checksums(mariadb, sample_db)["orders"]}
        objs = object_inventory(mariadb, target)
        assert objs["views"] == ["big_orders"] and objs["triggers"] == ["orders_bi"]
    finally:
        drop_database(mariadb, target)
