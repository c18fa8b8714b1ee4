"""The runner with real processes: detached runs, locks, SIGKILL, cancel, timeouts and retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import psutil
import pytest

from dumpdeck.backend import jobs, runner, selection
from dumpdeck.backend.config import load_config
from dumpdeck.backend.state import StateStore

from .helpers import wait_until

ROOT = Path(__file__).resolve().parent.parent
DUMPDECK = [sys.executable, "-m", "dumpdeck"]


def stand_in_tool(tmp_path: Path, body: str, name: str = "fake-dump") -> Path:
    """A real executable standing in for mariadb-dump: answers --version, then runs `body`."""
    path = tmp_path / name
    path.write_text(
        textwrap.dedent("""\
        #!/bin/sh
        case "$1" in --version) echo "mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB, for debian"; exit 0;; esac
        echo "-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB"
        """)
        + textwrap.dedent(body)
    )
    path.chmod(0o755)
    return path


HANG = "exec sleep 600\n"
# writes a line every 0.1 s for ~N seconds, then the footer: a slow but valid dump
SLOW_OK = """\
i=0
while [ $i -lt {n} ]; do
  echo "-- Dumping data for table \\`t$i\\`"; echo "INSERT INTO t VALUES ($i);"; i=$((i+1)); sleep 0.1
