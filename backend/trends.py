"""Trends: is this dump much smaller or larger, or this run much slower, than usual?

Pure functions over plain numbers, plus a helper that reads the history of a
database from catalog entries. "Usual" is the median of the database's last
`trends.window` dumps before the one assessed (the median ignores one odd dump
in the window). A dump is flagged

- ``small`` when size < median × (1 − size_tolerance),
- ``large`` when size > median × (1 + size_tolerance),
- ``slow``  when duration > median duration × slow_factor.

Sizes compare the raw SQL bytes when every dump in the window has a manifest
(compression level changes do not move them), else the stored file sizes. No
flag is raised before `MIN_HISTORY` earlier dumps exist: one or two samples say
nothing about "usual".
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .catalog import DumpEntry, scan
from .config import Config, TrendsConfig
from .units import format_bytes, format_duration

MIN_HISTORY = 3
FLAG_NAMES = ("small", "large", "slow")


@dataclass(frozen=True)
class Sample:
    """One earlier (or the current) dump of a database, as trends see it."""

    size: int | None  # raw SQL bytes (or stored bytes for legacy dumps)
    duration: float | None  # seconds
    when: float | None = None  # epoch seconds, for sparklines
    raw: bool = True  # size is raw SQL bytes (False: stored file size)


@dataclass(frozen=True)
class TrendFlag:
    name: str  # small | large | slow
    value: float
    median: float
    ratio: float  # value / median
    samples: int  # how many earlier dumps the median came from

    @property
    def text(self) -> str:
        if self.name == "slow":
            return (
                f"slow: took {format_duration(self.value)}, {self.ratio:.1f}× the median "
                f"{format_duration(self.median)} of the last {self.samples} dumps"
            )
        word = "smaller" if self.name == "small" else "larger"
        return (
            f"{self.name}: {format_bytes(self.value)} is {self.ratio * 100:.0f}% of the median "
            f"{format_bytes(self.median)} of the last {self.samples} dumps ({word} than usual)"
        )


def median(values: Iterable[float | int | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return statistics.median(vals) if vals else None


def size_flag(size: float | None, previous: Sequence[float | None], tolerance: float) -> TrendFlag | None:
    prev = [p for p in previous if p is not None]
    if size is None or len(prev) < MIN_HISTORY:
        return None
    med = median(prev)
    if not med:
        return None
    ratio = size / med
    if size < med * (1 - tolerance):
        return TrendFlag("small", float(size), med, ratio, len(prev))
    if size > med * (1 + tolerance):
        return TrendFlag("large", float(size), med, ratio, len(prev))
    return None


def duration_flag(
    duration: float | None, previous: Sequence[float | None], slow_factor: float, floor: float = 5.0
) -> TrendFlag | None:
    """`floor`: runs shorter than this many seconds are never "slow" (1 s → 3 s is noise)."""
    prev = [p for p in previous if p is not None]
    if duration is None or len(prev) < MIN_HISTORY:
        return None
    med = median(prev)
    if med is None or med <= 0 or duration < floor:
        return None
    if duration > med * slow_factor:
        return TrendFlag("slow", float(duration), med, duration / med, len(prev))
    return None


def assess(current: Sample, history: Sequence[Sample], trends_cfg: TrendsConfig) -> list[TrendFlag]:
    """Flags for `current` against `history` (earlier dumps, newest first; the window is applied here)."""
    window = list(history)[: trends_cfg.window]
    flags: list[TrendFlag] = []
    raw = current.raw and all(s.raw for s in window)
    if raw or not any(s.raw for s in window):
        f = size_flag(current.size, [s.size for s in window], trends_cfg.size_tolerance)
        if f:
            flags.append(f)
    f = duration_flag(current.duration, [s.duration for s in window], trends_cfg.slow_factor)
    if f:
        flags.append(f)
    return flags


# --------------------------------------------------------------------------- catalog glue


def sample_of(entry: DumpEntry) -> Sample:
    """A Sample from a catalog entry (manifest when present, else the file size)."""
    m = entry.manifest
    ts = entry.when.timestamp()
    if m is not None:
        return Sample(size=m.bytes_raw, duration=m.duration, when=ts, raw=True)
    return Sample(size=entry.size, duration=None, when=ts, raw=False)


def history_for(entries: Sequence[DumpEntry], server: str | None, database: str) -> list[DumpEntry]:
    """Catalog entries of one database, newest first."""
    out = [e for e in entries if e.server == server and e.database == database]
    out.sort(key=lambda e: e.when, reverse=True)
    return out


def assess_entry(entry: DumpEntry, entries: Sequence[DumpEntry], trends_cfg: TrendsConfig) -> list[TrendFlag]:
    """Flags for one catalog entry against the dumps of the same database older than it."""
    same = history_for(entries, entry.server, entry.database)
    older = [e for e in same if e.path != entry.path and e.when <= entry.when]
    return assess(sample_of(entry), [sample_of(e) for e in older], trends_cfg)


# --------------------------------------------------------------------------- dumps on disk


def catalog_entries(config: Config) -> list[DumpEntry]:
    """Every dump on disk, newest first."""
    return list(scan(config.backup.dir).entries)
