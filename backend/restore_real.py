"""The real restore: a dump back into a database, into a new name or in place, never losing data.

    plan → checks (L1–L2; L3's scope check) → load → compare            (into a new or empty database)
    plan → checks → safety dump of the target (L2, tagged pre-restore)   (`replace=True`)
         → load into `dumpdeck_stage_…` on the same server → compare staging with the dump
         → swap: one RENAME TABLE moving every current table to `dumpdeck_old_…` and every
           staged table into the target (atomic: all pairs or none) → views, routines,
           triggers and events re-created in the target from the dump's own statements
         → drop the old tables (only now) and the staging database
    `replace=True` with `tables`: the same, for just those tables and their triggers (the rest untouched)

The swap itself is journaled in the state store and crash-safe: backend/swap.py.

What can and cannot move across databases decides the shape of the swap: MariaDB refuses to
RENAME a table that has triggers into another database, and views, routines and events cannot
be renamed across databases at all. So triggers and views are dropped before the RENAME (from
the target and from staging) and every object is created again in the target from the
statements of the dump. If anything fails before the RENAME, the target was never touched
(its dropped triggers and views are created again from their SHOW CREATE text); if the
re-creation of the objects fails after it, the RENAME is undone and the target's old objects
come back. Staging and the holding database are dropped in every case.

Foreign keys: InnoDB keeps a foreign key pointing at the table it named, through a RENAME, so
the staged tables' keys point at the staged (now target) tables and the old tables' keys move
with them to the holding database, which is dropped. Keys from *other* databases into the
target would be left pointing at the holding database: such a replace is refused, naming them.

DEFINER: kept as in the dump (the configured account needs SET USER / SUPER to create objects for
another definer), or with `definer="current"` removed, so the restoring account owns them.
The binary log stays on: a restore is a real change that replicas must see.

Who loads: a temporary `dumpdeck_rs_…` account with ALL PRIVILEGES on the target (or staging) database
only (backend/tempaccount.py), created before the load and dropped after it whatever happens, so a dump
the scope checks misread still cannot act outside it: the server refuses. Views, routines, triggers and
events are kept out of that load and created afterwards as the configured account (re-checked by the
scope scanner first), so their definers are the dump's (or the configured account's with "current"),
never the dropped temporary account. Where the configured account may not create accounts, the load
runs as the configured account, with a "not confined" warning in the run's events and output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pymysql
import pymysql.cursors

from . import manifest as manifest_mod
from . import mysql, tempaccount
from . import swap as swap_mod
from .codecs import check_decryptable
from .config import Config, ServerConfig
from .encryption import identity_file, use_identity
from .endpoint import with_account
from .errors import (
    CancelledError,
    DecryptKeyError,
    DumpdeckError,
    LoadError,
    ManifestError,
    MappingError,
    RestoreError,
    RestoreRefused,
    ScopeError,
    StreamError,
)
from .loader import _EVENT_ENABLE_RE, Item, Loader, LoadProgress, LoadResult, decoded_chunks
from .outcome import Outcome
from .rewrite import Rewriter, Subset, database_mapping, plan_subset, survey
from .selection import RESTORE as RESTORE_JOB
from .sqlstats import Delimiter, Marker, SqlStats, Statement
from .swap import DumpObject
from .units import format_bytes, format_duration
from .verify import VerifyReport, scope_scan_current, verified_for, verify_file, verify_instream
from .vocabulary import DbStatus, RunStatus, Trigger

if TYPE_CHECKING:
    from .state import Run, StateStore

log = logging.getLogger(__name__)

STAGE_PREFIX = "dumpdeck_stage_"
ACCOUNT_PREFIX = "dumpdeck_rs_"  # the temporary account that loads (backend/tempaccount.py)
_ACCOUNT_RE = re.compile(r"^dumpdeck_rs_[0-9a-f]{12}$")
_CREATES = ("create_view", "create_trigger", "create_procedure", "create_function", "create_event")
OLD_PREFIX = "dumpdeck_old_"
PRE_RESTORE_TAG = "pre-restore"
_OBJECT_KINDS = ("views", "procedures", "functions", "triggers", "events")


# --------------------------------------------------------------------------- request and plan


@dataclass
class RestoreRequest:
    path: Path
    target_server: str
    target_db: str
    tables: list[str] | None = None
    replace: bool = False
    definer: str = "keep"  # keep | current
    parallel: int = 2
    # a copy at a destination instead of a local file: {"destination": name, "path": <server>/<db>/<file>};
    # it is streamed through rclone cat (backend.copies), nothing lands on local disk
    remote: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["path"] = str(self.path)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RestoreRequest:
        return cls(**{**d, "path": Path(d["path"])})


@dataclass
class RestorePlan:
    request: RestoreRequest
    source: dict[str, Any]  # path, database, server, codec, size, bytes_raw, sha256, level, when, age
    target_exists: bool
    target_tables: list[str]
    target_objects: dict[str, list[str]]
    target_rows: int
    tables: list[str]
    sequences: list[str]
    objects: dict[str, list[str]]
    excluded: list[str]
    estimate_seconds: float | None
    estimate_basis: str
    warnings: list[str] = field(default_factory=list)
    refusal: str | None = None  # why it cannot go ahead as asked

    @property
    def replaces(self) -> str:
        if not self.target_exists:
            return "nothing: the database does not exist and will be created"
        if not self.target_tables and not any(self.target_objects.values()):
            return "nothing: the database exists and is empty"
        objs = ", ".join(f"{len(v)} {k}" for k, v in self.target_objects.items() if v)
        if self.request.replace and self.request.tables:
            named = [t for t in self.request.tables if t in self.target_tables]
            return (
                f"{len(named)} of its {len(self.target_tables)} table(s)"
                + (f" ({', '.join(named[:10])})" if named else "")
                + " and their triggers; its other tables, views, routines and events stay (a safety dump of the "
                "whole database is taken first)"
            )
        return (
            f"{len(self.target_tables)} table(s) with about {self.target_rows:,} rows"
            + (f" and {objs}" if objs else "")
            + (" (a safety dump is taken first)" if self.request.replace else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": {
                "server": self.request.target_server,
                "database": self.request.target_db,
                "exists": self.target_exists,
                "tables": self.target_tables,
                "objects": self.target_objects,
                "rows": self.target_rows,
            },
            "restore": {
                "tables": self.tables,
                "sequences": self.sequences,
                "objects": self.objects,
                "excluded_from_dump": self.excluded,
                "replace": self.request.replace,
                "definer": self.request.definer,
            },
            "estimate_seconds": self.estimate_seconds,
            "estimate_basis": self.estimate_basis,
            "replaces": self.replaces,
            "warnings": self.warnings,
            "refusal": self.refusal,
        }

    def _what(self) -> str:
        r = self.request
        if not self.tables and not any(self.objects.values()) and self.source.get("bytes_raw") is None:
            return "restores the dump's tables and objects (no manifest: counted while checking the dump)"
        return (
            f"restores {len(self.tables)} table(s)"
            + (f", {len(self.sequences)} sequence(s)" if self.sequences else "")
            + ", "
            + ", ".join(f"{len(v)} {k}" for k, v in self.objects.items())
            + (f"; subset of {len(r.tables)} asked for" if r.tables else "")
        )

    def lines(self, *, decision_first: bool = False) -> list[str]:
        """The plan as aligned lines: in reading order, or (`decision_first`, for a small confirmation
        dialog) what is refused, the target and what it replaces first, the source and the steps after."""
        s, r = self.source, self.request
        level = f"L{s['level']}" if s["level"] else "not verified"
        source = [
            f"source   {s['path']}",
            f"         database {s['database']!r} from {s['server'] or 'unknown server'}, {s['age']} "
            f"({s['when']}), {level}, {format_bytes(s['size'])} {s['codec']}"
            + (f" ({format_bytes(s['bytes_raw'])} SQL)" if s.get("bytes_raw") else ""),
            f"         sha256 {s['sha256'] or 'not computed yet'}",
        ]
        target = [
            f"target   {r.target_db!r} on server {r.target_server}"
            + (" (replace in place)" if r.replace else " (new or empty database)")
        ]
        what = [self._what()]
        if self.excluded:
            what.append(f"         not in the dump (excluded by its job): {', '.join(self.excluded[:10])}")
        when = [
            "time     "
            + (
                f"about {format_duration(self.estimate_seconds)} ({self.estimate_basis})"
                if self.estimate_seconds
                else f"unknown ({self.estimate_basis})"
            )
        ]
        replaces = [f"replaces {self.replaces}"]
        steps: list[str] = []
        if r.replace and r.tables:
            steps.append(
                "steps    safety dump of the target (verified L2, tagged pre-restore) → load those tables into a "
                "staging database → compare → journaled RENAME TABLE swap of just those tables → their triggers "
                "from the dump → drop the old tables"
            )
            steps.append("keys     no foreign key joins a replaced table to a kept one (else refused)")
        elif r.replace:
            steps.append(
                "steps    safety dump of the target (verified L2, tagged pre-restore) → load into a staging "
                "database → compare → journaled RENAME TABLE swap → re-create views, routines, triggers, events → "
                "drop the old tables"
            )
            steps.append(
                "keys     foreign keys inside the database follow the swap; none from other databases point at it"
            )
        steps.append(
            "definer  "
            + ("removed: objects belong to the restoring account" if r.definer == "current" else "kept as in the dump")
        )
        warnings = [f"warning  {w}" for w in self.warnings]
        refused = [f"refused  {self.refusal}"] if self.refusal else []
        if decision_first:
            return refused + target + replaces + what + warnings + when + source + steps
        return source + target + what + when + replaces + steps + warnings + refused


def _age(when: datetime) -> str:
    secs = max(0.0, (datetime.now(UTC) - when).total_seconds())
    return "just now" if secs < 60 else f"{format_duration(secs)} old"


def _source_info(config: Config, path: Path) -> tuple[dict[str, Any], manifest_mod.Manifest | None, str | None]:
    from .catalog import scan

    entry = None
    for e in scan(path.parent).entries:
        if e.path.name == path.name:
            entry = e
            break
    manifest = None
    with contextlib.suppress(ManifestError):
        if manifest_mod.manifest_path(path).exists():
            manifest = manifest_mod.load(path)
    if entry is not None:
        database, server, when, codec = entry.database, entry.server, entry.when, entry.codec
        level = entry.verified_level
    else:
        database = manifest.database if manifest else path.name.split(".sql")[0]
        server = (manifest.server or {}).get("name") if manifest else None
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        from .codecs import codec_for_path

        codec, level = codec_for_path(path), (manifest.verified_level if manifest else 0)
    size = path.stat().st_size
    return (
        {
            "path": str(path),
            "database": database,
            "server": server,
            "codec": codec,
            "size": size,
            "bytes_raw": manifest.bytes_raw if manifest else None,
            "sha256": manifest.sha256 if manifest else None,
            "level": level,
            "when": when.isoformat(timespec="seconds"),
            "age": _age(when),
            "legacy": bool(entry.legacy) if entry else False,
        },
        manifest,
        server,
    )


def _target_state(
    server: ServerConfig, db: str
) -> tuple[bool, list[str], dict[str, list[str]], int, list[tuple[str, str, str, str]]]:
    """(exists, base tables and sequences, objects, estimated rows, foreign keys referencing its tables as
    (schema, table, constraint, referenced table), those inside it included)."""
    conn = mysql.connect(server)
    try:
        if not mysql.database_exists(conn, db):
            return False, [], {k: [] for k in _OBJECT_KINDS}, 0, []
        tables = [t for t in mysql.tables(conn, db) if t.kind != "VIEW"]
        objects = mysql.object_names(conn, db)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS "
                "WHERE UNIQUE_CONSTRAINT_SCHEMA=%s",
                (db,),
            )
            fks = [(r[0], r[1], r[2], r[3]) for r in cur.fetchall()]
        return True, [t.name for t in tables], objects, sum(t.rows for t in tables), fks
    finally:
        conn.close()


def _estimate(
    config: Config, manifest: manifest_mod.Manifest | None, raw: int | None, database: str
) -> tuple[float | None, str]:
    """Seconds from history: this dump's own restore-test load, else the load rate measured by restore-tests
    of this database's (or, failing that, any database's) other dumps, else that of earlier restores."""

    def load_seconds(m: manifest_mod.Manifest) -> float | None:
        for v in reversed(m.verifications):
            for c in v.checks:
                if (
                    c.get("name") == "load"
                    and Outcome.of(c.get("outcome", c.get("passed"))).value == "passed"
                    and c.get("seconds")
                ):
                    return float(c["seconds"])
        return None

    if manifest is not None and (secs := load_seconds(manifest)):
        return secs, "this dump's last restore-test load"
    if not raw:
        return None, "the dump's size is unknown (no manifest)"
    from .catalog import scan

    rates: dict[bool, list[float]] = {True: [], False: []}
    for e in scan(config.backup.dir).entries[:500]:
        m = e.manifest
        if m is None or m.bytes_raw < 10_000_000:
            continue  # small loads measure start-up costs, not a rate
        secs = load_seconds(m)
        if secs:
            rates[e.database == database].append(m.bytes_raw / secs)
    for same, label in ((True, "this database's"), (False, "other databases'")):
        if rates[same]:
            rate = sorted(rates[same])[len(rates[same]) // 2]
            return raw / rate, f"{format_bytes(rate)}/s, the load rate of {label} restore-tests"
    from .state import open_store

    try:
        with open_store(config) as store:
            total_b, total_s = 0, 0.0
            for run in store.list_runs(limit=200, job=RESTORE_JOB, status=RunStatus.SUCCEEDED):
                for p in store.progress(run.id):
                    if p.bytes_raw >= 10_000_000 and p.elapsed:
                        total_b += p.bytes_raw
                        total_s += p.elapsed
            if total_s:
                return raw / (total_b / total_s), f"{format_bytes(total_b / total_s)}/s, the rate of earlier restores"
    except DumpdeckError:
        pass
    return None, "no restore or restore-test of 10 MB or more measured yet"


def make_plan(config: Config, req: RestoreRequest, *, sha256: bool = False) -> RestorePlan:
    """What a restore would do and whether it may (`refusal`). `sha256`: compute the digest of a dump
    without a manifest (reads the whole file)."""
    path = Path(req.path)
    if req.remote is None and not path.exists():
        raise RestoreRefused(f"{path}: no such dump file")
    server = config.server(req.target_server)
    manifest: manifest_mod.Manifest | None
    if req.remote is not None:
        from .copies import remote_source_info

        source, manifest = remote_source_info(config, req.remote["destination"], req.remote["path"])
    else:
        source, manifest, _src_server = _source_info(config, path)
    exists, tables, objects, rows, fks = _target_state(server, req.target_db)
    if sha256 and not source.get("sha256"):
        from .verify import file_sha256

        source["sha256"] = file_sha256(path)[0]
    if manifest is not None:
        dump_tables = [t.name for t in manifest.tables if t.name not in manifest.sequences]
        seqs = list(manifest.sequences)
        dump_objects = {k: list(getattr(manifest, k)) for k in _OBJECT_KINDS}
        excluded = list(manifest.excluded)
    else:
        dump_tables, seqs, dump_objects, excluded = [], [], {k: [] for k in _OBJECT_KINDS}, []
    if req.tables:
        dump_tables = [t for t in dump_tables if t in req.tables] or list(req.tables)
    est, basis = _estimate(config, manifest, source.get("bytes_raw"), source["database"])
    plan = RestorePlan(
        req, source, exists, tables, objects, rows, dump_tables, seqs, dump_objects, excluded, est, basis
    )
    if manifest is None:
        plan.warnings.append("no manifest: tables and objects are counted while checking the dump")
    with contextlib.suppress(DumpdeckError):
        from .state import open_store

        with open_store(config) as store:
            for j in swap_mod.open_journals(store):
                if j.server == server.name:
                    plan.warnings.append(
                        f"a swap of `{j.database}` (pid {j.pid}) is open: the restore finishes or rolls it back "
                        "first (`dumpdeck restore --recover` does just that)"
                    )

    def fk_text(fk: tuple[str, str, str, str]) -> str:
        return f"`{fk[0]}`.`{fk[1]}` ({fk[2]} → `{fk[3]}`)"

    if req.replace and req.tables:
        # a key across the line between replaced and kept tables would follow the old table out, and be dropped
        crossing = [
            fk_text(fk)
            for fk in fks
            if (fk[0] != req.target_db and fk[3] in req.tables)
            or (fk[0] == req.target_db and (fk[1] in req.tables) != (fk[3] in req.tables))
        ]
        if crossing:
            plan.refusal = (
                f"foreign keys cross between the tables to replace and the others: {', '.join(crossing[:5])}; "
                "add the tables they join to --tables (or replace the whole database)"
            )
    if req.tables and manifest is not None:  # known before reading the dump (the manifest lists its tables)
        known = {t.name for t in manifest.tables}
        missing = [t for t in req.tables if t not in known]
        if missing:
            plan.refusal = (
                "--tables: not in the dump: " + ", ".join(f"`{t}`" for t in missing) + f" (it has {len(known)} tables)"
            )
    if req.definer not in ("keep", "current"):
        plan.refusal = f"--definer={req.definer}: use keep or current"
    non_empty = exists and (tables or any(objects.values()))
    if non_empty and not req.replace:
        plan.refusal = (
            f"database {req.target_db!r} on {server.name} is not empty ({len(tables)} table(s)); "
            "restore into a new name, or pass --replace to replace it (a safety dump is taken first)"
        )
    others = [fk_text(fk) for fk in fks if fk[0] != req.target_db]
    if req.replace and not req.tables and others:
        plan.refusal = (
            f"foreign keys in other databases reference {req.target_db!r}: {', '.join(others[:5])}; after a swap "
            "they would point at the old tables, which are dropped. Drop or redirect them first"
        )
    for prefix in (STAGE_PREFIX, OLD_PREFIX, "dumpdeck_rt_"):
        if req.target_db.startswith(prefix):
            plan.refusal = f"{req.target_db!r}: names starting with {prefix} belong to dumpdeck's scratch databases"
    if not req.target_db or len(req.target_db) > 64:
        plan.refusal = f"{req.target_db!r}: a database name has 1 to 64 characters"
    return plan


# --------------------------------------------------------------------------- checks before the load


@dataclass
class Prepared:
    manifest: manifest_mod.Manifest | None
    stats: SqlStats | None
    mapped_db: str | None
    subset: Subset | None
    source_db: str
    checks: VerifyReport
    chunks: Callable[[], Iterator[bytes]] | None = None  # the decoded SQL of a remote copy, streamed again


def prepare(config: Config, req: RestoreRequest, plan: RestorePlan, on_step: Callable[[str], None]) -> Prepared:
    """L1–L2 must pass; L3's scope check must find nothing outside the dump's own database (a legacy
    `--databases` dump of one database is mapped). Anything else refuses the restore, nothing loaded."""
    path = Path(req.path)
    if req.remote is not None:
        from .copies import remote_chunks, verify_remote_stream

        on_step(f"checking the copy at {req.remote['destination']} as it streams: levels 1–3 (sha256, decode, scope)")
        rmanifest, report = verify_remote_stream(config, req.remote["destination"], req.remote["path"])
        if not report.passed:
            low = [c for c in report.checks if not c.passed]
            why = f"{low[0].name}: {low[0].evidence}" if low else report.summary
            raise RestoreRefused(f"{path.name}: the copy did not pass levels 1–3: {why}; nothing was restored")
        dest, rel = req.remote["destination"], req.remote["path"]

        def streamed() -> Iterator[bytes]:
            return remote_chunks(config, dest, rel, rmanifest.codec)

        subset = _subset(req, plan, streamed, on_step) if req.tables else None
        return Prepared(rmanifest, report.stats, None, subset, rmanifest.database, report, chunks=streamed)
    l1 = verify_file(path, level=1, record=False)
    manifest = None
    with contextlib.suppress(ManifestError):
        if manifest_mod.manifest_path(path).exists():
            manifest = manifest_mod.load(path)
    if l1.failed:
        raise RestoreRefused(f"{path.name} failed level 1: {l1.summary}; nothing was restored")
    try:
        check_decryptable(path)  # an encrypted dump: the identity opens it, or nothing is changed
    except (DecryptKeyError, StreamError) as exc:
        raise RestoreRefused(f"{path.name}: {exc}; nothing was restored") from None
    prior = verified_for(manifest, l1.sha256 or "", 3) if manifest is not None else None
    if prior is not None and not scope_scan_current(prior):
        prior = None  # that scan did not know every hazard the current one knows: scan again
    stats = None
    mapped = None
    if prior is not None:
        on_step(f"levels 1–3 already passed for this sha256 on {prior.at}; level 1 re-checked now")
        report = l1
    else:
        on_step("checking the dump: levels 1–3 (decode, header, footer, statements, scope)")
        report = verify_file(path, level=3, record=True)
        with contextlib.suppress(ManifestError):
            if manifest is not None:
                manifest = manifest_mod.load(path)  # now with the exact row counts of this pass
        bad = report.failed_checks
        low = [c for c in bad if c.level <= 2]
        if low:
            raise RestoreRefused(
                f"{path.name} failed level {low[0].level}: {low[0].name}: {low[0].evidence}; nothing was restored"
            )
        stats = report.stats
        if stats is None:
            raise RestoreRefused(f"{path.name}: the content could not be scanned; nothing was restored")
        scope = next((c for c in bad if c.name == "scope"), None)
        if scope is not None and manifest is not None:
            # dumpdeck's own dumps never name a database: this one was changed after it was written
            raise RestoreRefused(f"{path.name}: refused: level 3 scope: {scope.evidence}; nothing was restored")
        try:
            mapped = database_mapping(stats)
        except MappingError as exc:
            raise RestoreRefused(f"{path.name}: refused: {exc}; nothing was restored") from None
        others = [c for c in bad if c.level == 3 and c.name != "scope"]
        for c in others:
            plan.warnings.append(f"level 3 {c.name}: {c.evidence}")
        if mapped:
            on_step(f"legacy --databases dump of `{mapped}`: its CREATE DATABASE/USE are mapped to `{req.target_db}`")
        if manifest is None:
            plan.tables = [t for t in stats.tables if not req.tables or t in req.tables]
            plan.sequences = list(stats.sequences)
            plan.objects = {k: list(getattr(stats, k)) for k in _OBJECT_KINDS}
    codec = manifest.codec if manifest is not None else None
    subset = _subset(req, plan, lambda: decoded_chunks(path, codec), on_step) if req.tables else None
    source_db = mapped or (manifest.database if manifest is not None else plan.source["database"])
    return Prepared(manifest, stats, mapped, subset, source_db, report)


def _subset(
    req: RestoreRequest, plan: RestorePlan, chunks: Callable[[], Iterator[bytes]], on_step: Callable[[str], None]
) -> Subset:
    """--tables: which views, routines and triggers come along (a pass over the dump's SQL); narrows `plan`."""
    assert req.tables
    on_step("reading the dump's views, routines and triggers for --tables")
    sv = survey(chunks())
    try:
        subset = plan_subset(sv, list(req.tables))
    except MappingError as exc:
        raise RestoreRefused(str(exc)) from None
    plan.warnings += subset.warnings
    plan.tables = [t for t in req.tables if t not in sv.views]
    plan.sequences = [s for s in plan.sequences if s in subset.tables]
    plan.objects = {k: [n for n in v if subset.objects.get((k[:-1], n), False)] for k, v in plan.objects.items()}
    return subset


# --------------------------------------------------------------------------- objects for the swap


class ObjectCollector:
    """Wraps the Rewriter: keeps the final statements that create views, routines, triggers and events
    (with the session settings the dump set before each), to create them again in the target."""

    def __init__(self, inner: Rewriter):
        self.inner = inner
        self.delimiter = b";"
        self.section: str | None = None
        self.sets: list[str] = []
        self.objects: list[DumpObject] = []

    def _text(self, item: Statement) -> str:
        text = item.text.rstrip()
        if text.endswith(self.delimiter):
            text = text[: -len(self.delimiter)]
        return text.decode("utf-8", errors="replace").strip()

    def __call__(self, item: Item) -> Item | None:
        out = self.inner(item)
        if out is None:
            return None
        if isinstance(out, Delimiter):
            self.delimiter = out.delimiter
        elif isinstance(out, Marker):
            self.section = out.kind
            self.sets = []
        elif isinstance(out, Statement):
            if out.kind == "set":
                self.sets.append(self._text(out))
            elif (
                out.kind in ("create_view", "create_trigger", "create_procedure", "create_function", "create_event")
                and not (out.kind == "create_view" and self.section == "view_temp")
                and out.name
            ):
                self.objects.append(DumpObject(out.kind[7:], out.name, list(self.sets), self._text(out)))
        return out


def _disable_events(item: Item) -> Item:
    if isinstance(item, Statement) and item.kind == "create_event":
        item.raw = _EVENT_ENABLE_RE.sub(b"DISABLE", item.raw)
    return item


# --------------------------------------------------------------------------- the restore


@dataclass
class RestoreResult:
    ok: bool
    target_server: str
    target_db: str
    message: str
    seconds: float = 0.0
    bytes: int = 0
    safety_dump: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


StepCallback = Callable[[str], None]
ProgressCallback = Callable[[LoadProgress, int | None], None]


def restore(
    config: Config,
    req: RestoreRequest,
    *,
    on_step: StepCallback | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    run_id: int | None = None,
) -> RestoreResult:
    """Restore `req.path` into `req.target_db`; RestoreRefused/RestoreError name what went wrong."""
    cancel = cancel or threading.Event()
    t0 = time.monotonic()
    use_identity(config.encryption.identity_file)  # an encrypted dump is decrypted with this config's identity

    def step(msg: str) -> None:
        log.info("restore %s: %s", req.target_db, msg)
        if on_step is not None:
            with contextlib.suppress(Exception):
                on_step(msg)

    recover_swaps(config, req.target_server, step)
    plan = make_plan(config, req)
    if plan.refusal:
        raise RestoreRefused(plan.refusal)
    server = config.server(req.target_server)
    prep = prepare(config, req, plan, step)
    for w in plan.warnings:
        step(f"warning: {w}")
    if cancel.is_set():
        raise CancelledError("restore cancelled before anything was loaded")
    total = plan.source.get("bytes_raw") or (prep.stats.bytes if prep.stats is not None else None)

    def progress(p: LoadProgress) -> None:
        if on_progress is not None:
            with contextlib.suppress(Exception):
                on_progress(p, total)

    try:
        if req.replace and plan.target_exists and (plan.target_tables or any(plan.target_objects.values())):
            result = _replace(config, req, plan, prep, server, step, progress, cancel, run_id)
        else:
            result = _into_new(req, plan, prep, server, step, progress, cancel)
    except pymysql.MySQLError as exc:
        code = f"({exc.args[0]}) " if len(exc.args) > 1 else ""
        raise RestoreError(
            f"server {server.name}: {code}{exc.args[-1] if exc.args else exc}; `{req.target_db}` is as it was "
            "(the account needs CREATE, DROP, ALTER, INSERT, CREATE VIEW, CREATE ROUTINE, TRIGGER, EVENT on it)"
        ) from None
    result.seconds = time.monotonic() - t0
    result.warnings = plan.warnings + result.warnings
    return result


def _loader(
    server: ServerConfig,
    db: str,
    req: RestoreRequest,
    prep: Prepared,
    progress: Callable[[LoadProgress], None],
    *,
    staging: bool,
    confined: Confined | None = None,
) -> tuple[Loader, ObjectCollector]:
    """The loader of the restore. `confined`: the load runs as that temporary account, and the views,
    routines, triggers and events are kept out of it (collected, checked, created afterwards by
    `_create_objects` as the configured account, so their definers outlive the temporary account)."""
    rw = Rewriter(
        prep.source_db, mapped_db=prep.mapped_db, definer_current=req.definer == "current", subset=prep.subset
    )
    collector = ObjectCollector(rw)

    def transform(item: Item) -> Item | None:
        out = collector(item)
        if (
            confined is not None
            and confined.password is not None
            and isinstance(out, Statement)
            and out.kind in _CREATES
            and not (out.kind == "create_view" and collector.section == "view_temp")
        ):
            if out.outside_scope:  # these run as the configured account: checked here, with the exact scanner
                why = f" ({out.hazard})" if out.hazard else ""
                raise ScopeError(f"refused: {out.describe()} would act outside the target database{why}")
            return None
        return _disable_events(out) if staging and out is not None else out

    who = confined.server if confined is not None else server
    password = confined.password if confined is not None else None
    # the loader gets an event of its own: it sets it itself when a connection fails (to stop the others)
    loader = Loader(
        who, db, parallel=req.parallel, neutralise=False, on_progress=progress, transform=transform, password=password
    )
    return loader, collector


@dataclass
class Confined:
    """Who loads: a temporary account with ALL PRIVILEGES on the target (or staging) database only, or, where
    the configured account may not create one (`password` None), the configured account, not confined."""

    server: ServerConfig
    password: str | None
    label: str
    account: tuple[str, str] | None = None


@contextlib.contextmanager
def _confined(server: ServerConfig, db: str, step: StepCallback) -> Iterator[Confined]:
    """A temporary account for the load into `db`, dropped afterwards (its sessions killed first), whatever
    happens; `cleanup_leftovers` drops those a killed process left."""
    conn = mysql.connect(server)
    made: tuple[str, str] | None = None
    try:
        with conn.cursor() as cur:
            host = tempaccount.own_host(cur)
            user = ACCOUNT_PREFIX + secrets.token_hex(6)
            password = tempaccount.new_password("Rs-")
            try:
                cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, host, password))
                made = (user, host)
                cur.execute(f"GRANT ALL PRIVILEGES ON {tempaccount.grant_db(db)}.* TO %s@%s", made)
            except pymysql.MySQLError as exc:
                why = exc.args[-1] if exc.args else exc
                if made is not None:
                    with contextlib.suppress(pymysql.MySQLError):
                        cur.execute("DROP USER IF EXISTS %s@%s", made)
                    made = None
                step(
                    f"warning: not confined: the account of {server.name} cannot create a temporary account "
                    f"({why}); the dump is loaded as the configured account, and only the scope checks stand "
                    f"between it and the rest of the server (grant CREATE USER and GRANT OPTION to confine it)"
                )
    finally:
        conn.close()
    if made is None:
        yield Confined(server, None, f"the configured account of {server.name} (not confined)")
        return
    label = f"'{made[0]}'@'{made[1]}'"
    step(f"loading as the temporary account {label}, with ALL PRIVILEGES on `{db}` only")
    try:
        yield Confined(with_account(server, made[0]), password, label, made)
    finally:
        _drop_account(server, made, step)


