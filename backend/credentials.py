"""Credentials for the client tools: a 0600 option file, deleted afterwards.

The password never reaches a process's argv or environment. The child also
gets a private HOME, so a stray ~/.my.cnf of the operator cannot override the
configured account, and MYSQL_PWD is removed from its environment.

The directory's name carries the pid of the process that made it
(`dumpdeck-cred-<pid>-…`), so `dumpdeck clean` can remove those of processes that
were killed before their `finally` ran (`orphans()`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .config import ServerConfig
from .endpoint import resolve
from .errors import ConfigError
from .flavour import ToolInfo, tls_options, tool_info

PREFIX = "dumpdeck-cred-"


def quote_value(value: str, what: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if '"' not in escaped:
        return f'"{escaped}"'
    if "'" not in escaped:
        return f"'{escaped}'"
    raise ConfigError(f"{what} contains both ' and \" characters, which a MySQL option file cannot hold")


def option_file_text(server: ServerConfig, password: str | None = None, tool: ToolInfo | None = None) -> str:
    """The [client] group for the client tools: the resolved endpoint (config over option file) and TLS
    in the dialect of `tool` (ssl-mode for MySQL clients, ssl + ssl-verify-server-cert for MariaDB's)."""
    ep = resolve(server)
    lines = ["[client]", f"user={quote_value(ep.user, f'server {server.name}: user')}"]
    pw = server.password() if password is None else password
    if pw:
        lines.append(f"password={quote_value(pw, f'server {server.name}: password')}")
    if ep.socket is not None:
        lines.append(f"socket={quote_value(str(ep.socket), 'socket')}")
    else:
        lines.append(f"host={ep.host}")
        lines.append(f"port={ep.port}")
        lines.append("protocol=TCP")
    for name, value in tls_options(tool, ep.tls):
        if value is None:
            lines.append(name)
        elif value.isidentifier():  # a keyword such as VERIFY_IDENTITY
            lines.append(f"{name}={value}")
        else:
            lines.append(f"{name}={quote_value(value, f'server {server.name}: {name}')}")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def client_credentials(
    server: ServerConfig, password: str | None = None, tool: str | None = None
) -> Iterator[tuple[Path, dict[str, str]]]:
    """Yield (option file path, child environment) for the client `tool` (its path: the TLS dialect
    depends on it). Both are gone/unused after the block."""
    tmpdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    os.chmod(tmpdir, 0o700)
    path = tmpdir / "client.cnf"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(option_file_text(server, password, tool_info(tool) if tool else None))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MYSQL_")}
        env["HOME"] = str(tmpdir)
        yield path, env
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def orphans() -> list[Path]:
    """Credentials directories whose creating process is gone."""
    out = []
    for d in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        pid_text = d.name[len(PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or d.is_symlink() or not d.is_dir():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            out.append(d)
        except PermissionError:
            pass
    return out


def remove_orphan(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
