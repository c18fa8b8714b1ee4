"""The real `dumpdeck` binary in tmux: a restore-test started and stopped from the console leaves no
sandbox mariadbd and no <defunct> child (read from the process table), and the Restore flow with
`--replace`'s typed confirmation and the Jobs pane read right at 80x24 and at 200x50 (the world is
then compared with the dump by CHECKSUM TABLE)."""

from __future__ import annotations

import shutil

import psutil
import pytest

from dumpdeck.backend.config import load_config
from dumpdeck.backend.dump import dump_database
from dumpdeck.backend.verify import verify_file

from .helpers import drop_database, make_big_table, table_checksums, tmux, wait_until
from .test_console_tmux import Console, garbled, wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")


def console_process(con: Console) -> psutil.Process:
    """The dumpdeck process running in the tmux pane."""
    pane = psutil.Process(int(tmux(con.session, "display-message", "-p", "-t", con.session, "#{pane_pid}").strip()))

    def find():
        for p in [pane, *pane.children(recursive=True)]:
            try:
                cmd = " ".join(p.cmdline())
            except psutil.Error:
                continue
            if "dumpdeck" in cmd and "--config" in cmd and not cmd.startswith("env "):
                return p
        return None

    return wait_until(find, timeout=20, what="the console's process")


def descendants(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def sandboxes(proc: psutil.Process) -> list[int]:
    out = []
    for c in descendants(proc):
        try:
            if c.name() in ("mariadbd", "mysqld") and c.status() != psutil.STATUS_ZOMBIE:
                out.append(c.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def zombies(proc: psutil.Process) -> list[int]:
    out = []
    for c in descendants(proc):
        try:
            if c.status() == psutil.STATUS_ZOMBIE:
                out.append(c.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def loading(proc: psutil.Process) -> bool:
    for c in descendants(proc):
        try:
            if any(a.startswith("--database=dumpdeck_rt_") for a in c.cmdline()):
                return True
        except psutil.Error:
            pass
    return False


def test_a_restore_test_stopped_in_tmux_leaves_no_sandbox_and_no_defunct_child(write_config, mariadb):
    cfg = write_config()
    config = load_config(cfg)
    name = "tmux_rt_stop"
    make_big_table(mariadb, name, rows=1_500_000)
    try:
        dumped = dump_database(config.server("main"), config.backup, name)
    finally:
        drop_database(mariadb, name)
    assert verify_file(dumped.path, 3).passed  # the restore-test goes straight to the load
    con = Console(cfg)
    try:
        wait_for(con.session, lambda s: "Databases" in s, 30, "the dashboard")
        console = console_process(con)
        con.keys("d")
        wait_for(con.session, lambda s: "Catalog" in s and name in s, 15, "the dump in the browser")
        con.keys("r")
        wait_for(con.session, lambda s: "Load it into a scratch database on" in s, 10, "the target chooser")
        con.keys("Enter")  # the configured default: a sandbox
        wait_until(lambda: sandboxes(console), timeout=120, what="the sandbox mariadbd, a child of the console")
        wait_until(lambda: loading(console), timeout=180, interval=0.2, what="the load into the sandbox")
        con.keys("c")
        modal = wait_for(con.session, lambda s: "Stop restore-test" in s, 10, "the stop confirmation")
        assert "Keep testing" in modal and not garbled(modal), garbled(modal)
        con.keys("y")
        screen = wait_for(con.session, lambda s: "not checked" in s, 120, "the ladder to say not checked")
        assert not garbled(screen), garbled(screen)
        # the console is still running: its sandbox and load clients are gone, and reaped
        assert console.is_running() and console.status() != psutil.STATUS_ZOMBIE
        wait_until(lambda: not sandboxes(console), timeout=60, what="no sandbox mariadbd left")
        wait_until(lambda: not zombies(console), timeout=30, what="no <defunct> child of the console")
        assert not loading(console)
        con.keys("Escape")
        wait_for(con.session, lambda s: "Databases" in s, 10, "the dashboard")
        con.keys("q")
        wait_for(con.session, lambda s: "EXITED 0" in s, 15, "the console to quit")
    finally:
        con.close()


@pytest.mark.parametrize(("width", "height"), [(80, 24), (200, 50)])
def test_restore_replace_flow_and_jobs_pane_in_tmux(write_config, mariadb, sample_db, width, height):
    cfg = write_config()
    config = load_config(cfg)
    dump_database(config.server("main"), config.backup, sample_db)
    at_dump = table_checksums(mariadb, sample_db)
    with mariadb.connect(sample_db) as conn, conn.cursor() as cur:
        cur.execute("UPDATE customers SET city = 'moved' WHERE id < 20")
    assert table_checksums(mariadb, sample_db) != at_dump
    con = Console(cfg, width=width, height=height)

    def clean(screen: str) -> str:
        assert not garbled(screen, width, height), garbled(screen, width, height)
        return screen

    try:
        wait_for(con.session, lambda s: "Databases" in s, 30, "the dashboard")
        con.keys("d")
        # the Restore key is in the dumps browser's footer
        clean(wait_for(con.session, lambda s: "Catalog" in s and "o Restore" in s, 15, "the dumps browser"))
        con.keys("o")
        clean(wait_for(con.session, lambda s: "Into database:" in s and "replaces" in s, 20, "the restore dialog"))
        con.keys("End", *["BSpace"] * len("_restored"))
        con.keys("Tab", "Space")  # replace it
        screen = clean(
            wait_for(con.session, lambda s: "replace in place" in s and "replaces " in s, 20, "the plan of a replace")
        )
        # what it replaces and that a safety dump comes first are on screen before the name is typed
        assert "refused" not in screen and "replace in place" in screen, screen
        replaces = next((ln for ln in screen.splitlines() if "replaces " in ln), "")
        assert "table(s) with about" in replaces, screen
        con.keys("Tab", "Tab", "Tab", "Tab")  # past the tables, the definer choice and the plan to the name
        for ch in sample_db:
            con.keys(ch)
        clean(
            wait_for(
                con.session,
                lambda s: f"Type '{sample_db}' to replace it" in s and f"Replace {sample_db}" in s,
                10,
                "the typed confirmation and the button naming the action",
            )
        )
        con.keys("Enter")
        con.keys("Escape")

        def job_line(s: str) -> str:
            return next((ln for ln in s.splitlines() if ln.startswith("│ #1 ")), "")

        screen = clean(wait_for(con.session, lambda s: "succeeded" in job_line(s), 120, "the restore run to succeed"))
        assert "restore →" in job_line(screen), screen  # a restore, not a backup of it
    finally:
        con.close()
    assert table_checksums(mariadb, sample_db) == at_dump