def _drop_account(server: ServerConfig, account: tuple[str, str], step: StepCallback) -> None:
    try:
        conn = mysql.connect(server)
        try:
            with conn.cursor() as cur:
                tempaccount.kill_sessions(cur, account[0])
                cur.execute("DROP USER IF EXISTS %s@%s", account)
        finally:
            conn.close()
    except (pymysql.MySQLError, DumpdeckError) as exc:
        step(
            f"warning: cannot drop the temporary account '{account[0]}'@'{account[1]}': "
            f"{exc.args[-1] if exc.args else exc}; `dumpdeck clean` drops it"
        )
    else:
        step(f"temporary account '{account[0]}'@'{account[1]}' dropped")


def _create_objects(
    server: ServerConfig, db: str, confined: Confined, collector: ObjectCollector, *, staging: bool
) -> None:
    """The views, routines, triggers and events kept out of a confined load, created in `db` as the configured
    account (definers as the dump has them, or the configured account with --definer current)."""
    if confined.password is None or not collector.objects:
        return
    objs = collector.objects
    if staging:
        objs = [
            dataclasses.replace(
                o, text=_EVENT_ENABLE_RE.sub(b"DISABLE", o.text.encode()).decode() if o.kind == "event" else o.text
            )
            for o in objs
        ]
    swap_mod.replay(server, db, objs)


