"""Restore-tests (level 4) on the same server and in a sandbox, refusals, cleanup, the parallel loader."""

from __future__ import annotations

import gzip
import os
import subprocess
from pathlib import Path

import pytest

from dumpdeck.backend import loader as loader_mod
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import restore
from dumpdeck.backend.dump import dump_database

from .helpers import show_creates, table_checksums
from .test_verify import copy_dump, refit_manifest


def scratch_dbs(mariadb) -> list[str]:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'dumpdeck\\_rt\\_%'")
        return [r[0] for r in cur.fetchall()]


def dump_of(config, db: str, compression: str = "zstd") -> Path:
    import dataclasses

    backup = dataclasses.replace(config.backup, compression=compression)
    return dump_database(config.server("main"), backup, db).path


def test_restore_same_server_passes_and_leaves_the_source_untouched(mariadb, config, sample_db):
    before = table_checksums(mariadb, sample_db)
    path = dump_of(config, sample_db)
    seen = []
    report = restore.restore_test(path, config, "same", on_check=seen.append)
    assert report.passed and report.level_reached == 4, report.summary
    assert [c.name for c in seen] == [c.name for c in report.checks]
    names = [c.name for c in report.checks if c.level == 4]
    assert names[:2] == ["confinement", "load"] and names[-1] == "scratch dropped"
    confinement = next(c for c in report.checks if c.name == "confinement").evidence
    assert "binary log off" in confinement and "temporary account 'dumpdeck_rt_" in confinement
    assert table_checksums(mariadb, sample_db) == before
    assert scratch_dbs(mariadb) == []
    m = manifest_mod.load(path)
    assert m.verified_level == 4 and m.verifications[-1].target.startswith("same")
    rows = next(c for c in m.verifications[-1].checks if c["name"] == "row counts")
    assert rows["tables"]["orders"]["rows"] == 400 and rows["tables"]["customers"]["checksum"] == before["customers"][1]
    # L2–L3 are not redone for the same sha256
    again = restore.restore_test(path, config, "same")
    assert again.passed and any(c.name == "levels 2–3" for c in again.checks)


def test_restore_in_a_sandbox_starts_and_stops_its_own_server(mariadb, config, sample_db):
    """The sandbox is confined: an unprivileged user, no TCP, secure_file_priv, no local infile, no symlinks."""
    path = dump_of(config, sample_db)
    seen: dict[int, dict] = {}

    def watch(check):
        if check.name != "load":
            return
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                argv = (p / "cmdline").read_bytes().split(b"\0")
                uid = p.stat().st_uid
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            ours = ppid == os.getpid() and any(
                b"dumpdeck-rt-sandbox-" in a for a in argv
            )  # not the fixture, not another run's
            if argv and argv[0].endswith(b"mariadbd") and ours:
                seen[int(p.name)] = {"argv": argv, "uid": uid}

    report = restore.restore_test(path, config, "sandbox", on_check=watch)
    assert report.passed, report.summary
    assert report.target == "sandbox" and len(seen) == 1, "one sandbox mariadbd ran during the load"
    ((pid, proc),) = seen.items()
    assert proc["uid"] != 0, "the sandbox mariadbd never runs as root"
    args = {a.decode() for a in proc["argv"]}
    assert {"--skip-networking", "--local-infile=0", "--symbolic-links=0"} <= args
    assert any(a.startswith("--secure-file-priv=/") for a in args)
    assert not any(a.startswith("--port") for a in args)
    assert not Path(f"/proc/{pid}").exists() or b"Z" in Path(f"/proc/{pid}/stat").read_bytes().split(b")")[1][:3]
    assert scratch_dbs(mariadb) == []


def test_weird_database_name_round_trips(mariadb, config, make_db):
    db = make_db("we`ird db", rows=30)
    path = dump_of(config, db)
    report = restore.restore_test(path, config, "same")
    assert report.passed, report.summary
    scratch = next(c for c in report.checks if c.name == "confinement").evidence
    assert "dumpdeck_rt_" in scratch and "we_ird_db" in scratch
    assert scratch_dbs(mariadb) == []


def test_use_other_db_is_refused(mariadb, config, sample_db, tmp_path):
    path = copy_dump(dump_of(config, sample_db, "none"), tmp_path)
    data = path.read_bytes()
    i = data.index(b"--\n-- Table structure for table")
    data = data[:i] + b"USE `other_db`;\nCREATE TABLE `trap` (a int);\n" + data[i:]
    path.write_bytes(data)
    refit_manifest(path, bytes_raw=len(data))
    report = restore.restore_test(path, config, "same")
    assert not report.passed and report.level_reached == 2
    assert any(c.name == "scope" and not c.passed and "other_db" in c.evidence for c in report.checks)
    assert any(c.name == "restore" and "nothing was loaded" in c.evidence for c in report.checks)
    assert scratch_dbs(mariadb) == []
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME='other_db'")
        assert cur.fetchone()[0] == 0


