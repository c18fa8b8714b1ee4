"""Jobs: database selection, locks, ad-hoc runs from the CLI, status/list/cancel commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dumpdeck.backend import jobs, runner, selection
from dumpdeck.backend.config import JobConfig, load_config
from dumpdeck.backend.errors import LockedError, UsageError
from dumpdeck.backend.state import StateStore

from .helpers import wait_until
from .test_runner import SLOW_OK, stand_in_tool

ROOT = Path(__file__).resolve().parent.parent


def cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_resolve_databases_star_globs_and_excludes(config, make_db):
    for name in ("shop_eu", "shop_us", "shop_test", "crm"):
        make_db(name, rows=5)

    def job(dbs, exclude=()):
        return JobConfig(name="j", server="main", databases=tuple(dbs), exclude=tuple(exclude))

    everything = selection.resolve_databases(config, job(["*"], ["shop_test"]))
    assert {"shop_eu", "shop_us", "crm"} <= set(everything) and "shop_test" not in everything
    assert "mysql" not in everything  # system schemas only when the server includes them
    assert selection.resolve_databases(config, job(["shop_*"], ["*_test"])) == ["shop_eu", "shop_us"]
    # literal names stay, even missing ones (their dump then fails visibly), in the given order
    assert selection.resolve_databases(config, job(["crm", "nope", "shop_[e]u"])) == ["crm", "nope", "shop_eu"]
    assert selection.matches_job(job(["shop_*"], ["*_test"]), "shop_eu")
    assert not selection.matches_job(job(["shop_*"], ["*_test"]), "shop_test")


def test_job_lock_names_its_holder(tmp_path):
    a = jobs.JobLock.for_key(tmp_path, "nightly")
    assert a.try_acquire(run_id=7)
    b = jobs.JobLock.for_key(tmp_path, "nightly")
    assert not b.try_acquire()
    assert b.held_by_someone()
    text = b.describe_holder("nightly")
    assert f"pid {os.getpid()}" in text and "run 7" in text and "skipped" in text
    a.release()
    assert not b.held_by_someone() and b.try_acquire()
    b.release()


def test_adhoc_runs_from_the_cli_and_status_json(write_config, sample_db):
    path = write_config()
    res = cli(path, "job", "start", "--databases", sample_db)
    assert res.returncode == 0, res.stderr
    run_id = int(res.stdout.strip())
    config = load_config(path)
    store = StateStore.open(config.state_db)
    try:
        run = wait_until(lambda: (r := store.get_run(run_id)) and not r.active and r, timeout=60, what="run end")
        assert run.job == "adhoc" and run.status == "succeeded", run.reason
    finally:
        store.close()
    status = cli(path, "job", "status", str(run_id), "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["status"] == "succeeded" and data["progress"][0]["database"] == sample_db
    assert data["progress"][0]["bytes_raw"] > 0 and data["events"]
    text = cli(path, "job", "status", str(run_id))
    assert "succeeded" in text.stdout and sample_db in text.stdout and "RATE" in text.stdout
    listing = cli(path, "job", "list")
    assert listing.returncode == 0 and f"{run_id}" in listing.stdout and "adhoc" in listing.stdout
    watch = cli(path, "job", "status", str(run_id), "--watch")
    assert watch.returncode == 0 and "succeeded" in watch.stdout


def test_adhoc_runs_on_one_server_queue_behind_each_other(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, SLOW_OK.format(n=15))
    path = write_config()
    path.write_text(path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n"))
    config = load_config(path)
    first = jobs.start_run(config, databases=[sample_db])
    store = StateStore.open(config.state_db)
    try:
        wait_until(lambda: store.get_run(first.id).status == "running", what="first running")
        second = jobs.start_run(config, databases=[sample_db])
        wait_until(lambda: any(e.kind == "waiting" for e in store.events(second.id)), what="second waiting")
        assert store.get_run(second.id).status == "queued"
        done = wait_until(lambda: (r := store.get_run(second.id)) and not r.active and r, timeout=60, what="second end")
        assert done.status == "succeeded", done.reason
        assert store.get_run(first.id).status == "succeeded"
        assert done.started >= store.get_run(first.id).finished
    finally:
        store.close()


def test_start_needs_databases_or_a_job(config):
    with pytest.raises(UsageError, match="name the databases"):
        jobs.start_run(config)
    res = cli(config.path, "job", "start")
    assert res.returncode == 2 and "name a job" in res.stderr


def test_cancel_a_queued_run_without_a_runner(config):
    store = StateStore.open(config.state_db)
    try:
        run = store.create_run("adhoc", "console", "main", ["x"])
        assert jobs.cancel_run(store, run.id)
        assert store.get_run(run.id).status == "cancelled"
        assert not jobs.cancel_run(store, run.id)
        assert not jobs.cancel_run(store, 999)
    finally:
        store.close()


def test_run_job_foreground_records_a_skip_when_locked(write_config, sample_db):
    config = load_config(write_config(f"jobs:\n  nightly:\n    databases: [{sample_db}]\n    verify: 0\n"))
    held = jobs.JobLock.for_key(config.lock_dir, "nightly")
    assert held.try_acquire(run_id=41)
    try:
        with pytest.raises(LockedError, match=f"pid {os.getpid()}") as err:
            runner.run_job_foreground(config, "nightly")
        assert err.value.exit_code == 3
    finally:
        held.release()
    assert runner.run_job_foreground(config, "nightly") == 0
    store = StateStore.open(config.state_db)
    try:
        assert [r.status for r in store.list_runs(job="nightly")] == ["succeeded", "skipped"]
    finally:
        store.close()
