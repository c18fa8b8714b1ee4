"""Snapshot tests: the dashboard and the dumps browser at 80x24 and 120x40, in two themes.

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
        ServerSnapshot("replica", "127.0.0.1:1", False, error="server replica (127.0.0.1:1): refused"),
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
    catalog = CatalogSnapshot(dumps=tuple(dumps), scanned_at=NOW)
    jobs = JobsSnapshot(
        runs=(
            RunView(
                42,
                "adhoc",
                "main",
                "running",
                "console",
                NOW - 95,
                None,
                ("shop", "crm"),
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
                        eta=4.0,
                    ),
                    DbProgressView("crm", "pending"),
                ),
            ),
            RunView(41, "nightly", "main", "succeeded", "cron", NOW - 50_000, NOW - 49_000, ("shop", "crm")),
            RunView(
                40,
                "nightly",
                "main",
                "failed",
                "cron",
                NOW - 136_400,
                NOW - 136_000,
                ("shop", "crm"),
                reason="crm: mariadb-dump exited 2",
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
    return FixedBackend(
        config, servers=servers, catalog=catalog, jobs=jobs, disk=disk, log_lines=log, now=NOW, checks=checks
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


@pytest.mark.parametrize("theme", ["dumpdeck-dark", "dumpdeck-light"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
def test_dashboard(snap_compare, tmp_path, theme, size):
    """Dashboard: databases (one server unreachable), a running job with progress, disk usage, log tail."""
    assert snap_compare(_app(tmp_path, theme), terminal_size=size, run_before=_settle)


@pytest.mark.parametrize("theme", ["dumpdeck-dark", "dumpdeck-light"])
@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
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
