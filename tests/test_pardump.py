"""The parallel dump (backend.pardump) against a real mariadbd: one snapshot across workers, the
single-file format every reader already understands, and the fall back to one stream."""

from __future__ import annotations

import dataclasses
import random
import subprocess
import threading
import time

import pymysql
import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import pardump, restore, runner, selection
from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.state import StateStore
from dumpdeck.backend.verify import verify_file

from .helpers import create_sample_database, drop_database, object_inventory, restore_into, table_checksums


@pytest.fixture
def any_size(monkeypatch):
    """The test databases are small: let the parallel dump take them anyway."""
    monkeypatch.setattr(pardump, "MIN_BYTES", 0)


def _parallel(config, threads: int = 3, chunk_rows: int = 150):
    return dataclasses.replace(config.backup, threads=threads, chunk_rows=chunk_rows)


# --------------------------------------------------------------------------- the plan


def test_plan_splits_the_big_table_and_packs_the_rest():
    sizes = {"big": (10_000, 9_000), "a": (10, 400), "b": (10, 300), "c": (10, 200), "d": (10, 100)}
    units = pardump.plan_units(sizes, {"big": ("id", 1, 10_000)}, threads=4, chunk_rows=1_000)
    big = [u for u in units if u.tables == ("big",)]
    assert len(big) == 4  # its share of the bytes earns every thread
    assert big[0].where == "`id` < 2501" and big[-1].where == "`id` >= 7501"  # open-ended: nothing falls outside
    assert [u.create for u in big] == [True, False, False, False]
    assert [u.triggers for u in big] == [False, False, False, True]
    rest = [u for u in units if u.tables != ("big",)]
    assert sorted(t for u in rest for t in u.tables) == ["a", "b", "c", "d"]
    # without a usable key the table stays whole; with one thread there is one unit
    assert len(pardump.plan_units(sizes, {}, threads=4, chunk_rows=1_000)) == 4
    assert len(pardump.plan_units(sizes, {"big": ("id", 1, 10_000)}, threads=1, chunk_rows=1_000)) == 1


# --------------------------------------------------------------------------- the format


def test_parallel_dump_loads_verifies_and_restore_tests(mariadb, config, make_db, any_size):
    db = make_db(f"par_{time.monotonic_ns() % 10**8}", rows=400)  # orders: 800 rows → split in ranges
    result = dump_database(config.server("main"), _parallel(config), db)
    m = manifest_mod.load(result.path)
    assert m.tool.get("workers", 0) >= 2, m.tool  # it really ran in parallel
    assert m.coordinates.get("binlog_file") and m.coordinates.get("binlog_position")  # read under the lock
    assert not [w for w in result.warnings if "parallel" in w]
    # several zstd frames in one file, which the zstd binary decodes as one stream
    sql = subprocess.run(["zstd", "-dc", str(result.path)], capture_output=True, check=True).stdout
    assert sql.startswith(b"/*M!999999") or sql.startswith(b"-- MariaDB dump")
    assert sql.rstrip().splitlines()[-1].startswith(b"-- Dump completed")
    assert sql.count(b"CREATE TABLE `orders`") == 1 and sql.count(b"TRIGGER orders_bi") == 1
    assert len(sql) == m.bytes_raw
    # the ladder: L1–L3 (inventory, row counts, scope)
    report = verify_file(result.path, 3)
    assert report.passed, report.summary
    # `zstd -dc | mariadb` gives the same data and objects
    target = db + "_back"
    try:
        restore_into(mariadb, result.path, target)
        assert table_checksums(mariadb, target) == table_checksums(mariadb, db)
        assert object_inventory(mariadb, target) == object_inventory(mariadb, db)
    finally:
        drop_database(mariadb, target)
    # and the restore-test (the parallel loader) passes
    rt = restore.restore_test(result.path, config, "same")
    assert rt.passed and rt.level_reached == 4, rt.summary


# --------------------------------------------------------------------------- consistency


