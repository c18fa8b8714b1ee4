"""Honest errors and reasons (issue 10, list 6): each one against the real server and real processes.

Stand-ins are real processes (a shell script in place of the dump tool) where the real tool cannot
stall on demand; the checks read exit codes, stderr, the state store and the server's own counters.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.errors import DumpError
from dumpdeck.backend.state import StateStore

from .helpers import make_big_table, wait_until

ROOT = Path(__file__).resolve().parent.parent


def cli(config: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        **kw,
    )


def one_line_error(res: subprocess.CompletedProcess) -> str:
    lines = res.stderr.splitlines()
    assert "Traceback" not in res.stderr and len(lines) == 1, res.stderr
    return lines[0]


def _config(tmp_path: Path, mariadb, body: str, state: Path | None = None) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {mariadb.socket}
            user: root
        backup:
          dir: {tmp_path / "backups"}
          timeout: 5m
          stall_timeout: 60s
        state_dir: {state or tmp_path / "state"}
        """)
        + textwrap.dedent(body)
    )
    return path


# --------------------------------------------------------------------------- the state directory


@pytest.mark.parametrize("how", ["not-a-directory", "full"])
def test_unwritable_or_full_state_dir_is_one_line_and_exit_1(tmp_path, mariadb, sample_db, how):
    if how == "not-a-directory":
        (tmp_path / "afile").write_text("x")
        state = tmp_path / "afile" / "state"
    else:
        state = tmp_path / "state"
        state.mkdir()
        (state / "state.db").symlink_to("/dev/full")  # every write: ENOSPC, "database or disk is full"
    config = _config(tmp_path, mariadb, f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n", state)
    commands = [["backup", sample_db], ["job", "run", "nightly"], ["job", "status"]]
    if how == "not-a-directory":
        commands.append(["report"])  # (with /dev/full only the database is full; the page can be written)
    for args in commands:
        res = cli(config, *args)  # what cron runs: its stderr is all that is left
        assert res.returncode == 1, (args, res.stdout, res.stderr)
        line = one_line_error(res)
        assert line.startswith("dumpdeck: error:") and str(state) in line, line
        if how == "full":
            assert "full" in line


# --------------------------------------------------------------------------- a missing password file


def test_missing_password_file_of_a_job_server_is_a_config_error(tmp_path, mariadb, sample_db):
    missing = tmp_path / "nowhere" / "bk.pass"
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {mariadb.socket}
            user: bk
            password_file: {missing}
        backup:
          dir: {tmp_path / "backups"}
        state_dir: {tmp_path / "state"}
        jobs:
          nightly:
            server: main
            databases: [{sample_db}]
        """)
    )
    check = cli(config, "config", "check")
    assert check.returncode == 2 and f"{missing} does not exist (needed by job nightly)" in check.stderr
    backup = cli(config, "backup", sample_db)
    assert backup.returncode == 2 and str(missing) in one_line_error(backup)
    run = cli(config, "job", "run", "nightly")
    assert run.returncode == 2 and str(missing) in one_line_error(run)
    with StateStore.open(tmp_path / "state" / "state.db") as store:  # and cron's run is on record
        (recorded,) = store.list_runs(job="nightly")
    assert recorded.status == "failed" and str(missing) in recorded.reason
    assert not list((tmp_path / "backups").rglob("*.sql*"))


# --------------------------------------------------------------------------- stalls and max_runtime

STALLING_TOOL = """#!/bin/sh
case "$1" in --version) echo "mariadb-dump Ver 10.19 Distrib 10.11.6-MariaDB"; exit 0;; esac
echo "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"
exec sleep 300
"""


def test_a_stall_is_retried_per_retries_whatever_max_runtime_is(tmp_path, mariadb, sample_db):
    tool = tmp_path / "stalling-dump"
    tool.write_text(STALLING_TOOL)
    tool.chmod(0o755)
    # max_runtime (2 min) is shorter than backup.timeout (5 min): every attempt's wall clock is cut by
    # the budget, which made a stall read "max_runtime reached" and stopped the retries.
    config = _config(
        tmp_path,
        mariadb,
        f"""\
        jobs:
          nightly:
            server: main
            databases: [{sample_db}]
            retries: 2
            retry_delay: 1s
            stall_timeout: 2s
            max_runtime: 2m
            verify: 0
        """,
    )
    text = config.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n")
    config.write_text(text)
    res = cli(config, "job", "run", "nightly")
    assert res.returncode == 1, res.stderr
    with StateStore.open(tmp_path / "state" / "state.db") as store:
        (run,) = store.list_runs(job="nightly")
        starts = [e for e in store.events(run.id) if e.kind == "dump-start"]
        (progress,) = store.progress(run.id)
    assert len(starts) == 3, [e.message for e in store.events(run.id)]  # 1 + retries
    assert "stalled" in progress.error and "max_runtime" not in progress.error, progress.error
    assert "max_runtime" not in (run.reason or "")


# --------------------------------------------------------------------------- job run reports its own run

SLOW_GOOD_TOOL = """#!/bin/sh
case "$1" in --version) echo "mariadb-dump Ver 10.19 Distrib 10.11.6-MariaDB"; exit 0;; esac
echo "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"
while [ ! -e "{flag}" ]; do sleep 0.1; done
echo "-- Dump completed on 2026-01-01  2:00:00"
"""


def test_job_run_reports_its_own_run_not_the_jobs_newest(tmp_path, mariadb, sample_db):
    flag = tmp_path / "go"
    tool = tmp_path / "slow-dump"
    tool.write_text(SLOW_GOOD_TOOL.format(flag=flag))
    tool.chmod(0o755)
    config = _config(
        tmp_path, mariadb, f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 0\n"
    )
    config.write_text(
        config.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n")
    )
    first = subprocess.Popen(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), "job", "run", "nightly"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        state_db = tmp_path / "state" / "state.db"

        def running():
            if not state_db.exists():
                return None
            with StateStore.open(state_db) as store:
                return next((r for r in store.list_runs(job="nightly") if r.status == "running"), None)

        own = wait_until(running, timeout=60, what="the first run to be running")
        second = cli(config, "job", "run", "nightly")  # cron fires again: recorded as skipped, exit 3
        assert second.returncode == 3, second.stderr
        flag.touch()
        out, err = first.communicate(timeout=120)
    finally:
        flag.touch()
        if first.poll() is None:
            first.kill()
    with StateStore.open(state_db) as store:
        newest = store.list_runs(job="nightly")[0]
    assert newest.status == "skipped" and newest.id != own.id
    assert first.returncode == 0, err
    assert out.startswith(f"run {own.id} (nightly) succeeded"), out


# --------------------------------------------------------------------------- a killed compressor


def test_a_killed_compressor_says_it_was_killed(write_config, mariadb, tmp_path):
    config = load_config(write_config())
    db = f"kc_{os.getpid()}"
    make_big_table(mariadb, db)
    backup = config.backup.__class__(**{**config.backup.__dict__, "compression": "gzip", "threads": 1})
    killed = []

    def on_progress(p):
        if p.phase == "dumping" and not killed:
            for child in psutil.Process().children(recursive=True):
                if child.name() in ("gzip", "pigz"):
                    child.send_signal(signal.SIGKILL)
                    killed.append(child.pid)

    try:
        with pytest.raises(DumpError) as err:
            dump_database(config.server("main"), backup, db, on_progress=on_progress, progress_interval=0)
    finally:
        with mariadb.connect() as conn, conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db}")
    assert killed, "no compressor was seen"
    assert "gzip was killed by signal SIGKILL" in str(err.value), str(err.value)
    assert not list(Path(config.backup.dir).rglob("*.gz")) and not list(Path(config.backup.dir).rglob("*.partial"))


# --------------------------------------------------------------------------- a wrong password


def _access_denied(mariadb) -> int:
    with mariadb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Access_denied_errors'")
        return int(cur.fetchone()[1])


@pytest.mark.parametrize("command", ["backup", "job run"])
def test_a_wrong_password_is_tried_once(tmp_path, mariadb, sample_db, command):
    pw = tmp_path / "bk.pass"
    pw.write_text("not-the-password\n")
    pw.chmod(0o600)
    config = tmp_path / "config.yaml"
    config.write_text(
        textwrap.dedent(f"""\
        servers:
          main:
            socket: {mariadb.socket}
            user: bk
            password_file: {pw}
        backup:
          dir: {tmp_path / "backups"}
        state_dir: {tmp_path / "state"}
        jobs:
          nightly:
            server: main
            databases: [{sample_db}]
            retries: 3
            retry_delay: 1s
        """)
    )
    before = _access_denied(mariadb)
    res = cli(config, *(["backup", sample_db] if command == "backup" else ["job", "run", "nightly"]))
    after = _access_denied(mariadb)
    assert res.returncode == 1
    assert "access denied" in res.stderr and "attempts" not in res.stderr, res.stderr
    assert after - before == 1, f"{after - before} failed logins for one {command}"


# --------------------------------------------------------------------------- quitting the demo console

DEMO_CONSOLE = textwrap.dedent("""\
    # Stands in for the console: starts a backup in the demo (a detached runner), records the quit
    # note the demo gives the console, and quits while the run is still going.
    import os, sys, pathlib, shutil, yaml
    import dumpdeck.cli.commands.demo as cmd
    from dumpdeck.backend import jobs
    from dumpdeck.backend.config import load_config

    marker = pathlib.Path(sys.argv[1])

    def console(config, *, read_only=False, theme=None, quit_note=None, reopen=None):
        # a dump tool that takes its time, so the run is surely still going when the console quits
        tool = marker.with_suffix(".tool")
        tool.write_text(f"#!/bin/sh\\nsleep 3\\nexec {shutil.which('mariadb-dump')} \\"$@\\"\\n")
        tool.chmod(0o755)
        data = yaml.safe_load(pathlib.Path(config.path).read_text())
        data["backup"]["dump_tool"] = str(tool)
        pathlib.Path(config.path).write_text(yaml.safe_dump(data))
        run = jobs.start_run(load_config(config.path), databases=["shop"], server="demo")
        marker.write_text(f"{run.id}\\n{quit_note}\\n{config.path}")
        return 0

    cmd.console_runner = lambda: (console, None)
    from dumpdeck.cli.main import main
    sys.exit(main(sys.argv[2:]))
    """)


def test_quitting_the_demo_keeps_the_sandbox_until_its_runs_end(tmp_path):
    script = tmp_path / "standin.py"
    script.write_text(DEMO_CONSOLE)
    marker = tmp_path / "marker"
    directory = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            str(marker),
            "demo",
            "--dir",
            str(directory),
            "--scale",
            "0.02",
            "--no-seed-backups",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run_id, note, config_path = marker.read_text().split("\n")
    assert "stays up until they end" in note
    assert f"waiting for run(s) #{run_id} to end" in proc.stdout and f"--config {config_path}" in proc.stdout
    assert "sandbox stopped" in proc.stdout
    # the run ended on its own, with the sandbox up: it succeeded, it was not cut off
    assert f"run {run_id}" not in proc.stdout or "cancelling" not in proc.stdout
    assert proc.stdout.index("waiting for run(s)") < proc.stdout.index("sandbox stopped")


def test_the_quit_message_names_the_command_that_reopens_this_console(write_config):
    from dumpdeck.tui.app import make_app
    from dumpdeck.tui.views import JobsSnapshot, RunView

    config = load_config(write_config())
    app = make_app(config, quit_note="the demo sandbox stays up until they end")
    app.jobs = JobsSnapshot(runs=(RunView(7, "nightly", "main", "running", "cron", None, None),))
    message = app._quit_message()
    assert message is not None and f"dumpdeck --config {config.path}" in message
    assert "#7" in message and "stays up until they end" in message