def _load(loader: Loader, req: RestoreRequest, prep: Prepared, cancel: threading.Event) -> LoadResult:
    codec = prep.manifest.codec if prep.manifest is not None else None
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):
            if cancel.is_set():
                loader.abort()
                return

    watcher = threading.Thread(target=watch, name="restore-cancel", daemon=True)
    watcher.start()
    try:
        if prep.chunks is not None:
            return loader.load(prep.chunks())
        return loader.load(decoded_chunks(Path(req.path), codec))
    except ScopeError as exc:
        raise RestoreError(f"refused while loading: {exc}") from None
    except (LoadError, StreamError) as exc:
        if cancel.is_set():
            raise CancelledError("restore cancelled while loading") from None
        raise RestoreError(f"load failed: {exc}") from None
    finally:
        done.set()
        watcher.join()


def _exec(server: ServerConfig, sql: list[str], database: str | None = None) -> None:
    conn = mysql.connect(server, database, read_timeout=3600)
    try:
        with conn.cursor() as cur:
            for s in sql:
                cur.execute(s)
    finally:
        conn.close()


def _expected_manifest(prep: Prepared, plan: RestorePlan) -> manifest_mod.Manifest | None:
    """What the restored database must hold: the manifest (narrowed to --tables), or the scan's stats."""
    m = prep.manifest
    if m is None:
        return None
    if prep.subset is None:
        return m
    subset = prep.subset

    def kept(kind: str) -> list[str]:
        return [n for n in getattr(m, kind) if subset.objects.get((kind[:-1], n), False)]

    return dataclasses.replace(
        m,
        tables=[t for t in m.tables if t.name in subset.tables],
        sequences=[s for s in m.sequences if s in subset.tables],
        views=kept("views"),
        procedures=kept("procedures"),
        functions=kept("functions"),
        triggers=kept("triggers"),
        events=kept("events"),
    )


