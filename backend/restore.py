"""Level 4: the restore-test. Load a dump into a scratch database and compare.

Flow: L1–L3 (skipped when an earlier L3+ verification by the current scope scan checked
this exact sha256), then on the target — the dump's own server (`same`), another
configured server, or a throwaway `mariadbd` (`sandbox`) — create `dumpdeck_rt_<hex>_<db>`,
load, compare every table, view, routine, trigger and event of the manifest, count rows
and CHECKSUM TABLE each table, and drop the scratch database in a `finally`.

Confinement (the boundary; the L3 scope scan is only an early warning):
- The load runs as a temporary account `dumpdeck_rt_<hex>`@<this host as the server sees
  it>, created for this test with a random password and ALL PRIVILEGES on its scratch
  database only: no global privilege (no FILE, SUPER, CREATE USER, …), nothing on any other
  database. The server refuses whatever a dump tries outside. The account is dropped in
  the `finally`, `clean --scratch` drops leftovers. Its password reaches the `mariadb`
  clients through the credentials file (backend.credentials), never argv or environment.
- If the configured account cannot create that account, `restore_test.account` is used,
  after SHOW GRANTS proved it holds nothing outside `dumpdeck\\_rt\\_%`; otherwise the
  restore-test does not run on that server (use the sandbox). It never loads as the
  backup account.
- A server that honours DATA/INDEX DIRECTORY (`have_symlink=YES`) could be made to write
  table files outside its datadir whatever the grants: it is refused as a target. So is a
  server with the binary log on and `log_bin_trust_function_creators` off when the dump has
  functions or triggers: only SUPER could create them there, and the load never has SUPER.
- The sandbox (backend.sandbox) runs as an unprivileged OS user, confined: no TCP,
  `secure_file_priv` an empty private directory, `local_infile=0`, no symbolic links, no
  plugins; the load there also runs as a temporary account. The sandbox and the loader
  clients die with the restore-test (PR_SET_PDEATHSIG); `dumpdeck clean` removes leftovers.
- The loader clients run with `--local-infile=0` and `--binary-mode` (backend.loader).
- DEFINER clauses are dropped and events created DISABLEd, so nothing of the scratch copy
  runs by itself or as anyone else. The binary log is turned off for the load where the
  configured account may (a definer-rights procedure in the scratch database turns it off
  for the temporary account's own sessions only), else it stays on and the check says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pymysql.cursors

from . import flavour, mysql, tempaccount
from . import manifest as manifest_mod
from .codecs import RawSource, check_decryptable
from .config import Config, ServerConfig
from .encryption import use_identity
from .endpoint import with_account
from .errors import (
    ConfigError,
    DecryptKeyError,
    DumpdeckError,
    LoadError,
    ManifestError,
    MappingError,
    ScopeError,
    StreamError,
)
from .loader import Loader, decoded_chunks
from .mysqlsandbox import MySQLSandbox
from .outcome import Outcome
from .rewrite import Rewriter, database_mapping
from .sandbox import RESTORE_TEST_PREFIX, Sandbox
from .sqlstats import SqlStats
from .verify import (
    CheckCallback,
    CheckResult,
    HashedSource,
    VerifyReport,
    _Ladder,
    record_report,
    scope_scan_current,
    verified_for,
    verify_file,
)

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "dumpdeck_rt_"
SCRATCH_GRANT = "`dumpdeck\\_rt\\_%`"  # the pattern every restore-test object lives under
BINLOG_OFF_PROC = "dumpdeck_rt_binlog_off"
_ACCOUNT_RE = re.compile(r"^dumpdeck_rt_[0-9a-f]{6}$")
# A check that could not run says nothing about the dump, which keeps the level it had.
COULD_NOT_RUN = Outcome.NOT_CHECKED


# --------------------------------------------------------------------------- scratch databases and accounts


def scratch_name(database: str, token: str | None = None) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", database) or "db"
    return (f"{SCRATCH_PREFIX}{token or secrets.token_hex(3)}_{safe}")[:64]


def _err(exc: BaseException) -> str:
    return str(exc.args[-1]) if getattr(exc, "args", None) else str(exc)


@dataclass
class Leftovers:
    """What `cleanup_scratch` found on one server."""

    databases: list[str] = dataclasses.field(default_factory=list)
    accounts: list[str] = dataclasses.field(default_factory=list)  # 'user'@'host'
    warnings: list[str] = dataclasses.field(default_factory=list)


def cleanup_scratch(config: Config, server_name: str | None, dry_run: bool = False) -> Leftovers:
    """Drop leftover `dumpdeck_rt_*` databases and temporary accounts on a server.

    Skips databases a session is using and accounts with a live session (a restore-test
    running now); never touches `restore_test.account`."""
    server = config.server(server_name)
    keep = config.restore_test.account.user if config.restore_test.account else None
    return _cleanup(server, dry_run=dry_run, keep_user=keep)


def _cleanup(server: ServerConfig, dry_run: bool = False, keep_user: str | None = None) -> Leftovers:
    conn = mysql.connect(server)
    out = Leftovers()
    like = SCRATCH_PREFIX.replace("_", "\\_") + "%"
    try:
        with conn.cursor() as cur:
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute("SET SESSION sql_log_bin=0")
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s", (like,))
            names = [r[0] for r in cur.fetchall()]
            busy: set[str] = set()
            busy_users: set[str] = set()
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute(
                    "SELECT DB, USER FROM information_schema.PROCESSLIST WHERE (DB LIKE %s OR USER LIKE %s) "
                    "AND ID <> CONNECTION_ID()",
                    (like, like),
                )
                for db, user in cur.fetchall():
                    if db:
                        busy.add(db)
                    if user:
                        busy_users.add(user)
            for name in names:
                if name in busy:
                    continue
                if not dry_run:
                    cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(name)}")
                out.databases.append(name)
            try:
                cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (like,))
                accounts = [(u, h) for u, h in cur.fetchall()]
            except pymysql.MySQLError as exc:
                out.warnings.append(f"cannot list temporary accounts (SELECT on mysql.user): {_err(exc)}")
                accounts = []
            for user, host in accounts:
                if not _ACCOUNT_RE.match(user) or user == keep_user or user in busy_users:
                    continue
                # a test still running has its scratch database in use: leave its account too
                if any(d.startswith(user + "_") for d in busy):
                    continue
                if not dry_run:
                    try:
                        cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
                    except pymysql.MySQLError as exc:
                        out.warnings.append(f"cannot drop account '{user}'@'{host}': {_err(exc)}")
                        continue
                out.accounts.append(f"'{user}'@'{host}'")
    finally:
        conn.close()
    return out


def grants_outside_scratch(lines: list[str]) -> list[str]:
    """The grants (SHOW GRANTS lines, without credentials) that reach outside `dumpdeck\\_rt\\_%`."""
    bad = []
    for line in lines:
        m = re.match(r"GRANT\s+(.+?)\s+ON\s+(.+?)\s+TO\s", line, re.I | re.S)
        if m is None:  # roles ("GRANT `r` TO …") and anything unexpected
            bad.append(line.split(" TO ")[0] if " TO " in line else line)
            continue
        privs, target = m.group(1).strip(), m.group(2).strip()
        shown = f"GRANT {privs} ON {target}"
        rest = line[m.end() :]
        grant_option = re.search(r"\bWITH\b.*\bGRANT\s+OPTION\b", rest, re.I | re.S) is not None
        kind = re.match(r"(PROCEDURE|FUNCTION|PACKAGE\s+BODY|PACKAGE)\s+", target, re.I)
        if kind:
            target = target[kind.end() :]
        if target == "*.*":
            if privs.upper() != "USAGE" or grant_option:
                bad.append(shown + (" WITH GRANT OPTION" if grant_option else ""))
            continue
        if privs.upper().startswith("PROXY") or grant_option:
            bad.append(shown + (" WITH GRANT OPTION" if grant_option else ""))
            continue
        db_m = re.match(r"(`(?:[^`]|``)+`|[^.`\s]+)\s*\.\s*(.+)$", target)
        if db_m is None:
            bad.append(shown)
            continue
        db = db_m.group(1)
        if db.startswith("`"):
            db = db[1:-1].replace("``", "`")
        if db_m.group(2).strip() == "*":  # a database-level grant: `_` and `%` are wildcards
            ok = db.startswith(SCRATCH_PREFIX.replace("_", "\\_"))
        else:  # table or routine level: the database name is literal
            ok = db.startswith(SCRATCH_PREFIX)
        if not ok:
            bad.append(shown)
    return bad


# --------------------------------------------------------------------------- the restore-test


@dataclass
class _Target:
    label: str
    server: ServerConfig  # the configured account (or the sandbox's root): sets up and cleans up
    sandbox: Sandbox | MySQLSandbox | None = None
    owned: bool = True  # the sandbox was started for this test


@dataclass
class _Loading:
    """Who loads the dump, and what must be undone afterwards."""

    server: ServerConfig
    password: str | None
    label: str  # 'user'@'host'
    init_sql: list[str]
    temporary: bool  # a temporary account (dropped afterwards) or restore_test.account
    user: str
    host: str


@dataclass
class _Made:
    """What this restore-test created and its `finally` drops."""

    database: bool = False
    account: tuple[str, str] | None = None  # (user, host) of the temporary account
    owner: ServerConfig | None = None  # who drops the database (the account that created it)


def _flavour_mismatch(tgt: _Target, dump_flav: str | None, dump_version: str | None) -> str | None:
    """Why the dump cannot load into this target's flavour (None when it can, or the target is unreachable:
    the load then says so itself). Sandboxes were chosen for the dump's flavour (flavour.choose_target)."""
    if dump_flav is None or tgt.sandbox is not None:
        return None
    try:
        conn = mysql.connect(tgt.server)
    except DumpdeckError:
        return None
    try:
        info = mysql.server_info(conn, tgt.server)
    finally:
        conn.close()
    return flavour.target_mismatch(info.flavour, info.version, dump_flav, dump_version)


