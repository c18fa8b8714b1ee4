"""Notifications end to end: real runs of a job (real mariadb-dump against the scratch server),
the runner's post-run hook, a real SMTP server that is down and then up, the smart sequence,
digests on an injected clock, trend flags written into the manifests."""

from __future__ import annotations

import json
import shutil
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend import postrun, runner
from dumpdeck.backend.config import load_config
from dumpdeck.backend.naming import stamp
from dumpdeck.backend.sandbox import free_port
from dumpdeck.backend.state import DbProgress, StateStore

from .test_notify import SmtpSink, WebhookSink, no_secret, notify_yaml

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def job_yaml(db: str, *, tool: Path | None = None, extra_job: str = "") -> str:
    return f"jobs:\n  nightly:\n    server: main\n    databases: ['{db}']\n    verify: 0\n{extra_job}"


def write_job_config(
    write_config, tmp_path, db, smtp_port, *, name="config.yaml", tool: Path | None = None, **notify_kw
):
    path = write_config(
        job_yaml(db) + notify_yaml(tmp_path, smtp_port=smtp_port, **notify_kw), password=True, name=name
    )
    if tool is not None:
        body = path.read_text().replace("  stall_timeout: 60s\n", f"  stall_timeout: 60s\n  dump_tool: {tool}\n")
        path.write_text(body)
    return load_config(path)


def failing_tool(tmp_path: Path) -> Path:
    """A real executable standing in for mariadb-dump that fails like a broken server would."""
    path = tmp_path / "broken-dump"
    path.write_text(
        textwrap.dedent("""\
        #!/bin/sh
        case "$1" in --version) echo "mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB, for debian"; exit 0;; esac
        echo "mariadb-dump: Got error: 1045: Access denied for user 'bk'@'localhost' when trying to connect" >&2
        exit 2
        """)
    )
    path.chmod(0o755)
    return path


def runs(config):
    with StateStore.open(config.state_db) as store:
        return store.list_runs(limit=50)


def pending(config):
    with StateStore.open(config.state_db) as store:
        return store.pending_notifications()


# --------------------------------------------------------------------------- SMTP down, then up


def test_smtp_down_backup_succeeds_failed_notification_recorded_and_retried(tmp_path, write_config, sample_db):
    port = free_port()  # nothing listens there yet
    config = write_job_config(write_config, tmp_path, sample_db, port)

    assert runner.run_job_foreground(config, "nightly", "cli") == 0  # the backup succeeded
    [run1] = runs(config)
    assert run1.status == "succeeded"
    dumps = list(Path(config.backup.dir).rglob("*.sql.zst"))
    assert len(dumps) == 1
    [p] = pending(config)
    assert p["channel"] == "email" and p["subject"].startswith("[OK] dumpdeck: job nightly on main")
    assert "127.0.0.1" in p["error"] and "refused" in p["error"].lower()
    with StateStore.open(config.state_db) as store:
        events = [e.message for e in store.events(run1.id, kind="notify")]
    assert any("will be retried" in m for m in events)
    # the status page was written anyway
    assert (Path(config.state_dir) / "report.html").exists()

    # the SMTP server comes back; the next event (the next run) delivers the pending message
    with SmtpSink(port=port) as smtp:
        assert runner.run_job_foreground(config, "nightly", "cli") == 0
    assert pending(config) == []
    # second success is silent under smart: exactly the retried first-success arrived
    assert len(smtp.messages) == 1
    msg = smtp.parsed()
    assert msg["Subject"].startswith("[OK] dumpdeck: job nightly on main")
    body = msg.get_content()
    assert "could not be delivered" in body and "resent now" in body
    assert sample_db in body and str(dumps[0]) in body
    no_secret(smtp.messages[0].content)
    with StateStore.open(config.state_db) as store:
        [row] = [n for n in store.notifications(10) if n["channel"] == "email"]
    assert row["ok"] and row["attempts"] == 2


# --------------------------------------------------------------------------- the smart sequence, real runs


