"""Every column's bytes come back as they were stored, whatever its character set.

dumpdeck dumps with `--default-character-set=binary` (as mydumper does): the server sends each
value as stored, the dump tool escapes it byte by byte (half the CPU of escaping utf8mb4), and the
dump's `SET NAMES binary` makes the load put the same bytes back. These tests load real dumps into
new databases, by `zstd -dc | mariadb`, by `dumpdeck restore` and by the parallel dump, and compare
HEX() of every value, the table definitions and what the view and trigger return with the source.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import pardump
from dumpdeck.backend.dump import dump_charset, dump_database
from dumpdeck.backend.mysql import non_ascii_definition, quote_ident
from dumpdeck.backend.restore import restore_test
from dumpdeck.backend.restore_real import RestoreRequest, restore
from dumpdeck.backend.verify import verify_file

from .helpers import drop_database, restore_into, show_creates, table_checksums

# (column, type, values as bytes in the column's own character set)
COLUMNS = [
    ("c_latin1", "VARCHAR(40) CHARACTER SET latin1", ["café".encode("latin1"), bytes(range(0xA0, 0xB8))]),
    ("c_utf8mb3", "VARCHAR(40) CHARACTER SET utf8mb3", ["naïve – ‘quoted’".encode()]),
    ("c_utf8mb4", "VARCHAR(40) CHARACTER SET utf8mb4", ["emoji 🦆 and 漢字".encode(), b"a'b\\c\"d\n\r\t\x1a"]),
    # Shift-JIS and GBK: the second byte of these characters is 0x5C, a backslash in ASCII
    ("c_sjis", "VARCHAR(40) CHARACTER SET sjis", ["ソ表能".encode("shift_jis"), "予\\".encode("shift_jis")]),
    ("c_gbk", "VARCHAR(40) CHARACTER SET gbk", ["稞丂".encode("gbk")]),
    ("c_cp1251", "VARCHAR(40) CHARACTER SET cp1251", ["Привет".encode("cp1251")]),
    ("c_blob", "BLOB", [bytes(range(256)), b"\x00'\\\x1a" * 10]),
    ("c_varbinary", "VARBINARY(64)", [bytes(range(0xC0, 0x100))]),
]


@pytest.fixture
def charsets_db(mariadb):
    db = f"charsets_{time.monotonic_ns() % 10**8}"
    drop_database(mariadb, db)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(db)} CHARACTER SET utf8mb4")
        cur.execute(f"USE {quote_ident(db)}")
        cols = ", ".join(f"{name} {kind}" for name, kind, _ in COLUMNS)
        # a comment and a table name outside ASCII (stored as UTF-8 whatever the connection says)
        cur.execute(
            f"CREATE TABLE `tëst ☃` (id INT PRIMARY KEY, {cols}, c_default VARCHAR(10) CHARACTER SET latin1 "
            "DEFAULT 'deja' COMMENT 'défaut', c_enum ENUM('a','o','u') CHARACTER SET latin1) COMMENT 'Grüße ☃'"
        )
        width = max(len(values) for _, _, values in COLUMNS)
        for row in range(width):
            names = [name for name, _, values in COLUMNS if row < len(values)]
            params = [values[row] for _, _, values in COLUMNS if row < len(values)]
            # each value as its bytes, converted by the server into the column's character set
            # from that same set (a no-op: what is stored is exactly these bytes)
            holders = ", ".join(
                "%s" if kind.startswith(("BLOB", "VARBINARY")) else f"CONVERT(%s USING {kind.split()[-1]})"
                for name, kind, _ in COLUMNS
                if name in names
            )
            cur.execute(
                f"INSERT INTO `tëst ☃` (id, c_enum, {', '.join(names)}) VALUES (%s, 'o', {holders})",
                [row, *params],
            )
        cur.execute("CREATE TABLE log (msg VARCHAR(40) CHARACTER SET latin1) ENGINE=InnoDB")
        cur.execute("CREATE TRIGGER `trig_ü` AFTER INSERT ON `tëst ☃` FOR EACH ROW INSERT INTO log VALUES ('ñandú')")
        cur.execute("CREATE VIEW `vüe` AS SELECT id, c_latin1, 'Ωmega' AS greek FROM `tëst ☃`")
    yield db
    drop_database(mariadb, db)


def stored_bytes(mariadb, db: str) -> dict:
    """HEX() of every value, the definitions, what the view returns and what the trigger writes."""
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        names = [name for name, _, _ in COLUMNS] + ["c_default", "c_enum"]
        cur.execute(f"SELECT id, {', '.join(f'HEX({n})' for n in names)} FROM `tëst ☃` ORDER BY id")
        rows = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT HEX(c_latin1), HEX(greek) FROM `vüe` ORDER BY id")
        view = [tuple(r) for r in cur.fetchall()]
        cur.execute("SELECT HEX(msg) FROM log")
        before = len(cur.fetchall())
        cur.execute("INSERT INTO `tëst ☃` (id) VALUES (1000)")  # fires the trigger; the default fills c_default
        cur.execute("SELECT HEX(msg) FROM log")
        fired = [r[0] for r in cur.fetchall()][before:]
        cur.execute("SELECT HEX(c_default) FROM `tëst ☃` WHERE id = 1000")
        default = cur.fetchone()[0]
        cur.execute("DELETE FROM `tëst ☃` WHERE id = 1000")
        cur.execute("DELETE FROM log")
    return {"rows": rows, "view": view, "trigger": fired, "default": default, "creates": show_creates(mariadb, db)}


def loads_back(mariadb, path, db: str, suffix: str) -> dict:
    """What `zstd -dc | mariadb` of `path` into a new database stores (the database then dropped)."""
    target = db + suffix
    try:
        restore_into(mariadb, path, target)
        return stored_bytes(mariadb, target)
    finally:
        drop_database(mariadb, target)


def _expected_first_row():
    return tuple(values[0].hex().upper() for _, _, values in COLUMNS)


def test_the_dump_is_binary_and_every_byte_comes_back_through_the_mariadb_client(mariadb, config, charsets_db):
    before = stored_bytes(mariadb, charsets_db)
    assert before["rows"][0][1 : 1 + len(COLUMNS)] == _expected_first_row()  # the fixture stored what it meant to
    assert before["trigger"] == ["ñandú".encode("latin1").hex().upper()]
    result = dump_database(config.server("main"), config.backup, charsets_db)
    sql = subprocess.run(["zstd", "-dc", str(result.path)], capture_output=True, check=True).stdout
    assert b"/*!40101 SET NAMES binary */;" in sql[:4096]
    assert "--default-character-set=binary" in manifest_mod.load(result.path).options
    target = charsets_db + "_cli"
    try:
        restore_into(mariadb, result.path, target)  # zstd -dc | mariadb
        assert stored_bytes(mariadb, target) == before
        assert table_checksums(mariadb, target) == table_checksums(mariadb, charsets_db)
    finally:
        drop_database(mariadb, target)
    rep = verify_file(result.path, level=3)
    assert rep.passed, rep.summary
    rt = restore_test(result.path, config, "same")
    assert rt.passed, rt.summary


def test_dumpdeck_restore_and_the_parallel_dump_keep_every_byte(mariadb, config, charsets_db, monkeypatch):
    before = stored_bytes(mariadb, charsets_db)
    path = dump_database(config.server("main"), config.backup, charsets_db).path
    target = charsets_db + "_r"
    try:
        res = restore(config, RestoreRequest(path, "main", target))
        assert res.ok
        assert stored_bytes(mariadb, target) == before
    finally:
        drop_database(mariadb, target)
    monkeypatch.setattr(pardump, "MIN_BYTES", 0)
    par = dump_database(
        config.server("main"), dataclasses.replace(config.backup, threads=3, chunk_rows=1), charsets_db
    ).path
    assert "workers" in manifest_mod.load(par).tool
    assert loads_back(mariadb, par, charsets_db, "_p") == before


def test_a_definition_with_a_literal_outside_ascii_is_dumped_in_utf8mb4(mariadb, config, charsets_db, monkeypatch):
    """mariadb-dump leaves the connection binary around CREATE TABLE: a latin1 column's DEFAULT 'déjà'
    and ENUM('ä', …) would come back as their UTF-8 bytes. Such a database is dumped as before."""
    with mariadb.connect(charsets_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE `tëst ☃` SET c_enum = NULL")
        cur.execute(
            "ALTER TABLE `tëst ☃` MODIFY c_default VARCHAR(10) CHARACTER SET latin1 DEFAULT 'déjà', "
            "MODIFY c_enum ENUM('ä','ö','ü') CHARACTER SET latin1"
        )
        cur.execute("UPDATE `tëst ☃` SET c_enum = 'ö'")
        # Shift-JIS 0x5C on its own (a yen sign or a backslash, by mapping) does not survive the trip
        # through utf8mb4 (it comes back as 0x815F, a full-width backslash): one more reason binary is
        # the default. The utf8mb4 dump is checked on the rest.
        cur.execute("UPDATE `tëst ☃` SET c_sjis = CONVERT(%s USING sjis) WHERE id = 1", ("予".encode("shift_jis"),))
    before = stored_bytes(mariadb, charsets_db)
    assert before["default"] == "déjà".encode("latin1").hex().upper()
    assert before["rows"][0][-1] == "ö".encode("latin1").hex().upper()
    monkeypatch.setattr(pardump, "MIN_BYTES", 0)
    for backup in (config.backup, dataclasses.replace(config.backup, threads=3, chunk_rows=1)):
        path = dump_database(config.server("main"), backup, charsets_db).path
        options = manifest_mod.load(path).options
        assert "--default-character-set=utf8mb4" in options and "--hex-blob" in options
        assert loads_back(mariadb, path, charsets_db, "_u") == before


TOOL = shutil.which("mariadb-dump") or "mariadb-dump"


def test_every_kind_of_literal_outside_ascii_in_a_definition_is_found(mariadb):
    db = f"defs_{time.monotonic_ns() % 10**8}"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(db)}")
    try:
        cases = [
            ("c", "CREATE TABLE c (a VARCHAR(9) CHARACTER SET latin1, CHECK (a <> 'é'))", "c."),
            ("g", "CREATE TABLE g (a INT, b VARCHAR(9) AS (CONCAT(a, 'ü')) VIRTUAL)", "g.b"),
            ("p", "CREATE TABLE p (a VARCHAR(9)) PARTITION BY LIST COLUMNS (a) (PARTITION p0 VALUES IN ('ñ'))", "p.p0"),
            ("s", "CREATE TABLE s (a SET('ø', 'x') CHARACTER SET latin1)", "s.a"),
        ]
        with mariadb.connect(db) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE plain (id INT PRIMARY KEY, t TEXT COMMENT 'ça va') COMMENT 'naïve'")
            assert dump_charset(conn, db, TOOL) == "binary"  # comments are stored as UTF-8: not counted
            for table, ddl, where in cases:
                cur.execute(ddl)
                why = non_ascii_definition(conn, db) or ""
                assert why.startswith(f"the definition of {where}") and "outside ASCII" in why, (table, why)
                assert dump_charset(conn, db, TOOL) == "utf8mb4"
                cur.execute(f"DROP TABLE {table}")
            assert dump_charset(conn, db, TOOL) == "binary"
    finally:
        drop_database(mariadb, db)


def test_mysqls_dump_tool_dumps_in_utf8mb4(mariadb, charsets_db, tmp_path):
    """Binary output was run with MariaDB's tool only: a tool that says it is MySQL's keeps utf8mb4."""
    fake = tmp_path / "mysqldump"
    fake.write_text("#!/bin/sh\necho 'mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)'\n")
    fake.chmod(0o755)
    with mariadb.connect(charsets_db) as conn:
        assert dump_charset(conn, charsets_db, TOOL) == "binary"
        assert dump_charset(conn, charsets_db, str(fake)) == "utf8mb4"
