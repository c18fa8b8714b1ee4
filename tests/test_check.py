"""The dead-man's check: each exit code, the Nagios line, max_age per job, small dumps, disk thresholds,
and its notifications (once per new problem, recovery when clear) through a real webhook server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dumpdeck.backend.check import CRITICAL, OK, WARNING, check, evaluate
from dumpdeck.backend.config import load_config

from .test_notify import WebhookSink
from .test_report import offline_config, synth_dump

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_when_the_test_runs():
    """Ages are measured against the clock when each test runs, not when the module was collected."""
    global NOW  # noqa: PLW0603
    NOW = datetime.now(UTC).replace(microsecond=0)


def jobs_yaml(
    dbs=("shop",), max_age: str | None = None, disk: str = "disk:\n  warn_percent: 99\n  critical_percent: 100\n"
) -> str:
    text = f"jobs:\n  nightly:\n    server: main\n    databases: [{', '.join(dbs)}]\n"
    if max_age:
        text += f"    max_age: {max_age}\n"
    text += "checks:\n  max_age: 26h\n  min_size_ratio: 0.5\n"
    return text + disk


def nightly(tmp_path, db="shop", *, days=5, last_raw=100_000_000, last_age=timedelta(hours=3)):
    for i in range(days):
        when = NOW - last_age - timedelta(days=days - 1 - i)
        synth_dump(
            tmp_path / "backups",
            "main",
            db,
            when,
            raw=last_raw if i == days - 1 else 100_000_000,
            stored=1000,
            duration=30,
        )


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dumpdeck", "--config", str(cfg), "check", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_ok_exit_0(tmp_path):
    nightly(tmp_path)
    cfg = offline_config(tmp_path, jobs_yaml())
    r = cli(cfg, "--no-notify")
    assert r.returncode == 0, r.stdout + r.stderr
    line = r.stdout.strip()
    assert line.startswith("DUMPDECK OK - 1 database backed up, oldest last success 3h00m ago")
    assert "\n" not in line
    perf = line.split(" | ", 1)[1].split()
    # Nagios perfdata: label=value[UOM];warn;crit;min;max
    assert perf[:3] == ["databases=1;;;0", "overdue=0;;0;0", "small=0;0;;0"]
    assert re.fullmatch(r"oldest_age=108\d\ds;;93600;0", perf[3])  # ~3 h, crit at the max_age, in seconds
    assert re.fullmatch(r"disk_max=[0-9.]+%;99;100;0;100", perf[4])


def test_overdue_is_critical_exit_2(tmp_path):
    nightly(tmp_path, last_age=timedelta(hours=30))
    cfg = offline_config(tmp_path, jobs_yaml())
    r = cli(cfg, "--no-notify")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stdout.startswith("DUMPDECK CRITICAL - main/shop: no successful backup for 1d6h (max_age 1d2h)")


def test_job_max_age_overrides_checks_max_age(tmp_path):
    nightly(tmp_path, last_age=timedelta(hours=3))
    config = load_config(offline_config(tmp_path, jobs_yaml(max_age="2h")))
    res = evaluate(config, NOW.timestamp(), disk=[])
    assert res.code == CRITICAL and "max_age 2h00m" in res.line


def test_a_database_never_backed_up_is_critical(tmp_path):
    nightly(tmp_path)
    config = load_config(offline_config(tmp_path, jobs_yaml(dbs=("shop", "crm"))))
    res = evaluate(config, NOW.timestamp(), disk=[])
    assert res.code == CRITICAL
    assert [p.id for p in res.problems] == ["never:main/crm"]
    assert "main/crm: no successful backup on disk" in res.line


def test_anomalously_small_last_dump_is_warning_exit_1(tmp_path):
    nightly(tmp_path, last_raw=30_000_000)  # 30% of the median of the four before it
    cfg = offline_config(tmp_path, jobs_yaml())
    r = cli(cfg, "--no-notify", "--verbose")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout.startswith("DUMPDECK WARNING - main/shop: newest dump is 28.6 MiB, 30% of the median 95.4 MiB")
    assert "small=1" in r.stdout and "  WARNING: main/shop: newest dump" in r.stdout


def test_disk_thresholds(tmp_path):
    nightly(tmp_path)
    # the real disk this test runs on is somewhere between 1% and 99% full
    warn = load_config(offline_config(tmp_path, jobs_yaml(disk="disk:\n  warn_percent: 1\n  critical_percent: 100\n")))
    res = evaluate(warn, NOW.timestamp())
    assert res.code == WARNING and any(p.id.startswith("disk:") for p in res.problems), res.line
    crit = load_config(offline_config(tmp_path, jobs_yaml(disk="disk:\n  warn_percent: 1\n  critical_percent: 1\n")))
    res = evaluate(crit, NOW.timestamp())
    assert res.code == CRITICAL and "critical at 1%" in res.line
    calm = load_config(offline_config(tmp_path, jobs_yaml()))
    assert evaluate(calm, NOW.timestamp()).code == OK


def test_broken_config_is_unknown_exit_3_with_one_stdout_line(tmp_path):
    """Nagios: a plugin that cannot evaluate says UNKNOWN (3), with one line on stdout."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("servers: {}\nbackup: {dir: 5}\nbogus: 1\n")
    r = cli(cfg)
    assert r.returncode == 3, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("DUMPDECK UNKNOWN - configuration error: ")
    assert "more problems" in lines[0] and "Traceback" not in r.stderr
    missing = cli(tmp_path / "nope.yaml")
    assert missing.returncode == 3 and missing.stdout.startswith("DUMPDECK UNKNOWN - configuration error:")
    j = cli(cfg, "--json")
    assert j.returncode == 3 and json.loads(j.stdout)["status"] == "UNKNOWN"


