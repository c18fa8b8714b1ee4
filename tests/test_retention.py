"""Retention: keep_last, keep_days, GFS over months and years, floors, legacy, apply, and the runner's guard."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import retention, runner, selection
from dumpdeck.backend.catalog import DumpEntry, scan
from dumpdeck.backend.config import RetentionPolicy, load_config, parse_config
from dumpdeck.backend.naming import dump_basename
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.state import StateStore

ROOT = Path(__file__).resolve().parent.parent


def entry(
    when: datetime,
    db: str = "shop",
    *,
    level: int = 0,
    legacy: bool = False,
    manifest=True,
    manifest_error: str | None = None,
    last_result: Outcome | None = None,
    server: str | None = "main",
) -> DumpEntry:
    return DumpEntry(
        path=Path(f"/x/{server}/{db}/{db}-{when:%Y%m%dT%H%M%SZ}.sql.zst"),
        server=server,
        database=db,
        when=when,
        size=1000,
        codec="zstd",
        manifest=object() if manifest else None,
        manifest_error=manifest_error,
        legacy=legacy,
        verified_level=level,
        verified_at=when if level else None,
        last_result=last_result,
    )


def daily(start: date, end: date, hour: int = 2, **kw) -> list[DumpEntry]:
    out, d = [], start
    while d <= end:
        out.append(entry(datetime(d.year, d.month, d.day, hour, tzinfo=UTC), **kw))
        d += timedelta(days=1)
    return out[::-1]  # newest first, like the catalog


def kept(decisions) -> list[date]:
    return sorted((d.entry.when.date() for d in decisions if d.keep), reverse=True)


NOW = datetime(2024, 7, 1, 12, tzinfo=UTC)


def test_empty_policy_keeps_everything():
    entries = daily(date(2024, 1, 1), date(2024, 6, 30))
    decisions = retention.plan(entries, RetentionPolicy(), NOW)
    assert all(d.keep for d in decisions)
    assert all("no retention policy" in d.reasons[0] for d in decisions)
    assert retention.apply(decisions, dry_run=True) == []


def test_keep_last_keeps_the_newest_n():
    entries = daily(date(2024, 6, 1), date(2024, 6, 30))
    decisions = retention.plan(entries, RetentionPolicy(keep_last=3), NOW)
    assert kept(decisions) == [date(2024, 6, 30), date(2024, 6, 29), date(2024, 6, 28)]
    first = decisions[0]
    assert any("keep_last 3: #1 newest" in r for r in first.reasons)
    gone = [d for d in decisions if not d.keep]
    assert len(gone) == 27 and all("not kept by any rule (keep_last 3)" in d.reasons[0] for d in gone)


def test_gfs_over_months_and_years():
    entries = daily(date(2021, 3, 15), date(2024, 6, 30))
    policy = RetentionPolicy(daily=7, weekly=4, monthly=6, yearly=3)
    decisions = retention.plan(entries, policy, NOW)
    expect_daily = [date(2024, 6, 30) - timedelta(days=i) for i in range(7)]
    # ISO weeks: 2024-06-30 is a Sunday, so the newest dump of each week is its Sunday
    expect_weekly = [date(2024, 6, 30), date(2024, 6, 23), date(2024, 6, 16), date(2024, 6, 9)]
    expect_monthly = [
        date(2024, 6, 30),
        date(2024, 5, 31),
        date(2024, 4, 30),
        date(2024, 3, 31),
        date(2024, 2, 29),
        date(2024, 1, 31),
    ]
    expect_yearly = [date(2024, 6, 30), date(2023, 12, 31), date(2022, 12, 31)]
    expect = sorted(set(expect_daily + expect_weekly + expect_monthly + expect_yearly), reverse=True)
    assert kept(decisions) == expect
    by_day = {d.entry.when.date(): d for d in decisions}
    assert any(r.startswith("yearly 3: newest of 2022") for r in by_day[date(2022, 12, 31)].reasons)
    assert any(r.startswith("monthly 6: newest of 2024-02") for r in by_day[date(2024, 2, 29)].reasons)
    # 2021 is the fourth year: no bucket left
    assert not by_day[date(2021, 12, 31)].keep


def test_gfs_buckets_count_only_periods_that_have_dumps():
    # dumps in Jan, Feb and May 2024 only (a gap in March–April), two per month
    whens = [datetime(2024, m, d, 3, tzinfo=UTC) for m in (1, 2, 5) for d in (5, 20)]
    entries = sorted((entry(w) for w in whens), key=lambda e: e.when, reverse=True)
    decisions = retention.plan(entries, RetentionPolicy(monthly=3), NOW)
    assert kept(decisions) == [date(2024, 5, 20), date(2024, 2, 20), date(2024, 1, 20)]


def test_floor_keeps_the_newest_verified_dump_when_all_are_older_than_keep_days():
    entries = daily(date(2024, 1, 1), date(2024, 1, 31))
    entries[3] = entry(entries[3].when, level=2)  # 2024-01-28 verified to L2
    entries[1] = entry(entries[1].when, level=1)  # L1 only: not enough for the floor
    decisions = retention.plan(entries, RetentionPolicy(keep_days=14), NOW)
    assert kept(decisions) == [date(2024, 1, 28)]
    [floor] = [d for d in decisions if d.keep]
    assert floor.reasons == ["floor: newest dump verified to level 2+ (level 2) is always kept"]


def test_floor_keeps_the_newest_dump_when_none_is_verified():
    entries = daily(date(2024, 1, 1), date(2024, 1, 31))
    decisions = retention.plan(entries, RetentionPolicy(keep_days=7, keep_last=0), NOW)
    assert kept(decisions) == [date(2024, 1, 31)]
    assert "none verified" in next(d for d in decisions if d.keep).reasons[0]


def test_failed_verification_takes_no_slot_and_is_not_a_floor():
    entries = daily(date(2024, 6, 25), date(2024, 6, 30))
    entries[0] = entry(entries[0].when, level=0, last_result=Outcome.FAILED)  # newest: failed verification
    decisions = retention.plan(entries, RetentionPolicy(keep_last=2), NOW)
    assert kept(decisions) == [date(2024, 6, 29), date(2024, 6, 28)]
    assert "last verification failed" in decisions[0].reasons[0]


def test_legacy_and_unreadable_manifests_are_kept_unless_asked():
    old = datetime(2020, 1, 1, tzinfo=UTC)
    legacy = entry(old, legacy=True, manifest=False, server=None)
    broken = entry(old + timedelta(days=1), manifest=False, manifest_error="manifest is not valid JSON")
    new = daily(date(2024, 6, 1), date(2024, 6, 30))
    decisions = retention.plan([*new, broken, legacy], RetentionPolicy(keep_last=1), NOW)
    by = {id(d.entry): d for d in decisions}
    assert by[id(legacy)].keep and "legacy" in by[id(legacy)].reasons[0]
    assert by[id(broken)].keep and "not valid JSON" in by[id(broken)].reasons[0]
    again = retention.plan(
        [legacy, entry(datetime(2024, 6, 1, tzinfo=UTC), server=None)],
        RetentionPolicy(keep_last=1),
        NOW,
        include_legacy=True,
    )
    assert [d.keep for d in again] == [False, True]


def test_each_database_is_planned_on_its_own():
    a = daily(date(2024, 6, 20), date(2024, 6, 30), db="a")
    b = daily(date(2024, 6, 1), date(2024, 6, 5), db="b")
    decisions = retention.plan(a + b, RetentionPolicy(keep_last=2), NOW)
    assert sorted((d.entry.database, d.entry.when.day) for d in decisions if d.keep) == [
        ("a", 29),
        ("a", 30),
        ("b", 4),
        ("b", 5),
    ]


def test_plan_for_config_uses_database_then_job_then_default_policies(tmp_path):
    cfg = parse_config(
        textwrap.dedent(f"""\
        servers: {{main: {{socket: /tmp/x.sock}}}}
        backup: {{dir: {tmp_path}}}
        retention:
          keep_last: 5
          databases:
            special: {{keep_last: 1}}
        jobs:
          shop:
            databases: ["shop*"]
            retention: {{keep_last: 2}}
        """),
        tmp_path / "c.yaml",
    )

    class Cat:
        entries = (
            daily(date(2024, 6, 1), date(2024, 6, 10), db="special")
            + daily(date(2024, 6, 1), date(2024, 6, 10), db="shop_eu")
            + daily(date(2024, 6, 1), date(2024, 6, 10), db="other")
        )

    decisions = retention.plan_for_config(cfg, Cat, now=NOW)
    count = {}
    for d in decisions:
        count[d.entry.database] = count.get(d.entry.database, 0) + d.keep
    assert count == {"special": 1, "shop_eu": 2, "other": 5}
    only_job = retention.plan_for_config(cfg, Cat, job=cfg.job("shop"), now=NOW)
    assert {d.entry.database for d in only_job} == {"shop_eu"}


# --------------------------------------------------------------------------- files


def synthetic_dump(backup_dir: Path, db: str, when: datetime, server: str = "main", level: int = 0) -> Path:
    path = backup_dir / server / db / dump_basename(db, when, ".zst")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not really zstd")
    m = manifest_mod.Manifest(
        database=db,
        server={"name": server},
        tool={"path": "x", "version": "x"},
        options=[],
        started=when.isoformat(),
        finished=when.isoformat(),
        duration=1.0,
        bytes_raw=100,
        bytes_stored=15,
        codec="zstd",
        level=3,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        file=path.name,
    )
    if level:
        m.verifications.append(manifest_mod.Verification(level=level, outcome=Outcome.PASSED, at=when.isoformat()))
    manifest_mod.save(m, path)
    return path


def test_apply_deletes_dump_and_manifest_and_old_unlocked_partials(tmp_path):
    backups = tmp_path / "b"
    paths = [synthetic_dump(backups, "shop", datetime(2024, 6, d, tzinfo=UTC)) for d in range(1, 6)]
    old_partial = backups / "main" / "shop" / "shop-20240101T000000Z.sql.zst.partial"
    live_partial = backups / "main" / "shop" / "shop-20240102T000000Z.sql.zst.partial"
    young_partial = backups / "main" / "shop" / "shop-20240103T000000Z.sql.zst.partial"
    for p in (old_partial, live_partial, young_partial):
        p.write_bytes(b"x")
    for p in (old_partial, live_partial):
        os.utime(p, (0, 1_000_000))
    holder = open(live_partial, "rb")  # noqa: SIM115 -- held open as a live writer
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        catalog = scan(backups)
        assert len(catalog.entries) == 5
        decisions = retention.plan(catalog.entries, RetentionPolicy(keep_last=2), NOW)
        dry = retention.apply(decisions, dry_run=True, partials=catalog.partials, partial_max_age=86400)
        assert set(dry) == set(paths[:3]) | {old_partial}
        assert all(p.exists() for p in paths) and old_partial.exists()
        done = retention.apply(decisions, dry_run=False, partials=catalog.partials, partial_max_age=86400)
        assert set(done) == set(dry)
        for p in paths[:3]:
            assert not p.exists() and not manifest_mod.manifest_path(p).exists()
        for p in paths[3:]:
            assert p.exists() and manifest_mod.manifest_path(p).exists()
        assert not old_partial.exists() and live_partial.exists() and young_partial.exists()
    finally:
        holder.close()


def test_apply_never_empties_a_database(tmp_path):
    e = entry(datetime(2024, 1, 1, tzinfo=UTC))  # a file that does not exist: it cannot pass a re-check
    d = retention.Decision(e, False, ["hand-made"])
    assert retention.apply([d], dry_run=True) == []
    assert d.keep and d.reasons[0].startswith("held: no dump of this database passed the floor re-check")
    assert d.recheck is not None and d.recheck.outcome is Outcome.FAILED


# --------------------------------------------------------------------------- runner and CLI


def _config(write_config, db, tool: Path | None):
    extra = (
        f"jobs:\n  nightly:\n    server: main\n    databases: [{db}]\n    verify: 0\n    retention: {{keep_last: 1}}\n"
    )
    path = write_config(extra)
    if tool is not None:
        path.write_text(
            path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n")
        )
    return load_config(path)


def _run(config):
    store = StateStore.open(config.state_db)
    run = store.create_run(
        "nightly", "cron", "main", selection.resolve_databases(config, "nightly"), log_dir=config.runs_log_dir
    )
    final = runner.execute(config, store, run.id)
    return store, final


def test_never_prune_after_a_failed_run_then_prune_after_a_good_one(tmp_path, write_config, sample_db):
    tool = tmp_path / "failing-dump"
    tool.write_text(
        '#!/bin/sh\ncase "$1" in --version) echo "mariadb-dump Ver 10.19 MariaDB"; exit 0;; esac\n'
        'echo "Got error: 2013: Lost connection" >&2\nexit 2\n'
    )
    tool.chmod(0o755)
    config = _config(write_config, sample_db, tool)
    old = [synthetic_dump(config.backup.dir, sample_db, datetime(2024, 1, d, tzinfo=UTC)) for d in (1, 2, 3)]
    store, final = _run(config)
    try:
        assert final.status == "failed" and "Lost connection" in final.reason
        assert all(p.exists() for p in old)
        assert any(e.kind == "retention" and "skipped" in e.message for e in store.events(final.id))
        # a manual prune also holds back after the failure, unless forced
        res = subprocess.run(
            [sys.executable, "-m", "dumpdeck", "--config", str(config.path), "prune", "--json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["deleted"] == [] and all(p.exists() for p in old)
    finally:
        store.close()

    good = _config(write_config, sample_db, None)  # the real mariadb-dump
    store, final = _run(good)
    try:
        assert final.status == "succeeded", final.reason
        assert not any(p.exists() for p in old)
        remaining = scan(good.backup.dir).entries
        assert [e.path for e in remaining] == [Path(store.progress(final.id)[0].file)]
        ev = next(e for e in store.events(final.id) if e.kind == "retention")
        assert ev.data["kept"] == 1 and len(ev.data["deleted"]) == 3
    finally:
        store.close()


def test_prune_cli_dry_run_shows_the_plan_and_deletes_nothing(write_config, tmp_path):
    path = write_config("retention: {keep_last: 1}\n")
    config = load_config(path)
    paths = [
        synthetic_dump(config.backup.dir, "shop", datetime(2024, 1, d, tzinfo=UTC), level=2 if d == 1 else 0)
        for d in (1, 2, 3)
    ]
    res = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "prune", "--dry-run", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)
    actions = {Path(d["path"]).name: (d["keep"], d["reasons"]) for d in plan["decisions"]}
    assert actions[paths[2].name][0] and "keep_last 1: #1 newest" in actions[paths[2].name][1][0]
    assert actions[paths[0].name][0] and "floor" in actions[paths[0].name][1][0]
    assert actions[paths[1].name][0] is False
    assert all(p.exists() for p in paths)
    text = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "prune"], capture_output=True, text=True, cwd=ROOT
    )
    assert text.returncode == 0, text.stderr
    assert "DELETE" in text.stdout and "deleted 1 dump(s)" in text.stdout
    assert not paths[1].exists() and paths[0].exists() and paths[2].exists()
