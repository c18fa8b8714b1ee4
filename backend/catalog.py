"""Every dump on disk: dumps with manifests, dumps without, legacy files, partial leftovers.

Layout read (see backend.dump): `<backup_dir>/<server>/<safe db>/<safe db>-<UTC stamp>.sql[.ext]`
with a `.manifest.json` sidecar. Also read:

- legacy files of the old bash scripts, `<db>_<YYYYmmdd_HHMMSS>.sql[.gz|.xz]` lying straight in
  the backup directory: database and time come from the name; the time is taken as the
  **local time of this host** (the scripts used `date +%Y%m%d_%H%M%S`), converted to UTC;
- any other `*.sql`, `*.sql.gz`, `*.sql.xz`, `*.sql.zst` (no manifest): database from the name,
  time from the name's stamp or else the file's mtime;
- `*.partial` files: a dump being written (its writer holds an flock) or a leftover.

A missing or corrupt manifest never stops the scan: it shows in `manifest_error`.
The scan uses os.scandir and json only (10,000 dumps in well under a second).
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import gc
import json
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import encryption
from . import manifest as manifest_mod
from .codecs import Codec
from .errors import ManifestError
from .naming import unsafe_name
from .outcome import Outcome

DUMP_SUFFIXES = (".sql", ".sql.gz", ".sql.xz", ".sql.zst")
CODECS = {".sql" + codec.extension + age: codec for codec in Codec for age in ("", ".age")}  # file suffix → codec
_LEGACY = re.compile(r"^(?P<db>.+)_(?P<stamp>\d{8}_\d{6})\.sql(?:\.gz|\.xz)?$")
_MODERN = re.compile(r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}Z)\.sql(?:\.gz|\.xz|\.zst)?(?:\.age)?$")
MAX_DEPTH = 3  # server/database/file below the backup directory


@dataclass
class DumpEntry:
    path: Path
    server: str | None
    database: str
    when: datetime  # UTC, aware
    size: int
    codec: str
    manifest: manifest_mod.Manifest | None
    manifest_error: str | None
    legacy: bool
    verified_level: int  # 0 = never verified (or the last check failed at L1)
    verified_at: datetime | None
    last_result: Outcome | None  # outcome of the last verification; None = never verified
    last_level: int | None = None  # level reached by the last verification
    path_str: str = field(default="", repr=False, compare=False)  # str(path), kept: sorting 10k Paths by str() costs

    @property
    def key(self) -> str:
        return self.path_str or str(self.path)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def encrypted(self) -> bool:
        """age-encrypted: its manifest says so, or (no manifest) its name does."""
        if self.manifest is not None:
            return self.manifest.encryption is not None
        return self.key.endswith(encryption.EXTENSION)

    @property
    def codec_label(self) -> str:
        return encryption.codec_label(self.codec, self.encrypted)

    @property
    def problem(self) -> str | None:
        """A one-line description of what is wrong, if anything."""
        if self.manifest_error:
            return self.manifest_error
        if self.last_result is Outcome.FAILED:
            return f"last verification failed (reached level {self.last_level or 0})"
        return None


@dataclass
class PartialFile:
    path: Path
    size: int
    mtime: datetime
    live: bool  # a writer holds its flock


@dataclass
class Catalog:
    entries: list[DumpEntry] = field(default_factory=list)  # newest first
    partials: list[PartialFile] = field(default_factory=list)
    directory: Path | None = None
    errors: list[str] = field(default_factory=list)  # unreadable directories

    def for_database(self, server: str | None, db: str) -> list[DumpEntry]:
        return [e for e in self.entries if e.database == db and (server is None or e.server == server)]

    def latest(self, db: str, server: str | None = None) -> DumpEntry | None:
        found = self.for_database(server, db)
        return found[0] if found else None

    def latest_verified(self, db: str, server: str | None = None, min_level: int = 1) -> DumpEntry | None:
        for e in self.for_database(server, db):
            if e.verified_level >= min_level:
                return e
        return None

    def databases(self) -> list[tuple[str | None, str]]:
        seen: dict[tuple[str | None, str], None] = {}
        for e in self.entries:
            seen[(e.server, e.database)] = None
        return list(seen)

    def get(self, path: Path | str) -> DumpEntry | None:
        key = str(path)
        for e in self.entries:
            if e.key == key:
                return e
        return None


# --------------------------------------------------------------------------- helpers


def _stamp_utc(stamp: str) -> datetime | None:
    """`20261124T020000Z` → aware UTC datetime (fast path, no strptime)."""
    try:
        return datetime(
            int(stamp[0:4]),
            int(stamp[4:6]),
            int(stamp[6:8]),
            int(stamp[9:11]),
            int(stamp[11:13]),
            int(stamp[13:15]),
            tzinfo=UTC,
        )
    except ValueError:
        return None


def _legacy_time(stamp: str) -> datetime | None:
    """`20250101_020000` in the host's local time → aware UTC."""
    try:
        local = datetime(
            int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[9:11]), int(stamp[11:13]), int(stamp[13:15])
        )
    except ValueError:
        return None
    return local.astimezone().astimezone(UTC)


