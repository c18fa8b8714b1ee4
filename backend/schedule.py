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

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .config import Config, JobConfig
from .cron import cron_problem
from .errors import ConfigError, DumpdeckError, Untranslatable, UsageError
from .report import report_path
from .sandbox import HOME_BASE as SANDBOX_HOME
from .sandbox import sandbox_account

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


def _command(config: Config, *args: str) -> str:
    exe = dumpdeck_executable()
    exe_q = exe if " -m " in exe else shlex.quote(exe)
    return f"{exe_q} --config {shlex.quote(str(_config_abs(config)))} " + " ".join(shlex.quote(a) for a in args)


def job_command(config: Config, job: JobConfig) -> str:
    return _command(config, "job", "run", job.name)


def check_command(config: Config) -> str:
    return _command(config, "check")


def check_scheduled(config: Config) -> bool:
    """`dumpdeck check` is scheduled beside the jobs (checks.schedule), when any job is scheduled."""
    return bool(config.checks.schedule) and bool(scheduled_jobs(config))


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
        "# stdout is discarded; stderr is kept, so cron mails (or logs) a run's error line",
    ]
    plain = [j for j in jobs if not j.timezone]
    zoned = sorted((j for j in jobs if j.timezone), key=lambda j: (j.timezone, j.name))
    for j in plain:
        lines.append(f"{j.schedule} {_cron_escape(job_command(config, j))} >/dev/null")
    if check_scheduled(config):
        lines.append(f"{config.checks.schedule} {_cron_escape(check_command(config))} >/dev/null")
    if zoned:
        lines.append("# CRON_TZ is honoured by cronie; Debian's cron uses the system time zone instead")
    current_tz = None
    for j in zoned:
        if j.timezone != current_tz:
            lines.append(f"CRON_TZ={j.timezone}")
            current_tz = j.timezone
        lines.append(f"{j.schedule} {_cron_escape(job_command(config, j))} >/dev/null")
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


MARKER = "# X-Dumpdeck-Config="
CHECK_UNIT = "dumpdeck-check"


def _writable_dirs(config: Config) -> list[Path]:
    """What a run writes: backups, state (runs, locks, run logs), the main log, the report, the metrics."""
    dirs = [Path(config.backup.dir), Path(config.state_dir), Path(config.log.file).parent, report_path(config).parent]
    if config.metrics.textfile is not None:
        dirs.append(Path(config.metrics.textfile).parent)
    out: list[Path] = []
    for raw in dirs:
        d = Path(os.path.abspath(raw))
        if not any(d == o or d.is_relative_to(o) for o in out):
            out = [*(o for o in out if not o.is_relative_to(d)), d]
    return out


# Sandboxing for the units: what a backup needs is the network (TCP or a unix socket), its own
# directories, /tmp (a private one) and child processes (the dump tool, compressors, a sandbox
# mariadbd for restore-tests). `systemd-analyze security` rates the result ≤ 4.0 (tests check it).
HARDENING = """\
UMask=0077
NoNewPrivileges=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
ProtectSystem=strict
ProtectHome=read-only
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
AmbientCapabilities=
"""
# A non-root unit needs no capability at all.
UNPRIVILEGED = """\
SystemCallFilter=~@privileged
CapabilityBoundingSet=
"""
# Root's unit keeps only what starting a restore-test sandbox as the unprivileged `dumpdeck-sandbox`
# user takes (backend.sandbox): switching user, handing it its private directories.
ROOT_SANDBOX = """\
SystemCallFilter=~@clock @cpu-emulation @debug @module @mount @obsolete @raw-io @reboot @swap
CapabilityBoundingSet=CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER
"""


