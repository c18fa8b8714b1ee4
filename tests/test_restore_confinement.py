"""Who a restore-test loads as, which targets it refuses, and what a killed one leaves behind.

- On a real server the load runs as a temporary account; if the configured account cannot create
  one, `restore_test.account` loads after SHOW GRANTS proved it holds nothing else; otherwise the
  target is refused (not checked). Never as the backup account.
- A server that honours DATA DIRECTORY, or one where only SUPER may create functions and triggers,
  is refused (not checked).
- A SIGKILLed restore-test takes its sandbox mariadbd and its loader clients with it; `dumpdeck clean`
  removes the sandbox's files, `dumpdeck clean --scratch` the scratch database and account a killed
  run on a real server left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import restore
from dumpdeck.backend.config import load_config
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.sandbox import Sandbox

from .helpers import wait_until
from .test_restore import dump_of, scratch_dbs

ROOT = Path(__file__).resolve().parents[1]
LOADER_PW = "Rt-l0ader-pw!"


def rt_accounts(mariadb) -> list[str]:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT User FROM mysql.user WHERE User LIKE 'dumpdeck\\_rt\\_%'")
        return [r[0] for r in cur.fetchall()]


def children(pid: int) -> list[tuple[int, str, list[bytes]]]:
    """(pid, comm, argv) of the processes whose parent is `pid`."""
    out = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
            argv = (p / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append((int(p.name), comm, argv))
    return out


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.fixture
def loader_account(mariadb):
    """An account made for restore-tests: ALL PRIVILEGES on `dumpdeck\\_rt\\_%` and nothing else."""
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'rtload'@'localhost' IDENTIFIED BY %s", (LOADER_PW,))
        cur.execute("GRANT ALL PRIVILEGES ON `dumpdeck\\_rt\\_%`.* TO 'rtload'@'localhost'")
    yield "rtload"
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("DROP USER IF EXISTS 'rtload'@'localhost'")


def backup_account_config(write_config, tmp_path, account: str | None):
    """The server's account is `bk` (no CREATE USER: it cannot make a temporary account)."""
    extra = ""
    if account:
        pw = tmp_path / "rtload.pass"
        pw.write_text(LOADER_PW + "\n")
        pw.chmod(0o600)
        extra = f"restore_test:\n  account:\n    user: {account}\n    password_file: {pw}\n"
    return load_config(write_config(extra, password=True))


def test_without_create_user_the_restore_test_account_loads(mariadb, config, write_config, tmp_path, sample_db):
    path = dump_of(config, sample_db)  # dumped by root; restore-tested through the backup account `bk`
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER 'rtload'@'localhost' IDENTIFIED BY %s", (LOADER_PW,))
        cur.execute("GRANT ALL PRIVILEGES ON `dumpdeck\\_rt\\_%`.* TO 'rtload'@'localhost'")
    try:
        cfg = backup_account_config(write_config, tmp_path, "rtload")
        report = restore.restore_test(path, cfg, "same", record=False)
        assert report.passed, report.summary
        confinement = next(c for c in report.checks if c.name == "confinement").evidence
        assert "restore_test.account 'rtload'@'localhost'" in confinement
        assert "binary log stays on" in confinement  # it may not turn it off, and says so
        load = next(c for c in report.checks if c.name == "load").evidence
        assert "as 'rtload'@'localhost'" in load
        assert scratch_dbs(mariadb) == [] and rt_accounts(mariadb) == []
        # an extra grant outside dumpdeck\_rt\_% is named, and nothing is loaded
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"GRANT SELECT ON `{sample_db}`.* TO 'rtload'@'localhost'")
            cur.execute("GRANT PROCESS ON *.* TO 'rtload'@'localhost'")
            cur.execute("GRANT ALL ON `dumpdeck_rt_%`.* TO 'rtload'@'localhost'")  # `_` unescaped: a wildcard
        report = restore.restore_test(path, cfg, "same", record=False)
        assert report.outcome is Outcome.NOT_CHECKED, report.summary
        refused = next(c for c in report.checks if c.name == "confinement").evidence
        assert "refused: restore_test.account rtload holds grants outside `dumpdeck\\_rt\\_%`" in refused
        assert f"GRANT SELECT ON `{sample_db}`.*" in refused and "GRANT PROCESS ON *.*" in refused
        assert "`dumpdeck_rt_%`.*" in refused
        assert "IDENTIFIED" not in refused and "PASSWORD" not in refused  # no hash in the message
        assert not any(c.name == "load" for c in report.checks)
        assert scratch_dbs(mariadb) == [] and rt_accounts(mariadb) == []
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("DROP USER IF EXISTS 'rtload'@'localhost'")


def test_never_loads_as_the_backup_account(mariadb, config, write_config, tmp_path, sample_db):
    path = dump_of(config, sample_db)
    cfg = backup_account_config(write_config, tmp_path, None)
    report = restore.restore_test(path, cfg, "same")
    assert report.outcome is Outcome.NOT_CHECKED, report.summary  # could not run: not the dump's fault
    refused = next(c for c in report.checks if c.name == "confinement")
    assert refused.outcome is Outcome.NOT_CHECKED
    assert "never loaded as the backup account" in refused.evidence and "--target sandbox" in refused.evidence
    assert "CREATE USER" in refused.evidence
    assert not any(c.name == "load" for c in report.checks)
    assert scratch_dbs(mariadb) == [] and rt_accounts(mariadb) == []
    m = manifest_mod.load(path)
    assert m.verified_level == 3  # what levels 1-3 proved; level 4 was not checked, and nothing says "failed"
    assert m.verifications[-1].outcome is Outcome.NOT_CHECKED
    assert not any(v.outcome is Outcome.FAILED for v in m.verifications)


