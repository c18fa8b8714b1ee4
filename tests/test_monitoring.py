"""Monitoring that fits existing tools: the Prometheus textfile, the push heartbeat, Apprise.

Real parts: real runs (`job run`, what cron calls) against the session's mariadbd, a real HTTP
server on loopback for the heartbeat and Apprise, and prometheus_client's own parser for the file
(promtool is not installable here).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from dumpdeck.backend.config import load_config
from dumpdeck.backend.notify import Message, deliver, heartbeat

from .test_notify import WebhookSink

TOKEN = "hb-5ecret-uuid-1234"


def _run(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(path), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _families(path: Path) -> dict:
    families = {}
    for fam in text_string_to_metric_families(path.read_text()):
        families[fam.name] = fam
    return families


def _sample(families: dict, name: str, **labels):
    fam = families[name]
    for s in fam.samples:
        if all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"{name}{labels} not in {[s.labels for s in fam.samples]}")


def test_runs_ping_the_heartbeat_and_write_the_textfile(write_config, sample_db, tmp_path):
    prom = tmp_path / "textfile" / "dumpdeck.prom"
    with WebhookSink() as sink:
        url = f"http://127.0.0.1:{sink.port}/ping/{TOKEN}"
        path = write_config(
            f"""\
            jobs:
              good:
                databases: [{sample_db}]
                verify: 2
              bad:
                databases: [no_such_database_here]
            notify:
              heartbeat: {{url: "{url}", retries: 0}}
            metrics:
              textfile: {prom}
            """
        )
        ok = _run(path, "job", "run", "good")
        assert ok.returncode == 0, ok.stderr
        assert sink.paths == [f"/ping/{TOKEN}"]
        assert "(good on main) succeeded" in sink.bodies[0].decode()
        fams = _families(prom)
        bad = _run(path, "job", "run", "bad")
        assert bad.returncode == 1
        assert sink.paths[-1] == f"/ping/{TOKEN}/fail" and len(sink.paths) == 2
        assert "failed" in sink.bodies[-1].decode()
    # the secret URL never reached a log
    config = load_config(path)
    logs = Path(config.log.file).read_text() + "".join(p.read_text() for p in config.runs_log_dir.glob("*.log"))
    assert TOKEN not in logs and "heartbeat http://127.0.0.1" in logs

    # the textfile after the successful run
    assert _sample(fams, "dumpdeck_last_success_timestamp_seconds", server="main", database=sample_db) > 1.7e9
    assert _sample(fams, "dumpdeck_last_dump_bytes", server="main", database=sample_db) > 0
    assert _sample(fams, "dumpdeck_last_dump_raw_bytes", server="main", database=sample_db) > 0
    assert _sample(fams, "dumpdeck_last_dump_duration_seconds", server="main", database=sample_db) > 0
    assert _sample(fams, "dumpdeck_verified_level", server="main", database=sample_db) == 2
    assert _sample(fams, "dumpdeck_check_status") in (0, 1, 2)
    assert 0 < _sample(fams, "dumpdeck_disk_used_ratio") < 1
    assert _sample(fams, "dumpdeck_runs", job="good", status="succeeded") == 1
    # ...and after the failed one: run outcomes by job
    fams = _families(prom)
    assert _sample(fams, "dumpdeck_runs", job="bad", status="failed") == 1
    assert fams["dumpdeck_runs"].type == "counter"
    assert not list(prom.parent.glob(".*.tmp")), "the textfile is written beside and renamed over"

    # `dumpdeck check` rewrites it with its verdict (CRITICAL: 'bad' never had a backup)
    before = prom.stat().st_mtime_ns
    chk = _run(path, "check", "--no-notify")
    assert chk.returncode == 2
    fams = _families(prom)
    assert prom.stat().st_mtime_ns != before and _sample(fams, "dumpdeck_check_status") == 2


def test_heartbeat_retries_then_reports_without_the_secret(tmp_path):
    with WebhookSink(status=500) as sink:
        from dumpdeck.backend.config import HeartbeatConfig

        cfg = HeartbeatConfig(url=f"http://127.0.0.1:{sink.port}/ping/{TOKEN}", timeout=5, retries=2)
        result = heartbeat.ping(cfg, False, "run 9 failed", first_delay=0.05)
        assert not result.ok and result.attempts == 3 and len(sink.paths) == 3
        assert all(p == f"/ping/{TOKEN}/fail" for p in sink.paths)
        assert TOKEN not in result.error and "HTTP 500" in result.error
        sink.status = 200
        assert heartbeat.ping(cfg, True, "run 10 succeeded", first_delay=0.05).ok
        assert sink.paths[-1] == f"/ping/{TOKEN}"


def test_apprise_channel_delivers_to_a_loopback_json_endpoint(write_config, tmp_path):
    pytest.importorskip("apprise", reason="the apprise extra is part of the test extras (pip install -e .[test])")
    with WebhookSink() as sink:
        path = write_config(f'notify:\n  apprise: ["json://127.0.0.1:{sink.port}/hook/{TOKEN}"]\n')
        config = load_config(path)
        [d] = deliver(config, Message("FAILED", "backup of shop failed", "details here", "job:nightly"))
        assert d.channel == "apprise" and d.ok, d.error
        body = sink.json()
        assert body["title"].endswith("backup of shop failed") and "details here" in body["message"]
        assert body["type"] == "failure"
        check = _run(path, "config", "check")
        assert check.returncode == 0 and TOKEN not in check.stdout + check.stderr
    # the endpoint gone: a failure that names no secret
    [d] = deliver(config, Message("OK", "x", "y", "test"))
    assert not d.ok and TOKEN not in (d.error or "")


def test_metrics_escape_hostile_names(tmp_path):
    from dumpdeck.backend import metrics

    assert metrics._labels(database='a"b\\c\nd') == '{database="a\\"b\\\\c\\nd"}'
    text = '# TYPE x gauge\nx{database="a\\"b\\\\c\\nd"} 1\n'
    [fam] = list(text_string_to_metric_families(text))
    assert fam.samples[0].labels["database"] == 'a"b\\c\nd'