def _compare(server: ServerConfig, db: str, prep: Prepared, plan: RestorePlan) -> list[dict[str, Any]]:
    """Tables, sequences, objects and row counts of `db` against the dump (the manifest, narrowed to
    --tables, or the scan's statistics). RestoreError listing the differences."""
    m = _expected_manifest(prep, plan)
    stats = prep.stats
    subset = prep.subset
    if m is not None:
        want_tables = [t.name for t in m.tables if t.name not in m.sequences]
        want_objects = {k: list(getattr(m, k)) for k in _OBJECT_KINDS}
        want_seqs = list(m.sequences)
        rows = {t.name: t.exact_rows for t in m.tables if t.exact_rows is not None}
    else:
        want_tables = list(plan.tables)
        want_objects = {k: list(v) for k, v in plan.objects.items()}
        want_seqs = list(plan.sequences)
        rows = {}
    if stats is not None:
        for t, n in stats.tables.items():
            if subset is None or t in subset.tables:
                rows.setdefault(t, n)
        want_seqs = [s for s in want_seqs if s in stats.sequences] or [
            s for s in stats.sequences if subset is None or s in subset.tables
        ]
    want_tables = [t for t in want_tables if t not in want_seqs]
    conn = mysql.connect(server, db, read_timeout=3600)
    checks: list[dict[str, Any]] = []
    bad: list[str] = []

    def check(name: str, ok: bool, evidence: str) -> None:
        checks.append({"name": name, "passed": ok, "evidence": evidence})
        if not ok:
            bad.append(f"{name}: {evidence}")

    try:
        with conn.cursor() as cur:
            cur.execute("SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s", (db,))
            kinds = dict(cur.fetchall())
            have_tables = {t for t, k in kinds.items() if k == "BASE TABLE"}
            have_seqs = {t for t, k in kinds.items() if k == "SEQUENCE"}
            miss = [t for t in want_tables if t not in have_tables]
            check("tables present", not miss, f"missing: {', '.join(miss[:5])}" if miss else f"all {len(want_tables)}")
            miss = [s for s in want_seqs if s not in have_seqs]
            check("sequences present", not miss, f"missing: {', '.join(miss)}" if miss else f"all {len(want_seqs)}")
            objects = mysql.object_names(conn, db)
            miss = [f"{k[:-1]} `{n}`" for k, names in want_objects.items() for n in names if n not in objects[k]]
            check(
                "objects present",
                not miss,
                f"missing: {', '.join(miss[:5])}"
                if miss
                else ", ".join(f"{len(v)} {k}" for k, v in want_objects.items()),
            )
            wrong = []
            counted = 0
            for t, n in rows.items():
                if t not in have_tables:
                    continue
                cur.execute(f"SELECT COUNT(*) FROM {mysql.quote_ident(t)}")
                counted_row = cur.fetchone()
                got = int(counted_row[0]) if counted_row else 0
                counted += got
                if got != n:
                    wrong.append(f"`{t}` {got:,} rows, the dump has {n:,}")
            check(
                "row counts",
                not wrong,
                "; ".join(wrong[:3]) if wrong else f"{counted:,} rows in {len(rows)} tables, equal to the dump",
            )
    finally:
        conn.close()
    if bad:
        raise RestoreError(f"`{db}` differs from the dump: " + "; ".join(bad[:3]))
    return checks


