"""`dumpdeck demo`: a sandbox MariaDB with sample databases, a config for it, and its lifecycle.

The demo lives in a directory of its own (default `$XDG_STATE_HOME/dumpdeck/demo`):

    demo.json              who started the server, who uses it, keep or not (JSON)
    demo.lock              flock held while the demo is being set up, finished or stopped
    dumpdeck-demo.yaml     the config the console opens (valid for backend.config.load_config)
    server/                the sandbox mariadbd: data/, run/mysqld.sock, error.log (backend.sandbox; kept in
                           /var/lib/dumpdeck-sandbox/ instead when its unprivileged user cannot reach here)
    backups/  state/       the demo's dumps, state database and log

Several `dumpdeck demo` processes may share one sandbox: each registers its pid in
`users`; the last one to leave stops the server and removes the directory — unless
the demo is kept (`keep`), in which case only `stop()` ends it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from dumpdeck.backend.config import Config, default_state_dir, load_config
from dumpdeck.backend.errors import DemoError, DumpdeckError, SandboxError, UsageError
from dumpdeck.backend.processes import process_alive
from dumpdeck.backend.sandbox import Sandbox, require_binaries

from . import sample_data

SERVER_NAME = "demo"
INFO_FILE = "demo.json"
LOCK_FILE = "demo.lock"
CONFIG_FILE = "dumpdeck-demo.yaml"
SERVER_DIR = "server"
BACKUP_DIR = "backups"
STATE_DIR = "state"
# What purge() removes; nothing else in the directory is touched.
OWNED_ENTRIES = (INFO_FILE, LOCK_FILE, CONFIG_FILE, SERVER_DIR, BACKUP_DIR, STATE_DIR)
SUN_PATH_MAX = 107  # bytes of a unix socket path (sockaddr_un.sun_path minus the NUL)
# A restore-test on `same` refuses a server that honours DATA DIRECTORY (symbolic links on), and
# one where only SUPER may create functions and triggers (binary log on, creators not trusted).
SERVER_ARGS = (
    "--log-bin=binlog",
    "--server-id=1",
    "--binlog-format=ROW",
    "--symbolic-links=0",
    "--log-bin-trust-function-creators=1",
)

Step = Callable[[str], None]
_log = logging.getLogger("dumpdeck.demo")


def default_demo_dir() -> Path:
    return default_state_dir() / "demo"


# --------------------------------------------------------------------------- demo.json


@dataclass
class DemoInfo:
    """The contents of demo.json."""

    directory: str
    socket: str
    port: int | None
    sandbox_pid: int | None
    owner_pid: int | None  # the `dumpdeck demo` that started the server
    users: list[int] = field(default_factory=list)  # `dumpdeck demo` processes using it now
    keep: bool = False
    config: str = ""
    started: float = 0.0
    data_version: int = sample_data.DATA_VERSION
    scale: float = 1.0
    loaded: list[str] = field(default_factory=list)  # sample databases completely loaded

    def live_users(self, exclude: int | None = None) -> list[int]:
        return [p for p in self.users if p != exclude and process_alive(p)]


def read_info(directory: Path) -> DemoInfo | None:
    try:
        data = json.loads((Path(directory) / INFO_FILE).read_text())
    except (OSError, ValueError):
        return None
    try:
        known = {k: data[k] for k in DemoInfo.__dataclass_fields__ if k in data}
        return DemoInfo(**known)
    except TypeError:
        return None


def _write_info(directory: Path, info: DemoInfo) -> None:
    path = Path(directory) / INFO_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(info), indent=2) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- results


@dataclass
class DemoSession:
    """A running demo this process uses; hand it to `finish()` when done."""

    directory: Path
    config_path: Path
    socket: Path
    port: int | None
    sandbox_pid: int | None
    reused: bool  # the server was already running
    shared_with: list[int]  # other live `dumpdeck demo` pids using the same server
    kept_by_other: bool  # the running demo was already marked --keep
    keep: bool
    loaded: list[str] = field(default_factory=list)  # databases loaded by this call
    rows_loaded: int = 0
    seeded: list[str] = field(default_factory=list)  # databases backed up by this call
    seed_warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # sandbox_start, data_load, seed_backups

    def config(self) -> Config:
        return load_config(self.config_path)


@dataclass(frozen=True)
class FinishResult:
    stopped: bool
    purged: bool
    kept: bool
    still_used_by: tuple[int, ...] = ()


@dataclass(frozen=True)
class StopResult:
    directory: Path
    was_running: bool
    purged: bool
    cut_off: tuple[int, ...] = ()  # live `dumpdeck demo` processes whose server went away


@dataclass(frozen=True)
class DemoStatus:
    directory: Path
    exists: bool
    running: bool
    info: DemoInfo | None


# --------------------------------------------------------------------------- helpers


def is_demo_dir(directory: Path) -> bool:
    return (Path(directory) / INFO_FILE).is_file() or (Path(directory) / SERVER_DIR / "data" / "mysql").is_dir()


def _check_directory(directory: Path) -> None:
    sock = _sandbox(directory).socket
    if len(os.fsencode(sock)) > SUN_PATH_MAX:
        raise UsageError(
            f"demo directory {directory} is too deep: its socket path {sock} would be "
            f"{len(os.fsencode(sock))} bytes, the limit is {SUN_PATH_MAX}; choose a shorter --dir"
        )
    if directory.exists():
        if not directory.is_dir():
            raise UsageError(f"demo directory {directory} exists and is not a directory")
        if any(directory.iterdir()) and not is_demo_dir(directory):
            raise UsageError(
                f"{directory} is not empty and is not a dumpdeck demo directory; "
                "choose another --dir (nothing was changed)"
            )


@contextlib.contextmanager
def _locked(directory: Path, timeout: float = 300.0, on_wait: Step | None = None) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told and on_wait is not None:
                    on_wait("another `dumpdeck demo` is setting up or stopping this demo; waiting for it")
                    told = True
                if time.monotonic() > deadline:
                    raise DemoError(
                        f"{directory / LOCK_FILE} is held by another dumpdeck demo "
                        f"for more than {timeout:.0f}s; giving up"
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)


def _sandbox(directory: Path, port: int | None = None) -> Sandbox:
    return Sandbox(directory=directory / SERVER_DIR, port=port, extra_args=SERVER_ARGS)


def _server_pid(sb: Sandbox) -> int | None:
    """The pid of the mariadbd serving `sb`'s datadir, per its pid file — None if that pid is
    gone or is now some other process (a stale pid file after a reboot must never make us
    signal a stranger)."""
    pid = sb._pid_from_file()
    if not pid or not process_alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return None
    return pid if os.fsencode(f"--datadir={sb.datadir}") in argv else None


def _stop_server(sb: Sandbox) -> bool:
    """Stop the server of `sb` if it runs; drop a stale pid file. True if one was running."""
    pid = _server_pid(sb)
    if pid is None:
        with contextlib.suppress(OSError):
            sb.pid_file.unlink()
        sb.pid = None
        return False
    sb.pid = pid
    sb.stop()
    return True


def _purge(directory: Path) -> None:
    """Remove what the demo put in `directory`, then the directory itself if that left it empty.

    The server's files live elsewhere when the sandbox user cannot reach `directory` (backend.sandbox):
    they go too."""
    home = _sandbox(directory).home
    if home != directory / SERVER_DIR:
        shutil.rmtree(home, ignore_errors=True)
    for name in OWNED_ENTRIES:
        p = directory / name
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    with contextlib.suppress(OSError):
        (directory / (INFO_FILE + ".tmp")).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def config_text(directory: Path, socket: Path) -> str:
    """The demo config: one server on the sandbox socket, everything else inside `directory`."""
    state = directory / STATE_DIR
    data = {
        "servers": {SERVER_NAME: {"socket": str(socket), "user": "root"}},
        "backup": {
            "dir": str(directory / BACKUP_DIR),
            "compression": "zstd",
            "level": 3,
            "timeout": "15m",
            "stall_timeout": "2m",
        },
        "state_dir": str(state),
        "log": {"file": str(state / "dumpdeck.log"), "max_size": "10MiB", "keep": 3},
        "jobs": {
            "nightly": {
                "server": SERVER_NAME,
                "databases": ["*"],
                "schedule": "0 2 * * *",
                "parallel": 2,
                "retries": 1,
                "verify": 2,
            }
        },
        "retention": {"keep_last": 7, "keep_days": 14, "daily": 7, "weekly": 4, "monthly": 6},
        "restore_test": {"target": "sandbox"},
    }
    header = (
        "# dumpdeck demo configuration, written by `dumpdeck demo`.\n"
        "# The server is a sandbox MariaDB with sample databases; root has no password and\n"
        f"# listens on a unix socket only. Open the console with:\n"
        f"#   dumpdeck --config {shlex.quote(str(directory / CONFIG_FILE))}\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def write_config(directory: Path, socket: Path) -> Path:
    path = directory / CONFIG_FILE
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(config_text(directory, socket))
    os.replace(tmp, path)
    load_config(path)  # the demo never hands out a config the loader would refuse
    return path


def _has_dumps(directory: Path) -> bool:
    backups = directory / BACKUP_DIR
    return backups.is_dir() and any(backups.rglob("*.manifest.json"))


# --------------------------------------------------------------------------- public API


def status(directory: Path | None = None) -> DemoStatus:
    directory = Path(directory) if directory is not None else default_demo_dir()
    info = read_info(directory)
    running = directory.is_dir() and _server_pid(_sandbox(directory)) is not None
    return DemoStatus(
        directory=directory, exists=directory.is_dir() and is_demo_dir(directory), running=running, info=info
    )


def seed_backups(
    config: Config, databases: list[str] | tuple[str, ...], parallel: int = 2, verify_level: int = 3
) -> tuple[list[str], list[str]]:
    """One dump of each database through backend.dump, verified to `verify_level` (recorded in
    its manifest, so the console shows the level), `parallel` at once → (done, warnings)."""
    import concurrent.futures

    from dumpdeck.backend.dump import dump_database
    from dumpdeck.backend.verify import verify_file

    server = config.server(SERVER_NAME)
    done: list[str] = []
    warnings: list[str] = []
    lock = threading.Lock()

    def one(db: str) -> None:
        try:
            result = dump_database(server, config.backup, db)
        except Exception as exc:  # a failed seed backup costs the demo some history, nothing more
            with lock:
                warnings.append(f"seed backup of {db!r} failed: {exc}")
            _log.warning("seed backup of %r failed: %s", db, exc)
            return
        _log.info("seed backup of %r: %s (%d bytes)", db, result.path, result.manifest.bytes_stored)
        with lock:
            done.append(db)
            warnings.extend(f"{db}: {w}" for w in result.warnings)
        if verify_level:
            problem: str | None
            try:
                report = verify_file(result.path, level=verify_level, record=True)
            except Exception as exc:
                problem = str(exc)
            else:
                problem = None if report.passed else report.summary
            if problem:
                with lock:
                    warnings.append(f"verifying the seed backup of {db!r} failed: {problem}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        list(pool.map(one, databases))
    order = {db: i for i, db in enumerate(databases)}
    done.sort(key=order.__getitem__)
    return done, warnings


def start(
    directory: Path | None = None,
    *,
    port: int | None = None,
    keep: bool = False,
    seed: bool = True,
    scale: float = 1.0,
    on_step: Step | None = None,
) -> DemoSession:
    """Start (or join) the demo in `directory`: sandbox up, sample data loaded, config written.

    Raises MissingBinaryError (exit 2) before touching the disk when mariadbd is not installed.
    On any failure or Ctrl-C during set-up, a server this call started is stopped again.
    """
    say = on_step or (lambda _msg: None)
    directory = Path(directory).expanduser().absolute() if directory is not None else default_demo_dir()
    require_binaries()
    _check_directory(directory)
    me = os.getpid()
    with _locked(directory, on_wait=say):
        info = read_info(directory)
        sb = _sandbox(directory, port)
        timings: dict[str, float] = {}
        running_pid = _server_pid(sb)
        reused = running_pid is not None and sb._ping()
        if running_pid is not None:
            sb.pid = running_pid
        if not reused:
            _stop_server(sb)  # a hung server of this datadir, or a stale pid file
        shared_with: list[int] = []
        kept_by_other = False
        if reused:
            shared_with = info.live_users(exclude=me) if info else []
            kept_by_other = bool(info and info.keep)
            sb.port = info.port if info else None
            if info is None:
                info = DemoInfo(
                    directory=str(directory), socket=str(sb.socket), port=sb.port, sandbox_pid=sb.pid, owner_pid=None
                )
            say(f"a demo sandbox is already running in {directory} (mariadbd pid {sb.pid}); sharing it")
        else:
            t0 = time.monotonic()
            say(f"starting a sandbox MariaDB in {directory}")
            previous = info
            try:
                sb = Sandbox.create(directory / SERVER_DIR, port=port, extra_args=SERVER_ARGS)
                sb.start()
            except BaseException as exc:
                _stop_server(sb)
                reason = _server_error(sb) if isinstance(exc, SandboxError) else None
                if previous is None:  # nothing of value was there before this call
                    _purge(directory)
                if reason is not None:
                    hint = (
                        "; choose another --port" if port and ("Bind on TCP/IP" in reason or "in use" in reason) else ""
                    )
                    raise DemoError(f"the sandbox mariadbd in {directory} did not start: {reason}{hint}") from exc
                raise
            timings["sandbox_start"] = time.monotonic() - t0
            info = DemoInfo(
                directory=str(directory),
                socket=str(sb.socket),
                port=port,
                sandbox_pid=sb.pid,
                owner_pid=me,
                users=[],
                keep=False,
                started=time.time(),
                loaded=list(previous.loaded) if previous else [],
                data_version=previous.data_version if previous else sample_data.DATA_VERSION,
                scale=previous.scale if previous else scale,
            )
        info.users = [*info.live_users(exclude=me), me]
        _write_info(directory, info)

        session = DemoSession(
            directory=directory,
            config_path=directory / CONFIG_FILE,
            socket=sb.socket,
            port=info.port,
            sandbox_pid=sb.pid,
            reused=reused,
            shared_with=shared_with,
            kept_by_other=kept_by_other,
            keep=keep or kept_by_other,
            timings=timings,
        )
        try:
            _ensure_data(sb, directory, info, scale, session, say)
            session.config_path = write_config(directory, sb.socket)
            info.config = str(session.config_path)
            cfg = load_config(session.config_path)
            _start_log(cfg, session, sb)
            if seed and not _has_dumps(directory):
                t0 = time.monotonic()
                say("taking and verifying one backup of each sample database")
                session.seeded, session.seed_warnings = seed_backups(cfg, list(sample_data.DATABASES))
                session.timings["seed_backups"] = time.monotonic() - t0
            if _server_pid(sb) is None:
                raise DemoError(f"the sandbox mariadbd in {sb.directory} stopped during set-up: {sb._log_tail()}")
            info.keep = info.keep or keep
            _write_info(directory, info)
        except BaseException as exc:
            died = None if _server_pid(sb) is not None else sb._log_tail()
            _leave(directory, me, purge=True)
            if isinstance(exc, (KeyboardInterrupt, SystemExit, DumpdeckError)):
                raise
            msg = f"setting up the demo in {directory} failed: {type(exc).__name__}: {exc}"
            if died is not None:
                msg += f"; the sandbox mariadbd had stopped, its error log said: {died}"
            raise DemoError(msg) from exc
    return session


def _server_error(sb: Sandbox) -> str | None:
    """The telling line of the server's error log ("[ERROR] Aborting" tells nothing)."""
    try:
        lines = sb.error_log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    errors = [ln.split("[ERROR]", 1)[1].strip() for ln in lines if "[ERROR]" in ln and "Aborting" not in ln]
    return "; ".join(errors[-2:]) if errors else None


