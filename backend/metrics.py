"""Prometheus metrics: a node_exporter textfile, rewritten atomically after every run and every check.

`metrics: {textfile: /var/lib/node_exporter/textfile_collector/dumpdeck.prom}` turns it on. The file
is written beside its final name and renamed over it, so node_exporter never reads half a file.
What it holds (the dumps on disk are the truth, as for `dumpdeck check`):

- dumpdeck_last_success_timestamp_seconds{server,database}  newest complete dump on disk
- dumpdeck_last_dump_bytes{server,database}                  its stored size (raw: _raw_bytes)
- dumpdeck_last_dump_duration_seconds{server,database}
- dumpdeck_verified_level{server,database}                   0-4, the newest dump's proven level
- dumpdeck_check_status                                     0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
- dumpdeck_disk_used_ratio{path}                             0-1, volumes holding backups and state
- dumpdeck_runs_total{job,status}                      runs recorded in the state store (a counter)
- dumpdeck_last_run_timestamp_seconds{job,status}
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from . import check as check_mod
from . import trends
from .catalog import DumpEntry
from .config import Config
from .disk import VolumeUsage, volumes
from .state import StateStore

log = logging.getLogger("dumpdeck.metrics")


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Doc:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: list[tuple[dict[str, str], float]]) -> None:
        # text format 0.0.4: HELP/TYPE name the samples' own name (a counter's ends in _total)
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(**labels)} {float(value):.17g}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render(
    config: Config,
    *,
    store: StateStore | None = None,
    check_result: check_mod.CheckResult | None = None,
    entries: list[DumpEntry] | None = None,
    disk: list[VolumeUsage] | None = None,
    now: float | None = None,
) -> str:
    """The exposition text (Prometheus text format 0.0.4)."""
    now = time.time() if now is None else now
    if entries is None:
        entries = trends.catalog_entries(config)
    newest: dict[tuple[str, str], DumpEntry] = {}
    for e in entries:  # newest first
        newest.setdefault((e.server or "-", e.database), e)
    if disk is None:
        disk = volumes(config)
    if check_result is None:
        check_result = check_mod.evaluate(config, now, store=store, entries=entries, disk=disk)

    doc = _Doc()
    keys = sorted(newest)
    doc.family(
        "dumpdeck_last_success_timestamp_seconds",
        "gauge",
        "Unix time of the newest complete dump on disk of a database.",
        [({"server": s, "database": d}, newest[(s, d)].when.timestamp()) for s, d in keys],
    )
    doc.family(
        "dumpdeck_last_dump_bytes",
        "gauge",
        "Stored (compressed) size of the newest dump of a database, in bytes.",
        [({"server": s, "database": d}, newest[(s, d)].size) for s, d in keys],
    )
    raw = [(k, m) for k in keys if (m := newest[k].manifest) is not None]
    doc.family(
        "dumpdeck_last_dump_raw_bytes",
        "gauge",
        "Uncompressed SQL size of the newest dump of a database, in bytes.",
        [({"server": s, "database": d}, m.bytes_raw) for (s, d), m in raw if m.bytes_raw is not None],
    )
    doc.family(
        "dumpdeck_last_dump_duration_seconds",
        "gauge",
        "How long the newest dump of a database took.",
        [({"server": s, "database": d}, m.duration) for (s, d), m in raw if m.duration is not None],
    )
    doc.family(
        "dumpdeck_verified_level",
        "gauge",
        "Verification level proven for the newest dump of a database (0 none .. 4 restore-tested).",
        [({"server": s, "database": d}, newest[(s, d)].verified_level) for s, d in keys],
    )
    doc.family(
        "dumpdeck_check_status",
        "gauge",
        "Result of the dead-man's check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
        [({}, check_result.code)],
    )
    doc.family("dumpdeck_check_timestamp_seconds", "gauge", "When the check was evaluated.", [({}, now)])
    doc.family(
        "dumpdeck_disk_used_ratio",
        "gauge",
        "Used fraction of a volume holding backups or state (0..1).",
        [({"path": d.mount}, d.percent / 100.0) for d in disk],
    )
    counts: list[tuple[dict[str, str], float]] = []
    last: list[tuple[dict[str, str], float]] = []
    if store is not None:
        for job, status, n, finished in store.run_outcomes():
            counts.append(({"job": job, "status": status}, n))
            if finished is not None:
                last.append(({"job": job, "status": status}, finished))
    doc.family("dumpdeck_runs_total", "counter", "Runs recorded in the state store, by job and final status.", counts)
    doc.family(
        "dumpdeck_last_run_timestamp_seconds", "gauge", "When the last run of a job with this status finished.", last
    )
    return doc.text()


def write_textfile(config: Config, **kwargs: Any) -> Path | None:
    """Render and atomically replace `metrics.textfile`; None when it is not configured.
    Without a `store`, the state store is opened (read) when it exists."""
    target = config.metrics.textfile
    if target is None:
        return None
    target = Path(target)
    if kwargs.get("store") is None and Path(config.state_db).exists():
        from .state import StateStore

        store = StateStore.open(config.state_db)
        try:
            text = render(config, **{**kwargs, "store": store})
        finally:
            store.close()
    else:
        text = render(config, **kwargs)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as another user; nothing secret in here
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    log.debug("metrics written to %s", target)
    return target