def _into_new(
    req: RestoreRequest,
    plan: RestorePlan,
    prep: Prepared,
    server: ServerConfig,
    step: StepCallback,
    progress: Callable[[LoadProgress], None],
    cancel: threading.Event,
) -> RestoreResult:
    db = req.target_db
    q = mysql.quote_ident(db)
    created = not plan.target_exists
    if created:
        _exec(server, [f"CREATE DATABASE {q} CHARACTER SET utf8mb4"])
        step(f"created database `{db}` on {server.name}")
    ok = False
    try:
        with _confined(server, db, step) as confined:
            loader, collector = _loader(server, db, req, prep, progress, staging=False, confined=confined)
            step(f"loading over {req.parallel} connection(s) as {confined.label}")
            res = _load(loader, req, prep, cancel)
        _create_objects(server, db, confined, collector, staging=False)
        step(
            f"loaded {format_bytes(res.bytes)} of SQL in {format_duration(res.seconds)} "
            f"({format_bytes(res.bytes / res.seconds if res.seconds else 0)}/s, {res.mode})"
        )
        checks = _compare(server, db, prep, plan)
        step("compared with the dump: tables, objects and row counts equal")
        ok = True
    finally:
        if not ok:
            # a half-restored database is worse than none: back to how it was (absent, or empty)
            with contextlib.suppress(Exception):
                _exec(server, [f"DROP DATABASE IF EXISTS {q}"] + ([] if created else [f"CREATE DATABASE {q}"]))
    return RestoreResult(
        True, server.name, db, f"restored into `{db}` on {server.name}", bytes=res.bytes, checks=checks
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name) or "db"