def test_smart_sequence_with_real_runs_sends_first_success_failure_recovery(tmp_path, write_config, sample_db):
    with SmtpSink() as smtp, WebhookSink() as hook:
        good = write_job_config(write_config, tmp_path, sample_db, smtp.port, webhook_url=hook.url)
        bad = write_job_config(
            write_config,
            tmp_path,
            sample_db,
            smtp.port,
            webhook_url=hook.url,
            name="broken.yaml",
            tool=failing_tool(tmp_path),
        )
        codes = [runner.run_job_foreground(cfg, "nightly", "cron") for cfg in (good, good, bad, bad, good)]
    assert codes == [0, 0, 1, 1, 0]  # the backups themselves behaved as they should
    subjects = [smtp.parsed(i)["Subject"] for i in range(len(smtp.messages))]
    assert [s.split("]")[0] + "]" for s in subjects] == ["[OK]", "[FAILED]", "[RECOVERED]"], subjects
    assert "first success" in subjects[0]
    assert f"{sample_db} failed" in subjects[1]
    assert "recovered after" in subjects[2] and "(2 failed runs)" in subjects[2]
    failure = smtp.parsed(1).get_content()
    run_ids = [r.id for r in reversed(runs(good))]
    assert f"job status {run_ids[2]}" in failure and f"runs/{run_ids[2]}.log" in failure
    assert "Access denied" in failure and f"{sample_db}: FAILED" in failure
    # webhook got the same three, Slack-shaped
    assert [json.loads(b)["text"].split("]")[0] for b in hook.bodies] == ["*[OK", "*[FAILED", "*[RECOVERED"]
    for raw in smtp.messages:
        assert sorted(raw.rcpt_tos) == ["boss@example.org", "dba@example.org", "oncall@example.org"]
        no_secret(raw.content)
    for b in hook.bodies:
        no_secret(b)


# --------------------------------------------------------------------------- digests, injected clock


def _fake_run(store, config, status: str, error: str | None, finished: datetime):
    run = store.create_run("nightly", "cron", "main", ["shop"], log_dir=config.runs_log_dir)
    store.update_run(run.id, status="running", started=finished - timedelta(seconds=30))
    store.set_progress(
        DbProgress(
            run.id,
            "shop",
            status="succeeded" if status == "succeeded" else "failed",
            error=error,
            started=finished - timedelta(seconds=30),
            updated=finished,
        )
    )
    return store.finish_run(run.id, status, error)


def test_long_failure_sends_digests_at_the_configured_cadence(tmp_path, write_config):
    """A job failing every hour for 30 hours, digest_every 6h: failure + 4 digests, then the recovery."""
    with SmtpSink() as smtp:
        path = write_config(job_yaml("shop") + notify_yaml(tmp_path, smtp_port=smtp.port, digest_every="6h"))
        config = load_config(path)
        t0 = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
        with StateStore.open(config.state_db) as store:
            for hour in range(31):
                now = t0 + timedelta(hours=hour)
                if hour == 0:
                    run = _fake_run(store, config, "succeeded", None, now)
                elif hour < 30:
                    run = _fake_run(store, config, "failed", "mariadb-dump exited 2: server has gone away", now)
                else:
                    run = _fake_run(store, config, "succeeded", None, now)
                result = postrun.after_run(config, store, run, now=now.timestamp())
                assert result.errors == []
    subjects = [smtp.parsed(i)["Subject"] for i in range(len(smtp.messages))]
    kinds = [s.split("]")[0][1:] for s in subjects]
    assert kinds == ["OK", "FAILED", "FAILED", "FAILED", "FAILED", "FAILED", "RECOVERED"], subjects
    digests = subjects[2:6]
    assert all("still failing" in s for s in digests)
    # failures began at hour 1: digests at hours 7, 13, 19, 25 (6 h apart), with the duration so far
    assert [s for s in digests if "for 6h00m" in s] and [s for s in digests if "for 1d0h" in s]
    assert "recovered after 1d5h (29 failed runs)" in subjects[-1]


# --------------------------------------------------------------------------- trends into manifests and messages


