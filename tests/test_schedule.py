"""Schedules: cron expressions, next run times, the managed crontab block, systemd units."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from dumpdeck.backend import schedule
from dumpdeck.backend.config import JobConfig, load_config
from dumpdeck.backend.errors import ConfigError, Untranslatable, UsageError

ROOT = Path(__file__).resolve().parent.parent

FOREIGN = textwrap.dedent("""\
    MAILTO=ops@example.com
    # my own stuff
    15 3 * * * /usr/local/bin/rotate-logs --fast  # 100% mine
    @reboot /usr/bin/true
    """)


def cfg(write_config, jobs_yaml: str):
    return load_config(write_config("jobs:\n" + textwrap.indent(textwrap.dedent(jobs_yaml), "  ")))


def test_valid_expressions_give_next_runs_in_the_job_time_zone():
    job = JobConfig(name="n", server="main", schedule="30 2 * * 1-5", timezone="Europe/Berlin")
    now = datetime(2024, 3, 29, 12, tzinfo=UTC)  # a Friday; DST starts Sunday 31 March
    runs = schedule.next_runs(job, 3, now)
    assert [r.isoformat() for r in runs] == [
        "2024-04-01T02:30:00+02:00",
        "2024-04-02T02:30:00+02:00",
        "2024-04-03T02:30:00+02:00",
    ]
    assert all(r.tzinfo == ZoneInfo("Europe/Berlin") for r in runs)
    daily = JobConfig(name="d", server="main", schedule="@daily", timezone="UTC")
    assert schedule.next_runs(daily, 1, now)[0] == datetime(2024, 3, 30, tzinfo=ZoneInfo("UTC"))


@pytest.mark.parametrize(
    "expr, fragment",
    [
        ("61 2 * * *", "minute: 61 is out of range"),
        ("0 2 * *", "expected 5 fields"),
        ("@sometimes", "is not a cron shortcut"),
        ("0 25 * * *", "hour: 25 is out of range"),
        # croniter accepts these; Debian's cron rejects the whole crontab: refused with the reason
        ("0 2 * * 5#3", "croniter/Quartz extension"),
        ("0 2 L * *", "last day"),
        ("0 2 15W * *", "nearest weekday"),
        ("0 2 ? * *", "'?' is a croniter/Quartz extension"),
        ("0 0 2 * * *", "seconds and year fields"),
        ("5/15 * * * *", "not standard cron"),
        ("0 2 * * 5-1", "runs backwards"),
    ],
)
def test_invalid_expressions_are_clear_errors(write_config, expr, fragment):
    with pytest.raises(ConfigError) as err:
        cfg(write_config, f"nightly:\n  schedule: '{expr}'\n")
    text = str(err.value)
    assert "jobs.nightly.schedule" in text and fragment in text and "config.yaml:" in text
    with pytest.raises(ConfigError, match=fragment):
        schedule.next_runs(JobConfig(name="x", server="main", schedule=expr))


def test_crontab_install_is_idempotent_and_leaves_foreign_lines_alone(write_config, tmp_path):
    config = cfg(
        write_config,
        """\
        nightly: {schedule: "0 2 * * *"}
        berlin: {schedule: "30 1 * * 0", timezone: Europe/Berlin}
        manual: {}
        """,
    )
    crontab = tmp_path / "crontab"
    crontab.write_text(FOREIGN)
    first = schedule.install(config, crontab)
    assert first.changed
    text = crontab.read_text()
    assert text.startswith(FOREIGN)
    block = text[len(FOREIGN) :]
    assert block == schedule.crontab_block(config)
    lines = block.splitlines()
    assert lines[0] == schedule.BEGIN and lines[-1] == schedule.END
    run_lines = [ln for ln in lines if "job run" in ln]
    assert len(run_lines) == 2
    check_lines = [ln for ln in lines if ln.endswith(" check >/dev/null")]
    assert len(check_lines) == 1 and check_lines[0].startswith("*/30 * * * * ")  # checks.schedule default
    assert run_lines[0].startswith("0 2 * * * ") and run_lines[0].endswith("job run nightly >/dev/null")
    assert f"--config {config.path.resolve()}" in run_lines[0]
    assert Path(run_lines[0].split()[5]).is_absolute()
    assert lines[lines.index(run_lines[1]) - 1] == "CRON_TZ=Europe/Berlin"  # zoned jobs come last
    mtime = crontab.stat().st_mtime_ns
    second = schedule.install(config, crontab)
    assert not second.changed and crontab.read_text() == text and crontab.stat().st_mtime_ns == mtime

    # a changed config replaces the block; foreign lines keep their text and order
    config2 = cfg(write_config, 'nightly: {schedule: "0 3 * * *"}\n')
    assert schedule.install(config2, crontab).changed
    text2 = crontab.read_text()
    assert text2.startswith(FOREIGN) and "0 3 * * *" in text2 and "0 2 * * *" not in text2
    assert text2.count(schedule.BEGIN) == 1

    removed = schedule.remove(config2, crontab)
    assert removed.changed and crontab.read_text() == FOREIGN
    assert not schedule.remove(config2, crontab).changed


def test_a_block_with_cron_tz_moves_below_lines_added_after_it(write_config, tmp_path):
    config = cfg(write_config, 'berlin: {schedule: "0 1 * * *", timezone: Europe/Berlin}\n')
    crontab = tmp_path / "crontab"
    crontab.write_text(FOREIGN)
    schedule.install(config, crontab)
    crontab.write_text(crontab.read_text() + "0 5 * * * /usr/bin/added-later\n")
    config2 = cfg(write_config, 'berlin: {schedule: "0 2 * * *", timezone: Europe/Berlin}\n')
    schedule.install(config2, crontab)
    text = crontab.read_text()
    assert text.startswith(FOREIGN + "0 5 * * * /usr/bin/added-later\n" + schedule.BEGIN)


def test_damaged_block_is_refused(write_config, tmp_path):
    config = cfg(write_config, 'nightly: {schedule: "0 2 * * *"}\n')
    crontab = tmp_path / "crontab"
    crontab.write_text(FOREIGN + schedule.BEGIN + "\n0 2 * * * something\n")
    with pytest.raises(UsageError, match="damaged"):
        schedule.install(config, crontab)
    assert crontab.read_text() == FOREIGN + schedule.BEGIN + "\n0 2 * * * something\n"


def test_percent_signs_in_paths_are_escaped_for_cron(write_config, tmp_path):
    path = write_config('jobs:\n  n: {schedule: "0 2 * * *"}\n', name="odd%name.yaml")
    block = schedule.crontab_block(load_config(path))
    assert "odd\\%name.yaml" in block


def test_schedule_cli_uses_the_crontab_file_from_the_environment(write_config, tmp_path):
    path = write_config('jobs:\n  nightly: {schedule: "0 2 * * *"}\n')
    crontab = tmp_path / "ct"
    crontab.write_text(FOREIGN)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), schedule.ENV_CRONTAB_FILE: str(crontab)}

    def run(*a):
        return subprocess.run(
            [sys.executable, "-m", "dumpdeck", "--config", str(path), "schedule", *a],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )

    show = run("show")
    assert show.returncode == 0 and "no dumpdeck block installed" in show.stdout and "nightly" in show.stdout
    assert run("install").returncode == 0
    again = run("install")
    assert "already up to date" in again.stdout
    assert "installed and up to date" in run("show").stdout
    assert crontab.read_text().startswith(FOREIGN)
    assert run("remove").returncode == 0 and crontab.read_text() == FOREIGN


@pytest.mark.parametrize(
    "expr, tz, calendar",
    [
        ("0 2 * * *", None, "*-*-* 02:00:00"),
        ("*/15 * * * *", None, "*-*-* *:00/15:00"),
        ("30 1 * * 1-5", "Europe/Berlin", "Mon..Fri *-*-* 01:30:00 Europe/Berlin"),
        ("0 3 1 */3 *", None, "*-01/3-01 03:00:00"),
        ("0 0 * * 0", None, "Sun *-*-* 00:00:00"),
        ("0 4 * * 5-7", None, "Fri..Sat,Sun *-*-* 04:00:00"),
        ("@weekly", None, "Sun *-*-* 00:00:00"),
        ("5,35 8-18 * * *", None, "*-*-* 08..18:05,35:00"),
    ],
)
def test_cron_to_on_calendar(expr, tz, calendar):
    assert schedule.on_calendar(expr, tz) == calendar


def test_untranslatable_cron_is_said_clearly(write_config, tmp_path):
    with pytest.raises(Untranslatable, match="EITHER"):
        schedule.on_calendar("0 2 1 * 1")
    config = cfg(
        write_config,
        """\
        nightly: {schedule: "0 2 * * *"}
        odd: {schedule: "0 2 1 * 1"}
        """,
    )
    res = schedule.install_systemd(config, tmp_path / "units")
    assert sorted(p.name for p in res.written) == [
        "dumpdeck-check.service",
        "dumpdeck-check.timer",
        "dumpdeck-nightly.service",
        "dumpdeck-nightly.timer",
    ]
    assert len(res.problems) == 1 and "job odd" in res.problems[0] and "cannot translate" in res.problems[0]
    timer = (tmp_path / "units" / "dumpdeck-nightly.timer").read_text()
    assert "OnCalendar=*-*-* 02:00:00" in timer and "Persistent=true" in timer
    service = (tmp_path / "units" / "dumpdeck-nightly.service").read_text()
    assert "job run nightly" in service and "Type=oneshot" in service and "SuccessExitStatus=3" in service
    again = schedule.install_systemd(config, tmp_path / "units")
    assert again.written == [] and len(again.unchanged) == 4
    assert len(schedule.remove_systemd(config, tmp_path / "units").removed) == 4


@pytest.mark.parametrize(
    "expr, tz",
    [
        ("0 2 * * *", None),
        ("*/15 * * * *", None),
        ("30 1 * * 1-5", "Europe/Berlin"),
        ("0 3 1 */3 *", None),
        ("0 4 * * 5-7", None),
        ("5,35 8-18 * * *", None),
        ("0 6 * * 0-2", None),
        ("@monthly", None),
    ],
)
def test_on_calendar_fires_when_cron_does(expr, tz):
    """systemd-analyze computes the timer's next elapses; croniter the cron's: they must agree."""
    import os
    import shutil

    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed: the translations are checked by test_cron_to_on_calendar only")
    cal = schedule.on_calendar(expr, tz)
    res = subprocess.run(
        [exe, "calendar", "--iterations=5", cal], capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}
    )
    assert res.returncode == 0, res.stderr
    got = [
        datetime.strptime(line.split(":", 1)[1].strip(), "%a %Y-%m-%d %H:%M:%S %Z").replace(tzinfo=UTC)
        for line in res.stdout.splitlines()
        if "elapse:" in line or "Iter. #" in line
    ]
    assert len(got) == 5
    job = JobConfig(name="x", server="main", schedule=expr, timezone=tz or "UTC")
    from datetime import timedelta

    expect = schedule.next_runs(job, 5, got[0] - timedelta(seconds=1))
    assert [e.astimezone(UTC) for e in expect] == got


@pytest.mark.parametrize(
    "expr",
    ["0 2 * * *", "*/15 * * * *", "0 3 1 */3 *", "0 4 * * mon-fri", "0 0 1 jan,jul *", "5,35 8-18/2 * * 0-7", "@daily"],
)
def test_standard_expressions_are_accepted(expr):
    from dumpdeck.backend.cron import cron_problem

    assert cron_problem(expr) is None


# --------------------------------------------------------------------------- systemd: hardening, ownership


def _analyze():
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install -y systemd)")
    return exe


@pytest.mark.parametrize("system", [True, False], ids=["system", "user"])
def test_generated_units_verify_and_are_hardened(write_config, tmp_path, system):
    """systemd-analyze verify accepts the units; `security` rates the services 4.0 or lower."""
    exe = _analyze()
    config = cfg(write_config, 'nightly: {schedule: "0 2 * * *"}\n')
    units = tmp_path / "units"
    units.mkdir()
    files = {**schedule.systemd_units(config, config.jobs["nightly"], system=system), **schedule.check_units(config)}
    for name, text in files.items():
        (units / name).write_text(text)
    service = files["dumpdeck-nightly.service"]
    for line in ("ProtectSystem=strict", "PrivateTmp=yes", "NoNewPrivileges=yes", "UMask=0077"):
        assert line in service.splitlines()
    rw = next(ln for ln in service.splitlines() if ln.startswith("ReadWritePaths="))
    for d in (config.backup.dir, config.state_dir):
        assert f"-{Path(d).resolve()}" in rw.split("=", 1)[1].split() or any(
            Path(d).resolve().is_relative_to(Path(x.lstrip("-"))) for x in rw.split("=", 1)[1].split()
        )
    assert ("User=" in service) == system
    caps = next(ln for ln in service.splitlines() if ln.startswith("CapabilityBoundingSet="))
    if system and "User=root" in service:
        # root's units keep only what starting the unprivileged restore-test sandbox takes
        assert caps == "CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER"
    else:
        assert caps == "CapabilityBoundingSet=" and "SystemCallFilter=~@privileged" in service
    paths = sorted(str(p) for p in units.iterdir())
    res = subprocess.run([exe, "verify", "--man=no", *paths], capture_output=True, text=True, cwd=units, check=False)
    assert res.returncode == 0, res.stderr
    for name in ("dumpdeck-nightly.service", "dumpdeck-check.service"):
        sec = subprocess.run(
            [exe, "security", "--offline=true", str(units / name)], capture_output=True, text=True, check=False
        )
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", sec.stdout)
        assert m, sec.stdout + sec.stderr
        assert float(m.group(1)) <= 4.0, sec.stdout


def _fake_systemctl(tmp_path, monkeypatch) -> Path:
    """systemd cannot run here: a real process in its place records each call."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "systemctl.calls"
    script = bindir / "systemctl"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("DUMPDECK_SYSTEMCTL", "always")
    return calls


