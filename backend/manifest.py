"""The manifest sidecar: `<dump>.manifest.json`, written atomically.

It describes one dump (server, tool, options, timings, sizes, sha256, the
inventory of tables and objects, binlog coordinates) and accumulates the
verification history: each verification appends a record with its time,
level, result and evidence.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ManifestError
from .outcome import Outcome

FORMAT_VERSION = 1
SUFFIX = ".manifest.json"


@dataclass
class TableEntry:
    name: str
    engine: str | None
    rows: int  # estimate from information_schema (InnoDB: approximate)
    bytes: int  # data + index
    exact_rows: int | None = None  # filled by a restore-test or an exact count


@dataclass
class Verification:
    """One verification run: `level` is the level it proved (reached), `outcome` its verdict.

    Older manifests hold `passed: bool` instead of `outcome`; they read as passed/failed."""

    level: int
    outcome: Outcome
    at: str  # ISO 8601 UTC
    checks: list[dict[str, Any]] = field(default_factory=list)  # {name, outcome, evidence, level, …}
    target: str | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        self.outcome = Outcome.of(self.outcome)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Verification:
        if not isinstance(data, dict):
            raise ManifestError("a verification record is not a JSON object")
        d = dict(data)
        legacy = d.pop("passed", None)
        if "outcome" not in d:
            d["outcome"] = Outcome.PASSED if legacy else Outcome.FAILED
        try:
            d["outcome"] = Outcome.of(d["outcome"])
        except ValueError:
            raise ManifestError(f"unknown verification outcome {d['outcome']!r}") from None
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def proven_level(history: list[Verification]) -> tuple[int, str | None]:
    """(level, when) the history proves now: each run that did not fail raises the level to the one
    it reached; a failed run caps it at the level that run reached. A not-checked run never lowers it."""
    level, at = 0, None
    for v in history:
        if v.failed:
            if v.level < level:
                level, at = v.level, (v.at if v.level else None)
        elif v.level and v.level >= level:
            level, at = v.level, v.at
    return level, at


def check_outcome(check: dict[str, Any]) -> Outcome:
    """The outcome of one check record of a manifest (`outcome`, or an older `passed`)."""
    if "outcome" in check:
        try:
            return Outcome.of(check["outcome"])
        except ValueError:
            return Outcome.NOT_CHECKED
    return Outcome.of(bool(check.get("passed", False)))


@dataclass
class Manifest:
    database: str
    server: dict[str, Any]  # name, host, flavour, version
    tool: dict[str, Any]  # path, version
    options: list[str]
    started: str
    finished: str
    duration: float
    bytes_raw: int
    bytes_stored: int
    codec: str
    level: int
    sha256: str
    file: str  # base name of the dump file
    tables: list[TableEntry] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    procedures: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    sequences: list[str] = field(default_factory=list)  # MariaDB sequences (not in `tables`)
    excluded: list[str] = field(default_factory=list)  # tables left out by the job's tables.include/exclude
    tags: list[str] = field(default_factory=list)  # e.g. "pre-restore": the safety dump taken before a restore
    non_transactional: list[str] = field(default_factory=list)
    coordinates: dict[str, Any] = field(default_factory=dict)  # binlog_file, binlog_position, gtid
    warnings: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # trend flags: small, large, slow
    run_id: int | None = None
    # Encrypted at rest (backend.encryption): {method: age, tool, recipients (public keys), fingerprints};
    # `sha256` is then that of the encrypted file as stored, `sha256_sql` that of the plaintext SQL.
    encryption: dict[str, Any] | None = None
    sha256_sql: str | None = None
    verifications: list[Verification] = field(default_factory=list)
    # off-host copies, one record per destination (backend.copies): destination, path, size, sha256,
    # verified_at, outcome, method, error
    copies: list[dict[str, Any]] = field(default_factory=list)
    # zstd frames per compression level ("1": 310, "3": 20): backup.adaptive_level takes level 1 where it
    # is no larger; empty for the other codecs and for dumps from before it
    frame_levels: dict[str, int] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    # ------------------------------------------------------------------ derived

    @property
    def verified_level(self) -> int:
        return proven_level(self.verifications)[0]

    @property
    def last_verification(self) -> Verification | None:
        return self.verifications[-1] if self.verifications else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"unsupported manifest format_version {version!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        try:
            kwargs["tables"] = [TableEntry(**t) for t in data.get("tables", [])]
            kwargs["verifications"] = [Verification.from_dict(v) for v in data.get("verifications", [])]
            return cls(**kwargs)
        except TypeError as exc:
            raise ManifestError(f"manifest is malformed: {exc}") from None


def manifest_path(dump_path: Path) -> Path:
    return Path(str(dump_path) + SUFFIX)


def dump_path_for(manifest: Path) -> Path:
    return Path(str(manifest)[: -len(SUFFIX)])


def write_atomic(path: Path, data: bytes | str, mode: int = 0o640) -> None:
    """Write to a temporary file in the same directory, fsync, rename, fsync the directory."""
    path = Path(path)
    if isinstance(data, str):
        data = data.encode()
    fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(manifest: Manifest, dump_path: Path) -> Path:
    path = manifest_path(dump_path)
    write_atomic(path, json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n")
    return path


def load(dump_path: Path) -> Manifest:
    path = manifest_path(dump_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(f"{path.name}: no manifest") from None
    except OSError as exc:
        raise ManifestError(f"{path.name}: unreadable: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path.name}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    return Manifest.from_dict(data)


@contextlib.contextmanager
def locked(dump_path: Path) -> Iterator[None]:
    """Serialise read-modify-write of one manifest across processes (flock on the dump file)."""
    try:
        fd = os.open(dump_path, os.O_RDONLY)
    except OSError as exc:
        raise ManifestError(f"{Path(dump_path).name}: cannot open: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def append_verification(dump_path: Path, record: Verification, extra: dict[str, Any] | None = None) -> Manifest:
    """Append one verification record (and optional field updates) to the dump's manifest."""
    with locked(dump_path):
        m = load(dump_path)
        m.verifications.append(record)
        for key, value in (extra or {}).items():
            setattr(m, key, value)
        save(m, dump_path)
        return m


