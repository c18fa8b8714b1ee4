"""Secrets leave no trace: not in any child's argv or environment, not on disk after a SIGKILL, and
state, logs, run logs, locks and the report are private whatever the umask.

A dedicated account with a random password, so finding the password anywhere on the host is proof.
"""

from __future__ import annotations

import os
import secrets
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dumpdeck.backend.mysql import quote_ident

from .helpers import make_big_table, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def secret_account(mariadb):
    user = f"sec_{os.getpid()}"
    password = "pw-" + secrets.token_hex(12)
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'")
        cur.execute(
            f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, PROCESS ON *.* TO '{user}'@'localhost'"
        )
    yield user, password
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")


@pytest.fixture
def secret_db(mariadb):
    name = f"secret_big_{os.getpid()}"
    make_big_table(mariadb, name, rows=400_000)
    yield name
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)}")


def _config(tmp_path, mariadb, user, extra: str = "") -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {mariadb.socket}
            user: {user}
            password_env: DD_SECRET_PW
        backup:
          dir: {tmp_path / "backups"}
          compression: gzip
          timeout: 5m
          stall_timeout: 60s
        state_dir: {tmp_path / "state"}
        """)
        + extra
    )
    return path


def _env(tmp_path, password: str) -> dict:
    env = dict(os.environ)
    env["DD_SECRET_PW"] = password
    env["XDG_RUNTIME_DIR"] = str(tmp_path / "run")
    (tmp_path / "run").mkdir(exist_ok=True, mode=0o700)
    return env


def _scan(exclude: set[int], needle: bytes, violations: list, seen: list, same_as: bytes = b"") -> None:
    """Read argv and environment of every process on the host except `exclude`, and except copies of
    the CLI itself (`same_as`: its cmdline) caught between fork and exec, which still carry its memory."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in exclude:
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes()
            environ = Path(entry.path, "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if same_as and cmdline == same_as:
            continue
        if (needle in cmdline or needle in environ) and int(entry.name) not in {v[0] for v in violations}:
            violations.append((int(entry.name), cmdline.replace(b"\0", b" ")[:300]))
        if b"mariadb-dump" in cmdline or b"dumpdeck.backend.runner" in cmdline or b"gzip" in cmdline:
            seen.append(cmdline.replace(b"\0", b" ")[:600])


def _dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _files_containing(roots: list[Path], needle: bytes) -> list[Path]:
    out = []
    for root in roots:
        if not root.exists():
            continue
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = Path(dirpath, name)
                try:
                    if p.is_file() and p.stat().st_size < 50_000_000 and needle in p.read_bytes():
                        out.append(p)
                except OSError:
                    continue
    return out


@pytest.mark.parametrize("detach", [False, True], ids=["foreground", "detached-runner"])
def test_password_env_is_in_no_child_argv_or_environment(tmp_path, mariadb, secret_account, secret_db, detach):
    user, password = secret_account
    config = _config(tmp_path, mariadb, user)
    args = [sys.executable, "-m", "dumpdeck", "--config", str(config), "backup", secret_db]
    if detach:
        args.append("--detach")
    cli = subprocess.Popen(args, env=_env(tmp_path, password), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    violations: list = []
    seen: list = []
    needle = password.encode()
    me = {os.getpid(), cli.pid}  # the CLI was started with the variable by its caller (this test)
    cli_cmdline = b"\0".join(os.fsencode(a) for a in args) + b"\0"
    runner_done = False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        _scan(me, needle, violations, seen, cli_cmdline)
        if cli.poll() is not None:
            if not detach:
                break
            # the detached runner outlives the CLI: follow it until it is gone
            runners = [s for s in seen if b"dumpdeck.backend.runner" in s and str(config).encode() in s]
            alive = any(
                str(config).encode() in Path(f"/proc/{e.name}/cmdline").read_bytes()
                for e in os.scandir("/proc")
                if e.name.isdigit() and Path(f"/proc/{e.name}/cmdline").exists()
            )
            if runners and not alive:
                runner_done = True
                break
        time.sleep(0.01)
    _out, err = cli.communicate(timeout=60)
    assert cli.returncode == 0, err.decode()
    assert not violations, f"the password was visible in: {violations}"
    assert any(b"mariadb-dump" in s for s in seen), "no dump process was observed: the test proved nothing"
    if detach:
        ours = [s for s in seen if b"dumpdeck.backend.runner" in s and str(config).encode() in s]
        assert runner_done and ours
        assert all(b"--secrets-fd" in s for s in ours)
    # and nothing written anywhere holds it
    assert _files_containing([tmp_path, Path("/tmp") / f"dumpdeck-{os.getuid()}"], needle) == []


def test_sigkilled_runner_leaves_no_credentials_file(tmp_path, mariadb, secret_account, secret_db):
    user, password = secret_account
    config = _config(tmp_path, mariadb, user)
    env = _env(tmp_path, password)
    res = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), "backup", secret_db, "--detach", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr

    def runner_and_dump():
        runner = dump = None
        for e in os.scandir("/proc"):
            if not e.name.isdigit():
                continue
            try:
                cmd = Path(e.path, "cmdline").read_bytes()
            except OSError:
                continue
            if b"dumpdeck.backend.runner" in cmd and str(config).encode() in cmd:
                runner = int(e.name)
            elif cmd.startswith(b"mariadb-dump") or b"/mariadb-dump\0" in cmd:
                try:
                    status = Path(e.path, "status").read_text()
                except OSError:
                    continue
                ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
                dump = (int(e.name), ppid)
        if runner and dump and dump[1] == runner:
            return runner
        return None

    runner = wait_until(runner_and_dump, timeout=120, what="the runner's mariadb-dump to start")
    os.kill(runner, signal.SIGKILL)
    wait_until(lambda: _dead(runner), timeout=30, what="the runner to die")
    needle = password.encode()
    roots = [tmp_path, Path("/tmp") / f"dumpdeck-{os.getuid()}", Path("/dev/shm")]
    assert _files_containing(roots, needle) == []  # memfd: nothing was ever on disk
    clean = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), "clean"], env=env, cwd=ROOT, capture_output=True
    )
    assert clean.returncode == 0, clean.stderr
    assert _files_containing(roots, needle) == []