def _open_target(
    config: Config,
    target: str,
    manifest: manifest_mod.Manifest | None,
    entry_server: str | None,
    sandbox: Sandbox | None,
) -> _Target:
    if target == "mysql-sandbox":
        msb = MySQLSandbox.create()
        try:
            msb.start()
        except BaseException:
            msb.destroy()
            raise
        return _Target("mysql-sandbox", ServerConfig(name="sandbox", host=None, socket=msb.socket, user="root"), msb)
    if target == "sandbox":
        if sandbox is not None:
            if not sandbox.confined:
                raise ConfigError("a restore-test sandbox must be confined (Sandbox.create(confined=True))")
            return _Target("sandbox", _sandbox_server(sandbox), sandbox, owned=False)
        sb = Sandbox.create(confined=True, die_with_parent=True, prefix=RESTORE_TEST_PREFIX)
        try:
            sb.start()
        except BaseException:
            sb.destroy()
            raise
        return _Target("sandbox", _sandbox_server(sb), sb)
    if target == "same":
        name = (manifest.server or {}).get("name") if manifest is not None else None
        name = name or entry_server
        if name is None or name not in config.servers:
            if len(config.servers) == 1 and name is None:
                name = next(iter(config.servers))
            else:
                raise ConfigError(
                    f"restore-test target 'same': the dump's server {name or '(unknown)'} is not configured; "
                    f"choose --target sandbox or one of: {', '.join(config.servers)}"
                )
        return _Target(f"same ({name})", config.servers[name])
    return _Target(target, config.server(target))