def _scratch(prefix: str, db: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}_{_safe(db)}"[:64]


def _safety_dump(
    config: Config, server: ServerConfig, db: str, step: StepCallback, cancel: threading.Event, run_id: int | None
) -> str:
    from .dump import dump_database

    step(f"safety dump of `{db}` (the data being replaced)")
    try:
        res = dump_database(
            server,
            config.backup,
            db,
            cancel=cancel,
            run_id=run_id,
            tags=(PRE_RESTORE_TAG,),
            recipients=config.recipients(),  # encrypted like every dump when recipients are configured
        )
    except CancelledError:
        raise CancelledError(f"restore cancelled during the safety dump; `{db}` was not touched") from None
    except DumpdeckError as exc:
        raise RestoreError(f"safety dump of `{db}` failed: {exc}; the target was not touched") from None
    if res.plain is not None and identity_file() is None:  # encrypted, no identity here: L2 in-stream
        rep = verify_instream(res.path, 2, res.plain, None)
    else:
        rep = verify_file(res.path, level=2, record=True)
    if not rep.passed:  # not checked counts as not verified here: the safety dump must be proven
        raise RestoreError(f"safety dump {res.path} failed verification: {rep.summary}; the target was not touched")
    step(f"safety dump {res.path} ({format_bytes(res.bytes_stored)}), verified to level 2, tagged {PRE_RESTORE_TAG}")
    return str(res.path)


