"""Issue 12: the console tells the truth at every size. One pilot story per item.

Real parts where they can misbehave on demand (a sandbox server stopped after a backup,
a slow dump tool, a restore-test into a real sandbox); the fixed snapshots of
`tests/fixed_backend.py` where only the layout is in question (80x24 with a running run
and older runs).
"""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest
from textual.command import CommandPalette
from textual.widgets import Button, Log

from dumpdeck.backend import mysql
from dumpdeck.backend.config import load_config, parse_config
from dumpdeck.backend.errors import ConnectError
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.sandbox import Sandbox, free_port
from dumpdeck.tui.app import make_app
from dumpdeck.tui.screens.database import DatabaseScreen
from dumpdeck.tui.screens.dumps import DumpsScreen
from dumpdeck.tui.screens.modals import ConfirmModal
from dumpdeck.tui.views import DbProgressView, JobsSnapshot, RunView
from dumpdeck.tui.widgets.table import KeyedTable

from .fixed_backend import FixedBackend
from .helpers import create_sample_database, make_big_table, wait_until
from .test_console import FAST, cursor_to, db_table, until, visible_dbs
from .test_console_snapshots import NOW, fixed_backend


def _dashboard_text(app) -> str:
    return str(app.screen.query_one("#statusbar").render())


# --------------------------------------------------------------------------- 1. a down server


def test_connect_cause_names_why_a_server_is_down(mariadb, tmp_path):
    """The engine tells wrong password, refused, DNS and timeout apart (what the console shows)."""
    base = f"servers:\n  s:\n    host: 127.0.0.1\n    port: {mariadb.port}\n    user: bk\n    connect_timeout: 2\n"
    pw = tmp_path / "wrong.pass"
    pw.write_text("not-the-password\n")
    pw.chmod(0o600)
    cases = {
        "wrong password": base + f"    password_file: {pw}\n",
        "refused": base.replace(str(mariadb.port), str(free_port())),
        "DNS": base.replace("127.0.0.1", "db.nonexistent.invalid"),
    }
    silent = socket.socket()  # accepts the TCP connection, never says hello
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    cases["timeout"] = base.replace(str(mariadb.port), str(silent.getsockname()[1]))
    try:
        for cause, text in cases.items():
            config = parse_config(
                text + f"backup: {{dir: {tmp_path}/backups}}\nstate_dir: {tmp_path}/state\n", tmp_path / "c.yaml"
            )
            with pytest.raises(ConnectError) as err:
                mysql.connect(config.server("s"), read_timeout=2)
            assert err.value.cause == cause, (cause, str(err.value))
    finally:
        silent.close()


async def test_a_server_down_after_a_backup_keeps_its_databases_and_their_ages(tmp_path):
    """Back up a database of a real server, stop the server: its database stays listed with its
    real Last good and level, marked unreachable with the reason; Enter says why in full."""
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.verify import verify_file

    port = free_port()
    sb = Sandbox.create(tmp_path / "side", port=port)
    sb.start()
    try:
        create_sample_database(sb, "orders", rows=20)
        config = load_config(
            _write(
                tmp_path,
                f"servers:\n  side:\n    host: 127.0.0.1\n    port: {port}\n    user: root\n    connect_timeout: 2\n"
                f"backup:\n  dir: {tmp_path}/backups\nstate_dir: {tmp_path}/state\n",
            )
        )
        dumped = dump_database(config.server("side"), config.backup, "orders")
        assert verify_file(dumped.path, 2).passed
        app = make_app(config, intervals=FAST)
        async with app.run_test(size=(80, 24)) as pilot:
            table = db_table(app)
            await until(pilot, lambda: "side/orders" in table.row_keys, what="the database listed")
            up = table.raw("side/orders")
            assert up.status != "never" and up.level == 2 and up.bytes
            sb.stop()
            await until(
                pilot,
                lambda: app.servers["side"] is not None and not app.servers["side"].reachable,
                timeout=60,
                what="the server to be seen down",
            )
            await until(pilot, lambda: table.raw("side/orders").status.startswith("unreachable"), what="the row")
            row = table.raw("side/orders")
            assert row.status == "unreachable: refused"
            assert row.last_good == pytest.approx(up.last_good) and row.level == 2  # its real age and level
            assert row.bytes == up.bytes  # the size it last said
            cells = [str(c) for c in table.get_row("side/orders")]
            assert cells[4].endswith(" ago") and cells[4] != "never", cells
            assert "down: side (refused)" in _dashboard_text(app)

            await cursor_to(pilot, table, "side/orders")
            await pilot.press("enter")
            assert isinstance(app.screen, DatabaseScreen)
            server = str(app.screen.query_one("#db-server").render())
            assert "DOWN" in server and "refused" in server and f"127.0.0.1:{port}" in server
            dumps = app.screen.query_one("#db-dumps", KeyedTable)
            await until(pilot, lambda: str(dumped.path) in dumps.row_keys, what="its dump listed")
            await pilot.press("escape")
            assert app.screen is not None and not isinstance(app.screen, DatabaseScreen)
    finally:
        sb.destroy()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- 3. running work visible


