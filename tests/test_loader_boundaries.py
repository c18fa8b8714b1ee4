"""The loader and the exact scanner cut a dump at the same statement boundaries.

The loader reads the stream with `SqlScanner(fast_inserts=True)`; the scope check before a restore
(L3) and the `mariadb` client read it exactly (quotes, escapes, comments). If the loader ended an
extended INSERT where the client does not (a raw newline inside a string: `'x);\\n…'`), its own
per-statement scope check would look at pieces the client never executes as such, and miss what the
client does execute. Each hostile dump here holds `);\\n` inside a string, a backquoted identifier or
a comment, with DROP DATABASE / CREATE USER / a write to another database around it.

1. the statement lists of the loader's scanner and the exact scanners are identical (any chunking);
2. against the real test server, the Loader directly, `dumpdeck restore --into NEW` and a restore-test
   change nothing outside their target: databases, accounts and grants, the victim's CHECKSUM TABLE
   (the state of the world, not the tool's verdict).

Found with them (and fixed in backend/sqlstats.py): with a read ending inside `/* ;` (a plain file whose
`/* ;` ends at 4 MiB, where both L3's batches and the loader's 1 MiB reads end), the exact scanner took
that `;` as the end of the statement, so `/* ; ' */; DROP DATABASE victim; SELECT ';` was read as a
string; L3 and the loader both missed the DROP, and `dumpdeck restore --into NEW` dropped the victim.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from dumpdeck.backend import restore
from dumpdeck.backend.errors import LoadError
from dumpdeck.backend.loader import Loader
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.sqlstats import SqlScanner, Statement
from dumpdeck.cli.main import main

from .helpers import drop_database, table_checksums

VICTIM = "loadsafe_victim"
SRC = "loadsafe_src"

HEAD = (
    b"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)\n--\n"
    b"-- Host: localhost    Database: " + SRC.encode() + b"\n"
    b"-- ------------------------------------------------------\n-- Server version\t10.11.6-MariaDB\n\n"
    b"/*!40101 SET NAMES utf8mb4 */;\n"
    b"--\n-- Table structure for table `t`\n--\n\n"
    b"DROP TABLE IF EXISTS `t`;\n"
    b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `s` text DEFAULT NULL,\n  PRIMARY KEY (`id`)\n);\n\n"
    b"--\n-- Dumping data for table `t`\n--\n\n"  # no LOCK TABLES: it would stop a DROP DATABASE by luck
)
TAIL = (
    b"\n"
    b"--\n-- Table structure for table `u`\n--\n\n"
    b"CREATE TABLE `u` (`id` int(11) NOT NULL);\n"
    b"INSERT INTO `u` VALUES (1),(2);\n"
    b"-- Dump completed on 2026-11-29 23:00:00\n"
)

V = VICTIM.encode()
# the hostile INSERTs: each holds `);\n` where the client does not end a statement
VARIANTS: dict[str, bytes] = {
    # the brief's example: the exact scan sees one INSERT, a naive cut sees INSERT + DROP DATABASE
    "string-drop": b"INSERT INTO `t` VALUES (1,'x);\nDROP DATABASE `" + V + b"`; -- ');\n",
    "string-create-user": b"INSERT INTO `t` VALUES (1,'x);\nCREATE USER `loadsafe_pwn`@`%`; -- ');\n",
    "string-other-db": b"INSERT INTO `t` VALUES (1,'x);\nINSERT INTO `" + V + b"`.`v` VALUES (666); -- ');\n",
    # the flip: a naive cut then reads the DROP inside a string, while the client executes it
    "string-flip-drop": b"INSERT INTO `t` VALUES (1,'x);\n'); DROP DATABASE `" + V + b"`; SELECT ');\n",
    "string-flip-grant": b"INSERT INTO `t` VALUES (1,'x);\n'); GRANT ALL ON *.* TO `loadsafe_pwn`@`%`; SELECT ');\n",
    "string-flip-other-db": b"INSERT INTO `t` VALUES (1,'x);\n'); DELETE FROM `" + V + b"`.`v`; SELECT ');\n",
    "dquote-flip": b'INSERT INTO `t` VALUES (1,"x);\n"); DROP DATABASE `' + V + b'`; SELECT ");\n',
    "backquote-drop": b"INSERT INTO `t` (`id`, `x);\nDROP DATABASE `" + V + b"`; -- `) VALUES (1);\n",
    "block-comment-drop": b"INSERT INTO `t` VALUES (1,'a') /* );\nDROP DATABASE `" + V + b"`; */;\n",
    "line-comment-drop": b"INSERT INTO `t` VALUES (1,'a') -- );\nDROP DATABASE `" + V + b"`;\n",
    # fed in two pieces cut after `/* ;` (see CUT): a scanner that takes that `;` as the end then reads
    # the DROP inside a string, while the client, with the whole comment, executes it
    "block-comment-cut-flip": b"INSERT INTO `t` VALUES (1,'a') /* ; ' */; DROP DATABASE `" + V + b"`; SELECT ';\n",
    "escaped-quote-flip": b"INSERT INTO `t` VALUES (1,'x\\');\n'); DROP DATABASE `" + V + b"`; SELECT ');\n",
}
BENIGN = b"INSERT INTO `t` VALUES (7,'ok'),(8,'fine; really');\n"


def dump(variant: str) -> bytes:
    return HEAD + BENIGN + VARIANTS[variant] + BENIGN.replace(b"(7,", b"(9,").replace(b"(8,", b"(10,") + TAIL


def pieces(data: bytes) -> list[bytes]:
    """100-byte pieces, or two cut right after `/* ;` where the dump has one (CUT)."""
    k = data.find(CUT)
    if k >= 0:
        return [data[: k + len(CUT)], data[k + len(CUT) :]]
    return [data[i : i + 100] for i in range(0, len(data), 100)]


CUT = b"/* ;"


def statements(data: bytes, scanner: SqlScanner, chunk: int) -> list[tuple[str, bytes]]:
    return fed([data[i : i + chunk] for i in range(0, len(data), chunk)], scanner)


def fed(chunks: list[bytes], scanner: SqlScanner) -> list[tuple[str, bytes]]:
    """(kind, raw) of every statement, and of the unterminated rest, of `chunks` fed in that order."""
    out = []
    for c in chunks:
        out += [(s.kind, s.raw) for s in scanner.feed(c) if isinstance(s, Statement)]
    out += [(s.kind, s.raw) for s in scanner.finish() if isinstance(s, Statement)]
    if scanner.unterminated is not None:
        out.append(("unterminated", scanner.unterminated.raw))
    return out


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_loader_cuts_where_the_exact_scanner_cuts(variant):
    data = dump(variant)
    exact = statements(data, SqlScanner(), len(data))
    for chunk in (len(data), 1 << 16, 97, 7, 1):
        assert statements(data, SqlScanner(stats=True), chunk) == exact, f"L3 scanner, chunk {chunk}"
        assert statements(data, SqlScanner(fast_inserts=True), chunk) == exact, f"loader scanner, chunk {chunk}"
    for scanner in (SqlScanner(stats=True), SqlScanner(fast_inserts=True)):
        assert fed(pieces(data), scanner) == exact


# --------------------------------------------------------------------------- the world


def world(mariadb) -> dict[str, object]:
    """Databases, accounts with their hashes, every grant table row, the victim's tables and checksums."""
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA")
        dbs = sorted(r[0] for r in cur.fetchall())
        cur.execute("SELECT User, Host, Priv FROM mysql.global_priv ORDER BY User, Host")
        users = cur.fetchall()
        cur.execute("SELECT * FROM mysql.db ORDER BY User, Host, Db")
        db_grants = cur.fetchall()
        cur.execute("SELECT * FROM mysql.tables_priv ORDER BY User, Host, Db, Table_name")
        table_grants = cur.fetchall()
        victim = table_checksums(mariadb, VICTIM) if VICTIM in dbs else None
    # the scratch databases of a restore-test are dropped at its end; the restored target is expected
    return {"dbs": dbs, "users": users, "db_grants": db_grants, "table_grants": table_grants, "victim": victim}