def _replace(
    config: Config,
    req: RestoreRequest,
    plan: RestorePlan,
    prep: Prepared,
    server: ServerConfig,
    step: StepCallback,
    progress: Callable[[LoadProgress], None],
    cancel: threading.Event,
    run_id: int | None,
) -> RestoreResult:
    from .state import open_store

    db = req.target_db
    safety = _safety_dump(config, server, db, step, cancel, run_id)
    if cancel.is_set():
        raise CancelledError(f"restore cancelled after the safety dump; `{db}` untouched (safety dump {safety})")
    stage = _scratch(STAGE_PREFIX, db)
    old = _scratch(OLD_PREFIX, db)
    qs = mysql.quote_ident(stage)
    handed_over = False  # once the journaled swap starts, it owns staging and the holding database
    warnings: list[str] = []
    try:
        _exec(server, [f"CREATE DATABASE {qs} CHARACTER SET utf8mb4"])
        step(f"staging database `{stage}` created")
        with _confined(server, stage, step) as confined:
            loader, collector = _loader(server, stage, req, prep, progress, staging=True, confined=confined)
            res = _load(loader, req, prep, cancel)
        _create_objects(server, stage, confined, collector, staging=True)
        step(f"loaded {format_bytes(res.bytes)} of SQL into staging in {format_duration(res.seconds)}")
        checks = _compare(server, stage, prep, plan)
        step("staging compared with the dump: tables, objects and row counts equal")
        journal = _swap_plan(server, req, stage, old, collector.objects, run_id, warnings)
        if cancel.is_set():
            raise CancelledError("restore cancelled before the swap")
        handed_over = True
        with open_store(config) as store:
            swap_mod.swap(server, journal, store, step, config.lock_dir)
    finally:
        if not handed_over:
            with contextlib.suppress(Exception):
                _exec(server, [f"DROP DATABASE IF EXISTS {qs}"])
            step(f"`{db}` left as it was; staging `{stage}` removed")
    step(f"old tables dropped (`{old}`); staging removed")
    what = f"the table(s) {', '.join(journal.move_in)} of `{db}`" if req.tables else f"`{db}`"
    return RestoreResult(
        True,
        server.name,
        db,
        f"replaced {what} on {server.name}; the data it held is in the safety dump {safety}",
        bytes=res.bytes,
        safety_dump=safety,
        checks=checks,
        warnings=warnings,
    )


def _swap_plan(
    server: ServerConfig,
    req: RestoreRequest,
    stage: str,
    old: str,
    objects: list[DumpObject],
    run_id: int | None,
    warnings: list[str],
) -> swap_mod.SwapJournal:
    """What the swap moves, drops and creates. The whole database: every table out and in, every object of
    the target replaced by the dump's. `--tables`: only those tables move; the target's triggers on them are
    replaced by the dump's; its other tables and its views, routines and events stay (the dump's are created
    only where the target has none of that name, and `warnings` names the ones kept)."""
    db = req.target_db
    conn = mysql.connect(server)
    try:
        target_tables = [t.name for t in mysql.tables(conn, db) if t.kind != "VIEW"]
        staged = [t.name for t in mysql.tables(conn, stage) if t.kind != "VIEW"]
        have = mysql.object_names(conn, db)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA=%s",
                (db,),
            )
            trigger_table = dict(cur.fetchall())
            # a staged table's foreign key to a table that is not staged would name staging after the swap
            cur.execute(
                "SELECT TABLE_NAME, CONSTRAINT_NAME, UNIQUE_CONSTRAINT_SCHEMA, REFERENCED_TABLE_NAME "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA=%s",
                (stage,),
            )
            outside = [f"`{r[0]}` ({r[1]} → `{r[3]}`)" for r in cur.fetchall() if r[2] != stage or r[3] not in staged]
    finally:
        conn.close()
    if outside:
        raise RestoreError(
            f"the dump's foreign keys reference tables that are not restored: {', '.join(outside[:5])}; "
            f"add those tables to --tables. `{db}` was not touched"
        )
    stage_drop = swap_mod.show_creates(server, stage, only=None)
    stage_drop = [s for s in stage_drop if s[0] in ("TRIGGER", "VIEW")]
    if not req.tables:
        saved = swap_mod.show_creates(server, db)
        return swap_mod.SwapJournal(
            server.name,
            db,
            stage,
            old,
            move_out=target_tables,
            move_in=staged,
            drop_before=[s for s in saved if s[0] in ("TRIGGER", "VIEW")],
            drop_after=[s for s in saved if s[0] not in ("TRIGGER", "VIEW")],
            create=list(objects),
            stage_drop=stage_drop,
            run_id=run_id,
        )
    move_out = [t for t in target_tables if t in staged]
    their_triggers = [n for n, t in trigger_table.items() if t in move_out]
    drop_before = swap_mod.show_creates(server, db, only={"triggers": their_triggers})
    create, kept = [], []
    for o in objects:
        if o.kind != "trigger" and o.name in have.get(o.kind + "s", []):
            kept.append(f"{o.kind} `{o.name}`")
        else:
            create.append(o)
    if kept:
        warnings.append(f"the target keeps its own {', '.join(kept)}: with --tables the dump's version is not restored")
    ours = {o.name for o in objects if o.kind == "trigger"}
    gone = [f"`{n}`" for n in their_triggers if n not in ours]
    if gone:
        warnings.append(
            f"trigger(s) {', '.join(gone)} of the replaced tables are not in the dump: they go with the old "
            "tables (the safety dump holds them)"
        )
    return swap_mod.SwapJournal(
        server.name,
        db,
        stage,
        old,
        move_out=move_out,
        move_in=staged,
        drop_before=drop_before,
        drop_after=[],
        create=create,
        stage_drop=stage_drop,
        run_id=run_id,
    )


