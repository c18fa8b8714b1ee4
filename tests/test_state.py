"""The state store: schema migrations, runs, progress, events, lost runs, notification state."""

from __future__ import annotations

import fcntl
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from dumpdeck.backend.state import SCHEMA_VERSION, DbProgress, StateError, StateStore


@pytest.fixture
def store(tmp_path):
    s = StateStore.open(tmp_path / "state" / "state.db")
    yield s
    s.close()


def test_schema_is_versioned_and_wal(store, tmp_path):
    assert store.schema_version == SCHEMA_VERSION >= 2
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    again = StateStore.open(store.path)  # migrating an up-to-date db is a no-op
    assert again.schema_version == SCHEMA_VERSION
    again.close()


def test_a_partially_migrated_database_is_upgraded(tmp_path):
    from dumpdeck.backend import state

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(state.MIGRATIONS[0] + "; PRAGMA user_version=1;")
    conn.execute("INSERT INTO runs (job, trigger, server, created) VALUES ('j', 'cli', 's', 1)")
    conn.commit()
    conn.close()
    s = StateStore.open(path)
    try:
        assert s.schema_version == SCHEMA_VERSION
        assert s.get_run(1).job == "j"
        s.set_notify_state("k", {"a": 1})
    finally:
        s.close()


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StateError, match="newer than this dumpdeck"):
        StateStore.open(path)


def test_runs_progress_and_events(store):
    run = store.create_run("nightly", "cron", "main", ["a", "b c"])
    assert run.status == "queued" and run.databases == ("a", "b c") and run.trigger == "cron"
    assert [p.status for p in store.progress(run.id)] == ["pending", "pending"]
    with pytest.raises(ValueError):
        store.create_run("x", "telepathy", "main", [])
    with pytest.raises(ValueError):
        store.update_run(run.id, status="exploded")
    now = datetime.now(UTC)
    store.update_run(run.id, status="running", started=now, pid=123)
    store.set_progress(DbProgress(run.id, "a", "running", bytes_raw=10, started=now, timeout=60))
    store.set_progress(DbProgress(run.id, "a", "running", bytes_raw=20, started=now, timeout=60, current_table="t1"))
    [a, b] = store.progress(run.id)
    assert a.bytes_raw == 20 and a.current_table == "t1" and a.updated is not None and b.database == "b c"
    assert 0 < a.time_left <= 60
    e1 = store.add_event(run.id, "info", "start", "hello", {"x": 1})
    e2 = store.add_event(None, "warning", "misc", "global")
    assert [e.message for e in store.events(run.id)] == ["hello"]
    assert [e.id for e in store.events(since_id=e1)] == [e2]
    assert store.events(run.id)[0].data == {"x": 1}
    assert [r.id for r in store.list_runs(active_only=True)] == [run.id]
    final = store.finish_run(run.id, "succeeded", "ok")
    assert final.status == "succeeded" and final.finished is not None
    assert store.finish_run(run.id, "failed", "late").status == "succeeded"  # the first final status wins
    assert store.list_runs(active_only=True) == []
    skipped = store.create_run("nightly", "cron", "main", ["a"], status="skipped", reason="locked")
    assert skipped.finished is not None and store.progress(skipped.id)[0].status == "skipped"
    assert [r.id for r in store.list_runs(job="nightly", limit=1)] == [skipped.id]


