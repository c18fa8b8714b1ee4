"""Names from the server are printed safely: control characters in database and table names are
escaped in the CLI, the logs and the console.

The world here is the terminal: the bytes the commands write, and a real terminal (tmux) whose
screen and pane title must be unchanged by what dumpdeck printed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dumpdeck.backend.mysql import quote_ident
from dumpdeck.backend.naming import printable

from .helpers import tmux

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = ROOT / ".venv" / "bin" / "dumpdeck"
CLEAR_AND_RETITLE = "esc\x1b[2J\x1b]0;TITLE\x07"
NEWLINE = "nl\nrow"
BIDI = "bidi\u202etxt"
TABLE = "t\x1b[31mred\x07"
CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")  # anything but \t and \n reaching a terminal
needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")


@pytest.fixture
def hostile_dbs(mariadb):
    names = [CLEAR_AND_RETITLE, NEWLINE, BIDI]
    with mariadb.connect() as conn, conn.cursor() as cur:
        for n in names:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(n)}")
            cur.execute(f"CREATE DATABASE {quote_ident(n)}")
            cur.execute(f"CREATE TABLE {quote_ident(n)}.{quote_ident(TABLE)} (a INT PRIMARY KEY, b VARCHAR(10))")
            cur.execute(f"INSERT INTO {quote_ident(n)}.{quote_ident(TABLE)} VALUES (1, 'x'), (2, 'y')")
    yield names
    with mariadb.connect() as conn, conn.cursor() as cur:
        for n in names:
            cur.execute(f"DROP DATABASE IF EXISTS {quote_ident(n)}")


def cli(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(config), *args], capture_output=True, cwd=ROOT
    )


def test_backup_list_databases_and_logs_escape_control_characters(write_config, hostile_dbs, tmp_path):
    config = write_config()
    res = cli(config, "backup", *hostile_dbs)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    for out in (res.stdout, res.stderr):
        assert not CONTROL.search(out), out
    assert printable(CLEAR_AND_RETITLE).encode() in res.stdout  # shown, escaped: esc\x1b[2J\x1b]0;TITLE\x07
    assert b"nl\\nrow" in res.stdout

    listed = cli(config, "list")
    assert listed.returncode == 0 and not CONTROL.search(listed.stdout + listed.stderr), listed.stdout
    lines = listed.stdout.decode().splitlines()
    dumps = json.loads(cli(config, "list", "--json").stdout)["dumps"]
    assert len(dumps) == 3 and len(lines) == 1 + len(dumps)  # a header and one line per dump: no row broken
    for name in hostile_dbs:
        assert sum(printable(name) in line for line in lines) == 1

    inventory = cli(config, "databases")
    assert inventory.returncode == 0 and not CONTROL.search(inventory.stdout), inventory.stdout
    rows = inventory.stdout.decode().splitlines()
    for name in hostile_dbs:
        (row,) = [r for r in rows if r.startswith(printable(name) + " ")]
        assert row.split()[-2:] == ["1", "0"] or "1" in row.split()  # its table count is on the same line

    verify = cli(config, "verify", "--latest", CLEAR_AND_RETITLE)
    assert verify.returncode == 0 and not CONTROL.search(verify.stdout), verify.stdout

    logs = list((tmp_path / "state").rglob("*.log"))
    assert logs
    for log in logs:
        data = log.read_bytes()
        assert not CONTROL.search(data), (log, data[-2000:])
    assert any(printable(CLEAR_AND_RETITLE).encode() in log.read_bytes() for log in logs)


# --------------------------------------------------------------------------- a real terminal


class Pane:
    """A tmux session at 100x30 running a shell command; its pane title starts as KNOWN-TITLE."""

    def __init__(self, command: str):
        self.session = f"ddhn-{uuid.uuid4().hex[:8]}"
        tmux(self.session, "new-session", "-d", "-s", self.session, "-x", "100", "-y", "30", "sleep 600", check=True)
        tmux(self.session, "set-option", "-t", self.session, "escape-time", "10", check=False)
        tmux(self.session, "select-pane", "-t", self.session, "-T", "KNOWN-TITLE")
        tmux(self.session, "respawn-pane", "-k", "-t", self.session, f"{command}; echo EXITED $?; sleep 600")

    def screen(self) -> str:
        return tmux(self.session, "capture-pane", "-p", "-t", self.session)

    def title(self) -> str:
        return tmux(self.session, "display-message", "-p", "-t", self.session, "#{pane_title}").strip()

    def wait(self, predicate, timeout: float = 60, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; screen was:\n{screen}")

    def keys(self, *keys: str) -> None:
        for k in keys:
            tmux(self.session, "send-keys", "-t", self.session, k)

    def close(self) -> None:
        tmux(self.session, "kill-session", "-t", self.session, check=False)


@needs_tmux
def test_the_terminal_is_a_working_instrument():
    """Printed raw, the name does clear the screen and retitle the pane: the checks below can fail."""
    raw = CLEAR_AND_RETITLE.encode().hex()
    pane = Pane(f"echo MARKER-BEFORE; printf '%b' \"$(echo {raw} | sed 's/../\\\\x&/g')\"")
    try:
        pane.wait(lambda s: "EXITED" in s, 20, "printf to finish")
        assert pane.title() == "TITLE"
        assert "MARKER-BEFORE" not in pane.screen()
    finally:
        pane.close()


@needs_tmux
def test_cli_on_a_terminal_keeps_screen_and_title(write_config, hostile_dbs):
    config = write_config()
    assert cli(config, "backup", *hostile_dbs).returncode == 0
    cmd = f"echo MARKER-BEFORE; {DUMPDECK} --config {config} list; {DUMPDECK} --config {config} databases"
    pane = Pane(cmd)
    try:
        screen = pane.wait(lambda s: "EXITED" in s, 60, "list and databases to finish")
        assert "EXITED 0" in screen, screen
        assert "MARKER-BEFORE" in screen, "the screen was cleared"
        assert pane.title() == "KNOWN-TITLE"
        assert "esc\\x1b[2J" in screen
    finally:
        pane.close()


@needs_tmux
def test_console_keeps_screen_and_title(write_config, hostile_dbs):
    config = write_config()
    assert cli(config, "backup", CLEAR_AND_RETITLE).returncode == 0
    pane = Pane(f"{DUMPDECK} --config {config}")
    try:
        screen = pane.wait(lambda s: "esc\\x1b" in s and "Databases" in s, 60, "the hostile database on the dashboard")
        assert pane.title() == "KNOWN-TITLE"
        assert "\x1b" not in screen and "TITLE" not in screen.replace("\\x1b]0;TITLE", "")
        pane.keys("d")
        screen = pane.wait(lambda s: "Catalog" in s and "esc\\x1b" in s, 30, "the dump in the dumps browser")
        assert pane.title() == "KNOWN-TITLE"
        assert "Databases" not in screen or "Catalog" in screen
        pane.keys("q")  # back to the dashboard, then quit
        pane.keys("q")
        pane.wait(lambda s: "EXITED" in s, 30, "the console to quit")
        assert pane.title() == "KNOWN-TITLE"
    finally:
        pane.close()
