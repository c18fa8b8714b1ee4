"""Preflight: connection retries with growing delays, privileges, free space against the estimate."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from dumpdeck.backend import runner, selection
from dumpdeck.backend.config import load_config
from dumpdeck.backend.preflight import DEFAULT_RATIO, preflight
from dumpdeck.backend.state import DbProgress, StateStore


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(
            f"mounting a 1 MiB tmpfs is not permitted here ({res.stderr.strip() or res.returncode}); "
            "the free-space check cannot be exercised"
        )
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_preflight_passes_with_estimates(config, sample_db):
    report = preflight(config, "main", [sample_db])
    assert report.ok, report.problems
    inv = report.inventory_bytes[sample_db]
    assert inv > 0
    assert report.estimates[sample_db] == int(inv * DEFAULT_RATIO["zstd"])
    assert report.ratio_source[sample_db] == "default"
    assert report.free_bytes > report.needed_bytes >= report.estimates[sample_db]


def test_preflight_learns_the_ratio_from_history(config, sample_db):
    store = StateStore.open(config.state_db)
    try:
        for _ in range(3):
            run = store.create_run("adhoc", "cli", "main", [sample_db])
            store.set_progress(
                DbProgress(
                    run.id,
                    sample_db,
                    "succeeded",
                    bytes_raw=800,
                    bytes_stored=100,
                    inventory_bytes=1000,
                    started=run.created,
                )
            )
        report = preflight(config, "main", [sample_db], store=store)
    finally:
        store.close()
    inv = report.inventory_bytes[sample_db]
    assert report.ratio_source[sample_db] == "history (3 runs)"
    # the last dumps' SQL size (800 B), scaled by the inventory's growth (clamped to x2) ...
    assert inv > 2000 and report.raw_estimates[sample_db] == 1600
    # ... times the compression ratio those dumps reached (100 / 800)
    assert report.estimates[sample_db] == 200


def test_stale_table_statistics_in_history_do_not_inflate_the_space_check(config, sample_db):
    """InnoDB statistics lag behind bulk loads: a 2 GiB dump may have seen an inventory of 1 KiB.
    A ratio learned against that figure would demand hundreds of GB and refuse the next backup."""
    store = StateStore.open(config.state_db)
    try:
        run = store.create_run("adhoc", "cli", "main", [sample_db])
        store.set_progress(
            DbProgress(
                run.id,
                sample_db,
                "succeeded",
                bytes_raw=2 * 1024**3,
                bytes_stored=1024**3,
                inventory_bytes=1024,
                started=run.created,
            )
        )
        report = preflight(config, "main", [sample_db], store=store)
    finally:
        store.close()
    assert report.needed_bytes == int(2 * 1024**3 * 1.2)  # not hundreds of GB
    assert report.raw_estimates[sample_db] == 4 * 1024**3  # 2 GiB x the growth clamp (2)
    assert report.estimates[sample_db] == 2 * 1024**3  # x its compression ratio (0.5)


def test_connection_is_retried_with_growing_delays(config, tmp_path):
    gone = dataclasses.replace(config.servers["main"], socket=tmp_path / "no.sock")
    slept: list[float] = []
    report = preflight(config, gone, ["x"], retries=3, delay=0.5, sleep=slept.append)
    assert not report.ok
    assert slept == [0.5, 1.0, 2.0]
    assert "cannot connect" in report.problems[0] and "4 attempts" in report.problems[0]
    assert report.fatal == report.problems


def test_missing_database_and_privileges_are_per_database_problems(write_config, sample_db):
    config = load_config(write_config(password=True))
    report = preflight(config, "main", [sample_db, "no_such_db"])
    assert "'no_such_db' does not exist" in report.db_problems["no_such_db"]
    assert report.fatal == [] and not report.ok
    assert sample_db not in report.db_problems  # bk has SELECT, SHOW VIEW, TRIGGER, EVENT


def test_preflight_fails_fast_on_a_small_tmpfs(config, make_db, tmpfs):
    db = make_db("big_for_tmpfs", rows=3000)
    cfg = dataclasses.replace(config, backup=dataclasses.replace(config.backup, dir=tmpfs / "backups"))
    report = preflight(cfg, "main", [db])
    assert not report.ok
    [problem] = report.fatal
    assert "not enough space" in problem and str(tmpfs / "backups") in problem
    assert report.free_bytes <= 1024 * 1024 < report.needed_bytes
    from dumpdeck.backend.units import format_bytes

    assert f"free {format_bytes(report.free_bytes)}" in problem
    assert f"need about {format_bytes(report.needed_bytes)}" in problem


def test_a_run_on_a_small_tmpfs_fails_in_preflight_without_dumping(write_config, make_db, tmpfs):
    db = make_db("big_for_tmpfs_run", rows=3000)
    path = write_config(f"jobs:\n  nightly:\n    databases: [{db}]\n    verify: 0\n")
    path.write_text(path.read_text().replace(str(path.parent / "backups"), str(tmpfs / "backups")))
    config = load_config(path)
    assert config.backup.dir == tmpfs / "backups"
    store = StateStore.open(config.state_db)
    try:
        run = store.create_run("nightly", "cron", "main", selection.resolve_databases(config, "nightly"))
        final = runner.execute(config, store, run.id)
        assert final.status == "failed"
        assert final.reason.startswith("preflight failed: not enough space") and "need about" in final.reason
        kinds = [e.kind for e in store.events(run.id)]
        assert "dump-start" not in kinds
        assert store.progress(run.id)[0].error == final.reason  # each database says why, with the figures
        assert not any(Path(tmpfs).rglob("*.sql*"))
    finally:
        store.close()
