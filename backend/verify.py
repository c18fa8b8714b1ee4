"""The verification ladder, levels 1–3 (level 4, the restore-test, is backend.restore).

- L1 file: the file exists, is not empty, and its sha256 matches the manifest.
  For a dump without a manifest (legacy or foreign) the sha256 check is *not checked*
  (nothing to compare with) and reports the digest it found; the dump can still
  reach levels 2 and 3, which prove the stream whole by themselves.
  An unreadable or corrupt manifest fails L1: nothing can be trusted about the file.
- L2 stream: the file decodes completely with its codec's own binary (zstd and
  xz frame checksums, gzip CRC), the decoded size matches the manifest, the
  header is a MySQL/MariaDB dump header and the `-- Dump completed` footer is there.
  (At level 3 a large dump made of zstd frames, as dumpdeck writes them, is decoded by
  libzstd in the scanner processes instead, with the same frame checksums; any frame
  that does not decode there sends it back to the zstd binary: backend.scanpool.)
- L3 content: one statistics pass (backend.sqlstats) over the same decoded stream:
  every statement terminated; tables, views, routines, triggers and events
  compared with the manifest's inventory (a table of the manifest missing from
  the dump fails); INSERT statements and rows per table; no USE, CREATE DATABASE
  or writes qualified with another schema.

L2 and L3 share one decode pass. For a large dump (about 96 MiB of SQL and more, on a machine
with several cores) the L3 scan runs in several processes (backend.scanpool), with the same
statistics as one pass. An age-encrypted dump (backend.encryption) is decrypted
in that pass with the configured identity, and its plaintext sha256 is compared with the
manifest's; without an identity L2 and L3 are *not checked*, never failed (L1 needs no key).
At dump time they ran in-stream, on the SQL before it was encrypted (`verify_instream`),
and the manifest records them with the target "in-stream, before encryption".

Checks are reported through `on_check` as they
complete; the ladder stops at the first level that fails.

Every check and every run is one `Outcome` (backend.outcome): passed, failed, or not
checked (the check could not run). A run passed when it reached the requested level,
failed when any check failed, and is not checked otherwise (a level it asked for could
not be checked). A level is reached when none of its checks failed, its own checks were
all checked, and every level below it was reached or was proven by it (a *not checked*
sha256 at L1 is covered by a passing L2, which decodes the whole stream). With `record=True` a
`Verification` is appended to the manifest; a passing L3 also stores the exact
per-table row counts (`TableEntry.exact_rows`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from . import manifest as manifest_mod
from . import scanpool
from .codecs import DecodedStream, PlainTap, RawSource, codec_for_path, open_decoded, sniff_codec
from .encryption import is_encrypted
from .errors import DecryptKeyError, DumpdeckError, ManifestError, StreamError, VerifyError
from .outcome import Outcome
from .sqlstats import SANDBOX_LINE, SCAN_VERSION, SqlStats, StatsCollector
from .vocabulary import VerifyLevel

HEADERS = (b"-- MySQL dump", b"-- MariaDB dump")
FOOTER = b"-- Dump completed"
HEAD_KEEP = 8192
TAIL_KEEP = 1024
LEVEL_NAMES = {int(level): level.label for level in VerifyLevel if level}


@dataclass
class CheckResult:
    name: str
    outcome: Outcome
    evidence: str
    level: int
    data: dict[str, Any] = field(default_factory=dict)  # machine-readable extras (sha256, per-table figures)

    def __post_init__(self) -> None:
        self.outcome = Outcome.of(self.outcome)

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "outcome": self.outcome.value, "evidence": self.evidence, "level": self.level}
        d.update(self.data)
        return d


@dataclass
class VerifyReport:
    path: Path
    level_requested: int
    level_reached: int
    outcome: Outcome = Outcome.NOT_CHECKED
    checks: list[CheckResult] = field(default_factory=list)
    duration: float = 0.0
    target: str | None = None
    stats: SqlStats | None = None
    sha256: str | None = None
    recorded: bool = False

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def failed(self) -> bool:
        return self.outcome is Outcome.FAILED

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.outcome is Outcome.FAILED]

    @property
    def unchecked(self) -> list[CheckResult]:
        return [c for c in self.checks if c.outcome is Outcome.NOT_CHECKED]

    @property
    def summary(self) -> str:
        if self.outcome is Outcome.PASSED:
            return f"passed level {self.level_reached} ({LEVEL_NAMES.get(self.level_reached, '?')})"
        nxt = self.level_reached + 1
        where = f"level {nxt} ({LEVEL_NAMES.get(nxt, '?')})"
        if self.outcome is Outcome.NOT_CHECKED:
            skipped = [c for c in self.unchecked if c.level >= nxt] or self.unchecked
            why = f"{skipped[0].name}: {skipped[0].evidence}" if skipped else "it could not run"
            kept = f"level {self.level_reached} proven" if self.level_reached else "nothing proven"
            return f"not checked at {where}: {why} ({kept}; the dump is not marked bad)"
        bad = self.failed_checks
        if not bad:
            return f"failed at {where}"
        # the failing check's own level: with L1's sha256 not checked (no manifest), a stream that does not
        # decode failed at L2, not at "level 1"
        level = int(bad[0].level) or nxt
        return f"failed at level {level} ({LEVEL_NAMES.get(level, '?')}): {bad[0].name}: {bad[0].evidence}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "level_requested": self.level_requested,
            "level_reached": self.level_reached,
            "outcome": self.outcome.value,
            "target": self.target,
            "duration": round(self.duration, 3),
            "sha256": self.sha256,
            "summary": self.summary,
            "checks": [c.to_dict() for c in self.checks],
        }


CheckCallback = Callable[[CheckResult], None]


class _Ladder:
    """Collects checks, reports them as they happen, knows which level failed."""

    def __init__(self, report: VerifyReport, on_check: CheckCallback | None):
        self.report = report
        self.on_check = on_check
        self.failed_level: int | None = None
        self.prefix = ""  # said before every evidence from now on (the in-stream checks)

    def add(self, name: str, outcome: Outcome | bool, evidence: str, level: int, **data: Any) -> CheckResult:
        """Record one check. `outcome` True/False mean passed/failed; pass Outcome.NOT_CHECKED
        when the check could not run."""
        if self.prefix:
            evidence, data = f"{self.prefix}: {evidence}", {**data, "in_stream": True}
        check = CheckResult(name, Outcome.of(outcome), evidence, level, data)
        self.report.checks.append(check)
        if check.failed and (self.failed_level is None or level < self.failed_level):
            self.failed_level = level
        if self.on_check is not None:
            try:
                self.on_check(check)
            except Exception:  # a broken observer never breaks a verification
                pass
        return check

    def ok_through(self, level: int) -> bool:
        """No check at `level` or below failed (not-checked ones do not stop the ladder)."""
        return self.failed_level is None or self.failed_level > level

    def finish(self, requested: int | None = None) -> VerifyReport:
        """Set the report's level reached and outcome from its checks."""
        settle(self.report, requested)
        return self.report


