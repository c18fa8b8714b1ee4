"""Schedules: next run times, the managed crontab block, and systemd timer units.

The crontab block is delimited by `# BEGIN dumpdeck (managed)` and
`# END dumpdeck`; nothing outside it is ever changed. Installing the same
configuration twice leaves the crontab byte for byte as it was. Jobs with a
`timezone` get a `CRON_TZ=` line (honoured by cronie and systemd-cron; Debian's
vixie cron ignores it and uses the system time zone, which the block's
comment says). Because CRON_TZ applies to the lines after it, the block keeps
jobs with a time zone last and is kept at the end of the crontab: when
another line follows it, installing moves the block to the end (the other
lines' text and order stay as they were).

Where `crontab_file` is given (flag `--crontab-file` or `DUMPDECK_CRONTAB_FILE`)
that file is read and written instead of the user's crontab.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config, JobConfig, cron_problem
from .errors import ConfigError, UsageError

BEGIN = "# BEGIN dumpdeck (managed)"
END = "# END dumpdeck"
ENV_CRONTAB_FILE = "DUMPDECK_CRONTAB_FILE"


# --------------------------------------------------------------------------- cron expressions


def validate(expr: str, where: str = "schedule") -> None:
    problem = cron_problem(expr)
    if problem:
        raise ConfigError(f"{where}: {problem}")


def next_runs(job: JobConfig, n: int = 3, now: datetime | None = None) -> list[datetime]:
    """The next `n` run times of a job (aware datetimes in the job's time zone, else local time)."""
    from croniter import croniter

    if not job.schedule:
        return []
    validate(job.schedule, f"jobs.{job.name}.schedule")
    tz = ZoneInfo(job.timezone) if job.timezone else datetime.now().astimezone().tzinfo
    start = now or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    it = croniter(job.schedule, start.astimezone(tz))
    return [it.get_next(datetime) for _ in range(n)]


# --------------------------------------------------------------------------- crontab


def dumpdeck_executable() -> str:
    """Absolute path of the `dumpdeck` entry point (beside this interpreter, else on PATH)."""
    beside = Path(sys.executable).parent / "dumpdeck"
    if beside.exists():
        return str(beside.absolute())
    found = shutil.which("dumpdeck")
    if found:
        return str(Path(found).absolute())
    return f"{Path(sys.executable).absolute()} -m dumpdeck"


def _cron_escape(text: str) -> str:
    return text.replace("%", "\\%")  # % ends the command in a crontab line


def _config_abs(config: Config) -> Path:
    if config.path is None:
        raise UsageError("schedules need a configuration file path (cron runs `dumpdeck --config PATH`)")
    return Path(config.path).resolve()


def job_command(config: Config, job: JobConfig) -> str:
    exe = dumpdeck_executable()
    exe_q = exe if " -m " in exe else shlex.quote(exe)
    return f"{exe_q} --config {shlex.quote(str(_config_abs(config)))} job run {shlex.quote(job.name)}"


def scheduled_jobs(config: Config) -> list[JobConfig]:
    return [j for j in config.jobs.values() if j.schedule]


def crontab_block(config: Config) -> str:
    """The managed block (with its markers and a trailing newline), or '' when no job has a schedule."""
    jobs = scheduled_jobs(config)
    if not jobs:
        return ""
    for j in jobs:
        validate(j.schedule, f"jobs.{j.name}.schedule")  # type: ignore[arg-type]
    lines = [
        BEGIN,
        f"# written by `dumpdeck schedule install` from {_config_abs(config)}; edit the config, not these lines",
    ]
    plain = [j for j in jobs if not j.timezone]
    zoned = sorted((j for j in jobs if j.timezone), key=lambda j: (j.timezone, j.name))
    for j in plain:
        lines.append(f"{j.schedule} {_cron_escape(job_command(config, j))} >/dev/null 2>&1")
    if zoned:
        lines.append("# CRON_TZ is honoured by cronie; Debian's cron uses the system time zone instead")
    current_tz = None
    for j in zoned:
        if j.timezone != current_tz:
            lines.append(f"CRON_TZ={j.timezone}")
            current_tz = j.timezone
        lines.append(f"{j.schedule} {_cron_escape(job_command(config, j))} >/dev/null 2>&1")
    lines.append(END)
    return "\n".join(lines) + "\n"


def split_crontab(text: str) -> tuple[list[str], list[str], list[str]]:
    """(lines before the block, the block's lines, lines after). Raises on a damaged block."""
    lines = text.splitlines()
    begins = [i for i, ln in enumerate(lines) if ln.strip() == BEGIN]
    ends = [i for i, ln in enumerate(lines) if ln.strip() == END]
    if not begins and not ends:
        return lines, [], []
    if len(begins) != 1 or len(ends) != 1 or ends[0] < begins[0]:
        raise UsageError(
            f"the crontab's dumpdeck block is damaged ({len(begins)} '{BEGIN}' and {len(ends)} '{END}' lines); "
            "fix it by hand (crontab -e) and run the command again"
        )
    b, e = begins[0], ends[0]
    return lines[:b], lines[b : e + 1], lines[e + 1 :]


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def crontab_target(crontab_file: Path | str | None) -> Path | None:
    if crontab_file is not None:
        return Path(crontab_file)
    env = os.environ.get(ENV_CRONTAB_FILE)
    return Path(env) if env else None


def read_crontab(crontab_file: Path | None) -> str:
    if crontab_file is not None:
        try:
            return crontab_file.read_text()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise UsageError(f"cannot read {crontab_file}: {exc.strerror}") from None
    exe = shutil.which("crontab")
    if exe is None:
        raise UsageError(
            "the crontab command is not installed (apt-get install -y cron); "
            "use --systemd for timer units, or --crontab-file FILE"
        )
    proc = subprocess.run([exe, "-l"], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        if "no crontab" in proc.stderr.lower():
            return ""
        raise UsageError(f"crontab -l failed: {proc.stderr.strip()}")
    return proc.stdout


def write_crontab(text: str, crontab_file: Path | None) -> None:
    if crontab_file is not None:
        tmp = crontab_file.with_name(crontab_file.name + ".dumpdeck-tmp")
        crontab_file.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, crontab_file)
        return
    exe = shutil.which("crontab")
    if exe is None:
        raise UsageError("the crontab command is not installed (apt-get install -y cron)")
    proc = subprocess.run([exe, "-"], input=text, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise UsageError(f"crontab - failed: {proc.stderr.strip()}")


@dataclass
class CrontabChange:
    changed: bool
    before: str
    after: str
    target: str


def _apply_block(text: str, block: str) -> str:
    before, current, after = split_crontab(text)
    new_block = block.splitlines()
    if current == new_block and not (new_block and any(ln.strip() for ln in after) and "CRON_TZ=" in block):
        return text  # unchanged: leave the file byte for byte
    if not new_block:
        return _join(before + after)
    if current and not (any(ln.strip() for ln in after) and "CRON_TZ=" in block):
        return _join(before + new_block + after)  # replace in place
    rest = before + after
    while rest and not rest[-1].strip():
        rest.pop()
    return _join(rest + new_block)


def install(config: Config, crontab_file: Path | str | None = None) -> CrontabChange:
    target = crontab_target(crontab_file)
    text = read_crontab(target)
    new = _apply_block(text, crontab_block(config))
    changed = new != text
    if changed:
        write_crontab(new, target)
    return CrontabChange(changed, text, new, str(target) if target else "user crontab")


def remove(config: Config | None = None, crontab_file: Path | str | None = None) -> CrontabChange:
    target = crontab_target(crontab_file)
    text = read_crontab(target)
    before, current, after = split_crontab(text)
    if not current:
        return CrontabChange(False, text, text, str(target) if target else "user crontab")
    new = _join(before + after)
    write_crontab(new, target)
    return CrontabChange(True, text, new, str(target) if target else "user crontab")


def show(config: Config, crontab_file: Path | str | None = None) -> dict[str, Any]:
    """What is installed now and what `install` would write."""
    target = crontab_target(crontab_file)
    try:
        text = read_crontab(target)
        _b, current, _a = split_crontab(text)
        installed = _join(current)
        error = None
    except UsageError as exc:
        installed, error = "", str(exc)
    wanted = crontab_block(config)
    return {
        "target": str(target) if target else "user crontab",
        "installed": installed,
        "wanted": wanted,
        "up_to_date": installed == wanted,
        "error": error,
    }


# --------------------------------------------------------------------------- systemd


_DOW = {0: "Sun", 1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}
_DOW_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}
_MON_NAMES = {
    m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"])
}
_SHORTCUTS = {
    "@hourly": "*-*-* *:00:00",
    "@daily": "*-*-* 00:00:00",
    "@midnight": "*-*-* 00:00:00",
    "@weekly": "Sun *-*-* 00:00:00",
    "@monthly": "*-*-01 00:00:00",
    "@yearly": "*-01-01 00:00:00",
    "@annually": "*-01-01 00:00:00",
}


class Untranslatable(ValueError):
    """A cron expression with no exact OnCalendar equivalent."""


def _num(token: str, names: dict[str, int] | None) -> int:
    t = token.lower()
    if names and t in names:
        return names[t]
    if not t.isdigit():
        raise Untranslatable(f"{token!r} is not a number")
    return int(t)


def _field(text: str, lo: int, names: dict[str, int] | None = None, width: int = 2) -> str:
    """One cron field → systemd syntax (lists, ranges a..b, steps start/step)."""
    if text == "*":
        return "*"
    parts = []
    for item in text.split(","):
        step = None
        if "/" in item:
            item, s = item.split("/", 1)
            step = int(s)
        if item == "*":
            start = lo
            if step is None:
                return "*"
            parts.append(f"{start:0{width}d}/{step}")
        elif "-" in item:
            a, b = (_num(x, names) for x in item.split("-", 1))
            if step is not None:
                parts.extend(f"{v:0{width}d}" for v in range(a, b + 1, step))
            else:
                parts.append(f"{a:0{width}d}..{b:0{width}d}")
        else:
            v = _num(item, names)
            parts.append(f"{v:0{width}d}/{step}" if step is not None else f"{v:0{width}d}")
    return ",".join(parts)


def _dow_field(text: str) -> str:
    out = []
    for item in text.split(","):
        if "/" in item:
            raise Untranslatable(f"day-of-week step {item!r} has no OnCalendar form")
        if "-" in item:
            a, b = (_num(x, _DOW_NAMES) for x in item.split("-", 1))
            if a == 0:
                out.append(
                    "Sun" + (f",Mon..{_DOW[b]}" if 1 < b < 7 else ",Mon" if b == 1 else ",Mon..Sat" if b >= 6 else "")
                )
            elif b == 7:
                out.append(f"{_DOW[a]}..Sat,Sun")
            else:
                out.append(f"{_DOW[a]}..{_DOW[b]}")
        else:
            out.append(_DOW[_num(item, _DOW_NAMES)])
    return ",".join(out)


def on_calendar(expr: str, tz: str | None = None) -> str:
    """Translate a cron expression to a systemd OnCalendar= value, or raise Untranslatable."""
    validate(expr)
    e = expr.strip()
    if e in _SHORTCUTS:
        value = _SHORTCUTS[e]
    else:
        minute, hour, dom, month, dow = e.split()
        if dom != "*" and dow != "*":
            raise Untranslatable(
                f"{expr!r} restricts both day of month and day of week; cron runs when EITHER matches, "
                "OnCalendar only when BOTH do"
            )
        date = f"*-{_field(month, 1, _MON_NAMES)}-{_field(dom, 1)}"
        time_ = f"{_field(hour, 0)}:{_field(minute, 0)}:00"
        value = (f"{_dow_field(dow)} " if dow != "*" else "") + f"{date} {time_}"
    return f"{value} {tz}" if tz else value


def systemd_units(config: Config, job: JobConfig) -> dict[str, str]:
    """{file name: content} of the service and timer of one job. Raises Untranslatable."""
    assert job.schedule
    calendar = on_calendar(job.schedule, job.timezone)
    cmd = job_command(config, job)
    service = (
        f"[Unit]\nDescription=dumpdeck backup job {job.name}\nWants=network-online.target\n"
        f"After=network-online.target\n\n[Service]\nType=oneshot\nExecStart={cmd}\n"
        "# exit 3 = skipped because the previous run still holds the job lock\nSuccessExitStatus=3\n"
        "Nice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
    )
    timer = (
        f"[Unit]\nDescription=dumpdeck schedule for job {job.name} ({job.schedule}"
        f"{' ' + job.timezone if job.timezone else ''})\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n"
        f"Unit=dumpdeck-{job.name}.service\n\n[Install]\nWantedBy=timers.target\n"
    )
    return {f"dumpdeck-{job.name}.service": service, f"dumpdeck-{job.name}.timer": timer}


def default_unit_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


@dataclass
class SystemdResult:
    written: list[Path]
    unchanged: list[Path]
    problems: list[str]  # jobs whose schedule has no OnCalendar form
    unit_dir: Path


def install_systemd(config: Config, unit_dir: Path | None = None) -> SystemdResult:
    unit_dir = Path(unit_dir) if unit_dir else default_unit_dir()
    result = SystemdResult([], [], [], unit_dir)
    for job in scheduled_jobs(config):
        try:
            units = systemd_units(config, job)
        except Untranslatable as exc:
            result.problems.append(
                f"job {job.name}: cannot translate schedule to a systemd timer: {exc}; "
                "use the crontab instead, or write OnCalendar= by hand"
            )
            continue
        unit_dir.mkdir(parents=True, exist_ok=True)
        for name, content in units.items():
            path = unit_dir / name
            if path.exists() and path.read_text() == content:
                result.unchanged.append(path)
                continue
            tmp = path.with_name(name + ".tmp")
            tmp.write_text(content)
            os.replace(tmp, path)
            result.written.append(path)
    return result


def remove_systemd(config: Config, unit_dir: Path | None = None) -> list[Path]:
    unit_dir = Path(unit_dir) if unit_dir else default_unit_dir()
    removed = []
    for path in sorted(unit_dir.glob("dumpdeck-*.service")) + sorted(unit_dir.glob("dumpdeck-*.timer")):
        path.unlink()
        removed.append(path)
    return removed
