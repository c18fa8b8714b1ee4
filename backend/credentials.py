"""Secrets: how credentials reach the client tools, and how they stay out of every child process.

- The client tools (`mariadb-dump`, `mariadb`) read the account from an option file passed as
  `--defaults-extra-file=/dev/fd/N`: an anonymous memory file (memfd, 0600) inherited by the child
  only. Nothing is written to disk. Where memfd is not available, the option file is a 0600 file in
  a 0700 runtime directory (`$XDG_RUNTIME_DIR/dumpdeck`, else `/tmp/dumpdeck-<uid>`), named after the
  process that wrote it; the next run and `dumpdeck clean` remove those of dead processes.
- The child also gets a private, empty HOME, so a stray ~/.my.cnf or ~/.mylogin.cnf of the operator
  cannot override the configured account.
- Secret environment variables (each `password_env` of the config, and MYSQL_PWD) are captured once
  at start (`capture_env_secrets`, kept by backend.secretenv): their values move into this process's
  memory and the variables leave `os.environ`, so no child process inherits them. A detached runner
  gets them through a pipe (`send_secrets` / `receive_secrets`), never through its environment or argv.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets as _random
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import secretenv
from .config import Config, ServerConfig
from .endpoint import resolve
from .errors import ConfigError
from .flavour import ToolInfo, tls_options, tool_info
from .secretenv import env_secret

_CRED_FILE = re.compile(r"^cred-(?P<pid>\d+)-[0-9a-f]+\.cnf$")


# --------------------------------------------------------------------------- secret environment variables


def secret_variables(config: Config) -> set[str]:
    """Names of the environment variables that hold secrets for this configuration."""
    names = set(secretenv.ALWAYS_SECRET)
    for server in config.servers.values():
        if server.password_env:
            names.add(server.password_env)
    email = config.notify.email
    if email is not None and email.password_env:
        names.add(email.password_env)
    account = config.restore_test.account
    if account is not None and account.password_env:
        names.add(account.password_env)
    return names


def capture_env_secrets(config: Config) -> None:
    """Move the config's secret variables from the environment into this process's memory."""
    secretenv.capture(secret_variables(config))


def scrubbed_env(config: Config | None = None, extra: Iterable[str | None] = ()) -> dict[str, str]:
    """This process's environment without any secret variable (MYSQL_*, captured ones, the config's)."""
    return secretenv.scrubbed_env([*extra, *(secret_variables(config) if config is not None else ())])


def send_secrets(config: Config) -> int | None:
    """A pipe's read end holding the config's secret variables (JSON), for a child to read with
    `receive_secrets`. None when there is nothing to send. The caller passes it in `pass_fds` and
    closes it after the spawn."""
    values = {n: v for n in secret_variables(config) if (v := env_secret(n)) is not None}
    if not values:
        return None
    data = json.dumps(values).encode()
    if len(data) > 60_000:
        raise ConfigError("secret environment variables too large to hand to the runner")
    r, w = os.pipe()
    try:
        os.write(w, data)  # fits in the pipe buffer: never blocks
    except BaseException:
        os.close(r)
        raise
    finally:
        os.close(w)
    return r


def receive_secrets(fd: int) -> None:
    """Read what `send_secrets` wrote (the runner, at start) and close the descriptor."""
    secretenv.receive(fd)


# --------------------------------------------------------------------------- the runtime directory


def runtime_dir() -> Path:
    """A 0700 directory for what must never outlive a process (fallback option files, the clients' HOME)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    path = (
        Path(base) / "dumpdeck"
        if base and os.path.isdir(base)
        else Path(tempfile.gettempdir()) / f"dumpdeck-{os.getuid()}"
    )
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise ConfigError(f"{path}: not a directory owned by this user; refusing to keep credentials there")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def _client_home() -> Path:
    home = runtime_dir() / "home"
    with contextlib.suppress(FileExistsError):
        os.mkdir(home, 0o700)
    return home


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