def test_loader_refuses_before_sending(mariadb, config, tmp_path):
    """Even without L3 (the loader's own check): nothing of the refused statement reaches the server."""
    sql = (
        b"/*!40101 SET NAMES utf8mb4 */;\n--\n-- Table structure for table `a`\n--\n"
        b"CREATE TABLE `a` (x int);\nINSERT INTO `a` VALUES (1);\nINSERT INTO `mysql`.`user` VALUES (1);\n"
    )
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE dumpdeck_rt_loader_test")
    try:
        for parallel in (1, 2):
            loader = loader_mod.Loader(config.server("main"), "dumpdeck_rt_loader_test", parallel=parallel)
            with pytest.raises(loader_mod.ScopeError, match="outside the scratch database"):
                loader.load([sql])
    finally:
        assert restore.cleanup_scratch(config, "main").databases == ["dumpdeck_rt_loader_test"]
    assert scratch_dbs(mariadb) == []


def test_removed_table_fails_and_nothing_is_left(mariadb, config, sample_db, tmp_path):
    path = copy_dump(dump_of(config, sample_db), tmp_path)
    sql = subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    start = sql.index(b"--\n-- Table structure for table `odd name`")
    end = sql.index(b"--\n-- Table structure for table `orders`")
    sql = sql[:start] + sql[end:]
    path.write_bytes(subprocess.run(["zstd", "-q", "-c"], input=sql, capture_output=True, check=True).stdout)
    refit_manifest(path, bytes_raw=len(sql))
    report = restore.restore_test(path, config, "same")
    assert not report.passed and report.level_reached == 2
    assert any(c.name == "tables" and "`odd name`" in c.evidence for c in report.checks if not c.passed)
    assert scratch_dbs(mariadb) == []


def test_load_failure_drops_the_scratch_database(mariadb, config, sample_db, tmp_path):
    path = copy_dump(dump_of(config, sample_db, "none"), tmp_path)
    data = path.read_bytes()
    i = data.index(b"UNLOCK TABLES;")
    data = data[:i] + b"INSERT INTO `customers` VALUES (1,2);\n" + data[i:]  # wrong column count
    path.write_bytes(data)
    refit_manifest(path, bytes_raw=len(data))
    report = restore.restore_test(path, config, "same")
    assert not report.passed and report.level_reached == 3
    load = next(c for c in report.checks if c.name == "load")
    assert not load.passed and "Column count" in load.evidence
    assert next(c for c in report.checks if c.name == "scratch dropped").passed
    assert scratch_dbs(mariadb) == []


def test_legacy_dump_restores_without_manifest(mariadb, config, sample_db, tmp_path):
    src = dump_of(config, sample_db)
    legacy = Path(config.backup.dir) / "shop_20250101_020000.sql.gz"
    legacy.write_bytes(gzip.compress(subprocess.run(["zstd", "-dc", str(src)], capture_output=True, check=True).stdout))
    report = restore.restore_test(legacy, config, "same")
    assert report.passed, report.summary
    assert any(
        c.name == "row counts" and "equal to the dump's exact counts for 3 tables" in c.evidence for c in report.checks
    )


def test_parallel_split_load_equals_sequential(mariadb, config, make_db):
    db = make_db(f"par_{os.getpid()}", rows=600)
    path = dump_of(config, db)
    server = config.server("main")
    results = {}
    for mode, kwargs in {
        "seq": dict(parallel=1),
        "par": dict(parallel=2, chunk_bytes=20_000, batch_bytes=4_000),
    }.items():
        name = f"dumpdeck_rt_{mode}_{os.getpid()}"
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name}")
        try:
            res = loader_mod.Loader(server, name, **kwargs).load(loader_mod.decoded_chunks(path))
            results[mode] = (res, table_checksums(mariadb, name))
        finally:
            with mariadb.connect() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE {name}")
    (seq, seq_sums), (par, par_sums) = results["seq"], results["par"]
    assert seq.mode == "sequential" and par.mode == "parallel"
    assert par.jobs > 4, "the big tables were split into several jobs"
    assert seq_sums == par_sums == table_checksums(mariadb, db)


def test_cleanup_scratch_skips_nothing_else(mariadb, config):
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE dumpdeck_rt_abc123_left")
        cur.execute("CREATE DATABASE dumpdeckXrt_keep")
    try:
        assert restore.cleanup_scratch(config, "main").databases == ["dumpdeck_rt_abc123_left"]
        assert scratch_dbs(mariadb) == []
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE IF EXISTS dumpdeckXrt_keep")


