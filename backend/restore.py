"""Level 4: the restore-test. Load a dump into a scratch database and compare.

Flow: L1–L3 (skipped when an earlier L3+ verification checked this exact sha256),
then on the target — the dump's own server (`same`), another configured server,
or a throwaway `mariadbd` (`sandbox`) — create `dumpdeck_rt_<random>_<db>`, load,
compare every table, view, routine, trigger and event of the manifest, count rows
and CHECKSUM TABLE each table, and drop the scratch database in a `finally`.

Safety:
- The dump is refused (a failed check, nothing loaded) when any statement would act
  outside the scratch database: USE, CREATE/DROP DATABASE, schema-qualified writes,
  server-wide statements (GRANT, SET GLOBAL, CHANGE MASTER, …). The same classification
  runs on every statement while loading, before it is sent.
- Every client input starts with the MariaDB sandbox-mode line, so `\\!` shell escapes
  in a dump cannot run. `sql_log_bin=0` is set where the account may (tried first,
  else a warning). On a real server (not the sandbox), DEFINER clauses are dropped and
  events are created DISABLEd, so nothing of the scratch copy runs by itself.
- Leftovers of an interrupted test are found by their prefix: `cleanup_scratch`.

The loader itself (split at table boundaries, parallel connections) is backend.loader.
"""

from __future__ import annotations

import contextlib
import logging
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import manifest as manifest_mod
from . import mysql
from .codecs import StreamError
from .config import Config, ServerConfig
from .errors import ConfigError, DumpdeckError
from .loader import Loader, LoadError, ScopeError, decoded_chunks
from .outcome import Outcome
from .sqlstats import SqlStats
from .verify import CheckCallback, CheckResult, VerifyReport, _Ladder, record_report, verified_for, verify_file

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "dumpdeck_rt_"


# --------------------------------------------------------------------------- scratch databases


def scratch_name(database: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_]", "_", database) or "db"
    return (f"{SCRATCH_PREFIX}{secrets.token_hex(3)}_{safe}")[:64]


def cleanup_scratch(config: Config, server_name: str | None) -> list[str]:
    """Drop leftover `dumpdeck_rt_*` databases on a server; skips ones a session is using."""
    server = config.server(server_name)
    return _cleanup(server)


def _cleanup(server: ServerConfig) -> list[str]:
    conn = mysql.connect(server)
    dropped = []
    try:
        with conn.cursor() as cur:
            with contextlib.suppress(Exception):
                cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s",
                (SCRATCH_PREFIX.replace("_", "\\_") + "%",),
            )
            names = [r[0] for r in cur.fetchall()]
            busy: set[str] = set()
            with contextlib.suppress(Exception):
                cur.execute(
                    "SELECT DISTINCT DB FROM information_schema.PROCESSLIST WHERE DB LIKE %s AND ID <> CONNECTION_ID()",
                    (SCRATCH_PREFIX.replace("_", "\\_") + "%",),
                )
                busy = {r[0] for r in cur.fetchall()}
            for name in names:
                if name in busy:
                    continue
                cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(name)}")
                dropped.append(name)
    finally:
        conn.close()
    return dropped


# --------------------------------------------------------------------------- the restore-test


@dataclass
class _Target:
    label: str
    server: ServerConfig
    sandbox: object | None = None
    tmpdir: tempfile.TemporaryDirectory | None = None


def _open_target(config: Config, target: str, manifest, entry_server: str | None) -> _Target:
    if target == "sandbox":
        from .sandbox import Sandbox

        tmp = tempfile.TemporaryDirectory(prefix="dumpdeck-rt-sandbox-")
        try:
            sb = Sandbox.create(Path(tmp.name) / "srv").start()
        except BaseException:
            tmp.cleanup()
            raise
        server = ServerConfig(name="sandbox", host=None, socket=sb.socket, user="root")
        return _Target("sandbox", server, sb, tmp)
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


