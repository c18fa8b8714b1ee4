"""Retention re-checks the floor it keeps (sha256 now) before it deletes anything of a database.

Real dumps of the scratch server, damaged on disk after they were verified; the assertions read the
world (which files exist, what their bytes hash to, what their manifests record), not prune's words.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.naming import dump_basename
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.verify import verify_file

from .helpers import create_sample_database, drop_database

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def four_verified(write_config, mariadb):
    """Four real dumps of one database (2024-01-01..04), each verified to level 2; keep_last 1."""
    config = load_config(write_config("retention: {keep_last: 1}\n"))
    db = f"rr_{os.getpid()}"
    create_sample_database(mariadb, db, rows=30)
    try:
        first = dump_database(config.server("main"), config.backup, db).path
    finally:
        drop_database(mariadb, db)
    paths = []
    for day in (1, 2, 3, 4):
        when = datetime(2024, 1, day, 2, tzinfo=UTC)
        path = first.parent / dump_basename(db, when, ".zst")
        shutil.copy2(first, path)
        m = manifest_mod.load(first)
        m.started = m.finished = when.isoformat()
        m.file = path.name
        manifest_mod.save(m, path)
        assert verify_file(path, 2).passed
        paths.append(path)
    first.unlink()
    manifest_mod.manifest_path(first).unlink()
    return config, db, paths[::-1]  # newest first


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def sha_matches_manifest(path: Path) -> bool:
    return hashlib.sha256(path.read_bytes()).hexdigest() == manifest_mod.load(path).sha256


def prune(config, *args):
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config.path), "prune", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_corrupt_newest_verified_dump_is_recorded_failed_and_a_good_one_is_kept(four_verified):
    config, _db, paths = four_verified
    newest = paths[0]
    flip_byte(newest)  # damaged on disk after it was verified: its manifest still says level 2
    assert manifest_mod.load(newest).verified_level == 2

    dry = prune(config, "--dry-run")
    assert "floor re-check" in dry.stdout and "dry run, not recorded" in dry.stdout, dry.stdout
    assert "✗" in dry.stdout and "mismatch" in dry.stdout and "kept as the floor" in dry.stdout
    assert all(p.exists() for p in paths)  # a dry run deletes nothing ...
    assert manifest_mod.load(newest).verifications[-1].outcome is Outcome.PASSED  # ... and records nothing

    res = prune(config)
    assert res.returncode == 1, res.stdout + res.stderr  # it found a bad dump: not a clean exit
    survivors = [p for p in paths if p.exists()]
    good = [p for p in survivors if sha_matches_manifest(p)]
    assert good, f"no dump passing level 1 is left: {survivors}"
    assert newest.exists() and not sha_matches_manifest(newest)
    last = manifest_mod.load(newest).verifications[-1]
    assert last.outcome is Outcome.FAILED and last.level == 0
    entry = next(e for e in scan(config.backup.dir).entries if e.path == newest)
    assert entry.last_result is Outcome.FAILED and entry.verified_level == 0
    # the good floor is the newest of the others, re-checked and kept
    assert paths[1] in good
    assert manifest_mod.load(paths[1]).verifications[-1].outcome is Outcome.PASSED
    # and the policy still applied to the rest
    assert not paths[2].exists() and not paths[3].exists()


def test_when_no_dump_passes_nothing_of_the_database_is_deleted(four_verified):
    config, db, paths = four_verified
    for p in paths:
        flip_byte(p)
    before = {p: p.read_bytes() for p in paths}
    res = prune(config, "--json")
    assert res.returncode == 1
    out = json.loads(res.stdout)
    (rc,) = [r for r in out["rechecks"] if r["database"] == db]
    assert rc["held"] is True and rc["floor"] is None
    assert [c["outcome"] for c in rc["checked"]] == ["failed"] * 4
    assert out["deleted"] == []
    assert {p: p.read_bytes() for p in paths} == before  # every file still there, unchanged
    for p in paths:
        assert manifest_mod.load(p).verifications[-1].outcome is Outcome.FAILED
    text = prune(config)
    assert "NOTHING DELETED" in text.stdout and f"main/{db}: no dump passed the floor re-check" in text.stderr


def test_legacy_files_are_rechecked_against_their_recorded_digest(write_config, tmp_path, mariadb):
    """--include-legacy: a legacy file serves as a floor only when a recorded verification proved it whole
    and its bytes still hash to what was recorded then."""
    config = load_config(write_config("retention: {keep_last: 1}\n"))
    db = f"rl_{os.getpid()}"
    create_sample_database(mariadb, db, rows=10)
    try:
        dumped = dump_database(config.server("main"), config.backup, db).path
    finally:
        drop_database(mariadb, db)
    sql = subprocess.run(["zstd", "-dc", str(dumped)], capture_output=True, check=True).stdout
    shutil.rmtree(config.backup.dir / "main")
    legacy = []
    for day in (1, 2, 3):
        p = config.backup.dir / f"{db}_2023010{day}_020000.sql.gz"
        p.write_bytes(gzip.compress(sql))
        legacy.append(p)
    legacy = legacy[::-1]  # newest first
    assert verify_file(legacy[1], 2).passed  # proven whole: its digest is recorded beside it
    assert scan(config.backup.dir).get(legacy[1]).verified_level == 2
    flip_byte(legacy[1])  # ... and damaged afterwards
    flip_byte(legacy[0])  # the newest was never verified, and is damaged too
    res = prune(config, "--include-legacy", "--json")
    out = json.loads(res.stdout)
    (rc,) = [r for r in out["rechecks"] if r["database"] == db]
    # the proven one first (level 1 against its recorded digest), then the others newest first (level 2:
    # no recorded digest yet); the oldest, intact, passes and is the floor
    assert [(c["path"], c["outcome"]) for c in rc["checked"]] == [
        (str(legacy[1]), "failed"),
        (str(legacy[0]), "failed"),
        (str(legacy[2]), "passed"),
    ], rc
    assert rc["floor"] == str(legacy[2]) and legacy[2].exists()
    assert "changed since it was proven whole" in rc["checked"][0]["summary"]
    for p in legacy[:2]:
        assert manifest_mod.load_history(p).verifications[-1].outcome is Outcome.FAILED
        entry = scan(config.backup.dir).get(p)
        assert entry.legacy and entry.last_result is Outcome.FAILED and entry.verified_level == 0
    assert manifest_mod.load_history(legacy[2]).sha256 == hashlib.sha256(legacy[2].read_bytes()).hexdigest()
    listed = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config.path), "list", "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    by_path = {d["path"]: d for d in json.loads(listed.stdout)["dumps"]}
    assert by_path[str(legacy[2])]["verified_level"] == 2 and by_path[str(legacy[2])]["last_result"] == "passed"
    assert by_path[str(legacy[1])]["last_result"] == "failed"
