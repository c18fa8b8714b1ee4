"""The README's first command, as a newcomer runs it: `scripts/demo` in a terminal shows the console
on the sample databases; quitting stops the sandbox and leaves nothing behind.

Slow by nature (bootstrap check, sandbox start, data load, seed backups, console): kept as one test."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tmux(sock: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True)


def test_readme_first_command_shows_the_dashboard_on_sample_databases(tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (scripts/bootstrap installs it)")
    readme = (ROOT / "README.md").read_text()
    assert "scripts/demo" in readme.split("## Two commands", 1)[1].split("##", 1)[0]
    import tempfile

    sock = f"dd-readme-{os.getpid()}"
    home = Path(tempfile.mkdtemp(prefix="ddh-", dir="/tmp"))  # a short HOME: unix socket paths max 107 bytes
    demo_dir = home / ".local" / "state" / "dumpdeck" / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env.update(
        TERM="xterm-256color",
        HOME=str(home),
        XDG_STATE_HOME=str(home / ".local" / "state"),
        XDG_CONFIG_HOME=str(home / ".config"),
    )
    started = subprocess.run(
        [
            "tmux",
            "-L",
            sock,
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "readme",
            "-x",
            "100",
            "-y",
            "30",
            f"cd {ROOT} && scripts/demo; echo DEMO-EXITED $?; sleep 30",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    screen = ""
    try:
        deadline = time.monotonic() + 180
        want = ("shop", "blog", "legacy_crm", "sales archive")
        while time.monotonic() < deadline:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "readme").stdout
            if all(w in screen for w in want) and "Databases" in screen:
                break
            if "DEMO-EXITED" in screen:
                break
            time.sleep(0.5)
        assert all(w in screen for w in want) and "Databases" in screen, f"dashboard not shown:\n{screen}"
        info = demo_dir / "demo.json"
        assert info.exists(), "the demo did not record its sandbox"
        # Quit: the console says running jobs continue; the demo stops its sandbox and cleans up.
        _tmux(sock, "send-keys", "-t", "readme", "q")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            screen = _tmux(sock, "capture-pane", "-p", "-t", "readme").stdout
            if "DEMO-EXITED" in screen:
                break
            time.sleep(0.3)
        assert "DEMO-EXITED 0" in screen, screen
        assert not demo_dir.exists() or not any(demo_dir.iterdir()), "the demo left files behind"
        leftovers = [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.info["cmdline"] and any(str(demo_dir) in a for a in p.info["cmdline"])
        ]
        assert not leftovers, f"processes of the demo survived: {leftovers}"
    finally:
        _tmux(sock, "kill-server")
        shutil.rmtree(home, ignore_errors=True)