def _sandbox_server(sb: Sandbox) -> ServerConfig:
    return ServerConfig(name="sandbox", host=None, socket=sb.socket, user="root")


def _close_target(t: _Target) -> None:
    if t.sandbox is not None and t.owned:
        with contextlib.suppress(Exception):
            t.sandbox.destroy()


def restore_test(
    path: Path,
    config: Config,
    target: str | None = None,
    on_check: CheckCallback | None = None,
    record: bool = True,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
    sandbox: Sandbox | None = None,
) -> VerifyReport:
    """Run L1–L3 (unless already proven for this sha256), then load into a scratch database and compare.

    `sandbox`: a running confined sandbox to load into when the target is `sandbox` (several
    restore-tests in a row share one server; it is left running)."""
    path = Path(path)
    use_identity(config.encryption.identity_file)  # an encrypted dump is decrypted with this config's identity
    target = target or config.restore_test.target
    parallel = parallel or config.restore_test.parallel
    t0 = time.monotonic()
    report = VerifyReport(path=path, level_requested=4, level_reached=0, target=target)
    ladder = _Ladder(report, on_check)

    def forward(c: CheckResult) -> None:
        report.checks.append(c)
        if on_check is not None:
            with contextlib.suppress(Exception):
                on_check(c)

    # ---- L1 always (cheap); L2–L3 unless an earlier verification proved this exact file
    l1 = verify_file(path, level=1, record=False)
    for c in l1.checks:
        forward(c)
    report.sha256 = l1.sha256
    if l1.failed:
        return _finish(report, ladder, t0, record, {})
    try:
        check_decryptable(path)  # encrypted: no identity here, or not one of its recipients
    except DecryptKeyError as exc:
        ladder.add("restore", Outcome.NOT_CHECKED, f"{exc}; nothing was loaded", 4)
        return _finish(report, ladder, t0, False, None)
    except StreamError as exc:
        ladder.add("stream decodes", False, str(exc), 2)
        return _finish(report, ladder, t0, record, {})
    manifest = None
    with contextlib.suppress(ManifestError):
        if manifest_mod.manifest_path(path).exists():
            manifest = manifest_mod.load(path)
    stats: SqlStats | None = None
    prior = verified_for(manifest, l1.sha256 or "", 3) if manifest is not None else None
    mapped: str | None = None
    if (
        prior is not None
        and manifest is not None
        and scope_scan_current(prior)
        and all(t.exact_rows is not None for t in manifest.tables)
    ):
        ladder.add("levels 2–3", True, f"already verified at level {prior.level} on {prior.at} for this sha256", 3)
    else:
        full = verify_file(path, level=3, record=record, cancel=cancel)
        for c in full.checks:
            if c.level >= 2:
                forward(c)
        stats = full.stats
        mapped = _legacy_mapping(full, ladder) if manifest is None else None
        if not full.passed and mapped is None:
            if full.failed:
                ladder.failed_level = min(c.level for c in full.failed_checks)
                ladder.add("restore", False, "refused: the dump did not pass levels 1–3, nothing was loaded", 4)
            else:
                ladder.add("restore", Outcome.NOT_CHECKED, "levels 1–3 could not be checked, nothing was loaded", 4)
            return _finish(report, ladder, t0, False, None)
        with contextlib.suppress(ManifestError):
            if manifest is not None:
                manifest = manifest_mod.load(path)
    entry_server = None
    with contextlib.suppress(ValueError):
        rel = path.resolve().relative_to(Path(config.backup.dir).resolve()).parts
        entry_server = rel[0] if len(rel) == 3 else None
    database = manifest.database if manifest is not None else _guess_db(path)
    extra_map = {"source": mapped or database, "mapped": mapped}

    # ---- L4. A target that cannot be opened, reached or confined, or a cancelled load, is "not checked":
    # it says nothing about the dump, which keeps the level it had.
    # The dump's flavour picks the target: a MySQL 8 dump is never loaded into MariaDB (backend.flavour).
    dump_flav, dump_version = flavour.dump_flavour_of(path, manifest)
    choice = flavour.choose_target(config, target, dump_flav, dump_version)
    if choice.target is None:
        ladder.add("target", Outcome.NOT_CHECKED, choice.reason or "no target for this dump", 4)
        return _finish(report, ladder, t0, record, {})
    target = choice.target
    try:
        tgt = _open_target(config, target, manifest, entry_server, sandbox)
    except (DumpdeckError, OSError) as exc:
        ladder.add("target", COULD_NOT_RUN, f"could not open the target {target}: {exc}", 4)
        return _finish(report, ladder, t0, record, {})
    report.target = tgt.label
    mismatch = _flavour_mismatch(tgt, dump_flav, dump_version)
    if mismatch:
        _close_target(tgt)
        ladder.add("target", Outcome.NOT_CHECKED, mismatch, 4)
        return _finish(report, ladder, t0, record, {})
    token = secrets.token_hex(3)
    scratch = scratch_name(database, token)
    extra: dict[str, Any] = dict(extra_map)
    loading: _Loading | None = None
    made = _Made(owner=tgt.server)
    try:
        source = manifest if manifest is not None else stats
        need_super = len(source.functions) + len(source.triggers) if source is not None else 0
        loading = _confine(tgt, config, scratch, token=token, need_super=need_super, ladder=ladder, made=made)
        if loading is not None:
            _restore_into(path, tgt, loading, scratch, manifest, stats, ladder, parallel, cancel, extra)
    finally:
        _teardown(tgt, scratch, made, ladder)
        _close_target(tgt)
        if tgt.sandbox is not None and tgt.owned:
            ladder.add(
                "sandbox stopped",
                True if not tgt.sandbox.alive() else COULD_NOT_RUN,
                f"{tgt.label} stopped and removed",
                4,
            )
    return _finish(report, ladder, t0, record, extra)


