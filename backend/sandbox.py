"""A throwaway mariadbd in a directory of its own.

One implementation serves three uses: the test suite's scratch server, the
`dumpdeck demo` sandbox, and sandboxed restore-tests. It never touches the
system's server: `--no-defaults`, its own datadir, its own socket, no TCP port
unless one is asked for.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import MissingBinaryError, SandboxError

INSTALL_HINT = "apt-get install -y mariadb-server mariadb-client"
_TEMPLATE_CACHE: dict[str, Path] = {}


BINPATH_ENV = "DUMPDECK_MARIADB_PATH"


def find_binary(*names: str, path: str | None = None) -> str | None:
    """Search `path`, else $DUMPDECK_MARIADB_PATH alone, else $PATH plus the sbin directories."""
    if path is None:
        path = os.environ.get(BINPATH_ENV)
    search = path if path is not None else os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin:/sbin"
    for name in names:
        found = shutil.which(name, path=search)
        if found:
            return found
    return None


def require_binaries(path: str | None = None) -> tuple[str, str]:
    """(mariadbd, mariadb-install-db) or MissingBinaryError naming the install command."""
    server = find_binary("mariadbd", "mysqld", path=path)
    install = find_binary("mariadb-install-db", "mysql_install_db", path=path)
    missing = [n for n, b in (("mariadbd", server), ("mariadb-install-db", install)) if b is None]
    if missing:
        prefix = "" if os.geteuid() == 0 else "sudo "
        raise MissingBinaryError(
            f"{' and '.join(missing)} not found on PATH; install them with: {prefix}{INSTALL_HINT}"
        )
    return server, install  # type: ignore[return-value]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Sandbox:
    """A private mariadbd. Use `start()`/`stop()` or as a context manager."""

    directory: Path
    port: int | None = None
    pid: int | None = None
    extra_args: tuple[str, ...] = ()

    @property
    def datadir(self) -> Path:
        return self.directory / "data"

    @property
    def socket(self) -> Path:
        return self.directory / "mysqld.sock"

    @property
    def pid_file(self) -> Path:
        return self.directory / "mysqld.pid"

    @property
    def error_log(self) -> Path:
        return self.directory / "error.log"

    @property
    def info_file(self) -> Path:
        return self.directory / "sandbox.json"

    def _tmpdir(self) -> Path:
        # A private tmpdir: servers sharing /tmp collide on their internal temporary
        # tables (#sql-temptable-*), which fails install-db and can crash a server.
        tmp = self.directory / "tmp"
        tmp.mkdir(exist_ok=True)
        return tmp

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def create(
        cls,
        directory: Path | None = None,
        port: int | None = None,
        extra_args: tuple[str, ...] = (),
        binpath: str | None = None,
    ) -> Sandbox:
        """Initialise a datadir (from a cached template when possible) and return the sandbox."""
        mariadbd, install_db = require_binaries(binpath)
        if directory is None:
            directory = Path(tempfile.mkdtemp(prefix="dumpdeck-sandbox-"))
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sb = cls(directory=directory, port=port, extra_args=tuple(extra_args))
        if not (sb.datadir / "mysql").is_dir():
            template = _template(install_db)
            shutil.copytree(template, sb.datadir, symlinks=True)
        return sb

    def start(self, timeout: float = 60.0) -> Sandbox:
        mariadbd, _ = require_binaries()
        if self.alive():
            return self
        args = [
            mariadbd,
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--log-error={self.error_log}",
            f"--tmpdir={self._tmpdir()}",
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=16M",
            "--max-allowed-packet=256M",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            "--event-scheduler=OFF",
        ]
        if os.geteuid() == 0:
            args.append("--user=root")
        if self.port:
            args += [f"--port={self.port}", "--bind-address=127.0.0.1"]
        else:
            args.append("--skip-networking")
        args += list(self.extra_args)
        self.pid_file.unlink(missing_ok=True)
        out = open(self.directory / "stderr.log", "ab")
        proc = subprocess.Popen(
            args, stdout=out, stderr=out, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True
        )
        out.close()
        self.pid = proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SandboxError(
                    f"sandbox mariadbd in {self.directory} exited with code {proc.returncode} at start; "
                    f"see {self.error_log}: {self._log_tail()}"
                )
            if self.socket.exists() and self._ping():
                self._write_info()
                return self
            time.sleep(0.03)
        self.stop()
        raise SandboxError(
            f"sandbox mariadbd in {self.directory} did not answer within {timeout:.0f}s; see {self.error_log}"
        )

    def _ping(self) -> bool:
        import pymysql

        try:
            conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=2)
        except pymysql.MySQLError:
            return False
        conn.close()
        return True

    def _log_tail(self) -> str:
        try:
            lines = self.error_log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no error log)"
        errors = [ln for ln in lines if "ERROR" in ln] or lines
        return errors[-1] if errors else "(empty error log)"

    def _write_info(self) -> None:
        info = {
            "pid": self.pid,
            "socket": str(self.socket),
            "port": self.port,
            "datadir": str(self.datadir),
            "started": time.time(),
        }
        self.info_file.write_text(json.dumps(info))

    def alive(self) -> bool:
        pid = self.pid or self._pid_from_file()
        if not pid:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        self.pid = pid
        return _is_mariadbd(pid)

    def _pid_from_file(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM by the server's own pid (a clean shutdown), SIGKILL if it lingers."""
        pid = self.pid or self._pid_from_file()
        if not pid or not _is_mariadbd(pid):
            self.pid = None
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = None
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                break
            time.sleep(0.03)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _pid_alive(pid):
                time.sleep(0.03)
        self.pid = None

    def destroy(self) -> None:
        """Stop and remove every file of the sandbox."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL the server (tests: a server that dies mid-dump)."""
        pid = self.pid or self._pid_from_file()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            while _pid_alive(pid):
                time.sleep(0.02)
        self.pid = None

    def connect(self, database: str | None = None, **kwargs):
        import pymysql

        return pymysql.connect(
            unix_socket=str(self.socket),
            user="root",
            password="",
            database=database,
            charset="utf8mb4",
            autocommit=True,
            **kwargs,
        )

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.destroy()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _is_mariadbd(pid: int) -> bool:
    if not _pid_alive(pid):
        return False
    try:
        with open(f"/proc/{pid}/comm") as f:
            comm = f.read().strip()
    except OSError:
        return False
    return comm in ("mariadbd", "mysqld")


def _template(install_db: str) -> Path:
    """A pre-initialised datadir, made once per process (cp -a is ~0.15 s, install-db ~0.6 s)."""
    cached = _TEMPLATE_CACHE.get(install_db)
    if cached is not None and (cached / "mysql").is_dir():
        return cached
    base = Path(tempfile.mkdtemp(prefix="dumpdeck-template-"))
    datadir = base / "data"
    (base / "tmp").mkdir()  # private: concurrent install-db runs collide in a shared /tmp
    args = [
        install_db,
        "--no-defaults",
        f"--datadir={datadir}",
        f"--tmpdir={base / 'tmp'}",
        "--auth-root-authentication-method=normal",
        "--skip-test-db",
        "--skip-name-resolve",
        "--innodb-log-file-size=16M",
    ]
    if os.geteuid() == 0:
        args.append("--user=root")
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise SandboxError(f"mariadb-install-db failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    _TEMPLATE_CACHE[install_db] = datadir
    import atexit

    atexit.register(shutil.rmtree, base, True)
    return datadir
