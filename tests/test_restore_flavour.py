"""Restore-test targets match the dump's flavour: a MySQL 8 dump never goes to the MariaDB sandbox.

MySQL cannot run here. The MySQL sandbox's lifecycle (mysqld --initialize-insecure, start, load,
stop) is driven through a stand-in `mysqld`: a real process that says it is MySQL 8.0.40 and runs
MariaDB's server underneath, so every line of dumpdeck's MySQL-sandbox code runs for real; what a
real MySQL server would answer is not proven by it (README: versions exercised).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import restore
from dumpdeck.backend.config import RestoreTestConfig
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.outcome import Outcome


def _as_mysql_dump(config, db: str) -> Path:
    """A real dump whose manifest says it came from MySQL 8.0.40."""
    path = dump_database(config.server("main"), config.backup, db).path
    mpath = manifest_mod.manifest_path(path)
    data = json.loads(mpath.read_text())
    data["server"]["flavour"] = "mysql"
    data["server"]["version"] = "8.0.40"
    mpath.write_text(json.dumps(data))
    return path


def _target(report):
    return next(c for c in report.checks if c.name == "target")


def test_mysql_dump_without_a_mysql_server_is_not_checked_with_the_reason(config, sample_db, tmp_path, monkeypatch):
    monkeypatch.setenv("DUMPDECK_MYSQL_PATH", str(tmp_path / "empty"))  # no MySQL mysqld anywhere
    path = _as_mysql_dump(config, sample_db)
    report = restore.restore_test(path, config, "sandbox")
    assert report.outcome is Outcome.NOT_CHECKED, report.summary
    check = _target(report)
    assert check.outcome is Outcome.NOT_CHECKED
    assert "MySQL 8.0.40 dump" in check.evidence and "install MySQL's server (mysqld)" in check.evidence
    assert report.level_reached == 3 and not report.failed  # L1–L3 proven; L4 neither condemned nor promoted
    assert manifest_mod.load(path).verified_level == 3


def test_mysql_target_of_another_flavour_is_not_checked(config, sample_db):
    """restore_test.mysql_target naming a server that turns out to be MariaDB: said, not failed."""
    cfg = dataclasses.replace(config, restore_test=RestoreTestConfig(mysql_target="main"))
    path = _as_mysql_dump(cfg, sample_db)
    report = restore.restore_test(path, cfg, "sandbox")
    assert report.outcome is Outcome.NOT_CHECKED
    assert "target is MariaDB" in _target(report).evidence


STAND_IN = """\
#!/bin/sh
# A stand-in for MySQL's mysqld: says it is MySQL 8.0.40, runs MariaDB's server underneath.
if [ "$1" = "--version" ]; then
  echo "/usr/sbin/mysqld  Ver 8.0.40 for Linux on x86_64 (MySQL Community Server - GPL)"; exit 0
fi
echo "$(id -un) $*" >> {log}
init=0
for a do
  shift
  case "$a" in
    --initialize-insecure) init=1 ;;
    --mysqlx=*) ;;
    *) set -- "$@" "$a" ;;
  esac
done
if [ $init = 1 ]; then
  exec {install_db} "$@" --auth-root-authentication-method=normal --skip-test-db >/dev/null
fi
exec {mariadbd} "$@"
"""


def test_mysql_dump_goes_to_a_mysql_sandbox_when_mysqld_is_installed(config, sample_db, monkeypatch, request):
    mariadbd = shutil.which("mariadbd") or shutil.which("mariadbd", path="/usr/sbin")
    install_db = shutil.which("mariadb-install-db") or shutil.which("mariadb-install-db", path="/usr/bin")
    if not (mariadbd and install_db):
        pytest.fail("mariadbd and mariadb-install-db are needed (apt-get install -y mariadb-server)")
    # the sandbox server runs as the unprivileged sandbox user: its binary must be reachable by it
    bindir = Path(tempfile.mkdtemp(prefix="dumpdeck-test-mysqlbin-"))
    request.addfinalizer(lambda: shutil.rmtree(bindir, ignore_errors=True))
    bindir.chmod(0o755)
    log = bindir / "mysqld.calls"
    log.touch()
    log.chmod(0o666)
    stand_in = bindir / "mysqld"
    stand_in.write_text(STAND_IN.format(log=str(log), install_db=install_db, mariadbd=mariadbd))
    stand_in.chmod(0o755)
    monkeypatch.setenv("DUMPDECK_MYSQL_PATH", str(bindir))
    path = _as_mysql_dump(config, sample_db)
    report = restore.restore_test(path, config, "sandbox")
    assert report.passed and report.level_reached == 4, report.summary
    assert report.target == "mysql-sandbox"
    calls = log.read_text().splitlines()
    assert "--initialize-insecure" in calls[0] and "--no-defaults" in calls[0]
    started = calls[1].split()
    assert started[0] != "root"  # never runs as root (root starts it as the sandbox user)
    assert "--skip-networking" in started and "--local-infile=0" in started and "--mysqlx=OFF" in started
    assert any(a.startswith("--secure-file-priv=") for a in started)
    assert any(a.startswith("--plugin-dir=") for a in started)
    stopped = next(c for c in report.checks if c.name == "sandbox stopped")
    assert stopped.outcome is Outcome.PASSED