def restore_test_stream(
    raw: RawSource,
    manifest: manifest_mod.Manifest,
    config: Config,
    *,
    label: str,
    server: str | None = None,
    target: str | None = None,
    on_check: CheckCallback | None = None,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
    finish: Callable[[], None] | None = None,
) -> VerifyReport:
    """A restore-test of a dump read from a stream (a remote copy through `rclone cat`): nothing lands on
    local disk. One pass: the stored bytes are hashed on their way to the decoder and the confined load;
    the load is compared with `manifest`, then the size and sha256 of what came in with it (level 1,
    checked last: a copy that differs fails whatever the load said). `finish` is called once the stream
    is read (it raises when the stream did not end well: that is not checked, not failed). Nothing is
    recorded in a manifest (there is none on this host); the caller records the result."""
    target = target or config.restore_test.target
    parallel = parallel or config.restore_test.parallel
    t0 = time.monotonic()
    path = Path(label)
    report = VerifyReport(path=path, level_requested=4, level_reached=0, target=target)
    ladder = _Ladder(report, on_check)
    counted = HashedSource(raw)
    dump_flav, dump_version = flavour.dump_flavour(manifest)
    choice = flavour.choose_target(config, target, dump_flav, dump_version)
    if choice.target is None:
        ladder.add("target", Outcome.NOT_CHECKED, choice.reason or "no target for this dump", 4)
        return _finish(report, ladder, t0, False, None)
    target = choice.target
    try:
        tgt = _open_target(config, target, manifest, server, None)
    except (DumpdeckError, OSError) as exc:
        ladder.add("target", COULD_NOT_RUN, f"could not open the target {target}: {exc}", 4)
        return _finish(report, ladder, t0, False, None)
    report.target = tgt.label
    mismatch = _flavour_mismatch(tgt, dump_flav, dump_version)
    if mismatch:
        _close_target(tgt)
        ladder.add("target", Outcome.NOT_CHECKED, mismatch, 4)
        return _finish(report, ladder, t0, False, None)
    token = secrets.token_hex(3)
    scratch = scratch_name(manifest.database, token)
    extra: dict[str, Any] = {"source": manifest.database, "mapped": None}
    made = _Made(owner=tgt.server)
    try:
        need_super = len(manifest.functions) + len(manifest.triggers)
        loading = _confine(tgt, config, scratch, token=token, need_super=need_super, ladder=ladder, made=made)
        if loading is not None:
            _restore_into(path, tgt, loading, scratch, manifest, None, ladder, parallel, cancel, extra, counted)
    finally:
        _teardown(tgt, scratch, made, ladder)
        _close_target(tgt)
    if finish is not None:
        try:
            finish()
        except DumpdeckError as exc:  # the source broke: what the load saw says nothing about the dump
            for c in report.checks:
                if c.outcome is Outcome.FAILED:
                    c.outcome = Outcome.NOT_CHECKED
            ladder.add("stream", COULD_NOT_RUN, f"the stream did not end well: {exc}", 1)
            return _finish(report, ladder, t0, False, None)
    digest = counted.sha.hexdigest()
    report.sha256 = digest
    if any(c.outcome is not Outcome.PASSED for c in report.checks):
        pass  # the load did not run through: the bytes were not all read, their sha256 proves nothing
    elif counted.size == manifest.bytes_stored and digest == manifest.sha256:
        ladder.add("sha256", True, f"{counted.size:,} bytes streamed, sha256 {digest[:16]}… matches the manifest", 1)
    elif counted.size:
        ladder.add(
            "sha256", False,
            f"{counted.size:,} bytes streamed (manifest: {manifest.bytes_stored:,}), sha256 {digest[:16]}… "
            f"(manifest: {manifest.sha256[:16]}…)",
            1,
        )  # fmt: skip
    return _finish(report, ladder, t0, False, None)


