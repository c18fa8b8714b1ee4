"""The real restore (backend.restore_real, `dumpdeck restore`, `dumpdeck extract`) against the real server.

Every test compares the world with the source: CHECKSUM TABLE and row counts per table, the
names of views, routines, triggers and events, foreign keys, and sequences' next values.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import psutil
import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.jobs import cancel_run
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.restore import restore_test
from dumpdeck.backend.restore_real import (
    RestoreError,
    RestoreRefused,
    RestoreRequest,
    make_plan,
    restore,
    start_restore,
)
from dumpdeck.backend.state import open_store
from dumpdeck.backend.verify import verify_file
from dumpdeck.cli.main import main

from .helpers import (
    drop_database,
    make_big_table,
    object_inventory,
    restore_into,
    show_creates,
    table_checksums,
    wait_until,
)


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def add_sequence(mariadb, db: str) -> None:
    """A MariaDB sequence used as a column default, advanced past its start, and a view across tables."""
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute("CREATE SEQUENCE inv_seq START WITH 1000 INCREMENT BY 1")
        cur.execute("SELECT NEXTVAL(inv_seq)")
        cur.execute(
            "CREATE TABLE invoices (id INT PRIMARY KEY DEFAULT NEXTVAL(inv_seq), customer_id INT NOT NULL, "
            "FOREIGN KEY (customer_id) REFERENCES customers(id)) ENGINE=InnoDB"
        )
        cur.execute("INSERT INTO invoices (customer_id) VALUES (1), (2), (3)")
        cur.execute("CREATE VIEW v_inv AS SELECT i.id, c.name FROM invoices i JOIN customers c ON c.id = i.customer_id")


def world(mariadb, db: str) -> dict:
    """Everything a restore must reproduce, as comparable values."""
    with mariadb.connect(db) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA=%s ORDER BY 1, 2",
            (db,),
        )
        fks = [tuple(r) for r in cur.fetchall()]
        cur.execute(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='SEQUENCE'", (db,)
        )
        seqs = {}
        for (name,) in cur.fetchall():
            cur.execute(f"SELECT next_not_cached_value, increment FROM {quote_ident(name)}")
            seqs[name] = tuple(cur.fetchone())
        cur.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_DEFAULT FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA=%s AND COLUMN_DEFAULT LIKE '%%nextval%%'",
            (db,),
        )
        defaults = {(r[0], r[1]): r[2].replace(quote_ident(db), "`DB`") for r in cur.fetchall()}
    return {
        "tables": table_checksums(mariadb, db),
        "objects": object_inventory(mariadb, db),
        "fks": fks,
        "sequences": seqs,
        "defaults": defaults,
    }


def databases(mariadb, prefix: str) -> list[str]:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
            (prefix.replace("_", "\\_") + "%",),
        )
        return [r[0] for r in cur.fetchall()]


@pytest.fixture
def seq_db(mariadb, sample_db):
    add_sequence(mariadb, sample_db)
    return sample_db


@pytest.fixture
def new_name(mariadb):
    names = []

    def make(base: str) -> str:
        name = f"{base}_r{len(names)}"
        drop_database(mariadb, name)
        names.append(name)
        return name

    yield make
    for n in names:
        drop_database(mariadb, n)


def test_restore_into_a_new_name_equals_the_source(mariadb, write_config, config, seq_db, new_name, capsys):
    cfg = write_config()
    path = dump_database(config.server("main"), config.backup, seq_db).path
    before = world(mariadb, seq_db)
    target = new_name("copy")
    rc, out, err = run(capsys, "-c", cfg, "restore", path, "--into", target)
    assert rc == 0, err
    assert "created database" in out and "compared with the dump" in out
    after = world(mariadb, target)
    assert after == before
    assert before["sequences"] and before["fks"] and all(before["objects"].values())
    # the column default names the restored database's sequence, not the source's
    with mariadb.connect(target) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO invoices (customer_id) VALUES (4)")
        cur.execute("SELECT MAX(id) FROM invoices")
        assert cur.fetchone()[0] == 2000  # the source's cache (1000) was consumed before the dump
    assert world(mariadb, seq_db)["sequences"] == before["sequences"]  # the source's sequence was not used
    # the restore is a run in the state store, with its request and progress
    with open_store(config) as store:
        runs = store.list_runs(job="restore")
        assert runs and runs[0].status == "succeeded" and runs[0].databases == (target,)
        assert store.progress(runs[0].id)[0].bytes_raw > 0


def test_a_database_with_a_sequence_passes_l3_l4_and_a_restore(mariadb, config, seq_db, new_name):
    path = dump_database(config.server("main"), config.backup, seq_db).path
    m = manifest_mod.load(path)
    assert m.sequences == ["inv_seq"] and "inv_seq" not in [t.name for t in m.tables]
    rep = verify_file(path, level=3)
    assert rep.passed, rep.summary
    assert any(c.name == "sequences" and c.passed for c in rep.checks)
    rt = restore_test(path, config, "same")
    assert rt.passed, rt.summary
    target = new_name("seq")
    res = restore(config, RestoreRequest(path, "main", target))
    assert res.ok
    assert world(mariadb, target)["sequences"] == world(mariadb, seq_db)["sequences"]
    # an older manifest listing the sequence as a table still passes L3 (the scan knows it is a sequence)
    data = json.loads(manifest_mod.manifest_path(path).read_text())
    data["tables"].append({"name": "inv_seq", "engine": "InnoDB", "rows": 1, "bytes": 0})
    data["sequences"] = []
    data["verifications"] = []
    manifest_mod.manifest_path(path).write_text(json.dumps(data))
    assert verify_file(path, level=3, record=False).passed


def test_non_empty_target_is_refused_without_replace(mariadb, write_config, config, sample_db, capsys):
    cfg = write_config()
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = table_checksums(mariadb, sample_db)
    rc, _out, err = run(capsys, "-c", cfg, "restore", path, "--into", sample_db)
    assert rc == 1 and "--replace" in err and "not empty" in err
    assert table_checksums(mariadb, sample_db) == before
    assert databases(mariadb, "dumpdeck_stage_") == []
    rc, out, _ = run(capsys, "-c", cfg, "restore", path, "--into", sample_db, "--dry-run")
    assert rc == 1 and "replaces 3 table(s)" in out and "refused" in out


def test_dry_run_prints_the_plan_and_changes_nothing(mariadb, write_config, config, sample_db, new_name, capsys):
    cfg = write_config()
    path = dump_database(config.server("main"), config.backup, sample_db).path
    m = manifest_mod.load(path)
    target = new_name("dry")
    rc, out, _ = run(capsys, "-c", cfg, "restore", "--latest", sample_db, "--into", target, "--dry-run")
    assert rc == 0
    for needle in (
        str(path),
        m.sha256,
        f"'{target}' on server main",
        "restores 3 table(s)",
        "time ",
        "replaces nothing",
    ):
        assert needle in out, needle
    assert databases(mariadb, target) == []
    rc, out, _ = run(capsys, "-c", cfg, "restore", path, "--into", sample_db, "--replace", "--dry-run", "--json")
    plan = json.loads(out)
    assert rc == 0 and plan["target"]["exists"] and "safety dump" in plan["replaces"]
    assert plan["source"]["sha256"] == m.sha256 and plan["restore"]["tables"]


def test_replace_takes_a_verified_safety_dump_and_equals_the_dump(mariadb, config, seq_db):
    path = dump_database(config.server("main"), config.backup, seq_db).path
    at_dump = world(mariadb, seq_db)
    # the database changes after the dump: rows, a new table with a trigger, a dropped view
    with mariadb.connect(seq_db) as conn, conn.cursor() as cur:
        cur.execute("DELETE FROM orders WHERE id < 50")
        cur.execute("CREATE TABLE extra (x INT)")
        cur.execute("INSERT INTO extra VALUES (1)")
        cur.execute("CREATE TRIGGER extra_bi BEFORE INSERT ON extra FOR EACH ROW SET NEW.x = 1")
        cur.execute("DROP VIEW v_inv")
    changed = world(mariadb, seq_db)
    assert changed != at_dump
    res = restore(config, RestoreRequest(path, "main", seq_db, replace=True))
    assert res.ok and res.safety_dump
    assert world(mariadb, seq_db) == at_dump
    # the safety dump: in the catalog, verified to level 2, tagged, holding the replaced data
    safety = Path(res.safety_dump)
    entry = scan(config.backup.dir).get(safety)
    assert entry is not None and entry.verified_level >= 2
    sm = manifest_mod.load(safety)
    assert sm.tags == ["pre-restore"] and sm.database == seq_db and "extra" in [t.name for t in sm.tables]
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []
    # the sequence default points at the target, not at the (dropped) staging database
    with mariadb.connect(seq_db) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO invoices (customer_id) VALUES (4)")


def test_killing_the_loader_mid_way_leaves_the_original_untouched(mariadb, config, sample_db):
    make_big_table(mariadb, sample_db, rows=400_000)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE customers SET city = 'changed' WHERE id < 10")
    before = world(mariadb, sample_db)
    outcome: dict = {}

    def work():
        try:
            restore(config, RestoreRequest(path, "main", sample_db, replace=True, parallel=2))
        except Exception as exc:
            outcome["error"] = exc

    t = threading.Thread(target=work)
    t.start()

    def loader_client():
        for child in psutil.Process().children(recursive=True):
            try:
                if any("--database=dumpdeck_stage_" in a for a in child.cmdline()):
                    return child
            except psutil.Error:
                continue
        return None

    victim = wait_until(loader_client, timeout=120, what="a loader client on the staging database")
    victim.send_signal(signal.SIGKILL)
    t.join(timeout=300)
    assert isinstance(outcome.get("error"), RestoreError), outcome
    assert "load failed" in str(outcome["error"])
    assert world(mariadb, sample_db) == before
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


def test_a_cancelled_restore_run_leaves_the_original_untouched(mariadb, write_config, sample_db):
    from dumpdeck.backend.config import load_config

    config = load_config(write_config())
    make_big_table(mariadb, sample_db, rows=400_000)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = world(mariadb, sample_db)
    run_ = start_restore(config, RestoreRequest(path, "main", sample_db, replace=True), detach=True)
    with open_store(config) as store:

        def loading():
            return any(e.message.startswith("staging database") for e in store.events(run_.id, kind="restore-step"))

        wait_until(loading, timeout=120, what="the staging load to start")
        assert cancel_run(store, run_.id)
        final = wait_until(
            lambda: (r := store.get_run(run_.id)) is not None and not r.active and r, timeout=120, what="the end"
        )
        assert final.status == "cancelled", final.reason
    assert world(mariadb, sample_db) == before
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


class _Inserters:
    """Watches the server's process list in a thread: `peak` is the most connections seen at one moment
    running an INSERT into `table` of a database named like `db_like`."""

    def __init__(self, mariadb, table: str, db_like: str):
        self.peak = 0
        self._stop = threading.Event()
        self._conn = mariadb.connect()
        self._table = table
        self._db_like = db_like
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with self._conn.cursor() as cur:
            while not self._stop.is_set():
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE DB LIKE %s AND COMMAND = 'Query' AND INFO LIKE %s",
                    (self._db_like, f"INSERT INTO `{self._table}`%"),
                )
                self.peak = max(self.peak, cur.fetchone()[0])
                self._stop.wait(0.02)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self._conn.close()
        return self.peak


def test_a_dump_dominated_by_one_table_loads_it_over_several_connections(mariadb, config, sample_db, new_name):
    make_big_table(mariadb, sample_db, rows=400_000)  # ~45 MB of SQL: more than twice the loader's chunk
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = world(mariadb, sample_db)
    target = new_name("bigsplit")
    watch = _Inserters(mariadb, "big", target.replace("_", "\\_"))
    try:
        result = restore(config, RestoreRequest(path, "main", target, parallel=2))
    finally:
        peak = watch.stop()
    assert result.ok
    assert peak >= 2, "the server never ran two INSERTs into `big` at once"
    assert world(mariadb, target) == before  # CHECKSUM TABLE and row counts of every table, objects, keys
    # `big`'s KEY `k` was added after its data (one ALTER): the definition is the source's
    assert show_creates(mariadb, target) == show_creates(mariadb, sample_db)
    assert databases(mariadb, "dumpdeck_stage_") == []


def test_cancelling_while_one_table_loads_on_several_connections_leaves_no_staging(mariadb, config, sample_db):
    make_big_table(mariadb, sample_db, rows=600_000)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    before = world(mariadb, sample_db)
    cancel = threading.Event()
    outcome: dict = {}
    watch = _Inserters(mariadb, "big", "dumpdeck\\_stage\\_%")

    def work():
        try:
            restore(config, RestoreRequest(path, "main", sample_db, replace=True, parallel=2), cancel=cancel)
        except Exception as exc:
            outcome["error"] = exc

    t = threading.Thread(target=work)
    t.start()
    try:
        wait_until(lambda: watch.peak >= 2, timeout=300, what="two connections loading `big` at once")
    finally:
        cancel.set()
        t.join(timeout=300)
        watch.stop()
    assert not t.is_alive()
    assert "cancelled" in str(outcome.get("error")), outcome
    assert world(mariadb, sample_db) == before
    assert databases(mariadb, "dumpdeck_stage_") == [] and databases(mariadb, "dumpdeck_old_") == []


def test_detached_restore_run_survives_its_starter(mariadb, write_config, sample_db, new_name, capsys):
    cfg = write_config()
    from dumpdeck.backend.config import load_config

    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    target = new_name("detached")
    rc, out, _ = run(capsys, "-c", cfg, "restore", path, "--into", target, "--detach")
    assert rc == 0 and "started" in out
    with open_store(config) as store:
        r = store.list_runs(job="restore")[0]
        assert r.pid is not None and os.getpgid(r.pid) == r.pid  # its own session: an SSH hang-up does not reach it
        final = wait_until(lambda: (x := store.get_run(r.id)) and not x.active and x, timeout=120, what="the run")
        assert final.status == "succeeded", final.reason
    assert table_checksums(mariadb, target) == table_checksums(mariadb, sample_db)


def test_tables_subset_brings_the_objects_that_depend_only_on_them(mariadb, config, seq_db, new_name):
    path = dump_database(config.server("main"), config.backup, seq_db).path
    target = new_name("subset")
    req = RestoreRequest(path, "main", target, tables=["customers", "orders"])
    plan = make_plan(config, req)
    assert plan.tables == ["customers", "orders"]
    res = restore(config, req)
    assert res.ok
    got = table_checksums(mariadb, target)
    src = table_checksums(mariadb, seq_db)
    assert got == {t: src[t] for t in ("customers", "orders")}
    objs = object_inventory(mariadb, target)
    assert objs["views"] == ["big_orders"]  # v_inv needs invoices: left out, with a warning
    assert objs["triggers"] == ["orders_bi"] and objs["procedures"] == ["count_orders"]
    assert objs["functions"] == ["double_it"] and objs["events"] == ["nightly_cleanup"]
    assert any("v_inv" in w for w in res.warnings)
    with pytest.raises(RestoreRefused, match="not in the dump"):
        restore(config, RestoreRequest(path, "main", new_name("subset"), tables=["nope"]))


def test_extract_one_table_loads_on_its_own(mariadb, write_config, config, sample_db, new_name, capsys, tmp_path):
    cfg = write_config()
    path = dump_database(config.server("main"), config.backup, sample_db).path
    for out_name in ("orders.sql.zst", "orders.sql.gz", "orders.sql"):
        out_file = tmp_path / out_name
        rc, _out, err = run(capsys, "-c", cfg, "extract", path, "--table", "orders", "-o", out_file)
        assert rc == 0, err
        target = new_name("extract")
        restore_into(mariadb, out_file, target)
        assert table_checksums(mariadb, target) == {"orders": table_checksums(mariadb, sample_db)["orders"]}
        assert object_inventory(mariadb, target)["triggers"] == ["orders_bi"]
    assert gzip.decompress((tmp_path / "orders.sql.gz").read_bytes()).count(b"CREATE TABLE") == 1
    rc, _out, err = run(capsys, "-c", cfg, "extract", path, "--table", "nope", "-o", tmp_path / "x.sql")
    assert rc == 1 and "not in the dump" in err and not (tmp_path / "x.sql").exists()


def test_excluded_tables_pass_l3_and_the_manifest_names_them(mariadb, write_config, sample_db, new_name):
    from dumpdeck.backend.config import load_config
    from dumpdeck.backend.runner import run_job_foreground

    cfg = write_config(
        f"""
        jobs:
          nightly:
            databases: [{sample_db}]
            verify: 3
            tables:
              exclude: {{"{sample_db}": ["odd*"]}}
        """
    )
    config = load_config(cfg)
    assert run_job_foreground(config, "nightly", trigger="cli") == 0
    entry = scan(config.backup.dir).latest(sample_db)
    m = entry.manifest
    assert m.excluded == ["odd name"] and "odd name" not in [t.name for t in m.tables]
    assert entry.verified_level == 3
    rep = verify_file(entry.path, level=3, record=False)
    assert rep.passed and any("excluded by the job" in c.evidence for c in rep.checks)
    assert restore_test(entry.path, config, "same").passed
    target = new_name("excl")
    assert restore(config, RestoreRequest(entry.path, "main", target)).ok
    assert "odd name" not in table_checksums(mariadb, target)


def _legacy_dump(mariadb, tmp_path: Path, *dbs: str) -> Path:
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    out = backups / f"{dbs[0]}_2025010{len(dbs)}_020000.sql.gz"  # one file per case: a digest is recorded per name
    proc = subprocess.run(
        [
            "mariadb-dump",
            "--no-defaults",
            "-uroot",
            f"--socket={mariadb.socket}",
            "--routines",
            "--triggers",
            "--events",
            "--databases",
            *dbs,
        ],
        capture_output=True,
        check=True,
    )
    out.write_bytes(gzip.compress(proc.stdout))
    return out


def test_legacy_databases_dump_restores_into_a_new_name(mariadb, config, seq_db, new_name, tmp_path, make_db):
    path = _legacy_dump(mariadb, tmp_path, seq_db)
    assert scan(config.backup.dir).get(path).legacy
    target = new_name("legacy")
    res = restore(config, RestoreRequest(path, "main", target))
    assert res.ok
    assert world(mariadb, target) == world(mariadb, seq_db)
    rt = restore_test(path, config, "same")
    assert rt.passed, rt.summary
    assert any(c.name == "database mapping" and c.passed for c in rt.checks)
    other = make_db(f"other_{os.getpid()}", rows=5)
    two = _legacy_dump(mariadb, tmp_path, seq_db, other)
    with pytest.raises(RestoreRefused, match="holds 2 databases"):
        restore(config, RestoreRequest(two, "main", new_name("legacy")))
    rt = restore_test(two, config, "same")
    assert not rt.passed and any("holds 2 databases" in c.evidence for c in rt.checks)


@pytest.mark.parametrize("codec", ["gzip", "xz", "none"])
def test_restore_from_every_codec_and_without_manifest(mariadb, config, sample_db, new_name, codec):
    backup = dataclasses.replace(config.backup, compression=codec)
    path = dump_database(config.server("main"), backup, sample_db).path
    manifest_mod.manifest_path(path).unlink()  # manifest-less
    target = new_name(codec)
    assert restore(config, RestoreRequest(path, "main", target)).ok
    assert table_checksums(mariadb, target) == table_checksums(mariadb, sample_db)


@pytest.mark.parametrize(
    "inject",
    [
        b"USE `other_db`;\nCREATE TABLE `trap` (a int);\n",
        b"INSERT INTO `mysql`.`user` VALUES (1);\n",
        b"CREATE DATABASE `other_db`;\n",
        b"\\! touch /tmp/dumpdeck_restore_pwned\n",
        b"SELECT LOAD_FILE('/etc/passwd') INTO @x;\n",
    ],
)
def test_a_dump_writing_outside_its_database_is_refused(mariadb, config, sample_db, new_name, tmp_path, inject):
    from .test_verify import copy_dump, refit_manifest

    src = dump_database(config.server("main"), dataclasses.replace(config.backup, compression="none"), sample_db)
    path = copy_dump(src.path, tmp_path)
    data = path.read_bytes()
    i = data.index(b"--\n-- Table structure for table")
    data = data[:i] + inject + data[i:]
    path.write_bytes(data)
    refit_manifest(path, bytes_raw=len(data))
    target = new_name("hostile")
    with pytest.raises(RestoreRefused, match="nothing was restored"):
        restore(config, RestoreRequest(path, "main", target))
    assert databases(mariadb, target) == [] and databases(mariadb, "other_db") == []
    assert not Path("/tmp/dumpdeck_restore_pwned").exists()
    # the same file without its manifest (as a legacy file) is refused too unless it names one database only
    manifest_mod.manifest_path(path).unlink()
    if b"mysql" in inject:
        with pytest.raises(RestoreRefused, match="outside its database"):
            restore(config, RestoreRequest(path, "main", target))
        assert databases(mariadb, target) == []


def test_tables_include_exclude_config(write_config):
    from dumpdeck.backend.config import load_config
    from dumpdeck.backend.errors import ConfigError

    cfg = load_config(
        write_config(
            """
            jobs:
              j:
                tables:
                  include: {"crm*": [customers, "order*"]}
                  exclude: [tmp_*]
            """
        )
    )
    job = cfg.job("j")
    assert job.table_patterns("crm1") == (("customers", "order*"), ("tmp_*",))
    assert job.table_patterns("shop") == (None, ("tmp_*",))  # include names other databases only
    with pytest.raises(ConfigError, match=r"jobs\.j\.tables\.exclude"):
        load_config(write_config("jobs:\n  j:\n    tables:\n      exclude: 3\n", name="bad.yaml"))


def test_clean_scratch_drops_staging_leftovers_only(mariadb, write_config, capsys):
    cfg = write_config()
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE dumpdeck_stage_abc123_left")
        cur.execute("CREATE DATABASE dumpdeck_old_abc123_left")
    try:
        rc, out, _ = run(capsys, "-c", cfg, "clean", "--scratch")
        assert rc == 0 and "dumpdeck_stage_abc123_left" in out
        assert databases(mariadb, "dumpdeck_stage_") == []
        assert databases(mariadb, "dumpdeck_old_") == ["dumpdeck_old_abc123_left"]  # may hold replaced tables
    finally:
        drop_database(mariadb, "dumpdeck_old_abc123_left")


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_restore_notifies_like_a_backup(mariadb, write_config, sample_db, new_name, tmp_path, capsys):
    from dumpdeck.backend.config import load_config

    from .test_notify import SmtpSink, no_secret, notify_yaml

    target = new_name("notified")
    with SmtpSink() as smtp:
        cfg = write_config(notify_yaml(tmp_path, smtp_port=smtp.port))
        config = load_config(cfg)
        path = dump_database(config.server("main"), config.backup, sample_db).path
        rc, _out, err = run(capsys, "-c", cfg, "restore", path, "--into", target)
        assert rc == 0, err
        wait_until(lambda: smtp.messages, timeout=30, what="the notification")
    subject = smtp.parsed(0)["Subject"]
    body = smtp.parsed(0).get_content()
    assert "restore" in subject and target in subject + body, (subject, body)
    no_secret(smtp.messages[0].content)


def test_an_account_without_privileges_gets_a_clear_message(mariadb, write_config, sample_db, new_name, capsys):
    from dumpdeck.backend.config import load_config

    cfg = write_config(password=True)  # the backup account: SELECT and friends, no CREATE
    config = load_config(cfg)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    target = new_name("denied")
    rc, _out, err = run(capsys, "-c", cfg, "restore", path, "--into", target)
    assert rc == 1 and "Access denied" in err and "is as it was" in err and "Traceback" not in err
    assert databases(mariadb, target) == []


def test_replace_is_refused_when_other_databases_reference_the_target(mariadb, config, sample_db, make_db):
    path = dump_database(config.server("main"), config.backup, sample_db).path
    other = make_db(f"refs_{os.getpid()}", rows=5)
    with mariadb.connect(other) as conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE pointer (id INT PRIMARY KEY, cid INT, "
            f"FOREIGN KEY (cid) REFERENCES {quote_ident(sample_db)}.customers(id)) ENGINE=InnoDB"
        )
    before = table_checksums(mariadb, sample_db)
    with pytest.raises(RestoreRefused, match=r"foreign keys in other databases.*pointer"):
        restore(config, RestoreRequest(path, "main", sample_db, replace=True))
    assert table_checksums(mariadb, sample_db) == before
    assert [e for e in scan(config.backup.dir).entries if e.manifest and "pre-restore" in e.manifest.tags] == []


def test_dry_run_of_a_legacy_file_computes_its_sha256(mariadb, write_config, sample_db, new_name, tmp_path, capsys):
    import hashlib

    cfg = write_config()
    path = _legacy_dump(mariadb, tmp_path, sample_db)
    rc, out, _ = run(capsys, "-c", cfg, "restore", path, "--into", new_name("legacy"), "--dry-run", "--json")
    assert rc == 0 and json.loads(out)["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_foreground_restore_that_loses_its_terminal_stops_cleanly(mariadb, write_config, sample_db, new_name):
    import sys

    from dumpdeck.backend.config import load_config

    cfg = write_config()
    config = load_config(cfg)
    make_big_table(mariadb, sample_db, rows=400_000)
    path = dump_database(config.server("main"), config.backup, sample_db).path
    target = new_name("hangup")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dumpdeck", "-c", str(cfg), "restore", str(path), "--into", target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )

    def loading():
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if any(f"--database={target}" in a for a in child.cmdline()):
                    return True
            except psutil.Error:
                continue
        return False

    wait_until(loading, timeout=120, what="the load to start")
    proc.send_signal(signal.SIGHUP)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert databases(mariadb, target) == []  # a half-restored new database is dropped
    with open_store(config) as store:
        assert store.list_runs(job="restore")[0].status == "cancelled"
