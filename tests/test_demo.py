"""`dumpdeck demo`: the sandbox, its sample data, backups and reloads of it, and its lifecycle.

One full-size demo serves the module (started once, stopped and purged at the end);
lifecycle tests use a second, tiny one (--scale) so they stay quick.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dumpdeck import demo
from dumpdeck.backend import manifest
from dumpdeck.backend.codecs import open_decoded
from dumpdeck.backend.config import cron_problem, load_config
from dumpdeck.backend.credentials import client_credentials
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.mysql import object_names, quote_ident
from dumpdeck.backend.naming import safe_name
from dumpdeck.backend.processes import process_alive
from dumpdeck.backend.sandbox import Sandbox, find_binary, free_port
from dumpdeck.demo import sample_data

from .helpers import interrupt, table_checksums, wait_until

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
SMALL = 0.02  # scale of the lifecycle demos: ~6k rows, loads in well under a second


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "dumpdeck", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env if env is not None else os.environ.copy(),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def demo_session(tmp_path_factory):
    """A full-size demo (sample data + seed backups) with a TCP port, for the whole module."""
    directory = tmp_path_factory.mktemp("demo") / "d"
    session = demo.start(directory, port=free_port(), seed=True)
    yield session
    demo.stop(directory, purge=True)


@pytest.fixture(scope="module")
def demo_server(demo_session) -> Sandbox:
    return demo._sandbox(demo_session.directory)


@pytest.fixture(scope="module")
def demo_config(demo_session):
    return load_config(demo_session.config_path)


# --------------------------------------------------------------------------- the data


def test_sample_databases_tables_and_exact_row_counts(demo_server):
    with demo_server.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        present = {r[0] for r in cur.fetchall()}
        assert set(sample_data.DATABASES) <= present
        assert "sales archive" in present
        for db in sample_data.catalog():
            cur.execute(
                "SELECT TABLE_NAME, ENGINE FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='BASE TABLE'",
                (db.name,),
            )
            engines = dict(cur.fetchall())
            assert engines == {t.name: t.engine for t in db.tables}, db.name
            for t in db.tables:
                cur.execute(f"SELECT COUNT(*) FROM {quote_ident(db.name)}.{quote_ident(t.name)}")
                assert cur.fetchone()[0] == t.rows, f"{db.name}.{t.name}"
    total = sum(db.rows for db in sample_data.catalog())
    assert 200_000 <= total <= 600_000  # "a few hundred thousand rows in all"


def test_sample_databases_have_views_routines_triggers_events_fulltext_fks(demo_server):
    with demo_server.connect() as conn, conn.cursor() as cur:
        for db in sample_data.catalog():
            names = object_names(conn, db.name)
            assert sorted(names["views"]) == sorted(db.views), db.name
            assert sorted(names["procedures"]) == sorted(db.procedures), db.name
            assert sorted(names["functions"]) == sorted(db.functions), db.name
            assert sorted(names["triggers"]) == sorted(db.triggers), db.name
            assert sorted(names["events"]) == sorted(db.events), db.name
            cur.execute(
                "SELECT CONSTRAINT_NAME FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=%s",
                (db.name,),
            )
            assert sorted(r[0] for r in cur.fetchall()) == sorted(db.foreign_keys), db.name
            for table, index in db.fulltext:
                cur.execute(
                    "SELECT INDEX_TYPE FROM information_schema.STATISTICS "
                    "WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s AND INDEX_NAME=%s",
                    (db.name, table, index),
                )
                assert {r[0] for r in cur.fetchall()} == {"FULLTEXT"}
        # The objects work, not just exist.
        cur.execute("USE shop")
        cur.execute("CALL top_customers(3)")
        top = cur.fetchall()
        assert len(top) == 3 and top[0][3] >= top[1][3] >= top[2][3] > 0
        while cur.nextset():
            pass
        cur.execute("SELECT order_count(1) = (SELECT COUNT(*) FROM orders WHERE customer_id = 1)")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT COUNT(*) FROM blog.posts WHERE MATCH(title, body) AGAINST ('sourdough')")
        assert cur.fetchone()[0] > 0


def test_sample_data_is_consistent_and_utf8mb4(demo_server):
    with demo_server.connect() as conn, conn.cursor() as cur:
        # Loaded with foreign_key_checks=0: prove no row breaks a foreign key.
        for sql in (
            "SELECT COUNT(*) FROM shop.orders o LEFT JOIN shop.customers c ON c.id=o.customer_id WHERE c.id IS NULL",
            "SELECT COUNT(*) FROM shop.order_items i LEFT JOIN shop.orders o ON o.id=i.order_id WHERE o.id IS NULL",
            "SELECT COUNT(*) FROM shop.order_items i LEFT JOIN shop.products p ON p.id=i.product_id WHERE p.id IS NULL",
            "SELECT COUNT(*) FROM blog.comments c LEFT JOIN blog.posts p ON p.id=c.post_id WHERE p.id IS NULL",
            "SELECT COUNT(*) FROM `sales archive`.invoices i LEFT JOIN `sales archive`.regions r "
            "ON r.id=i.region_id WHERE r.id IS NULL",
        ):
            cur.execute(sql)
            assert cur.fetchone()[0] == 0, sql
        # Order totals are the sum of their lines (what the trigger keeps true afterwards).
        cur.execute(
            "SELECT COUNT(*) FROM shop.orders o JOIN (SELECT order_id, SUM(quantity*unit_price) s "
            "FROM shop.order_items GROUP BY order_id) t ON t.order_id=o.id WHERE t.s <> o.total"
        )
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT title FROM blog.posts WHERE title LIKE '%💾%' LIMIT 1")
        assert "💾" in cur.fetchone()[0]
        cur.execute("SELECT COUNT(*) FROM shop.customers WHERE first_name = 'Łukasz'")
        assert cur.fetchone()[0] > 0
        cur.execute("SELECT COUNT(*) FROM blog.comments WHERE is_spam = 1")
        assert 0 < cur.fetchone()[0] < sample_data.SIZES["comments"] // 5
        # the trigger fires
        cur.execute("SELECT total FROM shop.orders WHERE id = 1")
        before = cur.fetchone()[0]
        cur.execute("INSERT INTO shop.order_items VALUES (1, 99, 1, 2, 10.00)")
        cur.execute("SELECT total FROM shop.orders WHERE id = 1")
        assert cur.fetchone()[0] == before + 20
        cur.execute("DELETE FROM shop.order_items WHERE order_id = 1 AND line_no = 99")
        cur.execute("UPDATE shop.orders SET total = %s WHERE id = 1", (before,))


def test_sample_data_is_deterministic(demo_server):
    """Loading a database again gives the very same tables (CHECKSUM TABLE equal)."""
    for name in ("legacy_crm", "sales archive"):
        before = table_checksums(demo_server, name)
        with demo_server.connect() as conn:
            sample_data.load_database(conn, name)
        assert table_checksums(demo_server, name) == before


# --------------------------------------------------------------------------- sandbox and config


def test_demo_sandbox_is_private_and_recorded(demo_session, demo_server):
    info = demo.read_info(demo_session.directory)
    assert info is not None
    assert info.socket == str(demo_session.socket) and Path(info.socket).is_socket()
    assert info.sandbox_pid and process_alive(info.sandbox_pid)
    assert info.owner_pid == os.getpid() and os.getpid() in info.users
    assert demo_server.alive()
    with open(f"/proc/{info.sandbox_pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    assert b"--no-defaults" in argv and f"--datadir={demo_server.datadir}".encode() in argv
    with open(f"/proc/{info.sandbox_pid}/status") as f:
        assert int(next(line.split()[1] for line in f if line.startswith("Uid:"))) != 0, "never runs as root"
    # the module demo asked for a TCP port: it answers there, on loopback only
    import pymysql

    conn = pymysql.connect(host="127.0.0.1", port=demo_session.port, user="root", password="")
    conn.close()
    assert "sandbox_start" in demo_session.timings and "data_load" in demo_session.timings


def test_demo_config_is_valid_and_self_contained(demo_session, demo_config):
    cfg = demo_config
    assert list(cfg.servers) == ["demo"]
    assert cfg.servers["demo"].socket == demo_session.socket
    inside = demo_session.directory
    for p in (cfg.backup.dir, cfg.state_dir, cfg.log.file):
        assert inside in p.parents, p
    job = cfg.job("nightly")
    assert job.schedule == "0 2 * * *" and cron_problem(job.schedule) is None
    assert job.databases == ("*",)
    assert not cfg.retention.default.empty
    # the text says how to open the console
    assert f"dumpdeck --config {demo_session.config_path}" in demo_session.config_path.read_text()


def test_seed_backups_made_one_dump_per_database(demo_session, demo_config):
    from dumpdeck.backend.verify import verify_file

    assert demo_session.seeded == list(sample_data.DATABASES)
    assert any("legacy_crm" in w and "not consistent" in w for w in demo_session.seed_warnings)
    for db in sample_data.DATABASES:
        dumps = sorted((demo_config.backup.dir / "demo" / safe_name(db)).glob("*.sql.zst"))
        assert len(dumps) == 1, db
        assert manifest.load(dumps[0]).verified_level == 3, db  # the seed verified and recorded it
        report = verify_file(dumps[0], level=3, record=False)
        assert report.passed, f"{db}: {report.summary}"
    log = demo_config.log.file.read_text()
    assert "sandbox mariadbd pid" in log and "seed backup of 'sales archive'" in log


# --------------------------------------------------------------------------- backup and restore


@pytest.fixture(scope="module")
def fresh_dumps(demo_session, demo_config):
    server = demo_config.server("demo")
    return {db: dump_database(server, demo_config.backup, db) for db in sample_data.DATABASES}


def test_backup_of_every_sample_database_passes(fresh_dumps):
    from dumpdeck.backend.verify import verify_file

    for db, result in fresh_dumps.items():
        m = result.manifest
        assert result.path.is_file() and m.database == db
        expected = next(d for d in sample_data.catalog() if d.name == db)
        assert sorted(t.name for t in m.tables) == sorted(t.name for t in expected.tables)
        assert sorted(m.views) == sorted(expected.views) and sorted(m.events) == sorted(expected.events)
        assert sorted(m.triggers) == sorted(expected.triggers)
        assert sorted(m.procedures) == sorted(expected.procedures)
        report = verify_file(result.path, level=3, record=False)
        assert report.passed, f"{db}: {report.summary}"
    assert fresh_dumps["legacy_crm"].manifest.non_transactional == ["calls", "companies", "contacts"]
    assert not fresh_dumps["shop"].manifest.non_transactional


def _reload(server_cfg, dump_path: Path, target: str) -> None:
    mariadb = find_binary("mariadb", "mysql")
    assert mariadb, "the mariadb client is not installed"
    with client_credentials(server_cfg) as cred:
        proc = subprocess.Popen(
            [mariadb, cred.argument, "--binary-mode", target],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cred.env,
            pass_fds=cred.pass_fds,
        )
        stream = open_decoded(dump_path)
        try:
            for chunk in stream.chunks():
                proc.stdin.write(chunk)
        finally:
            stream.close()
            proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        assert proc.wait() == 0, err


def test_every_sample_dump_reloads_to_identical_tables(demo_server, demo_config, fresh_dumps):
    """Restore each dump into a scratch database with the mariadb client; tables and objects match."""
    server = demo_config.server("demo")
    for db, result in fresh_dumps.items():
        scratch = f"reload_{safe_name(db).replace('@', '_')}"
        with demo_server.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(scratch)}")
            cur.execute(f"CREATE DATABASE {quote_ident(scratch)}")
        try:
            _reload(server, result.path, scratch)
            assert table_checksums(demo_server, scratch) == table_checksums(demo_server, db), db
            with demo_server.connect() as conn:
                assert object_names(conn, scratch) == object_names(conn, db), db
        finally:
            with demo_server.connect() as conn, conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(scratch)}")


@pytest.mark.parametrize("target", ["same", "sandbox"])
def test_restore_test_of_every_sample_dump_passes(demo_config, fresh_dumps, target):
    """backend.restore.restore_test (level 4) into a scratch database of the demo server, and
    into a sandbox server — the demo config's own restore_test target."""
    from dumpdeck.backend.restore import restore_test

    assert demo_config.restore_test.target == "sandbox"
    for db, result in fresh_dumps.items():
        report = restore_test(result.path, demo_config, target=target, record=False)
        failed = "; ".join(f"{c.name}: {c.evidence}" for c in report.checks if not c.passed)
        assert report.passed and report.level_reached == 4, f"{db} ({target}): {failed}"