PREFIX = "dumpdeck-cred-"  # credentials directories of older dumpdeck versions, in the temp directory


def orphans(directory: Path | None = None) -> list[Path]:
    """Credentials left by processes that died before removing them (SIGKILL, power loss): option
    files in the runtime directory, and `dumpdeck-cred-<pid>-…` directories of older versions."""
    out = []
    directory = directory or runtime_dir()
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            m = _CRED_FILE.match(name)
            if m and not _alive(int(m.group("pid"))):
                out.append(directory / name)
    for d in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        pid_text = d.name[len(PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and not d.is_symlink() and d.is_dir() and not _alive(int(pid_text)):
            out.append(d)
    return out


def remove_orphan(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def remove_leftovers(directory: Path | None = None, *, dry_run: bool = False) -> list[Path]:
    """Remove (or, dry, list) what `orphans` finds; the runner does it at the start of every run."""
    found = orphans(directory)
    if not dry_run:
        for path in found:
            remove_orphan(path)
    return found


# --------------------------------------------------------------------------- the option file


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


@dataclass(frozen=True)
class ClientCredentials:
    """What a client process needs: `argument` goes first in its argv, `env` is its environment, and
    `pass_fds` must be given to subprocess.Popen (the memfd the argument names)."""

    argument: str
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    path: Path | None  # the fallback file on disk, None with memfd


def _memfd(text: bytes) -> int | None:
    create = getattr(os, "memfd_create", None)  # Linux only
    if create is None:
        return None
    try:
        fd: int = create("dumpdeck-client-cnf", os.MFD_CLOEXEC)
    except OSError:
        return None
    try:
        os.fchmod(fd, 0o600)  # the clients ignore a world-writable option file (a memfd starts 0777)
        view = memoryview(text)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def client_credentials(
    server: ServerConfig, password: str | None = None, tool: str | None = None
) -> Iterator[ClientCredentials]:
    """Yield the credentials for client processes started inside the block; nothing remains after it.
    `tool` is the client's path: the TLS options are written in its dialect."""
    text = option_file_text(server, password, tool_info(tool) if tool else None).encode()
    env = scrubbed_env(extra=(server.password_env,))
    env["HOME"] = str(_client_home())
    fd = _memfd(text)
    if fd is not None:
        try:
            yield ClientCredentials(f"--defaults-extra-file=/dev/fd/{fd}", env, (fd,), None)
        finally:
            os.close(fd)
        return
    directory = runtime_dir()
    remove_leftovers(directory)
    path = directory / f"cred-{os.getpid()}-{_random.token_hex(8)}.cnf"
    wfd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(wfd, "wb") as f:
            f.write(text)
        yield ClientCredentials(f"--defaults-extra-file={path}", env, (), path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --------------------------------------------------------------------------- are the secrets there?


def secret_problems(config: Config, servers: Iterable[str]) -> list[str]:
    """What keeps these servers' credentials from being read: a password_file or option_file that is
    missing or unreadable, a password_env variable that is not set. Each names the key and the file."""
    problems = []
    for name in dict.fromkeys(servers):
        server = config.servers.get(name)
        if server is None:
            continue
        for key, path in (("password_file", server.password_file), ("option_file", server.option_file)):
            if path is None:
                continue
            if not path.exists():
                problems.append(f"servers.{name}.{key}: {path} does not exist")
            elif not path.is_file():
                problems.append(f"servers.{name}.{key}: {path} is not a file")
            elif not os.access(path, os.R_OK):
                problems.append(f"servers.{name}.{key}: {path} is not readable by this user")
        if server.password_env and env_secret(server.password_env) is None:
            problems.append(f"servers.{name}.password_env: the environment variable {server.password_env} is not set")
    return problems


def check_secrets(config: Config, servers: Iterable[str], needed_by: str) -> None:
    """Raise ConfigError (exit 2) naming every missing secret of these servers."""
    problems = secret_problems(config, servers)
    if problems:
        raise ConfigError("; ".join(f"{p} (needed by {needed_by})" for p in problems))