def reached_level(checks: list[CheckResult], requested: int) -> int:
    """The highest level up to `requested` proven by `checks`: a level counts when it has checks, none
    failed and none was left unchecked. A level left unchecked (or skipped) below a fully passing one is
    covered by it: a legacy dump's sha256 has nothing to compare with, but its stream decoding whole at
    L2 proves the file; a restore-test skips L2–L3 already proven for this sha256."""
    reached = 0
    for lvl in range(1, requested + 1):
        mine = [c for c in checks if c.level == lvl]
        if any(c.failed for c in mine):
            break
        if not mine or any(c.outcome is Outcome.NOT_CHECKED for c in mine):
            continue  # not proven by itself; proven when a higher level passes whole
        reached = lvl
    return reached


def settle(report: VerifyReport, requested: int | None = None) -> None:
    """Outcome of a run: failed if any check failed; passed if the requested level was reached; else not checked."""
    requested = requested or report.level_requested
    report.level_reached = reached_level(report.checks, requested)
    if any(c.failed for c in report.checks):
        report.outcome = Outcome.FAILED
    elif report.level_reached >= report.level_requested:
        report.outcome = Outcome.PASSED
    else:
        report.outcome = Outcome.NOT_CHECKED


def _fmt(n: int) -> str:
    return f"{n:,}"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def file_sha256(path: Path, chunk: int = 1 << 20) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
    return h.hexdigest(), size


