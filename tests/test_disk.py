"""Disk usage per volume with thresholds, footprints, and the days-until-full projection."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dumpdeck.backend import disk
from dumpdeck.backend.catalog import DumpEntry, scan
from dumpdeck.backend.config import DiskConfig, RetentionConfig, RetentionPolicy, load_config

from .test_retention import synthetic_dump

ROOT = Path(__file__).resolve().parent.parent


def test_volumes_are_deduplicated_and_graded(config):
    vols = disk.volumes(config)
    # backups and state live under the same tmp_path: one volume holding both
    assert len(vols) == 1
    [v] = vols
    assert v.total > 0 and v.free > 0 and 0 <= v.percent <= 100
    assert {p.split(":")[0] for p in v.paths} == {"backups", "state"}
    assert v.level == disk.grade(v.percent, config)
    low = dataclasses.replace(config, disk=DiskConfig(warn_percent=max(1.0, v.percent - 1), critical_percent=100.0))
    assert disk.volumes(low)[0].level == ("warning" if v.percent >= 1 else "ok")
    crit = dataclasses.replace(config, disk=DiskConfig(warn_percent=1.0, critical_percent=1.0))
    assert disk.volumes(crit)[0].level == "critical"


def test_a_separate_mount_is_its_own_volume(config, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {res.stderr.strip()}")
    try:
        cfg = dataclasses.replace(config, backup=dataclasses.replace(config.backup, dir=mnt / "backups"))
        vols = disk.volumes(cfg)
        assert len(vols) == 2
        small = next(v for v in vols if v.mount == str(mnt))
        assert small.fstype == "tmpfs" and small.total == 2 * 1024 * 1024
        assert small.paths == (f"backups: {mnt / 'backups'}",)
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_footprint_counts_dumps_and_manifests_per_database(config):
    base = datetime(2024, 6, 1, tzinfo=UTC)
    a = [synthetic_dump(config.backup.dir, "a", base + timedelta(days=i)) for i in range(3)]
    b = [synthetic_dump(config.backup.dir, "b", base)]
    foot = disk.footprint(scan(config.backup.dir))
    size = lambda p: p.stat().st_size + Path(str(p) + ".manifest.json").stat().st_size  # noqa: E731
    assert foot == {("main", "a"): sum(size(p) for p in a), ("main", "b"): size(b[0])}


def _entries(sizes_by_day: dict[int, int], now: datetime, db="shop") -> list[DumpEntry]:
    out = [
        DumpEntry(
            path=Path(f"/x/{db}-{d}.sql.zst"),
            server="main",
            database=db,
            when=now - timedelta(days=d),
            size=s,
            codec="zstd",
            manifest=object(),
            manifest_error=None,
            legacy=False,
            verified_level=0,
            verified_at=None,
            last_result=None,
        )
        for d, s in sizes_by_day.items()
    ]
    return sorted(out, key=lambda e: e.when, reverse=True)


class _Cat:
    def __init__(self, entries):
        self.entries = entries
        self.partials = []


def test_projection_without_a_policy_counts_every_written_byte(config):
    now = datetime(2024, 7, 1, tzinfo=UTC)
    cat = _Cat(_entries({d: 1000 for d in range(10)}, now))  # 1000 bytes a day, all kept
    g = disk.growth(config, cat, now)
    assert g.bytes_per_day == pytest.approx(1000, rel=0.01)
    assert disk.projection(config, cat, now, free_bytes=50_000) == pytest.approx(50, rel=0.01)


def test_projection_with_a_policy_follows_the_growth_of_kept_dumps(config):
    now = datetime(2024, 7, 1, tzinfo=UTC)
    cfg = dataclasses.replace(config, retention=RetentionConfig(default=RetentionPolicy(keep_last=3)))
    flat = _Cat(_entries({d: 1000 for d in range(10)}, now))
    assert disk.projection(cfg, flat, now, free_bytes=50_000) is None  # steady state: never full
    growing = _Cat(_entries({d: 1000 + (9 - d) * 100 for d in range(10)}, now))  # +100 bytes per dump per day
    g = disk.growth(cfg, growing, now)
    assert g.bytes_per_day == pytest.approx(3 * 100, rel=0.01)
    assert disk.projection(cfg, growing, now, free_bytes=30_000) == pytest.approx(100, rel=0.01)
    assert disk.growth(cfg, _Cat(_entries({1: 5}, now)), now) is None  # too little data


def test_disk_cli_json(write_config):
    path = write_config()
    cfg = load_config(path)
    synthetic_dump(cfg.backup.dir, "shop", datetime.now(UTC) - timedelta(days=1))
    res = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "disk", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert res.returncode in (0, 1), res.stderr
    out = json.loads(res.stdout)
    assert out["volumes"][0]["level"] in ("ok", "warning", "critical")
    assert out["footprint"][0]["database"] == "shop" and out["footprint"][0]["bytes"] > 0
    assert res.returncode == (0 if all(v["level"] == "ok" for v in out["volumes"]) else 1)
    text = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "disk"], capture_output=True, text=True, cwd=ROOT
    )
    assert "MOUNT" in text.stdout and "main/shop" in text.stdout and "projection" in text.stdout


def test_percent_is_dfs_use_percent(config, tmp_path):
    """One disk usage everywhere, and it is df's: used / (used + available), not used / total (on a file
    system with blocks reserved for root or held back, used / total reads far lower: 10% where df says 26%)."""
    out = subprocess.run(["df", "--output=pcent", str(tmp_path)], capture_output=True, text=True, check=True).stdout
    df_percent = int(out.splitlines()[1].strip().rstrip("%"))
    usage = disk.usage(tmp_path)
    # df rounds up; the file system may change by a few blocks between the two readings
    assert df_percent - 1.5 <= usage.percent <= df_percent + 0.5, (usage, df_percent)
    [volume] = disk.volumes(config)
    assert abs(volume.percent - usage.percent) < 0.5