def _legacy_mapping(full: VerifyReport, ladder: _Ladder) -> str | None:
    """A legacy `--databases` dump (no manifest: dumpdeck's own dumps never name a database) of one
    database whose only L3 problem is its CREATE DATABASE/USE of that name: the name it maps to the
    scratch database (the check is recorded), else None."""
    bad = full.failed_checks
    if full.stats is None or not bad or any(c.name != "scope" for c in bad):
        return None
    try:
        mapped = database_mapping(full.stats)
    except MappingError as exc:
        ladder.add("database mapping", False, str(exc), 3)
        return None
    if mapped is not None:
        for c in bad:  # the scope problems were that one name: mapped, so nothing reaches outside
            c.outcome = Outcome.PASSED
            c.evidence = f"mapped to the scratch database: {c.evidence}"
        ladder.add(
            "database mapping",
            True,
            f"a --databases dump of `{mapped}`: its CREATE DATABASE/USE load into the scratch database instead",
            3,
        )
    return mapped


def _guess_db(path: Path) -> str:
    from .catalog import scan

    name = path.name
    for e in scan(path.parent).entries:
        if e.path.name == name:
            return e.database
    return name.split(".sql")[0]


def _finish(
    report: VerifyReport, ladder: _Ladder, t0: float, record: bool, extra: dict[str, Any] | None
) -> VerifyReport:
    ladder.finish()
    report.duration = time.monotonic() - t0
    if record and extra is not None:
        record_report(report, extra=extra.get("manifest"))
    return report