def test_small_dump_is_flagged_in_manifest_and_notification(tmp_path, write_config, make_db, mariadb):
    db = make_db(f"trendy_{free_port()}", rows=400)
    with SmtpSink() as smtp:
        config = write_job_config(write_config, tmp_path, db, smtp.port, policy="smart")
        assert runner.run_job_foreground(config, "nightly", "cli") == 0
        [real] = list(Path(config.backup.dir).rglob("*.sql.zst"))
        m = manifest_mod.load(real)
        # history: three earlier dumps of the same database, each 3x bigger and as fast
        for days in (3, 2, 1):
            when = datetime.fromisoformat(m.finished) - timedelta(days=days)
            fake = real.with_name(f"{real.name.split('-')[0]}-{stamp(when)}.sql.zst")
            shutil.copy(real, fake)
            old = manifest_mod.load(real)
            old.bytes_raw *= 3
            old.started = old.finished = when.isoformat(timespec="seconds")
            old.file = fake.name
            manifest_mod.save(old, fake)
        # the real dump only served as a template (a second run in the same second would reuse its name)
        real.unlink()
        manifest_mod.manifest_path(real).unlink()
        with mariadb.connect(db) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM orders WHERE id > 20")
        assert runner.run_job_foreground(config, "nightly", "cli") == 0
    newest = max(Path(config.backup.dir).rglob("*.sql.zst"), key=lambda p: p.name)
    assert manifest_mod.load(newest).flags == ["small"]
    oldest = min(Path(config.backup.dir).rglob("*.sql.zst"), key=lambda p: p.name)
    assert manifest_mod.load(oldest).flags == []
    subjects = [smtp.parsed(i)["Subject"] for i in range(len(smtp.messages))]
    assert subjects[0].startswith("[OK]")
    assert subjects[-1].startswith("[WARNING]") and "unusual dumps" in subjects[-1] and db in subjects[-1]
    body = smtp.parsed(-1).get_content()
    assert "TREND:    small:" in body and "median" in body
    html = (Path(config.state_dir) / "report.html").read_text()
    assert ">small<" in html


# --------------------------------------------------------------------------- never raises


def test_after_run_never_raises_even_with_a_broken_store(tmp_path, write_config):
    config = load_config(write_config(notify_yaml(tmp_path, smtp_port=free_port())))

    class Broken:
        def __getattr__(self, name):
            def fail(*a, **k):
                raise RuntimeError(f"state store exploded in {name}")

            return fail

    class R:
        id, job, server, status = 7, "nightly", "main", "failed"

    result = postrun.after_run(config, Broken(), R())
    assert result.errors and all("exploded" in e or "Error" in e for e in result.errors)


# --------------------------------------------------------------------------- verification and disk alarms


def test_failed_verification_and_disk_levels_notify(tmp_path, write_config):
    from .test_report import synth_dump

    with SmtpSink() as smtp:
        extra = (
            job_yaml("shop")
            + notify_yaml(tmp_path, smtp_port=smtp.port)
            + "disk:\n  warn_percent: 1\n  critical_percent: 1\n"
        )
        config = load_config(write_config(extra))
        now = datetime.now(UTC)
        dump = synth_dump(
            Path(config.backup.dir),
            "main",
            "shop",
            now - timedelta(minutes=1),
            raw=1000,
            stored=100,
            duration=2,
            verified=[(1, True), (2, False)],
        )
        m = manifest_mod.load(dump)
        m.verifications[-1].checks = [
            {"name": "row counts", "passed": False, "evidence": "orders: 10 rows in the dump, 12 expected"}
        ]
        manifest_mod.save(m, dump)
        with StateStore.open(config.state_db) as store:
            run = store.create_run("nightly", "cron", "main", ["shop"], log_dir=config.runs_log_dir)
            store.set_progress(
                DbProgress(
                    run.id, "shop", status="succeeded", file=str(dump), started=now - timedelta(minutes=2), updated=now
                )
            )
            run = store.finish_run(run.id, "succeeded", "1 of 1 dumped")
            result = postrun.after_run(config, store, run, now=now.timestamp())
            assert result.errors == []
            # the same state again: nothing new to say about verification or disk
            again = postrun.after_run(config, store, run, now=now.timestamp() + 60)
    subjects = [smtp.parsed(i)["Subject"] for i in range(len(smtp.messages))]
    assert any(s.startswith("[FAILED] dumpdeck: main/shop: verification level 2 FAILED") for s in subjects), subjects
    assert any(s.startswith("[CRITICAL] dumpdeck: disk ") for s in subjects), subjects
    verify_body = next(smtp.parsed(i).get_content() for i, s in enumerate(subjects) if "verification level" in s)
    assert "orders: 10 rows in the dump, 12 expected" in verify_body and f"dumpdeck verify {dump}" in verify_body
    run_body = next(smtp.parsed(i).get_content() for i, s in enumerate(subjects) if "job nightly" in s)
    assert "VERIFICATION FAILED: level 2: row counts" in run_body and f"verify {dump}" in run_body
    assert not [x for x in again.dispatches if x.sent and not x.key.startswith("job:")]
    assert any(
        s.startswith("[WARNING] dumpdeck: job nightly on main: dumped, but verification failed (shop)")
        for s in subjects
    ), subjects