def _busy_backend(tmp_path: Path) -> FixedBackend:
    """The snapshot fixture plus ten finished runs below the two running ones."""
    be = fixed_backend(tmp_path)
    older = tuple(
        RunView(30 - i, "nightly", "main", "succeeded", "cron", NOW - 90_000 * (i + 1), NOW - 89_000 * (i + 1))
        for i in range(10)
    )
    be.jobs = JobsSnapshot(runs=be.jobs.runs + older, polled_at=NOW)
    return be


async def test_running_runs_stay_in_sight_at_80x24(tmp_path):
    """80x24 with two running runs and a dozen finished ones: the running rows are the first ones,
    in the visible part of the Jobs pane, also after sorting, and a multi-database run says
    '3 databases' instead of widening the column."""
    be = _busy_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        jobs = app.screen.query_one("#jobs", KeyedTable)
        await until(pilot, lambda: jobs.row_count > 10, what="the runs listed")
        running = ["43:wiki", "42", "42:shop"]
        assert jobs.row_keys[:3] == running
        visible_rows = jobs.scrollable_content_region.height - 1  # minus the header
        assert visible_rows >= len(running) + 1, visible_rows  # every running row and an older run in sight
        assert jobs.scroll_y == 0
        assert str(jobs.get_row("42")[1]) == "3 databases"
        await pilot.press("2", "s", "s", "s")  # sort the Jobs pane by a column, reversed, then the next
        assert jobs.row_keys[:3] == running
        await pilot.press("j", "j", "j", "j")
        assert jobs.cursor_row == 4