def _server_var(cur: pymysql.cursors.Cursor, name: str) -> str | None:
    try:
        cur.execute(f"SELECT @@{name}")
    except pymysql.MySQLError:
        return None
    row = cur.fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _confine(
    tgt: _Target, config: Config, scratch: str, *, token: str, need_super: int, ladder: _Ladder, made: _Made
) -> _Loading | None:
    """Create the scratch database and the account that loads it; None (with a check saying why) if it cannot.

    `need_super`: the dump's functions and triggers (they need SUPER where the binary log is on,
    unless the server trusts function creators)."""
    try:
        conn = mysql.connect(tgt.server)
    except DumpdeckError as exc:
        ladder.add("target", COULD_NOT_RUN, str(exc), 4)
        return None
    q = mysql.quote_ident(scratch)
    try:
        with conn.cursor() as cur:
            log_bin = (_server_var(cur, "log_bin") or "0") in ("1", "ON")
            trusted = (_server_var(cur, "log_bin_trust_function_creators") or "0") in ("1", "ON")
            if log_bin and not trusted and need_super:
                ladder.add(
                    "confinement",
                    COULD_NOT_RUN,
                    f"{tgt.label} has the binary log on and log_bin_trust_function_creators off: only an account "
                    f"with SUPER may create the dump's {need_super} function(s) and trigger(s) there, and a "
                    f"restore-test never loads with SUPER; set log_bin_trust_function_creators=1 on that server, "
                    f"or use --target sandbox",
                    4,
                )
                return None
            if (_server_var(cur, "have_symlink") or "").upper() == "YES":
                ladder.add(
                    "confinement",
                    COULD_NOT_RUN,
                    f"{tgt.label} honours DATA DIRECTORY and INDEX DIRECTORY (have_symlink=YES): a dump could "
                    f"place table files anywhere its server may write, whatever the grants; set symbolic-links=0 "
                    f"in that server's configuration, or use --target sandbox",
                    4,
                )
                return None
            binlog_off = False
            with contextlib.suppress(pymysql.MySQLError):
                cur.execute("SET SESSION sql_log_bin=0")
                binlog_off = True
            host = tempaccount.own_host(cur)
            user = SCRATCH_PREFIX + token
            password = tempaccount.new_password()
            try:
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
            except pymysql.MySQLError as exc:
                create_error = _err(exc)
            else:
                made.account = (user, host)
                try:
                    cur.execute(f"CREATE DATABASE {q} CHARACTER SET utf8mb4")
                    made.database = True
                    cur.execute(f"GRANT ALL PRIVILEGES ON {tempaccount.grant_db(scratch)}.* TO %s@%s", (user, host))
                    init_sql: list[str] = []
                    if log_bin and binlog_off:
                        # runs with the definer's right to turn the binary log off, for the caller's session only
                        cur.execute(
                            f"CREATE PROCEDURE {q}.{BINLOG_OFF_PROC}() SQL SECURITY DEFINER SET SESSION sql_log_bin=0"
                        )
                        init_sql.append(f"CALL {q}.{BINLOG_OFF_PROC}()")
                except pymysql.MySQLError as exc:
                    ladder.add(
                        "confinement",
                        COULD_NOT_RUN,
                        f"cannot set up the temporary account '{user}'@'{host}' and `{scratch}` on {tgt.label}: "
                        f"{_err(exc)} (the account needs CREATE USER and ALL PRIVILEGES ON {SCRATCH_GRANT}.* "
                        f"WITH GRANT OPTION)",
                        4,
                    )
                    return None
                binlog = (
                    "binary log off for the load"
                    if init_sql or not log_bin
                    else "warning: the binary log stays on for the load (the configured account may not turn "
                    "it off); replicas receive the scratch database and its drop"
                )
                ladder.add(
                    "confinement",
                    True,
                    f"`{scratch}` created on {tgt.label}; loading as the temporary account '{user}'@'{host}' "
                    f"with ALL PRIVILEGES on `{scratch}` only and no global privilege; {binlog}",
                    4,
                )
                server = with_account(tgt.server, user)
                return _Loading(server, password, f"'{user}'@'{host}'", init_sql, True, user, host)
    finally:
        conn.close()
    return _fallback_account(tgt, config, scratch, create_error=create_error, ladder=ladder, made=made)


def _fallback_account(
    tgt: _Target, config: Config, scratch: str, *, create_error: str, ladder: _Ladder, made: _Made
) -> _Loading | None:
    account = config.restore_test.account
    if account is None:
        ladder.add(
            "confinement",
            COULD_NOT_RUN,
            f"refused: the account of {tgt.label} cannot create a temporary account for the load "
            f"({create_error}), and no restore_test.account is configured; a dump is never loaded as the backup "
            f"account. Use --target sandbox, or grant CREATE USER and ALL PRIVILEGES ON {SCRATCH_GRANT}.* "
            f"WITH GRANT OPTION, or configure restore_test.account",
            4,
        )
        return None
    server = with_account(
        tgt.server, account.user, password_file=account.password_file, password_env=account.password_env
    )
    try:
        conn = mysql.connect(server)
    except DumpdeckError as exc:
        ladder.add("confinement", COULD_NOT_RUN, f"restore_test.account: {exc}", 4)
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            lines = [str(r[0]) for r in cur.fetchall()]
            bad = grants_outside_scratch(lines)
            if bad:
                ladder.add(
                    "confinement",
                    COULD_NOT_RUN,
                    f"refused: restore_test.account {account.user} holds grants outside {SCRATCH_GRANT}: "
                    + "; ".join(bad)
                    + f" — revoke them (it needs only ALL PRIVILEGES ON {SCRATCH_GRANT}.*), or use --target sandbox",
                    4,
                )
                return None
            cur.execute("SELECT CURRENT_USER()")
            user, _, host = str(mysql.one_row(cur)[0]).rpartition("@")
            try:
                cur.execute(f"CREATE DATABASE {mysql.quote_ident(scratch)} CHARACTER SET utf8mb4")
            except pymysql.MySQLError as exc:
                ladder.add(
                    "confinement",
                    COULD_NOT_RUN,
                    f"restore_test.account {account.user} cannot create `{scratch}` on {tgt.label}: {_err(exc)}",
                    4,
                )
                return None
            made.database = True
            made.owner = server
    finally:
        conn.close()
    ladder.add(
        "confinement",
        True,
        f"`{scratch}` created on {tgt.label}; loading as restore_test.account '{user}'@'{host}', whose grants cover "
        f"only {SCRATCH_GRANT} (checked now); warning: the binary log stays on for the load",
        4,
    )
    return _Loading(server, None, f"'{user}'@'{host}'", [], False, user, host)


