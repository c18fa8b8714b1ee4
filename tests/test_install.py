"""Installed the way a user installs it: the built wheel in a fresh virtualenv, run from there.

The module builds the wheel once, installs it (with its dependencies, at the versions of
constraints.txt) into a new virtualenv, and runs that virtualenv's `dumpdeck` from a
directory outside the checkout, with no PYTHONPATH: the checkout cannot be imported, so
every module a command needs must be in the wheel. It backs up and verifies a database
of the test server, starts a detached job and waits for it, and drives the console in tmux.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from dumpdeck import __version__

from .test_console_tmux import check_console
from .test_packaging import build_wheel

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Installed:
    bin: Path  # the fresh virtualenv's bin/
    wheel: Path
    cwd: Path  # a directory outside the checkout

    @property
    def dumpdeck(self) -> Path:
        return self.bin / "dumpdeck"

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run(
            [str(self.dumpdeck), *args], cwd=self.cwd, env=env, capture_output=True, text=True, timeout=timeout
        )


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    """The wheel built from this checkout, installed into a new virtualenv (once per module)."""
    base = tmp_path_factory.mktemp("install")
    wheel = build_wheel(base)
    venv = base / "venv"
    # the interpreter behind this test run, without its virtualenv's site-packages
    made = subprocess.run(
        [getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr[-3000:]
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    cwd = base / "elsewhere"
    cwd.mkdir()
    return Installed(venv / "bin", wheel, cwd)


def test_the_installed_package_is_the_wheel_alone(installed):
    """`dumpdeck` in the new venv is the wheel's: one top-level package, imported from site-packages."""
    top_level = next(n for n in zipfile.ZipFile(installed.wheel).namelist() if n.endswith("top_level.txt"))
    assert zipfile.ZipFile(installed.wheel).read(top_level).decode().split() == ["dumpdeck"]
    probe = subprocess.run(
        [
            str(installed.bin / "python"),
            "-c",
            "import json, sys, dumpdeck, dumpdeck.backend, dumpdeck.cli.main, dumpdeck.tui.app, dumpdeck.demo, "
            "dumpdeck.themes; print(json.dumps([dumpdeck.__file__, dumpdeck.backend.__file__, sys.path]))",
        ],
        cwd=installed.cwd,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    package, backend, path = json.loads(probe.stdout)
    venv = installed.bin.parent
    assert Path(package).is_relative_to(venv) and Path(backend).is_relative_to(venv)
    assert not any(p and Path(p).resolve().is_relative_to(ROOT) for p in path), path


def test_version_and_help(installed):
    version = installed.run("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"dumpdeck {__version__}"
    helped = installed.run("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("backup", "verify", "restore-test", "job", "schedule", "prune", "check", "console", "demo"):
        assert command in helped.stdout, f"{command} missing from --help:\n{helped.stdout}"


def test_backup_then_verify(installed, write_config, sample_db, tmp_path):
    """A backup and a verify run end to end from the installed command; the dump is on disk afterwards."""
    config = write_config()
    backup = installed.run("--config", str(config), "backup", sample_db, "--json")
    assert backup.returncode == 0, backup.stderr + backup.stdout
    result = json.loads(backup.stdout)
    assert result["ok"] and result["status"] == "succeeded"
    [entry] = result["results"]
    dump = Path(entry["file"])
    assert dump.is_file() and dump.is_relative_to(tmp_path / "backups")
    assert Path(str(dump) + ".manifest.json").is_file()

    verify = installed.run("--config", str(config), "verify", "--latest", sample_db, "--json")
    assert verify.returncode == 0, verify.stderr + verify.stdout
    report = json.loads(verify.stdout)
    assert report["outcome"] == "passed" and report["level_reached"] == 3
    assert Path(report["path"]) == dump


def test_a_detached_job_completes(installed, write_config, sample_db, tmp_path):
    """`job start` returns at once; the runner it leaves behind (the installed package's) finishes the run."""
    config = write_config(f"jobs:\n  nightly:\n    databases: [{sample_db}]\n    verify: 2\n")
    started = installed.run("--config", str(config), "job", "start", "nightly", "--json")
    assert started.returncode == 0, started.stderr + started.stdout
    run_id = json.loads(started.stdout)["run"]
    deadline = time.monotonic() + 240
    status: dict = {}
    while time.monotonic() < deadline:
        polled = installed.run("--config", str(config), "job", "status", str(run_id), "--json", timeout=60)
        assert polled.returncode in (0, 1), polled.stderr
        status = json.loads(polled.stdout)
        if status["status"] not in ("queued", "running"):
            break
        time.sleep(0.5)
    assert status.get("status") == "succeeded", json.dumps(status, indent=1)[-3000:]
    [progress] = status["progress"]
    assert progress["database"] == sample_db and Path(progress["file"]).is_file()
    log = Path(status["log_path"]).read_text()
    assert "Traceback" not in log and "ModuleNotFoundError" not in log, log[-3000:]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install -y tmux)")
def test_console_in_tmux_80x24(installed, write_config, sample_db):
    """The installed console at 80x24: dashboard, help, dumps browser, maximize, quit (tests/test_console_tmux)."""
    check_console(write_config(), sample_db, dumpdeck=installed.dumpdeck, cwd=installed.cwd)
