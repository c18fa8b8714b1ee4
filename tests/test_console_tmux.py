"""The real `dumpdeck` binary in a real terminal: tmux at 80x24, keys sent, the pane captured.

Fails if an expected pane title is missing, if the screen is garbled (raw escape
sequences, lines wider than the terminal, a traceback), or if quitting hangs.
Also runnable by hand: `python -m tests.test_console_tmux CONFIG` prints each capture.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from .helpers import tmux

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = ROOT / ".venv" / "bin" / "dumpdeck"
WIDTH, HEIGHT = 80, 24


def capture(session: str) -> str:
    return tmux(session, "capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, timeout: float = 30.0, what: str = "") -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if predicate(screen):
            return screen
        time.sleep(0.1)
    size = tmux(session, "display-message", "-p", "-t", session, "#{pane_width}x#{pane_height}", check=False).strip()
    raise AssertionError(f"timed out waiting for {what}; screen ({size}) was:\n{screen}")


def garbled(screen: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    """Reasons the captured screen looks broken."""
    from rich.cells import cell_len

    problems = []
    lines = screen.splitlines()
    if len(lines) > height:
        problems.append(f"{len(lines)} lines on a {height}-line terminal")
    for i, line in enumerate(lines):
        if "\x1b" in line or "[?" in line or "\ufffd" in line:
            problems.append(f"line {i + 1}: raw escape or replacement character: {line!r}")
        if cell_len(line) > width:
            problems.append(f"line {i + 1}: {cell_len(line)} cells wide: {line!r}")
    if "Traceback" in screen:
        problems.append("a Python traceback is on the screen")
    return problems


class Console:
    def __init__(
        self,
        config: Path,
        *extra: str,
        dumpdeck: Path = DUMPDECK,
        cwd: Path | None = None,
        width: int = WIDTH,
        height: int = HEIGHT,
    ):
        self.session = f"ddtest-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH")}
        # the tmux server may hold an older environment: no PYTHONPATH reaches the console either way
        cmd = " ".join(["env", "-u", "PYTHONPATH", str(dumpdeck), "--config", str(config), *extra])
        # keep the pane after exit so a crash can be read
        subprocess.run(
            [
                *("tmux", "-L", self.session, "-f", "/dev/null", "new-session", "-d", "-s", self.session),
                *("-x", str(width), "-y", str(height), *(["-c", str(cwd)] if cwd is not None else [])),
                f"{cmd}; echo EXITED $?; sleep 30",
            ],
            check=True,
            env=env,
            timeout=20,
        )
        tmux(self.session, "set-option", "-t", self.session, "escape-time", "10", check=False)

    def keys(self, *keys: str) -> None:
        for k in keys:
            tmux(self.session, "send-keys", "-t", self.session, k)
            time.sleep(0.05)

    def resize(self, width: int, height: int) -> None:
        tmux(self.session, "resize-window", "-t", self.session, "-x", str(width), "-y", str(height))

    def close(self) -> None:
        tmux(self.session, "kill-session", "-t", self.session, check=False)


def check_console(
    config: Path, database: str, show=lambda title, screen: None, *, dumpdeck: Path = DUMPDECK, cwd: Path | None = None
) -> None:
    """Drive the console of `dumpdeck` (the checkout's, or an installed one) in tmux at 80x24."""
    con = Console(config, dumpdeck=dumpdeck, cwd=cwd)
    try:
        screen = wait_for(con.session, lambda s: database in s, 30, f"database {database} on the dashboard")
        show("dashboard", screen)
        for title in ("Databases", "Jobs", "Disk", "Log"):
            assert title in screen, f"pane title {title!r} missing:\n{screen}"
        assert "dumpdeck" in screen.splitlines()[0]
        assert not garbled(screen), garbled(screen)

        con.keys("?")
        screen = wait_for(con.session, lambda s: "Keys" in s and "search" in s, 10, "the help screen")
        show("help", screen)
        assert not garbled(screen), garbled(screen)
        con.keys("Escape")
        wait_for(con.session, lambda s: "Databases" in s and "Keys —" not in s, 10, "the dashboard again")

        con.keys("d")
        screen = wait_for(con.session, lambda s: "Catalog" in s and "Manifest" in s, 10, "the dumps browser")
        show("dumps", screen)
        assert not garbled(screen), garbled(screen)
        con.keys("Escape")
        wait_for(con.session, lambda s: "Databases" in s and "Catalog" not in s, 10, "the dashboard again")

        con.keys("m")  # maximize the databases pane
        screen = wait_for(con.session, lambda s: "Jobs" not in s, 10, "a maximized pane")
        show("maximized", screen)
        assert "Databases" in screen
        con.keys("m")
        wait_for(con.session, lambda s: "Jobs" in s, 10, "the panes restored")

        con.keys("q")
        screen = wait_for(con.session, lambda s: "EXITED 0" in s, 10, "the console to quit")
    finally:
        con.close()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")
def test_console_in_tmux_80x24(write_config, sample_db):
    check_console(write_config(), sample_db)


if __name__ == "__main__":

    def _show(title: str, screen: str) -> None:
        print(f"--- {title}\n{screen}")

    check_console(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "Databases", _show)
    print("ok")


# --------------------------------------------------------------------------- issue 12, as a user sees it


def _truth_setup(write_config, sample_db, slow_tool, tmp_path):
    """A config whose server `dead` was backed up and then went away (its port closed), a failed
    run with a long reason, and a run that is still dumping (a dump tool that hangs)."""
    import re

    from dumpdeck.backend.config import load_config
    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.sandbox import free_port

    live = write_config(tcp=True)
    text = live.read_text()
    dead_block = re.search(r"  main:\n((?:    .*\n)+)", text).group(1)
    path = tmp_path / "truth.yaml"
    path.write_text(text.replace("backup:\n", "  dead:\n" + dead_block + "backup:\n", 1))
    config = load_config(path)
    dump_database(config.server("dead"), config.backup, sample_db)  # while it was up
    port = re.search(r"port: (\d+)", dead_block).group(1)
    dead_now = dead_block.replace(f"port: {port}", f"port: {free_port()}")
    path.write_text(text.replace("backup:\n", "  dead:\n" + dead_now + "backup:\n", 1))
    base = [sys.executable, "-m", "dumpdeck", "--config", str(path)]
    failed = subprocess.run(
        [*base, "backup", "--server", "main", "no_such_db"], check=False, capture_output=True, timeout=120
    )
    assert failed.returncode == 1
    slow = tmp_path / "slow.yaml"
    slow.write_text(
        path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {slow_tool}\n")
    )
    started = subprocess.run(
        [*base[:-1], str(slow), "job", "start", "--server", "main", "--databases", sample_db],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    return path, int(started.stdout.strip())


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")
def test_console_tells_the_truth_in_tmux(write_config, sample_db, slow_tool, tmp_path):
    """80x24: the dead server's database with its age and why it is down, the running run in sight
    above older runs, Enter on a database, cancel feedback, following the log through a resize;
    200x50: a whole failure reason."""
    path, run_id = _truth_setup(write_config, sample_db, slow_tool, tmp_path)
    con = Console(path)
    try:
        screen = wait_for(con.session, lambda s: "unreachable: ref" in s, 60, "the dead server's database")
        row = next(ln for ln in screen.splitlines() if ln.startswith("│ dead"))
        assert sample_db[:10] in row and " ago" in row, row  # its real age, not "never"
        assert "down: dead (refused)" in screen.splitlines()[0]

        def job_lines(screen: str) -> list[str]:
            return [ln for ln in screen.splitlines() if ln.startswith("│ #")]

        jobs = wait_for(
            con.session, lambda s: len(job_lines(s)) >= 2 and " running " in job_lines(s)[0], 30, "the running run"
        )
        assert job_lines(jobs)[0].startswith(f"│ #{run_id} "), jobs  # pinned first, above the older run
        assert "failed" in job_lines(jobs)[1], jobs
        assert not garbled(jobs), garbled(jobs)

        con.keys("1", "G")  # the last database row: the dead server's (servers in config order)
        con.keys("Enter")
        detail = wait_for(con.session, lambda s: "DOWN" in s, 15, "the database's detail")
        assert "refused" in detail and "Dumps (1" in detail, detail
        con.keys("Escape")
        wait_for(con.session, lambda s: "Databases (" in s, 10, "the dashboard again")

        con.resize(120, 40)
        time.sleep(0.5)
        con.resize(WIDTH, HEIGHT)
        con.keys("4", "m")
        wait_for(con.session, lambda s: "Jobs" not in s, 10, "the log maximized")
        con.keys("m")
        from dumpdeck.backend.config import load_config

        with open(load_config(path).log.file, "a") as f:
            f.write("2025-06-15 15:01:00,000 INFO    [1] dumpdeck.test: after resize\n")
        wait_for(con.session, lambda s: "test: after resize" in s, 15, "the new log line")

        con.keys("2")
        wait_for(con.session, lambda s: "c Cancel run" in s.splitlines()[-1], 10, "the Jobs pane's keys in the footer")
        con.keys("c")
        modal = wait_for(con.session, lambda s: f"Cancel run #{run_id}" in s, 10, "the confirmation")
        assert "Keep running" in modal
        con.keys("y")
        wait_for(con.session, lambda s: "cancell" in s, 10, "the cancel feedback")
        wait_for(
            con.session, lambda s: "cancelled" in s and "no runs active" in s.splitlines()[0], 60, "the run cancelled"
        )
        con.keys("q")
        wait_for(con.session, lambda s: "EXITED 0" in s, 10, "the console to quit")
    finally:
        con.close()

    big = Console(path, width=200, height=50)
    try:
        # the whole reason, beside the columns it no longer needs
        reason = "no_such_db: failed: server main: database 'no_such_db' does not exist"
        screen = wait_for(big.session, lambda s: any(reason in ln for ln in s.splitlines() if "#1 " in ln), 60, "it")
        assert not garbled(screen, 200, 50), garbled(screen, 200, 50)
        big.keys("q")
        wait_for(big.session, lambda s: "EXITED 0" in s, 10, "the console to quit")
    finally:
        big.close()