@pytest.fixture
def victim(mariadb):
    drop_database(mariadb, VICTIM)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(VICTIM)}")
        cur.execute(f"CREATE TABLE {quote_ident(VICTIM)}.v (id INT PRIMARY KEY)")
        cur.execute(f"INSERT INTO {quote_ident(VICTIM)}.v VALUES (1),(2),(3)")
        cur.execute("DROP USER IF EXISTS 'loadsafe_pwn'@'%'")
    yield VICTIM
    drop_database(mariadb, VICTIM)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'loadsafe_pwn'@'%'")


def without(w: dict[str, object], *dbs: str) -> dict[str, object]:
    return {**w, "dbs": [d for d in w["dbs"] if d not in dbs]}  # type: ignore[union-attr]


@pytest.mark.parametrize("parallel", [1, 2])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_the_loader_directly_changes_nothing_outside_its_database(mariadb, config, victim, variant, parallel):
    target = f"loadsafe_direct_{parallel}"
    drop_database(mariadb, target)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {quote_ident(target)}")
    before = world(mariadb)
    try:
        data = dump(variant)
        with contextlib.suppress(LoadError):  # refused or failed: either is fine, the world decides
            Loader(config.server("main"), target, parallel=parallel, chunk_bytes=64, batch_bytes=64).load(pieces(data))
        assert world(mariadb) == before
    finally:
        drop_database(mariadb, target)