def _teardown(tgt: _Target, scratch: str, made: _Made, ladder: _Ladder) -> None:
    """Drop the scratch database and the temporary account (its sessions killed first)."""
    if not made.database and made.account is None:
        return
    errors = []
    owners = [made.owner or tgt.server]
    if made.account is not None and owners[0] is not tgt.server:
        owners.append(tgt.server)
    for owner in dict.fromkeys(owners):
        try:
            conn = mysql.connect(owner)
        except DumpdeckError as exc:
            errors.append(str(exc))
            continue
        try:
            with conn.cursor() as cur:
                with contextlib.suppress(pymysql.MySQLError):
                    cur.execute("SET SESSION sql_log_bin=0")
                if owner is tgt.server and made.account is not None:
                    tempaccount.kill_sessions(cur, made.account[0])
                if made.database and owner is (made.owner or tgt.server):
                    try:
                        cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(scratch)}")
                    except pymysql.MySQLError as exc:
                        errors.append(f"DROP DATABASE `{scratch}`: {_err(exc)}")
                if made.account is not None and owner is tgt.server:
                    try:
                        cur.execute("DROP USER IF EXISTS %s@%s", made.account)
                    except pymysql.MySQLError as exc:
                        errors.append(f"DROP USER '{made.account[0]}'@'{made.account[1]}': {_err(exc)}")
        finally:
            conn.close()
    what = " and the temporary account" if made.account is not None else ""
    if errors:
        ladder.add(
            "scratch dropped",
            COULD_NOT_RUN,
            f"could not drop `{scratch}`{what} on {tgt.label}: {'; '.join(errors)}; run `dumpdeck clean --scratch`",
            4,
        )
    else:
        ladder.add("scratch dropped", True, f"`{scratch}`{what} dropped on {tgt.label}", 4)


def _restore_into(
    path: Path,
    tgt: _Target,
    loading: _Loading,
    scratch: str,
    manifest: manifest_mod.Manifest | None,
    stats: SqlStats | None,
    ladder: _Ladder,
    parallel: int,
    cancel: threading.Event | None,
    extra: dict[str, Any],
    raw: RawSource | None = None,
) -> None:
    loader = Loader(
        loading.server,
        scratch,
        parallel=parallel,
        init_sql=loading.init_sql,
        neutralise=True,
        cancel=cancel,
        password=loading.password,
        transform=Rewriter(extra.pop("source", None), mapped_db=extra.pop("mapped", None)),
    )
    try:
        res = loader.load(decoded_chunks(path, manifest.codec if manifest is not None else None, raw))
    except ScopeError as exc:
        ladder.add("scope", False, str(exc), 4)
        return
    except DecryptKeyError as exc:  # no identity, or not one of its recipients: proves nothing against it
        ladder.add("load", Outcome.NOT_CHECKED, str(exc), 4)
        return
    except (LoadError, StreamError) as exc:
        unchecked = (cancel is not None and cancel.is_set()) or _environmental(str(exc))
        ladder.add("load", Outcome.NOT_CHECKED if unchecked else Outcome.FAILED, str(exc), 4)
        return
    rate = res.bytes / res.seconds / 1e6 if res.seconds > 0 else 0
    ladder.add(
        "load",
        True,
        f"{res.bytes:,} bytes of SQL in {res.seconds:.1f}s ({rate:.1f} MB/s), {res.mode}, "
        f"{res.connections} connection(s), {res.jobs} job(s) as {loading.label}"
        + ("; " + "; ".join(res.warnings) if res.warnings else ""),
        4,
        seconds=round(res.seconds, 3),
    )
    try:
        _compare(loading.server, loading.password, scratch, manifest, stats, ladder, extra)
    except (pymysql.MySQLError, DumpdeckError) as exc:
        ladder.add("compare", COULD_NOT_RUN, f"cannot read the scratch copy as {loading.label}: {_err(exc)}", 4)


# Client/server errors that say the target, not the dump, is at fault: connection lost or refused,
# disk or table full, out of memory. A load that ends on one of these is "not checked".
_ENVIRONMENTAL = re.compile(
    r"ERROR (?:2002|2003|2005|2006|2013|1021|1037|1041|1114|1040|1203)\b|No space left|Out of memory|cancelled",
    re.IGNORECASE,
)


