"""Off-host copies: every verified dump and its manifest, at every destination, verified there.

A dump qualifies for copying once it reached its job's verification level (`copies.<d>.after:
verify`). For each destination, independently of the others (a thread each; one down never blocks
another):

1. upload the dump under a temporary name, then move it to `<server>/<database>/<file>`
   (backend.rclone.copyto): a killed upload leaves only the temporary name, which nothing counts;
2. verify the remote object: its size, then its sha256 against the manifest (the storage's own
   SHA-256 through `rclone hashsum` where the backend has one, else read back with `rclone cat`);
3. record the result in the manifest's `copies` list and in the state store;
4. upload the manifest (it carries that record) the same way. The manifest at the destination is
   what marks a copy complete for any host reading it (`list --remote`, restore `--from`).

A copy that could not be made or did not verify is recorded as failed with the cause, and tried
again by later runs after `retry_delay`, doubling each time (at most a day). The local dump stays.

Retention at a destination (`copies.<d>.retention`) uses backend.retention's rules on the remote
catalog; its floor is the newest copy that verified there, re-checked (sha256 at the destination,
now) before anything of that database is deleted there.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from . import manifest as manifest_mod
from . import rclone, retention
from .catalog import Catalog, DumpEntry
from .config import Config, CopyDestination, RetentionPolicy
from .errors import CopyError, ManifestError, UsageError
from .outcome import Outcome
from .selection import covers
from .state import CopyRecord, StateStore
from .units import format_duration
from .vocabulary import EventLevel

log = logging.getLogger("dumpdeck.copies")

MAX_BACKOFF = 86400.0
HASHSUM = "hashsum"  # the storage reported the sha256 itself
READ_BACK = "read back"  # the object was read back through rclone cat and hashed here


def _now() -> datetime:
    return datetime.now(UTC)


def destination(config: Config, name: str) -> CopyDestination:
    try:
        return config.copies[name]
    except KeyError:
        known = ", ".join(config.copies) or "none"
        raise UsageError(f"no copy destination named {name!r} in {config.path}; configured: {known}") from None


# --------------------------------------------------------------------------- which dumps


def rel_path(config: Config, entry: DumpEntry) -> str | None:
    """`<server>/<database dir>/<file>` of a managed dump (its path below the backup directory)."""
    if entry.legacy or entry.server is None:
        return None
    try:
        rel = Path(entry.path).resolve().relative_to(Path(config.backup.dir).resolve())
    except ValueError:
        return None
    return PurePosixPath(*rel.parts).as_posix() if len(rel.parts) == 3 else None


def required_level(config: Config, entry: DumpEntry) -> int:
    """The verification level a dump must reach before it is copied: its job's `verify` (the lowest
    of the jobs covering it), or 1 for a dump no job covers."""
    levels = [
        j.verify for j in config.jobs.values() if entry.server is not None and covers(j, entry.server, entry.database)
    ]
    return min(levels) if levels else 1


def qualifies(config: Config, entry: DumpEntry) -> bool:
    """A dump with a manifest that reached its verification level and whose last verification did not fail."""
    return (
        entry.manifest is not None
        and not entry.manifest_error
        and entry.last_result is not Outcome.FAILED
        and entry.verified_level >= required_level(config, entry)
        and rel_path(config, entry) is not None
    )


def due(
    config: Config,
    store: StateStore,
    catalog: Catalog,
    dest: CopyDestination,
    *,
    server: str | None = None,
    databases: Iterable[str] | None = None,
    now: datetime | None = None,
    force: bool = False,
) -> list[DumpEntry]:
    """Dumps to copy to `dest` now: qualifying, without a verified copy there, and past their backoff
    (`force`: whatever the backoff says). Oldest first, so a backlog drains in order."""
    now = now or _now()
    dbs = set(databases) if databases is not None else None
    records = {r.file: r for r in store.copies(dest.name)}
    out = []
    for e in catalog.entries:
        if server is not None and e.server != server:
            continue
        if dbs is not None and e.database not in dbs:
            continue
        if not qualifies(config, e):
            continue
        r = records.get(e.key)
        if r is not None and r.removed is not None:
            continue  # its destination's retention deleted it there
        if r is not None and r.outcome is Outcome.PASSED and r.sha256 == (e.manifest.sha256 if e.manifest else None):
            continue
        if r is not None and not force and r.next_try is not None and r.next_try > now:
            continue
        out.append(e)
    out.sort(key=lambda e: e.when)
    return out


# --------------------------------------------------------------------------- one copy


@dataclass
class CopyResult:
    destination: str
    file: str  # the local dump
    remote_path: str
    outcome: Outcome
    evidence: str
    cause: str | None = None  # why it failed, in a word: unreachable, wrong credentials, full, …
    method: str | None = None
    size: int | None = None
    sha256: str | None = None

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


def verify_remote(dest: CopyDestination, rel: str, size: int, sha256: str) -> CopyResult:
    """Size, then sha256 of the object at the destination, against what the manifest says.
    A destination that cannot be read gives NOT_CHECKED (it says nothing about the copy)."""
    res = CopyResult(dest.name, "", rel, Outcome.NOT_CHECKED, "")
    try:
        st = rclone.stat(dest, rel)
        if st is None:
            res.outcome, res.evidence, res.cause = Outcome.FAILED, f"{rel} is not at {dest.name}", "missing"
            return res
        res.size = st.size
        if st.size != size:
            res.outcome = Outcome.FAILED
            res.evidence = f"size {st.size} at {dest.name}, the manifest says {size}"
            res.cause = "size differs"
            return res
        digest = rclone.hashsum_sha256(dest, rel)
        res.method = HASHSUM
        if digest is None:
            res.method = READ_BACK
            h = hashlib.sha256()
            n = 0
            cat = rclone.Cat(dest, rel)
            try:
                for chunk in cat.chunks():
                    h.update(chunk)
                    n += len(chunk)
            except BaseException:
                cat.close(check=False)
                raise
            cat.close()
            digest = h.hexdigest()
            if n != size:
                res.outcome, res.evidence, res.cause = (
                    Outcome.FAILED,
                    f"read back {n} bytes, expected {size}",
                    "size differs",
                )
                return res
        res.sha256 = digest
        if digest != sha256:
            res.outcome = Outcome.FAILED
            res.evidence = f"sha256 at {dest.name} is {digest[:16]}…, the manifest says {sha256[:16]}… ({res.method})"
            res.cause = "sha256 differs"
            return res
        res.outcome = Outcome.PASSED
        res.evidence = f"{size} bytes, sha256 {digest[:16]}… matches ({res.method})"
        return res
    except CopyError as exc:
        res.outcome, res.evidence, res.cause = Outcome.NOT_CHECKED, str(exc), exc.cause
        return res


def _manifest_record(res: CopyResult, at: datetime) -> dict[str, Any]:
    return {
        "destination": res.destination,
        "path": res.remote_path,
        "size": res.size,
        "sha256": res.sha256,
        "verified_at": at.isoformat(timespec="seconds") if res.passed else None,
        "checked_at": at.isoformat(timespec="seconds"),
        "outcome": str(res.outcome),
        "method": res.method,
        "error": None if res.passed else res.evidence,
    }


def _record_in_manifest(path: Path, res: CopyResult, at: datetime) -> manifest_mod.Manifest | None:
    """Replace this destination's record in the dump's manifest; the updated manifest (None if gone)."""
    try:
        with manifest_mod.locked(path):
            m = manifest_mod.load(path)
            m.copies = [c for c in m.copies if c.get("destination") != res.destination]
            m.copies.append(_manifest_record(res, at))
            manifest_mod.save(m, path)
            return m
    except ManifestError as exc:
        log.warning("copies: cannot record the copy of %s in its manifest: %s", path.name, exc)
        return None


def _record(store: StateStore, entry: DumpEntry, dest: CopyDestination, res: CopyResult, now: datetime) -> CopyRecord:
    prev = next(iter(store.copies(dest.name, entry.key)), None)
    if res.passed:
        rec = CopyRecord(
            entry.key, dest.name, entry.server, entry.database, res.remote_path, Outcome.PASSED,
            res.size, res.sha256, res.method, now, 0, None, None,
        )  # fmt: skip
    else:
        attempts = (prev.attempts if prev is not None else 0) + 1
        delay = min(dest.retry_delay * 2 ** (attempts - 1), MAX_BACKOFF)
        rec = CopyRecord(
            entry.key, dest.name, entry.server, entry.database, res.remote_path,
            Outcome.FAILED if res.outcome is Outcome.FAILED or res.cause else res.outcome,
            res.size, res.sha256, res.method, None, attempts, now + timedelta(seconds=delay), res.evidence,
        )  # fmt: skip
    store.set_copy(rec)
    return rec


def copy_dump(config: Config, store: StateStore, dest: CopyDestination, entry: DumpEntry) -> CopyResult:
    """Upload, verify and record one dump (and then its manifest) at one destination."""
    rel = rel_path(config, entry)
    m = entry.manifest
    if rel is None or m is None:
        raise UsageError(f"{entry.path.name}: only dumps with a manifest below backup.dir are copied")
    now = _now()
    res = CopyResult(dest.name, entry.key, rel, Outcome.FAILED, "")
    tried = bool(store.copies(dest.name, entry.key))  # an earlier try may have left an object at the final name
    try:
        rclone.copyto(dest, entry.path, rel, replace=tried)
    except CopyError as exc:
        res.evidence, res.cause = str(exc), exc.cause
    else:
        checked = verify_remote(dest, rel, m.bytes_stored, m.sha256)
        res.outcome, res.evidence, res.cause = checked.outcome, checked.evidence, checked.cause
        res.method, res.size, res.sha256 = checked.method, checked.size, checked.sha256
    if res.cause == "cancelled":  # stopped, not failed: nothing recorded, the next run copies it
        res.outcome = Outcome.NOT_CHECKED
        return res
    updated = _record_in_manifest(entry.path, res, now)
    if res.passed:
        try:
            if updated is None:
                raise CopyError(f"copies.{dest.name}: the manifest of {entry.path.name} cannot be read", "failed")
            data = json.dumps(updated.to_dict(), indent=2, ensure_ascii=False).encode() + b"\n"
            rclone.upload_bytes(dest, data, rel + manifest_mod.SUFFIX)
        except CopyError as exc:
            res.outcome = Outcome.FAILED
            res.evidence = f"the dump verified, but its manifest could not be uploaded: {exc}"
            res.cause = exc.cause
            _record_in_manifest(entry.path, res, now)
    _record(store, entry, dest, res, now)
    return res


# --------------------------------------------------------------------------- a run's copies


EVENT_LEVEL: dict[Outcome, EventLevel] = {
    Outcome.PASSED: "info",
    Outcome.FAILED: "error",
    Outcome.NOT_CHECKED: "warning",
}


def run_copies(
    config: Config,
    store: StateStore,
    catalog: Catalog,
    *,
    run_id: int | None = None,
    server: str | None = None,
    databases: Iterable[str] | None = None,
    only: Iterable[str] | None = None,
    force: bool = False,
    cancel: threading.Event | None = None,
    deadline: float | None = None,
    on_result: Callable[[CopyResult], None] | None = None,
) -> dict[str, list[CopyResult]]:
    """Copy what is due to every destination (or the `only` ones), a thread per destination. `cancel`
    and `deadline` (time.monotonic(): the rest of a job's max_runtime) stop the rclone command under way
    too, not only the next: a stopped copy is retried by a later run."""
    dbs = list(databases) if databases is not None else None
    names = list(only) if only is not None else list(config.copies)
    dests = [destination(config, n) for n in names]

    halt = threading.Event()  # this thread interrupted (Ctrl-C on `dumpdeck copy`): the uploads stop too
    stop = rclone.Stop((halt,) if cancel is None else (cancel, halt), deadline)

    def one(dest: CopyDestination) -> list[CopyResult]:
        with rclone.stopping(stop):
            return each(dest)

    def each(dest: CopyDestination) -> list[CopyResult]:
        out = []
        for entry in due(config, store, catalog, dest, server=server, databases=dbs, force=force):
            if stop.reason() is not None:
                break
            try:
                res = copy_dump(config, store, dest, entry)
            except Exception as exc:  # one broken dump must not stop the destination's others
                log.exception("copy of %s to %s crashed", entry.path.name, dest.name)
                res = CopyResult(
                    dest.name, entry.key, rel_path(config, entry) or "", Outcome.FAILED, f"internal error: {exc}"
                )
            out.append(res)
            _event(store, run_id, entry, res)
            if on_result is not None:
                on_result(res)
        return out

    results: dict[str, list[CopyResult]] = {}
    if not dests:
        return results
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(dests), thread_name_prefix="copies") as pool:
        futures = {pool.submit(one, d): d.name for d in dests}
        for fut, name in futures.items():
            try:
                results[name] = fut.result()
            except Exception as exc:
                log.exception("copies to %s crashed", name)
                store.add_event(
                    run_id, "error", "copy-failed", f"copies to {name} failed: {exc}", {"destination": name}
                )
                results[name] = []
            except BaseException:  # KeyboardInterrupt, SystemExit: the rclone children stop too
                halt.set()
                raise
    return results


def _event(store: StateStore, run_id: int | None, entry: DumpEntry, res: CopyResult) -> None:
    data = {
        "destination": res.destination,
        "file": entry.key,
        "remote_path": res.remote_path,
        "outcome": str(res.outcome),
        "cause": res.cause,
    }
    if res.passed:
        store.add_event(
            run_id, "info", "copy", f"{entry.database}: copied to {res.destination} and verified: {res.evidence}", data
        )
        log.info("copies: %s copied to %s and verified", entry.path.name, res.destination)
    else:
        store.add_event(
            run_id, "error", "copy-failed",
            f"{entry.database}: copy to {res.destination} failed ({res.cause or res.outcome.label}): {res.evidence}; "
            f"the local dump stays, a later run tries again",
            data,
        )  # fmt: skip
        log.error("copies: %s to %s failed (%s): %s", entry.path.name, res.destination, res.cause, res.evidence)


# --------------------------------------------------------------------------- where each dump's copies are


@dataclass
class CopyState:
    destination: str
    state: str  # verified | failed | pending
    detail: str = ""
    record: CopyRecord | None = None


def states_for(config: Config, entry: DumpEntry, records: dict[tuple[str, str], CopyRecord]) -> list[CopyState]:
    """Per destination: verified, failed (with why and when it is tried again), or pending (due, not made yet).
    Empty for a dump that does not qualify (yet) or when no destination is configured."""
    if not config.copies or not qualifies(config, entry):
        return []
    out = []
    for name in config.copies:
        r = records.get((entry.key, name))
        if r is not None and r.removed is not None:
            out.append(CopyState(name, "removed", f"deleted there by its retention {r.removed:%Y-%m-%d}", r))
        elif r is None:
            out.append(CopyState(name, "pending", "not copied yet"))
        elif r.outcome is Outcome.PASSED:
            when = r.verified_at.isoformat(timespec="seconds") if r.verified_at else "?"
            out.append(CopyState(name, "verified", f"verified {when} ({r.method})", r))
        else:
            nxt = f"; next try after {r.next_try.isoformat(timespec='seconds')}" if r.next_try else ""
            out.append(CopyState(name, "failed", f"{r.error or 'failed'} (attempt {r.attempts}{nxt})", r))
    return out


def record_index(store: StateStore) -> dict[tuple[str, str], CopyRecord]:
    return {(r.file, r.destination): r for r in store.copies()}


def summary_text(states: list[CopyState]) -> str:
    """`offsite ✓ nas pending` style one-liner for tables."""
    marks = {"verified": "✓", "failed": "✗", "pending": "…", "removed": "-"}
    return " ".join(f"{s.destination}{marks.get(s.state, '?')}" for s in states)


def unshipped(config: Config, store: StateStore, catalog: Catalog) -> dict[str, str]:
    """Dumps local retention must keep: qualifying ones with no verified copy at any destination yet
    (the local file is the only verified copy there is). Empty when no destination is configured."""
    if not config.copies:
        return {}
    verified = {r.file for r in store.copies() if r.outcome is Outcome.PASSED}
    return {
        e.key: "copies: not yet copied to any destination (the only verified copy of this dump is here)"
        for e in catalog.entries
        if qualifies(config, e) and e.key not in verified
    }


@dataclass
class CopyWarning:
    destination: str
    server: str | None
    database: str
    message: str
    kind: str = "stale"  # stale: no verified copy recent enough; pending: copies failed or not made yet


def check_copies(config: Config, store: StateStore, catalog: Catalog, now: datetime | None = None) -> list[CopyWarning]:
    """`dumpdeck check`: per destination and database, no verified copy within `max_age`; and copies
    that failed or are pending."""
    now = now or _now()
    out: list[CopyWarning] = []
    if not config.copies:
        return out
    records = record_index(store)
    for name, dest in config.copies.items():
        for server, db in catalog.databases():
            entries = [e for e in catalog.for_database(server, db) if qualifies(config, e)]
            if not entries:
                continue
            verified = [
                e for e in entries if (r := records.get((e.key, name))) is not None and r.outcome is Outcome.PASSED
            ]
            newest = verified[0] if verified else None
            if newest is None:
                out.append(CopyWarning(name, server, db, f"{server}/{db}: no verified copy at {name}"))
            elif (now - newest.when).total_seconds() > dest.max_age:
                age = format_duration((now - newest.when).total_seconds())
                limit = format_duration(dest.max_age)
                text = f"{server}/{db}: newest verified copy at {name} is {age} old (max_age {limit})"
                out.append(CopyWarning(name, server, db, text))
            failed = [
                e
                for e in entries
                if (r := records.get((e.key, name))) is not None
                and r.outcome is not Outcome.PASSED
                and r.removed is None
            ]
            pending = [e for e in entries if (e.key, name) not in records]
            if failed or pending:
                parts = []
                if failed:
                    r = records[(failed[0].key, name)]
                    parts.append(f"{len(failed)} failed (last: {r.error})")
                if pending:
                    parts.append(f"{len(pending)} not copied yet")
                out.append(
                    CopyWarning(name, server, db, f"{server}/{db}: copies to {name} pending: " + ", ".join(parts))
                )
    return out


# --------------------------------------------------------------------------- verify --remote


def in_subset(rel: str, subset: tuple[int, int] | None) -> bool:
    """restic --read-data-subset n/m: a stable share of the copies, by a checksum of the path."""
    if subset is None:
        return True
    n, m = subset
    return zlib.crc32(rel.encode()) % m == n - 1


def parse_subset(text: str) -> tuple[int, int]:
    try:
        n, m = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--subset {text!r}: expected N/M, e.g. 1/7 (the first seventh of the copies)") from None
    if not (m >= 1 and 1 <= n <= m):
        raise UsageError(f"--subset {text!r}: N must be between 1 and M")
    return n, m


def verify_copies(
    config: Config,
    store: StateStore,
    catalog: Catalog,
    dest_name: str,
    *,
    subset: tuple[int, int] | None = None,
    on_result: Callable[[CopyResult], None] | None = None,
) -> list[CopyResult]:
    """Re-check this host's copies at one destination (size + sha256 now). A copy that fails is recorded
    failed (no longer a retention floor; a later run copies it again); one that cannot be read is
    not checked and keeps its state."""
    dest = destination(config, dest_name)
    by_key = {e.key: e for e in catalog.entries}
    out = []
    for r in sorted(store.copies(dest.name), key=lambda r: r.remote_path):
        if r.outcome is not Outcome.PASSED or r.removed is not None or not in_subset(r.remote_path, subset):
            continue
        entry = by_key.get(r.file)
        m = entry.manifest if entry is not None else None
        size = m.bytes_stored if m is not None else r.size
        sha = m.sha256 if m is not None else r.sha256
        if size is None or sha is None:
            continue
        res = verify_remote(dest, r.remote_path, size, sha)
        res.file = r.file
        now = _now()
        if res.outcome is not Outcome.NOT_CHECKED:
            if res.passed:
                r.verified_at, r.method = now, res.method
            else:
                r.outcome, r.error, r.attempts, r.next_try = Outcome.FAILED, res.evidence, 1, now
            store.set_copy(r)
            if entry is not None and Path(entry.path).exists():
                updated = _record_in_manifest(entry.path, res, now)
                if updated is not None:
                    data = json.dumps(updated.to_dict(), indent=2, ensure_ascii=False).encode() + b"\n"
                    try:
                        rclone.upload_bytes(dest, data, r.remote_path + manifest_mod.SUFFIX)
                    except CopyError as exc:
                        log.warning(
                            "verify --remote: manifest of %s not updated at %s: %s", r.remote_path, dest.name, exc
                        )
        store.add_event(
            None, EVENT_LEVEL[res.outcome], "copy-verify",
            f"verify --remote {dest.name}: {r.remote_path}: {res.outcome.label}: {res.evidence}",
            {"destination": dest.name, "remote_path": r.remote_path, "outcome": str(res.outcome)},
        )  # fmt: skip
        out.append(res)
        if on_result is not None:
            on_result(res)
    return out


# --------------------------------------------------------------------------- the remote catalog


@dataclass
class RemoteDump:
    """One dump at a destination, as any host sees it: the object and its manifest."""

    destination: str
    rel: str  # <server>/<database>/<file>
    server: str
    database: str
    when: datetime
    size: int
    manifest: manifest_mod.Manifest | None
    manifest_error: str | None
    copy: dict[str, Any] | None = None  # this destination's record in the manifest

    @property
    def name(self) -> str:
        return PurePosixPath(self.rel).name

    @property
    def verified(self) -> bool:
        return self.copy is not None and self.copy.get("outcome") == Outcome.PASSED.value

    @property
    def status(self) -> str:
        if self.manifest is None:
            return f"incomplete: {self.manifest_error}"
        if self.copy is None:
            return "no copy record"
        if self.verified:
            return f"verified {self.copy.get('verified_at')}"
        return f"failed: {self.copy.get('error')}"


def remote_catalog(config: Config, dest_name: str, *, server: str | None = None) -> list[RemoteDump]:
    """Every dump at a destination (all servers, or one), newest first: `rclone lsjson`, then each manifest.
    A dump without its manifest there is listed as incomplete (an upload that never finished)."""
    from .catalog import _MODERN, _stamp_utc, _suffix

    dest = destination(config, dest_name)
    files = rclone.lsjson(dest, server or "")
    names = {f.rel for f in files}
    bulk = _all_manifests(dest, server) if any(n.endswith(manifest_mod.SUFFIX) for n in names) else {}
    out = []
    for f in files:
        if f.rel.endswith(rclone.TMP_SUFFIX) or _suffix(PurePosixPath(f.rel).name) is None:
            continue
        parts = PurePosixPath(f.rel).parts
        if len(parts) != 3:
            continue
        srv, _dbdir, name = parts
        mt = _MODERN.match(name)
        when = (_stamp_utc(mt.group("stamp")) if mt else None) or datetime.fromtimestamp(0, UTC)
        m: manifest_mod.Manifest | None = None
        err: str | None = None
        mrel = f.rel + manifest_mod.SUFFIX
        if mrel not in names:
            err = "no manifest at the destination"
        elif (srv, name) in bulk:
            m = bulk[(srv, name)]
        else:
            try:
                m = manifest_mod.Manifest.from_dict(json.loads(rclone.read_bytes(dest, mrel)))
            except (ValueError, ManifestError, CopyError) as exc:
                err = f"manifest unreadable: {exc}"
        db = m.database if m is not None else (mt.group("db") if mt else name)
        rec = next((c for c in m.copies if c.get("destination") == dest.name), None) if m is not None else None
        out.append(RemoteDump(dest.name, f.rel, srv, db, when, f.size, m, err, rec))
    out.sort(key=lambda d: d.when, reverse=True)
    return out


def _all_manifests(dest: CopyDestination, server: str | None) -> dict[tuple[str, str], manifest_mod.Manifest]:
    """Every manifest at a destination in one `rclone cat --include *.manifest.json`, keyed by (server, dump
    file name). A manifest that does not parse, or a key seen twice, is left out: it is read on its own."""
    try:
        data = rclone.read_bytes(dest, server or "", 1 << 30, include="*" + manifest_mod.SUFFIX).decode()
    except (CopyError, UnicodeDecodeError):
        return {}
    out: dict[tuple[str, str], manifest_mod.Manifest] = {}
    seen: set[tuple[str, str]] = set()
    decoder = json.JSONDecoder()
    i = 0
    while True:
        while i < len(data) and data[i].isspace():
            i += 1
        if i >= len(data):
            break
        try:
            obj, i = decoder.raw_decode(data, i)
            m = manifest_mod.Manifest.from_dict(obj)
        except (ValueError, ManifestError):
            return out  # the stream cannot be split further: the rest is read file by file
        key = (str((m.server or {}).get("name")), m.file)
        if key in seen:
            out.pop(key, None)
        else:
            seen.add(key)
            out[key] = m
    return out


def find_remote(
    config: Config, dest_name: str, *, latest: str | None = None, path: str | None = None, server: str | None = None
) -> RemoteDump:
    """The remote dump a restore streams: the newest verified copy of database `latest`, or the one at `path`."""
    dumps = remote_catalog(config, dest_name, server=server)
    if path is not None:
        rel = path.strip("/")
        found = next((d for d in dumps if d.rel == rel), None)
        if found is None:
            raise UsageError(f"{rel}: no such dump at {dest_name} (dumpdeck list --remote {dest_name} lists them)")
        return found
    assert latest is not None
    cands = [d for d in dumps if d.database == latest and d.manifest is not None]
    if not cands:
        raise UsageError(f"no dump of database {latest!r} at {dest_name}")
    verified = [d for d in cands if d.verified]
    return (verified or cands)[0]


# --------------------------------------------------------------------------- retention at a destination


@dataclass
class RemotePlan:
    destination: str
    decisions: list[retention.Decision] = field(default_factory=list)
    rels: dict[int, str] = field(default_factory=dict)  # id(entry) -> remote path
    held: list[str] = field(default_factory=list)  # databases whose floor did not re-check
    deleted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _as_entry(d: RemoteDump, store_records: dict[str, CopyRecord]) -> DumpEntry:
    """A remote dump in the shape retention.plan reads. A copy that verified counts as verified at
    the level the dump reached; one whose verification failed (here or in this host's state) is failed."""
    local = store_records.get(d.rel)
    verified = d.verified and not (local is not None and local.outcome is Outcome.FAILED)
    failed = (d.copy is not None and not d.verified) or (local is not None and local.outcome is Outcome.FAILED)
    level = max(d.manifest.verified_level, retention.FLOOR_LEVEL) if d.manifest is not None and verified else 0
    return DumpEntry(
        path=Path(d.rel), server=d.server, database=d.database, when=d.when, size=d.size, codec="",
        manifest=d.manifest, manifest_error=d.manifest_error, legacy=False, verified_level=level,
        verified_at=None, last_result=Outcome.FAILED if failed else (Outcome.PASSED if verified else None),
    )  # fmt: skip


def plan_remote(config: Config, store: StateStore, dest_name: str, now: datetime | None = None) -> RemotePlan:
    """The retention plan at one destination: retention.plan per database with the destination's policy
    (nothing is deleted without one). Dumps without a manifest there are kept (retention keeps what it
    cannot read); the floor is the newest copy that verified."""
    dest = destination(config, dest_name)
    policy = dest.retention or RetentionPolicy()
    records = {r.remote_path: r for r in store.copies(dest.name)}
    dumps = remote_catalog(config, dest_name)
    rp = RemotePlan(dest.name)
    entries = []
    for d in dumps:
        e = _as_entry(d, records)
        rp.rels[id(e)] = d.rel
        entries.append(e)
    rp.decisions = retention.plan(entries, policy, now)
    return rp


def apply_remote(config: Config, store: StateStore, rp: RemotePlan, *, dry_run: bool) -> RemotePlan:
    """Re-check each database's floor at the destination (sha256 now), then delete what the plan says
    (the dump, then its manifest). A database whose floor does not re-check keeps everything."""
    dest = destination(config, rp.destination)
    groups: dict[tuple[str | None, str], list[retention.Decision]] = {}
    for d in rp.decisions:
        groups.setdefault((d.entry.server, d.entry.database), []).append(d)
    for (server, db), ds in groups.items():
        if all(d.keep for d in ds):
            continue
        floor = None
        for d in sorted(ds, key=lambda d: d.entry.when, reverse=True):
            if d.entry.last_result is not Outcome.PASSED or d.entry.manifest is None:
                continue
            rel = rp.rels[id(d.entry)]
            res = verify_remote(dest, rel, d.entry.manifest.bytes_stored, d.entry.manifest.sha256)
            if res.passed:
                floor = d
                d.keep = True
                d.reasons.append(f"floor at {dest.name}: newest verified copy, re-checked now: {res.evidence}")
                break
            d.reasons.append(f"floor re-check at {dest.name}: {res.outcome.label}: {res.evidence}; not a floor")
            if res.outcome is Outcome.FAILED and not dry_run:
                for r in store.copies(dest.name):
                    if r.remote_path == rel:
                        r.outcome, r.error, r.next_try = Outcome.FAILED, res.evidence, _now()
                        store.set_copy(r)
        if floor is None:
            rp.held.append(f"{server}/{db}")
            for d in ds:
                if not d.keep:
                    d.keep = True
                    d.reasons.insert(
                        0, f"held: no copy of this database at {dest.name} passed the floor re-check; nothing deleted"
                    )
            log.error(
                "copies: retention at %s: nothing of %s/%s deleted: no copy passed the floor re-check",
                dest.name,
                server,
                db,
            )
    for d in rp.decisions:
        if d.keep:
            continue
        rel = rp.rels[id(d.entry)]
        if dry_run:
            rp.deleted.append(rel)
            continue
        try:
            rclone.deletefile(dest, rel)
            if d.entry.manifest is not None:
                rclone.deletefile(dest, rel + manifest_mod.SUFFIX)
        except CopyError as exc:
            rp.errors.append(str(exc))
            continue
        for r in store.copies(dest.name):
            if r.remote_path == rel:
                r.removed = _now()
                store.set_copy(r)
        log.info("copies: retention at %s deleted %s: %s", dest.name, rel, "; ".join(d.reasons))
        rp.deleted.append(rel)
    return rp


# --------------------------------------------------------------------------- restore-test from a destination


def restore_test_remote(
    config: Config,
    dump: RemoteDump,
    *,
    target: str | None = None,
    on_check: Callable[[Any], None] | None = None,
    parallel: int | None = None,
    cancel: threading.Event | None = None,
) -> Any:
    """Restore-test a dump where it is stored: `rclone cat` streams it into the confined load (no local
    file), hashed on the way and compared with the manifest stored beside it. Returns the VerifyReport."""
    from .restore import restore_test_stream

    if dump.manifest is None:
        raise UsageError(f"{dump.rel} at {dump.destination}: {dump.manifest_error}; it cannot be restore-tested")
    dest = destination(config, dump.destination)
    cat = rclone.Cat(dest, dump.rel)
    try:
        return restore_test_stream(
            cat.stdout, dump.manifest, config, label=f"{dest.name}:{dump.rel}", server=dump.server,
            target=target, on_check=on_check, parallel=parallel, cancel=cancel, finish=cat.close,
        )  # fmt: skip
    finally:
        if cat.proc.poll() is None:
            cat.close(check=False)


def record_remote_restore_test(config: Config, dump: RemoteDump, report: Any, *, origin: str = "") -> None:
    """The event a restore-test of a remote copy leaves (there is no local manifest to record it in):
    the one place the CLI and the console write it. `origin`: where it ran, added to the message."""
    label = f"{dump.destination}:{dump.rel}"
    with StateStore.open(config.state_db) as store:
        store.add_event(
            None,
            "info" if report.passed else "error" if report.failed else "warning",
            "restore-test",
            f"restore-test of {label}: {report.outcome.label}: {report.summary}" + (f" ({origin})" if origin else ""),
            {"destination": dump.destination, "remote_path": dump.rel, "outcome": report.outcome.value},
        )


# --------------------------------------------------------------------------- restore from a destination


def remote_source_info(config: Config, dest_name: str, rel: str) -> tuple[dict[str, Any], manifest_mod.Manifest]:
    """What backend.restore_real's plan shows of a source, for a copy at a destination (its manifest there)."""
    dump = find_remote(config, dest_name, path=rel)
    if dump.manifest is None:
        raise UsageError(f"{rel} at {dest_name}: {dump.manifest_error}; it cannot be restored")
    m = dump.manifest
    age = format_duration(max(0.0, (_now() - dump.when).total_seconds()))
    return (
        {
            "path": f"{dest_name}:{rel}",
            "database": m.database,
            "server": dump.server,
            "codec": m.codec,
            "size": dump.size,
            "bytes_raw": m.bytes_raw,
            "sha256": m.sha256,
            "level": m.verified_level if dump.verified else 0,
            "when": dump.when.isoformat(timespec="seconds"),
            "age": f"{age} old",
            "legacy": False,
        },
        m,
    )


def verify_remote_stream(config: Config, dest_name: str, rel: str) -> tuple[manifest_mod.Manifest, Any]:
    """Levels 1–3 of a copy at a destination, streamed through rclone cat (backend.verify.verify_stream)."""
    from .verify import verify_stream

    _info, m = remote_source_info(config, dest_name, rel)
    dest = destination(config, dest_name)
    cat = rclone.Cat(dest, rel)
    try:
        return m, verify_stream(f"{dest_name}:{rel}", cat.stdout, m, finish=cat.close)
    finally:
        if cat.proc.poll() is None:
            cat.close(check=False)


def remote_chunks(config: Config, dest_name: str, rel: str, codec: str | None) -> Iterator[bytes]:
    """The decoded SQL of a copy at a destination, streamed (rclone cat → decoder); CopyError at the end
    when the stream from the destination broke, StreamError when it did not decode."""
    from .loader import decoded_chunks

    dest = destination(config, dest_name)
    cat = rclone.Cat(dest, rel)
    ok = False
    try:
        yield from decoded_chunks(Path(PurePosixPath(rel).name), codec, cat.stdout)
        ok = True
    finally:
        cat.close(check=ok)
