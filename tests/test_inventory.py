"""Inventory and privilege checks against the real server."""

from __future__ import annotations

import dataclasses

import pytest

from dumpdeck.backend import mysql
from dumpdeck.backend.config import ServerConfig
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.errors import PrivilegeError


def _server(mariadb, user="root", password_env=None) -> ServerConfig:
    return ServerConfig(name="main", host=None, socket=mariadb.socket, user=user, password_env=password_env)


def test_flavour_version_and_databases(mariadb, sample_db):
    server = _server(mariadb)
    conn = mysql.connect(server)
    try:
        info = mysql.server_info(conn, server)
        names = mysql.list_databases(conn, server)
        (db,) = mysql.inventory(conn, server, [sample_db])
    finally:
        conn.close()
    assert info.flavour == "mariadb" and info.version_tuple >= (10, 6, 0) and info.log_bin
    assert sample_db in names and not set(names) & {"mysql", "sys", "information_schema", "performance_schema"}
    assert db.tables == 3 and db.views == 1 and db.bytes > 0
    assert db.engines == ("InnoDB",) and db.consistent
    assert (db.routines, db.triggers, db.events) == (2, 1, 1)


def test_non_transactional_tables_are_flagged(mariadb, make_db, config):
    make_db("mixed_engines", rows=10)
    with mariadb.connect("mixed_engines") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE legacy (id INT PRIMARY KEY, v TEXT) ENGINE=MyISAM")
        cur.execute("INSERT INTO legacy VALUES (1, 'x')")
    conn = mysql.connect(_server(mariadb))
    try:
        (db,) = mysql.inventory(conn, _server(mariadb), ["mixed_engines"])
    finally:
        conn.close()
    assert not db.consistent and db.non_transactional == ("legacy",)
    result = dump_database(config.server("main"), config.backup, "mixed_engines")
    assert any("not consistent" in w and "legacy" in w for w in result.warnings)
    assert result.manifest.non_transactional == ["legacy"]


@pytest.fixture
def select_only_user(mariadb):
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'ro'@'localhost' IDENTIFIED BY 'ro-pass'")
        cur.execute("GRANT SELECT ON *.* TO 'ro'@'localhost'")
    yield "ro"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'ro'@'localhost'")


def test_missing_privilege_is_named_before_dumping(mariadb, config, sample_db, select_only_user, monkeypatch):
    monkeypatch.setenv("DD_RO_PW", "ro-pass")
    server = dataclasses.replace(config.server("main"), user="ro", password_env="DD_RO_PW")
    with pytest.raises(PrivilegeError) as exc:
        dump_database(server, config.backup, sample_db)
    msg = str(exc.value)
    assert "SHOW VIEW" in msg and "TRIGGER" in msg and "EVENT" in msg and sample_db in msg
    assert not list(config.backup.dir.rglob("*.partial")) if config.backup.dir.exists() else True


def test_database_level_grants_are_understood(mariadb, config, make_db, monkeypatch):
    make_db("granted_db", rows=5)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'dbonly'@'localhost' IDENTIFIED BY 'pw'")
        cur.execute("GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON `granted\\_db`.* TO 'dbonly'@'localhost'")
    try:
        monkeypatch.setenv("DD_DBONLY", "pw")
        server = dataclasses.replace(config.server("main"), user="dbonly", password_env="DD_DBONLY")
        result = dump_database(server, config.backup, "granted_db")
        # No RELOAD / BINLOG MONITOR: the dump succeeds without coordinates, and says so.
        assert result.manifest.coordinates == {}
        assert any("coordinates will not be recorded" in w for w in result.warnings)
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'dbonly'@'localhost'")


def test_grant_pattern_matching():
    g = mysql.Grants(frozenset(), {"shop\\_%": frozenset({"SELECT"}), "a%b": frozenset({"ALL PRIVILEGES"})})
    assert g.has("SELECT", "shop_eu") and not g.has("SELECT", "shopXeu")
    assert g.has("EVENT", "aXYZb") and not g.has("EVENT", "other")
