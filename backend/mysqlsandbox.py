"""A throwaway MySQL server for restore-tests of MySQL dumps: `mysqld --initialize-insecure` in a private dir.

A MySQL 8 dump cannot be loaded into MariaDB (utf8mb4_0900_* collations and other MySQL-only syntax:
error 1273), so a MySQL dump is restore-tested in a MySQL sandbox when MySQL's server binary is
installed. It is found on $DUMPDECK_MYSQL_PATH alone when set, else on PATH and the sbin directories,
and only if its `--version` says MySQL (Debian's /usr/sbin/mysqld is MariaDB's). Like the MariaDB
sandbox it never touches the system's server: `--no-defaults`, its own datadir and socket, no TCP,
`local_infile` off, `secure_file_priv` an empty private directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import SandboxError

BINPATH_ENV = "DUMPDECK_MYSQL_PATH"


def _is_mysql(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "mysql" in out.lower() and "mariadb" not in out.lower()


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
    pid: int | None = None

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    def argv(self, *, initialize: bool = False) -> list[str]:
        files = self.directory / "files"  # secure_file_priv: an empty private directory
        base = [
            self.mysqld,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self.directory / 'tmp'}",
        ]
        if os.geteuid() == 0:
            base.append("--user=root")
        if initialize:
            return [*base, "--initialize-insecure"]
        return [
            *base,
            f"--socket={self.socket}",
            f"--pid-file={self.directory / 'mysqld.pid'}",
            "--skip-networking",
            "--mysqlx=OFF",
            f"--secure-file-priv={files}",
            "--local-infile=0",
            "--innodb-buffer-pool-size=128M",
            "--max-allowed-packet=256M",
            "--event-scheduler=OFF",
        ]

    @classmethod
    def create(cls, directory: Path | None = None, mysqld: str | None = None) -> MySQLSandbox:
        mysqld = mysqld or find_mysqld()
        if mysqld is None:
            raise SandboxError("MySQL's server binary (mysqld) is not installed")
        directory = Path(directory or tempfile.mkdtemp(prefix="dumpdeck-mysql-sandbox-"))
        sb = cls(directory, mysqld)
        for d in (directory, directory / "tmp", directory / "files"):
            d.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(sb.argv(initialize=True), capture_output=True, text=True, timeout=600, check=False)
        if proc.returncode != 0:
            raise SandboxError(f"mysqld --initialize-insecure failed in {directory}: {sb._log_tail()}")
        return sb

    def start(self, timeout: float = 120.0) -> MySQLSandbox:
        with open(self.directory / "stderr.log", "ab") as out:
            proc = subprocess.Popen(
                self.argv(), stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True
            )
        self.pid = proc.pid
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
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return False
        return True

    def stop(self, timeout: float = 60.0) -> None:
        if not self.pid:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