done
echo "-- Dump completed on 2025-01-01  0:00:00"
"""
DRIBBLE = """\
while :; do echo "INSERT INTO t VALUES (1);"; sleep 0.1; done
"""


def job_config(write_config, sample_db, tool: Path | None, *, job_extra: str = "", backup_extra: str = ""):
    extra = f"jobs:\n  nightly:\n    server: main\n    databases: [{sample_db}]\n    verify: 0\n" + "".join(
        f"    {line.strip()}\n" for line in job_extra.splitlines() if line.strip()
    )
    path = write_config(extra)
    body = path.read_text()
    if tool is not None:
        body = body.replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n{backup_extra}")
    path.write_text(body)
    return load_config(path)


def cli(config_path: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*DUMPDECK, "--config", str(config_path), *args], capture_output=True, text=True, cwd=ROOT, timeout=120, **kw
    )


def partials(config) -> list[Path]:
    return list(Path(config.backup.dir).rglob("*.partial"))


def no_process_runs(path: Path) -> bool:
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(path) in part for part in (p.info["cmdline"] or [])):
                return False
        except psutil.Error:
            continue
    return True


# --------------------------------------------------------------------------- detached runs


def test_run_started_by_a_parent_that_exits_runs_to_completion(write_config, sample_db, mariadb):
    config = job_config(write_config, sample_db, None)
    script = textwrap.dedent(f"""\
        import sys
        from dumpdeck.backend.config import load_config
        from dumpdeck.backend.jobs import start_run
        run = start_run(load_config({str(config.path)!r}), "nightly", trigger="console")
        print(run.id)
        """)
    parent = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert parent.returncode == 0, parent.stderr
    run_id = int(parent.stdout.strip())
    store = StateStore.open(config.state_db)
    try:
        run = wait_until(
            lambda: (r := store.get_run(run_id)) and not r.active and r, timeout=60, what="the detached run to finish"
        )
        assert run.status == "succeeded", (run.reason, Path(run.log_path).read_text())
        assert run.trigger == "console"
        assert run.pid is not None and run.pid != os.getpid()
        [p] = store.progress(run_id)
        assert p.status == "succeeded" and p.bytes_raw > 0 and p.bytes_stored > 0
        assert Path(p.file).exists() and Path(p.file).name.endswith(".sql.zst")
        kinds = [e.kind for e in store.events(run_id)]
        assert kinds[0] == "start" and "preflight" in kinds and "dump-done" in kinds and kinds[-1] == "finish"
        assert Path(run.log_path).exists()
        assert "started" in Path(run.log_path).read_text()
        assert store.last_success("main", sample_db).id == run_id
        [h] = store.history("main", sample_db)
        assert h.bytes_stored == p.bytes_stored and h.inventory_bytes and h.duration >= 0
    finally:
        store.close()


def test_runner_has_its_own_session_and_ignores_sighup(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, SLOW_OK.format(n=30))
    config = job_config(write_config, sample_db, tool)
    run = jobs.start_run(config, "nightly")
    store = StateStore.open(config.state_db)
    try:
        wait_until(lambda: store.get_run(run.id).status == "running", what="runner running")
        assert os.getsid(run.pid) == run.pid != os.getsid(0)
        os.kill(run.pid, signal.SIGHUP)
        final = wait_until(lambda: (r := store.get_run(run.id)) and not r.active and r, timeout=60, what="end")
        assert final.status == "succeeded", final.reason
    finally:
        store.close()


# --------------------------------------------------------------------------- locks


def test_two_job_runs_at_once_one_runs_one_is_skipped(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, SLOW_OK.format(n=30))
    config = job_config(write_config, sample_db, tool)
    first = subprocess.Popen(
        [*DUMPDECK, "--config", str(config.path), "job", "run", "nightly"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    store = StateStore.open(config.state_db)
    try:
        running = wait_until(
            lambda: [r for r in store.list_runs(active_only=True) if r.pid],
            what="the first run to start (with its pid)",
        )[0]
        second = cli(config.path, "job", "run", "nightly")
        assert second.returncode == 3, second.stderr
        assert f"pid {first.pid}" in second.stderr and "already running" in second.stderr
        _out, err = first.communicate(timeout=60)
        assert first.returncode == 0, err
        runs = store.list_runs(job="nightly")
        statuses = sorted(r.status for r in runs)
        assert statuses == ["skipped", "succeeded"]
        skipped = next(r for r in runs if r.status == "skipped")
        assert str(first.pid) in skipped.reason and skipped.trigger == "cron"
        assert running.pid == first.pid
    finally:
        store.close()


def test_job_start_refuses_while_the_job_runs(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, HANG)
    config = job_config(write_config, sample_db, tool)
    run = jobs.start_run(config, "nightly")
    store = StateStore.open(config.state_db)
    try:
        wait_until(lambda: store.get_run(run.id).status == "running", what="runner running")
        res = cli(config.path, "job", "start", "nightly")
        assert res.returncode == 3 and "already running" in res.stderr
        assert jobs.cancel_run(store, run.id)
        wait_until(lambda: store.get_run(run.id).status == "cancelled", what="cancelled")
    finally:
        store.close()


# --------------------------------------------------------------------------- kill, cancel


def _holders(path) -> str:
    """Which processes hold `path` open (diagnostics for a lock that should be free)."""
    out = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(f.path == str(path) for f in p.open_files()):
                out.append(f"{p.pid}: {' '.join(p.info['cmdline'] or [])}")
        except (psutil.Error, OSError):
            pass
    return "holders: " + ("; ".join(out) or "none")


def test_sigkilled_runner_is_marked_lost_and_its_partial_removed(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, HANG)
    config = job_config(write_config, sample_db, tool)
    run = jobs.start_run(config, "nightly")
    store = StateStore.open(config.state_db)
    try:
        partial = wait_until(
            lambda: (p := store.progress(run.id)[0]).file and p.file.endswith(".partial") and p.file,
            what="the dump's partial file",
        )
        assert Path(partial).exists()
        run = store.get_run(run.id)
        os.kill(run.pid, signal.SIGKILL)
        wait_until(
            lambda: not psutil.pid_exists(run.pid) or psutil.Process(run.pid).status() == "zombie", what="runner death"
        )
        lost = wait_until(store.reap_lost, what="reap_lost to find the run")
        assert [r.id for r in lost] == [run.id]
        final = store.get_run(run.id)
        assert final.status == "lost" and f"pid {run.pid}" in final.reason
        assert not Path(partial).exists() and partials(config) == [], _holders(partial)
        assert store.progress(run.id)[0].status == "failed"
        assert any(e.kind == "lost" for e in store.events(run.id))
        wait_until(lambda: no_process_runs(tool), what="the stand-in dump tool to die with its runner")
        # readers calling reap_lost again change nothing
        assert store.reap_lost() == []
    finally:
        store.close()


def test_cancel_kills_the_dump_removes_the_partial_and_records_cancelled(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, HANG)
    config = job_config(write_config, sample_db, tool)
    run = jobs.start_run(config, "nightly")
    store = StateStore.open(config.state_db)
    try:
        partial = wait_until(
            lambda: (p := store.progress(run.id)[0]).file and p.file.endswith(".partial") and p.file, what="partial"
        )
        res = cli(config.path, "job", "cancel", str(run.id), "--wait")
        assert res.returncode == 0, res.stderr
        final = store.get_run(run.id)
        assert final.status == "cancelled", final.reason
        assert not Path(partial).exists()
        assert store.progress(run.id)[0].status == "cancelled"
        wait_until(lambda: no_process_runs(tool), what="stand-in tool gone")
        assert not jobs.cancel_run(store, run.id)  # already over
    finally:
        store.close()


# --------------------------------------------------------------------------- timeouts and retries


def _execute(config):
    store = StateStore.open(config.state_db)
    dbs = selection.resolve_databases(config, "nightly")
    run = store.create_run("nightly", "cli", "main", dbs, log_dir=config.runs_log_dir)
    final = runner.execute(config, store, run.id)
    return store, final


def _attempt_gaps(store, run_id):
    """(delays recorded, seconds between each failure and the next attempt's start)."""
    evs = store.events(run_id, limit=1000)
    starts = [e.data["at"] for e in evs if e.kind == "dump-start"]
    fails = [e.data["at"] for e in evs if e.kind == "dump-failed"]
    delays = [e.data["delay"] for e in evs if e.kind == "retry"]
    gaps = [s - f for f, s in zip(fails, starts[1:], strict=False)]
    return starts, delays, gaps


def test_stall_timeout_times_out_and_retries_with_growing_delays(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, HANG)
    config = job_config(write_config, sample_db, tool, job_extra="retries: 2\nretry_delay: 0.2s\nstall_timeout: 0.6s\n")
    store, final = _execute(config)
    try:
        assert final.status == "timed-out", final.reason
        assert "stalled" in final.reason
        starts, delays, gaps = _attempt_gaps(store, final.id)
        assert len(starts) == 3  # 1 + 2 retries
        assert delays == [0.2, 0.4]  # retry_delay * 2**attempt
        assert all(g >= d for g, d in zip(gaps, delays, strict=False))
        [p] = store.progress(final.id)
        assert p.status == "timed-out" and p.attempt == 2
        assert partials(config) == []
    finally:
        store.close()


def test_wall_timeout_is_retried_per_policy(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, DRIBBLE)
    config = job_config(
        write_config, sample_db, tool, job_extra="retries: 1\nretry_delay: 0.1s\n", backup_extra="  timeout: 1s\n"
    )
    config_text = config.path.read_text().replace("  timeout: 5m\n", "")
    config.path.write_text(config_text)
    config = load_config(config.path)
    assert config.backup.timeout == 1.0
    store, final = _execute(config)
    try:
        assert final.status == "timed-out", final.reason
        assert "exceeded its timeout" in final.reason
        starts, delays, _gaps = _attempt_gaps(store, final.id)
        assert len(starts) == 2 and delays == [0.1]
        assert partials(config) == []
    finally:
        store.close()


def test_max_runtime_times_out_the_run_and_stops_retrying(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, DRIBBLE)
    config = job_config(write_config, sample_db, tool, job_extra="retries: 3\nretry_delay: 0.1s\nmax_runtime: 1.5s\n")
    store, final = _execute(config)
    try:
        assert final.status == "timed-out", final.reason
        assert "max_runtime" in final.reason
        starts, _delays, _gaps = _attempt_gaps(store, final.id)
        assert len(starts) == 1  # the job's time is spent: no retry
        assert partials(config) == []
    finally:
        store.close()


def test_failed_dump_is_retried_then_succeeds(tmp_path, write_config, sample_db):
    marker = tmp_path / "first-attempt-done"
    tool = stand_in_tool(
        tmp_path,
        f"""\
        if [ ! -e {marker} ]; then touch {marker}; echo "boom" >&2; exit 2; fi
        echo "-- Dump completed on 2025-01-01  0:00:00"
        """,
    )
    config = job_config(write_config, sample_db, tool, job_extra="retries: 2\nretry_delay: 0.1s\n")
    store, final = _execute(config)
    try:
        assert final.status == "succeeded", final.reason
        starts, delays, _ = _attempt_gaps(store, final.id)
        assert len(starts) == 2 and delays == [0.1]
        [p] = store.progress(final.id)
        assert p.status == "succeeded" and p.attempt == 1 and Path(p.file).exists()
    finally:
        store.close()


# --------------------------------------------------------------------------- readers while the runner writes


def test_concurrent_readers_while_the_runner_writes(tmp_path, write_config, sample_db):
    tool = stand_in_tool(tmp_path, SLOW_OK.format(n=25))
    config = job_config(write_config, sample_db, tool)
    run = jobs.start_run(config, "nightly")
    errors: list[BaseException] = []
    seen_bytes: list[int] = []
    stop = threading.Event()

    def reader():
        store = StateStore.open(config.state_db)
        try:
            while not stop.is_set():
                store.reap_lost()
                store.list_runs(active_only=True)
                for p in store.progress(run.id):
                    seen_bytes.append(p.bytes_raw)
                store.events(run.id, since_id=0)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    proc_script = textwrap.dedent(f"""\
        import sys, time
        from dumpdeck.backend.state import StateStore
        s = StateStore.open({str(config.state_db)!r})
        n = 0
        while True:
            r = s.get_run({run.id})
            s.progress({run.id}); s.events({run.id}); s.reap_lost(); n += 1
            if not r.active:
                break
        print(n)
        """)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", proc_script], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    store = StateStore.open(config.state_db)
    try:
        final = wait_until(lambda: (r := store.get_run(run.id)) and not r.active and r, timeout=90, what="run end")
    finally:
        stop.set()
        for t in threads:
            t.join()
        store.close()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert errors == []
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err and int(out) > 0
    assert final.status == "succeeded", final.reason
    assert any(b > 0 for b in seen_bytes)
    assert len(set(seen_bytes)) > 2  # readers saw the bytes grow while the dump ran


# --------------------------------------------------------------------------- verification, logs


@pytest.mark.parametrize("level", [3, 4])
def test_run_verifies_each_dump_at_the_job_level(write_config, sample_db, level):
    extra = f"jobs:\n  nightly:\n    databases: [{sample_db}]\n    verify: {level}\nrestore_test: {{target: same}}\n"
    config = load_config(write_config(extra))
    store = StateStore.open(config.state_db)
    try:
        run = store.create_run("nightly", "cli", "main", [sample_db], log_dir=config.runs_log_dir)
        final = runner.execute(config, store, run.id)
        assert final.status == "succeeded", final.reason
        [p] = store.progress(run.id)
        assert p.verified_level == level
        evs = store.events(run.id, limit=1000)
        checks = [e for e in evs if e.kind == "verify-check"]
        assert checks and all(e.data["outcome"] == "passed" for e in checks)
        assert max(e.data["level"] for e in checks) == level
        assert any(e.kind == "verify-passed" for e in evs)
        from dumpdeck.backend import manifest as manifest_mod

        assert manifest_mod.load(Path(p.file)).verified_level >= level
    finally:
        store.close()


def test_main_log_rotates_and_each_run_has_its_own_log(write_config):
    import logging

    from dumpdeck.backend.logs import setup_logging, tail

    path = write_config("log: {max_size: 2KiB, keep: 2}\n")
    config = load_config(path)
    log = setup_logging(config, run_id=5)
    try:
        for i in range(200):
            log.info("line %d %s", i, "x" * 40)
    finally:
        setup_logging(config)  # detach the run log
        for h in list(logging.getLogger("dumpdeck").handlers):
            h.close()
    main = Path(config.log.file)
    assert main.exists() and main.stat().st_size <= 2048
    assert Path(str(main) + ".1").exists() and Path(str(main) + ".2").exists()
    assert not Path(str(main) + ".3").exists()
    run_log = config.runs_log_dir / "5.log"
    assert tail(run_log, 1)[0].endswith("line 199 " + "x" * 40)
    assert len(run_log.read_text().splitlines()) == 200
