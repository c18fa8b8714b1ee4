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
from dumpdeck.backend.selection import RESTORE
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
    cause: str | None = None  # why it is down, in a word: wrong password, refused, DNS, TLS, timeout…
    down_since: float | None = None  # first failed poll of this outage (kept by the console)


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


LIVE_DB_STATUSES = frozenset({"pending", "running", "retrying", "verifying"})


@dataclass(frozen=True)
class DbProgressView:
    database: str
    status: str  # pending | running | verifying | retrying | succeeded | failed | timed-out | cancelled | skipped
    bytes_raw: int = 0
    bytes_stored: int = 0
    rate: float = 0.0
    current_table: str | None = None
    started: float | None = None
    updated: float | None = None  # the heartbeat while it runs; when it ended once it is over
    estimate: int | None = None
    timeout: float | None = None
    typical: float | None = None  # median duration of this database's last successful dumps
    error: str | None = None
    attempt: int = 0  # 0-based try
    file: str | None = None
    verified_level: int | None = None

    @property
    def live(self) -> bool:
        return self.status in LIVE_DB_STATUSES

    @property
    def fraction(self) -> float | None:
        """Share of the estimated bytes written: None without an estimate. Past a (too low)
        estimate it is above 1.0: the bar shows that, never a made-up 100 %."""
        if not self.estimate:
            return None
        return max(0.0, self.bytes_raw / self.estimate)

    def elapsed(self, now: float) -> float | None:
        """Seconds it ran: up to now while it runs, up to its end once it is over."""
        if self.started is None:
            return None
        end = now if self.live else (self.updated or now)
        return max(0.0, end - self.started)

    def time_left(self, now: float) -> float | None:
        """Seconds until its timeout, only while it runs."""
        if not self.live or self.status == "pending" or self.timeout is None or self.started is None:
            return None
        return self.timeout - (now - self.started)

    def eta(self, now: float) -> float | None:
        """Seconds left, once there is signal enough; None: still estimating (see eta_text).

        From history (the median duration of earlier dumps) until a tenth of the estimate is
        written, then from the average rate so far against the estimate. Never from the first
        seconds' rate, which is all connection setup and small tables."""
        if self.status != "running" or self.started is None:
            return None
        elapsed = max(0.0, now - self.started)
        frac = self.fraction
        if frac is not None and frac < 1.0 and elapsed >= MIN_ETA_SIGNAL and frac >= 0.1 and self.bytes_raw:
            return (self.estimate - self.bytes_raw) / (self.bytes_raw / elapsed)  # type: ignore[operator]
        if self.typical is not None and elapsed < self.typical:
            return self.typical - elapsed
        return None


MIN_ETA_SIGNAL = 5.0  # seconds of a dump before its rate says anything about its end


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
    cancel_requested: float | None = None  # when a cancel was sent to a run that is still active

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_RUN_STATUSES

    @property
    def shown_status(self) -> str:
        """The status as the console says it: an active run whose cancel was sent is 'cancelling'."""
        return "cancelling" if self.active and self.cancel_requested is not None else self.status

    @property
    def bytes_raw(self) -> int:
        return sum(p.bytes_raw for p in self.progress)

    @property
    def bytes_stored(self) -> int:
        return sum(p.bytes_stored for p in self.progress)

    def duration(self, now: float) -> float | None:
        if self.started is None:
            return None
        return max(0.0, (self.finished or now) - self.started)

    def what(self) -> str:
        """The one database, the job's name, or 'N databases' (the list is in the run's detail)."""
        dbs = self.databases or tuple(p.database for p in self.progress)
        if self.job == RESTORE and dbs:
            return f"restore → {dbs[0]}"  # not a backup of it: a restore into it
        if len(dbs) == 1:
            return dbs[0]
        if self.job and self.job != "adhoc":
            return self.job
        return f"{len(dbs)} databases"


@dataclass(frozen=True)
class EventView:
    """One event of a run (the state store's event stream, as `dumpdeck job status N` prints it)."""

    at: float
    level: str
    kind: str
    message: str


@dataclass(frozen=True)
class JobsSnapshot:
    runs: tuple[RunView, ...] = ()
    error: str | None = None
    polled_at: float = 0.0
    interrupted: tuple[str, ...] = ()  # "server/database" of --replace swaps a killed restore left open

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
