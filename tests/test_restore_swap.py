"""The `--replace` swap survives a kill -9 at every step (journal + recovery), and `--tables` with `--replace`
replaces just those tables. Every test compares the world (CHECKSUM TABLE per table, object lists,
foreign keys, sequences) with the original or with the dump: never the tool's verdict alone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.jobs import JobLock
from dumpdeck.backend.restore_real import RestoreError, RestoreRefused, RestoreRequest, make_plan, restore
from dumpdeck.backend.state import open_store
from dumpdeck.backend.swap import PAUSE_ENV, open_journals
from dumpdeck.cli.main import main

from .helpers import object_inventory, table_checksums, wait_until
from .test_restore_real import add_sequence, databases, world


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def change(mariadb, db: str) -> None:
    """After the dump: rows change, a table with a trigger comes, a view goes, a procedure comes."""
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id < 50")
        cur.execute("UPDATE customers SET city = 'moved' WHERE id < 20")
        cur.execute("UPDATE `odd name` SET v = 'changed'")
        cur.execute("CREATE TABLE extra (x INT)")
        cur.execute("INSERT INTO extra VALUES (1)")
        cur.execute("CREATE TRIGGER extra_bi BEFORE INSERT ON extra FOR EACH ROW SET NEW.x = 1")
        cur.execute("DROP VIEW v_inv")
        cur.execute("CREATE PROCEDURE added_later() SELECT 1")


def start_paused(cfg: Path, path: Path, db: str, step: str, marker: Path, *extra: str) -> subprocess.Popen:
    """A foreground `dumpdeck restore --replace` in its own session that stops at `step` of the swap."""
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dumpdeck", "-c", str(cfg), "restore", str(path), "--into", db, "--replace", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, PAUSE_ENV: f"{step}:{marker}"},
    )

    def paused():
        if proc.poll() is not None:
            raise AssertionError(
                f"the restore ended before {step}: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        return marker.exists()

    wait_until(paused, timeout=240, interval=0.2, what=f"the swap to reach {step}")
    return proc


def kill9(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stderr:
        proc.stderr.close()


# the step at which the process is killed → what the target must equal after recovery
STEPS = [
    ("journaled", "original"),  # journal written, nothing changed yet
    ("objects-dropped", "original"),  # the target's triggers and views dropped: the old bug's window
    ("renamed", "dump"),  # tables swapped, the journal does not know yet: the server says
    ("replaying", "dump"),  # one of the dump's objects created, the others not
    ("replayed", "dump"),  # all created, the journal not yet done
    ("done", "dump"),  # done, the old tables and staging not yet dropped
]


@pytest.mark.parametrize(("step", "expect"), STEPS)
def test_a_swap_killed_at_any_step_is_recovered_whole(mariadb, write_config, sample_db, tmp_path, capsys, step, expect):
    cfg = write_config()
    config = load_config(cfg)
    add_sequence(mariadb, sample_db)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = world(mariadb, sample_db)
    change(mariadb, sample_db)
    original = world(mariadb, sample_db)
    assert original != at_dump
    proc = start_paused(cfg, path, sample_db, step, tmp_path / "paused")
    if step == "objects-dropped":
        # the dangerous window is real: the target has lost its views and triggers at this moment
        half = object_inventory(mariadb, sample_db)
        assert half["views"] == [] and half["triggers"] == []
        # a live swap is never touched by a recovery
        rc, out, _ = run(capsys, "-c", cfg, "restore", "--recover")
        assert rc == 0 and "its swap is in progress" in out, out
        assert object_inventory(mariadb, sample_db) == half
    kill9(proc)
    with open_store(config) as store:
        (journal,) = open_journals(store)
    # another process resolving it (it holds the journal's lock) is left to it
    other = JobLock.for_key(config.lock_dir, f"swap-{journal.id}")
    assert other.try_acquire()
    try:
        rc, out, _ = run(capsys, "-c", cfg, "restore", "--recover")
        assert rc == 0 and "another recovery holds it" in out, out
    finally:
        other.release()
    rc, out, err = run(capsys, "-c", cfg, "restore", "--recover")
    assert rc == 0, out + err
    assert ("rolled back" if expect == "original" else "finished") in out, out
    assert world(mariadb, sample_db) == (original if expect == "original" else at_dump)
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []
    with open_store(config) as store:
        assert open_journals(store) == []
    rc, out, _ = run(capsys, "-c", cfg, "restore", "--recover")
    assert rc == 0 and "no interrupted swap" in out


def test_the_next_restore_recovers_a_killed_swap_first(mariadb, write_config, sample_db, tmp_path, capsys):
    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = world(mariadb, sample_db)
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE customers SET city = 'moved' WHERE id < 20")
    original = world(mariadb, sample_db)
    kill9(start_paused(cfg, path, sample_db, "objects-dropped", tmp_path / "paused"))
    assert object_inventory(mariadb, sample_db)["views"] == []
    # the operator simply runs the restore again: the half swap is rolled back first, then the restore runs
    rc, out, err = run(capsys, "-c", cfg, "restore", path, "--into", sample_db, "--replace")
    assert rc == 0, err
    assert "interrupted swap" in out and "rolled back" in out
    assert world(mariadb, sample_db) == at_dump != original
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


def test_a_runner_start_recovers_a_killed_swap(mariadb, write_config, sample_db, tmp_path):
    from dumpdeck.backend.restore_real import start_restore

    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = world(mariadb, sample_db)
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id < 30")
    kill9(start_paused(cfg, path, sample_db, "replaying", tmp_path / "paused"))
    assert world(mariadb, sample_db) != at_dump  # half: new tables, some of the dump's objects missing
    # any run's runner (here a restore into another name, detached) resolves it before its own work
    other = f"{sample_db}_other"
    try:
        r = start_restore(config, RestoreRequest(path, "main", other), detach=True)
        with open_store(config) as store:
            final = wait_until(lambda: (x := store.get_run(r.id)) and not x.active and x, timeout=180, what="run")
            assert final.status == "succeeded", final.reason
            assert open_journals(store) == []
        assert world(mariadb, sample_db) == at_dump
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{other}`")


# --------------------------------------------------------------------------- --tables with --replace


def trigger_body(mariadb, db: str, name: str) -> str:
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT ACTION_STATEMENT FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s AND TRIGGER_NAME=%s",
            (db, name),
        )
        row = cur.fetchone()
        return row[0] if row else ""


def test_replace_tables_replaces_just_those(mariadb, config, sample_db):
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = table_checksums(mariadb, sample_db)
    dump_trigger = trigger_body(mariadb, sample_db, "orders_bi")
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id < 50")
        cur.execute("UPDATE customers SET city = 'moved' WHERE id < 20")
        cur.execute("UPDATE `odd name` SET v = 'changed'")
        cur.execute("CREATE TABLE extra (x INT)")
        cur.execute("INSERT INTO extra VALUES (7)")
        cur.execute("DROP TRIGGER orders_bi")
        cur.execute("CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = 0")
        cur.execute("CREATE OR REPLACE VIEW big_orders AS SELECT id FROM orders WHERE total > 900")
        cur.execute("CREATE PROCEDURE added_later() SELECT 1")
        cur.execute("CREATE TRIGGER customers_bi BEFORE INSERT ON customers FOR EACH ROW SET NEW.city = 'x'")
    before = table_checksums(mariadb, sample_db)
    objects_before = object_inventory(mariadb, sample_db)
    assert "customers_bi" in objects_before["triggers"]
    req = RestoreRequest(path, "main", sample_db, tables=["customers", "orders"], replace=True)
    plan = make_plan(config, req)
    assert plan.refusal is None and "2 of its 4 table(s)" in plan.replaces
    res = restore(config, req)
    assert res.ok and res.safety_dump
    after = table_checksums(mariadb, sample_db)
    # the named tables equal the dump; the others are untouched, byte for byte
    assert {t: after[t] for t in ("customers", "orders")} == {t: at_dump[t] for t in ("customers", "orders")}
    assert after["odd name"] == before["odd name"] != at_dump["odd name"]
    assert after["extra"] == before["extra"]
    assert set(after) == set(before)
    # their trigger is the dump's; the target's views and routines stay, and the warning names them
    assert trigger_body(mariadb, sample_db, "orders_bi") == dump_trigger
    # a trigger the dump does not have goes with the replaced table, and the warning says so
    objects_before["triggers"].remove("customers_bi")
    assert object_inventory(mariadb, sample_db) == objects_before
    assert any("`customers_bi`" in w and "not in the dump" in w for w in res.warnings), res.warnings
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT VIEW_DEFINITION FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s", (sample_db,))
        assert "900" in cur.fetchone()[0]
    assert any("view `big_orders`" in w and "not restored" in w for w in res.warnings), res.warnings
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


def test_replace_tables_across_a_foreign_key_is_refused(mariadb, config, sample_db):
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = world(mariadb, sample_db)
    with pytest.raises(RestoreRefused, match=r"foreign keys cross.*orders.*customers"):
        restore(config, RestoreRequest(path, "main", sample_db, tables=["orders"], replace=True))
    assert world(mariadb, sample_db) == before


def test_replace_tables_killed_mid_swap_is_recovered(mariadb, write_config, sample_db, tmp_path, capsys):
    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    at_dump = table_checksums(mariadb, sample_db)
    named = ("customers", "orders")
    for step, expect in (("objects-dropped", "original"), ("replaying", "dump")):
        with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
            cur.execute("UPDATE `odd name` SET v = %s", (f"c {step[:10]}",))
            cur.execute("UPDATE customers SET city = %s WHERE id < 20", (step,))
        original = world(mariadb, sample_db)
        proc = start_paused(cfg, path, sample_db, step, tmp_path / "paused", "--tables", ",".join(named))
        if step == "objects-dropped":
            assert object_inventory(mariadb, sample_db)["triggers"] == []  # orders_bi, dropped to move `orders`
        kill9(proc)
        rc, out, err = run(capsys, "-c", cfg, "restore", "--recover")
        assert rc == 0, out + err
        got = world(mariadb, sample_db)
        if expect == "original":
            assert got == original
        else:
            assert {t: got["tables"][t] for t in named} == {t: at_dump[t] for t in named}
            assert {k: v for k, v in got["tables"].items() if k not in named} == {
                k: v for k, v in original["tables"].items() if k not in named
            }
            assert got["objects"] == original["objects"] and got["fks"] == original["fks"]
        assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


def test_dry_run_of_replace_tables_says_what_stays_and_recover_takes_no_dump(mariadb, write_config, sample_db, capsys):
    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = world(mariadb, sample_db)
    argv = ["-c", cfg, "restore", path, "--into", sample_db, "--replace", "--tables", "customers,orders"]
    rc, out, err = run(capsys, *argv, "--dry-run")
    assert rc == 0, err
    flat = " ".join(out.split())
    assert "2 of its 3 table(s) (customers, orders) and their triggers" in flat, out
    assert "its other tables, views, routines and events stay" in flat, out
    assert "swap of just those tables" in flat, out
    assert world(mariadb, sample_db) == before
    rc, _out, err = run(capsys, "-c", cfg, "restore", path, "--recover")
    assert rc == 2 and "--recover takes no dump" in err
    rc, _out, err = run(capsys, "-c", cfg, "restore", path)
    assert rc == 2 and "--into" in err


async def test_the_console_says_a_swap_was_interrupted_until_it_is_recovered(
    mariadb, write_config, sample_db, tmp_path, capsys
):
    from dumpdeck.tui.adapter import LiveBackend
    from dumpdeck.tui.app import make_app

    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    kill9(start_paused(cfg, path, sample_db, "objects-dropped", tmp_path / "paused"))
    backend = LiveBackend(config)
    assert backend.poll_jobs().interrupted == (f"main/{sample_db}",)
    app = make_app(config, backend=backend, live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        status = str(app.screen.query_one("#statusbar").render())
        assert f"restore swap interrupted: main/{sample_db} (run: dumpdeck restore --recover)" in status, status
    rc, out, _ = run(capsys, "-c", cfg, "restore", "--recover")
    assert rc == 0 and "rolled back" in out
    backend = LiveBackend(config)
    assert backend.poll_jobs().interrupted == ()


def _failing_replay(monkeypatch) -> None:
    """The dump's objects cannot all be created (the first is, then the server says no): a failure after the
    RENAME, the one the swap must undo."""
    from dumpdeck.backend import swap
    from dumpdeck.backend.errors import RestoreError

    real = swap.replay

    def replay(server, db, objects, on_created=None):
        if db.startswith("dumpdeck_stage_"):  # the objects of the confined load, created in staging: not the swap
            return real(server, db, objects, on_created=on_created)
        real(server, db, objects[:1], on_created=on_created)
        raise RestoreError("cannot create view `v`: refused for the test")

    monkeypatch.setattr(swap, "replay", replay)


def test_a_swap_failing_after_the_rename_puts_the_target_back(mariadb, config, sample_db, monkeypatch):
    add_sequence(mariadb, sample_db)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    change(mariadb, sample_db)
    original = world(mariadb, sample_db)
    _failing_replay(monkeypatch)
    with pytest.raises(RestoreError, match="put back as it was"):
        restore(config, RestoreRequest(path, "main", sample_db, replace=True))
    assert world(mariadb, sample_db) == original
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []
    with open_store(config) as store:
        assert open_journals(store) == []


def test_a_recovery_that_cannot_finish_rolls_back(mariadb, write_config, sample_db, tmp_path, capsys, monkeypatch):
    cfg = write_config()
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    change_rows = "UPDATE customers SET city = 'moved' WHERE id < 20"
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute(change_rows)
    original = world(mariadb, sample_db)
    kill9(start_paused(cfg, path, sample_db, "renamed", tmp_path / "paused"))
    assert world(mariadb, sample_db) != original  # the dump's tables are in, without their objects
    _failing_replay(monkeypatch)
    rc, out, err = run(capsys, "-c", cfg, "restore", "--recover")
    assert rc == 0, out + err
    assert "rolled back: finishing failed" in out, out
    assert world(mariadb, sample_db) == original
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []
