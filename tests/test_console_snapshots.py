"""Snapshot tests: the dashboard, the dumps browser, a finished run and a database at 80x24,
120x40 and 200x50, in two themes.

Sync tests only (snap_compare runs its own event loop). Data is fixed: the app is
built from the factory with a FixedBackend (fixed snapshots, fixed clock) and
polls once, so the pictures depend on layout and theme alone.
Regenerate deliberately: pytest tests/test_console_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dumpdeck.backend.config import parse_config
from dumpdeck.tui.app import make_app
from dumpdeck.tui.views import (
    CatalogSnapshot,
    CheckView,
    DatabaseView,
    DbProgressView,
    DiskSnapshot,
    DumpView,
    EventView,
    FootprintView,
    JobsSnapshot,
    RunView,
    ServerSnapshot,
    VolumeView,
)

from .fixed_backend import FixedBackend

NOW = 1_750_000_000.0  # 2025-06-15 15:06:40 UTC


def fixed_backend(tmp: Path) -> FixedBackend:
    config = parse_config(
        f"""
servers:
  main: {{socket: {tmp}/none.sock}}
  replica: {{host: 127.0.0.1, port: 1}}
backup: {{dir: /var/backups/mysql}}
state_dir: {tmp}/state
jobs:
  nightly: {{server: main, schedule: "0 2 * * *", databases: [shop, crm]}}