async def test_the_jobs_pane_takes_empty_database_rows_first(tmp_path):
    """Few databases: the Jobs pane gets the rows the Databases pane would leave empty."""
    be = _busy_backend(tmp_path)
    be.servers = {"main": be.servers["main"]}
    be.servers["main"] = type(be.servers["main"])(
        "main", "/s", True, be.servers["main"].databases[:3], label="MariaDB 10.11"
    )
    config = parse_config(
        f"servers:\n  main: {{socket: {tmp_path}/none.sock}}\nbackup: {{dir: /var/backups/mysql}}\n"
        f"state_dir: {tmp_path}/state\n",
        tmp_path / "config.yaml",
    )
    be.config = config
    app = make_app(config, backend=be, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        dbs = db_table(app)
        jobs = app.screen.query_one("#jobs", KeyedTable)
        db_view = dbs.scrollable_content_region.height - 1
        assert db_view <= max(4, dbs.row_count), (db_view, dbs.row_count)  # no empty database rows
        assert jobs.scrollable_content_region.height - 1 > 5


# --------------------------------------------------------------------------- 4. live means live


async def test_log_following_survives_resize_and_maximize(write_config):
    path = write_config()
    config = load_config(path)
    log_file = Path(config.log.file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(
        "".join(f"2025-06-15 15:00:{i:02d},000 INFO    [1] dumpdeck.test: line {i}\n" for i in range(60))
    )
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(80, 24)) as pilot:
        log = app.screen.query_one("#log", Log)
        await until(pilot, lambda: any("line 59" in ln for ln in log.lines), what="the tail")
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        await pilot.resize_terminal(80, 24)
        await pilot.press("4", "m")  # maximize the log pane, then restore it
        await pilot.pause()
        await pilot.press("m")
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        with open(log_file, "a") as f:
            f.write("2025-06-15 15:01:00,000 ERROR   [1] dumpdeck.test: the newest line\n")
        await until(pilot, lambda: any("the newest line" in ln for ln in log.lines), what="the new line")
        await until(pilot, lambda: log.scroll_y >= log.max_scroll_y and log.max_scroll_y > 0, what="it in sight")
        assert "following" in app.screen.query_one("#log-pane").border_title


async def test_last_good_and_elapsed_move_with_the_clock(tmp_path):
    """No poll brings anything new; the ages and the running dump's elapsed time still move."""
    be = fixed_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        dbs = db_table(app)
        jobs = app.screen.query_one("#jobs", KeyedTable)
        age = str(dbs.get_row("main/crm")[4])
        elapsed = str(jobs.get_row("43:wiki")[7])
        be._now += 125
        app.screen.render_state("jobs")  # what every jobs poll does
        await pilot.pause()
        assert str(dbs.get_row("main/crm")[4]) != age
        assert str(jobs.get_row("43:wiki")[7]) != elapsed


def test_eta_says_estimating_until_there_is_signal():
    p = DbProgressView("shop", "running", 1_000_000, 0, 5e6, None, NOW - 2, NOW, 300_000_000, 7200.0)
    assert p.eta(NOW) is None  # two seconds, 0.3 %: estimating, not "2h57m"
    p2 = DbProgressView("shop", "running", 60_000_000, 0, 5e6, None, NOW - 30, NOW, 300_000_000, 7200.0)
    assert p2.eta(NOW) == pytest.approx(120.0)  # 20 % in 30 s: 2 minutes left
    hist = DbProgressView("shop", "running", 1_000_000, 0, 5e6, None, NOW - 2, NOW, 300_000_000, 7200.0, typical=180.0)
    assert hist.eta(NOW) == pytest.approx(178.0)  # from the history of earlier dumps
    done = DbProgressView("shop", "succeeded", 9, 9, 0.0, None, NOW - 100, NOW - 40, 9, 7200.0)
    assert done.eta(NOW) is None and done.time_left(NOW) is None
    assert done.elapsed(NOW) == pytest.approx(60.0)  # a finished database stops counting


# --------------------------------------------------------------------------- 5. cancelling


async def test_cancel_says_cancelling_at_once_and_the_runner_is_gone_soon(write_config, make_db, slow_tool):
    db = make_db("console_cancel2", rows=10)
    path = write_config()
    path.write_text(
        path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {slow_tool}\n")
    )
    config = load_config(path)
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: db in visible_dbs(app), what="database listed")
        await cursor_to(pilot, db_table(app), f"main/{db}")
        await pilot.press("b")
        run = await until(
            pilot,
            lambda: next(
                (r for r in app.jobs.active if db in r.databases and any(p.status == "running" for p in r.progress)),
                None,
            ),
            what="the dump to be running",
        )
        from dumpdeck.backend.state import open_store

        with open_store(config) as store:
            runner_pid = store.get_run(run.id).pid
        await pilot.press("2", "c")
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        labels = [str(b.label) for b in modal.query(Button)]
        assert labels == [f"Cancel run #{run.id}", "Keep running"]
        jobs = app.screen_stack[0].query_one("#jobs", KeyedTable)
        shown: list[str] = []  # what the Jobs pane said of the run, render after render
        sync = jobs.sync

        def recording_sync(rows, pinned=()):
            shown.extend(str(cells[2]) for key, cells, _ in rows if key.split(":")[0] == str(run.id))
            sync(rows, pinned)

        jobs.sync = recording_sync
        await pilot.press("y")
        assert "cancelling" in app.screen.query_one("#jobs-pane").border_title or "cancelling" in shown
        await until(
            pilot,
            lambda: any(r.id == run.id and r.status == "cancelled" for r in app.jobs.runs),
            timeout=60,
            what="the run to be cancelled",
        )
        await until(pilot, lambda: "cancelled" in shown, what="the Jobs pane to show it cancelled")
        assert "cancelling" in shown[: shown.index("cancelled")], shown  # said before the runner was done
        await until(pilot, lambda: not _alive(runner_pid), timeout=30, what="the runner to be gone")
        await until(pilot, lambda: not _zombies(), timeout=30, what="no <defunct> child of the console")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _zombies() -> list[int]:
    return [c.pid for c in psutil.Process().children(recursive=True) if c.status() == psutil.STATUS_ZOMBIE]