def recover_swaps(
    config: Config, server_name: str | None = None, step: StepCallback | None = None
) -> list[tuple[swap_mod.SwapJournal, str, bool]]:
    """Finish or roll back every `--replace` swap a killed process left half done (see backend/swap.py):
    (journal, what was done, resolved). Cheap when there is none: only the state store is read."""
    from .state import open_store

    try:
        with open_store(config) as store:
            done = swap_mod.recover(config, store, server=server_name)
    except DumpdeckError as exc:
        log.warning("swap recovery could not read the state store: %s", exc)
        return []
    for j, message, _ok in done:
        if step is not None:
            step(f"warning: an interrupted swap of `{j.database}` (pid {j.pid}) was {message}")
    return done


def cleanup_leftovers(config: Config, server_name: str | None, *, dry_run: bool = False) -> list[str]:
    """Drop `dumpdeck_stage_*` databases and `dumpdeck_rs_*` temporary accounts left by a restore whose runner
    was killed: never while a restore
    run is active on that server, never one a session is using. `dumpdeck_old_*` databases are not
    touched: after a swap they hold the replaced tables (the safety dump has them too)."""
    from .state import open_store

    server = config.server(server_name)
    with open_store(config) as store:
        store.reap_lost()
        if any(r.job == RESTORE_JOB and r.server == server.name for r in store.list_runs(active_only=True)):
            return []
    conn = mysql.connect(server)
    dropped = []
    like = STAGE_PREFIX.replace("_", "\\_") + "%"
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE %s", (like,))
            names = [r[0] for r in cur.fetchall()]
            cur.execute(
                "SELECT DISTINCT DB FROM information_schema.PROCESSLIST WHERE DB LIKE %s AND ID <> CONNECTION_ID()",
                (like,),
            )
            busy = {r[0] for r in cur.fetchall()}
            with open_store(config) as store:  # an open swap's staging belongs to its recovery
                busy |= {j.stage for j in swap_mod.open_journals(store)}
            for name in names:
                if name in busy:
                    continue
                if not dry_run:
                    cur.execute(f"DROP DATABASE IF EXISTS {mysql.quote_ident(name)}")
                dropped.append(name)
            # the temporary accounts of killed loads (no restore runs now: see above); one still connected is left
            acct_like = ACCOUNT_PREFIX.replace("_", "\\_") + "%"
            try:
                cur.execute("SELECT User, Host FROM mysql.user WHERE User LIKE %s", (acct_like,))
                accounts = [(str(u), str(h)) for u, h in cur.fetchall()]
                cur.execute("SELECT DISTINCT USER FROM information_schema.PROCESSLIST WHERE USER LIKE %s", (acct_like,))
                connected = {r[0] for r in cur.fetchall()}
            except pymysql.MySQLError as exc:
                log.warning("cannot list temporary restore accounts (SELECT on mysql.user): %s", exc)
                accounts = []
            for user, host in accounts:
                if not _ACCOUNT_RE.match(user) or user in connected:
                    continue
                if not dry_run:
                    cur.execute("DROP USER IF EXISTS %s@%s", (user, host))
                dropped.append(f"'{user}'@'{host}'")
    finally:
        conn.close()
    return dropped


# --------------------------------------------------------------------------- restores are runs


def start_restore(
    config: Config,
    req: RestoreRequest,
    *,
    trigger: Trigger = "cli",
    detach: bool = True,
    store: StateStore | None = None,
) -> Run:
    """Record a restore run (queued) with its request; with `detach`, spawn its runner. Returns the Run."""
    from .jobs import spawn_runner
    from .state import open_store

    own = store is None
    store = store or open_store(config)
    try:
        run = store.create_run(RESTORE_JOB, trigger, req.target_server, [req.target_db], log_dir=config.runs_log_dir)
        store.add_event(
            run.id,
            "info",
            "restore-request",
            f"restore {Path(req.path).name} into `{req.target_db}` on {req.target_server}"
            + (" (replace)" if req.replace else ""),
            req.to_dict(),
        )
        if detach:
            run = spawn_runner(config, store, run)
        return run
    finally:
        if own:
            store.close()


def request_of(store: StateStore, run_id: int) -> RestoreRequest | None:
    events = store.events(run_id, kind="restore-request", limit=1)
    return RestoreRequest.from_dict(events[0].data) if events else None


def run_restore(config: Config, store: StateStore, run: Run, cancel: threading.Event) -> tuple[RunStatus, str]:
    """The runner's body for a restore run: progress rows and events in the state store."""
    from .state import DbProgress

    req = request_of(store, run.id)
    if req is None:
        return RunStatus.FAILED, f"run {run.id}: no restore request recorded"
    started = datetime.now(UTC)
    base = DbProgress(run.id, req.target_db, DbStatus.RUNNING, started=started, updated=started)
    store.set_progress(base)
    state = {"last": 0.0}

    def on_step(msg: str) -> None:
        store.add_event(run.id, "warning" if msg.startswith("warning") else "info", "restore-step", msg)
        with contextlib.suppress(Exception):
            store.set_progress(dataclasses.replace(base, current_table=msg[:120], updated=datetime.now(UTC)))

    def on_progress(p: LoadProgress, total: int | None) -> None:
        now = time.monotonic()
        if now - state["last"] < 0.5:
            return
        state["last"] = now
        rate = p.bytes_loaded / p.elapsed if p.elapsed > 0 else 0.0
        with contextlib.suppress(Exception):
            store.set_progress(
                dataclasses.replace(
                    base,
                    bytes_raw=p.bytes_loaded,
                    rate=rate,
                    estimate=total,
                    current_table=f"{p.tables_done}/{len(plan_tables) or p.tables_seen} tables"
                    + (f" · {p.current}" if p.current else ""),
                    updated=datetime.now(UTC),
                )
            )

    plan_tables: list[str] = []
    with contextlib.suppress(Exception):
        plan_tables = make_plan(config, req).tables
    try:
        result = restore(config, req, on_step=on_step, on_progress=on_progress, cancel=cancel, run_id=run.id)
    except CancelledError as exc:
        store.set_progress(
            dataclasses.replace(base, status=DbStatus.CANCELLED, error=str(exc), updated=datetime.now(UTC))
        )
        return RunStatus.CANCELLED, str(exc)
    except DumpdeckError as exc:
        store.set_progress(dataclasses.replace(base, status=DbStatus.FAILED, error=str(exc), updated=datetime.now(UTC)))
        return RunStatus.FAILED, str(exc)
    store.set_progress(
        dataclasses.replace(
            base,
            status=DbStatus.SUCCEEDED,
            bytes_raw=result.bytes,
            estimate=result.bytes or None,
            rate=result.bytes / result.seconds if result.seconds else 0.0,
            current_table=None,
            updated=datetime.now(UTC),
        )
    )
    store.add_event(run.id, "info", "restore-done", result.message, result.to_dict())
    for w in result.warnings:
        store.add_event(run.id, "warning", "restore-warning", w)
    return RunStatus.SUCCEEDED, result.message + f" in {format_duration(result.seconds)}"
