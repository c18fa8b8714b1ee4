"""The console's row mapping (tui/rows.py): snapshots in, words and tones out. Pure functions, no app.

The health words come from the backend's verdict (backend.health), so the console says what the
dead-man's check and the status page say: a job's own max_age counts, a dump that failed
verification is not a good backup, and a status that is no status is never painted as running.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dumpdeck.backend.config import parse_config
from dumpdeck.backend.vocabulary import DbStatus, RunStatus, Severity
from dumpdeck.tui.rows import database_rows, run_status_tone, severity_tone
from dumpdeck.tui.views import (
    CatalogSnapshot,
    DatabaseView,
    DbProgressView,
    DumpView,
    JobsSnapshot,
    RunView,
    ServerSnapshot,
)

NOW = 1_750_000_000.0
HOUR = 3600.0

CONFIG = parse_config(
    """\
servers:
  main: {socket: /nonexistent/mysqld.sock, user: root}
backup: {dir: /nonexistent/backups}
checks: {max_age: 26h}
jobs:
  hourly: {server: main, databases: [orders], max_age: 2h}
  nightly: {server: main, databases: ["*"], exclude: [orders]}
"""
)


def dump(database: str, age_hours: float, *, level: int = 3, last: str | None = "passed", **kw) -> DumpView:
    path = Path(f"/nonexistent/backups/main/{database}/{database}-{age_hours}.sql.zst")
    return DumpView(
        key=str(path),
        path=path,
        server="main",
        database=database,
        when=NOW - age_hours * HOUR,
        size=1000,
        codec="zstd",
        verified_level=level,
        last_result=last,
        **kw,
    )


def rows_for(dumps: list[DumpView], *, jobs: JobsSnapshot | None = None, consistent: bool = True) -> dict:
    names = sorted({d.database for d in dumps} | {"shop", "orders", "empty"})
    server = ServerSnapshot(
        "main", "/nonexistent/mysqld.sock", True, tuple(DatabaseView("main", n, 10, 1, consistent) for n in names)
    )
    catalog = CatalogSnapshot(dumps=tuple(sorted(dumps, key=lambda d: -d.when)))
    rows = database_rows({"main": server}, catalog, jobs or JobsSnapshot(), CONFIG, NOW)
    return {r.database: r for r in rows}


def test_fresh_verified_dump_is_ok_and_no_dump_is_never():
    rows = rows_for([dump("shop", 1)])
    assert (rows["shop"].status, rows["shop"].tone) == ("ok", "ok")
    assert rows["shop"].last_good == NOW - HOUR and rows["shop"].level == 3
    assert (rows["empty"].status, rows["empty"].tone) == ("never", "bad")
    assert rows["empty"].last_good is None


def test_a_jobs_own_max_age_makes_a_database_overdue():
    """3 hours is fine under checks.max_age (26h) but not for `orders`, whose job says 2h."""
    rows = rows_for([dump("shop", 3), dump("orders", 3)])
    assert rows["shop"].status == "ok"
    assert (rows["orders"].status, rows["orders"].tone) == ("overdue", "bad")
    rows = rows_for([dump("orders", 1.5)])
    assert rows["orders"].status == "ok"


def test_a_newest_dump_that_failed_verification_is_not_a_good_backup():
    rows = rows_for([dump("shop", 1, last="failed", level=0), dump("shop", 5)])
    assert (rows["shop"].status, rows["shop"].tone) == ("verify failed", "warn")
    assert rows["shop"].last_good == NOW - 5 * HOUR  # the older, good one
    only_bad = rows_for([dump("shop", 1, last="failed", level=0)])
    assert only_bad["shop"].status == "never" and only_bad["shop"].last_good is None


def test_unverified_and_inconsistent_are_warnings():
    assert (rows_for([dump("shop", 1, level=0, last=None)])["shop"].status) == "unverified"
    assert rows_for([dump("shop", 1, level=0, last=None)])["shop"].tone == "warn"
    inconsistent = rows_for([dump("shop", 1)], consistent=False)["shop"]
    assert (inconsistent.status, inconsistent.tone) == ("ok, not consistent", "warn")


def test_a_database_being_dumped_shows_its_progress():
    running = RunView(
        7,
        "adhoc",
        "main",
        RunStatus.RUNNING,
        "console",
        NOW - 60,
        None,
        ("shop", "orders"),
        progress=(
            DbProgressView("shop", DbStatus.RUNNING, bytes_raw=250, estimate=1000),
            DbProgressView("orders", DbStatus.PENDING),
        ),
    )
    rows = rows_for([dump("shop", 1), dump("orders", 1)], jobs=JobsSnapshot(runs=(running,)))
    assert (rows["shop"].status, rows["shop"].tone) == ("dumping 25%", "busy")
    assert rows["orders"].status == "ok"  # waiting its turn: its health is still what the pane shows


def test_unreachable_and_not_yet_polled_servers():
    down = ServerSnapshot("main", "/nonexistent/mysqld.sock", False, error="refused")
    [row] = database_rows({"main": down}, CatalogSnapshot(scanned_at=NOW), JobsSnapshot(), CONFIG, NOW)
    assert (row.database, row.status, row.tone) == ("(none known)", "unreachable", "bad")
    # before the catalog is read, its databases are not known yet: not "none known"
    [row] = database_rows({"main": down}, CatalogSnapshot(), JobsSnapshot(), CONFIG, NOW)
    assert (row.database, row.status, row.tone) == ("…", "unreachable", "bad")
    [row] = database_rows({"main": None}, CatalogSnapshot(), JobsSnapshot(), CONFIG, NOW)
    assert (row.status, row.tone) == ("connecting", "muted")


def test_a_down_server_keeps_every_database_it_is_known_to_have():
    """Its last inventory and the catalog: each with its real last good dump and level, and why."""
    down = ServerSnapshot(
        "main", "127.0.0.1:1", False, (DatabaseView("main", "shop", 5000, 3),), error="refused", cause="refused"
    )
    rows = {
        r.database: r
        for r in database_rows(
            {"main": down}, CatalogSnapshot(dumps=(dump("orders", 3, level=2),)), JobsSnapshot(), CONFIG, NOW
        )
    }
    assert set(rows) == {"shop", "orders"}
    assert (rows["orders"].last_good, rows["orders"].level) == (NOW - 3 * 3600, 2)
    assert (rows["orders"].status, rows["orders"].tone) == ("unreachable: refused", "bad")
    assert (rows["shop"].bytes, rows["shop"].last_good) == (5000, None)


@pytest.mark.parametrize(
    ("status", "tone"),
    [
        (RunStatus.QUEUED, "busy"),
        (RunStatus.RUNNING, "busy"),
        (RunStatus.SUCCEEDED, "ok"),
        (RunStatus.FAILED, "bad"),
        (RunStatus.TIMED_OUT, "bad"),
        (RunStatus.LOST, "bad"),
        (RunStatus.CANCELLED, "warn"),
        (RunStatus.SKIPPED, "muted"),
        (DbStatus.PENDING, "busy"),
        (DbStatus.RETRYING, "busy"),
    ],
)
def test_every_run_status_has_its_tone(status, tone):
    assert run_status_tone(status) == tone
    assert run_status_tone(str(status)) == tone  # the plain word read back from the state store


def test_no_final_status_is_painted_as_in_progress():
    """The old mapping knew 'timeout' (no such status) and painted 'timed-out' as running."""
    for status in [*RunStatus, *DbStatus]:
        if not status.active:
            assert run_status_tone(status) != "busy", status
    assert run_status_tone("timeout") == "muted"  # a word that is no status


def test_severity_tones():
    assert [severity_tone(s) for s in Severity] == ["ok", "warn", "bad"]


def test_table_cells_show_names_that_look_like_markup_as_written():
    """DataTable reads a str cell as Rich markup: a database named `[red]evil` would be drawn as a red
    `evil`, and `[/]x` would raise. The cell DataTable draws keeps the name as written."""
    from textual.widgets._data_table import default_cell_formatter

    from dumpdeck.tui.widgets.table import safe_cells

    for name in ("[red]evil", "x[/]y", "[bold]b[/bold] and [link=http://x]y[/link]", "plain_db"):
        [cell] = safe_cells((name,))
        assert default_cell_formatter(cell).plain == name