async def test_a_restore_test_stopped_from_the_console_leaves_no_sandbox_nor_zombie(config, mariadb):
    """A restore-test into a sandbox, stopped from the dumps browser once the load runs: the
    ladder says it was not checked, nothing is held against the dump (it keeps its level), no
    mariadbd of it is left, no child of the console is <defunct> and no decoder still reads the dump."""
    from dumpdeck.backend import manifest as manifest_mod
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.verify import verify_file

    from .helpers import drop_database

    name = "console_rt_stop"
    make_big_table(mariadb, name, rows=1_500_000)
    try:
        dumped = dump_database(config.server("main"), config.backup, name)
    finally:
        drop_database(mariadb, name)
    assert verify_file(dumped.path, 3).passed  # the restore-test then goes straight to the load
    before = manifest_mod.load(dumped.path).verifications
    mariadbds_before = _mariadbds()
    app = make_app(config, intervals=FAST)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        browser = app.screen
        assert isinstance(browser, DumpsScreen)
        table = browser.query_one("#dumps", KeyedTable)
        await until(pilot, lambda: str(dumped.path) in table.row_keys, what="the dump listed")
        await cursor_to(pilot, table, str(dumped.path))
        app.start_restore_test(browser.current(), "sandbox")
        ladder = app.ladders[str(dumped.path)]
        await until(
            pilot,
            lambda: any(c.name == "confinement" and c.passed for c in ladder.checks),
            timeout=120,
            what="the load to begin",
        )
        await pilot.press("c")
        modal = app.screen
        assert isinstance(modal, ConfirmModal)
        assert [str(b.label) for b in modal.query(Button)] == ["Stop restore-test", "Keep testing"]
        await pilot.press("y")
        await until(pilot, lambda: not ladder.running, timeout=120, what="the restore-test to stop")
        assert ladder.outcome is Outcome.NOT_CHECKED and "not checked" in (ladder.error or "")
        names = [c.name for c in ladder.checks]
        assert "sandbox stopped" in names, names
        load = next(c for c in ladder.checks if c.name == "load")
        assert load.outcome is Outcome.NOT_CHECKED and "cancel" in load.evidence, load
    after = manifest_mod.load(dumped.path).verifications
    assert after[: len(before)] == before
    assert all(v.outcome is Outcome.NOT_CHECKED for v in after[len(before) :])  # never held against the dump
    from dumpdeck.backend.catalog import scan

    assert scan(config.backup.dir).get(dumped.path).verified_level == 3  # it keeps the level it had
    wait_until(lambda: _mariadbds() <= mariadbds_before, 30, what="the sandbox mariadbd to be gone")
    wait_until(lambda: not _zombies(), 30, what="no <defunct> child")
    wait_until(lambda: not _decoders_of(dumped.path), 30, what="no decoder of the dump left reading it")


def _decoders_of(path: Path) -> list[int]:
    """Child processes (zstd -dc …) still holding the dump open."""
    out = []
    for c in psutil.Process().children(recursive=True):
        try:
            if any(f.path == str(path) for f in c.open_files()):
                out.append(c.pid)
        except psutil.Error:
            continue
    return out


def _mariadbds() -> set[int]:
    """The mariadbd processes this test process started (the session's server, sandboxes)."""
    out = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.name() in ("mariadbd", "mysqld") and child.status() != psutil.STATUS_ZOMBIE:
                out.add(child.pid)
        except psutil.NoSuchProcess:
            pass
    return out


# --------------------------------------------------------------------------- 7. keys


