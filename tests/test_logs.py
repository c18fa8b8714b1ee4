"""Logs that survive several writers, per-run logs for every run (cron's too), ISO 8601 times, the journal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from dumpdeck.backend.config import load_config
from dumpdeck.backend.state import StateStore

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d ")

WRITER = textwrap.dedent("""\
    import logging, sys
    from dumpdeck.backend.config import load_config
    from dumpdeck.backend.logs import setup_logging
    setup_logging(load_config(sys.argv[1]))
    log = logging.getLogger("dumpdeck.writer")
    name = sys.argv[2]
    for line in sys.stdin:
        n, tag = line.split()
        for i in range(int(n)):
            log.info("%s %s %05d %s", name, tag, i, "x" * 60)
        print("done", flush=True)
    """)


class Writer:
    """A separate process that writes N log lines when told to (no sleeps: it answers 'done')."""

    def __init__(self, config_path: Path, name: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(config_path), name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def write(self, n: int, tag: str) -> None:
        self.proc.stdin.write(f"{n} {tag}\n")
        self.proc.stdin.flush()

    def wait_done(self) -> None:
        assert self.proc.stdout.readline().strip() == "done"

    def close(self) -> None:
        self.proc.stdin.close()
        assert self.proc.wait(timeout=60) == 0


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_two_writers_follow_a_logrotate_style_rotation(write_config):
    """logrotate renames the log; both writers must continue in the new file, not in the renamed one."""
    config = load_config(write_config("log: {max_size: 0}\n"))  # rotation left to logrotate
    log = Path(config.log.file)
    writers = [Writer(config.path, "A"), Writer(config.path, "B")]
    try:
        for w in writers:
            w.write(200, "before")
        for w in writers:
            w.wait_done()
        os.replace(log, str(log) + ".1")  # what logrotate does (create mode, no copytruncate)
        for w in writers:
            w.write(200, "after")
        for w in writers:
            w.wait_done()
    finally:
        for w in writers:
            w.close()
    current, rotated = _lines(log), _lines(Path(str(log) + ".1"))
    for name in "AB":
        assert sum(f"{name} after " in ln for ln in current) == 200, f"writer {name} lost lines after the rotation"
        assert sum(f"{name} before " in ln for ln in rotated) == 200
    assert not any(" after " in ln for ln in rotated)


def test_two_writers_rotating_by_size_lose_and_duplicate_nothing(write_config):
    """Both processes rotate the shared log by size (under its lock): every line is in exactly one file,
    in order per writer, and the newest lines of both writers are in the current file."""
    config = load_config(write_config("log: {max_size: 8KiB, keep: 100}\n"))
    log = Path(config.log.file)
    writers = [Writer(config.path, "A"), Writer(config.path, "B")]
    try:
        for w in writers:
            w.write(600, "run")
        for w in writers:
            w.wait_done()
        for w, name in zip(writers, "AB", strict=True):  # one at a time: each writes into the current file
            w.write(1, "last")
            w.wait_done()
            assert any(f" {name} last " in ln for ln in _lines(log)), f"writer {name} is not writing the current file"
    finally:
        for w in writers:
            w.close()
    files = [log, *sorted(log.parent.glob(log.name + ".*[0-9]"), key=lambda p: -int(p.suffix[1:]))]
    assert len(files) > 5, "the test must cross several rotations"
    everything = [ln for f in files for ln in _lines(f)]
    for name in "AB":
        seq = [int(ln.split(f" {name} run ")[1].split()[0]) for ln in everything if f" {name} run " in ln]
        assert sorted(seq) == list(range(600)), f"writer {name}: lines lost or duplicated"
    for f in files:
        assert f.stat().st_size <= 8 * 1024 + 200
    assert all(ISO.match(ln) for ln in everything)


def test_job_run_from_cron_writes_its_run_log_and_the_journal(write_config, sample_db):
    """`job run` (what cron and the timers call) writes <state>/runs/<id>.log; under systemd, stderr too."""
    path = write_config(f"jobs:\n  nightly:\n    databases: [{sample_db}]\n    verify: 1\n")
    env = {**os.environ, "INVOCATION_ID": "0123456789abcdef0123456789abcdef"}
    proc = subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), "job", "run", "nightly"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    config = load_config(path)
    store = StateStore.open(config.state_db)
    try:
        run = store.list_runs(limit=1, job="nightly")[0]
    finally:
        store.close()
    run_log = Path(run.log_path)
    assert run_log == config.runs_log_dir / f"{run.id}.log"
    text = run_log.read_text()
    assert sample_db in text and all(ISO.match(ln) for ln in text.splitlines())
    assert "INFO dumpdeck." in proc.stderr  # the journal's copy (no timestamp: journald adds its own)


def test_console_reads_the_iso_lines():
    from dumpdeck.tui.logtail import compact_log_line

    assert compact_log_line("2026-11-29T18:40:35.123+01:00 INFO    [42] dumpdeck.runner: run 7 started") == (
        "18:40:35 INFO runner: run 7 started"
    )


def test_shipped_logrotate_snippet_matches_the_handler():
    snippet = (Path(__file__).resolve().parent.parent / "contrib" / "logrotate" / "dumpdeck").read_text()
    directives = [ln.strip() for ln in snippet.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert directives[0] == "/var/log/dumpdeck/*.log {" and directives[-1] == "}"
    # the writers reopen a renamed file: rename (create) is right; copytruncate would lose lines
    assert "copytruncate" not in directives and any(d.startswith("create ") for d in directives)
    assert "missingok" in directives