def _make_bank(mariadb, db: str, accounts: int) -> None:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(db)}")
        cur.execute(f"CREATE DATABASE {quote_ident(db)}")
        cur.execute(f"USE {quote_ident(db)}")
        pad = "REPEAT('x', 200)"
        for t in ("checking", "savings"):
            cur.execute(
                f"CREATE TABLE {t} (id INT PRIMARY KEY, amount BIGINT NOT NULL, pad VARCHAR(255)) ENGINE=InnoDB"
            )
            cur.execute(f"INSERT INTO {t} SELECT seq, 1000, {pad} FROM seq_1_to_{accounts}")
        for t in ("inbox", "archive"):
            cur.execute(f"CREATE TABLE {t} (id INT PRIMARY KEY, body VARCHAR(255)) ENGINE=InnoDB")
        cur.execute(f"INSERT INTO inbox SELECT seq, {pad} FROM seq_1_to_{accounts}")


def _totals(mariadb, db: str) -> tuple[int, int]:
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SELECT (SELECT SUM(amount) FROM checking) + (SELECT SUM(amount) FROM savings)")
        money = int(cur.fetchone()[0])
        cur.execute("SELECT (SELECT COUNT(*) FROM inbox) + (SELECT COUNT(*) FROM archive)")
        return money, int(cur.fetchone()[0])


def _writer(
    mariadb, db: str, accounts: int, stop: threading.Event, done: list[int], seed: int, one_statement: bool = False
) -> None:
    """Move money between the two tables (and between far-apart rows, i.e. between a split table's
    ranges), and move rows from one table to the other, one transaction at a time.

    `one_statement`: each transfer is one autocommitted UPDATE over both rows (no row moves). Under
    FLUSH TABLES WITH READ LOCK a transaction between its statements keeps its tables open while its
    next statement waits for the lock, and the lock waits for those tables until lock_wait_timeout:
    the lock of MySQL and old MariaDB is only taken where writers commit statement by statement."""
    rnd = random.Random(seed)
    conn = mariadb.connect(db)
    conn.autocommit(one_statement)
    try:
        with conn.cursor() as cur:
            while not stop.is_set():
                a, b, x = rnd.randint(1, accounts), rnd.randint(1, accounts), rnd.randint(1, 50)
                src, dst = rnd.choice([("checking", "savings"), ("savings", "checking"), ("checking", "checking")])
                try:
                    if one_statement:
                        if src == dst:
                            cur.execute(
                                f"UPDATE {src} SET amount = amount + IF(id = %s, -%s, %s) WHERE id IN (%s, %s)",
                                (a, x, x, a, b) if a != b else (a, 0, 0, a, a),
                            )
                        else:
                            cur.execute(
                                f"UPDATE {src} s JOIN {dst} d ON s.id = %s AND d.id = %s "
                                "SET s.amount = s.amount - %s, d.amount = d.amount + %s",
                                (a, b, x, x),
                            )
                        done[0] += 1
                        continue
                    cur.execute(f"UPDATE {src} SET amount = amount - %s WHERE id = %s", (x, a))
                    cur.execute(f"UPDATE {dst} SET amount = amount + %s WHERE id = %s", (x, b))
                    cur.execute("SELECT id FROM inbox ORDER BY id LIMIT 1 FOR UPDATE")
                    row = cur.fetchone()
                    if row:
                        cur.execute("INSERT INTO archive SELECT * FROM inbox WHERE id = %s", row)
                        cur.execute("DELETE FROM inbox WHERE id = %s", row)
                    conn.commit()
                    done[0] += 1
                except pymysql.err.OperationalError:  # a deadlock between writers: try again
                    conn.rollback()
    finally:
        conn.close()


