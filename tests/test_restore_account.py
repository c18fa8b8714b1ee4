"""The real restore loads as a temporary account with ALL PRIVILEGES on its target only.

The scope checks (L3 and the loader's per-statement check) are parsers; here they are made blind
in-process (`Statement.outside_scope` always False, as a scanner bug would be), so a hostile dump
reaches the load. The server's grants must then stop it: after `restore --into NEW` the victim's
CHECKSUM TABLE, the account list and every grant row are as they were (the state of the world), the
restore failed saying why, and no `dumpdeck_rs_` account remains — after a failure, a success, a
cancel, and (`dumpdeck clean`) after a killed process.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from dumpdeck.backend import restore_real
from dumpdeck.backend.errors import CancelledError, RestoreError
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.restore_real import RestoreRequest, cleanup_leftovers, restore
from dumpdeck.backend.sqlstats import Statement
from dumpdeck.cli.main import main

from .helpers import drop_database, table_checksums
from .test_loader_boundaries import HEAD, SRC, TAIL, VICTIM, victim, without, world  # noqa: F401

V = VICTIM.encode()
HOSTILE = {
    "drop-database": b"DROP DATABASE `" + V + b"`;\n",
    "create-user": b"CREATE USER `loadsafe_pwn`@`%` IDENTIFIED BY 'x';\n",
    "grant": b"GRANT ALL ON *.* TO `loadsafe_pwn`@`%` IDENTIFIED BY 'x';\n",
    "other-db-write": b"INSERT INTO `" + V + b"`.`v` VALUES (666);\n",
    "other-db-delete": b"DELETE FROM `" + V + b"`.`v`;\n",
}
BENIGN = b"INSERT INTO `t` VALUES (7,'ok'),(8,'fine');\n"
TARGET = "rsacct_new"


def temp_accounts(mariadb) -> list[tuple[str, str]]:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE 'dumpdeck\\_rs\\_%'")
        return list(cur.fetchall())


@pytest.fixture
def blind(monkeypatch):
    """A scanner with a blind spot everywhere: nothing is outside the scope, no hazard."""
    monkeypatch.setattr(Statement, "outside_scope", property(lambda self: False))
    monkeypatch.setattr(Statement, "hazard", property(lambda self: None))
    monkeypatch.setattr(restore_real, "database_mapping", lambda stats: None)  # nor does the mapping see it


@pytest.fixture
def target(mariadb):
    drop_database(mariadb, TARGET)
    yield TARGET
    drop_database(mariadb, TARGET)


def write(tmp_path: Path, body: bytes, name: str = "0") -> Path:
    d = tmp_path / name
    d.mkdir()
    path = d / f"{SRC}_20261129_230000.sql"
    path.write_bytes(HEAD + BENIGN + body + TAIL)
    return path


@pytest.mark.usefixtures("victim", "blind")
@pytest.mark.parametrize("variant", sorted(HOSTILE))
def test_a_hostile_dump_past_a_blind_scanner_changes_nothing_outside_the_target(
    mariadb, config, target, variant, tmp_path
):
    before = world(mariadb)
    path = write(tmp_path, HOSTILE[variant])
    steps: list[str] = []
    with pytest.raises(RestoreError) as exc:
        restore(config, RestoreRequest(path, "main", target, parallel=1), on_step=steps.append)
    assert without(world(mariadb), target) == before
    assert "load failed" in str(exc.value) and "denied" in str(exc.value).lower(), exc.value
    assert any("temporary account" in s and "ALL PRIVILEGES on" in s for s in steps), steps
    assert temp_accounts(mariadb) == []


@pytest.mark.usefixtures("victim", "blind")
def test_the_blind_scanner_is_what_lets_it_through(mariadb, config, target, tmp_path, monkeypatch):
    """Control: loaded as the configured account (the account cannot be created), the same dump does drop
    the victim — so the test above passes because of the grants, and the fallback says `not confined`."""
    # the server refuses the CREATE USER (a name longer than it allows), as it would without the privilege
    monkeypatch.setattr(restore_real, "ACCOUNT_PREFIX", "dumpdeck_rs_" + "x" * 200)
    path = write(tmp_path, HOSTILE["other-db-delete"])
    steps: list[str] = []
    res = restore(config, RestoreRequest(path, "main", target, parallel=1), on_step=steps.append)
    assert res.ok
    assert any("not confined" in s for s in steps), steps
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {quote_ident(VICTIM)}.v")
        assert cur.fetchone()[0] == 0  # the blind scanner let the DELETE through
    assert temp_accounts(mariadb) == []


def test_no_temporary_account_remains_after_success_or_cancel(mariadb, config, target, tmp_path):
    path = write(tmp_path, b"")
    steps: list[str] = []
    assert restore(config, RestoreRequest(path, "main", target, parallel=1), on_step=steps.append).ok
    assert any("dropped" in s and "dumpdeck_rs_" in s for s in steps), steps
    assert temp_accounts(mariadb) == []
    drop_database(mariadb, target)

    path = write(tmp_path, b"SELECT SLEEP(5);\n", "slow")  # a load still running when it is cancelled
    cancel = threading.Event()
    seen: list[tuple[str, str]] = []

    def on_step(msg: str) -> None:
        if msg.startswith("loading as the temporary account"):
            seen.extend(temp_accounts(mariadb))  # it exists while loading
            cancel.set()

    with pytest.raises(CancelledError):
        restore(config, RestoreRequest(path, "main", target, parallel=1), on_step=on_step, cancel=cancel)
    assert len(seen) == 1
    assert temp_accounts(mariadb) == []


def test_clean_drops_the_account_a_killed_restore_left(mariadb, config, write_config, capsys):
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'dumpdeck_rs_0123456789ab'@'localhost' IDENTIFIED BY 'Rs-x-9z'")
        cur.execute("CREATE USER 'dumpdeck_rs_keepme'@'localhost'")  # not one of ours: left alone
    try:
        assert cleanup_leftovers(config, "main", dry_run=True) == ["'dumpdeck_rs_0123456789ab'@'localhost'"]
        assert len(temp_accounts(mariadb)) == 2
        capsys.readouterr()
        assert main(["-c", str(write_config()), "clean", "--scratch", "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert "'dumpdeck_rs_0123456789ab'@'localhost'" in data["accounts_dropped"]["main"]
        assert data["scratch_dropped"]["main"] == []
        assert temp_accounts(mariadb) == [("dumpdeck_rs_keepme", "localhost")]
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'dumpdeck_rs_0123456789ab'@'localhost', 'dumpdeck_rs_keepme'@'localhost'")


def definers(mariadb, db: str) -> dict[str, list[tuple[str, str]]]:
    """(name, definer) of every view, routine, trigger and event of `db`."""
    queries = {
        "views": "SELECT TABLE_NAME, DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA=%s",
        "routines": "SELECT ROUTINE_NAME, DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA=%s",
        "triggers": "SELECT TRIGGER_NAME, DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s",
        "events": "SELECT EVENT_NAME, DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA=%s",
    }
    out = {}
    with mariadb.connect() as conn, conn.cursor() as cur:
        for kind, q in queries.items():
            cur.execute(q + " ORDER BY 1", (db,))
            out[kind] = [tuple(r) for r in cur.fetchall()]
    return out


@pytest.mark.parametrize("definer", ["keep", "current"])
def test_objects_keep_their_definers_and_never_the_temporary_account(
    mariadb, config, sample_db, target, definer, tmp_path
):
    """The dump's objects come back with the dump's definers (or the configured account's with --definer
    current), never the temporary account's, which no longer exists."""
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'rsacct_owner'@'localhost'")
        cur.execute(f"GRANT ALL ON {quote_ident(sample_db)}.* TO 'rsacct_owner'@'localhost'")
        cur.execute(
            f"CREATE DEFINER='rsacct_owner'@'localhost' VIEW {quote_ident(sample_db)}.rsacct_v AS SELECT 1 AS one"
        )
    try:
        from dumpdeck.backend.dump import dump_database

        path = dump_database(config.server("main"), config.backup, sample_db).path
        before = definers(mariadb, sample_db)
        assert all(before.values()) and ("rsacct_v", "rsacct_owner@localhost") in before["views"]
        res = restore(config, RestoreRequest(path, "main", target, definer=definer))
        assert res.ok
        after = definers(mariadb, target)
        if definer == "keep":
            assert after == before
        else:
            assert {k: [n for n, _ in v] for k, v in after.items()} == {k: [n for n, _ in v] for k, v in before.items()}
            assert {d for v in after.values() for _, d in v} == {"root@localhost"}
        assert temp_accounts(mariadb) == []
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP VIEW IF EXISTS {quote_ident(sample_db)}.rsacct_v")
            cur.execute("DROP USER IF EXISTS 'rsacct_owner'@'localhost'")


@pytest.mark.usefixtures("victim", "blind")
def test_replace_loads_staging_confined_too(mariadb, config, sample_db, tmp_path):
    """--replace: the load into staging is confined the same way; the target stays as it was."""
    before = world(mariadb)
    sums_before = table_checksums(mariadb, sample_db)
    path = write(tmp_path, HOSTILE["drop-database"])
    with pytest.raises(RestoreError, match="denied"):
        restore(config, RestoreRequest(path, "main", sample_db, replace=True, parallel=1))
    assert world(mariadb) == before
    assert table_checksums(mariadb, sample_db) == sums_before
    assert temp_accounts(mariadb) == []