def _start_log(cfg: Config, session: DemoSession, sb: Sandbox) -> None:
    """Say in the demo's own log what the demo did, so the console's log pane starts with it."""
    with contextlib.suppress(Exception):
        from dumpdeck.backend.logs import setup_logging

        setup_logging(cfg)
        if session.reused:
            _log.info("joined the running sandbox mariadbd pid %s on %s", sb.pid, sb.socket)
        else:
            _log.info(
                "sandbox mariadbd pid %s started on %s in %.1fs",
                sb.pid,
                sb.socket,
                session.timings.get("sandbox_start", 0.0),
            )
        if session.loaded:
            _log.info(
                "loaded %s (%s rows) in %.1fs",
                ", ".join(session.loaded),
                f"{session.rows_loaded:,}",
                session.timings.get("data_load", 0.0),
            )


def _ensure_data(sb: Sandbox, directory: Path, info: DemoInfo, scale: float, session: DemoSession, say: Step) -> None:
    if info.data_version != sample_data.DATA_VERSION or info.scale != scale:
        info.loaded = []
    info.data_version = sample_data.DATA_VERSION
    info.scale = scale
    with sb.connect() as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        present = {r[0] for r in cur.fetchall()}
    missing = [db for db in sample_data.DATABASES if db not in info.loaded or db not in present]
    if not missing:
        return
    rows = sum(db.rows for db in sample_data.catalog(scale) if db.name in missing)
    say(f"loading sample databases {', '.join(missing)} ({rows:,} rows)")
    t0 = time.monotonic()

    def loaded(name: str, _secs: float) -> None:
        info.loaded = sorted(set(info.loaded) | {name})
        _write_info(directory, info)

    report = sample_data.load(sb.connect, missing, scale=scale, parallel=2, on_loaded=loaded)
    session.loaded = list(missing)
    session.rows_loaded = report.rows
    session.timings["data_load"] = time.monotonic() - t0