def _environmental(message: str) -> bool:
    return bool(_ENVIRONMENTAL.search(message))


def _compare(
    server: ServerConfig,
    password: str | None,
    scratch: str,
    manifest: manifest_mod.Manifest | None,
    stats: SqlStats | None,
    ladder: _Ladder,
    extra: dict[str, Any],
) -> None:
    conn = mysql.connect(server, scratch, read_timeout=3600, password=password)
    try:
        with conn.cursor() as cur:
            objects = mysql.object_names(conn, scratch)
            objects["procedures"] = [p for p in objects["procedures"] if p != BINLOG_OFF_PROC]
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                "AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
                (scratch,),
            )
            tables = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_TYPE='SEQUENCE'",
                (scratch,),
            )
            sequences = {r[0] for r in cur.fetchall()}
            if manifest is not None:
                # an older manifest lists a sequence as a table
                want_tables = [t.name for t in manifest.tables if t.name not in sequences]
                want = {
                    k: list(getattr(manifest, k)) for k in ("views", "procedures", "functions", "triggers", "events")
                }
            elif stats is not None:
                want_tables = list(stats.tables)
                want = {k: list(getattr(stats, k)) for k in ("views", "procedures", "functions", "triggers", "events")}
            else:
                want_tables, want = tables, objects
            missing = [t for t in want_tables if t not in set(tables)]
            if missing:
                ladder.add(
                    "tables present",
                    False,
                    f"{len(missing)} of {len(want_tables)} table(s) missing after "
                    f"the load: {', '.join('`' + m + '`' for m in missing[:5])}",
                    4,
                )
            else:
                ladder.add("tables present", True, f"all {len(want_tables)} tables", 4)
            missing_objs = []
            for kind, names in want.items():
                have = set(objects.get(kind, []))
                missing_objs += [f"{kind[:-1]} `{n}`" for n in names if n not in have]
            total = sum(len(v) for v in want.values())
            if missing_objs:
                ladder.add(
                    "objects present",
                    False,
                    f"{len(missing_objs)} of {total} missing: " + ", ".join(missing_objs[:5]),
                    4,
                )
            else:
                ladder.add("objects present", True, ", ".join(f"{len(v)} {k}" for k, v in want.items()), 4)
            want_seqs = list(manifest.sequences) if manifest is not None else list(stats.sequences) if stats else []
            if want_seqs or sequences:
                miss = [n for n in want_seqs if n not in sequences]
                ladder.add(
                    "sequences present",
                    not miss,
                    f"{len(miss)} of {len(want_seqs)} missing: {', '.join(miss[:5])}"
                    if miss
                    else f"{len(sequences)} sequence(s)",
                    4,
                )

            figures: dict[str, dict[str, Any]] = {}
            for t in tables:
                qt = mysql.quote_ident(t)
                cur.execute(f"SELECT COUNT(*) FROM {qt}")
                rows = int(mysql.one_row(cur)[0])
                cur.execute(f"CHECKSUM TABLE {qt}")
                row = cur.fetchone()
                figures[t] = {"rows": rows, "checksum": int(row[1]) if row and row[1] is not None else None}
            expected: dict[str, int] = {}
            if manifest is not None:
                expected = {t.name: t.exact_rows for t in manifest.tables if t.exact_rows is not None}
            elif stats is not None:
                expected = dict(stats.tables)
            wrong = [
                f"`{t}` {figures[t]['rows']:,} rows, dump has {n:,}"
                for t, n in expected.items()
                if t in figures and figures[t]["rows"] != n
            ]
            total_rows = sum(f["rows"] for f in figures.values())
            if wrong:
                ladder.add(
                    "row counts", False, f"{len(wrong)} table(s) differ: " + "; ".join(wrong[:3]), 4, tables=figures
                )
            else:
                basis = (
                    f"equal to the dump's exact counts for {len(expected)} tables"
                    if expected
                    else "no exact counts to compare"
                )
                ladder.add(
                    "row counts", True, f"{total_rows:,} rows in {len(figures)} tables, {basis}", 4, tables=figures
                )
            ladder.add(
                "checksums",
                True,
                f"CHECKSUM TABLE recorded for {len(figures)} tables",
                4,
                checksums={t: f["checksum"] for t, f in figures.items()},
            )
            if manifest is not None:
                updated = []
                for t in manifest.tables:
                    if t.exact_rows is None and t.name in figures and not wrong:
                        import dataclasses

                        t = dataclasses.replace(t, exact_rows=figures[t.name]["rows"])
                    updated.append(t)
                extra["manifest"] = {"tables": updated}
            else:
                extra["manifest"] = {}
    finally:
        conn.close()
