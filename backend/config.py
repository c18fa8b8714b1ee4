"""YAML configuration → typed, validated settings.

Every error names the file, the key path and, where the YAML parser knows it,
the line: ``/etc/dumpdeck.yaml:12: backup.timeout: '2x' is not a duration``.
All problems are collected and reported together, so one edit fixes them all.
"""

from __future__ import annotations

import configparser
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .units import parse_duration, parse_size

CODECS = ("zstd", "gzip", "xz", "none")
CODEC_EXT = {"zstd": ".zst", "gzip": ".gz", "xz": ".xz", "none": ""}
POLICIES = ("always", "failures", "smart")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class TLSConfig:
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    verify_server_cert: bool = True
    required: bool = False

    @property
    def enabled(self) -> bool:
        return self.required or any((self.ca, self.cert, self.key))


@dataclass(frozen=True)
class ServerConfig:
    name: str
    host: str | None = "127.0.0.1"
    port: int = 3306
    socket: Path | None = None
    user: str = "root"
    password_file: Path | None = None
    password_env: str | None = None
    option_file: Path | None = None
    tls: TLSConfig = field(default_factory=TLSConfig)
    connect_timeout: float = 10.0
    include_system: bool = False
    exclude_databases: tuple[str, ...] = ()

    def password(self) -> str | None:
        """Read the secret at the moment it is needed; never stored on the object."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"server {self.name}: cannot read password_file {self.password_file}: {exc.strerror}"
                ) from None
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(
                    f"server {self.name}: environment variable {self.password_env} (password_env) is not set"
                )
            return value
        if self.option_file is not None:
            return read_option_file(self.option_file, self.name).get("password")
        return None

    def effective_user(self) -> str:
        if self.option_file is not None and self.user_from_option_file:
            return read_option_file(self.option_file, self.name).get("user", self.user)
        return self.user

    user_from_option_file: bool = False

    @property
    def address(self) -> str:
        if self.socket is not None:
            return f"{self.socket}"
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class BackupConfig:
    dir: Path
    compression: str = "zstd"
    level: int = 3
    threads: int = 2
    timeout: float = 2 * 3600.0
    stall_timeout: float = 300.0
    extra_options: tuple[str, ...] = ()
    dump_tool: str | None = None  # explicit path; otherwise chosen by server flavour


@dataclass(frozen=True)
class LogConfig:
    file: Path
    max_size: int = 100 * 1024**2
    keep: int = 5
    level: str = "INFO"


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = None
    keep_days: float | None = None
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    @property
    def empty(self) -> bool:
        return (
            self.keep_last is None
            and self.keep_days is None
            and not (self.daily or self.weekly or self.monthly or self.yearly)
        )


@dataclass(frozen=True)
class RetentionConfig:
    default: RetentionPolicy = field(default_factory=RetentionPolicy)
    databases: dict[str, RetentionPolicy] = field(default_factory=dict)
    partial_max_age: float = 86400.0

    def for_database(self, database: str, job_policy: RetentionPolicy | None = None) -> RetentionPolicy:
        if database in self.databases:
            return self.databases[database]
        return job_policy or self.default


@dataclass(frozen=True)
class JobConfig:
    name: str
    server: str
    databases: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()
    schedule: str | None = None
    timezone: str | None = None
    parallel: int = 1
    max_runtime: float = 4 * 3600.0
    stall_timeout: float | None = None
    retries: int = 0
    retry_delay: float = 60.0
    verify: int = 2
    notify: str | None = None
    retention: RetentionPolicy | None = None
    max_age: float | None = None


@dataclass(frozen=True)
class DiskConfig:
    warn_percent: float = 80.0
    critical_percent: float = 90.0


@dataclass(frozen=True)
class EmailConfig:
    smtp_host: str
    port: int = 587
    security: str = "starttls"  # starttls | tls | none
    user: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    sender: str = "dumpdeck@localhost"
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    timeout: float = 20.0

    def password(self) -> str | None:
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"notify.email: cannot read password_file {self.password_file}: {exc.strerror}"
                ) from None
        if self.password_env is not None:
            return os.environ.get(self.password_env)
        return None


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    timeout: float = 10.0
    format: str = "slack"  # slack | json


@dataclass(frozen=True)
class NotifyConfig:
    policy: str = "smart"
    digest_every: float = 24 * 3600.0
    email: EmailConfig | None = None
    webhook: WebhookConfig | None = None


@dataclass(frozen=True)
class RestoreTestConfig:
    target: str = "sandbox"  # sandbox | same | <server name>
    parallel: int = 2


@dataclass(frozen=True)
class ChecksConfig:
    max_age: float = 26 * 3600.0
    min_size_ratio: float = 0.5


@dataclass(frozen=True)
class TrendsConfig:
    window: int = 10
    size_tolerance: float = 0.5
    slow_factor: float = 2.0


@dataclass(frozen=True)
class ReportConfig:
    file: Path | None = None
    refresh: float = 300.0


@dataclass(frozen=True)
class ConsoleConfig:
    theme: str = "dumpdeck-dark"
    refresh: float = 1.0
    keys: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    path: Path | None
    servers: dict[str, ServerConfig]
    backup: BackupConfig
    state_dir: Path
    log: LogConfig
    jobs: dict[str, JobConfig] = field(default_factory=dict)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    disk: DiskConfig = field(default_factory=DiskConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    restore_test: RestoreTestConfig = field(default_factory=RestoreTestConfig)
    checks: ChecksConfig = field(default_factory=ChecksConfig)
    trends: TrendsConfig = field(default_factory=TrendsConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)

    def server(self, name: str | None) -> ServerConfig:
        if name is None:
            if len(self.servers) == 1:
                return next(iter(self.servers.values()))
            raise ConfigError(f"several servers are configured ({', '.join(self.servers)}); name one with --server")
        try:
            return self.servers[name]
        except KeyError:
            raise ConfigError(
                f"no server named {name!r} in {self.path}; configured: {', '.join(self.servers)}"
            ) from None

    def job(self, name: str) -> JobConfig:
        try:
            return self.jobs[name]
        except KeyError:
            known = ", ".join(self.jobs) or "none"
            raise ConfigError(f"no job named {name!r} in {self.path}; configured: {known}") from None

    @property
    def lock_dir(self) -> Path:
        return self.state_dir / "locks"

    @property
    def runs_log_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"


# --------------------------------------------------------------------------- option files


def read_option_file(path: Path, server_name: str = "") -> dict[str, str]:
    """The [client] (and [mysqldump]) settings of a MySQL option file such as ~/.my.cnf."""
    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
    try:
        text = Path(path).expanduser().read_text()
    except OSError as exc:
        raise ConfigError(f"server {server_name}: cannot read option_file {path}: {exc.strerror}") from None
    # MySQL option files may contain !include lines; configparser cannot; drop them.
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("!"))
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise ConfigError(f"server {server_name}: option_file {path} is not a valid option file: {exc}") from None
    values: dict[str, str] = {}
    for section in ("client", "mysqldump", "mariadb-dump", "client-server"):
        if parser.has_section(section):
            for key, value in parser.items(section):
                if value is not None:
                    values[key.replace("_", "-")] = value.strip().strip("'\"")
    return values


# --------------------------------------------------------------------------- default paths


def default_config_path() -> Path:
    env = os.environ.get("DUMPDECK_CONFIG")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "dumpdeck" / "config.yaml"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "dumpdeck"


# --------------------------------------------------------------------------- reader


class _Reader:
    """Walks a loaded mapping with its YAML node tree, collecting errors with lines."""

    def __init__(self, path: Path | None, lines: dict[tuple[str, ...], int]):
        self.path = path
        self.lines = lines
        self.errors: list[str] = []

    def where(self, keypath: tuple[str, ...]) -> str:
        line = None
        probe = keypath
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        loc = str(self.path) if self.path else "<config>"
        return f"{loc}:{line}" if line else loc

    def error(self, keypath: tuple[str, ...], message: str) -> None:
        dotted = ".".join(keypath) if keypath else "(top level)"
        self.errors.append(f"{self.where(keypath)}: {dotted}: {message}")

    def mapping(self, value: Any, keypath: tuple[str, ...], allowed: set[str] | None) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(keypath, f"expected a mapping, got {_typename(value)}")
            return {}
        for key in value:
            if not isinstance(key, str):
                self.error(keypath, f"key {key!r} must be a string")
            elif allowed is not None and key not in allowed:
                hint = _closest(key, allowed)
                self.error(keypath + (key,), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        return value

    def get(
        self,
        data: dict,
        key: str,
        keypath: tuple[str, ...],
        conv: Callable[[Any], Any],
        default: Any = None,
        required: bool = False,
    ) -> Any:
        if key not in data or data[key] is None:
            if required:
                self.error(keypath + (key,), "is required")
            return default
        try:
            return conv(data[key])
        except (ValueError, TypeError) as exc:
            self.error(keypath + (key,), str(exc))
            return default


def _typename(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }.get(type(value), type(value).__name__)


def _closest(key: str, allowed: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
    return found[0] if found else None


def _str(v: Any) -> str:
    if isinstance(v, (dict, list)) or isinstance(v, bool):
        raise ValueError(f"expected a string, got {_typename(v)}")
    return str(v)


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_typename(v)} {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{v} is out of range ({lo}..{hi})" if hi is not None else f"{v} must be at least {lo}")
        return v

    return conv


def _float(lo: float | None = None, hi: float | None = None) -> Callable[[Any], float]:
    def conv(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {_typename(v)} {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{v} is out of range ({lo}..{hi})")
        return float(v)

    return conv


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_typename(v)} {v!r}")
    return v


def _path(v: Any) -> Path:
    return Path(os.path.expanduser(_str(v)))


def _choice(*options: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = _str(v)
        if s not in options:
            raise ValueError(f"{s!r} is not one of {', '.join(options)}")
        return s

    return conv


def _str_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return (v,)
    if not isinstance(v, list):
        raise ValueError(f"expected a list of strings, got {_typename(v)}")
    out = []
    for item in v:
        if isinstance(item, (dict, list)):
            raise ValueError(f"expected a list of strings, found {_typename(item)}")
        out.append(str(item))
    return tuple(out)


def _duration(v: Any) -> float:
    return parse_duration(v)


def _positive_duration(v: Any) -> float:
    d = parse_duration(v)
    if d <= 0:
        raise ValueError("must be greater than zero")
    return d


def _size(v: Any) -> int:
    return parse_size(v)


def _name(kind: str) -> Callable[[Any], str]:
    def conv(v: Any) -> str:
        s = _str(v)
        if not NAME_RE.match(s):
            raise ValueError(f"{kind} name {s!r} may use letters, digits, '_', '.' and '-' only")
        return s

    return conv


# --------------------------------------------------------------------------- sections


def _read_server(r: _Reader, name: str, raw: Any) -> ServerConfig:
    kp = ("servers", name)
    if not NAME_RE.match(name):
        r.error(kp, "server names may use letters, digits, '_', '.' and '-' only (they become directory names)")
    d = r.mapping(
        raw,
        kp,
        {
            "host",
            "port",
            "socket",
            "user",
            "password_file",
            "password_env",
            "option_file",
            "tls",
            "connect_timeout",
            "include_system",
            "exclude_databases",
        },
    )
    sources = [k for k in ("password_file", "password_env", "option_file") if d.get(k) is not None]
    if len(sources) > 1:
        r.error(kp, f"choose one password source, not {' and '.join(sources)}")
    if "password" in d:
        pass  # reported as unknown key above; plain passwords are not accepted
    tls_raw = r.mapping(d.get("tls"), kp + ("tls",), {"ca", "cert", "key", "verify_server_cert", "required"})
    tls = TLSConfig(
        ca=r.get(tls_raw, "ca", kp + ("tls",), _path),
        cert=r.get(tls_raw, "cert", kp + ("tls",), _path),
        key=r.get(tls_raw, "key", kp + ("tls",), _path),
        verify_server_cert=r.get(tls_raw, "verify_server_cert", kp + ("tls",), _bool, True),
        required=r.get(tls_raw, "required", kp + ("tls",), _bool, False),
    )
    option_file = r.get(d, "option_file", kp, _path)
    user = r.get(d, "user", kp, _str)
    user_from_opt = False
    if user is None and option_file is not None:
        user_from_opt = True
    socket = r.get(d, "socket", kp, _path)
    host = r.get(d, "host", kp, _str, None if socket else "127.0.0.1")
    return ServerConfig(
        name=name,
        host=host,
        port=r.get(d, "port", kp, _int(1, 65535), 3306),
        socket=socket,
        user=user or ("root" if not user_from_opt else ""),
        password_file=r.get(d, "password_file", kp, _path),
        password_env=r.get(d, "password_env", kp, _str),
        option_file=option_file,
        tls=tls,
        connect_timeout=r.get(d, "connect_timeout", kp, _positive_duration, 10.0),
        include_system=r.get(d, "include_system", kp, _bool, False),
        exclude_databases=r.get(d, "exclude_databases", kp, _str_list, ()),
        user_from_option_file=user_from_opt,
    )


_RETENTION_KEYS = {"keep_last", "keep_days", "daily", "weekly", "monthly", "yearly"}


def _read_policy(r: _Reader, raw: Any, kp: tuple[str, ...], extra: set[str] = frozenset()) -> RetentionPolicy:
    d = r.mapping(raw, kp, _RETENTION_KEYS | extra)
    keep_days = r.get(d, "keep_days", kp, _float(0), None)
    return RetentionPolicy(
        keep_last=r.get(d, "keep_last", kp, _int(0), None),
        keep_days=keep_days,
        daily=r.get(d, "daily", kp, _int(0), 0),
        weekly=r.get(d, "weekly", kp, _int(0), 0),
        monthly=r.get(d, "monthly", kp, _int(0), 0),
        yearly=r.get(d, "yearly", kp, _int(0), 0),
    )


def _read_job(r: _Reader, name: str, raw: Any, servers: dict[str, ServerConfig]) -> JobConfig:
    kp = ("jobs", name)
    if not NAME_RE.match(name):
        r.error(kp, "job names may use letters, digits, '_', '.' and '-' only")
    d = r.mapping(
        raw,
        kp,
        {
            "server",
            "databases",
            "exclude",
            "schedule",
            "timezone",
            "parallel",
            "max_runtime",
            "stall_timeout",
            "retries",
            "retry_delay",
            "verify",
            "notify",
            "retention",
            "max_age",
        },
    )
    server = r.get(d, "server", kp, _str, None)
    if server is None:
        if len(servers) == 1:
            server = next(iter(servers))
        else:
            r.error(kp + ("server",), "is required when several servers are configured")
            server = ""
    elif servers and server not in servers:
        r.error(kp + ("server",), f"no server named {server!r} (configured: {', '.join(servers)})")
    schedule = r.get(d, "schedule", kp, _str, None)
    if schedule is not None:
        problem = cron_problem(schedule)
        if problem:
            r.error(kp + ("schedule",), problem)
    timezone = r.get(d, "timezone", kp, _str, None)
    if timezone is not None:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(timezone)
        except Exception:
            r.error(kp + ("timezone",), f"unknown time zone {timezone!r} (use e.g. UTC or Europe/Berlin)")
    retention = None
    if d.get("retention") is not None:
        retention = _read_policy(r, d["retention"], kp + ("retention",))
    return JobConfig(
        name=name,
        server=server,
        databases=r.get(d, "databases", kp, _str_list, ("*",)),
        exclude=r.get(d, "exclude", kp, _str_list, ()),
        schedule=schedule,
        timezone=timezone,
        parallel=r.get(d, "parallel", kp, _int(1, 32), 1),
        max_runtime=r.get(d, "max_runtime", kp, _positive_duration, 4 * 3600.0),
        stall_timeout=r.get(d, "stall_timeout", kp, _positive_duration, None),
        retries=r.get(d, "retries", kp, _int(0, 20), 0),
        retry_delay=r.get(d, "retry_delay", kp, _duration, 60.0),
        verify=r.get(d, "verify", kp, _int(0, 4), 2),
        notify=r.get(d, "notify", kp, _choice(*POLICIES), None),
        retention=retention,
        max_age=r.get(d, "max_age", kp, _positive_duration, None),
    )


def cron_problem(expr: str) -> str | None:
    """None when `expr` is a valid 5-field cron expression, else a readable reason."""
    fields = expr.split()
    if expr.strip().startswith("@"):
        if expr.strip() in ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"):
            return None
        return f"{expr!r} is not a cron expression (known shortcuts: @hourly @daily @weekly @monthly @yearly)"
    if len(fields) != 5:
        return (
            f"{expr!r} is not a cron expression: expected 5 fields "
            f"(minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    from croniter import croniter

    try:
        croniter(expr)
    except Exception as exc:  # croniter raises several types
        return f"{expr!r} is not a valid cron expression: {exc}"
    return None


def _line_map(text: str) -> dict[tuple[str, ...], int]:
    """Key path → 1-based line of each key in the YAML document."""
    lines: dict[tuple[str, ...], int] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: yaml.Node, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = str(key_node.value)
                lines[prefix + (key,)] = key_node.start_mark.line + 1
                walk(value_node, prefix + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[prefix + (str(i),)] = item.start_mark.line + 1
                walk(item, prefix + (str(i),))

    if root is not None:
        walk(root, ())
    return lines


# --------------------------------------------------------------------------- entry points


TOP_KEYS = {
    "servers",
    "backup",
    "state_dir",
    "log",
    "jobs",
    "retention",
    "disk",
    "notify",
    "restore_test",
    "checks",
    "trends",
    "report",
    "console",
}


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a configuration file. Raises ConfigError naming every problem."""
    path = Path(path) if path is not None else default_config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: configuration file not found. Copy config.example.yaml there, "
            f"or pass --config PATH (or set DUMPDECK_CONFIG). To try dumpdeck on sample data: dumpdeck demo"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path | None = None) -> Config:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}: malformed YAML: {problem}") from None
    r = _Reader(path, _line_map(text))
    if data is None:
        data = {}
    top = r.mapping(data, (), TOP_KEYS)
    base = path.parent if path is not None else Path.cwd()

    def rel(p: Path | None) -> Path | None:
        if p is None:
            return None
        return p if p.is_absolute() else (base / p)

    # servers
    servers: dict[str, ServerConfig] = {}
    raw_servers = r.mapping(top.get("servers"), ("servers",), None)
    if not raw_servers:
        r.error(("servers",), "at least one server is required")
    for name, raw in raw_servers.items():
        if isinstance(name, str):
            s = _read_server(r, name, raw)
            s = _replace(s, socket=rel(s.socket), password_file=rel(s.password_file), option_file=rel(s.option_file))
            servers[name] = s

    # backup
    kp = ("backup",)
    b = r.mapping(
        top.get("backup"),
        kp,
        {"dir", "compression", "level", "threads", "timeout", "stall_timeout", "extra_options", "dump_tool"},
    )
    codec = r.get(b, "compression", kp, _choice(*CODECS), "zstd")
    level_max = {"zstd": 19, "gzip": 9, "xz": 9, "none": 0}.get(codec, 19)
    level_default = {"zstd": 3, "gzip": 6, "xz": 3, "none": 0}.get(codec, 3)
    backup = BackupConfig(
        dir=rel(r.get(b, "dir", kp, _path, None, required=True)) or Path("."),
        compression=codec,
        level=r.get(b, "level", kp, _int(0 if codec == "none" else 1, level_max), level_default),
        threads=r.get(b, "threads", kp, _int(0, 64), 2),
        timeout=r.get(b, "timeout", kp, _positive_duration, 7200.0),
        stall_timeout=r.get(b, "stall_timeout", kp, _positive_duration, 300.0),
        extra_options=r.get(b, "extra_options", kp, _str_list, ()),
        dump_tool=r.get(b, "dump_tool", kp, _str, None),
    )
    for opt in backup.extra_options:
        if opt.startswith(
            ("--password", "-p", "--databases", "--all-databases", "-A", "-B", "--result-file", "-r", "--defaults")
        ):
            r.error(kp + ("extra_options",), f"{opt!r} is managed by dumpdeck and may not be set here")

    state_dir = rel(r.get(top, "state_dir", (), _path, None)) or default_state_dir()

    kp = ("log",)
    lg = r.mapping(top.get("log"), kp, {"file", "max_size", "keep", "level"})
    log = LogConfig(
        file=rel(r.get(lg, "file", kp, _path, None)) or state_dir / "dumpdeck.log",
        max_size=r.get(lg, "max_size", kp, _size, 100 * 1024**2),
        keep=r.get(lg, "keep", kp, _int(0, 100), 5),
        level=r.get(lg, "level", kp, _choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
    )

    jobs: dict[str, JobConfig] = {}
    for name, raw in r.mapping(top.get("jobs"), ("jobs",), None).items():
        if isinstance(name, str):
            jobs[name] = _read_job(r, name, raw, servers)

    kp = ("retention",)
    rt = r.mapping(top.get("retention"), kp, _RETENTION_KEYS | {"databases", "partial_max_age"})
    default_policy = _read_policy(r, {k: v for k, v in rt.items() if k in _RETENTION_KEYS}, kp)
    per_db = {}
    for db, raw in r.mapping(rt.get("databases"), kp + ("databases",), None).items():
        per_db[str(db)] = _read_policy(r, raw, kp + ("databases", str(db)))
    retention = RetentionConfig(
        default=default_policy,
        databases=per_db,
        partial_max_age=r.get(rt, "partial_max_age", kp, _positive_duration, 86400.0),
    )

    kp = ("disk",)
    dk = r.mapping(top.get("disk"), kp, {"warn_percent", "critical_percent"})
    disk = DiskConfig(
        warn_percent=r.get(dk, "warn_percent", kp, _float(1, 100), 80.0),
        critical_percent=r.get(dk, "critical_percent", kp, _float(1, 100), 90.0),
    )
    if disk.warn_percent > disk.critical_percent:
        r.error(kp + ("warn_percent",), "must not be above critical_percent")

    notify = _read_notify(r, top.get("notify"), rel)

    kp = ("restore_test",)
    rtc = r.mapping(top.get("restore_test"), kp, {"target", "parallel"})
    target = r.get(rtc, "target", kp, _str, "sandbox")
    if target not in ("sandbox", "same") and servers and target not in servers:
        r.error(kp + ("target",), f"{target!r} is neither sandbox, same, nor a configured server")
    restore_test = RestoreTestConfig(target=target, parallel=r.get(rtc, "parallel", kp, _int(1, 16), 2))

    kp = ("checks",)
    ck = r.mapping(top.get("checks"), kp, {"max_age", "min_size_ratio"})
    checks = ChecksConfig(
        max_age=r.get(ck, "max_age", kp, _positive_duration, 26 * 3600.0),
        min_size_ratio=r.get(ck, "min_size_ratio", kp, _float(0, 1), 0.5),
    )
    kp = ("trends",)
    tr = r.mapping(top.get("trends"), kp, {"window", "size_tolerance", "slow_factor"})
    trends = TrendsConfig(
        window=r.get(tr, "window", kp, _int(2, 1000), 10),
        size_tolerance=r.get(tr, "size_tolerance", kp, _float(0.01, 10), 0.5),
        slow_factor=r.get(tr, "slow_factor", kp, _float(1, 100), 2.0),
    )
    kp = ("report",)
    rp = r.mapping(top.get("report"), kp, {"file", "refresh"})
    report = ReportConfig(
        file=rel(r.get(rp, "file", kp, _path, None)),
        refresh=r.get(rp, "refresh", kp, _positive_duration, 300.0),
    )
    kp = ("console",)
    cs = r.mapping(top.get("console"), kp, {"theme", "refresh", "keys"})
    keys_raw = r.mapping(cs.get("keys"), kp + ("keys",), None)
    console = ConsoleConfig(
        theme=r.get(cs, "theme", kp, _str, "dumpdeck-dark"),
        refresh=r.get(cs, "refresh", kp, _positive_duration, 1.0),
        keys={str(k): _str(v) for k, v in keys_raw.items() if not isinstance(v, (dict, list))},
    )

    if r.errors:
        raise ConfigError("\n".join(r.errors))
    return Config(
        path=path,
        servers=servers,
        backup=backup,
        state_dir=state_dir,
        log=log,
        jobs=jobs,
        retention=retention,
        disk=disk,
        notify=notify,
        restore_test=restore_test,
        checks=checks,
        trends=trends,
        report=report,
        console=console,
    )


def _read_notify(r: _Reader, raw: Any, rel: Callable[[Path | None], Path | None]) -> NotifyConfig:
    kp = ("notify",)
    n = r.mapping(raw, kp, {"policy", "digest_every", "email", "webhook"})
    email = None
    if n.get("email") is not None:
        ekp = kp + ("email",)
        e = r.mapping(
            n["email"],
            ekp,
            {"smtp_host", "port", "security", "user", "password_file", "password_env", "from", "to", "cc", "timeout"},
        )
        to = r.get(e, "to", ekp, _str_list, ())
        if not to:
            r.error(ekp + ("to",), "at least one recipient is required")
        security = r.get(e, "security", ekp, _choice("starttls", "tls", "none"), "starttls")
        email = EmailConfig(
            smtp_host=r.get(e, "smtp_host", ekp, _str, "", required=True),
            port=r.get(e, "port", ekp, _int(1, 65535), 465 if security == "tls" else 587),
            security=security,
            user=r.get(e, "user", ekp, _str, None),
            password_file=rel(r.get(e, "password_file", ekp, _path, None)),
            password_env=r.get(e, "password_env", ekp, _str, None),
            sender=r.get(e, "from", ekp, _str, "dumpdeck@localhost"),
            to=to,
            cc=r.get(e, "cc", ekp, _str_list, ()),
            timeout=r.get(e, "timeout", ekp, _positive_duration, 20.0),
        )
    webhook = None
    if n.get("webhook") is not None:
        wkp = kp + ("webhook",)
        w = r.mapping(n["webhook"], wkp, {"url", "timeout", "format"})
        url = r.get(w, "url", wkp, _str, "", required=True)
        if url and not url.startswith(("http://", "https://")):
            r.error(wkp + ("url",), f"{url!r} must start with http:// or https://")
        webhook = WebhookConfig(
            url=url,
            timeout=r.get(w, "timeout", wkp, _positive_duration, 10.0),
            format=r.get(w, "format", wkp, _choice("slack", "json"), "slack"),
        )
    return NotifyConfig(
        policy=r.get(n, "policy", kp, _choice(*POLICIES), "smart"),
        digest_every=r.get(n, "digest_every", kp, _positive_duration, 86400.0),
        email=email,
        webhook=webhook,
    )


def _replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


# --------------------------------------------------------------------------- presentation


def secret_files(config: Config) -> list[tuple[str, Path]]:
    """Every file the config reads a secret from, with what it is for."""
    out = []
    for s in config.servers.values():
        for label, p in (("password_file", s.password_file), ("option_file", s.option_file)):
            if p is not None:
                out.append((f"servers.{s.name}.{label}", p))
    if config.notify.email and config.notify.email.password_file:
        out.append(("notify.email.password_file", config.notify.email.password_file))
    return out


def permission_warnings(config: Config) -> list[str]:
    """Warnings for secret files (and the config itself) readable by group or others."""
    warnings = []
    for label, path in secret_files(config):
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            warnings.append(f"{label}: {path} does not exist")
            continue
        except OSError as exc:
            warnings.append(f"{label}: {path}: {exc.strerror}")
            continue
        if mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.append(
                f"{label}: {path} holds a password and is readable by "
                f"{'others' if mode & stat.S_IROTH else 'its group'} (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
    return warnings


def redacted(config: Config) -> dict:
    """The effective settings as plain data, secrets replaced by where they come from."""
    import dataclasses

    def conv(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: conv(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in ("user_from_option_file",)
            }
        if isinstance(value, dict):
            return {str(k): conv(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [conv(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    out = conv(config)
    for name, s in config.servers.items():
        entry = out["servers"][name]
        if s.password_file:
            entry["password"] = f"<redacted: from file {s.password_file}>"
        elif s.password_env:
            entry["password"] = f"<redacted: from ${s.password_env}>"
        elif s.option_file:
            entry["password"] = f"<redacted: from option file {s.option_file}>"
        else:
            entry["password"] = "<none>"
    return out