# --------------------------------------------------------------------------- history of dumps without a manifest

HISTORY_SUFFIX = ".verify.json"
HISTORY_VERSION = 1


@dataclass
class History:
    """The verification history of a dump that has no manifest (a legacy or foreign file), kept in
    `<dump>.verify.json`. `sha256` is the digest of the file when a verification first proved it
    whole (level 2 or more): later level-1 checks compare with it, as they compare with a manifest."""

    file: str
    sha256: str | None = None
    size: int | None = None
    proven_at: str | None = None
    verifications: list[Verification] = field(default_factory=list)
    format_version: int = HISTORY_VERSION

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        if not isinstance(data, dict) or data.get("format_version") != HISTORY_VERSION:
            raise ManifestError("verification history: unsupported or missing format_version")
        try:
            return cls(
                file=str(data.get("file", "")),
                sha256=data.get("sha256"),
                size=data.get("size"),
                proven_at=data.get("proven_at"),
                verifications=[Verification.from_dict(v) for v in data.get("verifications") or ()],
            )
        except TypeError as exc:
            raise ManifestError(f"verification history is malformed: {exc}") from None


def history_path(dump_path: Path) -> Path:
    return Path(str(dump_path) + HISTORY_SUFFIX)


def load_history(dump_path: Path) -> History | None:
    """The history sidecar of a dump without a manifest; None when there is none."""
    path = history_path(dump_path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManifestError(f"{path.name}: unreadable: {exc.strerror}") from None
    try:
        return History.from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path.name}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def append_history(dump_path: Path, record: Verification, sha256: str | None, size: int | None) -> History:
    """Append one verification to a manifest-less dump's history; the first run that proves level 2+
    (the stream decodes whole) fixes the reference digest."""
    with locked(dump_path):
        h = load_history(dump_path) or History(file=Path(dump_path).name)
        h.verifications.append(record)
        if h.sha256 is None and sha256 and record.outcome is not Outcome.FAILED and record.level >= 2:
            h.sha256, h.size, h.proven_at = sha256, size, record.at
        write_atomic(history_path(dump_path), json.dumps(dataclasses.asdict(h), indent=2, ensure_ascii=False) + "\n")
        return h