async def test_vi_and_home_end_keys_move_the_cursor_in_every_table(tmp_path):
    be = fixed_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = db_table(app)
        last = table.row_count - 1
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == last
        await pilot.press("g")
        assert table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == last and table.scroll_x == 0  # End goes down, not sideways
        await pilot.press("home")
        assert table.cursor_row == 0
        await pilot.press("pagedown")
        assert table.cursor_row > 1
        await pilot.press("d")  # the dumps browser's table too
        dumps = app.screen.query_one("#dumps", KeyedTable)
        await pilot.press("G")
        assert dumps.cursor_row == dumps.row_count - 1
        await pilot.press("k", "k")
        assert dumps.cursor_row == dumps.row_count - 3
        await pilot.press("home")
        assert dumps.cursor_row == 0


async def test_enter_on_a_database_opens_its_detail(tmp_path):
    be = fixed_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await cursor_to(pilot, db_table(app), "main/shop")
        await pilot.press("enter")
        screen = app.screen
        assert isinstance(screen, DatabaseScreen) and (screen.server, screen.database) == ("main", "shop")
        dumps = screen.query_one("#db-dumps", KeyedTable)
        assert dumps.row_count == sum(1 for d in be.catalog.dumps if d.database == "shop")
        runs = screen.query_one("#db-runs", KeyedTable)
        assert {"41", "42", "40"} <= set(runs.row_keys)
        assert "up" in str(screen.query_one("#db-server").render())
        await pilot.press("d")  # the dumps browser on this database only
        assert isinstance(app.screen, DumpsScreen)
        assert {d.database for d in app.screen.visible_dumps()} == {"shop"}


async def test_select_all_none_palette_and_contextual_footer(tmp_path):
    be = fixed_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        dash = app.screen
        await pilot.press("a")
        assert dash.selected == {k for k in db_table(app).row_keys if not k.endswith("/")}
        await pilot.press("u")
        assert not dash.selected

        def footer_keys() -> set[str]:
            return {b.binding.action for b in app.screen.active_bindings.values() if b.binding.show and b.enabled}

        assert {"screen.backup", "screen.toggle_select"} <= footer_keys()
        assert "screen.cancel_run" not in footer_keys()
        await pilot.press("2")
        assert "screen.cancel_run" in footer_keys() and "screen.backup" not in footer_keys()
        await pilot.press("4")
        assert {"screen.toggle_follow", "screen.log_level"} <= footer_keys()
        await pilot.press("ctrl+p")
        assert isinstance(app.screen, CommandPalette)


# --------------------------------------------------------------------------- 9. the quit hint


async def test_the_quit_hint_names_the_command_that_reopens_this_console(tmp_path):
    be = fixed_backend(tmp_path)
    app = make_app(be.config, backend=be, live=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert f"dumpdeck --config {tmp_path}/config.yaml" in app._quit_message()
    demo = make_app(be.config, backend=be, live=False, reopen="dumpdeck demo")
    async with demo.run_test(size=(80, 24)) as pilot:
        await demo.workers.wait_for_complete()
        await pilot.pause()
        assert "Run `dumpdeck demo` to watch them" in demo._quit_message()


def test_a_cancelled_verification_stops_and_records_nothing(config, sample_db):
    """verify_file with its cancel set stops the stream pass: not checked (VerifyError), nothing
    appended to the manifest (a runner cancelled during verification stops at once)."""
    import threading

    from dumpdeck.backend import manifest as manifest_mod
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.errors import VerifyError
    from dumpdeck.backend.verify import verify_file

    dumped = dump_database(config.server("main"), config.backup, sample_db)
    before = manifest_mod.load(dumped.path).verifications
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(VerifyError, match="cancelled"):
        verify_file(dumped.path, 3, cancel=cancel)
    assert manifest_mod.load(dumped.path).verifications == before


# --------------------------------------------------------------------------- 6. the log tells the story


def _dd(*args: str):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", *args], check=False, capture_output=True, text=True, timeout=300
    )


