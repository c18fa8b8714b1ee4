"""MySQL or MariaDB: the client tool's dialect, the options it gets, and the flavour of a dump.

One config serves MySQL 5.7/8.0/8.4 and MariaDB 10.6–11.x. What differs is decided here, from what
the installed tool says about itself (`--version`, `--help`) and what the server reports:

- TLS: MySQL clients take `ssl-mode` (they reject `ssl-verify-server-cert`); MariaDB clients take
  `ssl` and `ssl-verify-server-cert` (or `skip-ssl-verify-server-cert`).
- Binary-log coordinates: `--source-data=2` where the tool knows it (MySQL 8.0.26+), else
  `--master-data=2`; mariadb-dump cannot read them from MySQL 8.4 (SHOW MASTER STATUS is gone).
- GTIDs: MySQL's mysqldump always gets `--set-gtid-purged` (COMMENTED with GTIDs on, else OFF), so a
  partial dump never carries a SET @@GLOBAL.GTID_PURGED that would break a restore.
- A dump's flavour (for restore-tests) comes from its manifest, else its header's server version.
"""

from __future__ import annotations

import contextlib
import functools
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .config import Config, TLSConfig
from .manifest import Manifest

MARIADB, MYSQL = "mariadb", "mysql"

# `mysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)`
# `mysqldump  Ver 10.13 Distrib 5.7.44, for Linux (x86_64)`
# `mariadb-dump  Ver 10.19 Distrib 10.11.6-MariaDB, for debian-linux-gnu (x86_64)`
# `mariadb-dump from 11.4.2-MariaDB, client 10.19 for debian-linux-gnu (x86_64)`
_DISTRIB = re.compile(r"Distrib (\d+)\.(\d+)\.(\d+)")
_FROM = re.compile(r"\bfrom (\d+)\.(\d+)\.(\d+)")
_VER = re.compile(r"\bVer (\d+)\.(\d+)\.(\d+)")
_OPTION = re.compile(r"^\s*(?:-[\w#?], )?--([a-z][a-z0-9_-]*)", re.MULTILINE)


@dataclass(frozen=True)
class ToolInfo:
    """What a client tool says about itself."""

    path: str
    flavour: str  # mariadb | mysql
    version: tuple[int, int, int]
    options: frozenset[str]  # long options its --help lists

    @property
    def label(self) -> str:
        return f"{'MariaDB' if self.flavour == MARIADB else 'MySQL'} {'.'.join(map(str, self.version))}"

    def knows(self, option: str) -> bool:
        return option in self.options