# --------------------------------------------------------------------------- L1


def _level1(path: Path, ladder: _Ladder) -> tuple[manifest_mod.Manifest | None, str | None]:
    """Returns (manifest or None, sha256 of the file or None)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        ladder.add("file exists", False, f"{path} does not exist", 1)
        return None, None
    except OSError as exc:
        ladder.add("file exists", False, f"{path}: {exc.strerror}", 1)
        return None, None
    if st.st_size == 0:
        ladder.add("file exists", False, f"{path.name} is empty (0 bytes)", 1)
        return None, None
    ladder.add("file exists", True, f"{path.name}, {_fmt(st.st_size)} bytes", 1)

    manifest = None
    mpath = manifest_mod.manifest_path(path)
    if mpath.exists():
        try:
            manifest = manifest_mod.load(path)
        except ManifestError as exc:
            ladder.add("manifest", False, f"unreadable, nothing to check the file against: {exc}", 1)
            return None, None
    try:
        digest, size = file_sha256(path)
    except OSError as exc:  # a permission problem proves nothing; an I/O error reading it does
        denied = exc.errno in (errno.EACCES, errno.EPERM)
        ladder.add("sha256", Outcome.NOT_CHECKED if denied else False, f"cannot read {path.name}: {exc.strerror}", 1)
        return manifest, None
    if manifest is None:
        _level1_history(path, digest, size, ladder)
        return None, digest
    if digest != manifest.sha256:
        extra = ""
        if manifest.bytes_stored and size != manifest.bytes_stored:
            extra = f"; the file is {_fmt(size)} bytes but the manifest says {_fmt(manifest.bytes_stored)}" + (
                " (truncated)" if size < manifest.bytes_stored else ""
            )
        ladder.add(
            "sha256", False, f"mismatch: file {digest[:16]}…, manifest {manifest.sha256[:16]}…{extra}", 1, sha256=digest
        )
    else:
        ladder.add("sha256", True, f"matches the manifest ({digest[:16]}…)", 1, sha256=digest)
    return manifest, digest


def _level1_history(path: Path, digest: str, size: int, ladder: _Ladder) -> None:
    """sha256 of a dump without a manifest: compared with the digest its history sidecar recorded when a
    verification first proved it whole; not checked when there is none yet."""
    try:
        history = manifest_mod.load_history(path)
    except ManifestError as exc:
        history = None
        why = f"no manifest, and its verification history is unreadable ({exc})"
    else:
        why = "no manifest to compare with"
    if history is None or not history.sha256:
        ladder.add("sha256", Outcome.NOT_CHECKED, f"{why} (file digest {digest[:16]}…)", 1, sha256=digest)
    elif digest == history.sha256:
        ladder.add(
            "sha256",
            True,
            f"matches the digest recorded when it was proven whole on {history.proven_at} ({digest[:16]}…)",
            1,
            sha256=digest,
        )
    else:
        extra = ""
        if history.size and size != history.size:
            extra = f"; the file is {_fmt(size)} bytes, it was {_fmt(history.size)}"
        ladder.add(
            "sha256",
            False,
            f"changed since it was proven whole on {history.proven_at}: file {digest[:16]}…, "
            f"recorded {history.sha256[:16]}…{extra}",
            1,
            sha256=digest,
        )


# --------------------------------------------------------------------------- L2 + L3


def _check_header(head: bytes) -> tuple[bool, str]:
    text = head
    if text.startswith(SANDBOX_LINE):
        nl = text.find(b"\n")
        text = text[nl + 1 :] if nl >= 0 else b""
    text = text.lstrip(b"\xef\xbb\xbf")
    for h in HEADERS:
        if text.startswith(h):
            line = text.split(b"\n", 1)[0].decode("utf-8", errors="replace").strip()
            return True, line
    first = head.split(b"\n", 1)[0][:60].decode("utf-8", errors="replace")
    return False, f"not a MySQL/MariaDB dump header: starts with {first!r}"


def _check_footer(tail: bytes) -> tuple[bool, str]:
    idx = tail.rfind(FOOTER)
    if idx < 0:
        last = tail.rstrip().rsplit(b"\n", 1)[-1][-60:].decode("utf-8", errors="replace")
        return False, f"'-- Dump completed' footer missing: the dump is incomplete (ends with {last!r})"
    rest = tail[idx + len(FOOTER) :].strip()
    if b"\n" in rest:
        return False, "text follows the '-- Dump completed' footer"
    return True, tail[idx:].strip().decode("utf-8", errors="replace")


def _stream_pass(
    path: Path,
    codec: str,
    want_stats: bool,
    ladder: _Ladder,
    manifest: manifest_mod.Manifest | None,
    *,
    cancel: threading.Event | None = None,
    source: RawSource | None = None,
    pool: scanpool.ScanPool | None = None,
) -> SqlStats | None:
    """Decode once: levels 2 (header, stream, size, footer) and, with `want_stats`, the level-3 scan: in
    this process, or for a large dump over several (backend.scanpool, closed whatever happens; `pool`:
    the caller's, started earlier, see `_early_pool`)."""
    with contextlib.ExitStack() as stack:
        return _one_pass(path, codec, want_stats, ladder, manifest, stack, cancel, source, pool)


def _early_pool(path: Path, level: int) -> scanpool.ScanPool | None:
    """For level 3 of a large dump: the scanner processes, started before level 1 reads the file so that
    they come up (a Python process takes ~0.1 s) while it is hashed. The caller closes it."""
    if level < 3:
        return None
    try:
        manifest = manifest_mod.load(path) if manifest_mod.manifest_path(path).exists() else None
    except ManifestError:
        return None  # (level 1 says why)
    workers = scanpool.workers_for(_size_hint(path, manifest, None))
    if not workers:
        return None
    try:
        pool = scanpool.ScanPool(workers, dump=None if is_encrypted(path) else path)
    except OSError:
        return None  # no shared memory or no process to start (or no file): as if it were not asked
    pool.prefetch()  # a dump of frames: its first pieces decode and scan meanwhile (wasted if level 1 fails)
    return pool


def _size_hint(path: Path, manifest: manifest_mod.Manifest | None, source: RawSource | None) -> int:
    """About how many bytes of SQL a dump holds (its stored size when nothing better is known)."""
    if manifest is not None and manifest.bytes_raw:
        return manifest.bytes_raw
    if source is None:
        with contextlib.suppress(OSError):
            return path.stat().st_size
    return 0


def _one_pass(
    path: Path,
    codec: str,
    want_stats: bool,
    ladder: _Ladder,
    manifest: manifest_mod.Manifest | None,
    stack: contextlib.ExitStack,
    cancel: threading.Event | None,
    source: RawSource | None,
    pool: scanpool.ScanPool | None,
) -> SqlStats | None:
    collector = StatsCollector() if want_stats else None
    head = bytearray()
    tail = b""
    header_done = False
    raw = 0
    if collector is None:
        pool = None  # (a level-2 pass; the caller closes it)
    elif pool is not None:
        collector = None
    else:
        workers = scanpool.workers_for(_size_hint(path, manifest, source))
        if workers:
            # a dump of zstd frames (as dumpdeck writes them) is decoded by the workers too
            frames = codec == "zstd" and source is None and not is_encrypted(path)
            try:
                pool = stack.enter_context(scanpool.ScanPool(workers, dump=path if frames else None))
            except OSError:
                pool = None  # no shared memory or no process to start: one pass in-process
            else:
                collector = None
    stream: DecodedStream | scanpool.FrameStream
    if pool is not None and pool.frames is not None and codec == "zstd" and source is None:
        stream = pool.frame_stream(lambda: open_decoded(path, codec))
        chunks: Iterable[bytes | memoryview] = stream.chunks()
    else:
        try:
            stream = open_decoded(path, codec, raw=source)
        except DecryptKeyError as exc:
            ladder.add("stream decodes", Outcome.NOT_CHECKED, str(exc) + _in_stream_note(manifest), 2)
            return None
        chunks = pool.pieces(stream) if pool is not None else stream.chunks()
    plain_sha = hashlib.sha256() if manifest is not None and manifest.sha256_sql else None
    failed_early = False
    try:
        for chunk in chunks:
            if cancel is not None and cancel.is_set():
                stream.close(check=False)
                raise VerifyError(f"verification of {path.name} cancelled after {_fmt(raw)} bytes of SQL")
            raw += len(chunk)
            if plain_sha is not None:
                plain_sha.update(chunk)
            if not header_done:
                head += chunk[: HEAD_KEEP - len(head)]
                if len(head) >= HEAD_KEEP or len(head) >= 256:
                    ok, ev = _check_header(bytes(head))
                    ladder.add("header", ok, ev, 2)
                    header_done = True
                    if not ok:
                        failed_early = True
                        break
            tail = (tail + chunk[-TAIL_KEEP:])[-TAIL_KEEP:]
            if collector is not None:
                collector.feed(cast(bytes, chunk))  # (the pool's pieces are views: no collector then)
    except OSError as exc:
        stream.close(check=False)
        ladder.add("stream decodes", False, f"read error: {exc.strerror or exc}", 2)
        return None
    if failed_early:
        stream.close(check=False)
        return None
    try:
        stream.close()
    except DecryptKeyError as exc:
        ladder.add("stream decodes", Outcome.NOT_CHECKED, str(exc) + _in_stream_note(manifest), 2)
        return None
    except StreamError as exc:
        ladder.add(
            "stream decodes", False, f"{exc} after {_fmt(raw)} bytes of SQL: the file is truncated or corrupt", 2
        )
        return None
    if not header_done:
        ok, ev = _check_header(bytes(head))
        ladder.add("header", ok, ev if raw else "the decoded stream is empty", 2)
        if not ok:
            return None
    if manifest is not None and manifest.bytes_raw and raw != manifest.bytes_raw:
        ladder.add(
            "stream decodes",
            False,
            f"{codec}: decodes to {_fmt(raw)} bytes of SQL but the manifest says {_fmt(manifest.bytes_raw)}",
            2,
        )
        return None
    if plain_sha is not None and manifest is not None and plain_sha.hexdigest() != manifest.sha256_sql:
        ladder.add(
            "stream decodes",
            False,
            f"age+{codec}: the decrypted SQL's sha256 {plain_sha.hexdigest()[:16]}… is not the manifest's "
            f"{(manifest.sha256_sql or '')[:16]}…",
            2,
        )
        return None
    ladder.add(
        "stream decodes",
        True,
        ("age+" if stream.age is not None else "")
        + f"{codec}: {_fmt(raw)} bytes of SQL"
        + (", size matches the manifest" if manifest is not None and manifest.bytes_raw else "")
        + (", sha256 of the SQL matches" if plain_sha is not None else ""),
        2,
    )
    ok, ev = _check_footer(tail)
    ladder.add("footer", ok, ev, 2)
    if not ok or not want_stats:
        return None
    return pool.finish() if pool is not None else collector.finish() if collector is not None else None


def _in_stream_note(manifest: manifest_mod.Manifest | None) -> str:
    """What the dump proved in-stream, before encryption, when it was made (for a not-checked L2)."""
    for v in reversed(manifest.verifications if manifest is not None else []):
        if v.target == IN_STREAM and v.level >= 2 and not v.failed:
            return f"; levels 2–{v.level} were checked {IN_STREAM} when it was dumped ({v.at})"
    return ""


def _names(items: Iterable[str]) -> str:
    items = list(items)
    shown = ", ".join(f"`{n}`" for n in items[:5])
    return shown + (f" and {len(items) - 5} more" if len(items) > 5 else "")


def _level3(stats: SqlStats, manifest: manifest_mod.Manifest | None, ladder: _Ladder) -> None:
    if stats.unterminated:
        ladder.add("statements", False, stats.unterminated, 3)
    else:
        ladder.add("statements", True, f"{_fmt(stats.statements)} statements, all terminated", 3)

    tables = stats.tables
    if manifest is not None:
        # A manifest written before sequences were told apart lists a sequence as a table.
        seqs = set(stats.sequences)
        expected = [t.name for t in manifest.tables if t.name not in seqs]
        missing = [t for t in expected if t not in tables]
        extra = [t for t in tables if t not in set(expected)]
        excluded_found = [t for t in manifest.excluded if t in tables]
        if excluded_found:
            ladder.add(
                "tables",
                False,
                f"{len(excluded_found)} table(s) the manifest records as excluded are in the dump: "
                f"{_names(excluded_found)}",
                3,
            )
        elif missing:
            ladder.add(
                "tables",
                False,
                f"{len(missing)} table(s) of the manifest missing from the dump: "
                f"{_names(missing)} (dump has {len(tables)}, manifest {len(expected)})",
                3,
            )
        else:
            ladder.add(
                "tables",
                True,
                f"{len(tables)} CREATE TABLE, all {len(expected)} of the manifest"
                + (f"; {len(extra)} not in the manifest: {_names(extra)}" if extra else "")
                + (
                    f"; {len(manifest.excluded)} excluded by the job: {_names(manifest.excluded)}"
                    if manifest.excluded
                    else ""
                ),
                3,
            )
        want_seqs = list(manifest.sequences) or [t.name for t in manifest.tables if t.name in seqs]
        miss = [n for n in want_seqs if n not in seqs]
        if miss:
            ladder.add("sequences", False, f"{len(miss)} of {len(want_seqs)} missing from the dump: {_names(miss)}", 3)
        elif want_seqs or seqs:
            ladder.add(
                "sequences",
                True,
                f"{len(seqs)} CREATE SEQUENCE in the dump ({len(stats.setvals)} with SETVAL), "
                f"{len(want_seqs)} in the manifest",
                3,
            )
        for kind in ("views", "procedures", "functions", "triggers", "events"):
            want = list(getattr(manifest, kind))
            have = getattr(stats, kind)
            miss = [n for n in want if n not in set(have)]
            if miss:
                ladder.add(kind, False, f"{len(miss)} of {len(want)} missing from the dump: {_names(miss)}", 3)
            elif want or have:
                ladder.add(kind, True, f"{len(have)} in the dump, {len(want)} in the manifest", 3)
    else:
        ladder.add("tables", True, f"{len(tables)} CREATE TABLE (no manifest to compare with)", 3)
        objs = ", ".join(
            f"{len(getattr(stats, k))} {k}"
            for k in ("views", "procedures", "functions", "triggers", "events", "sequences")
        )
        ladder.add("objects", True, objs + " (no manifest to compare with)", 3)

    empty_expected = []
    if manifest is not None:
        for t in manifest.tables:
            if t.name in tables and tables[t.name] == 0 and t.rows > 1000:
                empty_expected.append(t.name)
    per_table = {name: rows for name, rows in tables.items()}
    evidence = f"{_fmt(stats.insert_statements)} INSERT statements, {_fmt(stats.rows)} rows in {len(tables)} tables"
    if empty_expected:
        ladder.add(
            "rows",
            False,
            evidence + f"; no rows for {_names(empty_expected)} although the source estimated more than 1,000",
            3,
            tables=per_table,
        )
    else:
        ladder.add("rows", True, evidence, 3, tables=per_table)

    if stats.scope_problems:
        ladder.add(
            "scope",
            False,
            f"{len(stats.scope_problems)} statement(s) reach outside the database: "
            + "; ".join(stats.scope_problems[:3]),
            3,
            scan=SCAN_VERSION,
        )
    else:
        ladder.add(
            "scope",
            True,
            "no client commands, USE, dynamic SQL, server-wide statements, file access or writes to other databases",
            3,
            scan=SCAN_VERSION,
        )


# --------------------------------------------------------------------------- entry point


def verify_file(
    path: Path,
    level: int = 3,
    on_check: CheckCallback | None = None,
    record: bool = True,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Run the ladder up to `level` (1–3), stopping at the first failing level. Setting `cancel`
    stops the stream pass (VerifyError: the dump was not checked; nothing is recorded)."""
    if level not in (1, 2, 3):
        raise ValueError("verification level must be 1, 2 or 3 (4 is restore_test)")
    path = Path(path)
    t0 = time.monotonic()
    report = VerifyReport(path=path, level_requested=level, level_reached=0)
    ladder = _Ladder(report, on_check)

    stats = None
    with contextlib.ExitStack() as stack:
        pool = _early_pool(path, level)
        if pool is not None:
            stack.enter_context(pool)
        manifest, digest = _level1(path, ladder)
        report.sha256 = digest
        if ladder.ok_through(1) and level >= 2:
            codec: str = codec_for_path(path)
            sniffed = sniff_codec(path)
            if manifest is not None and manifest.codec and manifest.codec != codec:
                codec = manifest.codec
            if sniffed and sniffed != codec and not (codec == "none" and sniffed == "none"):
                ladder.add("stream decodes", False, f"the file name says {codec} but the content is {sniffed}", 2)
            else:
                stats = _stream_pass(path, codec, level >= 3, ladder, manifest, cancel=cancel, pool=pool)
                if stats is not None and ladder.ok_through(2):
                    _level3(stats, manifest, ladder)
    report.stats = stats

    ladder.finish()
    report.duration = time.monotonic() - t0

    if record:
        record_report(report, stats=stats if report.passed or ladder.ok_through(2) else None)
    return report


IN_STREAM = "in-stream, before encryption"


def verify_instream(
    path: Path,
    level: int,
    plain: PlainTap,
    stats: SqlStats | None,
    on_check: CheckCallback | None = None,
    record: bool = True,
) -> VerifyReport:
    """The ladder of a fresh encrypted dump: L1 on the stored file (no key needed), then L2 and L3 on what
    the dump pipeline saw *before* encryption (`plain`: size, sha256, head and tail of the SQL; `stats`:
    the statistics pass, when L3 was asked). Recorded with the target "in-stream, before encryption";
    re-checking L2/L3 later decrypts the file and needs the identity."""
    if level not in (1, 2, 3):
        raise ValueError("in-stream verification covers levels 1, 2 and 3")
    t0 = time.monotonic()
    report = VerifyReport(path=Path(path), level_requested=level, level_reached=0, target=IN_STREAM)
    ladder = _Ladder(report, on_check)
    manifest, digest = _level1(report.path, ladder)
    report.sha256 = digest
    if ladder.ok_through(1) and level >= 2:
        ladder.prefix = IN_STREAM
        ok, ev = _check_header(bytes(plain.head))
        ladder.add("header", ok, ev, 2)
        want = manifest.bytes_raw if manifest is not None else plain.bytes
        sql_sha = plain.sha.hexdigest()
        same = want == plain.bytes and (manifest is None or manifest.sha256_sql in (None, sql_sha))
        ladder.add(
            "stream decodes",
            same,
            f"{_fmt(plain.bytes)} bytes of SQL went through the compressor and age, both exited 0"
            + (f"; sha256 of the SQL {sql_sha[:16]}…" if same else f"; the manifest says {_fmt(want)} bytes"),
            2,
        )
        ok, ev = _check_footer(plain.tail)
        ladder.add("footer", ok, ev, 2)
        if level >= 3 and ladder.ok_through(2):
            if stats is None:
                ladder.add("statements", Outcome.NOT_CHECKED, "no statistics pass was made during the dump", 3)
            else:
                _level3(stats, manifest, ladder)
    ladder.finish()
    report.stats = stats
    report.duration = time.monotonic() - t0
    if record:
        record_report(report, stats=stats if ladder.ok_through(2) else None)
    return report


class HashedSource:
    """A RawSource that hashes and counts the stored bytes passing through it."""

    def __init__(self, raw: RawSource):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = 1 << 20, /) -> bytes:
        chunk = self.raw.read(n)
        self.sha.update(chunk)
        self.size += len(chunk)
        return chunk


def verify_stream(
    label: str,
    raw: RawSource,
    manifest: manifest_mod.Manifest,
    *,
    finish: Callable[[], None] | None = None,
    on_check: CheckCallback | None = None,
    cancel: threading.Event | None = None,
) -> VerifyReport:
    """Levels 1–3 of a dump read from a stream (a remote copy through rclone cat), in one pass: the
    stored bytes are hashed on their way to the decoder; the size and sha256 (level 1) are checked
    against `manifest` once the stream ended. `finish` closes the source and raises DumpdeckError when
    it did not end well: then nothing is proven (not checked). Nothing is recorded."""
    t0 = time.monotonic()
    path = Path(label)
    report = VerifyReport(path=path, level_requested=3, level_reached=0)
    ladder = _Ladder(report, on_check)
    hashed = HashedSource(raw)
    probe = VerifyReport(path=path, level_requested=3, level_reached=0)
    inner = _Ladder(probe, None)  # levels 2–3 are only reported once level 1 is known
    stats = _stream_pass(path, manifest.codec, True, inner, manifest, cancel=cancel, source=hashed)
    if finish is not None:
        try:
            finish()
        except DumpdeckError as exc:
            ladder.add("stream", Outcome.NOT_CHECKED, f"the stream did not end well: {exc}", 1)
            ladder.finish()
            report.duration = time.monotonic() - t0
            return report
    digest = hashed.sha.hexdigest()
    report.sha256 = digest
    whole = not any(c.name == "header" and c.outcome is Outcome.FAILED for c in probe.checks)
    if whole and (hashed.size != manifest.bytes_stored or digest != manifest.sha256):
        ladder.add(
            "sha256", False,
            f"{_fmt(hashed.size)} bytes streamed (manifest: {_fmt(manifest.bytes_stored)}), sha256 {digest[:16]}… "
            f"(manifest: {manifest.sha256[:16]}…)",
            1,
        )  # fmt: skip
    else:
        if whole:
            ladder.add("sha256", True, f"{_fmt(hashed.size)} bytes streamed, sha256 matches the manifest", 1)
        for c in probe.checks:
            ladder.add(c.name, c.outcome, c.evidence, c.level, **c.data)
        if stats is not None and ladder.ok_through(2):
            _level3(stats, manifest, ladder)
    report.stats = stats
    ladder.finish()
    report.duration = time.monotonic() - t0
    return report


def record_report(report: VerifyReport, stats: SqlStats | None = None, extra: dict[str, Any] | None = None) -> bool:
    """Append the report to the manifest (and exact row counts from L3 stats); for a dump without a
    manifest, to its history sidecar (`<dump>.verify.json`). False when it could not be written."""
    path = report.path
    if not path.exists():
        return False
    rec = manifest_mod.Verification(
        level=report.level_reached,
        outcome=report.outcome,
        at=now_iso(),
        checks=[c.to_dict() for c in report.checks],
        target=report.target,
        duration=round(report.duration, 3),
    )
    if not manifest_mod.manifest_path(path).exists():
        try:
            size = path.stat().st_size
            manifest_mod.append_history(path, rec, report.sha256, size)
        except (ManifestError, OSError):
            return False
        report.recorded = True
        return True
    extra = dict(extra or {})
    try:
        if stats is not None and not stats.unterminated:
            m = manifest_mod.load(path)
            tables = []
            for t in m.tables:
                if t.name in stats.tables:
                    t = dataclasses.replace(t, exact_rows=stats.tables[t.name])
                tables.append(t)
            extra["tables"] = tables
        manifest_mod.append_verification(path, rec, extra)
    except (ManifestError, OSError):
        return False
    report.recorded = True
    return True


def verified_for(manifest: manifest_mod.Manifest, sha256: str, min_level: int = 3) -> manifest_mod.Verification | None:
    """The latest verification that proved `min_level`+ for this exact file content (none after a failure below it)."""
    for v in reversed(manifest.verifications):
        if v.outcome is Outcome.FAILED and v.level < min_level:
            return None
        if v.level < min_level:
            continue
        for c in v.checks:
            if c.get("name") == "sha256" and c.get("sha256") == sha256:
                return v
    return None


def scope_scan_current(v: manifest_mod.Verification) -> bool:
    """Did that verification's level-3 scope scan know every hazard the current scan knows? A load
    (restore-test or restore) reuses an earlier level-3 result only then."""
    return any(c.get("name") == "scope" and int(c.get("scan") or 0) >= SCAN_VERSION for c in v.checks)