def test_remove_disables_and_deletes_only_this_configs_units(write_config, tmp_path, monkeypatch):
    calls = _fake_systemctl(tmp_path, monkeypatch)
    config = cfg(write_config, 'nightly: {schedule: "0 2 * * *"}\n')
    units = tmp_path / "units"
    units.mkdir()
    foreign = {
        "dumpdeck-other.timer": "[Timer]\nOnCalendar=daily\n",  # written by someone else
        "dumpdeck-other.service": "[Service]\nExecStart=/bin/true\n",
        "dumpdeck-elsewhere.timer": f"{schedule.MARKER}/etc/dumpdeck/another.yaml\n[Timer]\nOnCalendar=daily\n",
    }
    for name, text in foreign.items():
        (units / name).write_text(text)
    before = {p.name: p.read_text() for p in units.iterdir()}
    installed = schedule.install_systemd(config, units)
    assert {p.name for p in installed.written} == {
        "dumpdeck-nightly.service",
        "dumpdeck-nightly.timer",
        "dumpdeck-check.service",
        "dumpdeck-check.timer",
    }
    res = schedule.remove_systemd(config, units)
    assert {p.name for p in res.removed} == {p.name for p in installed.written}
    after = {p.name: p.read_text() for p in units.iterdir()}
    assert after == before  # the foreign units stay, byte for byte
    logged = calls.read_text().splitlines()
    disable = next(ln for ln in logged if ln.startswith("disable --now"))
    assert set(disable.split()[2:]) == {"dumpdeck-nightly.timer", "dumpdeck-check.timer"}
    assert not any("other" in ln or "elsewhere" in ln for ln in logged)
    assert logged[-1] == "daemon-reload"


