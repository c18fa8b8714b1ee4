"""The dump engine against a real mariadbd: round trips, and every way a dump can fail."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.errors import CancelledError, ConnectError, DumpError, TimeoutError_
from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.sandbox import Sandbox

from .helpers import make_big_table, object_inventory, restore_into, table_checksums, wait_until

CODECS = ["zstd", "gzip", "xz", "none"]


def _backup(config, codec):
    level = {"zstd": 3, "gzip": 6, "xz": 1, "none": 0}[codec]
    return dataclasses.replace(config.backup, compression=codec, level=level)


def _no_partials(config) -> list[Path]:
    return list(Path(config.backup.dir).rglob("*.partial"))


@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_every_codec(mariadb, config, sample_db, codec):
    result = dump_database(config.server("main"), _backup(config, codec), sample_db)
    assert result.path.name.endswith({"zstd": ".sql.zst", "gzip": ".sql.gz", "xz": ".sql.xz", "none": ".sql"}[codec])
    m = manifest_mod.load(result.path)
    assert m.sha256 == __import__("hashlib").sha256(result.path.read_bytes()).hexdigest()
    assert m.bytes_stored == result.path.stat().st_size
    assert m.codec == codec and m.database == sample_db
    assert {t.name for t in m.tables} == {"customers", "orders", "odd name"}
    target = sample_db + "_restored"
    try:
        restore_into(mariadb, result.path, target)
        assert table_checksums(mariadb, target) == table_checksums(mariadb, sample_db)
        assert object_inventory(mariadb, target) == object_inventory(mariadb, sample_db)
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(target)}")


def test_manifest_fields(mariadb, config, sample_db):
    result = dump_database(config.server("main"), config.backup, sample_db)
    data = json.loads(manifest_mod.manifest_path(result.path).read_text())
    assert data["format_version"] == 1
    assert data["server"]["flavour"] == "mariadb" and "MariaDB" in data["server"]["version"]
    assert "mariadb-dump" in data["tool"]["path"] and data["tool"]["version"] != "unknown"
    for opt in ("--single-transaction", "--quick", "--routines", "--triggers", "--events"):
        assert opt in data["options"]
    assert "--databases" not in data["options"]
    assert data["views"] == ["big_orders"] and data["procedures"] == ["count_orders"]
    assert data["functions"] == ["double_it"] and data["triggers"] == ["orders_bi"]
    assert data["events"] == ["nightly_cleanup"]
    assert data["bytes_raw"] > data["bytes_stored"] > 0
    assert data["started"] <= data["finished"] and data["duration"] >= 0
    # The scratch server runs with a binary log and root may read it: coordinates recorded.
    assert data["coordinates"]["binlog_file"].startswith("binlog.")
    assert data["coordinates"]["binlog_position"] > 0
    # One database per dump, no USE / CREATE DATABASE in the stream.
    raw = subprocess.run(["zstd", "-dc", str(result.path)], capture_output=True).stdout
    assert b"\nUSE " not in raw and b"CREATE DATABASE" not in raw
    assert raw.rstrip().splitlines()[-1].startswith(b"-- Dump completed")


def test_weird_database_names_round_trip(mariadb, config, make_db):
    for name in ("we`ird db", "ça-va naïve", "../etc"):
        make_db(name, rows=20)
        result = dump_database(config.server("main"), config.backup, name)
        assert result.path.parent.parent == Path(config.backup.dir) / "main"  # stays inside the tree
        assert "/" not in result.path.name.replace(".sql.zst", "")
        assert manifest_mod.load(result.path).database == name
        target = "restored_weird"
        restore_into(mariadb, result.path, target)
        assert table_checksums(mariadb, target) == table_checksums(mariadb, name)
    assert (Path(config.backup.dir) / "main" / "we@0060ird@0020db").is_dir()
    assert (Path(config.backup.dir) / "main" / "ça-va@0020naïve").is_dir()
    assert (Path(config.backup.dir) / "main" / "@002e.@002fetc").is_dir()


def test_progress_events(config, mariadb):
    make_big_table(mariadb, "progress_db", rows=100_000)
    events = []
    try:
        dump_database(
            config.server("main"), config.backup, "progress_db", on_progress=events.append, progress_interval=0.0
        )
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP DATABASE progress_db")
    phases = [e.phase for e in events]
    assert phases[0] == "preflight" and phases[-1] == "done" and "dumping" in phases
    dumping = [e for e in events if e.phase == "dumping"]
    assert dumping[-1].bytes_raw > dumping[0].bytes_raw
    assert any(e.current_table == "big" for e in dumping)
    assert events[-1].bytes_stored > 0 and events[-1].estimate


# ----------------------------------------------------------------------------- failures


def test_wrong_password(write_config, sample_db):
    config = load_config(write_config(password=True))
    server = dataclasses.replace(config.server("main"), password_file=None, password_env="DD_WRONG")
    os.environ["DD_WRONG"] = "not-the-password"
    try:
        with pytest.raises(ConnectError, match="access denied for user 'bk'"):
            dump_database(server, config.backup, sample_db)
    finally:
        del os.environ["DD_WRONG"]
    assert not _no_partials(config)


def test_password_account_works(write_config, sample_db):
    config = load_config(write_config(password=True))
    result = dump_database(config.server("main"), config.backup, sample_db)
    assert result.path.exists()


def test_unreachable_host(config, sample_db):
    from dumpdeck.backend.sandbox import free_port

    server = dataclasses.replace(
        config.server("main"), socket=None, host="127.0.0.1", port=free_port(), connect_timeout=2
    )
    with pytest.raises(ConnectError, match=r"cannot connect"):
        dump_database(server, config.backup, sample_db)


def test_missing_database(config):
    with pytest.raises(DumpError, match="database 'no_such_db' does not exist"):
        dump_database(config.server("main"), config.backup, "no_such_db")
    assert not _no_partials(config)
    assert not list(Path(config.backup.dir).rglob("*.sql*"))


@pytest.fixture
def big_db(mariadb):
    name = "bigdb_for_failures"
    make_big_table(mariadb, name)
    yield name
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")


def _dump_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.name() in ("mariadb-dump", "mysqldump")]


def test_dump_tool_killed_mid_stream(config, big_db):
    killed = []

    def on_progress(p):
        if p.phase == "dumping" and not killed:
            for child in _dump_children():
                child.kill()
                killed.append(child.pid)

    with pytest.raises(DumpError, match="killed by signal SIGKILL"):
        dump_database(config.server("main"), config.backup, big_db, on_progress=on_progress, progress_interval=0)
    assert killed
    assert not _no_partials(config) and not list(Path(config.backup.dir).rglob("*.sql.zst"))


def test_connection_killed_server_side(mariadb, config, big_db):
    """KILL of the dump's connection: mariadb-dump exits 3 and its output ends on a complete
    statement; only the exit code tells, and the engine must fail the dump."""
    killed = []

    def on_progress(p):
        if p.phase == "dumping" and not killed:
            with mariadb.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB=%s AND INFO LIKE %s",
                    (big_db, "SELECT /*!40001 SQL_NO_CACHE */%"),
                )
                for (cid,) in cur.fetchall():
                    cur.execute(f"KILL {int(cid)}")
                    killed.append(cid)

    with pytest.raises(DumpError, match=r"exited with code [23]"):
        dump_database(config.server("main"), config.backup, big_db, on_progress=on_progress, progress_interval=0)
    assert killed, "the dump's connection was not found in the processlist"
    assert not _no_partials(config) and not list(Path(config.backup.dir).rglob("*.sql.zst"))


def test_server_stopped_mid_dump(tmp_path, write_config):
    sb = Sandbox.create(tmp_path / "victim").start()
    try:
        make_big_table(sb, "victimdb")
        path = write_config(name="victim.yaml")
        text = path.read_text()
        victim_cfg = load_config(path)
        server = dataclasses.replace(victim_cfg.server("main"), socket=sb.socket)
        stopped = []

        def on_progress(p):
            if p.phase == "dumping" and not stopped:
                sb.kill()
                stopped.append(True)

        with pytest.raises(DumpError, match=r"Lost connection|exited with code"):
            dump_database(server, victim_cfg.backup, "victimdb", on_progress=on_progress, progress_interval=0)
        assert stopped and not _no_partials(victim_cfg)
        # Restart it after: the data is there and a dump succeeds.
        sb.start()
        result = dump_database(server, victim_cfg.backup, "victimdb")
        assert result.path.exists() and text
    finally:
        sb.destroy()


def test_full_disk(tmp_path, config, big_db):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(
            f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'not permitted'}); "
            "the full-disk path is not exercised"
        )
    try:
        backup = dataclasses.replace(config.backup, dir=mnt, compression="none", level=0)
        with pytest.raises(DumpError, match="No space left on device"):
            dump_database(config.server("main"), backup, big_db)
        assert list(mnt.rglob("*")) == [mnt / "main", mnt / "main" / big_db] or not [
            p for p in mnt.rglob("*") if p.is_file()
        ]
    finally:
        subprocess.run(["umount", str(mnt)])


STALLER = """#!/bin/sh
# A stand-in dump tool: writes a dump header, then hangs (or trickles) forever.
echo '-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB'
echo '-- Dumping data for table `t`'
if [ "$DD_MODE" = trickle ]; then
  while true; do echo "(1,'x'),"; sleep 0.1; done