# --------------------------------------------------------------------------- lifecycle


def _sandbox_pid(directory: Path) -> int:
    info = demo.read_info(directory)
    assert info is not None and info.sandbox_pid
    return info.sandbox_pid


def test_keep_then_stop_purge_leaves_no_process_and_no_file(tmp_path):
    directory = tmp_path / "kept demo"  # a space in the path, too
    r = cli("demo", "--dir", str(directory), "--no-console", "--scale", str(SMALL))
    assert r.returncode == 0, r.stderr
    pid = _sandbox_pid(directory)
    assert process_alive(pid)
    assert f"dumpdeck --config '{directory / 'dumpdeck-demo.yaml'}'" in r.stdout
    assert "demo --stop --dir" in r.stdout
    info = demo.read_info(directory)
    assert info.keep and info.port is None
    with demo._sandbox(directory).connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT @@skip_networking")
        assert cur.fetchone()[0] == 1  # no TCP port unless asked

    # a second `dumpdeck demo` reuses the running one: no new server, no reload
    r2 = cli("demo", "--dir", str(directory), "--no-console", "--scale", str(SMALL))
    assert r2.returncode == 0, r2.stderr
    assert "already running" in r2.stdout and "loading" not in r2.stdout
    assert _sandbox_pid(directory) == pid

    r3 = cli("demo", "--dir", str(directory), "--stop", "--purge")
    assert r3.returncode == 0, r3.stderr
    assert "stopped" in r3.stdout and "removed" in r3.stdout
    assert not process_alive(pid)
    assert not directory.exists()
    r4 = cli("demo", "--dir", str(directory), "--stop")
    assert r4.returncode == 0 and "nothing to stop" in r4.stdout