def test_a_server_that_honours_data_directory_is_refused(config, sample_db, tmp_path, write_config):
    """MariaDB's default (symbolic links on): DATA DIRECTORY works for an account without FILE."""
    path = dump_of(config, sample_db)
    sb = Sandbox.create(tmp_path / "symlinks").start()
    try:
        cfg_path = write_config()
        cfg_path.write_text(
            cfg_path.read_text().replace(
                "servers:\n", f"servers:\n  other:\n    socket: {sb.socket}\n    user: root\n", 1
            )
        )
        cfg = load_config(cfg_path)
        report = restore.restore_test(path, cfg, "other", record=False)
        assert report.outcome is Outcome.NOT_CHECKED, report.summary
        refused = next(c for c in report.checks if c.name == "confinement").evidence
        assert "have_symlink=YES" in refused and "symbolic-links=0" in refused
        with sb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'dumpdeck%'")
            assert cur.fetchone()[0] == 0
    finally:
        sb.destroy()


def test_functions_need_trusted_creators_where_the_binary_log_is_on(mariadb, config, sample_db):
    path = dump_of(config, sample_db)  # the sample has a function and a trigger
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL log_bin_trust_function_creators=0")
    try:
        report = restore.restore_test(path, config, "same", record=False)
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL log_bin_trust_function_creators=1")
    assert report.outcome is Outcome.NOT_CHECKED, report.summary
    refused = next(c for c in report.checks if c.name == "confinement").evidence
    assert "log_bin_trust_function_creators" in refused and "2 function(s) and trigger(s)" in refused
    assert scratch_dbs(mariadb) == [] and rt_accounts(mariadb) == []


def _start_cli(cfg_path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "dumpdeck", "--config", str(cfg_path), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_killed_sandbox_restore_test_takes_its_server_and_clients_along(make_db, config, write_config):
    db = make_db(f"big_{os.getpid()}", rows=6000)
    path = dump_of(config, db)
    cfg_path = write_config("restore_test:\n  parallel: 2\n")
    cli = _start_cli(cfg_path, "restore-test", str(path), "--target", "sandbox", "--no-record")
    try:

        def loading():
            kids = children(cli.pid)
            servers = [
                p for p, comm, argv in kids if comm == "mariadbd" and any(b"dumpdeck-rt-sandbox-" in a for a in argv)
            ]
            clients = [p for p, comm, _ in kids if comm == "mariadb"]
            return (servers, clients) if servers and clients else None

        found = wait_until(loading, timeout=120, interval=0.02, what="the sandbox and a loader client")
        assert found, "the restore-test never reached its load"
        servers, clients = found
        home = next(
            Path(a.decode().split("=", 1)[1]).parent
            for a in Path(f"/proc/{servers[0]}/cmdline").read_bytes().split(b"\0")
            if a.startswith(b"--datadir=")
        )
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        assert wait_until(lambda: all(gone(p) for p in servers + clients), timeout=15, what="the sandbox to die"), (
            "the sandbox mariadbd or a loader client outlived the killed restore-test"
        )
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    assert home.is_dir()  # nothing could clean up after SIGKILL ...
    out = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(cfg_path), "clean"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"removed orphaned restore-test sandbox {home}" in out  # ... but `dumpdeck clean` does
    assert not home.exists()


def test_clean_scratch_drops_what_a_killed_run_left_on_the_server(mariadb, make_db, config, write_config):
    db = make_db(f"big2_{os.getpid()}", rows=6000)
    path = dump_of(config, db)
    cfg_path = write_config("restore_test:\n  parallel: 1\n")
    cli = _start_cli(cfg_path, "restore-test", str(path), "--target", "same", "--no-record")

    def sessions() -> list[str]:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT USER FROM information_schema.PROCESSLIST WHERE USER LIKE 'dumpdeck\\_rt\\_%'")
            return [r[0] for r in cur.fetchall()]

    try:
        assert wait_until(sessions, timeout=120, interval=0.02, what="a loader session"), "the load never started"
        cli.send_signal(signal.SIGKILL)
        cli.wait()
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
    # the loader clients died with it: their sessions end
    assert wait_until(lambda: not sessions(), timeout=30, what="the sessions to end")
    left_dbs, left_accounts = scratch_dbs(mariadb), rt_accounts(mariadb)
    assert left_dbs and left_accounts, "a SIGKILLed run cannot drop its scratch database and account"
    r = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(cfg_path), "clean", "--scratch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert f"dropped database `{left_dbs[0]}` on main" in r.stdout
    assert f"dropped temporary account '{left_accounts[0]}'@'localhost' on main" in r.stdout
    assert scratch_dbs(mariadb) == [] and rt_accounts(mariadb) == []


def test_clean_removes_credentials_of_dead_processes_only(write_config):
    cfg_path = write_config()
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = Path(tempfile.gettempdir())
    orphan = tmp / f"dumpdeck-cred-{dead.pid}-test"
    mine = tmp / f"dumpdeck-cred-{os.getpid()}-test"
    for d in (orphan, mine):
        d.mkdir(mode=0o700)
        (d / "client.cnf").write_text("[client]\npassword=x\n")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "dumpdeck", "--config", str(cfg_path), "clean"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"removed orphaned credentials directory {orphan}" in out
        assert not orphan.exists() and mine.exists()
    finally:
        for d in (orphan, mine):
            subprocess.run(["rm", "-rf", str(d)], check=True)
