"""Disk: usage of each volume holding backups or state, footprints per database, days until full.

Volumes are found for the backup directory and the state directory (the
nearest existing parent of each), deduplicated by device, and graded `ok`,
`warning` (≥ disk.warn_percent) or `critical` (≥ disk.critical_percent).
The percent is df's: used / (used + available), so blocks reserved for root
count as neither (on a file system with many reserved blocks, used / total
reads far lower than df).

The projection divides the free space of the backup volume by the net growth
over the last `window_days` (from the catalog's sizes and times): a database
without a retention policy grows by every byte it writes; one with a policy
keeps a bounded number of dumps, so it grows by that number times the growth
of one dump's size. With no growth, or fewer than two dumps in the window, it
is None (not filling up). It is a projection, not a promise: a database that
doubles tomorrow is not in it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

from .catalog import Catalog, DumpEntry
from .config import Config, DiskConfig
from .manifest import manifest_path
from .retention import plan_for_config, policy_for
from .units import format_bytes
from .vocabulary import Severity

BACKUPS, STATE = "backups", "state"


@dataclass(frozen=True)
class Usage:
    """Space on the file system holding a path, as `df` shows it."""

    total: int
    used: int
    free: int  # available to unprivileged users (what a dump can write)
    percent: float  # used / (used + free): df's Use%, so reserved blocks count as neither


def usage(path: Path | str) -> Usage:
    """Usage of the file system holding `path` (or its nearest existing parent). The one place
    dumpdeck measures a disk: the console, `disk`, `check`, the report and preflight agree with df."""
    u = psutil.disk_usage(str(existing(Path(path))))
    return Usage(total=u.total, used=u.used, free=u.free, percent=u.percent)


@dataclass(frozen=True)
class VolumeUsage:
    """One file system holding backups or state, graded against the `disk` thresholds."""

    mount: str
    total: int
    used: int
    free: int
    percent: float
    level: Severity
    paths: tuple[str, ...] = ()  # what lives there: "backups: /var/backups/mysql", "state: …"
    device: str = ""
    fstype: str = ""
    warn_percent: float = 80.0
    critical_percent: float = 90.0

    @property
    def path(self) -> str:
        return self.mount

    @property
    def holds_backups(self) -> bool:
        return any(p.startswith(f"{BACKUPS}: ") for p in self.paths)

    @property
    def label(self) -> str:
        return "; ".join(self.paths) or self.mount

    @property
    def text(self) -> str:
        """One line for humans (notifications, the check)."""
        mark = "" if self.level == Severity.OK else f"  ← {self.level.upper()}"
        return (
            f"{self.mount} ({self.label}): {self.percent:.0f}% used, {format_bytes(self.free)} free of "
            f"{format_bytes(self.total)} (warning at {self.warn_percent:.0f}%, critical at "
            f"{self.critical_percent:.0f}%){mark}"
        )


def existing(path: Path) -> Path:
    """`path`, or its nearest parent that exists (a backup dir not created yet lives on its parent's disk)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(mount point, device, fstype) of the filesystem holding `path`: walk up while st_dev stays."""
    mp = os.path.realpath(path)
    dev = os.stat(mp).st_dev
    while mp != "/":
        parent = os.path.dirname(mp)
        if os.stat(parent).st_dev != dev:
            break
        mp = parent
    device = fstype = ""
    for part in psutil.disk_partitions(all=True):
        if part.mountpoint == mp:  # the last one listed wins (stacked mounts)
            device, fstype = part.device, part.fstype
    return mp, device, fstype


def grade(percent: float, thresholds: Config | DiskConfig) -> Severity:
    """ok, warning (≥ disk.warn_percent) or critical (≥ disk.critical_percent)."""
    cfg = thresholds.disk if isinstance(thresholds, Config) else thresholds
    if percent >= cfg.critical_percent:
        return Severity.CRITICAL
    if percent >= cfg.warn_percent:
        return Severity.WARNING
    return Severity.OK


def volumes(config: Config, extra_paths: Iterable[Path] = ()) -> list[VolumeUsage]:
    """Usage of each distinct volume holding the backup dir, the state dir (and `extra_paths`)."""
    wanted = [(BACKUPS, Path(config.backup.dir)), (STATE, Path(config.state_dir))]
    wanted += [(str(p), Path(p)) for p in extra_paths]
    by_dev: dict[int, tuple[Path, list[str]]] = {}
    for label, path in wanted:
        probe = existing(path)
        try:
            dev = os.stat(probe).st_dev
        except OSError:
            continue
        by_dev.setdefault(dev, (probe, []))[1].append(f"{label}: {path}")
    out = []
    for probe, paths in by_dev.values():
        u = usage(probe)
        mount, device, fstype = _mount_of(probe)
        out.append(
            VolumeUsage(
                mount=mount,
                total=u.total,
                used=u.used,
                free=u.free,
                percent=u.percent,
                level=grade(u.percent, config),
                paths=tuple(paths),
                device=device,
                fstype=fstype,
                warn_percent=config.disk.warn_percent,
                critical_percent=config.disk.critical_percent,
            )
        )
    return out


def footprint(catalog: Catalog) -> dict[tuple[str | None, str], int]:
    """Bytes on disk per (server, database): dumps plus their manifests."""
    out: dict[tuple[str | None, str], int] = {}
    for e in catalog.entries:
        size = e.size
        try:
            size += os.stat(manifest_path(e.path)).st_size
        except OSError:
            pass
        out[(e.server, e.database)] = out.get((e.server, e.database), 0) + size
    return out


@dataclass
class Growth:
    bytes_per_day: float  # net growth of the footprint
    written_per_day: float  # bytes of new dumps per day
    window_days: float
    dumps: int
    notes: list[str] = field(default_factory=list)


def growth(config: Config, catalog: Catalog, now: datetime | None = None, window_days: float = 14.0) -> Growth | None:
    """Net growth over the last `window_days`, per database:

    - a database with no retention policy keeps every dump, so it grows by what it writes per day;
    - a database with a policy keeps a bounded number of dumps (what the current plan keeps), so it
      grows by that number times the growth of one dump's size (first to last dump in the window).
    """
    now = now or datetime.now(UTC)
    start = now - timedelta(days=window_days)
    recent = [e for e in catalog.entries if e.when >= start]
    if len(recent) < 2:
        return None
    ordered = sorted(recent, key=lambda e: e.when)
    span_days = max((ordered[-1].when - ordered[0].when).total_seconds() / 86400.0, 1.0)
    # bytes written after the first dump of the window, over the time since it
    written = sum(e.size for e in ordered[1:]) / span_days
    kept: dict[tuple[str | None, str], int] = {}
    notes: list[str] = []
    try:
        for d in plan_for_config(config, catalog, now=now):
            if d.keep:
                key = (d.entry.server, d.entry.database)
                kept[key] = kept.get(key, 0) + 1
    except Exception as exc:  # a projection never breaks a screen
        notes.append(f"retention not considered: {exc}")
    net = 0.0
    groups: dict[tuple[str | None, str], list[DumpEntry]] = {}
    for e in recent:
        groups.setdefault((e.server, e.database), []).append(e)
    for key, items in groups.items():
        items.sort(key=lambda e: e.when)
        policy = policy_for(config, key[0], key[1])
        if len(items) < 2:
            continue
        days = max((items[-1].when - items[0].when).total_seconds() / 86400.0, 1.0)
        if policy.empty or key not in kept:
            net += sum(e.size for e in items[1:]) / days
        else:
            slope = (items[-1].size - items[0].size) / days
            net += kept[key] * max(0.0, slope)
    return Growth(net, written, span_days, len(recent), notes)


def projection(
    config: Config,
    catalog: Catalog,
    now: datetime | None = None,
    window_days: float = 14.0,
    free_bytes: int | None = None,
) -> float | None:
    """Days until the backup volume is full at the recent net growth, or None (no growth / no data)."""
    g = growth(config, catalog, now, window_days)
    if g is None or g.bytes_per_day <= 0:
        return None
    if free_bytes is None:
        free_bytes = usage(config.backup.dir).free
    return free_bytes / g.bytes_per_day