def parse_version(text: str) -> tuple[str, tuple[int, int, int]]:
    """(flavour, version) from a tool's `--version` line."""
    flavour = MARIADB if "mariadb" in text.lower() else MYSQL
    for rx in (_DISTRIB, _FROM, _VER):
        m = rx.search(text)
        if m:
            return flavour, (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    return flavour, (0, 0, 0)


def parse_options(help_text: str) -> frozenset[str]:
    """The long options a `--help` text lists (`--ssl-mode=name` → `ssl-mode`)."""
    return frozenset(m.group(1).replace("_", "-") for m in _OPTION.finditer(help_text))


def from_outputs(path: str, version_text: str, help_text: str) -> ToolInfo:
    flavour, version = parse_version(version_text)
    return ToolInfo(path, flavour, version, parse_options(help_text))


@functools.lru_cache(maxsize=16)
def tool_info(path: str) -> ToolInfo:
    """Ask the tool: `--version`, and for MySQL's tools `--help` (which options a MySQL version has varies;
    MariaDB's dialect is fixed: ssl + ssl-verify-server-cert, --master-data). Cached per path."""

    def out(*args: str) -> str:
        try:
            proc = subprocess.run([path, *args], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return proc.stdout

    version = out("--version")
    flavour, _ = parse_version(version)
    return from_outputs(path, version, out("--help") if flavour == MYSQL else "")


# --------------------------------------------------------------------------- client options


def tls_options(tool: ToolInfo | None, tls: TLSConfig) -> list[tuple[str, str | None]]:
    """Option-file settings (name, value or None for a flag) for TLS in the tool's dialect; [] without TLS."""
    if not tls.enabled:
        return []
    out: list[tuple[str, str | None]] = [
        (name, str(value))
        for name, value in (("ssl-ca", tls.ca), ("ssl-cert", tls.cert), ("ssl-key", tls.key))
        if value
    ]
    if tool is not None and tool.knows("ssl-mode"):
        out.append(("ssl-mode", "VERIFY_IDENTITY" if tls.verify_server_cert else "REQUIRED"))
    else:
        out.append(("ssl", None))
        out.append(("ssl-verify-server-cert" if tls.verify_server_cert else "skip-ssl-verify-server-cert", None))
    return out


@dataclass(frozen=True)
class DumpFlags:
    options: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def coordinate_flags(
    tool: ToolInfo, server_flavour: str, server_version: tuple[int, int, int], gtid_mode: bool, coordinates: bool
) -> DumpFlags:
    """Binary-log coordinate and GTID options for this tool against this server."""
    opts: list[str] = []
    warnings: list[str] = []
    if coordinates:
        if tool.flavour == MARIADB and server_flavour == MYSQL and server_version >= (8, 4, 0):
            warnings.append(
                f"binary-log coordinates not recorded: {tool.label}'s dump tool cannot read them from MySQL "
                f"{'.'.join(map(str, server_version))} (SHOW MASTER STATUS was removed); install MySQL's mysqldump"
            )
        elif tool.knows("source-data"):
            opts.append("--source-data=2")
        else:
            opts.append("--master-data=2")
    if tool.flavour == MYSQL and tool.knows("set-gtid-purged"):
        opts.append("--set-gtid-purged=COMMENTED" if server_flavour == MYSQL and gtid_mode else "--set-gtid-purged=OFF")
    return DumpFlags(tuple(opts), tuple(warnings))


# --------------------------------------------------------------------------- dumps


_SERVER_VERSION = re.compile(rb"^-- Server version\s+(\S+)", re.MULTILINE)


def header_flavour(header: bytes) -> tuple[str | None, str | None]:
    """(flavour, server version) from a dump's header: its `-- Server version` line (the server's, not the
    tool's: mariadb-dump of a MySQL server still writes `-- MariaDB dump`)."""
    m = _SERVER_VERSION.search(header[:8192])
    if not m:
        return None, None
    version = m.group(1).decode("ascii", "replace")
    return (MARIADB if "mariadb" in version.lower() else MYSQL), version


def dump_flavour(manifest: Manifest | None, header: bytes | None = None) -> tuple[str | None, str | None]:
    """(flavour, version) of the server a dump came from: the manifest's, else the header's."""
    server = getattr(manifest, "server", None) or {}
    if server.get("flavour") in (MARIADB, MYSQL):
        return server["flavour"], server.get("version")
    if header:
        return header_flavour(header)
    return None, None


def needs_mysql_target(flavour: str | None, version: str | None) -> bool:
    """A MySQL 8 dump (utf8mb4_0900_* collations, MySQL-only syntax) cannot load into MariaDB."""
    if flavour != MYSQL:
        return False
    m = re.match(r"(\d+)", version or "")
    return m is None or int(m.group(1)) >= 8


# --------------------------------------------------------------------------- restore-test targets


@dataclass(frozen=True)
class TargetChoice:
    target: str | None  # sandbox | mysql-sandbox | same | <server name>; None: level 4 cannot be checked
    reason: str | None = None  # why it cannot (a plain sentence for the ladder)


def dump_flavour_of(path: Path, manifest: Manifest | None) -> tuple[str | None, str | None]:
    """(flavour, server version) of a dump: its manifest, else the `-- Server version` line of its header."""
    flav, version = dump_flavour(manifest)
    if flav is not None:
        return flav, version
    from .codecs import open_decoded

    try:
        stream = open_decoded(path)
    except Exception:
        return None, None
    try:
        header = stream.read(8192)
    except Exception:
        header = b""
    finally:
        with contextlib.suppress(Exception):
            stream.close(check=False)
    return header_flavour(header)


def choose_target(config: Config, requested: str, flavour: str | None, version: str | None) -> TargetChoice:
    """Where a dump of this flavour is restore-tested. A MySQL 8 dump never goes to the MariaDB sandbox:
    to restore_test.mysql_target when set, else to a MySQL sandbox when MySQL's mysqld is installed,
    else it is not checked, with the reason."""
    if requested != "sandbox" or not needs_mysql_target(flavour, version):
        return TargetChoice(requested)
    if config.restore_test.mysql_target:
        return TargetChoice(config.restore_test.mysql_target)
    from .mysqlsandbox import find_mysqld

    if find_mysqld() is not None:
        return TargetChoice("mysql-sandbox")
    return TargetChoice(
        None,
        f"this is a MySQL {version or '8'} dump and the sandbox here is MariaDB, which cannot load it "
        "(utf8mb4_0900_* collations, MySQL-only syntax: error 1273); install MySQL's server (mysqld) for a "
        "MySQL sandbox, or set restore_test.mysql_target to a MySQL server",
    )


def target_mismatch(
    target_flavour: str, target_version: str, dump_flavour: str | None, dump_version: str | None
) -> str | None:
    """Why a dump cannot be loaded into a server of another flavour (None when it can): MySQL 8 dumps
    need MySQL; MariaDB dumps (MariaDB-only comments and syntax, the 11.x sandbox-mode line) need MariaDB."""
    if dump_flavour is None or dump_flavour == target_flavour:
        return None
    if dump_flavour == MYSQL and not needs_mysql_target(dump_flavour, dump_version):
        return None  # MySQL 5.7 dumps load into MariaDB
    what = "MySQL" if dump_flavour == MYSQL else "MariaDB"
    other = "MariaDB" if target_flavour == MARIADB else "MySQL"
    return (
        f"this is a {what} {dump_version or ''} dump and the target is {other} {target_version}: it cannot be loaded "
        f"there; restore-test it on a {what} server"
    ).replace("  ", " ")