def test_the_log_tells_the_story(write_config, sample_db):
    """A failed backup is an ERROR line; a quiet notification is not an INFO line; a verify logs its
    start and its outcome (the Log pane tails this file)."""
    cfg = write_config()
    config = load_config(cfg)
    log = Path(config.log.file)
    ok = _dd("--config", str(cfg), "backup", sample_db)
    assert ok.returncode == 0, ok.stderr
    text = log.read_text()
    assert "succeeded" in text and " INFO " in text
    assert "not sent" not in text  # the smart policy stays quiet after a success: a DEBUG line
    bad = _dd("--config", str(cfg), "backup", "no_such_db")
    assert bad.returncode == 1
    failed = [ln for ln in log.read_text().splitlines() if " failed" in ln and "no_such_db" in ln]
    assert any(" ERROR " in ln for ln in failed), failed
    from dumpdeck.backend.catalog import scan

    dump = scan(config.backup.dir).latest(sample_db)
    v = _dd("--config", str(cfg), "verify", str(dump.path))
    assert v.returncode == 0, v.stderr
    lines = [ln for ln in log.read_text().splitlines() if "verify of " + dump.path.name in ln]
    assert any(ln.endswith("started") for ln in lines), lines
    assert any("passed level 3" in ln and " INFO " in ln for ln in lines), lines


# --------------------------------------------------------------------------- 8. CLI tables


def _pty_run(argv: list[str], columns: int = 200) -> str:
    """Run a command on a pseudo-terminal (colour on, as on a real one) and return what it printed."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios

    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal that says it does colour
        os.environ.pop("NO_COLOR", None)
        os.environ["TERM"] = "xterm-256color"
        os.execvp(argv[0], argv)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    os.waitpid(pid, 0)
    return out.decode("utf-8", "replace").replace("\r\n", "\n")


def _columns_line_up(text: str, header: str, left: tuple[str, ...] = (), right: tuple[str, ...] = ()) -> int:
    """The table under `header` (its first two words) as a terminal shows it (colour codes take no
    room): in each row, the cell of each `left` column starts where its header word starts, the
    cell of each `right` column ends where its header word ends. Returns the rows checked."""
    import re

    from rich.cells import cell_len
    from rich.text import Text

    def cells(line: str) -> list[str]:  # one entry per terminal cell (a wide character takes two)
        out = []
        for ch in line:
            out.extend([ch] + [""] * (cell_len(ch) - 1))
        return out

    lines = [Text.from_ansi(ln).plain for ln in text.splitlines()]
    first, second = header.split()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(first + " ") and f" {second} " in ln)
    spans = {m.group(): (m.start(), m.end()) for m in re.finditer(r"\S+", lines[start])}
    rows = []
    for ln in lines[start + 1 :]:
        if not ln.strip() or ln.startswith(" "):
            break
        rows.append(cells(ln))
    assert rows, text
    for row in rows:
        line = "".join(row)
        for word in left:
            s, _ = spans[word]
            assert row[s - 1] == " " and row[s] not in (" ", ""), (word, lines[start], line)
        for word in right:
            _, e = spans[word]
            assert row[e - 1] not in (" ", "") and (e >= len(row) or row[e] == " "), (word, lines[start], line)
    return len(rows)


def test_cli_tables_line_up_with_colour_on_a_terminal(write_config, sample_db, make_db):
    """`job status` (a coloured STATUS column), a run's own table and `list` (a name in wide
    characters) line up on a terminal with colour on: widths are display widths."""
    import sys

    wide = make_db("wide_日本語", rows=5)
    cfg = write_config()
    assert _dd("--config", str(cfg), "backup", sample_db, wide).returncode == 0
    assert _dd("--config", str(cfg), "backup", "no_such_db").returncode == 1
    base = [sys.executable, "-m", "dumpdeck", "--config", str(cfg)]
    out = _pty_run([*base, "job", "status"])
    assert "\x1b[32msucceeded" in out and "\x1b[31mfailed" in out  # coloured, as on a real terminal
    assert _columns_line_up(out, "RUN JOB", left=("SERVER", "DATABASES", "CREATED", "TOOK")) == 2
    out = _pty_run([*base, "job", "status", "1"])
    assert _columns_line_up(out, "DATABASE STATUS", left=("STATUS",), right=("TRY", "RAW", "STORED")) == 2
    out = _pty_run([*base, "list"])
    assert _columns_line_up(out, "SERVER DATABASE", left=("TIME", "CODEC", "FILE"), right=("SIZE",)) == 2