def test_stop_without_purge_keeps_files_and_restarts_fast(tmp_path, mariadb):
    directory = tmp_path / "d"
    s = demo.start(directory, keep=True, seed=False, scale=SMALL)
    demo.finish(s)
    pid = _sandbox_pid(directory)
    result = demo.stop(directory)
    assert result.was_running and not result.purged and not process_alive(pid)
    sb = demo._sandbox(directory)
    assert (sb.datadir / "shop").is_dir()
    # A stale pid file naming some other mariadbd (pid reuse after a reboot) is never signalled.
    sb.pid_file.write_text(f"{mariadb.pid}\n")
    assert not demo.stop(directory).was_running
    assert mariadb.alive() and not demo.status(directory).running
    sb.pid_file.write_text(f"{mariadb.pid}\n")
    again = demo.start(directory, seed=False, scale=SMALL)  # starts its own server despite that file
    assert not again.reused and again.sandbox_pid != mariadb.pid and mariadb.alive()
    try:
        assert again.loaded == [] and "data_load" not in again.timings  # data survived the stop
        with demo._sandbox(directory).connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM shop.customers")
            assert cur.fetchone()[0] == sample_data._scaled("customers", SMALL)
    finally:
        res = demo.finish(again)
    assert res.stopped and res.purged and not directory.exists() and not sb.home.exists()