@pytest.mark.parametrize("lock", ["BACKUP STAGE BLOCK_COMMIT", "FLUSH TABLES WITH READ LOCK"])
def test_concurrent_writers_keep_the_restored_totals_invariant(mariadb, config, any_size, monkeypatch, lock):
    """MariaDB 10.4+ stops commits with BACKUP STAGE; MySQL and older MariaDB with FLUSH TABLES WITH
    READ LOCK, forced here on the MariaDB the tests run."""
    monkeypatch.setattr(pardump, "FORCE_FTWRL", lock.startswith("FLUSH"))
    db, accounts = f"bank_{time.monotonic_ns() % 10**8}", 20_000
    _make_bank(mariadb, db, accounts)
    expected = _totals(mariadb, db)
    stop, done = threading.Event(), [0]
    one = lock.startswith("FLUSH")
    writers = [threading.Thread(target=_writer, args=(mariadb, db, accounts, stop, done, i, one)) for i in range(3)]
    for w in writers:
        w.start()
    target = db + "_back"
    try:
        time.sleep(0.3)
        before = done[0]
        result = dump_database(config.server("main"), _parallel(config, threads=4, chunk_rows=5_000), db)
        during = done[0] - before
    finally:
        stop.set()
        for w in writers:
            w.join()
    try:
        m = manifest_mod.load(result.path)
        assert m.tool.get("workers", 0) >= 4, (m.tool, result.warnings)  # ranges and tables on separate workers
        assert m.tool.get("snapshot") == lock, m.tool
        assert during > 0, "no writer committed while the dump ran: the test proves nothing"
        assert _totals(mariadb, db) == expected  # the writers themselves keep the invariant
        restore_into(mariadb, result.path, target)
        assert _totals(mariadb, target) == expected
    finally:
        drop_database(mariadb, target)
        drop_database(mariadb, db)


# --------------------------------------------------------------------------- the fall back


def _user_without_reload(mariadb, db: str) -> None:
    with mariadb.connect() as conn, conn.cursor() as cur:
        for host in ("localhost", "127.0.0.1"):
            cur.execute(f"CREATE USER IF NOT EXISTS 'noreload'@'{host}' IDENTIFIED BY 'No-Reload-1'")
            cur.execute(
                f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES ON {quote_ident(db)}.* TO 'noreload'@'{host}'"
            )
            cur.execute(f"GRANT PROCESS, BINLOG MONITOR ON *.* TO 'noreload'@'{host}'")


def test_no_reload_privilege_falls_back_to_one_stream_and_says_so(mariadb, write_config, tmp_path, any_size):
    db = f"norel_{time.monotonic_ns() % 10**8}"
    create_sample_database(mariadb, db, rows=400)
    _user_without_reload(mariadb, db)
    pw = tmp_path / "noreload.pass"
    pw.write_text("No-Reload-1\n")
    pw.chmod(0o600)
    path = write_config(f"jobs:\n  nr:\n    server: main\n    databases: [{db}]\n    verify: 3\n")
    text = path.read_text().replace("    user: root\n", f"    user: noreload\n    password_file: {pw}\n")
    path.write_text(text.replace("  compression: zstd\n", "  compression: zstd\n  threads: 3\n  chunk_rows: 150\n"))
    try:
        config = load_config(path)
        store = StateStore.open(config.state_db)
        run = store.create_run(
            "nr", "cli", "main", selection.resolve_databases(config, "nr"), log_dir=config.runs_log_dir
        )
        final = runner.execute(config, store, run.id)
        assert final.status == "succeeded"
        dumps = sorted((config.backup.dir / "main" / db).glob("*.sql.zst"))
        m = manifest_mod.load(dumps[-1])
        assert "workers" not in m.tool  # one stream
        assert any("parallel dump not used" in w and "RELOAD" in w for w in m.warnings), m.warnings
        evs = [e for e in store.events(run.id, limit=1000) if e.kind == "dump-warning"]
        assert any("BACKUP STAGE BLOCK_COMMIT failed" in e.message for e in evs), [e.message for e in evs]
        assert m.verified_level == 3  # and the one-stream dump is whole
    finally:
        drop_database(mariadb, db)


def _busy(mariadb, db: str, seconds: int) -> threading.Thread:
    """A write that runs for about `seconds` (a query the long-query guard sees;
    the consistent reads of a dump do not wait for its row locks)."""

    def run() -> None:
        with mariadb.connect(db) as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE `odd name` SET v = CONCAT(v, '') WHERE SLEEP({seconds / 10}) = 0")

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.5)
    return t