FALLBACK = """
import os, sys, time
from dumpdeck.backend.config import load_config
from dumpdeck.backend.credentials import capture_env_secrets, client_credentials
del os.memfd_create  # a platform without memfd: the option file goes to the runtime directory
config = load_config(sys.argv[1])
capture_env_secrets(config)
with client_credentials(config.server("main")) as cred:
    print(cred.path, flush=True)
    time.sleep(600)
"""


def test_fallback_option_file_is_private_and_removed_by_clean_and_by_the_next_run(
    tmp_path, mariadb, secret_account, sample_db
):
    user, password = secret_account
    config = _config(tmp_path, mariadb, user)
    env = _env(tmp_path, password)
    for remover in (["clean"], ["backup", sample_db]):
        proc = subprocess.Popen(
            [sys.executable, "-c", FALLBACK, str(config)], env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        path = Path(proc.stdout.readline().strip())
        assert path.parent == tmp_path / "run" / "dumpdeck"
        assert password in path.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        proc.kill()  # SIGKILL: its finally never runs
        proc.wait()
        assert path.exists()
        res = subprocess.run(
            [sys.executable, "-m", "dumpdeck", "--config", str(config), *remover],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        assert not path.exists(), f"`dumpdeck {' '.join(remover)}` left {path}"
        assert _files_containing([tmp_path / "run"], password.encode()) == []


def test_state_logs_locks_and_report_are_private_whatever_the_umask(tmp_path, mariadb, sample_db):
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {mariadb.socket}
            user: root
        backup:
          dir: {tmp_path / "backups"}
          timeout: 5m
        state_dir: {tmp_path / "state"}
        jobs:
          nightly:
            server: main
            databases: [{sample_db}]
            verify: 1
        """)
    )
    for cmd in (["backup", sample_db], ["job", "run", "nightly"], ["report"]):
        res = subprocess.run(
            [sys.executable, "-m", "dumpdeck", "--config", str(config), *cmd],
            cwd=ROOT,
            capture_output=True,
            text=True,
            preexec_fn=lambda: os.umask(0),
        )
        assert res.returncode == 0, (cmd, res.stdout, res.stderr)
    state = tmp_path / "state"
    checked = []
    for dirpath, dirs, files in os.walk(state):
        for name in dirs:
            mode = stat.S_IMODE(os.stat(Path(dirpath, name)).st_mode)
            assert mode & 0o027 == 0, f"{Path(dirpath, name)} is {oct(mode)}"
            checked.append(name)
        for name in files:
            mode = stat.S_IMODE(os.stat(Path(dirpath, name)).st_mode)
            assert mode & 0o137 == 0, f"{Path(dirpath, name)} is {oct(mode)}"
            checked.append(name)
    assert stat.S_IMODE(state.stat().st_mode) & 0o027 == 0
    names = set(checked)
    assert {"state.db", "dumpdeck.log", "report.html", "runs", "locks"} <= names, names
    assert any(n.endswith(".log") and n != "dumpdeck.log" for n in names)  # run logs
    assert any(n.endswith(".lock") for n in names)
