"""What the console shows, as typed, frozen view models.

The console's backend adapter (`tui/adapter.py`) builds these from the engine's records;
the screens turn them into rows. Nothing here does I/O or imports Textual, so the
snapshots can as well feed a test or a benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.vocabulary import ACTIVE_RUN_STATUSES

Clock = Callable[[], float]


@dataclass(frozen=True)
class DatabaseView:
    """One database of one server, as the inventory reports it."""

    server: str
    name: str
    bytes: int
    tables: int
    consistent: bool = True


@dataclass(frozen=True)
class ServerSnapshot:
    name: str
    address: str
    reachable: bool
    databases: tuple[DatabaseView, ...] = ()
    error: str | None = None
    label: str = ""
    latency: float = 0.0
    polled_at: float = 0.0


@dataclass(frozen=True)
class DumpView:
    """One dump in the catalog (a thin, UI-friendly copy of the backend's DumpEntry)."""

    key: str  # stable row key: the path
    path: Path
    server: str
    database: str
    when: float  # epoch seconds
    size: int
    codec: str
    verified_level: int = 0
    verified_at: Any = None
    last_result: str | None = None  # an Outcome value (passed | failed | not_checked) or None
    legacy: bool = False
    manifest_error: str | None = None
    manifest: Any = None  # backend.manifest.Manifest or None


@dataclass(frozen=True)
class CatalogSnapshot:
    dumps: tuple[DumpView, ...] = ()  # newest first
    partials: tuple[str, ...] = ()
    error: str | None = None
    scanned_at: float = 0.0
    raw: Any = field(default=None, compare=False, repr=False)  # the backend Catalog (for backend.disk)


@dataclass(frozen=True)
class DbProgressView:
    database: str
    status: str
    bytes_raw: int = 0
    bytes_stored: int = 0
    rate: float = 0.0
    current_table: str | None = None
    started: float | None = None
    updated: float | None = None
    estimate: int | None = None
    timeout: float | None = None
    eta: float | None = None  # seconds left, from earlier runs when known, else from the rate
    error: str | None = None

    @property
    def fraction(self) -> float | None:
        if not self.estimate or self.bytes_raw > self.estimate:
            return None  # no estimate, or it was wrong (stale table statistics): unknown, not "100%"
        return max(0.0, self.bytes_raw / self.estimate)


@dataclass(frozen=True)
class RunView:
    id: int
    job: str | None
    server: str | None
    status: str  # queued | running | succeeded | failed | timed-out | cancelled | lost | skipped
    trigger: str | None
    started: float | None
    finished: float | None
    databases: tuple[str, ...] = ()
    reason: str | None = None
    progress: tuple[DbProgressView, ...] = ()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES


@dataclass(frozen=True)
class JobsSnapshot:
    runs: tuple[RunView, ...] = ()
    error: str | None = None
    polled_at: float = 0.0

    @property
    def active(self) -> tuple[RunView, ...]:
        return tuple(r for r in self.runs if r.active)


@dataclass(frozen=True)
class VolumeView:
    path: str
    total: int
    used: int
    free: int
    days_until_full: float | None = None
    percent: float = 0.0  # as df shows it (of the space usable by unprivileged users): the engine's figure


@dataclass(frozen=True)
class FootprintView:
    server: str
    database: str
    bytes: int
    count: int


@dataclass(frozen=True)
class DiskSnapshot:
    volumes: tuple[VolumeView, ...] = ()
    footprint: tuple[FootprintView, ...] = ()
    error: str | None = None


@dataclass(frozen=True)
class ScheduleView:
    job: str
    server: str
    schedule: str | None
    databases: tuple[str, ...]
    next_runs: tuple[float, ...] = ()
    last_status: str | None = None
    last_finished: float | None = None


@dataclass(frozen=True)
class LogChunk:
    lines: tuple[str, ...] = ()
    reset: bool = False
    error: str | None = None


@dataclass(frozen=True)
class CheckView:
    name: str
    outcome: Outcome  # True/False are accepted and read as passed/failed
    evidence: str
    level: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", Outcome.of(self.outcome))

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


def footprint_of(catalog: CatalogSnapshot) -> list[FootprintView]:
    """Bytes and dump count per (server, database) from the catalog's own sizes, biggest first."""
    agg: dict[tuple[str, str], list[int]] = {}
    for d in catalog.dumps:
        a = agg.setdefault((d.server, d.database), [0, 0])
        a[0] += d.size
        a[1] += 1
    rows = [FootprintView(server=s, database=db, bytes=b, count=c) for (s, db), (b, c) in agg.items()]
    rows.sort(key=lambda f: -f.bytes)
    return rows
