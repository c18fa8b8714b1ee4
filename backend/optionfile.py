"""MySQL option files read the way the client reads them: through the client's own `my_print_defaults`.

`my_print_defaults` applies the client's rules (groups, `!include`, `!includedir`, quoting, inline
comments, `loose-` prefixes); we only pick which groups and turn its `--key=value` lines into a
mapping. Later values win, as in the client. Option names are normalised to dashes
(`ssl_ca` → `ssl-ca`).

Groups read, as the dump tool of the installed client family reads them:
- MariaDB clients: [client] [client-server] [client-mariadb] [mysqldump] [mariadb-dump]
- MySQL clients:   [client] [client-mysql] [mysqldump]

`login_path` (MySQL's obfuscated ~/.mylogin.cnf, written by `mysql_config_editor`) is read with
MySQL's `my_print_defaults --login-path`; MariaDB's clients do not support it, which is said plainly.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import ConfigError

MARIADB_GROUPS = ("client", "client-server", "client-mariadb", "mysqldump", "mariadb-dump")
MYSQL_GROUPS = ("client", "client-mysql", "mysqldump")
TRUE_WORDS = ("", "1", "on", "true", "yes")
FALSE_WORDS = ("0", "off", "false", "no")


def find_my_print_defaults() -> str | None:
    return shutil.which("my_print_defaults") or shutil.which("my_print_defaults", path="/usr/bin:/usr/local/bin")


@functools.lru_cache(maxsize=8)
def _help_text(tool: str) -> str:
    try:
        proc = subprocess.run([tool, "--help"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout + proc.stderr


def supports_login_path(help_text: str) -> bool:
    """True when a `my_print_defaults --help` text (MySQL's) offers --login-path; MariaDB's does not."""
    return "--login-path" in help_text


@functools.lru_cache(maxsize=4)
def client_flavour() -> str:
    """ "mariadb" or "mysql": the family of the installed client tools (their option groups differ)."""
    if shutil.which("mariadb-dump") or shutil.which("mariadb"):
        return "mariadb"
    tool = shutil.which("mysqldump")
    if tool:
        try:
            out = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if "mariadb" not in out.lower():
            return "mysql"
    return "mariadb"


def groups_for(flavour: str) -> tuple[str, ...]:
    return MYSQL_GROUPS if flavour == "mysql" else MARIADB_GROUPS


def parse_output(text: str) -> dict[str, str]:
    """`my_print_defaults` output (`--key=value` / `--flag`, one a line) → {key: value}, later lines winning.

    Flags get the value "" (true); `skip-X` and `disable-X` become X = "0"; `loose-` is dropped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            continue
        name, sep, value = line[2:].partition("=")
        name = name.strip().replace("_", "-").lower()
        if name.startswith("loose-"):
            name = name[len("loose-") :]
        for neg in ("skip-", "disable-"):
            if name.startswith(neg) and not sep:
                name, value, sep = name[len(neg) :], "0", "="
        if name.startswith("enable-") and not sep:
            name = name[len("enable-") :]
        out[name] = value if sep else ""
    return out


def flag(values: dict[str, str], name: str) -> bool | None:
    """A boolean option of an option file: None when absent."""
    if name not in values:
        return None
    v = values[name].strip().lower()
    if v in FALSE_WORDS:
        return False
    return True if v in TRUE_WORDS else bool(v)


def read(path: Path | str, *, flavour: str | None = None, what: str = "option_file") -> dict[str, str]:
    """The options a client of `flavour` reads from this one file (and what it includes)."""
    path = Path(path).expanduser()
    tool = find_my_print_defaults()
    if tool is None:
        raise ConfigError(
            f"{what} {path}: my_print_defaults is not installed; it reads option files the way the client "
            "does (apt-get install -y mariadb-client)"
        )
    if not path.is_file():
        try:
            path.stat()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {path}: {exc.strerror}") from None
        raise ConfigError(f"{what}: {path} is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"{what}: cannot read {path}: permission denied")
    groups = groups_for(flavour or client_flavour())
    proc = subprocess.run(
        [tool, f"--defaults-file={path}", *groups], capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise ConfigError(f"{what} {path}: my_print_defaults cannot read it: {reason}")
    return parse_output(proc.stdout)


def read_login_path(name: str, *, help_text: str | None = None, what: str = "login_path") -> dict[str, str]:
    """The [client] and [NAME] options of ~/.mylogin.cnf, through MySQL's my_print_defaults."""
    tool = find_my_print_defaults()
    if tool is None:
        raise ConfigError(f"{what} {name!r}: my_print_defaults is not installed (MySQL's client tools read it)")
    text = _help_text(tool) if help_text is None else help_text
    if not supports_login_path(text):
        raise ConfigError(
            f"{what} {name!r}: the installed client tools (MariaDB's) do not read ~/.mylogin.cnf; "
            "install MySQL's client tools, or use option_file, password_file or password_env"
        )
    with tempfile.NamedTemporaryFile("w", prefix="dumpdeck-empty-", suffix=".cnf") as empty:
        # --defaults-file of an empty file: only the login file's [client] and [NAME] groups count
        proc = subprocess.run(
            [tool, "--show", f"--defaults-file={empty.name}", f"--login-path={name}", "client"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    if proc.returncode != 0:
        reason = " ".join(proc.stderr.split()) or f"exit status {proc.returncode}"
        raise ConfigError(f"{what} {name!r}: my_print_defaults cannot read ~/.mylogin.cnf: {reason}")
    values = parse_output(proc.stdout)
    if not values:
        raise ConfigError(
            f"{what} {name!r}: no such login path in ~/.mylogin.cnf (see mysql_config_editor print --all)"
        )
    return values