def test_a_split_table_gets_its_secondary_keys_after_the_data_and_the_same_definition(mariadb, config, make_db):
    db = make_db(f"keys_{os.getpid()}", rows=50)
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE wide (id INT UNSIGNED NOT NULL AUTO_INCREMENT, k INT NOT NULL, c CHAR(40) NOT NULL, "
            "note VARCHAR(20) NULL, PRIMARY KEY (id), UNIQUE KEY uc (c), KEY k_1 (k), "
            "KEY kc (k, c(8)) COMMENT 'two, columns', KEY n (note) USING BTREE) ENGINE=InnoDB"
        )
        cur.execute(
            "INSERT INTO wide (k, c, note) SELECT seq % 97, MD5(seq), IF(seq % 3, seq, NULL) FROM seq_1_to_3000"
        )
        # another table's foreign key needs `k_1`: it may be created before the ALTER adds it back
        cur.execute(
            "CREATE TABLE wide_ref (id INT PRIMARY KEY, k INT NOT NULL, KEY k (k), "
            "CONSTRAINT wk FOREIGN KEY (k) REFERENCES wide (k)) ENGINE=InnoDB"
        )
        cur.execute("INSERT INTO wide_ref SELECT seq, seq % 97 FROM seq_1_to_50")
        cur.execute("CREATE TABLE aa_ref LIKE wide_ref")  # dumped before `wide`
        cur.execute("ALTER TABLE aa_ref ADD CONSTRAINT ak FOREIGN KEY (k) REFERENCES wide (k)")
        cur.execute("INSERT INTO aa_ref SELECT * FROM wide_ref")
    path = dump_of(config, db)
    scanner = loader_mod.SqlScanner()
    items = [it for chunk in loader_mod.decoded_chunks(path) for it in scanner.feed(chunk)] + list(scanner.finish())
    create = next(
        st.raw
        for st in items
        if isinstance(st, loader_mod.Statement) and st.kind == "create_table" and st.name == "wide"
    )
    stripped, alter = loader_mod.defer_secondary_keys(create)
    assert alter is not None and b"KEY `k_1`" not in stripped and b"UNIQUE KEY `uc`" in stripped
    assert alter.count(b"ADD KEY") == 3
    name = f"dumpdeck_rt_keys_{os.getpid()}"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    try:
        res = loader_mod.Loader(config.server("main"), name, parallel=2, chunk_bytes=20_000, batch_bytes=4_000).load(
            loader_mod.decoded_chunks(path)
        )
        assert res.mode == "parallel" and res.jobs > 4
        assert show_creates(mariadb, name) == show_creates(mariadb, db)
        assert table_checksums(mariadb, name) == table_checksums(mariadb, db)
        with mariadb.connect(name) as conn, conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks=1")
            with pytest.raises(Exception, match="foreign key constraint fails"):
                cur.execute("INSERT INTO wide_ref VALUES (1000, 1000)")  # the restored key enforces again
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE {name}")


WIDE = (
    b"CREATE TABLE `t` (\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n  `k` int(11) DEFAULT NULL,\n"
    b"  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
)


@pytest.mark.parametrize(
    "create",
    [
        WIDE.replace(b"ENGINE=InnoDB", b"ENGINE=MyISAM"),
        WIDE.replace(b"  KEY `k` (`k`)\n", b"  KEY `k` (`k`),\n  FULLTEXT KEY `f` (`k`)\n"),
        WIDE.replace(
            b"  KEY `k` (`k`)\n", b"  KEY `k` (`k`),\n  CONSTRAINT `fk` FOREIGN KEY (`k`) REFERENCES `p` (`id`)\n"
        ),
        WIDE.replace(
            b"  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n", b"  KEY `id` (`id`)\n"
        ),  # the AUTO_INCREMENT needs it
        WIDE.replace(b"  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n", b"  PRIMARY KEY (`id`)\n"),  # nothing to defer
        WIDE.replace(b"  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n", b"  KEY `k` (`k`),\n  PRIMARY KEY (`id`)\n"),
        WIDE.replace(b"utf8mb4;", b"utf8mb4\n PARTITION BY HASH (`id`)\nPARTITIONS 2;"),
    ],
    ids=["myisam", "fulltext", "foreign-key", "autoinc-key", "no-key", "key-not-last", "partitioned"],
)
def test_secondary_keys_stay_in_the_create_when_in_doubt(create):
    assert loader_mod.defer_secondary_keys(create) == (create, None)


def test_deferred_keys_leave_a_valid_create_and_one_alter():
    stripped, alter = loader_mod.defer_secondary_keys(WIDE)
    assert stripped == WIDE.replace(b"  PRIMARY KEY (`id`),\n  KEY `k` (`k`)\n", b"  PRIMARY KEY (`id`)\n")
    assert alter == b"ALTER TABLE `t` ADD KEY `k` (`k`);\n"
