"""The catalog: engine dumps, manifest problems, legacy files, partial files and their cleaning."""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dumpdeck.backend import catalog
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.config import BackupConfig, ServerConfig
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.verify import verify_file

from .helpers import create_sample_database, drop_database


@pytest.fixture(scope="module")
def two_dumps(mariadb, tmp_path_factory):
    base = tmp_path_factory.mktemp("cdumps")
    db = f"cat_{os.getpid()}"
    create_sample_database(mariadb, db, rows=20)
    server = ServerConfig(name="main", host=None, socket=mariadb.socket, user="root")
    try:
        a = dump_database(server, BackupConfig(dir=base, compression="zstd"), db).path
        b = dump_database(server, BackupConfig(dir=base, compression="none"), db).path
    finally:
        drop_database(mariadb, db)
    return db, base, a, b


def tree_copy(base: Path, dest: Path) -> Path:
    shutil.copytree(base, dest)
    return dest


def test_scan_reads_engine_dumps(two_dumps, tmp_path):
    db, base, _a, _b = two_dumps
    root = tree_copy(base, tmp_path / "backups")
    cat = catalog.scan(root)
    assert len(cat.entries) == 2 and not cat.partials and not cat.errors
    for e in cat.entries:
        assert e.server == "main" and e.database == db and e.manifest is not None and e.manifest_error is None
        assert e.when.tzinfo is not None and e.size == e.path.stat().st_size and not e.legacy
        assert e.verified_level == 0 and e.last_result is None and e.key == str(e.path)
    assert cat.entries[0].when >= cat.entries[1].when  # newest first
    assert {e.codec for e in cat.entries} == {"zstd", "none"}
    newest = cat.entries[0]
    assert cat.latest(db) is newest and cat.latest(db, "main") is newest and cat.latest(db, "other") is None
    assert cat.latest_verified(db) is None
    verify_file(cat.entries[1].path, 2)
    cat = catalog.scan(root)
    e = cat.latest_verified(db)
    assert e is not None and e.path == cat.entries[1].path and e.verified_level == 2 and e.last_result is Outcome.PASSED
    assert cat.latest_verified(db, min_level=3) is None
    assert len(cat.for_database("main", db)) == 2


def test_failed_verification_caps_the_level(two_dumps, tmp_path):
    _db, base, a, _b = two_dumps
    root = tree_copy(base, tmp_path / "backups")
    path = root / a.relative_to(base)
    assert verify_file(path, 3).passed
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    assert not verify_file(path, 1).passed
    e = catalog.scan(root).get(path)
    assert e.verified_level == 0 and e.last_result is Outcome.FAILED and "failed" in e.problem


def test_missing_and_corrupt_manifests_never_break_the_scan(two_dumps, tmp_path):
    db, base, a, b = two_dumps
    root = tree_copy(base, tmp_path / "backups")
    manifest_mod.manifest_path(root / a.relative_to(base)).write_text("{broken")
    manifest_mod.manifest_path(root / b.relative_to(base)).unlink()
    (root / "main" / "junk.sql.xz.manifest.json").write_text("[]")
    cat = catalog.scan(root)
    by = {e.path.name: e for e in cat.entries}
    bad = by[a.name]
    assert bad.manifest is None and "not valid JSON" in bad.manifest_error and bad.database == db
    none = by[b.name]
    assert none.manifest is None and none.manifest_error is None and none.database == db and none.server == "main"
    (root / "main" / db / "x.sql.zst.manifest.json").write_text('{"format_version": 99}')
    (root / "main" / db / "x.sql.zst").write_bytes(b"\x28\xb5\x2f\xfd")
    e = catalog.scan(root).get(root / "main" / db / "x.sql.zst")
    assert "format_version" in e.manifest_error


def test_legacy_files(two_dumps, tmp_path):
    _db, _base, a, b = two_dumps
    root = tmp_path / "backups"
    root.mkdir()
    (root / "shop_20250101_020000.sql.gz").write_bytes(gzip.compress(b.read_bytes()))
    (root / "my_app_db_20250102_030405.sql").write_bytes(b.read_bytes())
    (root / "notes.txt").write_text("not a dump")
    (root / "random.sql.zst").write_bytes(a.read_bytes())
    cat = catalog.scan(root)
    by = {e.path.name: e for e in cat.entries}
    assert set(by) == {"shop_20250101_020000.sql.gz", "my_app_db_20250102_030405.sql", "random.sql.zst"}
    legacy = by["shop_20250101_020000.sql.gz"]
    assert legacy.legacy and legacy.database == "shop" and legacy.server is None and legacy.codec == "gzip"
    assert legacy.when == datetime(2025, 1, 1, 2, 0).astimezone().astimezone(UTC)  # host local time
    assert legacy.verified_level == 0 and legacy.manifest is None
    assert by["my_app_db_20250102_030405.sql"].database == "my_app_db"
    other = by["random.sql.zst"]
    assert not other.legacy and other.database == "random" and other.codec == "zstd"
    assert verify_file(legacy.path, 3).passed  # a legacy dump verifies like any other


def test_partials_live_and_leftover(tmp_path):
    root = tmp_path / "backups"
    d = root / "main" / "shop"
    d.mkdir(parents=True)
    live = d / "shop-20260101T020000Z.sql.zst.partial"
    dead = d / "shop-20250101T020000Z.sql.zst.partial"
    live.write_bytes(b"x" * 10)
    dead.write_bytes(b"y" * 5)
    fd = os.open(live, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a writer holds it
    try:
        cat = catalog.scan(root)
        by = {p.path.name: p for p in cat.partials}
        assert by[live.name].live and not by[dead.name].live and by[dead.name].size == 5
        assert catalog.clean_partials(cat, dry_run=True) == [dead] and dead.exists()
        assert catalog.clean_partials(root, min_age=3600) == []  # too recent for the margin
        assert catalog.clean_partials(root) == [dead]
        assert live.exists() and not dead.exists()
    finally:
        os.close(fd)
    assert catalog.clean_partials(root) == [live]  # writer gone now


def test_missing_backup_dir(tmp_path):
    cat = catalog.scan(tmp_path / "nothing")
    assert cat.entries == [] and "does not exist" in cat.errors[0]