def _leave(directory: Path, me: int, purge: bool) -> FinishResult:
    """Deregister `me`; the last user of a demo that is not kept stops (and purges) it. Lock held."""
    info = read_info(directory)
    others = info.live_users(exclude=me) if info else []
    if info is not None and (info.keep or others):
        info.users = others
        _write_info(directory, info)
        return FinishResult(stopped=False, purged=False, kept=info.keep, still_used_by=tuple(others))
    _stop_server(_sandbox(directory))
    if purge:
        _purge(directory)
    elif info is not None:
        info.users = []
        info.sandbox_pid = None
        _write_info(directory, info)
    return FinishResult(stopped=True, purged=purge, kept=False)


def finish(session: DemoSession, purge: bool = True) -> FinishResult:
    """This process is done with the demo: stop and remove it, unless it is kept or still in use."""
    directory = session.directory
    if not directory.is_dir():
        return FinishResult(stopped=False, purged=True, kept=False)
    with _locked(directory):
        return _leave(directory, os.getpid(), purge=purge)


def stop(directory: Path | None = None, *, purge: bool = False) -> StopResult:
    """Stop the demo in `directory` whoever started it; with `purge`, remove its files too."""
    directory = Path(directory).expanduser().absolute() if directory is not None else default_demo_dir()
    if not directory.is_dir() or not is_demo_dir(directory):
        return StopResult(directory=directory, was_running=False, purged=False)
    with _locked(directory):
        info = read_info(directory)
        cut_off = tuple(info.live_users(exclude=os.getpid())) if info else ()
        sb = _sandbox(directory)
        was_running = _stop_server(sb)
        if purge:
            _purge(directory)
        elif info is not None:
            info.users = []
            info.keep = False
            info.sandbox_pid = None
            _write_info(directory, info)
    return StopResult(directory=directory, was_running=was_running, purged=purge, cut_off=cut_off)