def _close_target(t: _Target) -> None:
    if t.sandbox is not None:
        with contextlib.suppress(Exception):
            t.sandbox.destroy()  # type: ignore[attr-defined]
    if t.tmpdir is not None:
        with contextlib.suppress(Exception):
            t.tmpdir.cleanup()


def restore_test(
    path: Path,
    config: Config,
    target: str | None = None,
    on_check: CheckCallback | None = None,
    record: bool = True,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Run L1–L3 (unless already proven for this sha256), then load into a scratch database and compare."""
    path = Path(path)
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
    manifest = None
    with contextlib.suppress(manifest_mod.ManifestError):
        if manifest_mod.manifest_path(path).exists():
            manifest = manifest_mod.load(path)
    stats: SqlStats | None = None
    prior = verified_for(manifest, l1.sha256 or "", 3) if manifest is not None else None
    if prior is not None and all(t.exact_rows is not None for t in manifest.tables):
        ladder.add("levels 2–3", True, f"already verified at level {prior.level} on {prior.at} for this sha256", 3)
    else:
        full = verify_file(path, level=3, record=record)
        for c in full.checks:
            if c.level >= 2:
                forward(c)
        stats = full.stats
        if not full.passed:
            if full.failed:
                ladder.failed_level = min(c.level for c in full.failed_checks)
                ladder.add("restore", False, "refused: the dump did not pass levels 1–3, nothing was loaded", 4)
            else:
                ladder.add("restore", Outcome.NOT_CHECKED, "levels 1–3 could not be checked, nothing was loaded", 4)
            return _finish(report, ladder, t0, False, None)
        with contextlib.suppress(manifest_mod.ManifestError):
            if manifest is not None:
                manifest = manifest_mod.load(path)
    entry_server = None
    with contextlib.suppress(ValueError):
        rel = path.resolve().relative_to(Path(config.backup.dir).resolve()).parts
        entry_server = rel[0] if len(rel) == 3 else None
    database = manifest.database if manifest is not None else _guess_db(path)

    # ---- L4
    # ---- L4. A target that cannot be opened or reached, or a cancelled load, is "not checked":
    # it says nothing about the dump, which keeps the level it had.
    try:
        tgt = _open_target(config, target, manifest, entry_server)
    except (DumpdeckError, OSError) as exc:
        ladder.add("target", Outcome.NOT_CHECKED, f"could not open the target {target}: {exc}", 4)
        return _finish(report, ladder, t0, record, {})
    report.target = tgt.label
    scratch = scratch_name(database)
    extra: dict = {}
    try:
        _restore_into(path, tgt, scratch, manifest, stats, ladder, parallel, cancel, extra)
    finally:
        if extra.get("created"):
            try:
                _drop(tgt.server, scratch)
                ladder.add("scratch dropped", True, f"`{scratch}` dropped on {tgt.label}", 4)
            except Exception as exc:
                ladder.add(
                    "scratch dropped",
                    Outcome.NOT_CHECKED,
                    f"could not drop `{scratch}` on {tgt.label}: {exc}; run `dumpdeck clean --scratch`",
                    4,
                )
        _close_target(tgt)
        if tgt.sandbox is not None:
            ladder.add(
                "sandbox stopped",
                True if not tgt.sandbox.alive() else Outcome.NOT_CHECKED,
                "sandbox mariadbd stopped and removed",
                4,
            )
    return _finish(report, ladder, t0, record, extra)


def _guess_db(path: Path) -> str:
    from .catalog import scan

    name = path.name
    for e in scan(path.parent).entries:
        if e.path.name == name:
            return e.database
    return name.split(".sql")[0]


def _finish(report: VerifyReport, ladder: _Ladder, t0: float, record: bool, extra: dict | None) -> VerifyReport:
    ladder.finish()
    report.duration = time.monotonic() - t0
    if record and extra is not None:
        record_report(report, extra=extra.get("manifest"))
    return report


def _drop(server: ServerConfig, scratch: str) -> None:
    conn = mysql.connect(server)
    try:
        with conn.cursor() as cur:
            with contextlib.suppress(Exception):
                cur.execute("SET SESSION sql_log_bin=0")
            cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(scratch)}")
    finally:
        conn.close()


def _restore_into(
    path: Path,
    tgt: _Target,
    scratch: str,
    manifest,
    stats: SqlStats | None,
    ladder: _Ladder,
    parallel: int,
    cancel: threading.Event | None,
    extra: dict,
) -> None:
    q = mysql.quote_ident(scratch)
    try:
        conn = mysql.connect(tgt.server)
    except DumpdeckError as exc:
        ladder.add("target", Outcome.NOT_CHECKED, f"{tgt.label} unreachable: {exc}", 4)
        return
    init_sql: list[str] = []
    try:
        with conn.cursor() as cur:
            try:
                cur.execute("SET SESSION sql_log_bin=0")
                init_sql.append("SET SESSION sql_log_bin=0")
                binlog = "binary log off for the load"
            except Exception as exc:
                binlog = (
                    f"warning: cannot turn the binary log off ({exc.args[-1] if exc.args else exc}); loaded with it on"
                )
            try:
                cur.execute(f"CREATE DATABASE {q} CHARACTER SET utf8mb4")
            except Exception as exc:
                ladder.add(
                    "scratch database",
                    Outcome.NOT_CHECKED,
                    f"cannot create `{scratch}` on {tgt.label}: "
                    f"{exc.args[-1] if exc.args else exc} (the account needs CREATE, DROP, INSERT, … "
                    f"ON `{SCRATCH_PREFIX.replace('_', chr(92) + '_')}%`.*)",
                    4,
                )
                return
        extra["created"] = True
        ladder.add("scratch database", True, f"`{scratch}` created on {tgt.label}; {binlog}", 4)
    finally:
        conn.close()

    loader = Loader(
        tgt.server, scratch, parallel=parallel, init_sql=init_sql, neutralise=tgt.sandbox is None, cancel=cancel
    )
    try:
        res = loader.load(decoded_chunks(path, manifest.codec if manifest is not None else None))
    except ScopeError as exc:
        ladder.add("scope", False, str(exc), 4)
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
        f"{res.connections} connection(s), {res.jobs} job(s)"
        + ("; " + "; ".join(res.warnings) if res.warnings else ""),
        4,
        seconds=round(res.seconds, 3),
    )
    _compare(tgt.server, scratch, manifest, stats, ladder, extra)


# Client/server errors that say the target, not the dump, is at fault: connection lost or refused,
# disk or table full, out of memory. A load that ends on one of these is "not checked".
_ENVIRONMENTAL = re.compile(
    r"ERROR (?:2002|2003|2005|2006|2013|1021|1037|1041|1114|1040|1203)\b|No space left|Out of memory|cancelled",
    re.IGNORECASE,
)


def _environmental(message: str) -> bool:
    return bool(_ENVIRONMENTAL.search(message))


def _compare(
    server: ServerConfig, scratch: str, manifest, stats: SqlStats | None, ladder: _Ladder, extra: dict
) -> None:
    conn = mysql.connect(server, scratch, read_timeout=3600)
    try:
        with conn.cursor() as cur:
            objects = mysql.object_names(conn, scratch)
            cur.execute(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
                "AND TABLE_TYPE='BASE TABLE' ORDER BY TABLE_NAME",
                (scratch,),
            )
            tables = [r[0] for r in cur.fetchall()]
            if manifest is not None:
                want_tables = [t.name for t in manifest.tables]
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

            figures: dict[str, dict] = {}
            for t in tables:
                qt = mysql.quote_ident(t)
                cur.execute(f"SELECT COUNT(*) FROM {qt}")
                rows = int(cur.fetchone()[0])
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
