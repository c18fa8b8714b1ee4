"""Three verdicts: passed, failed, not checked. A check that could not run condemns nothing.

The restore-test target is a configured server nobody listens for (a free TCP port on loopback): the
real client gets "connection refused". The assertions read the manifests, the catalog and the files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.naming import dump_basename
from dumpdeck.backend.outcome import EXIT_NOT_CHECKED, Outcome
from dumpdeck.backend.sandbox import free_port
from dumpdeck.backend.verify import verify_file
from dumpdeck.tui.adapter import dump_view

from .helpers import create_sample_database, drop_database

ROOT = Path(__file__).resolve().parent.parent


def cli(config_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config_path), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_unreachable_restore_test_target_is_not_checked_and_retention_keeps_the_dump(write_config, mariadb):
    path = write_config("retention: {keep_last: 1}\n")
    text = path.read_text().replace(
        "servers:\n", f"servers:\n  down:\n    host: 127.0.0.1\n    port: {free_port()}\n    user: root\n", 1
    )
    path.write_text(text)
    config = load_config(path)
    db = f"vd_{os.getpid()}"
    create_sample_database(mariadb, db, rows=20)
    try:
        dumped = dump_database(config.server("main"), config.backup, db).path
    finally:
        drop_database(mariadb, db)
    older, newer = (dumped.parent / dump_basename(db, datetime(2024, 1, d, tzinfo=UTC), ".zst") for d in (1, 2))
    for p, d in ((older, 1), (newer, 2)):
        shutil.copy2(dumped, p)
        m = manifest_mod.load(dumped)
        m.started = m.finished = datetime(2024, 1, d, tzinfo=UTC).isoformat()
        m.file = p.name
        manifest_mod.save(m, p)
        assert verify_file(p, 3).passed
    dumped.unlink()
    manifest_mod.manifest_path(dumped).unlink()

    res = cli(path, "restore-test", str(newer), "--target", "down")
    assert res.returncode == EXIT_NOT_CHECKED, res.stdout + res.stderr
    assert "? target: not checked:" in res.stdout and "not checked at level 4" in res.stdout, res.stdout
    assert "✗" not in res.stdout, res.stdout  # nothing failed

    m = manifest_mod.load(newer)
    last = m.verifications[-1]
    assert last.outcome is Outcome.NOT_CHECKED and last.level == 3 and m.verified_level == 3
    entry = scan(config.backup.dir).get(newer)
    assert entry.verified_level == 3 and entry.last_result is Outcome.NOT_CHECKED and entry.problem is None
    assert dump_view(entry).last_result == "not_checked"  # what the console's dumps browser shows
    listed = cli(path, "list", "--database", db)
    row = next(line for line in listed.stdout.splitlines() if newer.name in line)
    assert " 3? " in row, row
    as_json = {d["path"]: d for d in json.loads(cli(path, "list", "--json").stdout)["dumps"]}
    assert as_json[str(newer)]["last_result"] == "not_checked" and as_json[str(newer)]["verified_level"] == 3

    pruned = cli(path, "prune")
    assert pruned.returncode == 0, pruned.stdout + pruned.stderr
    assert newer.exists() and manifest_mod.manifest_path(newer).exists()  # kept: not checked is not failed
    assert not older.exists()  # keep_last 1 applied to the rest


def test_a_check_that_could_not_run_never_shows_a_tick(tmp_path, write_config):
    path = write_config()
    dump = tmp_path / "foreign.sql"
    dump.write_text(
        "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n--\nCREATE TABLE `t` (a int);\n"
        "INSERT INTO `t` VALUES (1);\n-- Dump completed on 2026-01-01  2:00:00\n"
    )
    res = cli(path, "verify", str(dump), "--level", "1")
    assert res.returncode == EXIT_NOT_CHECKED, res.stdout + res.stderr
    assert "? sha256: not checked: no manifest to compare with" in res.stdout
    assert "✓ sha256" not in res.stdout
    data = json.loads(cli(path, "verify", str(dump), "--level", "1", "--json", "--no-record").stdout)
    assert data["outcome"] == "not_checked" and data["level_reached"] == 0
    sha = next(c for c in data["checks"] if c["name"] == "sha256")
    assert sha["outcome"] == "not_checked"


def test_old_manifests_with_passed_booleans_still_read(tmp_path):
    dump = tmp_path / "x.sql.zst"
    dump.write_bytes(b"x")
    rec = {
        "format_version": 1,
        "database": "x",
        "server": {"name": "main"},
        "tool": {},
        "options": [],
        "started": "2024-01-01T00:00:00+00:00",
        "finished": "2024-01-01T00:00:01+00:00",
        "duration": 1.0,
        "bytes_raw": 1,
        "bytes_stored": 1,
        "codec": "zstd",
        "level": 3,
        "sha256": "0" * 64,
        "file": dump.name,
        "verifications": [
            {"level": 2, "passed": True, "at": "2024-01-02T00:00:00+00:00", "checks": [{"name": "a", "passed": True}]},
            {"level": 4, "passed": True, "at": "2024-01-03T00:00:00+00:00"},
            {"level": 1, "passed": False, "at": "2024-01-04T00:00:00+00:00"},
        ],
    }
    manifest_mod.manifest_path(dump).write_text(json.dumps(rec))
    m = manifest_mod.load(dump)
    assert [v.outcome for v in m.verifications] == [Outcome.PASSED, Outcome.PASSED, Outcome.FAILED]
    assert m.verified_level == 1  # a failure caps the level at what that run reached
    assert manifest_mod.check_outcome(m.verifications[0].checks[0]) is Outcome.PASSED
    entry = scan(tmp_path).get(dump)
    assert entry.last_result is Outcome.FAILED and entry.verified_level == 1