def unit_user(config: Config) -> str:
    """User= of system-wide units: systemd.user, else the owner of the config file."""
    if config.systemd.user:
        return config.systemd.user
    import pwd

    uid = _config_abs(config).stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _service(config: Config, description: str, command: str, system: bool, extra: str = "") -> str:
    dirs = _writable_dirs(config)
    as_root = system and unit_user(config) == "root"
    if as_root:
        dirs.append(SANDBOX_HOME)  # where root's restore-test sandboxes live
    rw = " ".join(f"-{d}" for d in dirs)
    user = f"User={unit_user(config)}\n" if system else ""
    privileges = ROOT_SANDBOX if as_root else UNPRIVILEGED
    return (
        f"{MARKER}{_config_abs(config)}\n"
        f"[Unit]\nDescription={description}\nWants=network-online.target\nAfter=network-online.target\n\n"
        f"[Service]\nType=oneshot\n{user}ExecStart={command}\n{extra}"
        "Nice=10\nIOSchedulingClass=best-effort\nIOSchedulingPriority=7\n"
        f"ReadWritePaths={rw}\n{HARDENING}{privileges}"
    )


def _timer(config: Config, unit: str, description: str, calendar: str) -> str:
    return (
        f"{MARKER}{_config_abs(config)}\n"
        f"[Unit]\nDescription={description}\n\n[Timer]\nOnCalendar={calendar}\nPersistent=true\n"
        f"Unit={unit}.service\n\n[Install]\nWantedBy=timers.target\n"
    )


def systemd_units(config: Config, job: JobConfig, *, system: bool | None = None) -> dict[str, str]:
    """{file name: content} of the service and timer of one job. Raises Untranslatable."""
    assert job.schedule
    system = os.geteuid() == 0 if system is None else system
    calendar = on_calendar(job.schedule, job.timezone)
    unit = f"dumpdeck-{job.name}"
    service = _service(
        config,
        f"dumpdeck backup job {job.name}",
        job_command(config, job),
        system,
        "# exit 3 = skipped because the previous run still holds the job lock\nSuccessExitStatus=3\n",
    )
    timer = _timer(
        config,
        unit,
        f"dumpdeck schedule for job {job.name} ({job.schedule}{' ' + job.timezone if job.timezone else ''})",
        calendar,
    )
    return {f"{unit}.service": service, f"{unit}.timer": timer}


def check_units(config: Config, *, system: bool | None = None) -> dict[str, str]:
    """The service and timer of `dumpdeck check` (exit 1/2 = WARNING/CRITICAL: the unit fails, visibly)."""
    assert config.checks.schedule
    system = os.geteuid() == 0 if system is None else system
    service = _service(config, "dumpdeck dead-man's check", check_command(config), system)
    timer = _timer(
        config, CHECK_UNIT, f"dumpdeck check schedule ({config.checks.schedule})", on_calendar(config.checks.schedule)
    )
    return {f"{CHECK_UNIT}.service": service, f"{CHECK_UNIT}.timer": timer}


def default_unit_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/etc/systemd/system")
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "systemd" / "user"


def is_system_dir(unit_dir: Path) -> bool:
    return not str(unit_dir).startswith(str(Path.home())) and os.geteuid() == 0