CONSOLE_STANDIN = textwrap.dedent("""\
    # A real process standing in for the console: it checks the demo server answers,
    # writes a marker, then "runs" until interrupted (Ctrl-C) or tells it to return.
    import sys, time, pathlib
    import dumpdeck.cli.commands.demo as cmd
    from dumpdeck.backend import mysql

    marker = pathlib.Path(sys.argv[1])

    def console(config, *, read_only=False, theme=None, **_):
        conn = mysql.connect(config.server("demo"))
        dbs = mysql.list_databases(conn, config.server("demo"))
        conn.close()
        marker.write_text(",".join(dbs))
        while not marker.with_suffix(".quit").exists():
            time.sleep(0.05)
        return 0

    cmd.console_runner = lambda: (console, None)
    from dumpdeck.cli.main import main
    sys.exit(main(sys.argv[2:]))
    """)


def _start_standin(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "console_standin.py"
    script.write_text(CONSOLE_STANDIN)
    marker = tmp_path / f"{name}.marker"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONFAULTHANDLER="1")  # as `python -m dumpdeck` would see it
    proc = subprocess.Popen(
        [PYTHON, str(script), str(marker), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    return proc, marker


def test_console_exit_stops_and_removes_the_sandbox(tmp_path):
    directory = tmp_path / "d"
    proc, marker = _start_standin(
        tmp_path, "a", "demo", "--dir", str(directory), "--scale", str(SMALL), "--no-seed-backups"
    )
    try:
        wait_until(lambda: marker.exists() or proc.poll() is not None, 60, what="the console to open")
        assert marker.exists(), proc.communicate()
        assert set(sample_data.DATABASES) <= set(marker.read_text().split(","))
        pid = _sandbox_pid(directory)
        marker.with_suffix(".quit").touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sandbox stopped" in out
    assert not process_alive(pid) and not directory.exists()


def test_second_demo_shares_the_running_one_and_ctrl_c_stops_it(tmp_path):
    directory = tmp_path / "d"
    first, marker = _start_standin(
        tmp_path, "first", "demo", "--dir", str(directory), "--scale", str(SMALL), "--no-seed-backups"
    )
    try:
        wait_until(lambda: marker.exists() or first.poll() is not None, 60, what="the first console")
        assert marker.exists(), first.communicate()
        pid = _sandbox_pid(directory)

        # The second demo joins it, says whose it is, and leaves it running when it exits.
        second, marker2 = _start_standin(tmp_path, "second", "demo", "--dir", str(directory), "--scale", str(SMALL))
        wait_until(lambda: marker2.exists() or second.poll() is not None, 60, what="the second console")
        marker2.with_suffix(".quit").touch()
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert f"belongs to another `dumpdeck demo` (pid {first.pid})" in out
        assert f"still used by dumpdeck demo pid {first.pid}" in out
        assert process_alive(pid) and _sandbox_pid(directory) == pid

        # Ctrl-C in the first one: the sandbox stops and its files go.
        out, err = interrupt(first, 60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err
    assert not process_alive(pid)
    assert not directory.exists()


def test_refuses_a_directory_that_is_not_a_demo(tmp_path):
    directory = tmp_path / "precious"
    directory.mkdir()
    (directory / "notes.txt").write_text("mine")
    r = cli("demo", "--dir", str(directory), "--no-console")
    assert r.returncode == 2
    assert "not a dumpdeck demo directory" in r.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["notes.txt"]


def test_missing_mariadbd_prints_the_install_command_and_exits_2(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items()}
    env["PATH"] = str(empty)
    env["DUMPDECK_MARIADB_PATH"] = str(empty)  # find_binary also searches /usr/sbin; not here
    directory = tmp_path / "demo"
    r = cli("demo", "--dir", str(directory), "--no-console", env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    sudo = "" if os.geteuid() == 0 else "sudo "
    assert f"{sudo}apt-get install -y mariadb-server mariadb-client" in r.stderr
    assert "mariadbd" in r.stderr and "mariadb-install-db" in r.stderr
    assert "Traceback" not in r.stderr
    assert not directory.exists()


def _python_for(user: str) -> list[str] | None:
    """A command that runs `dumpdeck` as `user` with this checkout's packages."""
    ok = subprocess.run(
        ["runuser", "-u", user, "--", PYTHON, "-c", "import pymysql, yaml, dumpdeck.cli.main"],
        capture_output=True,
        cwd="/",
    )
    if ok.returncode == 0:
        return [PYTHON, "-m", "dumpdeck"]
    # e.g. the venv's interpreter lives under /root (pyenv): use the system one of the same
    # version with the venv's site-packages (same ABI), processed as a site directory so the
    # editable install's finder is active.
    import sysconfig

    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        return None
    boot = (
        f"import site, sys; site.addsitedir({sysconfig.get_paths()['purelib']!r}); "
        "from dumpdeck.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    ok = subprocess.run(
        ["runuser", "-u", user, "--", str(system), "-c", boot, "--version"], capture_output=True, cwd="/"
    )
    return [str(system), "-c", boot] if ok.returncode == 0 else None


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as a normal user already: the module demo covers it")
def test_demo_runs_as_a_normal_user(tmp_path):
    """As root, run the CLI as `nobody`: mariadbd must start without --user=root and run as nobody."""
    if find_binary("runuser") is None:
        pytest.skip("runuser (util-linux) is not installed")
    found = _python_for("nobody")
    if found is None:
        pytest.skip("no Python interpreter with this checkout's packages is executable by nobody")
    command = found
    base = Path("/tmp") / f"dumpdeck-demo-nobody-{os.getpid()}"
    base.mkdir(mode=0o777)
    os.chmod(base, 0o777)
    directory = base / "demo"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(base), "XDG_STATE_HOME": str(base / "state")}

    def as_nobody(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["runuser", "-u", "nobody", "--", *command, "demo", "--dir", str(directory), *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )

    try:
        r = as_nobody("--no-console", "--scale", str(SMALL), "--no-seed-backups")
        assert r.returncode == 0, r.stdout + r.stderr
        pid = _sandbox_pid(directory)
        with open(f"/proc/{pid}/status") as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
        assert int(uid) == 65534
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"--user=root" not in f.read()
        assert (directory / "server" / "data" / "shop").stat().st_uid == 65534  # nobody reaches its own dir
        r = as_nobody("--stop", "--purge")
        assert r.returncode == 0, r.stderr
        assert not process_alive(pid) and not directory.exists()
    finally:
        info = demo.read_info(directory)
        if info and info.sandbox_pid and process_alive(info.sandbox_pid):
            demo.stop(directory, purge=True)
        subprocess.run(["rm", "-rf", str(base)])


def test_default_directory_is_in_the_xdg_state_dir(capsys, monkeypatch):
    import tempfile

    from dumpdeck.cli.main import main

    # pytest's tmp_path is too deep for a unix socket path (107 bytes), so a short state dir
    state = Path(tempfile.mkdtemp(prefix="ddx-"))
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    expected = state / "dumpdeck" / "demo"
    assert demo.default_demo_dir() == expected
    try:
        assert main(["demo", "--no-console", "--scale", str(SMALL), "--no-seed-backups"]) == 0
        out = capsys.readouterr().out
        assert demo.read_info(expected).socket == str(demo._sandbox(expected).socket)
        assert "stop it:           dumpdeck demo --stop   (add --purge" in out  # no --dir needed
        assert f"dumpdeck --config {expected / 'dumpdeck-demo.yaml'}" in out
    finally:
        assert main(["demo", "--stop", "--purge"]) == 0
    assert not expected.exists()
    import shutil

    shutil.rmtree(state)


def test_too_deep_a_directory_is_refused_before_anything_is_written():
    import tempfile

    # reachable by the sandbox's user, so the server's files (and socket) would live right there
    base = Path(tempfile.mkdtemp(prefix="dd-deep-"))
    os.chmod(base, 0o755)
    directory = base / ("x" * 60) / ("y" * 40) / "demo"
    try:
        r = cli("demo", "--dir", str(directory), "--no-console")
        assert r.returncode == 2, r.stdout + r.stderr
        assert "too deep" in r.stderr and "limit is 107" in r.stderr
        assert not directory.exists()
    finally:
        if directory.exists():
            cli("demo", "--dir", str(directory), "--stop", "--purge")
        shutil.rmtree(base, ignore_errors=True)


def test_a_busy_port_is_named_and_nothing_is_left_behind(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        directory = tmp_path / "d"
        r = cli("demo", "--dir", str(directory), "--no-console", "--port", str(busy.getsockname()[1]))
    assert r.returncode == 1
    assert "Address already in use" in r.stderr and "choose another --port" in r.stderr
    assert "Traceback" not in r.stderr
    assert not directory.exists()