def test_unreadable_state_is_unknown(tmp_path):
    nightly(tmp_path)
    cfg = offline_config(tmp_path, jobs_yaml())
    state_db = load_config(cfg).state_db
    state_db.parent.mkdir(parents=True, exist_ok=True)
    state_db.write_bytes(b"this is not an SQLite database" * 100)
    r = cli(cfg, "--no-notify")
    assert r.returncode == 3, r.stdout + r.stderr
    assert r.stdout.startswith("DUMPDECK UNKNOWN - cannot read the state store") and r.stdout.count("\n") == 1


def test_check_json(tmp_path):
    nightly(tmp_path, last_age=timedelta(hours=30))
    cfg = offline_config(tmp_path, jobs_yaml())
    r = cli(cfg, "--no-notify", "--json")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out["status"] == "CRITICAL" and out["code"] == 2 and out["line"].startswith("DUMPDECK CRITICAL")
    assert out["problems"][0]["id"] == "overdue:main/shop" and out["problems"][0]["level"] == "CRITICAL"
    assert out["perfdata"]["oldest_age"]["uom"] == "s" and out["perfdata"]["oldest_age"]["crit"] == 93600


def test_check_notifies_once_per_new_problem_and_on_recovery(tmp_path):
    nightly(tmp_path, last_age=timedelta(hours=30))
    with WebhookSink() as hook:
        extra = jobs_yaml() + f"notify:\n  digest_every: 12h\n  webhook:\n    url: {hook.url}\n    format: json\n"
        config = load_config(offline_config(tmp_path, extra))
        t = NOW.timestamp()
        r1 = check(config, t)
        r2 = check(config, t + 600)  # same problem 10 minutes later: quiet
        assert (r1.code, r2.code) == (CRITICAL, CRITICAL)
        assert len(hook.bodies) == 1
        first = json.loads(hook.bodies[0])
        assert first["subject"] == "[CRITICAL] dumpdeck: dead-man's check: 1 problem"
        assert "no successful backup for 1d6h" in first["body"] and "dumpdeck --config" in first["body"]
        # a second database goes missing: new problem, sent at once
        synth_dump(tmp_path / "backups", "main", "crm", NOW - timedelta(hours=40), raw=1, stored=1, duration=1)
        config2 = load_config(offline_config(tmp_path, extra.replace("[shop]", "[shop, crm]")))
        check(config2, t + 1200)
        assert len(hook.bodies) == 2 and "2 problems" in json.loads(hook.bodies[1])["subject"]
        # 12 hours later, still broken: one digest
        check(config2, t + 12 * 3600 + 1200)
        assert len(hook.bodies) == 3 and "still critical" in json.loads(hook.bodies[2])["subject"]
        # fresh backups arrive: recovery
        nightly(tmp_path, last_age=timedelta(hours=-13))
        nightly(tmp_path, db="crm", last_age=timedelta(hours=-13))
        r = check(config2, t + 13 * 3600)
        assert r.code == OK, r.line
        assert len(hook.bodies) == 4
        assert json.loads(hook.bodies[3])["subject"].startswith("[RECOVERED] dumpdeck: dead-man's check: all clear")


def test_no_notify_sends_nothing(tmp_path):
    nightly(tmp_path, last_age=timedelta(hours=30))
    with WebhookSink() as hook:
        cfg = offline_config(tmp_path, jobs_yaml() + f"notify:\n  webhook:\n    url: {hook.url}\n")
        assert cli(cfg, "--no-notify").returncode == 2
        assert hook.bodies == []
        assert cli(cfg).returncode == 2
        assert len(hook.bodies) == 1 and json.loads(hook.bodies[0])["text"].startswith("*[CRITICAL]")