def unit_owner(path: Path) -> str | None:
    """The config a unit file was installed for (its marker line), or None for a unit dumpdeck did not write."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return None
    return first[len(MARKER) :].strip() if first.startswith(MARKER) else None


def owned_units(config: Config, unit_dir: Path) -> list[Path]:
    mine = str(_config_abs(config))
    return [
        p
        for p in sorted(unit_dir.glob("dumpdeck-*.service")) + sorted(unit_dir.glob("dumpdeck-*.timer"))
        if unit_owner(p) == mine
    ]


@dataclass
class SystemdResult:
    written: list[Path]
    unchanged: list[Path]
    problems: list[str]  # jobs whose schedule has no OnCalendar form, units owned by another config
    unit_dir: Path
    removed: list[Path] = field(default_factory=list)  # this config's units for jobs no longer scheduled
    commands: list[str] = field(default_factory=list)  # systemctl calls made (or to make by hand)
    system: bool = False


def _systemctl(system: bool, *args: str) -> tuple[str, bool]:
    """Run systemctl (--user for user units). (the command line, whether it ran and succeeded)."""
    argv = ["systemctl"] + ([] if system else ["--user"]) + list(args)
    text = " ".join(argv)
    exe = shutil.which("systemctl")
    running = Path("/run/systemd/system").is_dir() or os.environ.get("DUMPDECK_SYSTEMCTL") == "always"
    if exe is None or not running:
        return text, False
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return text, False
    return text, proc.returncode == 0


def install_systemd(config: Config, unit_dir: Path | None = None) -> SystemdResult:
    unit_dir = Path(unit_dir) if unit_dir else default_unit_dir()
    system = is_system_dir(unit_dir)
    result = SystemdResult([], [], [], unit_dir, system=system)
    wanted: dict[str, str] = {}
    for job in scheduled_jobs(config):
        try:
            wanted.update(systemd_units(config, job, system=system))
        except Untranslatable as exc:
            result.problems.append(
                f"job {job.name}: cannot translate schedule to a systemd timer: {exc}; "
                "use the crontab instead, or write OnCalendar= by hand"
            )
    if check_scheduled(config):
        try:
            wanted.update(check_units(config, system=system))
        except Untranslatable as exc:
            result.problems.append(f"checks.schedule: cannot translate to a systemd timer: {exc}")
    mine = str(_config_abs(config))
    if wanted:
        unit_dir.mkdir(parents=True, exist_ok=True)
        if system and os.geteuid() == 0 and unit_user(config) == "root":
            # the sandbox user cannot be created from inside the unit (/etc is read-only there)
            with contextlib.suppress(DumpdeckError):
                sandbox_account(create=True)
        for d in _writable_dirs(config):  # ProtectSystem=strict: what a run writes must exist beforehand
            with contextlib.suppress(OSError):
                d.mkdir(parents=True, exist_ok=True)
    for name, content in wanted.items():
        path = unit_dir / name
        owner = unit_owner(path) if path.exists() else mine
        if owner != mine:
            whose = f"config {owner}" if owner else "a foreign unit"
            result.problems.append(f"{path} was not written by dumpdeck for this config ({whose}); left as it is")
            continue
        if path.exists() and path.read_text() == content:
            result.unchanged.append(path)
            continue
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(content)
        os.replace(tmp, path)
        result.written.append(path)
    stale = [p for p in owned_units(config, unit_dir) if p.name not in wanted]
    if stale:
        result.removed, cmds = _disable_and_delete(stale, system)
        result.commands.extend(cmds)
    return result


def _disable_and_delete(paths: list[Path], system: bool) -> tuple[list[Path], list[str]]:
    commands: list[str] = []
    timers = [p.name for p in paths if p.suffix == ".timer"]
    services = [p.name for p in paths if p.suffix == ".service"]
    calls = []
    if timers:
        calls.append(_systemctl(system, "disable", "--now", *timers))
    if services:
        calls.append(_systemctl(system, "stop", *services))
    removed = []
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
    calls.append(_systemctl(system, "daemon-reload"))
    for cmd, ok in calls:
        commands.append(cmd if ok else f"{cmd}   (not run: no running systemd here; run it where the units live)")
    return removed, commands


def remove_systemd(config: Config, unit_dir: Path | None = None) -> SystemdResult:
    """Disable, stop and delete the units installed for THIS config; any other dumpdeck-* unit stays."""
    unit_dir = Path(unit_dir) if unit_dir else default_unit_dir()
    system = is_system_dir(unit_dir)
    result = SystemdResult([], [], [], unit_dir, system=system)
    mine = owned_units(config, unit_dir)
    if mine:
        result.removed, result.commands = _disable_and_delete(mine, system)
    return result


def linger_hint(user: str | None = None) -> str | None:
    """For user units: they run only while the user is logged in, unless lingering is enabled."""
    import getpass

    user = user or getpass.getuser()
    exe = shutil.which("loginctl")
    if exe is not None:
        try:
            proc = subprocess.run(
                [exe, "show-user", user, "--property=Linger", "--value"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
            if proc.returncode == 0 and proc.stdout.strip() == "yes":
                return None
        except (OSError, subprocess.TimeoutExpired):
            pass
    return (
        f"user timers run only while {user} is logged in; to run them at night without a session, "
        f"enable lingering once: sudo loginctl enable-linger {user}"
    )
