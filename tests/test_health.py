"""One database-health verdict (backend/health.py), given alike by the check, the status page and the console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dumpdeck.backend import health
from dumpdeck.backend.check import evaluate
from dumpdeck.backend.config import load_config
from dumpdeck.backend.health import Finding, LastRun, judge
from dumpdeck.backend.report import collect
from dumpdeck.backend.trends import catalog_entries
from dumpdeck.backend.vocabulary import DbStatus, Severity
from dumpdeck.tui.adapter import dump_view
from dumpdeck.tui.rows import database_rows
from dumpdeck.tui.views import CatalogSnapshot, DatabaseView, JobsSnapshot, ServerSnapshot

from .test_report import offline_config, synth_dump

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def test_judge_orders_findings_by_severity():
    h = judge(
        "main",
        "shop",
        now=NOW.timestamp(),
        max_age=2 * HOUR,
        last_success=NOW.timestamp() - 3 * HOUR,
        verified_level=0,
        verification_failed=2,
        last_run=LastRun(DbStatus.FAILED, "mariadb-dump exited 2", NOW - timedelta(hours=1)),
    )
    assert [p.finding for p in h.findings] == [
        Finding.OVERDUE,
        Finding.FAILING,
        Finding.VERIFY_FAILED,
        Finding.UNVERIFIED,
    ]
    assert h.verdict == Finding.OVERDUE and h.severity == Severity.CRITICAL
    assert "mariadb-dump exited 2" in h.findings[1].text


def test_a_failure_older_than_the_last_success_is_not_failing():
    h = judge(
        "main",
        "shop",
        now=NOW.timestamp(),
        max_age=26 * HOUR,
        last_success=NOW.timestamp() - HOUR,
        verified_level=3,
        last_run=LastRun(DbStatus.FAILED, "old news", NOW - timedelta(hours=2)),
    )
    assert h.findings == () and h.severity == Severity.OK and h.verdict is None


def test_check_report_and_console_agree_on_a_jobs_own_max_age(tmp_path):
    """`orders` is 3 hours old: fine under checks.max_age (26h), overdue under its job's max_age (2h)."""
    now = datetime.now(UTC)
    for db in ("orders", "shop"):
        synth_dump(
            tmp_path / "backups",
            "main",
            db,
            now - timedelta(hours=3),
            raw=1000,
            stored=100,
            duration=1,
            verified=[(3, True)],
        )
    cfg = load_config(
        offline_config(
            tmp_path,
            "jobs:\n  hourly:\n    server: main\n    databases: [orders]\n    max_age: 2h\n"
            "  nightly:\n    server: main\n    databases: [shop]\n"
            "checks:\n  max_age: 26h\ndisk:\n  warn_percent: 99\n  critical_percent: 100\n",
        )
    )
    entries = catalog_entries(cfg)

    verdicts = {h.database: h for h in health.assess(cfg, entries, now=now.timestamp())}
    assert verdicts["orders"].verdict == Finding.OVERDUE and verdicts["shop"].verdict is None

    result = evaluate(cfg, now.timestamp(), entries=entries, disk=[])
    assert [p.id for p in result.problems] == ["overdue:main/orders"]

    page = {d.database: d for d in collect(cfg, entries=entries, now=now, with_check=False).databases}
    assert page["orders"].overdue and not page["shop"].overdue

    server = ServerSnapshot(
        "main", "-", True, (DatabaseView("main", "orders", 1, 1), DatabaseView("main", "shop", 1, 1))
    )
    catalog = CatalogSnapshot(dumps=tuple(dump_view(e) for e in entries))
    rows = {r.database: r for r in database_rows({"main": server}, catalog, JobsSnapshot(), cfg, now.timestamp())}
    assert rows["orders"].status == "overdue" and rows["shop"].status == "ok"
