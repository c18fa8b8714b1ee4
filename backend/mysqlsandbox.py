"""A throwaway MySQL server for restore-tests of MySQL dumps: `mysqld --initialize-insecure` in a private dir.

A MySQL 8 dump cannot be loaded into MariaDB (utf8mb4_0900_* collations and other MySQL-only syntax:
error 1273), so a MySQL dump is restore-tested in a MySQL sandbox when MySQL's server binary is
installed. It is found on $DUMPDECK_MYSQL_PATH alone when set, else on PATH and the sbin directories,
and only if its `--version` says MySQL (Debian's /usr/sbin/mysqld is MariaDB's).

It is confined like the MariaDB sandbox (backend.sandbox, whose OS account and private-directory
helpers it uses): it never touches the system's server (`--no-defaults`, its own datadir and
socket), never runs as root (root starts it as the `dumpdeck-sandbox` user), listens on no TCP port
(nor the X protocol), has `local_infile` off, `secure_file_priv` an empty private directory and an
empty plugin directory, and with `die_with_parent` the kernel kills it when its starter dies.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import SandboxError
from .lifeline import die_with_parent as _die_with_parent
from .sandbox import RunAs, _chown_tree, _private_dir, sandbox_account

BINPATH_ENV = "DUMPDECK_MYSQL_PATH"


def _version_text(binary: str) -> str:
    try:
        return subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _is_mysql(binary: str) -> bool:
    out = _version_text(binary).lower()
    return "mysql" in out and "mariadb" not in out


def _version(binary: str) -> tuple[int, int, int]:
    m = re.search(r"\bVer (\d+)\.(\d+)\.(\d+)", _version_text(binary))
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else (0, 0, 0)


def find_mysqld() -> str | None:
    """MySQL's server binary, or None (MariaDB's mysqld does not count)."""
    path = os.environ.get(BINPATH_ENV)
    search = path if path is not None else os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin:/sbin"
    found = shutil.which("mysqld", path=search)
    return found if found and _is_mysql(found) else None


@dataclass
class MySQLSandbox:
    directory: Path
    mysqld: str
    who: RunAs
    version: tuple[int, int, int] = (0, 0, 0)
    pid: int | None = None
    die_with_parent: bool = True

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "run" / "mysqld.sock"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def argv(self, *, initialize: bool = False) -> list[str]:
        base = [
            self.mysqld,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.directory / 'tmp'}",
        ]
        if initialize:
            return [*base, "--initialize-insecure"]
        return [
            *base,
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mysqld.pid'}",
            "--skip-networking",
            "--mysqlx=OFF",
            f"--secure-file-priv={self.directory / 'files'}",
            "--local-infile=0",
            f"--plugin-dir={self.directory / 'plugins'}",
            # DATA/INDEX DIRECTORY ignored: before 8.4 symbolic links must be switched off (8.4 removed them)
            *(["--skip-symbolic-links"] if self.version < (8, 4, 0) else []),
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--max-allowed-packet=256M",
            "--event-scheduler=OFF",
        ]

    def _popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
            cwd=self.directory,
            preexec_fn=_die_with_parent() if self.die_with_parent else None,  # noqa: PLW1509 (prctl only)
            **self.who.popen_kwargs(),
            **kwargs,
        )

    @classmethod
    def create(cls, directory: Path | None = None, mysqld: str | None = None) -> MySQLSandbox:
        mysqld = mysqld or find_mysqld()
        if mysqld is None:
            raise SandboxError("MySQL's server binary (mysqld) is not installed")
        who = sandbox_account()
        assert who is not None
        directory = Path(directory or tempfile.mkdtemp(prefix="dumpdeck-rt-mysql-"))
        sb = cls(directory, mysqld, who, _version(mysqld))
        for d in (directory, directory / "run", directory / "tmp", directory / "files", directory / "plugins"):
            _private_dir(d, who)
        with open(directory / "stderr.log", "ab") as out:
            proc = sb._popen(sb.argv(initialize=True), stdout=out, stderr=out)
            try:
                code = proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        if code != 0:
            raise SandboxError(f"mysqld --initialize-insecure failed in {directory}: {sb._log_tail()}")
        if who.switch:
            _chown_tree(sb.datadir, who)
        return sb

    def start(self, timeout: float = 120.0) -> MySQLSandbox:
        with open(self.directory / "stderr.log", "ab") as out:
            proc = self._popen(self.argv(), stdout=out, stderr=out)
        self.pid = proc.pid
        self._proc = proc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(f"sandbox mysqld exited with code {proc.returncode} at start: {self._log_tail()}")
            if self.socket.exists() and self._ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise SandboxError(f"sandbox mysqld in {self.directory} did not answer within {timeout:.0f}s")

    def _ping(self) -> bool:
        import pymysql

        try:
            pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=2).close()
        except pymysql.MySQLError:
            return False
        return True

    def _log_tail(self) -> str:
        try:
            lines = self.error_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no error log)"
        errors = [ln for ln in lines if "ERROR" in ln] or lines
        return errors[-1] if errors else "(empty error log)"

    def alive(self) -> bool:
        proc = getattr(self, "_proc", None)
        return proc is not None and proc.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
