"""The verification ladder L1–L3 against real dumps made by the engine, and broken copies of them."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import sqlstats
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import BackupConfig, ServerConfig
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.verify import verify_file

from .helpers import create_sample_database, drop_database

CODECS = ("zstd", "gzip", "xz", "none")


@pytest.fixture(scope="module")
def dumps(mariadb, tmp_path_factory):
    """One real dump per codec of a small sample database: {codec: path}."""
    base = tmp_path_factory.mktemp("vdumps")
    db = f"vt_{os.getpid()}"
    create_sample_database(mariadb, db, rows=60)
    server = ServerConfig(name="main", host=None, socket=mariadb.socket, user="root")
    out = {}
    try:
        for codec in CODECS:
            backup = BackupConfig(dir=base / codec, compression=codec, level=1 if codec == "xz" else 3)
            out[codec] = dump_database(server, backup, db).path
    finally:
        drop_database(mariadb, db)
    return out


def copy_dump(src: Path, dest_dir: Path, manifest: bool = True) -> Path:
    dest = dest_dir / src.name
    shutil.copy2(src, dest)
    if manifest:
        shutil.copy2(manifest_mod.manifest_path(src), manifest_mod.manifest_path(dest))
    return dest


def refit_manifest(path: Path, **fields) -> None:
    """Make the manifest agree with the (edited) file, so only L2/L3 can catch the damage."""
    m = manifest_mod.load(path)
    data = path.read_bytes()
    m.sha256 = hashlib.sha256(data).hexdigest()
    m.bytes_stored = len(data)
    for k, v in fields.items():
        setattr(m, k, v)
    manifest_mod.save(m, path)


def failing(report):
    return report.failed_checks


@pytest.mark.parametrize("codec", CODECS)
def test_good_dump_passes_every_level_and_is_recorded(dumps, tmp_path, codec):
    path = copy_dump(dumps[codec], tmp_path)
    seen = []
    report = verify_file(path, 3, on_check=seen.append)
    assert report.passed and report.level_reached == 3, report.summary
    assert [c.name for c in seen] == [c.name for c in report.checks]  # streamed, in order
    assert [c.level for c in seen] == sorted(c.level for c in seen)
    names = {c.name for c in report.checks}
    assert {"file exists", "sha256", "header", "stream decodes", "footer", "tables", "rows", "scope"} <= names
    m = manifest_mod.load(path)
    assert m.verified_level == 3 and m.verifications[-1].passed
    assert {t.name: t.exact_rows for t in m.tables} == {"customers": 60, "orders": 120, "odd name": 10}


def test_levels_stop_where_asked(dumps, tmp_path):
    path = copy_dump(dumps["zstd"], tmp_path)
    report = verify_file(path, 1, record=False)
    assert report.passed and {c.level for c in report.checks} == {1}
    assert not manifest_mod.load(path).verifications


@pytest.mark.parametrize("codec", CODECS)
def test_truncated_mid_stream(dumps, tmp_path, codec):
    path = copy_dump(dumps[codec], tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    # with its manifest: L1 already sees the file changed and shrank
    report = verify_file(path, 3)
    assert not report.passed and report.level_reached == 0
    bad = failing(report)[0]
    assert bad.name == "sha256" and "truncated" in bad.evidence
    assert manifest_mod.load(path).verifications[-1].passed is False
    # without a manifest (as if it never got one): the stream itself must give it away at L2
    manifest_mod.manifest_path(path).unlink()
    report = verify_file(path, 3)
    assert report.outcome is Outcome.FAILED and report.level_reached == 0
    sha = next(c for c in report.checks if c.name == "sha256")
    assert sha.outcome is Outcome.NOT_CHECKED  # nothing to compare with: never a pass tick
    bad = failing(report)[0]
    assert bad.level == 2
    if codec == "none":
        assert bad.name == "footer" and "footer missing" in bad.evidence
    else:
        assert bad.name == "stream decodes" and "truncated or corrupt" in bad.evidence and codec in bad.evidence


@pytest.mark.parametrize("codec", ["zstd", "gzip"])
def test_one_flipped_byte(dumps, tmp_path, codec):
    path = copy_dump(dumps[codec], tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    report = verify_file(path, 3)
    assert report.level_reached == 0 and failing(report)[0].name == "sha256"
    assert "mismatch" in failing(report)[0].evidence
    refit_manifest(path)  # the checksum agrees now: decoding must catch it
    report = verify_file(path, 3)
    assert not report.passed and report.level_reached == 1
    bad = failing(report)[0]
    assert bad.level == 2 and bad.name == "stream decodes" and "does not decode" in bad.evidence


def test_uncompressed_footer_cut(dumps, tmp_path):
    path = copy_dump(dumps["none"], tmp_path)
    data = path.read_bytes()
    cut = data[: data.rindex(b"-- Dump completed")]
    path.write_bytes(cut)
    refit_manifest(path, bytes_raw=len(cut))
    report = verify_file(path, 3)
    assert not report.passed and report.level_reached == 1
    bad = failing(report)[0]
    assert (bad.level, bad.name) == (2, "footer") and "incomplete" in bad.evidence


def test_empty_file(dumps, tmp_path):
    path = copy_dump(dumps["zstd"], tmp_path)
    path.write_bytes(b"")
    report = verify_file(path, 3)
    assert not report.passed and report.level_reached == 0
    assert failing(report)[0].name == "file exists" and "empty" in failing(report)[0].evidence


def test_missing_file(tmp_path):
    report = verify_file(tmp_path / "nope.sql.zst", 3)
    assert not report.passed and "does not exist" in report.checks[0].evidence


def test_manifest_sha_mismatch(dumps, tmp_path):
    path = copy_dump(dumps["gzip"], tmp_path)
    m = manifest_mod.load(path)
    m.sha256 = "0" * 64
    manifest_mod.save(m, path)
    report = verify_file(path, 3)
    assert report.level_reached == 0
    bad = failing(report)[0]
    assert bad.name == "sha256" and "mismatch" in bad.evidence and "manifest 0000" in bad.evidence


def test_corrupt_manifest_fails_level_1(dumps, tmp_path):
    path = copy_dump(dumps["zstd"], tmp_path)
    manifest_mod.manifest_path(path).write_text("{not json")
    report = verify_file(path, 3)
    assert report.level_reached == 0 and failing(report)[0].name == "manifest"
    assert "not valid JSON" in failing(report)[0].evidence


def test_wrong_codec_content(dumps, tmp_path):
    path = tmp_path / "x.sql.zst"
    shutil.copy2(dumps["gzip"], path)
    report = verify_file(path, 2)
    assert not report.passed and "content is gzip" in failing(report)[0].evidence


def test_not_a_dump_header(tmp_path):
    path = tmp_path / "notes.sql"
    path.write_bytes(b"SELECT 1;\n" * 100 + b"-- Dump completed\n")
    report = verify_file(path, 3)
    assert failing(report)[0].name == "header" and "not a MySQL/MariaDB dump header" in failing(report)[0].evidence


def test_mysql_header_without_manifest_passes(tmp_path):
    path = tmp_path / "shop.sql"
    path.write_bytes(
        b"-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)\n--\n"
        b"/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `t` (a int);\n"
        b"INSERT INTO `t` VALUES (1),(2),(3);\n-- Dump completed on 2026-01-01  2:00:00\n"
    )
    # level 1 alone proves nothing for it yet: not checked, never passed
    only = verify_file(path, 1)
    assert only.outcome is Outcome.NOT_CHECKED and only.level_reached == 0 and "not checked" in only.summary
    report = verify_file(path, 3)
    # the sha256 could not be checked (no manifest), but L2 decoding the whole stream proves the file
    assert report.passed and report.level_reached == 3, report.summary
    sha = next(c for c in report.checks if c.name == "sha256")
    assert sha.outcome is Outcome.NOT_CHECKED and sha.evidence.startswith("no manifest to compare with")
    assert report.stats.tables == {"t": 3}
    # that proof is recorded beside it (`.verify.json`): level 1 now compares with the digest it recorded
    history = manifest_mod.load_history(path)
    assert history is not None and history.sha256 == report.sha256
    assert [v.outcome for v in history.verifications] == [Outcome.NOT_CHECKED, Outcome.PASSED]
    again = verify_file(path, 1)
    assert again.passed and next(c for c in again.checks if c.name == "sha256").passed
    entry = scan(tmp_path).entries[0]
    assert entry.manifest is None and entry.verified_level == 3 and entry.last_result is Outcome.PASSED
    # one changed byte: level 1 fails against the recorded digest, the catalog shows it failed
    data = bytearray(path.read_bytes())
    data[-30] ^= 0x01
    path.write_bytes(bytes(data))
    bad = verify_file(path, 1)
    assert bad.failed and "changed since it was proven whole" in bad.failed_checks[0].evidence
    entry = scan(tmp_path).entries[0]
    assert entry.verified_level == 0 and entry.last_result is Outcome.FAILED


def test_use_other_db_fails_level_3(dumps, tmp_path):
    path = copy_dump(dumps["none"], tmp_path)
    data = path.read_bytes()
    i = data.index(b"--\n-- Table structure for table")
    data = data[:i] + b"USE `other_db`;\n" + data[i:]
    path.write_bytes(data)
    refit_manifest(path, bytes_raw=len(data))
    report = verify_file(path, 3)
    assert report.level_reached == 2
    bad = failing(report)[0]
    assert bad.name == "scope" and "USE" in bad.evidence and "other_db" in bad.evidence


def test_table_removed_fails_level_3(dumps, tmp_path):
    path = copy_dump(dumps["zstd"], tmp_path)
    sql = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    start = sql.index(b"--\n-- Table structure for table `odd name`")
    end = sql.index(b"--\n-- Table structure for table `orders`")
    sql = sql[:start] + sql[end:]
    path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=sql, capture_output=True, check=True).stdout)
    refit_manifest(path, bytes_raw=len(sql))
    report = verify_file(path, 3)
    assert report.level_reached == 2
    bad = failing(report)[0]
    assert bad.name == "tables" and "`odd name`" in bad.evidence and "missing from the dump" in bad.evidence


# --------------------------------------------------------------------------- sqlstats unit checks


def test_tuple_counting_respects_quotes_and_escapes():
    sql = (
        b"CREATE TABLE `t` (a int, b text);\n"
        b"INSERT INTO `t` VALUES (1,'a),(b'),(2,'it\\'s; fine'),(3,\"dq),(\"),(4,'x''y'),(5,'back\\\\'),(6,NULL);\n"
        b"INSERT INTO `t` (`a`,`b`) VALUES (7,'(('),(8,CONCAT('a','b'));\n"
    )
    s = sqlstats.scan_bytes(sql, chunk=7)
    assert s.tables == {"t": 8} and s.inserts == {"t": 2} and not s.unterminated and not s.scope_problems


def test_delimiter_blocks_comments_and_objects():
    sql = (
        b"/*M!999999\\- enable the sandbox mode */ \n-- MariaDB dump 10.19\n-- Host: x  Database: it's `odd\n"
        b"/*!40101 SET NAMES utf8mb4 */;\n# hash comment with ' quote\n"
        b"CREATE TABLE `a;b` (x int) COMMENT 'semi; colon';\n"
        b"DELIMITER ;;\n/*!50003 CREATE*/ /*!50017 DEFINER=`root`@`localhost`*/ /*!50003 TRIGGER tr BEFORE INSERT "
        b"ON `a;b` FOR EACH ROW BEGIN SET NEW.x = 1; SET NEW.x = 2; END */;;\n"
        b"CREATE DEFINER=`root`@`%` PROCEDURE `p`() BEGIN SELECT ';'; END ;;\nDELIMITER ;\n"
        b"/*!50001 CREATE ALGORITHM=UNDEFINED */ /*!50013 DEFINER=`root`@`localhost` SQL SECURITY DEFINER */ "
        b"/*!50001 VIEW `v` AS select 1 AS `1` */;\n"
        b"CREATE DEFINER=`root`@`localhost` FUNCTION `f`(x INT) RETURNS int RETURN x;\n"
    )
    s = sqlstats.scan_bytes(sql, chunk=5)
    assert s.tables == {"a;b": 0}
    assert (s.triggers, s.procedures, s.views, s.functions) == (["tr"], ["p"], ["v"], ["f"])
    assert not s.unterminated and not s.scope_problems


@pytest.mark.parametrize(
    "stmt",
    [
        b"USE `other`;",
        b"CREATE DATABASE `x`;",
        b"/*!40000 DROP DATABASE IF EXISTS `x`*/;",
        b"INSERT INTO `other`.`t` VALUES (1);",
        b"DROP TABLE IF EXISTS `other`.`t`;",
        b"UPDATE other.t SET a=1;",
        b"GRANT ALL ON *.* TO 'x'@'%';",
        b"SET GLOBAL read_only=1;",
        b"CREATE TABLE `o`.`t` (a int);",
    ],
)
def test_scope_problems_detected(stmt):
    s = sqlstats.scan_bytes(b"CREATE TABLE `t` (a int);\n" + stmt + b"\n")
    assert s.scope_problems and "line 2" in s.scope_problems[0]


def test_unterminated_statement_reported():
    s = sqlstats.scan_bytes(b"CREATE TABLE `t` (a int);\nINSERT INTO `t` VALUES (1,'abc")
    assert s.unterminated and "line 2" in s.unterminated


def test_legacy_gzip_dump_verifies(dumps, tmp_path):
    path = tmp_path / "shop_20250101_020000.sql.gz"
    path.write_bytes(
        gzip.compress(subprocess.run(["zstd", "-dc", str(dumps["zstd"])], capture_output=True, check=True).stdout)
    )
    report = verify_file(path, 3)
    assert report.passed and report.recorded  # in its history sidecar, not a manifest
    assert not manifest_mod.manifest_path(path).exists()
    assert json.dumps(report.to_dict())  # serialisable


def test_an_insert_whose_scanned_head_ends_inside_an_escape_is_not_a_client_command():
    # hazard() reads an INSERT's first 2 KiB: a cut between `\` and the byte it escapes was read as `\'`
    # outside a string, so L3 failed and a restore refused a plain dump (rows like restore_load's)
    row = b",(1,'it\\'s \\\"row\\\" 9\\\\')"
    for pad in range(len(row) + 1):
        stmt = b"INSERT INTO `t` VALUES (0,'" + b"x" * pad + b"')" + row * 100 + b";\n"
        s = sqlstats.scan_bytes(b"CREATE TABLE `t` (a int, b text);\n" + stmt)
        assert s.tables == {"t": 101} and s.scope_problems == [], pad
    assert sqlstats.hazard("insert", b"INSERT INTO `t` VALUES (1,'a'),\\! ls") is not None  # still seen outside
