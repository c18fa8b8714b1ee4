"""YAML configuration → typed, validated settings, from one declaration per key.

Each setting is declared once, on the frozen dataclass that carries it: its
type (the converter), its default (the dataclass default), its allowed values
and its comment (`setting(...)` / `section(...)` / `named(...)` below). One
generic reader walks those declarations; a class's `_check` classmethod holds
the rules that span several keys. `schema()` lists every key with its type,
default and comment (`dumpdeck config keys` prints it; a test checks that
config.example.yaml documents every one).

Every error names the file, the key path and, where the YAML parser knows it,
the line: ``/etc/dumpdeck.yaml:12: backup.timeout: '2x' is not a duration``.
All problems are collected and reported together, so one edit fixes them all.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from . import optionfile
from .codecs import Codec
from .cron import cron_problem
from .encryption import Recipients, parse_recipients, recipients_from
from .errors import ConfigError, UsageError
from .secretenv import env_secret
from .units import parse_duration, parse_size

# compression level per codec: (lowest, highest, default)
CODEC_LEVELS: dict[str, tuple[int, int, int]] = {
    Codec.ZSTD: (1, 19, 3),
    Codec.GZIP: (1, 9, 6),
    Codec.XZ: (1, 9, 3),
    Codec.NONE: (0, 0, 0),
}
POLICIES = ("always", "failures", "smart")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
EMAIL_SECURITY = ("starttls", "tls", "none")
WEBHOOK_FORMATS = ("slack", "json")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# --------------------------------------------------------------------------- converters
# Each converter turns a YAML value into a typed one or raises ValueError with a readable reason;
# its `label` is the type shown by `dumpdeck config keys`.


_Conv = TypeVar("_Conv", bound=Callable[[Any], Any])
_T = TypeVar("_T")


def _labelled(label: str) -> Callable[[_Conv], _Conv]:
    def deco(fn: _Conv) -> _Conv:
        fn.label = label  # type: ignore[attr-defined]
        return fn

    return deco


def _typename(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true/false",
    }.get(type(value), type(value).__name__)


@_labelled("string")
def _str(v: Any) -> str:
    if isinstance(v, (dict, list, bool)):
        raise ValueError(f"expected a string, got {_typename(v)}")
    return str(v)


def _int(lo: int | None = None, hi: int | None = None) -> Callable[[Any], int]:
    @_labelled(
        f"integer {lo}..{hi}"
        if lo is not None and hi is not None
        else f"integer >= {lo}"
        if lo is not None
        else "integer"
    )
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise ValueError(f"expected an integer, got {_typename(v)} {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{v} is out of range ({lo}..{hi})" if hi is not None else f"{v} must be at least {lo}")
        return v

    return conv


def _float(lo: float | None = None, hi: float | None = None) -> Callable[[Any], float]:
    @_labelled(
        f"number {lo:g}..{hi:g}"
        if lo is not None and hi is not None
        else f"number >= {lo:g}"
        if lo is not None
        else "number"
    )
    def conv(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"expected a number, got {_typename(v)} {v!r}")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(f"{v} is out of range ({lo}..{hi})")
        return float(v)

    return conv


@_labelled("true | false")
def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {_typename(v)} {v!r}")
    return v


@_labelled("path")
def _path(v: Any) -> Path:
    return Path(os.path.expanduser(_str(v)))


def _choice(*options: str) -> Callable[[Any], str]:
    @_labelled(" | ".join(options))
    def conv(v: Any) -> str:
        s = _str(v)
        if s not in options:
            raise ValueError(f"{s!r} is not one of {', '.join(options)}")
        return s

    conv.choices = options  # type: ignore[attr-defined]
    return conv


@_labelled("list of strings")
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


@_labelled("mapping of strings")
def _str_map(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping, got {_typename(v)}")
    out = {}
    for k, item in v.items():
        if isinstance(item, (dict, list)):
            raise ValueError(f"{k}: expected a string, got {_typename(item)}")
        out[str(k)] = str(item)
    return out


@_labelled("duration")
def _duration(v: Any) -> float:
    return parse_duration(v)


@_labelled("duration > 0")
def _positive_duration(v: Any) -> float:
    d = parse_duration(v)
    if d <= 0:
        raise ValueError("must be greater than zero")
    return d


@_labelled("size")
def _size(v: Any) -> int:
    return parse_size(v)


@_labelled("http(s) URL")
def _url(v: Any) -> str:
    s = _str(v)
    if not s.startswith(("http://", "https://")):
        raise ValueError(f"{s!r} must start with http:// or https://")
    return s


@_labelled("time zone")
def _timezone(v: Any) -> str:
    s = _str(v)
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(s)
    except Exception:
        raise ValueError(f"unknown time zone {s!r} (use e.g. UTC or Europe/Berlin)") from None
    return s


@_labelled("cron expression")
def _cron(v: Any) -> str:
    s = _str(v)
    problem = cron_problem(s)
    if problem:
        raise ValueError(problem)
    return s


@_labelled("cron expression | off")
def _cron_or_off(v: Any) -> str | None:
    if v is False or (isinstance(v, str) and v.strip().lower() == "off"):
        return None
    return _cron(v)


@_labelled("list of URLs")
def _secret_urls(v: Any) -> tuple[str, ...]:
    urls = _str_list(v)
    for u in urls:
        if "://" not in u:
            raise ValueError(
                "an Apprise URL looks like scheme://...; got one without '://' (not shown: it is a secret)"
            )
    return urls


# --------------------------------------------------------------------------- the declarations


@dataclass(frozen=True)
class Key:
    """The declaration of one configuration key (kept in the dataclass field's metadata)."""

    doc: str
    conv: Callable[[Any], Any] | None = None  # scalar keys
    yaml: str | None = None  # the name in YAML when it differs from the attribute
    required: bool = False
    relative: bool = False  # a path relative to the config file's directory
    default_doc: str | None = None  # the default, in words, when it is computed
    section: type | None = None  # a nested mapping read into this dataclass
    optional: bool = False  # a section that is None when absent
    inline: bool = False  # a section whose keys sit in the parent mapping
    named: str | None = None  # a mapping of names to sections: what a name is ("server", "job", "database")


def setting(
    default: Any,
    conv: Callable[[Any], Any],
    doc: str,
    *,
    yaml: str | None = None,
    required: bool = False,
    relative: bool = False,
    default_doc: str | None = None,
) -> Any:
    meta = {"key": Key(doc, conv, yaml, required, relative, default_doc)}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def required_setting(conv: Callable[[Any], Any], doc: str, *, relative: bool = False) -> Any:
    """A key without a default (the dataclass field has none either)."""
    return field(metadata={"key": Key(doc, conv, required=True, relative=relative)})


def section(cls: type, doc: str, *, optional: bool = False, inline: bool = False, default: bool = True) -> Any:
    meta = {"key": Key(doc, section=cls, optional=optional, inline=inline)}
    if optional:
        return field(default=None, metadata=meta)
    if not default:
        return field(metadata=meta)
    return field(default_factory=cls, metadata=meta)


def named(cls: type, what: str, doc: str, *, default: bool = True) -> Any:
    meta = {"key": Key(doc, section=cls, named=what)}
    return field(default_factory=dict, metadata=meta) if default else field(metadata=meta)


def _specs(cls: type) -> list[tuple[dataclasses.Field[Any], Key]]:
    return [(f, f.metadata["key"]) for f in dataclasses.fields(cls) if "key" in f.metadata]


def _yaml_keys(cls: type) -> set[str]:
    out: set[str] = set()
    for f, k in _specs(cls):
        if k.inline:
            out |= _yaml_keys(k.section)  # type: ignore[arg-type]
        else:
            out.add(k.yaml or f.name)
    return out


# --------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class TLSConfig:
    ca: Path | None = setting(None, _path, "CA certificate that signed the server's certificate.", relative=True)
    cert: Path | None = setting(None, _path, "Client certificate, for X509 accounts.", relative=True)
    key: Path | None = setting(None, _path, "Client private key, for X509 accounts.", relative=True)
    verify_server_cert: bool = setting(True, _bool, "Check the server certificate and its host name.")
    required: bool = setting(False, _bool, "Refuse to connect without TLS.")
    given: frozenset[str] = frozenset()  # the keys the configuration sets (they win over an option file)

    @property
    def enabled(self) -> bool:
        return self.required or any((self.ca, self.cert, self.key))


PASSWORD_SOURCES = ("password_file", "password_env", "option_file", "login_path")


@dataclass(frozen=True)
class ServerConfig:
    name: str
    host: str | None = setting(
        "127.0.0.1",
        _str,
        "Host name or address (ignored when socket is set).",
        default_doc="127.0.0.1, none with socket",
    )
    port: int = setting(3306, _int(1, 65535), "TCP port.")
    socket: Path | None = setting(None, _path, "Unix socket of a local server (instead of host/port).", relative=True)
    user: str = setting("root", _str, "The backup account.", default_doc="root, or the option file's user")
    password_file: Path | None = setting(None, _path, "First line of this 0600 file is the password.", relative=True)
    password_env: str | None = setting(None, _str, "Environment variable holding the password.")
    option_file: Path | None = setting(
        None,
        _path,
        "A MySQL option file (such as ~/.my.cnf) read as the client reads it: user, password, host, port, socket "
        "and TLS from [client], [client-server], [client-mariadb]/[client-mysql], [mysqldump]/[mariadb-dump]; "
        "keys set here win over it.",
        relative=True,
    )
    login_path: str | None = setting(
        None, _str, "A login path of MySQL's ~/.mylogin.cnf (mysql_config_editor); needs MySQL's client tools."
    )
    tls: TLSConfig = section(TLSConfig, "TLS to the server (any of ca/cert/key or required: true turns it on).")
    connect_timeout: float = setting(10.0, _positive_duration, "Time to wait for a connection.")
    include_system: bool = setting(False, _bool, "Also list mysql, sys, information_schema, performance_schema.")
    exclude_databases: tuple[str, ...] = setting((), _str_list, "Databases never listed or backed up on this server.")
    given: frozenset[str] = frozenset()  # the keys the configuration sets (they win over an option file)
    my_cnf: bool = False  # no user and no password source named: ~/.my.cnf is read, as the client would

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        sources = [k for k in PASSWORD_SOURCES if given.get(k) is not None]
        if len(sources) > 1:
            r.error(kp, f"choose one password source, not {' and '.join(sources)}")
        v["my_cnf"] = not sources and given.get("user") is None  # names no credentials at all
        if given.get("host") is None and v["socket"] is not None:
            v["host"] = None

    def option_values(self) -> tuple[dict[str, str], str | None]:
        """(options, where from) of the option file this server reads: `option_file`, else `login_path`,
        else ~/.my.cnf when the server names no credentials at all (no user, no password source) and it
        exists; ({}, None) when none."""
        what = f"servers.{self.name}"
        if self.option_file is not None:
            return optionfile.read(self.option_file, what=f"{what}.option_file"), f"option file {self.option_file}"
        if self.login_path is not None:
            values = optionfile.read_login_path(self.login_path, what=f"{what}.login_path")
            return values, f"login path {self.login_path} (~/.mylogin.cnf)"
        if self.my_cnf:
            mycnf = Path(os.path.expanduser("~/.my.cnf"))
            if mycnf.is_file() and os.access(mycnf, os.R_OK):
                return optionfile.read(mycnf, what=f"{what} (~/.my.cnf)"), f"option file {mycnf}"
        return {}, None

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
            value = env_secret(self.password_env)
            if value is None:
                raise ConfigError(
                    f"server {self.name}: environment variable {self.password_env} (password_env) is not set"
                )
            return value
        values, _ = self.option_values()
        return values.get("password")

    def effective_user(self) -> str:
        """The configured user, else the option file's, else root."""
        if "user" in self.given:
            return self.user
        values, _ = self.option_values()
        return values.get("user") or self.user

    @property
    def address(self) -> str:
        if self.socket is not None:
            return f"{self.socket}"
        return f"{self.host}:{self.port}"


_MANAGED_OPTIONS = (
    "--password",
    "-p",
    "--databases",
    "--all-databases",
    "-A",
    "-B",
    "--result-file",
    "-r",
    "--defaults",
)


@dataclass(frozen=True)
class BackupConfig:
    dir: Path = required_setting(
        _path, "Root of the dump tree: <dir>/<server>/<database>/<database>-<stamp>.sql.zst", relative=True
    )
    compression: str = setting("zstd", _choice(*Codec), "How dumps are compressed.")
    level: int = setting(
        3,
        _int(0, 19),
        "Compression level.",
        default_doc=", ".join(f"{c} {lo}-{hi} (default {d})" for c, (lo, hi, d) in CODEC_LEVELS.items() if hi),
    )
    # zstd: level 1 between sampled frames where level 1 came out no larger than `level` (codecs.FrameWriter).
    adaptive_level: bool = setting(
        True,
        _bool,
        "zstd: compress at level 1 where sampled frames show it no larger than `level` (digits, hashes: "
        "smaller and 3x faster); false: every frame at `level`.",
    )
    # One knob for the cores a dump may use: a parallel dump's workers (backend.pardump), or a
    # single stream's compressor threads (zstd, pigz, xz). 0 and 1 mean one of each.
    threads: int = setting(
        min(os.cpu_count() or 1, 4),
        _int(0, 64),
        "Workers of a parallel dump (one consistent snapshot), or compressor threads of a single stream.",
        default_doc="the number of cores, at most 4",
    )
    # A parallel dump splits a table with more rows than this into primary-key ranges, one worker each.
    chunk_rows: int = setting(
        1_000_000, _int(0, None), "Rows per primary-key range when a parallel dump splits a large table (0: never)."
    )
    # The parallel dump holds commits (BACKUP STAGE BLOCK_COMMIT) until every worker opened its
    # snapshot (about a second); `true` never does and dumps each database as one mariadb-dump stream.
    single_stream: bool = setting(
        False, _bool, "Dump each database as one stream, never in parallel (never holds commits)."
    )
    timeout: float = setting(
        2 * 3600.0, _positive_duration, "Wall-clock limit for one dump; it is killed and fails past it."
    )
    stall_timeout: float = setting(
        300.0, _positive_duration, "A dump that writes nothing for this long is killed and fails."
    )
    extra_options: tuple[str, ...] = setting(
        (), _str_list, "Extra options for the dump tool (not the ones dumpdeck manages)."
    )
    dump_tool: str | None = setting(
        None, _str, "Path of the dump tool.", default_doc="mariadb-dump for MariaDB, mysqldump for MySQL"
    )

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        lo, hi, default = CODEC_LEVELS.get(v["compression"], CODEC_LEVELS["zstd"])
        if given.get("level") is None:
            v["level"] = default
        elif v["level"] == given["level"] and not lo <= v["level"] <= hi:
            r.error((*kp, "level"), f"{v['level']} is out of range ({lo}..{hi})")
        for opt in v["extra_options"]:
            if opt.startswith(_MANAGED_OPTIONS):
                r.error((*kp, "extra_options"), f"{opt!r} is managed by dumpdeck and may not be set here")


@dataclass(frozen=True)
class LogConfig:
    file: Path = setting(None, _path, "The main log file.", relative=True, default_doc="<state_dir>/dumpdeck.log")
    max_size: int = setting(100 * 1024**2, _size, "Rotate the main log when it reaches this size.")
    keep: int = setting(5, _int(0, 100), "Rotated log files kept.")
    level: str = setting("INFO", _choice(*LOG_LEVELS), "Least severe level written.")


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int | None = setting(None, _int(0), "Keep the newest N dumps of each database.")
    keep_days: float | None = setting(None, _float(0), "Keep every dump younger than this many days.")
    daily: int = setting(0, _int(0), "GFS: the newest dump of each of the last N days.")
    weekly: int = setting(0, _int(0), "GFS: the newest dump of each of the last N ISO weeks.")
    monthly: int = setting(0, _int(0), "GFS: the newest dump of each of the last N months.")
    yearly: int = setting(0, _int(0), "GFS: the newest dump of each of the last N years.")

    @property
    def empty(self) -> bool:
        return (
            self.keep_last is None
            and self.keep_days is None
            and not (self.daily or self.weekly or self.monthly or self.yearly)
        )


@dataclass(frozen=True)
class RetentionConfig:
    default: RetentionPolicy = section(RetentionPolicy, "The policy for every database.", inline=True)
    databases: dict[str, RetentionPolicy] = named(
        RetentionPolicy, "database", "Per-database policies (replace the global one for that database)."
    )
    partial_max_age: float = setting(
        86400.0, _positive_duration, "Leftover .partial files older than this (whose writer is gone) are removed."
    )

    def for_database(self, database: str, job_policy: RetentionPolicy | None = None) -> RetentionPolicy:
        if database in self.databases:
            return self.databases[database]
        return job_policy or self.default


@dataclass(frozen=True)
class JobEncryption:
    """jobs.<job>.encryption: this job's recipients, in place of the global `encryption` ones, or
    `enabled: false` for dumps stored unencrypted (say so explicitly: an empty list is an error)."""

    enabled: bool = setting(
        True, _bool, "false: this job's dumps are stored unencrypted, whatever the global recipients are."
    )
    recipients: tuple[str, ...] = setting(
        (), _str_list, "age recipients (public keys: age1…, ssh-ed25519 …) this job's dumps are encrypted to."
    )
    recipients_file: Path | None = setting(
        None, _path, "A file of recipients, one per line (# comments), like `age -R`; read at each dump.", relative=True
    )

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        _check_recipients(v, r, kp)
        named = bool(v["recipients"]) or v["recipients_file"] is not None
        if v["enabled"] and not named:
            r.error(
                kp,
                "names no recipient: give recipients or recipients_file, or `enabled: false` to store this "
                "job's dumps unencrypted",
            )
        elif not v["enabled"] and named:
            r.error((*kp, "enabled"), "false, yet recipients are given: remove them, or the `enabled: false`")


def _check_recipients(v: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
    try:
        parse_recipients(v["recipients"], ".".join((*kp, "recipients")))
    except ConfigError as exc:
        r.error((*kp, "recipients"), str(exc).split(", ", 1)[-1])


@dataclass(frozen=True)
class EncryptionConfig:
    """encryption: age encryption at rest (backend.encryption). Dumps are encrypted to public keys, so the
    host that makes them cannot read them; reading needs `identity_file`, which belongs off this host."""

    recipients: tuple[str, ...] = setting(
        (),
        _str_list,
        "age recipients (public keys: age1… from age-keygen, or ssh-ed25519 …) every dump is encrypted to; "
        "none: dumps are not encrypted (a job's own `encryption` wins).",
    )
    recipients_file: Path | None = setting(
        None, _path, "A file of recipients, one per line (# comments), like `age -R`; read at each dump.", relative=True
    )
    identity_file: Path | None = setting(
        None,
        _path,
        "The age identity (secret key) that READS encrypted dumps: L2/L3 re-verification, restore-test, restore. "
        "Keep it off the database host; without it those checks are not checked (never failed).",
        relative=True,
    )

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        _check_recipients(v, r, kp)


@_labelled("{database glob: [table globs]}")
def _table_globs(v: Any) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`{database glob: [table glob, …]}` (a bare list applies to every database)."""
    if isinstance(v, (list, str)):
        return (("*", _str_list(v)),)
    if not isinstance(v, dict):
        raise ValueError(f"expected a mapping of database glob to table globs, got {_typename(v)}")
    return tuple((str(db), _str_list(pats)) for db, pats in v.items())


@dataclass(frozen=True)
class TableFilter:
    include: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        (), _table_globs, "Only these tables of the matching databases: {database glob: [table globs]}."
    )
    exclude: tuple[tuple[str, tuple[str, ...]], ...] = setting(
        (), _table_globs, "Tables left out of the matching databases: {database glob: [table globs]}."
    )


@dataclass(frozen=True)
class JobConfig:
    name: str
    server: str = setting(None, _str, "Which server.", default_doc="the only server, when one is configured")
    databases: tuple[str, ...] = setting(("*",), _str_list, 'Names or glob patterns; "*" is every non-system database.')
    exclude: tuple[str, ...] = setting((), _str_list, 'Names or patterns left out of "*".')
    schedule: str | None = setting(
        None, _cron, "Cron expression (minute hour day-of-month month day-of-week) or @daily."
    )
    timezone: str | None = setting(None, _timezone, "Time zone of the schedule.", default_doc="the system's")
    parallel: int = setting(1, _int(1, 32), "Dumps running at once.")
    max_runtime: float = setting(4 * 3600.0, _positive_duration, "The whole run is stopped past this.")
    stall_timeout: float | None = setting(
        None, _positive_duration, "Override backup.stall_timeout for this job.", default_doc="backup.stall_timeout"
    )
    retries: int = setting(0, _int(0, 20), "Tries after a failed or timed-out dump, with a growing delay.")
    retry_delay: float = setting(60.0, _duration, "First delay between tries; doubles each time.")
    verify: int = setting(
        2, _int(0, 4), "Verification level after each dump: 0 none, 1 file, 2 stream, 3 content, 4 restore-test."
    )
    notify: str | None = setting(
        None, _choice(*POLICIES), "Notification policy for this job.", default_doc="notify.policy"
    )
    retention: RetentionPolicy | None = section(
        RetentionPolicy, "Retention for this job's databases (overrides the global one).", optional=True
    )
    max_age: float | None = setting(
        None,
        _positive_duration,
        "`dumpdeck check` alarms when a database of this job has no backup this recent.",
        default_doc="checks.max_age",
    )
    tables: TableFilter = section(
        TableFilter, "Tables left out of each dump; the manifest records them as excluded (verification expects so)."
    )
    encryption: JobEncryption | None = section(
        JobEncryption,
        "Encrypt this job's dumps to these recipients (replaces the global encryption ones).",
        optional=True,
    )

    def table_patterns(self, database: str) -> tuple[tuple[str, ...] | None, tuple[str, ...]]:
        """(include globs or None for all, exclude globs) of the job's `tables` for one database."""
        import fnmatch

        inc = [p for db, pats in self.tables.include if fnmatch.fnmatchcase(database, db) for p in pats]
        exc = [p for db, pats in self.tables.exclude if fnmatch.fnmatchcase(database, db) for p in pats]
        return (tuple(inc) if self.tables.include and inc else None), tuple(exc)


@dataclass(frozen=True)
class DiskConfig:
    warn_percent: float = setting(80.0, _float(1, 100), "Percent used that raises a warning.")
    critical_percent: float = setting(90.0, _float(1, 100), "Percent used that is critical.")

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        if v["warn_percent"] > v["critical_percent"]:
            r.error((*kp, "warn_percent"), "must not be above critical_percent")


@dataclass(frozen=True)
class EmailConfig:
    smtp_host: str = required_setting(_str, "SMTP server.")
    port: int = setting(587, _int(1, 65535), "SMTP port.", default_doc="587 for starttls, 465 for tls")
    security: str = setting("starttls", _choice(*EMAIL_SECURITY), "starttls | tls (implicit) | none.")
    user: str | None = setting(None, _str, "SMTP login.")
    password_file: Path | None = setting(None, _path, "SMTP password: first line of this 0600 file.", relative=True)
    password_env: str | None = setting(None, _str, "SMTP password: this environment variable.")
    sender: str = setting("dumpdeck@localhost", _str, "Sender address.", yaml="from")
    to: tuple[str, ...] = setting((), _str_list, "Recipients (at least one).")
    cc: tuple[str, ...] = setting((), _str_list, "Copy recipients.")
    timeout: float = setting(20.0, _positive_duration, "Time before giving up on the SMTP server.")

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        if not v["to"]:
            r.error((*kp, "to"), "at least one recipient is required")
        if given.get("port") is None and v["security"] == "tls":
            v["port"] = 465

    def password(self) -> str | None:
        if self.password_file is not None:
            try:
                return self.password_file.read_text().rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"notify.email: cannot read password_file {self.password_file}: {exc.strerror}"
                ) from None
        if self.password_env is not None:
            return env_secret(self.password_env)
        return None


@dataclass(frozen=True)
class WebhookConfig:
    url: str = required_setting(_url, "Where the JSON POST goes (a secret: it is never logged).")
    timeout: float = setting(10.0, _positive_duration, "Time before giving up on the endpoint.")
    format: str = setting("slack", _choice(*WEBHOOK_FORMATS), 'slack ({"text": ...}) or json (the full event).')


@dataclass(frozen=True)
class HeartbeatConfig:
    url: str = required_setting(
        _url, "Pinged after every run (healthchecks.io style): URL on success, URL/fail on failure. A secret."
    )
    timeout: float = setting(10.0, _positive_duration, "Time before giving up on one attempt.")
    retries: int = setting(3, _int(0, 10), "Further attempts after a failed ping, with a growing delay.")


@dataclass(frozen=True)
class NotifyConfig:
    policy: str = setting("smart", _choice(*POLICIES), "When to speak: always, on failures, or smart.")
    digest_every: float = setting(
        24 * 3600.0, _positive_duration, "While a failure lasts, at most one digest per this period."
    )
    email: EmailConfig | None = section(EmailConfig, "E-mail over SMTP.", optional=True)
    webhook: WebhookConfig | None = section(WebhookConfig, "A JSON POST channel (Slack-compatible).", optional=True)
    heartbeat: HeartbeatConfig | None = section(
        HeartbeatConfig, "A push monitor pinged after every run.", optional=True
    )
    apprise: tuple[str, ...] = setting(
        (), _secret_urls, "Apprise URLs (chat, paging: dozens of services); needs the apprise extra. Secrets."
    )


@dataclass(frozen=True)
class RestoreAccount:
    """restore_test.account: loads on a real server whose configured account cannot create a temporary one.

    Its grants must cover nothing outside `dumpdeck\\_rt\\_%` (SHOW GRANTS, checked before every load)."""

    user: str = required_setting(_str, "The account's user name (its host is the one the server sees).")
    password_file: Path | None = setting(None, _path, "Its password: first line of this 0600 file.", relative=True)
    password_env: str | None = setting(None, _str, "Its password: this environment variable.")

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        if (v["password_file"] is None) == (v["password_env"] is None):
            r.error(kp, "give one password source: password_file or password_env")


@dataclass(frozen=True)
class RestoreTestConfig:
    target: str = setting("sandbox", _str, "Where restore-tests load dumps: sandbox | same | <server name>.")
    parallel: int = setting(2, _int(1, 16), "Connections used to load tables in parallel.")
    account: RestoreAccount | None = section(
        RestoreAccount,
        "On a real server the load runs as a temporary account dumpdeck creates (that needs CREATE USER and "
        "ALL PRIVILEGES ON `dumpdeck\\_rt\\_%`.* WITH GRANT OPTION); if the server's account cannot, this "
        "account loads instead, after its grants were checked to cover nothing else.",
        optional=True,
    )
    mysql_target: str | None = setting(
        None,
        _str,
        "A MySQL server for MySQL 8 dumps when target is sandbox (the sandbox is MariaDB unless MySQL's mysqld "
        "is installed).",
        default_doc="a MySQL sandbox if mysqld is installed, else level 4 is not checked",
    )


@dataclass(frozen=True)
class ChecksConfig:
    max_age: float = setting(26 * 3600.0, _positive_duration, "No successful backup for longer than this is critical.")
    schedule: str | None = setting(
        "*/30 * * * *", _cron_or_off, "When `schedule install` runs `dumpdeck check` beside the jobs; off: never."
    )
    min_size_ratio: float = setting(
        0.5, _float(0, 1), "A newest dump below this fraction of the median of earlier dumps is a warning."
    )


@dataclass(frozen=True)
class TrendsConfig:
    window: int = setting(10, _int(2, 1000), "Dumps of a database compared against the median of the last N.")
    size_tolerance: float = setting(
        0.5, _float(0.01, 10), "Flag a size that differs from the median by more than this."
    )
    slow_factor: float = setting(2.0, _float(1, 100), "Flag a run slower than this many times the median duration.")


@dataclass(frozen=True)
class ReportConfig:
    file: Path | None = setting(
        None, _path, "The HTML status page.", relative=True, default_doc="<state_dir>/report.html"
    )
    refresh: float = setting(300.0, _positive_duration, "The page's auto-refresh interval.")


@dataclass(frozen=True)
class MetricsConfig:
    textfile: Path | None = setting(
        None,
        _path,
        "Prometheus node_exporter textfile (e.g. /var/lib/node_exporter/textfile_collector/dumpdeck.prom), "
        "rewritten atomically after every run and every check.",
        relative=True,
        default_doc="none (no metrics file)",
    )


@dataclass(frozen=True)
class SystemdConfig:
    user: str | None = setting(
        None,
        _str,
        "User= of system-wide units (schedule install --systemd as root).",
        default_doc="the config file's owner",
    )


_RCLONE_MANAGED = ("--config", "--password-command")


@dataclass(frozen=True)
class CopyDestination:
    """copies.<name>: one off-host destination, reached through rclone (dumpdeck has no uploader)."""

    name: str
    remote: str = required_setting(
        _str,
        "rclone remote and path the dumps go to, as <remote>:<path> (s3-backups:bucket/mysql, "
        "nas-sftp:/srv/mysql) or a local path (/mnt/nas/mysql); dumps land under <server>/<database>/.",
    )
    rclone_config: Path | None = setting(
        None,
        _path,
        "rclone config file that defines the remote and holds its credentials (keep it 0600).",
        relative=True,
        default_doc="rclone's own (~/.config/rclone/rclone.conf or $RCLONE_CONFIG)",
    )
    after: str = setting(
        "verify", _choice("verify"), "When a dump is copied: once it reached its job's verification level."
    )
    bwlimit: str | None = setting(
        None, _str, "rclone --bwlimit for this destination, e.g. 10M or '08:00,1M 20:00,off'."
    )
    options: tuple[str, ...] = setting(
        (), _str_list, "Extra rclone flags, passed through (e.g. [--transfers, '4', --s3-chunk-size, 64M])."
    )
    timeout: float = setting(6 * 3600.0, _positive_duration, "Limit for one rclone command (one upload).")
    retry_delay: float = setting(
        600.0,
        _duration,
        "A copy that failed is tried again by a later run after this long; doubles each time (max 1d).",
    )
    max_age: float = setting(
        26 * 3600.0,
        _positive_duration,
        "`dumpdeck check` warns when the newest dump of a database has no verified copy here this recent.",
    )
    retention: RetentionPolicy | None = section(
        RetentionPolicy,
        "What this destination keeps (same rules as retention:); the floor is its newest verified copy. "
        "Absent: nothing is ever deleted there.",
        optional=True,
    )

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        if v.get("remote") is not None and not str(v["remote"]).strip():
            r.error((*kp, "remote"), "must name an rclone remote and path, or a directory")
        for opt in v["options"]:
            if opt.startswith(_RCLONE_MANAGED):
                r.error((*kp, "options"), f"{opt!r} is managed by dumpdeck (use rclone_config) and may not be set here")


@dataclass(frozen=True)
class ConsoleConfig:
    theme: str = setting(
        "dumpdeck-dark", _str, "dumpdeck-dark | dumpdeck-light | dumpdeck-high-contrast (or a Textual theme)."
    )
    refresh: float = setting(1.0, _positive_duration, "Time between live pane refreshes.")
    keys: dict[str, str] = setting({}, _str_map, "Remap keys by binding id (see the ? help screen), e.g. backup: f5.")


@dataclass(frozen=True)
class Config:
    path: Path | None
    servers: dict[str, ServerConfig] = named(ServerConfig, "server", "The servers to back up.", default=False)
    backup: BackupConfig = section(BackupConfig, "How dumps are made.", default=False)
    state_dir: Path = setting(
        None,
        _path,
        "Runs, progress, events, locks and run logs.",
        relative=True,
        default_doc="~/.local/state/dumpdeck; /var/lib/dumpdeck for root with a config under /etc",
    )
    log: LogConfig = section(LogConfig, "The main log.")
    jobs: dict[str, JobConfig] = named(JobConfig, "job", "Scheduled jobs.")
    retention: RetentionConfig = section(RetentionConfig, "What to keep.")
    disk: DiskConfig = section(DiskConfig, "Disk thresholds for the volumes holding backups.")
    notify: NotifyConfig = section(NotifyConfig, "Notifications.")
    restore_test: RestoreTestConfig = section(RestoreTestConfig, "Restore-tests (verification level 4).")
    checks: ChecksConfig = section(ChecksConfig, "The dead-man's alarm (`dumpdeck check`).")
    trends: TrendsConfig = section(TrendsConfig, "Size and duration trends.")
    report: ReportConfig = section(ReportConfig, "The HTML status page.")
    metrics: MetricsConfig = section(MetricsConfig, "Prometheus metrics.")
    systemd: SystemdConfig = section(SystemdConfig, "systemd units written by `schedule install --systemd`.")
    console: ConsoleConfig = section(ConsoleConfig, "The console.")
    encryption: EncryptionConfig = section(EncryptionConfig, "Encryption at rest with age (off without recipients).")
    copies: dict[str, CopyDestination] = named(
        CopyDestination, "destination", "Off-host copies: each verified dump and its manifest go to every destination."
    )

    @classmethod
    def _check(cls, v: dict[str, Any], given: dict[str, Any], r: _Reader, kp: tuple[str, ...]) -> None:
        servers: dict[str, ServerConfig] = v["servers"]
        if not servers:
            r.error(("servers",), "at least one server is required")
        if v["state_dir"] is None:
            v["state_dir"] = default_state_dir(v["path"])
        if v["log"].file is None:
            v["log"] = dataclasses.replace(v["log"], file=v["state_dir"] / "dumpdeck.log")
        jobs = {}
        for name, declared in v["jobs"].items():
            jkp = ("jobs", name, "server")
            job = declared
            if job.server is None:
                if len(servers) == 1:
                    job = dataclasses.replace(job, server=next(iter(servers)))
                else:
                    r.error(jkp, "is required when several servers are configured")
                    job = dataclasses.replace(job, server="")
            elif servers and job.server not in servers:
                r.error(jkp, f"no server named {job.server!r} (configured: {', '.join(servers)})")
            jobs[name] = job
        v["jobs"] = jobs
        target = v["restore_test"].target
        if target not in ("sandbox", "same") and servers and target not in servers:
            r.error(("restore_test", "target"), f"{target!r} is neither sandbox, same, nor a configured server")
        mysql_target = v["restore_test"].mysql_target
        if mysql_target is not None and servers and mysql_target not in servers:
            r.error(
                ("restore_test", "mysql_target"), f"no server named {mysql_target!r} (configured: {', '.join(servers)})"
            )

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

    def recipients(self, job: JobConfig | None = None) -> Recipients | None:
        """The age recipients a dump of `job` is encrypted to (the job's, else the global ones); None: not
        encrypted. Reads the recipients files now: ConfigError names the one at fault."""
        if job is not None and job.encryption is not None:
            if not job.encryption.enabled:
                return None
            e: JobEncryption | EncryptionConfig = job.encryption
            where = f"jobs.{job.name}.encryption"
        else:
            e, where = self.encryption, "encryption"
        return recipients_from(e.recipients, e.recipients_file, where)

    @property
    def lock_dir(self) -> Path:
        return self.state_dir / "locks"

    @property
    def runs_log_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def state_db(self) -> Path:
        return self.state_dir / "state.db"


# --------------------------------------------------------------------------- the schema, listed


@dataclass(frozen=True)
class KeyInfo:
    """One key of the schema, for documentation: `servers.<server>.port`, its type, default and comment."""

    path: str
    type: str
    default: str
    doc: str
    required: bool = False
    section: str = ""  # the dataclass that declares it


def _duration_text(seconds: float) -> str:
    """7200 → 2h, 93600 → 26h, 90 → 90s: the way one writes a duration in the config."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _default_text(f: dataclasses.Field[Any], k: Key) -> str:
    if k.default_doc is not None:
        return k.default_doc
    if f.default is not MISSING:
        value = f.default
    elif f.default_factory is not MISSING:
        value = f.default_factory()
    else:
        return ""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and k.conv in (_positive_duration, _duration):
        return _duration_text(value)
    if isinstance(value, int) and k.conv is _size:
        from .units import format_bytes

        return format_bytes(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(str(x) for x in value) + "]"
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def schema(cls: type | None = None, prefix: str = "") -> Iterator[KeyInfo]:
    """Every key of the configuration, depth first, in declaration order."""
    cls = cls or Config
    for f, k in _specs(cls):
        name = k.yaml or f.name
        path = f"{prefix}{name}"
        if k.inline:
            yield from schema(k.section, prefix)
        elif k.named:
            yield KeyInfo(path, f"mapping of {k.named} names", "", k.doc, f.default_factory is MISSING, cls.__name__)
            yield from schema(k.section, f"{path}.<{k.named}>.")
        elif k.section is not None:
            yield KeyInfo(path, "mapping" + (" (optional)" if k.optional else ""), "", k.doc, False, cls.__name__)
            yield from schema(k.section, f"{path}.")
        else:
            label = getattr(k.conv, "label", "value")
            yield KeyInfo(path, label, _default_text(f, k), k.doc, k.required, cls.__name__)


# --------------------------------------------------------------------------- default paths


SYSTEM_CONFIG = Path("/etc/dumpdeck/config.yaml")
SYSTEM_STATE_DIR = Path("/var/lib/dumpdeck")


def config_candidates() -> list[Path]:
    """Where a configuration is looked for, first match wins: $DUMPDECK_CONFIG alone when set; else the
    user's own ($XDG_CONFIG_HOME/dumpdeck/config.yaml), each $XDG_CONFIG_DIRS entry (default /etc/xdg),
    then /etc/dumpdeck/config.yaml."""
    env = os.environ.get("DUMPDECK_CONFIG")
    if env:
        return [Path(env)]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    out = [Path(base) / "dumpdeck" / "config.yaml"]
    for d in (os.environ.get("XDG_CONFIG_DIRS") or "/etc/xdg").split(":"):
        if d and os.path.isabs(d):
            out.append(Path(d) / "dumpdeck" / "config.yaml")
    out.append(SYSTEM_CONFIG)
    return list(dict.fromkeys(out))


def default_config_path() -> Path:
    """The first existing candidate (see config_candidates), else the user's own path (for the message)."""
    candidates = config_candidates()
    for p in candidates:
        if p.is_file():
            return p
    return candidates[0]


def is_system_config(path: Path | None) -> bool:
    """A configuration shared by the host (under /etc, or an XDG_CONFIG_DIRS entry), not a user's own."""
    if path is None:
        return False
    resolved = Path(os.path.abspath(path))
    dirs = [Path("/etc")] + [Path(d) for d in (os.environ.get("XDG_CONFIG_DIRS") or "").split(":") if d]
    return any(resolved.is_relative_to(d) for d in dirs)


def default_state_dir(config_path: Path | None = None) -> Path:
    """/var/lib/dumpdeck for root with a host-wide configuration (so `sudo dumpdeck` and the system
    units share one state), else the user's XDG state directory."""
    if config_path is not None and os.geteuid() == 0 and is_system_config(config_path):
        return SYSTEM_STATE_DIR
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "dumpdeck"


# --------------------------------------------------------------------------- reader


class _Reader:
    """Walks a loaded mapping along the declarations, collecting errors with lines."""

    def __init__(self, path: Path | None, lines: dict[tuple[str, ...], int]):
        self.path = path
        self.lines = lines
        self.errors: list[str] = []
        self.base = path.parent if path is not None else Path.cwd()

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

    def mapping(self, value: Any, keypath: tuple[str, ...], allowed: set[str] | None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(keypath, f"expected a mapping, got {_typename(value)}")
            return {}
        for k in value:
            if not isinstance(k, str):
                self.error(keypath, f"key {k!r} must be a string")
            elif allowed is not None and k not in allowed:
                hint = _closest(k, allowed)
                self.error((*keypath, k), "unknown key" + (f" (did you mean {hint!r}?)" if hint else ""))
        return value

    def get(
        self,
        data: dict[str, Any],
        name: str,
        keypath: tuple[str, ...],
        conv: Callable[[Any], Any],
        default: Any = None,
        *,
        required: bool = False,
    ) -> Any:
        if name not in data or data[name] is None:
            if required:
                self.error((*keypath, name), "is required")
            return default
        try:
            return conv(data[name])
        except (ValueError, TypeError) as exc:
            self.error((*keypath, name), str(exc))
            return default

    def read(self, cls: type[_T], raw: Any, kp: tuple[str, ...], **fixed: Any) -> _T:
        """One mapping → an instance of `cls`, every key converted along its declaration.

        `fixed` gives the fields that are not keys (a server's or job's name, the config's path)."""
        data = self.mapping(raw, kp, _yaml_keys(cls))
        values: dict[str, Any] = dict(fixed)
        for f, k in _specs(cls):
            yname = k.yaml or f.name
            if k.inline:
                inner = _yaml_keys(k.section)  # type: ignore[arg-type]
                values[f.name] = self.read(k.section, {a: b for a, b in data.items() if a in inner}, kp)  # type: ignore[arg-type]
            elif k.named:
                values[f.name] = self._read_named(k, data.get(yname), (*kp, yname))
            elif k.section is not None:
                if data.get(yname) is None and k.optional:
                    values[f.name] = None
                else:
                    values[f.name] = self.read(k.section, data.get(yname), (*kp, yname))
            else:
                default = f.default if f.default is not MISSING else None
                if f.default_factory is not MISSING:
                    default = f.default_factory()
                value = self.get(data, yname, kp, k.conv, default, required=k.required)  # type: ignore[arg-type]
                if k.relative and isinstance(value, Path) and not value.is_absolute():
                    value = self.base / value
                values[f.name] = value
        if "given" in getattr(cls, "__dataclass_fields__", {}):
            values["given"] = frozenset(k for k, x in data.items() if isinstance(k, str) and x is not None)
        check = getattr(cls, "_check", None)
        if check is not None:
            check(values, data, self, kp)
        return cls(**values)

    def _read_named(self, k: Key, raw: Any, kp: tuple[str, ...]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        has_name = any(f.name == "name" for f in dataclasses.fields(k.section))  # type: ignore[arg-type]
        for raw_name, value in self.mapping(raw, kp, None).items():
            if k.named in ("server", "job", "destination"):
                if not isinstance(raw_name, str):
                    continue
                if not NAME_RE.match(raw_name):
                    self.error(
                        (*kp, raw_name),
                        f"{k.named} names may use letters, digits, '_', '.' and '-' only"
                        + (" (they become directory names)" if k.named == "server" else ""),
                    )
            entry = str(raw_name)
            fixed = {"name": entry} if has_name else {}
            out[entry] = self.read(k.section, value, (*kp, entry), **fixed)  # type: ignore[arg-type]
        return out


def _closest(name: str, allowed: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name, sorted(allowed), n=1, cutoff=0.6)
    return found[0] if found else None


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
                name = str(key_node.value)
                lines[(*prefix, name)] = key_node.start_mark.line + 1
                walk(value_node, (*prefix, name))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[(*prefix, str(i))] = item.start_mark.line + 1
                walk(item, (*prefix, str(i)))

    if root is not None:
        walk(root, ())
    return lines


# --------------------------------------------------------------------------- entry points


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate a configuration file. Raises ConfigError naming every problem."""
    path = Path(path) if path is not None else default_config_path()
    try:
        text = path.read_text()
    except FileNotFoundError:
        candidates = config_candidates()
        looked = f" (looked in: {', '.join(str(p) for p in candidates)})" if path in candidates else ""
        raise ConfigError(
            f"{path}: configuration file not found{looked}. Copy config.example.yaml there, "
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
    config = r.read(Config, {} if data is None else data, (), path=path)
    if r.errors:
        raise ConfigError("\n".join(r.errors))
    return config


# --------------------------------------------------------------------------- presentation


def readable_identity(path: Path, where: str = "--identity") -> Path:
    """`path` made absolute, once it opens for reading; UsageError naming `where` and the path otherwise."""
    path = Path(path).expanduser().absolute()
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"{where} {path}: {(exc.strerror or str(exc)).lower()}") from None
    return path


def with_identity(config: Config, path: Path, where: str = "--identity") -> Config:
    """`config` with `encryption.identity_file` set to `path` (the `--identity` option): the age identity that
    reads encrypted dumps for this command only."""
    ident = readable_identity(path, where)
    return dataclasses.replace(config, encryption=dataclasses.replace(config.encryption, identity_file=ident))


def secret_files(config: Config) -> list[tuple[str, Path]]:
    """Every file the config reads a secret from, with what it is for."""
    out = []
    for s in config.servers.values():
        for label, p in (("password_file", s.password_file), ("option_file", s.option_file)):
            if p is not None:
                out.append((f"servers.{s.name}.{label}", p))
    if config.notify.email and config.notify.email.password_file:
        out.append(("notify.email.password_file", config.notify.email.password_file))
    if config.restore_test.account and config.restore_test.account.password_file:
        out.append(("restore_test.account.password_file", config.restore_test.account.password_file))
    if config.encryption.identity_file is not None:
        out.append(("encryption.identity_file", config.encryption.identity_file))
    for d in config.copies.values():
        if d.rclone_config is not None:
            out.append((f"copies.{d.name}.rclone_config", d.rclone_config))
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
                f"{label}: {path} holds a {'secret key' if label.endswith('identity_file') else 'password'} "
                "and is readable by "
                f"{'others' if mode & stat.S_IROTH else 'its group'} (mode {stat.S_IMODE(mode):04o}); "
                f"run: chmod 600 {path}"
            )
    return warnings


def redact_url(url: str) -> str:
    """scheme://host/… — webhook, heartbeat and Apprise URLs carry their token in the path."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if parts.port:
            host += f":{parts.port}"
    except ValueError:
        return "<redacted URL>"
    return f"{parts.scheme}://{host}/…"


def redacted(config: Config) -> dict[str, Any]:
    """The effective settings as plain data, secrets replaced by where they come from."""

    def conv(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: conv(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if f.name not in ("given", "my_cnf")
            }
        if isinstance(value, dict):
            return {str(k): conv(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [conv(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    out: dict[str, Any] = conv(config)
    if config.notify.heartbeat is not None:
        out["notify"]["heartbeat"]["url"] = "<redacted: a secret URL>"
    if config.notify.apprise:
        out["notify"]["apprise"] = [f"<redacted: {u.split('://', 1)[0]}:// URL>" for u in config.notify.apprise]
    if config.notify.webhook is not None:
        out["notify"]["webhook"]["url"] = redact_url(config.notify.webhook.url)
    for name, s in config.servers.items():
        entry = out["servers"][name]
        if s.password_file:
            entry["password"] = f"<redacted: from file {s.password_file}>"
        elif s.password_env:
            entry["password"] = f"<redacted: from ${s.password_env}>"
        elif s.option_file:
            entry["password"] = f"<redacted: from option file {s.option_file}>"
        elif s.login_path:
            entry["password"] = f"<redacted: from login path {s.login_path}>"
        elif s.my_cnf:
            entry["password"] = "<redacted: from ~/.my.cnf, if it names one>"
        else:
            entry["password"] = "<none>"
    return out
