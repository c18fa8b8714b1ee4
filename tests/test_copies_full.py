"""A destination that is full: a real filesystem that runs out of space (a 256 KiB tmpfs mounted by the
test, so root only) as a `local` rclone destination. The run names the destination and the cause, the
local dump stays, and nothing at the destination counts as a copy."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dumpdeck.backend import runner
from dumpdeck.backend.catalog import scan
from dumpdeck.backend.config import load_config
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.state import StateStore

from .helpers import make_big_table

pytestmark = pytest.mark.skipif(
    shutil.which("rclone") is None or os.geteuid() != 0, reason="rclone, and root to mount a tiny tmpfs"
)


@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_destination_is_named_with_its_cause_and_counts_nothing(write_config, mariadb, sample_db, tiny_fs):
    make_big_table(mariadb, sample_db, rows=100_000)  # a dump far larger than 256 KiB, compressed
    path = write_config(
        f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 2\n"
        f"copies:\n  tiny:\n    remote: {tiny_fs / 'mysql'}\n    retry_delay: 1h\n"
    )
    config = load_config(path)
    run = runner.run_job(config, "nightly")
    assert run.status == "succeeded", run.reason  # a copy never fails the backup
    [entry] = scan(config.backup.dir).entries
    assert entry.path.exists() and entry.size > 256 * 1024
    with StateStore.open(config.state_db) as store:
        [rec] = store.copies()
        failures = [e.message for e in store.events(run.id) if e.kind == "copy-failed"]
    assert rec.outcome is Outcome.FAILED and "full" in (rec.error or ""), rec
    assert any("tiny" in m and "full" in m for m in failures), failures
    left = [p.name for p in tiny_fs.rglob("*") if p.is_file()]
    assert not [n for n in left if n == entry.path.name], left  # nothing under the final name