def _parse_iso(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def verification_state(
    history: list[manifest_mod.Verification],
) -> tuple[int, datetime | None, Outcome | None, int | None]:
    """(verified level, when it was reached, last outcome, last level) from a verification history.

    A run that did not fail raises the level to the one it reached; a failing one caps it at the
    level it reached, so a dump that passed L2 last week and fails L1 today shows level 0. A run
    that could not check (not checked) leaves the level where it was.
    """
    level, at = manifest_mod.proven_level(history)
    last = history[-1] if history else None
    return level, _parse_iso(at), (last.outcome if last else None), (last.level if last else None)


def _suffix(name: str) -> str | None:
    for suf in (".sql.zst.age", ".sql.gz.age", ".sql.xz.age", ".sql.age", ".sql.zst", ".sql.gz", ".sql.xz", ".sql"):
        if name.endswith(suf):
            return suf
    return None


_MANIFEST_FIELDS = frozenset(f.name for f in dataclasses.fields(manifest_mod.Manifest))
# In-process memo of parsed manifests, keyed by path and validated by (mtime_ns, size) of the
# manifest file: the console rescans every few seconds and most manifests never change.
# Entries' manifests are shared between scans: treat them as read-only.
_MEMO: dict[str, tuple[tuple[int, int], manifest_mod.Manifest | None, str | None]] = {}
_MEMO_MAX = 200_000


def _manifest_from(obj: Any) -> manifest_mod.Manifest:
    """Manifest.from_dict without its per-call reflection (the hot path of a 10,000-dump scan)."""
    if not isinstance(obj, dict) or obj.get("format_version") != manifest_mod.FORMAT_VERSION:
        return manifest_mod.Manifest.from_dict(obj)  # raises the proper ManifestError
    try:
        kw = {k: v for k, v in obj.items() if k in _MANIFEST_FIELDS}
        kw["tables"] = [manifest_mod.TableEntry(**t) for t in obj.get("tables") or ()]
        kw["verifications"] = [manifest_mod.Verification.from_dict(v) for v in obj.get("verifications") or ()]
        return manifest_mod.Manifest(**kw)
    except TypeError:
        return manifest_mod.Manifest.from_dict(obj)


def _load_manifest(path: str, mde: os.DirEntry[str] | None = None) -> tuple[manifest_mod.Manifest | None, str | None]:
    mpath = path + manifest_mod.SUFFIX
    memo = _MEMO.get(mpath)
    if memo is not None and mde is not None:
        try:
            st = mde.stat()
            if memo[0] == (st.st_mtime_ns, st.st_size):
                return memo[1], memo[2]
        except OSError:
            pass
    try:
        fd = os.open(mpath, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, None
    except OSError as exc:
        return None, f"manifest unreadable: {exc.strerror}"
    try:
        st = os.fstat(fd)
        sig = (st.st_mtime_ns, st.st_size)
        if memo is not None and memo[0] == sig:
            return memo[1], memo[2]
        chunks = []
        while True:
            b = os.read(fd, max(st.st_size + 1, 65536))
            if not b:
                break
            chunks.append(b)
        data = b"".join(chunks)
    except OSError as exc:
        return None, f"manifest unreadable: {exc.strerror}"
    finally:
        os.close(fd)
    result: tuple[manifest_mod.Manifest | None, str | None]
    try:
        result = _manifest_from(json.loads(data)), None
    except ValueError as exc:
        result = None, f"manifest corrupt: not valid JSON ({exc})"
    except ManifestError as exc:
        result = None, f"manifest corrupt: {exc}"
    except Exception as exc:  # never let one file break the scan
        result = None, f"manifest corrupt: {exc}"
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.clear()
    _MEMO[mpath] = (sig, result[0], result[1])
    return result


# --------------------------------------------------------------------------- scan


def scan(backup_dir: Path) -> Catalog:
    """Build the catalog of `backup_dir`. Never raises on a bad file."""
    backup_dir = Path(backup_dir)
    cat = Catalog(directory=backup_dir)
    gc_was = gc.isenabled()
    gc.disable()  # tens of thousands of small objects: collection passes would make the scan quadratic
    try:
        _walk(str(backup_dir), 0, [], cat)
    finally:
        # The scan leaves ~100 young objects per dump that will live as long as the catalog.
        # Re-enabling the collector as is would make the next allocation traverse all of them
        # (half the cold scan time at 10,000 dumps). freeze+unfreeze splices every tracked object
        # into the oldest generation in O(1) and resets the young count; they are still
        # collected normally by later full collections.
        gc.freeze()
        gc.unfreeze()
        if gc_was:
            gc.enable()
    cat.entries.sort(key=lambda e: (e.when, e.key), reverse=True)
    cat.partials.sort(key=lambda p: p.mtime, reverse=True)
    return cat


def _walk(directory: str, depth: int, parts: list[str], cat: Catalog) -> None:
    try:
        it = os.scandir(directory)
    except FileNotFoundError:
        if depth == 0:
            cat.errors.append(f"{directory} does not exist")
        return
    except OSError as exc:
        cat.errors.append(f"{directory}: {exc.strerror}")
        return
    subdirs = []
    names: dict[str, os.DirEntry[str]] = {}
    with it:
        for de in it:
            name = de.name
            if name.startswith("."):
                continue
            try:
                is_dir = de.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir:
                subdirs.append(de)
            else:
                names[name] = de
    for name, de in names.items():
        if name.endswith(".partial"):
            _add_partial(de, cat)
            continue
        suf = _suffix(name)
        if suf is None:
            continue
        entry = _entry(
            de,
            name,
            suf,
            depth,
            parts,
            names.get(name + manifest_mod.SUFFIX),
            name + manifest_mod.HISTORY_SUFFIX in names,
        )
        if entry is not None:
            cat.entries.append(entry)
    if depth < MAX_DEPTH:
        for de in subdirs:
            _walk(de.path, depth + 1, [*parts, de.name], cat)


def _entry(
    de: os.DirEntry[str],
    name: str,
    suf: str,
    depth: int,
    parts: list[str],
    mde: os.DirEntry[str] | None,
    has_history: bool,
) -> DumpEntry | None:
    has_manifest = mde is not None
    try:
        st = de.stat(follow_symlinks=True)
    except OSError:
        return None
    path = de.path
    manifest, error = _load_manifest(path, mde) if has_manifest else (None, None)
    legacy = False
    when: datetime | None = None
    database: str | None = None
    server: str | None = parts[0] if depth >= 2 else None
    if manifest is not None:
        database = manifest.database
        server = (manifest.server or {}).get("name") or server
        when = _parse_iso(manifest.started)
    m = _MODERN.match(name)
    if m:
        database = database or unsafe_name(m.group("db"))
        when = when or _stamp_utc(m.group("stamp"))
    elif depth == 0 and not has_manifest:
        lm = _LEGACY.match(name)
        if lm:
            legacy = True
            database = database or lm.group("db")
            when = when or _legacy_time(lm.group("stamp"))
    if database is None:
        database = unsafe_name(parts[1]) if depth >= 2 else name[: -len(suf)]
    if when is None:
        when = datetime.fromtimestamp(st.st_mtime, UTC)
    if manifest is not None:
        level, at, last, last_level = verification_state(manifest.verifications)
        codec = manifest.codec or CODECS[suf]
    else:
        level, at, last, last_level = 0, None, None, None
        codec = CODECS[suf]
        if has_history:  # a legacy or foreign dump's verification history (`<dump>.verify.json`)
            try:
                history = manifest_mod.load_history(Path(path))
            except ManifestError:
                history = None
            if history is not None:
                level, at, last, last_level = verification_state(history.verifications)
    return DumpEntry(
        path=Path(path),
        path_str=path,
        server=server,
        database=database,
        when=when,
        size=st.st_size,
        codec=codec,
        manifest=manifest,
        manifest_error=error,
        legacy=legacy,
        verified_level=level,
        verified_at=at,
        last_result=last,
        last_level=last_level,
    )


def _add_partial(de: os.DirEntry[str], cat: Catalog) -> None:
    try:
        st = de.stat(follow_symlinks=False)
    except OSError:
        return
    cat.partials.append(
        PartialFile(Path(de.path), st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), _is_locked(de.path))
    )


def _is_locked(path: str) -> bool:
    """True when another open file description holds an flock on `path` (its writer is alive)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def clean_partials(
    partials: Catalog | Path | str | Iterable[PartialFile],
    *,
    min_age: float = 0,
    dry_run: bool = False,
    now: datetime | float | None = None,
) -> list[Path]:
    """Remove leftover `.partial` files whose writer is gone (their lock can be taken): the one way
    dumpdeck removes orphan partials (`clean`, retention, the state store's reaper).

    `partials`: a scanned catalog, a backup directory to scan, or the partial files themselves.
    The lock is held while unlinking, so a writer cannot start on it in between.
    `min_age` (seconds since the last write) adds a margin; `dry_run` only lists them.
    """
    if isinstance(partials, Catalog):
        found: Iterable[PartialFile] = partials.partials
    elif isinstance(partials, (Path, str)):
        found = scan(Path(partials)).partials
    else:
        found = partials
    now_ts = now.timestamp() if isinstance(now, datetime) else (time.time() if now is None else now)
    return [p.path for p in found if remove_orphan_partial(p.path, min_age=min_age, now=now_ts, dry_run=dry_run)]


def remove_orphan_partial(
    path: Path | str, *, min_age: float = 0.0, now: float | None = None, wait: float = 0.0, dry_run: bool = False
) -> bool:
    """Remove one `.partial` file whose writer is gone; True when it was (or, dry, would be) removed.

    A writer holds the file's flock for as long as it writes, so a lock we can take means the
    writer is gone; we hold it while unlinking, so no writer can start on it in between.
    `min_age`: seconds since the last write. `wait`: for a writer known to be dead, how long to
    let the kernel drop its lock (a SIGKILLed multi-threaded runner shows as a zombie while its
    other threads still hold the shared file table for a moment).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    return False  # a live writer holds it
                time.sleep(0.05)
        if (now if now is not None else time.time()) - os.fstat(fd).st_mtime < min_age:
            return False
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:
                return False
            except OSError:
                return False
        return True
    finally:
        os.close(fd)


def delete(path: Path | str, reason: str) -> bool:
    """Delete one dump and its manifest (the dump first: a manifest never outlives its dump
    unnoticed). Logged with the reason. False when the dump was already gone."""
    import logging

    from .errors import DumpdeckError

    log = logging.getLogger("dumpdeck.catalog")
    path = Path(path)
    try:
        path.unlink()
        existed = True
    except FileNotFoundError:
        existed = False
    except OSError as exc:
        raise DumpdeckError(f"cannot delete {path}: {exc.strerror}") from None
    for side in (manifest_mod.manifest_path(path), manifest_mod.history_path(path)):
        try:
            side.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise DumpdeckError(f"deleted {path.name} but not {side.name}: {exc.strerror}") from None
    if existed:
        log.info("deleted %s (%s)", path, reason)
    return existed