""",
        tmp / "config.yaml",
    )
    names = [
        "shop",
        "crm",
        "blog",
        "analytics",
        "inventory",
        "billing",
        "wiki",
        "auth",
        "events",
        "search",
        "metrics",
        "archive",
    ]
    dbs = tuple(DatabaseView("main", n, (i + 1) * 37_000_000, 5 + i) for i, n in enumerate(names))
    servers = [
        ServerSnapshot("main", "/run/mysqld/mysqld.sock", True, dbs, label="MariaDB 10.11"),
        ServerSnapshot(
            "replica",
            "127.0.0.1:1",
            False,
            error="server replica (127.0.0.1:1): cannot connect: Can't connect to MySQL server on '127.0.0.1' "
            "([Errno 111] Connection refused)",
            cause="refused",
            down_since=NOW - 600,
        ),
    ]
    dumps = []
    for i in range(60):
        n = names[i % len(names)]
        if n == "archive":
            continue
        dumps.append(
            DumpView(
                key=f"/var/backups/mysql/main/{n}/{n}-{i}.sql.zst",
                path=Path(f"/var/backups/mysql/main/{n}/{n}-{i}.sql.zst"),
                server="main",
                database=n,
                when=NOW - 3600 * (i + 1) * (3 if n == "wiki" else 1),
                size=(i + 3) * 1_300_000,
                codec="zstd",
                verified_level=[3, 2, 0, 4, 1][i % 5],
                last_result="failed" if i == 7 else "passed",
            )
        )
    for i, n in enumerate(("orders", "ledger")):  # the replica's dumps: it is down, they are not
        dumps.append(
            DumpView(
                key=f"/var/backups/mysql/replica/{n}/{n}-0.sql.zst",
                path=Path(f"/var/backups/mysql/replica/{n}/{n}-0.sql.zst"),
                server="replica",
                database=n,
                when=NOW - 5400 * (i + 1),
                size=44_000_000,
                codec="zstd",
                verified_level=2,
                last_result="passed",
            )
        )
    dumps.sort(key=lambda d: -d.when)
    catalog = CatalogSnapshot(dumps=tuple(dumps), scanned_at=NOW)
    jobs = JobsSnapshot(
        runs=(
            RunView(
                43,
                "adhoc",
                "main",
                "running",
                "console",
                NOW - 20,
                None,
                ("wiki",),
                progress=(
                    DbProgressView(
                        "wiki", "running", 3_000_000, 700_000, 900_000.0, "pages", NOW - 3, NOW, 250_000_000, 7200.0
                    ),
                ),
            ),
            RunView(
                42,
                "adhoc",
                "main",
                "running",
                "console",
                NOW - 95,
                None,
                ("shop", "crm", "blog"),
                progress=(
                    DbProgressView(
                        "shop",
                        "running",
                        61_000_000,
                        9_000_000,
                        12_500_000.0,
                        "orders",
                        NOW - 90,
                        NOW,
                        100_000_000,
                        7200.0,
                        typical=100.0,
                    ),
                    DbProgressView(
                        "blog", "succeeded", 8_100_000, 1_900_000, 0.0, None, NOW - 95, NOW - 91, file="/b/blog.sql.zst"
                    ),
                    DbProgressView("crm", "pending"),
                ),
            ),
            RunView(
                41,
                "nightly",
                "main",
                "succeeded",
                "cron",
                NOW - 50_000,
                NOW - 49_000,
                ("shop", "crm"),
                reason="2 of 2 database(s) dumped in 16m40s",
                progress=(
                    DbProgressView(
                        "shop",
                        "succeeded",
                        900_000_000,
                        210_000_000,
                        0.0,
                        None,
                        NOW - 50_000,
                        NOW - 49_300,
                        file="/var/backups/mysql/main/shop/shop-20250614T004000Z.sql.zst",
                        verified_level=3,
                    ),
                    DbProgressView(
                        "crm",
                        "succeeded",
                        300_000_000,
                        70_000_000,
                        0.0,
                        None,
                        NOW - 49_300,
                        NOW - 49_000,
                        file="/var/backups/mysql/main/crm/crm-20250614T005140Z.sql.zst",
                        verified_level=3,
                    ),
                ),
            ),
            RunView(
                40,
                "nightly",
                "main",
                "failed",
                "cron",
                NOW - 136_400,
                NOW - 136_000,
                ("shop", "crm"),
                reason="1 of 2 database(s) dumped in 6m40s; crm: failed: mariadb-dump exited 2: "
                "Got error: 1045: Access denied for user 'backup'@'localhost' (using password: YES)",
                progress=(
                    DbProgressView(
                        "shop", "succeeded", 880_000_000, 205_000_000, 0.0, None, NOW - 136_400, NOW - 136_000
                    ),
                    DbProgressView(
                        "crm",
                        "failed",
                        0,
                        0,
                        0.0,
                        None,
                        NOW - 136_000,
                        NOW - 136_000,
                        error="mariadb-dump exited 2: Got error: 1045: Access denied for user 'backup'@'localhost'",
                        attempt=2,
                    ),
                ),
            ),
        ),
        polled_at=NOW,
    )
    disk = DiskSnapshot(
        volumes=(VolumeView("/var/backups", 500 << 30, 420 << 30, 80 << 30, 23.0, percent=84.0),),
        footprint=(FootprintView("main", "shop", 300 << 20, 5), FootprintView("main", "crm", 120 << 20, 5)),
    )
    log = [
        f"2025-06-15 15:0{i % 10}:00,000 {lvl:<7} [4242] dumpdeck.runner: {msg}"
        for i, (lvl, msg) in enumerate(
            [
                ("INFO", "run 42 started: shop, crm"),
                ("INFO", "shop: dumping orders"),
                ("WARNING", "crm: table log_archive is MyISAM"),
                ("ERROR", "run 40 failed: crm: mariadb-dump exited 2"),
            ]
        )
    ]
    checks = [
        CheckView("file exists and is not empty", True, "12.3 MiB", 1),
        CheckView("sha256 matches the manifest", True, "3f2a…", 1),
    ]
    events = [
        EventView(NOW - 50_000, "info", "start", "run 41 (nightly, cron) started: 2 database(s) on main"),
        EventView(NOW - 49_300, "info", "dump-done", "shop: 858.3 MiB SQL → 200.3 MiB in 11m40s"),
        EventView(NOW - 49_290, "info", "verify-passed", "shop: verification level 3 passed"),
        EventView(NOW - 49_000, "info", "retention", "retention: kept 7, deleted 1"),
        EventView(NOW - 49_000, "info", "finish", "run 41 succeeded: 2 of 2 database(s) dumped in 16m40s"),
    ]
    return FixedBackend(
        config,
        servers=servers,
        catalog=catalog,
        jobs=jobs,
        disk=disk,
        log_lines=log,
        now=NOW,
        checks=checks,
        events={41: events},
    )


def _app(tmp_path, theme: str):
    be = fixed_backend(tmp_path)
    return make_app(be.config, backend=be, theme=theme, live=False)


async def _settle(pilot) -> None:
    app = pilot.app
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


SIZES = pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 50)], ids=["80x24", "120x40", "200x50"])
THEMES = pytest.mark.parametrize("theme", ["dumpdeck-dark", "dumpdeck-light"])


@THEMES
@SIZES
def test_dashboard(snap_compare, tmp_path, theme, size):
    """Dashboard: databases (the replica down, its databases still listed with their ages), two running
    runs pinned above the finished ones (one of three databases), disk usage, log tail."""
    assert snap_compare(_app(tmp_path, theme), terminal_size=size, run_before=_settle)


@SIZES
def test_finished_run_detail(snap_compare, tmp_path, size):
    """A finished run keeps its results: each database's status, try, bytes, level, file; its events."""

    async def run_before(pilot):
        await _settle(pilot)
        pilot.app.open_run(41)
        await _settle(pilot)

    assert snap_compare(_app(tmp_path, "dumpdeck-dark"), terminal_size=size, run_before=run_before)


@SIZES
def test_database_detail_of_a_down_server(snap_compare, tmp_path, size):
    """Enter on a database of a down server: why it is down, its dumps on disk."""

    async def run_before(pilot):
        await _settle(pilot)
        pilot.app.open_database("replica/orders")
        await _settle(pilot)

    assert snap_compare(_app(tmp_path, "dumpdeck-dark"), terminal_size=size, run_before=run_before)


@THEMES
@SIZES
def test_dumps_browser(snap_compare, tmp_path, theme, size):
    """Dumps browser: catalog newest first, details of the selected dump, its verification ladder after `v`."""

    async def run_before(pilot):
        await _settle(pilot)
        await pilot.press("d")
        await _settle(pilot)
        await pilot.press("down", "v")
        await _settle(pilot)
        pilot.app.clear_notifications()  # toasts time out: keep them out of the picture
        await pilot.pause()

    assert snap_compare(_app(tmp_path, theme), terminal_size=size, run_before=run_before)