@pytest.mark.parametrize("why", ["lock wait", "long query"])
def test_a_busy_server_falls_back_and_holds_no_lock(mariadb, config, make_db, any_size, monkeypatch, why):
    """Another backup holding BACKUP STAGE (mariabackup, say) makes the lock wait past its timeout;
    a query running longer than LONG_QUERY keeps the dump from asking for the lock at all. Either
    way: one stream, and said so."""
    monkeypatch.setattr(pardump, "LOCK_WAIT", 1)
    db = make_db(f"busy_{time.monotonic_ns() % 10**8}", rows=300)
    other = mariadb.connect()
    try:
        if why == "long query":
            monkeypatch.setattr(pardump, "LONG_QUERY", 0)
            busy = _busy(mariadb, db, 4)
        else:
            with other.cursor() as cur:
                cur.execute("BACKUP STAGE START")
        result = dump_database(config.server("main"), _parallel(config), db)
        if why == "long query":
            busy.join()
    finally:
        other.close()
    m = manifest_mod.load(result.path)
    assert "workers" not in m.tool
    said = "BACKUP STAGE BLOCK_COMMIT failed (1205" if why == "lock wait" else "has been running"
    assert any("parallel dump not used" in w and said in w for w in result.warnings), result.warnings
    # nothing is left locked: a write goes through at once
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute("SET SESSION lock_wait_timeout = 2")
        cur.execute("INSERT INTO `odd name` VALUES (999, 'after')")
    assert verify_file(result.path, 3).passed


def test_sequences_keep_the_one_stream(mariadb, config, make_db, any_size):
    """The parallel dump does not place sequences (a table's DEFAULT NEXTVAL needs its sequence
    first): a database with one is dumped as one stream, sequence included."""
    db = make_db(f"seq_{time.monotonic_ns() % 10**8}", rows=300)
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute("CREATE SEQUENCE ticket START WITH 100")
    result = dump_database(config.server("main"), _parallel(config), db)
    assert "workers" not in manifest_mod.load(result.path).tool
    sql = subprocess.run(["zstd", "-dc", str(result.path)], capture_output=True, check=True).stdout
    assert b"CREATE SEQUENCE `ticket`" in sql


def test_one_table_without_a_key_is_one_stream_without_a_warning(mariadb, config, any_size):
    """Nothing to split is no failure: one stream, and no warning in the run's events."""
    db = f"lone_{time.monotonic_ns() % 10**8}"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"USE {db}")
        cur.execute("CREATE TABLE only_one (v VARCHAR(20))")
        cur.execute("INSERT INTO only_one SELECT CONCAT('v', seq) FROM seq_1_to_1000")
    try:
        result = dump_database(config.server("main"), _parallel(config), db)
        assert "workers" not in manifest_mod.load(result.path).tool
        assert not [w for w in result.warnings if "parallel" in w], result.warnings
    finally:
        drop_database(mariadb, db)


def test_an_encrypted_dump_stays_one_stream_and_restores(mariadb, config, make_db, any_size, tmp_path):
    """age takes one stream: with recipients the parallel path is not taken (no plaintext segment ever
    reaches the disk), and the one encrypted stream decrypts and loads with the identity."""
    from dumpdeck.backend import encryption

    identity = tmp_path / "id.txt"
    subprocess.run(["age-keygen", "-o", str(identity)], check=True, capture_output=True)
    key = subprocess.run(["age-keygen", "-y", str(identity)], check=True, capture_output=True, text=True)
    recipients = encryption.Recipients((key.stdout.strip(),), "test")
    db = make_db(f"parenc_{time.monotonic_ns() % 10**8}", rows=400)
    result = dump_database(config.server("main"), _parallel(config), db, recipients=recipients)
    m = manifest_mod.load(result.path)
    assert result.path.name.endswith(".sql.zst.age") and "workers" not in m.tool, m.tool
    assert result.path.read_bytes().startswith(encryption.MAGIC)
    target = db + "_back"
    try:
        sql = subprocess.run(
            f"age -d -i {identity} {result.path} | zstd -dc", shell=True, capture_output=True, check=True
        ).stdout
        with open(tmp_path / "plain.sql", "wb") as f:
            f.write(sql)
        restore_into(mariadb, tmp_path / "plain.sql", target)
        assert table_checksums(mariadb, target) == table_checksums(mariadb, db)
    finally:
        drop_database(mariadb, target)
