"""`dumpdeck backup` and `dumpdeck databases` as a user runs them: exit codes, JSON, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dd(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_backup_json_success(write_config, sample_db):
    cfg = write_config()
    proc = dd("--config", str(cfg), "backup", sample_db, "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    (r,) = out["results"]
    assert out["ok"] and r["ok"] and Path(r["file"]).exists() and len(r["sha256"]) == 64
    assert r["bytes_raw"] > r["bytes_stored"] > 0


def test_backup_human_output_and_failure_exit_1(write_config, sample_db):
    cfg = write_config()
    proc = dd("--config", str(cfg), "backup", sample_db, "no_such_db")
    assert proc.returncode == 1
    assert "OK" in proc.stdout and sample_db in proc.stdout
    assert "FAILED  main/no_such_db: server main: database 'no_such_db' does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_from_environment_variable(write_config, sample_db):
    cfg = write_config()
    proc = dd("backup", sample_db, env={"DUMPDECK_CONFIG": str(cfg)})
    assert proc.returncode == 0, proc.stderr


def test_usage_and_config_errors_exit_2(tmp_path, write_config):
    proc = dd("--config", str(tmp_path / "missing.yaml"), "backup", "x")
    assert proc.returncode == 2 and "configuration file not found" in proc.stderr
    assert "config.example.yaml" in proc.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("servers:\n  main:\n    host: [1, 2\n")
    proc = dd("--config", str(bad), "databases")
    assert proc.returncode == 2 and "malformed YAML" in proc.stderr and "Traceback" not in proc.stderr
    proc = dd("--config", str(write_config()), "backup")
    assert proc.returncode == 2 and "name at least one database" in proc.stderr
    proc = dd("backup", "--no-such-flag")
    assert proc.returncode == 2


def test_unreachable_server_is_one_line(tmp_path):
    from dumpdeck.backend.sandbox import free_port

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"servers:\n  gone:\n    host: 127.0.0.1\n    port: {free_port()}\n    user: root\n"
        f"    connect_timeout: 2s\nbackup:\n  dir: {tmp_path / 'b'}\n"
    )
    proc = dd("--config", str(cfg), "backup", "anything")
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "cannot connect" in proc.stderr
    proc = dd("--config", str(cfg), "databases", "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)[0]["reachable"] is False


def test_databases_lists_inventory(write_config, sample_db):
    proc = dd("--config", str(write_config()), "databases")
    assert proc.returncode == 0, proc.stderr
    assert sample_db in proc.stdout and "InnoDB" in proc.stdout


def test_help_teaches(write_config):
    proc = dd("--help")
    assert proc.returncode == 0
    for word in ("backup", "databases", "config", "exit codes"):
        assert word in proc.stdout
    proc = dd("backup", "--help")
    assert "--server" in proc.stdout and "exit codes" in proc.stdout
