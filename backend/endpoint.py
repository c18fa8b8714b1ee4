"""Where and how to reach a server: the configuration merged with its option file, each value with its source.

The inventory connection (PyMySQL) and the client tools (through the generated credentials file) both
use `resolve(server)`, so an option file that says `port=3399` moves both, never just one.

Precedence, per setting: a key set in dumpdeck's configuration, else the option file (`option_file`,
`login_path`, or ~/.my.cnf when the server names no password source), else dumpdeck's default.
Transport follows the client: an explicit `socket` wins; an explicit `host` means TCP; otherwise the
option file's host (TCP unless it is `localhost` with a socket) or its socket; `protocol=TCP` forces TCP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ServerConfig, TLSConfig
from .errors import ConfigError
from .optionfile import flag

CONFIG = "config"
DEFAULT = "default"


@dataclass(frozen=True)
class Endpoint:
    server: str
    host: str | None
    port: int
    socket: Path | None
    user: str
    tls: TLSConfig
    sources: dict[str, str] = field(default_factory=dict)  # setting → config | option file PATH | default

    @property
    def address(self) -> str:
        return str(self.socket) if self.socket is not None else f"{self.host}:{self.port}"


def resolve(server: ServerConfig, values: dict[str, str] | None = None, label: str | None = None) -> Endpoint:
    """The effective connection settings of `server` (reads its option file unless `values` are given)."""
    if values is None:
        values, label = server.option_values()
    label = label or "option file"
    given = server.given
    sources: dict[str, str] = {}

    def pick(name: str, config_value: Any, file_key: str, default: Any) -> Any:
        if name in given:
            sources[name] = CONFIG
            return config_value
        if file_key in values and values[file_key] != "":
            sources[name] = label
            return values[file_key]
        sources[name] = DEFAULT if config_value == default else CONFIG
        return config_value

    user = pick("user", server.user, "user", "root")
    tcp_forced = values.get("protocol", "").strip().lower() == "tcp"
    if "socket" in given:
        host, socket = None, server.socket
        sources["socket"] = CONFIG
    elif "host" in given:
        host, socket = server.host, None
        sources["host"] = CONFIG
    else:
        file_host = values.get("host") or None
        file_socket = values.get("socket") or None
        if file_socket and not tcp_forced and (file_host in (None, "localhost")):
            host, socket = None, Path(file_socket)
            sources["socket"] = label
        elif file_host:
            host, socket = file_host, None
            sources["host"] = label
        else:
            host, socket = server.host, server.socket
            sources["socket" if socket is not None else "host"] = DEFAULT
    port_text = pick("port", server.port, "port", 3306)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"server {server.name}: {label}: port={port_text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ConfigError(f"server {server.name}: {label}: port={port} is out of range")
    if socket is not None:
        sources.pop("port", None)
    else:
        sources.pop("socket", None)
    tls = _tls(server, values, label, sources)
    return Endpoint(server.name, host, port, socket, str(user), tls, sources)


def _tls(server: ServerConfig, values: dict[str, str], label: str, sources: dict[str, str]) -> TLSConfig:
    cfg = server.tls
    given = cfg.given
    paths: dict[str, Path | None] = {}
    for name, key in (("ca", "ssl-ca"), ("cert", "ssl-cert"), ("key", "ssl-key")):
        if name in given or not values.get(key):
            paths[name] = getattr(cfg, name)
            if name in given:
                sources[f"tls.{name}"] = CONFIG
        else:
            paths[name] = Path(values[key]).expanduser()
            sources[f"tls.{name}"] = label
    mode = values.get("ssl-mode", "").strip().upper()
    file_required = flag(values, "ssl")
    file_verify = flag(values, "ssl-verify-server-cert")
    if mode in ("REQUIRED", "VERIFY_CA", "VERIFY_IDENTITY"):
        file_required = True
        file_verify = mode != "REQUIRED"
    elif mode == "DISABLED":
        file_required = False
    if "required" in given:
        required = cfg.required
        sources["tls.required"] = CONFIG
    elif file_required is not None:
        required = file_required
        sources["tls.required"] = label
    else:
        required = cfg.required
    if "verify_server_cert" in given:
        verify = cfg.verify_server_cert
        sources["tls.verify_server_cert"] = CONFIG
    elif file_verify is not None:
        verify = file_verify
        sources["tls.verify_server_cert"] = label
    else:
        verify = cfg.verify_server_cert
    return TLSConfig(
        ca=paths["ca"], cert=paths["cert"], key=paths["key"], verify_server_cert=verify, required=required, given=given
    )


def with_account(
    server: ServerConfig, user: str, *, password_file: Path | None = None, password_env: str | None = None
) -> ServerConfig:
    """The same server (its resolved host/port/socket/TLS pinned), reached as another account: a
    restore-test's temporary account or restore_test.account. No option file or ~/.my.cnf can put the
    backup account's user or password back."""
    ep = resolve(server)
    where = {"socket"} if ep.socket is not None else {"host", "port"}
    tls = dataclasses.replace(ep.tls, given=frozenset({"ca", "cert", "key", "verify_server_cert", "required"}))
    return dataclasses.replace(
        server,
        host=ep.host,
        port=ep.port,
        socket=ep.socket,
        tls=tls,
        user=user,
        password_file=password_file,
        password_env=password_env,
        option_file=None,
        login_path=None,
        my_cnf=False,
        given=frozenset(where | {"user"}),
    )