def legacy_file(tmp_path: Path, variant: str) -> Path:
    directory = tmp_path / "legacy"
    directory.mkdir(exist_ok=True)
    path = directory / f"{SRC}_20261129_230000.sql"
    path.write_bytes(dump(variant))
    return path


def test_the_harness_reaches_the_load(mariadb, write_config, config, tmp_path, capsys):
    """Without the hostile INSERT the same file restores (so the cases below are refused for what they hold)."""
    path = tmp_path / f"{SRC}_20261129_230002.sql"
    path.write_bytes(HEAD + BENIGN + TAIL)
    target = "loadsafe_control"
    drop_database(mariadb, target)
    try:
        rc = main(["-c", str(write_config()), "restore", str(path), "--into", target])
        assert rc == 0, capsys.readouterr()
        with mariadb.connect(target) as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM t")
            assert cur.fetchone()[0] == 2
        assert restore.restore_test(path, config, "same", record=False).passed
    finally:
        drop_database(mariadb, target)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_restore_into_a_new_name_changes_nothing_outside_it(mariadb, write_config, victim, variant, tmp_path):
    cfg = write_config()
    target = "loadsafe_new"
    drop_database(mariadb, target)
    before = world(mariadb)
    try:
        main(["-c", str(cfg), "restore", str(legacy_file(tmp_path, variant)), "--into", target])
        assert without(world(mariadb), target) == before
    finally:
        drop_database(mariadb, target)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_restore_test_changes_nothing(mariadb, config, victim, variant, tmp_path):
    before = world(mariadb)
    restore.restore_test(legacy_file(tmp_path, variant), config, "same", record=False)
    assert world(mariadb) == before


def test_generated_hostile_dumps_cut_alike_at_every_chunking():
    """The differential test's hostile generator: the loader's scanner, fed in pieces, cuts where the exact
    scanner cuts with the whole stream in hand (chunk boundaries inside a comment or string change nothing)."""
    import random

    from .test_scan_differential import _cuts, a_dump

    rng = random.Random("loader-boundaries")
    for _ in range(40):
        data = a_dump(rng, tables=rng.randrange(1, 3), inserts=rng.randrange(1, 5), hostile=0.6)
        whole = statements(data, SqlScanner(), len(data) + 1)
        for pieces in (2, 5, 40):
            chunks = _cuts(rng, data, pieces)
            for scanner in (SqlScanner(fast_inserts=True), SqlScanner(stats=True)):
                assert fed(chunks, scanner) == whole


def aligned_dump() -> bytes:
    """block-comment-cut-flip with `/* ;` ending exactly at 4 MiB: where a plain file's decoded reads (1 MiB)
    end for the loader, and where L3's batches (StatsCollector, 4 MiB) end too."""
    data = dump("block-comment-cut-flip")
    k = data.find(CUT) + len(CUT)
    at = data.find(b"INSERT INTO `t` VALUES (1,'a')")
    pad = b"-- " + b"x" * ((4 << 20) - k - 4) + b"\n"
    out = data[:at] + pad + data[at:]
    assert out.find(CUT) + len(CUT) == 4 << 20
    return out


@pytest.mark.parametrize("how", ["restore", "restore-test"])
def test_a_read_that_ends_inside_a_comment_changes_nothing(mariadb, write_config, config, victim, how, tmp_path):
    path = tmp_path / f"{SRC}_20261129_230001.sql"
    path.write_bytes(aligned_dump())
    target = "loadsafe_aligned"
    drop_database(mariadb, target)
    before = world(mariadb)
    try:
        if how == "restore":
            main(["-c", str(write_config()), "restore", str(path), "--into", target])
        else:
            restore.restore_test(path, config, "same", record=False)
        assert without(world(mariadb), target) == before
    finally:
        drop_database(mariadb, target)