fi
sleep 3600 &
[ -n "$DD_PIDFILE" ] && echo $! > "$DD_PIDFILE"
wait
"""


def _stand_in(tmp_path, name="fake-dump") -> Path:
    tool = tmp_path / name
    tool.write_text(STALLER)
    tool.chmod(0o755)
    return tool


def test_stall_timeout_kills_the_group(tmp_path, config, sample_db, monkeypatch):
    tool = _stand_in(tmp_path)
    pidfile = tmp_path / "child.pid"
    monkeypatch.setenv("DD_PIDFILE", str(pidfile))
    with pytest.raises(TimeoutError_, match="stalled: no output for 1s"):
        dump_database(config.server("main"), config.backup, sample_db, stall_timeout=1, dump_tool=str(tool))
    child = int(pidfile.read_text())

    def dead() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    # SIGKILL went to the whole group; on a loaded machine the child may take a moment to be scheduled and die
    wait_until(dead, timeout=10, what="the stand-in's child to die with its process group")
    assert not _no_partials(config)


def test_wall_clock_timeout(tmp_path, config, sample_db, monkeypatch):
    tool = _stand_in(tmp_path)
    monkeypatch.setenv("DD_MODE", "trickle")
    with pytest.raises(TimeoutError_, match="exceeded its timeout of 1s"):
        dump_database(config.server("main"), config.backup, sample_db, timeout=1, stall_timeout=30, dump_tool=str(tool))
    assert not _no_partials(config)


def test_stand_in_exiting_zero_without_footer_fails(tmp_path, config, sample_db):
    tool = tmp_path / "liar"
    tool.write_text("#!/bin/sh\necho '-- MariaDB dump'\necho 'CREATE TABLE t (a int);'\nexit 0\n")
    tool.chmod(0o755)
    with pytest.raises(DumpError, match="no '-- Dump completed' footer"):
        dump_database(config.server("main"), config.backup, sample_db, dump_tool=str(tool))
    assert not _no_partials(config)


def test_cancel(config, big_db):
    cancel = threading.Event()

    def on_progress(p):
        if p.phase == "dumping":
            cancel.set()

    with pytest.raises(CancelledError):
        dump_database(
            config.server("main"), config.backup, big_db, on_progress=on_progress, cancel=cancel, progress_interval=0
        )
    assert not _no_partials(config)
    assert not _dump_children()


def test_no_password_in_argv_or_environment(write_config, big_db):
    config = load_config(write_config(password=True))
    seen = []

    def on_progress(p):
        if p.phase == "dumping" and not seen:
            for child in _dump_children():
                cmdline = Path(f"/proc/{child.pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{child.pid}/environ").read_bytes()
                seen.append((cmdline, environ))

    dump_database(config.server("main"), config.backup, big_db, on_progress=on_progress, progress_interval=0)
    assert seen, "no running dump process was observed"
    for cmdline, environ in seen:
        assert b"S3cret-Pw!x9" not in cmdline and b"S3cret-Pw!x9" not in environ
        assert b"--defaults-extra-file=" in cmdline
        assert b"MYSQL_PWD" not in environ


def test_credentials_reach_the_dump_tool_through_a_memfd_not_a_file(write_config, big_db):
    config = load_config(write_config(password=True))
    seen = []

    def on_progress(p):
        if p.phase == "dumping" and not seen:
            for child in _dump_children():
                args = Path(f"/proc/{child.pid}/cmdline").read_bytes().split(b"\0")
                arg = next(a for a in args if a.startswith(b"--defaults-extra-file=")).split(b"=", 1)[1].decode()
                fd = Path(f"/proc/{child.pid}/fd/{arg.rsplit('/', 1)[1]}")
                seen.append((arg, os.readlink(fd), oct(fd.stat().st_mode & 0o777)))

    dump_database(config.server("main"), config.backup, big_db, on_progress=on_progress, progress_interval=0)
    assert seen, "no running dump process was observed"
    arg, target, mode = seen[0]
    assert arg.startswith("/dev/fd/") and target.startswith("/memfd:dumpdeck-client-cnf"), (arg, target)
    assert mode == "0o600"


def test_backend_imports_without_textual():
    code = (
        "import sys, pkgutil, importlib, dumpdeck.backend as b\n"
        "for m in pkgutil.walk_packages(b.__path__, 'dumpdeck.backend.'):\n"
        "    importlib.import_module(m.name)\n"
        "assert 'textual' not in sys.modules, 'backend imported textual'\n"
        "assert not any(k.startswith(('dumpdeck.tui', 'dumpdeck.cli')) for k in sys.modules), "
        "'backend imported the console'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr


def test_two_dumps_in_the_same_second_keep_both(config, sample_db):
    first = dump_database(config.server("main"), config.backup, sample_db)
    second = dump_database(config.server("main"), config.backup, sample_db)
    assert first.path != second.path and first.path.exists() and second.path.exists()
    assert manifest_mod.load(first.path).sha256 == __import__("hashlib").sha256(first.path.read_bytes()).hexdigest()
