"""Shared fixtures: a real throwaway mariadbd for the session, isolated dirs, configs, sample databases.

No test reads the developer's real home, config, state or servers: the autouse
`isolated_env` fixture points HOME, XDG dirs and DUMPDECK_CONFIG at tmp_path.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import signal
import tempfile
import textwrap
from pathlib import Path

import pytest

from dumpdeck.backend.config import load_config
from dumpdeck.backend.sandbox import Sandbox, free_port

from .helpers import create_sample_database, drop_database

_counter = itertools.count(1)

# A suite started in the background (`scripts/test &`, nohup, some CI runners) inherits SIGINT ignored, as
# would every dumpdeck a test starts (exec keeps an ignored signal ignored): the Ctrl-C tests then waited
# for nothing. The tests press Ctrl-C as a terminal would.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# scripts/test runs the suite in several processes (pytest-xdist). Each gets a temporary directory of
# its own, inherited by every dumpdeck it starts: one process's `dumpdeck clean` never sees (and
# removes) another's credentials, runtime directory or sockets. (tmux: a server per session, see
# helpers.tmux; pytest's tmp_path: a directory per process already.)
if os.environ.get("PYTEST_XDIST_WORKER"):
    _own_tmp = tempfile.mkdtemp(prefix=f"ddt-{os.environ['PYTEST_XDIST_WORKER']}-", dir="/tmp")
    os.chmod(_own_tmp, 0o1777)  # like /tmp: the sandbox's unprivileged server user works in it too
    os.environ["TMPDIR"] = _own_tmp
    tempfile.tempdir = None
    atexit.register(shutil.rmtree, _own_tmp, True)
    # xdist's workers get COLUMNS=80 LINES=24: a console started from a test (tmux, inheriting them) took
    # them for its terminal's size, and the CLI for its output's width.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory) -> Sandbox:
    """A private mariadbd (unix socket + a free TCP port on 127.0.0.1) for the whole session."""
    if shutil.which("mariadbd") is None and shutil.which("mariadbd", path="/usr/sbin") is None:
        pytest.fail(
            "mariadbd is not installed: run `apt-get install -y mariadb-server mariadb-client zstd` "
            "(the README's test command does this)"
        )
    directory = Path(tmp_path_factory.mktemp("mariadb"))
    # A server as a careful DBA runs it: binary log on, symbolic links off (a restore-test refuses
    # a target that honours DATA DIRECTORY), function creators trusted (else only SUPER creates
    # functions and triggers, and a restore-test never loads with SUPER). local_infile and
    # secure_file_priv keep MariaDB's permissive defaults, so the hostile corpus proves the
    # temporary account's grants, not the server's settings.
    sb = Sandbox.create(
        directory / "srv",
        port=free_port(),
        extra_args=(
            "--log-bin=binlog",
            "--server-id=1",
            "--binlog-format=ROW",
            "--symbolic-links=0",
            "--log-bin-trust-function-creators=1",
        ),
    )
    sb.start()
    with sb.connect() as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'bk'@'localhost' IDENTIFIED BY 'S3cret-Pw!x9'")
        cur.execute("CREATE USER IF NOT EXISTS 'bk'@'127.0.0.1' IDENTIFIED BY 'S3cret-Pw!x9'")
        for host in ("localhost", "127.0.0.1"):
            cur.execute(
                f"GRANT SELECT, SHOW VIEW, TRIGGER, EVENT, LOCK TABLES, RELOAD, BINLOG MONITOR, "
                f"PROCESS ON *.* TO 'bk'@'{host}'"
            )
    yield sb
    sb.destroy()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.delenv("DUMPDECK_CONFIG", raising=False)
    monkeypatch.delenv("MYSQL_PWD", raising=False)
    yield


@pytest.fixture
def write_config(tmp_path, mariadb):
    """Write a config file for the scratch server; `extra` YAML is appended. Returns its path."""

    def write(extra: str = "", *, password: bool = False, name: str = "config.yaml", tcp: bool = False) -> Path:
        backups = tmp_path / "backups"
        state = tmp_path / "state"
        lines = ["servers:", "  main:"]
        if tcp:
            lines += ["    host: 127.0.0.1", f"    port: {mariadb.port}"]
        else:
            lines += [f"    socket: {mariadb.socket}"]
        if password:
            pw = tmp_path / "bk.pass"
            pw.write_text("S3cret-Pw!x9\n")
            pw.chmod(0o600)
            lines += ["    user: bk", f"    password_file: {pw}"]
        else:
            lines += ["    user: root"]
        lines += [
            "backup:",
            f"  dir: {backups}",
            "  compression: zstd",
            "  timeout: 5m",
            "  stall_timeout: 60s",
            f"state_dir: {state}",
        ]
        text = "\n".join(lines) + "\n"
        path = tmp_path / name
        path.write_text(text + textwrap.dedent(extra))
        return path

    return write


@pytest.fixture
def config(write_config):
    return load_config(write_config())


@pytest.fixture
def sample_db(mariadb):
    """A fresh database with tables, a view, routines, a trigger, an event, BLOBs and utf8mb4 text."""
    name = f"sample_{os.getpid()}_{next(_counter)}"
    create_sample_database(mariadb, name)
    yield name
    drop_database(mariadb, name)


@pytest.fixture
def make_db(mariadb):
    """Factory: create_sample_database under any name (spaces, backticks…); dropped after the test."""
    made = []

    def make(name: str, rows: int = 200) -> str:
        create_sample_database(mariadb, name, rows=rows)
        made.append(name)
        return name

    yield make
    for name in made:
        drop_database(mariadb, name)


@pytest.fixture
def slow_tool(tmp_path) -> Path:
    """A stand-in dump tool (a real process) that writes a dump header and then hangs."""
    tool = tmp_path / "slow-dump"
    tool.write_text(
        "#!/bin/sh\n"
        "case \"$1\" in --version) echo 'slow-dump Ver 1.0'; exit 0;; esac\n"
        "echo '-- MariaDB dump 10.19  Distrib 10.11.0-MariaDB'\n"
        "exec sleep 300\n"
    )
    tool.chmod(0o755)
    return tool


@pytest.fixture(autouse=True)
def _signals_as_found():
    """A test leaves this process's signal dispositions and mask as it found them: every child started
    later inherits them (an ignored or blocked SIGINT makes Ctrl-C tests of other files hang)."""
    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD)

    def state():
        # the kernel's view too: C code can ignore a signal behind the signal module's back
        kernel = [
            ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith(("SigIgn", "SigBlk"))
        ]
        return {s.name: signal.getsignal(s) for s in watched}, signal.pthread_sigmask(signal.SIG_BLOCK, []), kernel

    before = state()
    yield
    after = state()
    assert after == before, f"the test changed this process's signal state: {before} -> {after}"
