"""The real `dumpdeck` binary in a real terminal: tmux at 80x24, keys sent, the pane captured.

Fails if an expected pane title is missing, if the screen is garbled (raw escape
sequences, lines wider than the terminal, a traceback), or if quitting hangs.
Also runnable by hand: `python tests/test_console_tmux.py CONFIG` prints each capture.
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

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = ROOT / ".venv" / "bin" / "dumpdeck"
WIDTH, HEIGHT = 80, 24


def _tmux(*args: str, check: bool = True) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=check, timeout=20).stdout


def capture(session: str) -> str:
    return _tmux("capture-pane", "-p", "-t", session)


def wait_for(session: str, predicate, timeout: float = 30.0, what: str = "") -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if predicate(screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; screen was:\n{screen}")


def garbled(screen: str) -> list[str]:
    """Reasons the captured screen looks broken."""
    from rich.cells import cell_len

    problems = []
    lines = screen.splitlines()
    if len(lines) > HEIGHT:
        problems.append(f"{len(lines)} lines on a {HEIGHT}-line terminal")
    for i, line in enumerate(lines):
        if "\x1b" in line or "[?" in line or "\ufffd" in line:
            problems.append(f"line {i + 1}: raw escape or replacement character: {line!r}")
        if cell_len(line) > WIDTH:
            problems.append(f"line {i + 1}: {cell_len(line)} cells wide: {line!r}")
    if "Traceback" in screen:
        problems.append("a Python traceback is on the screen")
    return problems


class Console:
    def __init__(self, config: Path, *extra: str, dumpdeck: Path = DUMPDECK, cwd: Path | None = None):
        self.session = f"ddtest-{uuid.uuid4().hex[:8]}"
        env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "PYTHONPATH")}
        # the tmux server may hold an older environment: no PYTHONPATH reaches the console either way
        cmd = " ".join(["env", "-u", "PYTHONPATH", str(dumpdeck), "--config", str(config), *extra])
        # keep the pane after exit so a crash can be read
        subprocess.run(
            [
                "tmux",
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(WIDTH),
                "-y",
                str(HEIGHT),
                *(["-c", str(cwd)] if cwd is not None else []),
                f"{cmd}; echo EXITED $?; sleep 30",
            ],
            check=True,
            env=env,
            timeout=20,
        )
        _tmux("set-option", "-t", self.session, "escape-time", "10", check=False)

    def keys(self, *keys: str) -> None:
        for k in keys:
            _tmux("send-keys", "-t", self.session, k)
            time.sleep(0.05)

    def close(self) -> None:
        _tmux("kill-session", "-t", self.session, check=False)


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