def test_history_and_last_success(store):
    for raw, stored in ((1000, 100), (2000, 300)):
        run = store.create_run("j", "cli", "main", ["db"])
        t = datetime.now(UTC)
        store.set_progress(
            DbProgress(
                run.id,
                "db",
                "succeeded",
                bytes_raw=raw,
                bytes_stored=stored,
                started=t,
                updated=t + timedelta(seconds=5),
                inventory_bytes=900,
            )
        )
    failed = store.create_run("j", "cli", "main", ["db"])
    store.set_progress(DbProgress(failed.id, "db", "failed", started=datetime.now(UTC)))
    hist = store.history("main", "db", 10)
    assert [h.bytes_stored for h in hist] == [300, 100]
    assert hist[0].duration == pytest.approx(5, abs=0.01) and hist[0].inventory_bytes == 900
    assert store.last_success("main", "db").id == hist[0].run_id
    assert store.last_success("other", "db") is None
    assert store.latest_attempt("main", "db").status == "failed"


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_reap_lost_by_dead_pid_removes_unlocked_partials_only(store, tmp_path):
    run = store.create_run("j", "cli", "main", ["a", "b"])
    store.update_run(
        run.id,
        status="running",
        pid=_dead_pid(),
        started=datetime.now(UTC),
        heartbeat=datetime.now(UTC),
    )
    free = tmp_path / "a.sql.zst.partial"
    held = tmp_path / "b.sql.zst.partial"
    free.write_bytes(b"x")
    held.write_bytes(b"x")
    store.set_progress(DbProgress(run.id, "a", "running", file=str(free)))
    store.set_progress(DbProgress(run.id, "b", "running", file=str(held)))
    holder = open(held, "rb")  # noqa: SIM115 -- held open as a live writer
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)  # an orphaned writer still holds it
    try:
        [lost] = store.reap_lost()
    finally:
        holder.close()
    assert lost.id == run.id and lost.status == "lost" and "is gone" in lost.reason
    assert not free.exists() and held.exists()
    assert {p.status for p in store.progress(run.id)} == {"failed"}
    assert store.reap_lost() == []


def test_reap_lost_by_stale_heartbeat_and_unclaimed_queue(store):
    import os

    alive = store.create_run("j", "cli", "main", ["a"])
    old = datetime.now(UTC) - timedelta(seconds=30)
    store.update_run(alive.id, status="running", pid=os.getpid(), host="elsewhere", started=old, heartbeat=old)
    queued = store.create_run("k", "cli", "main", ["a"])
    fresh = store.create_run("m", "cli", "main", ["a"])
    store.update_run(
        fresh.id,
        status="running",
        pid=os.getpid(),
        started=datetime.now(UTC),
        heartbeat=datetime.now(UTC),
    )
    assert store.reap_lost() == []  # nothing stale yet at "now"
    soon = {r.id: r for r in store.reap_lost(now=time.time() + 45)}
    assert set(soon) == {alive.id} and "no heartbeat" in soon[alive.id].reason
    later = {r.id: r for r in store.reap_lost(now=time.time() + 200)}
    assert set(later) == {queued.id, fresh.id} and "no runner" in later[queued.id].reason


def test_notification_state_and_log(store):
    assert store.get_notify_state("job:nightly") is None
    store.set_notify_state("job:nightly", {"status": "failed", "since": 1})
    store.set_notify_state("job:nightly", {"status": "ok"})
    assert store.get_notify_state("job:nightly") == {"status": "ok"}
    ok = store.record_notification("email", "job:nightly", "all good", True, None, payload={"body": "x"})
    bad = store.record_notification("webhook", "job:nightly", "failed", False, "HTTP 500", payload={"text": "y"})
    assert [n["id"] for n in store.notifications()] == [bad, ok]
    [pending] = store.pending_notifications()
    assert pending["id"] == bad and pending["payload"] == {"text": "y"} and pending["error"] == "HTTP 500"
    store.mark_notification_sent(bad)
    assert store.pending_notifications() == []
    assert store.notifications()[0]["ok"] and store.notifications()[0]["attempts"] == 2


def test_threads_share_a_store_with_their_own_connections(store):
    import threading

    run = store.create_run("j", "cli", "main", ["a"])
    errors = []

    def work(i):
        try:
            for n in range(50):
                store.add_event(run.id, "info", "t", f"{i}-{n}")
                store.progress(run.id)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(store.events(run.id, limit=1000)) == 300


def test_closed_store_says_so(tmp_path):
    s = StateStore.open(tmp_path / "s.db")
    s.close()
    with pytest.raises(StateError, match="closed"):
        s.list_runs()