def test_install_refuses_to_overwrite_a_unit_it_did_not_write(write_config, tmp_path):
    config = cfg(write_config, 'other: {schedule: "0 2 * * *"}\n')
    units = tmp_path / "units"
    units.mkdir()
    (units / "dumpdeck-other.timer").write_text("[Timer]\nOnCalendar=daily\n")
    res = schedule.install_systemd(config, units)
    assert any("dumpdeck-other.timer" in p and "not written by dumpdeck" in p for p in res.problems)
    assert (units / "dumpdeck-other.timer").read_text() == "[Timer]\nOnCalendar=daily\n"


def test_a_job_no_longer_scheduled_loses_its_units_on_install(write_config, tmp_path, monkeypatch):
    _fake_systemctl(tmp_path, monkeypatch)
    units = tmp_path / "units"
    schedule.install_systemd(cfg(write_config, 'a: {schedule: "0 2 * * *"}\nb: {schedule: "0 3 * * *"}\n'), units)
    res = schedule.install_systemd(cfg(write_config, 'a: {schedule: "0 2 * * *"}\n'), units)
    assert {p.name for p in res.removed} == {"dumpdeck-b.service", "dumpdeck-b.timer"}
    assert not (units / "dumpdeck-b.timer").exists() and (units / "dumpdeck-a.timer").exists()


def test_check_schedule_can_be_turned_off(write_config, tmp_path):
    config = load_config(write_config('jobs:\n  nightly: {schedule: "0 2 * * *"}\nchecks:\n  schedule: "off"\n'))
    assert config.checks.schedule is None
    assert " check " not in schedule.crontab_block(config) and "check >/dev" not in schedule.crontab_block(config)
    assert "dumpdeck-check.timer" not in {p.name for p in schedule.install_systemd(config, tmp_path / "u").written}


def test_user_units_say_how_to_enable_lingering(write_config, tmp_path, monkeypatch):
    """loginctl reports no lingering here (no logind): the hint names the command."""
    hint = schedule.linger_hint("backup")
    assert hint is not None and "loginctl enable-linger backup" in hint
