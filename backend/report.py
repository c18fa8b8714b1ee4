"""The HTML status page: one self-contained file a manager can open or a web server can serve.

Inline CSS, inline SVG sparklines, no scripts, no external assets, a
`<meta http-equiv="refresh">` and a Content-Security-Policy that forbids
everything but inline styles. Every piece of text from the outside world
(database names, reasons, paths) goes through `html.escape`, so a database
named ``<script>alert(1)</script>`` shows as text.

`collect(config, store, entries, now)` gathers typed rows from the catalog, the
state store and the disks; `render(data)` turns them into HTML (pure);
`write_report(...)` writes the file atomically.
"""

from __future__ import annotations

import html
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from dumpdeck import __version__

from . import health, retention, trends
from .catalog import DumpEntry
from .check import evaluate
from .config import Config
from .disk import VolumeUsage, volumes
from .errors import DumpdeckError
from .health import DbHealth, Finding
from .manifest import write_atomic
from .selection import max_age_for
from .state import Run, StateStore
from .units import format_bytes, format_duration
from .vocabulary import RunStatus, Severity

RUN_LIMIT = 30
SPARK_POINTS = 20


@dataclass(frozen=True)
class DbRow:
    server: str
    database: str
    last_success: datetime | None
    last_file: str | None = None
    size_stored: int | None = None
    size_raw: int | None = None
    sizes: tuple[float, ...] = ()  # oldest → newest (raw SQL bytes, or stored)
    durations: tuple[float, ...] = ()  # oldest → newest, seconds
    verified_level: int = 0
    verified_at: datetime | None = None
    dumps: int = 0
    total_stored: int = 0
    oldest: datetime | None = None
    retention: str = ""
    flags: tuple[str, ...] = ()
    encrypted: bool = False  # the newest dump is age-encrypted
    last_failure: str | None = None  # reason of a failure newer than the last success
    last_failure_at: datetime | None = None
    max_age: float | None = None
    health: DbHealth | None = None

    @property
    def overdue(self) -> bool:
        return self.health is not None and (self.health.has(Finding.NEVER) or self.health.has(Finding.OVERDUE))


@dataclass(frozen=True)
class RunRow:
    id: int
    job: str
    server: str
    trigger: str
    status: str
    started: datetime | None
    finished: datetime | None
    databases: tuple[str, ...]
    reason: str | None


@dataclass(frozen=True)
class ReportData:
    generated: datetime
    host: str
    refresh: float
    databases: tuple[DbRow, ...] = ()
    disk: tuple[VolumeUsage, ...] = ()
    runs: tuple[RunRow, ...] = ()
    check_line: str | None = None
    check_code: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- collect


def _retention_state(config: Config, server: str, database: str, entries: list[DumpEntry], now: datetime) -> str:
    """The policy and what the next prune would do."""
    policy = retention.policy_for(config, server if server != "-" else None, database)
    text = retention.describe(policy)
    if entries:
        drop = [d for d in retention.plan(entries, policy, now) if not d.keep]
        if drop:
            text += f" · next prune deletes {len(drop)} ({format_bytes(sum(d.entry.size for d in drop))})"
        else:
            text += " · nothing to prune"
    return text


def collect(
    config: Config,
    store: StateStore | None = None,
    entries: Sequence[DumpEntry] | None = None,
    now: datetime | None = None,
    *,
    with_check: bool = True,
) -> ReportData:
    now = now or datetime.now(UTC)
    notes: list[str] = []
    if entries is None:
        try:
            entries = trends.catalog_entries(config)
        except Exception as exc:
            notes.append(f"the backup directory could not be scanned: {exc}")
            entries = []
    groups = health.group_by_database(entries)

    runs: list[Run] = []
    last_runs: dict[tuple[str, str], health.LastRun] = {}
    if store is not None:
        try:
            runs = store.list_runs(limit=RUN_LIMIT)
            last_runs = health.last_runs(store)
        except Exception as exc:
            notes.append(f"the state store could not be read: {exc}")
        for run in runs:
            for db in run.databases:
                groups.setdefault((run.server, db), [])

    rows = []
    for (server, db), es in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1].lower())):
        last = es[0] if es else None
        samples = [trends.sample_of(e) for e in reversed(es[: config.trends.window * 2])]
        verified = [e for e in es if e.verified_level > 0]
        best = max(verified, key=lambda e: (e.verified_level, e.verified_at or e.when)) if verified else None
        m = last.manifest if last else None
        verdict = health.assess_dumps(
            config,
            server,
            db,
            es,
            now=now.timestamp(),
            max_age=max_age_for(config, server, db),
            last_run=last_runs.get((server, db)),
        )
        fail = last_runs.get((server, db)) if verdict.has(Finding.FAILING) else None
        try:
            retention_text = _retention_state(config, server, db, es, now)
        except Exception as exc:  # one database's odd dumps never break the page
            retention_text = f"retention could not be planned: {exc}"
        rows.append(
            DbRow(
                server=server,
                database=db,
                last_success=datetime.fromtimestamp(verdict.last_success, UTC) if verdict.last_success else None,
                last_file=str(last.path) if last else None,
                size_stored=last.size if last else None,
                size_raw=m.bytes_raw if m is not None else None,
                sizes=tuple(float(s.size) for s in samples if s.size is not None),
                durations=tuple(float(s.duration) for s in samples if s.duration is not None),
                verified_level=best.verified_level if best else 0,
                verified_at=(best.verified_at if best else None),
                dumps=len(es),
                total_stored=sum(e.size for e in es),
                oldest=es[-1].when if es else None,
                retention=retention_text,
                flags=tuple(m.flags) if m is not None else (),
                encrypted=last.encrypted if last else False,
                last_failure=(fail.reason or fail.status) if fail else None,
                last_failure_at=fail.finished if fail else None,
                max_age=verdict.max_age,
                health=verdict,
            )
        )

    disk: list[VolumeUsage] = []
    try:
        disk = volumes(config)
    except Exception as exc:
        notes.append(f"disk usage could not be read: {exc}")

    check_line = check_code = None
    if with_check:
        try:
            res = evaluate(config, now.timestamp(), store=store, entries=entries, disk=disk)
            check_line, check_code = res.line, res.code
        except Exception as exc:
            notes.append(f"the dead-man's check could not run: {exc}")

    run_rows = tuple(
        RunRow(r.id, r.job, r.server, r.trigger, r.status, r.started, r.finished, tuple(r.databases), r.reason)
        for r in runs
    )
    return ReportData(
        generated=now,
        host=socket.gethostname(),
        refresh=config.report.refresh,
        databases=tuple(rows),
        disk=tuple(disk),
        runs=run_rows,
        check_line=check_line,
        check_code=check_code,
        notes=tuple(notes),
    )


# --------------------------------------------------------------------------- render


def e(value: object) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _ts(dt: datetime | None) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if dt else "—"


def _age(dt: datetime | None, now: datetime) -> str:
    if dt is None:
        return "never"
    seconds = (now - dt).total_seconds()
    return "just now" if seconds < 1 else format_duration(seconds) + " ago"  # clock skew: never "-5m ago"


def sparkline(
    values: Sequence[float],
    *,
    width: int = 120,
    height: int = 26,
    label: str = "",
    fmt: Callable[[float], str] = format_bytes,
) -> str:
    """An inline SVG polyline of `values` (oldest → newest); the last point is marked."""
    vals = [float(v) for v in values][-SPARK_POINTS:]
    if not vals:
        return '<span class="muted">no history</span>'
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    pad = 3
    n = len(vals)
    pts = []
    for i, v in enumerate(vals):
        x = pad + (width - 2 * pad) * (i / (n - 1) if n > 1 else 0.5)
        y = height - pad - (height - 2 * pad) * ((v - lo) / span if hi != lo else 0.5)
        pts.append((round(x, 1), round(y, 1)))
    poly = " ".join(f"{x},{y}" for x, y in pts)
    lx, ly = pts[-1]
    title = f"{label}: " if label else ""
    title += f"{n} dumps, min {fmt(lo)}, max {fmt(hi)}, last {fmt(vals[-1])}"
    return (
        f'<svg class="spark" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{e(title)}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{poly}"/>'
        f'<circle cx="{lx}" cy="{ly}" r="2.5" fill="currentColor"/></svg>'
    )


CSS = """
:root{--bg:#f7f7f5;--fg:#1d1f21;--muted:#6b6f76;--card:#fff;--line:#dcdcd8;--ok:#1a7f37;--warn:#9a6700;
--bad:#c0262d;--badbg:#fdecec;--warnbg:#fff6db;--accent:#2457a6}
@media (prefers-color-scheme:dark){:root{--bg:#15171a;--fg:#e6e6e3;--muted:#9aa0a6;--card:#1e2125;--line:#33373d;
--ok:#4cc26b;--warn:#e0b341;--bad:#ff6b6b;--badbg:#3a1d1f;--warnbg:#3a3218;--accent:#7aa7ff}}
*{box-sizing:border-box}body{margin:0;padding:24px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;
background:var(--bg);color:var(--fg)}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.muted{color:var(--muted)}section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:14px 16px;margin-bottom:18px;overflow-x:auto}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;border:1px solid}
.ok{color:var(--ok)}.warning{color:var(--warn)}.critical,.failed{color:var(--bad)}
tr.failed td{background:var(--badbg)}tr.warning td{background:var(--warnbg)}
.banner{padding:10px 14px;border-radius:8px;font-weight:600;margin:12px 0 18px;border:1px solid}
.banner.ok{border-color:var(--ok)}.banner.warning{border-color:var(--warn);background:var(--warnbg)}
.banner.critical{border-color:var(--bad);background:var(--badbg)}
.bar{position:relative;height:14px;background:var(--line);border-radius:7px;min-width:200px}
.bar>span{position:absolute;left:0;top:0;bottom:0;border-radius:7px;background:var(--ok)}
.bar.warning>span{background:var(--warn)}.bar.critical>span{background:var(--bad)}
.bar>i{position:absolute;top:-3px;bottom:-3px;width:2px;background:var(--fg);opacity:.5}
.spark{color:var(--accent);vertical-align:middle}.reason{max-width:520px;word-break:break-word}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}
footer{margin-top:20px;font-size:12px;color:var(--muted)}
"""


def render(data: ReportData) -> str:
    now = data.generated
    out: list[str] = []
    w = out.append
    w('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    w(f'<meta http-equiv="refresh" content="{int(max(5, data.refresh))}">')
    w(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        'img-src data:">'
    )
    w('<meta name="viewport" content="width=device-width, initial-scale=1">')
    w(f"<title>dumpdeck status — {e(data.host)}</title><style>{CSS}</style></head><body>")
    w(f'<header id="summary"><h1>Backup status — {e(data.host)}</h1>')
    n_db = len(data.databases)
    stale = [d for d in data.databases if d.overdue]
    failing = [d for d in data.databases if d.last_failure]
    w(
        f'<div class="muted">Generated {e(_ts(now))} by dumpdeck {e(__version__)} · {n_db} database'
        f"{'s' if n_db != 1 else ''} · {len(failing)} failing · {len(stale)} overdue · "
        f"refreshes every {e(format_duration(data.refresh))}</div>"
    )
    if data.check_line:
        level = {s.code: s.value for s in Severity}.get(data.check_code or 0, Severity.WARNING)
        w(f'<div class="banner {level}" id="check">{e(data.check_line)}</div>')
    for note in data.notes:
        w(f'<div class="banner warning">{e(note)}</div>')
    w("</header>")

    # databases
    w(
        '<h2>Databases</h2><section id="databases"><table><thead><tr><th>Database</th><th>Last success</th>'
        "<th>Size</th><th>Size trend</th><th>Duration trend</th><th>Verified</th><th>Retention</th>"
        "</tr></thead><tbody>"
    )
    if not data.databases:
        w('<tr><td colspan="7" class="muted">No dumps yet.</td></tr>')
    for d in data.databases:
        overdue = d.overdue
        cls = "failed" if (d.last_failure or d.last_success is None) else ("warning" if overdue or d.flags else "")
        w(f'<tr class="db {cls}" data-database="{e(d.database)}">')
        w(f'<td><strong class="dbname">{e(d.database)}</strong><div class="muted">{e(d.server)}</div>')
        if d.last_failure:
            w(
                f'<div class="failed reason">last run failed {e(_age(d.last_failure_at, now))}: '
                f"{e(d.last_failure)}</div>"
            )
        w("</td>")
        age_cls = "failed" if overdue else "ok"
        w(
            f'<td><span class="{age_cls}">{e(_age(d.last_success, now))}</span>'
            f'<div class="muted">{e(_ts(d.last_success))}</div>'
        )
        if d.max_age is not None:
            w(f'<div class="muted">max age {e(format_duration(d.max_age))}</div>')
        w("</td>")
        size = format_bytes(d.size_stored) if d.size_stored is not None else "—"
        raw = f'<div class="muted">{e(format_bytes(d.size_raw))} SQL</div>' if d.size_raw is not None else ""
        flags = "".join(f' <span class="badge warning">{e(f)}</span>' for f in d.flags)
        if d.encrypted:
            flags += ' <span class="badge ok" title="the newest dump is encrypted with age">encrypted</span>'
        w(f'<td class="num">{e(size)}{raw}{flags}</td>')
        w(f"<td>{sparkline(d.sizes, label='size')}</td>")
        last_dur = f'<div class="muted">last {e(format_duration(d.durations[-1]))}</div>' if d.durations else ""
        w(f"<td>{sparkline(d.durations, label='duration', fmt=format_duration)}{last_dur}</td>")
        if d.verified_level:
            w(
                f'<td><span class="badge ok">level {d.verified_level}</span>'
                f'<div class="muted">{e(_ts(d.verified_at))}</div></td>'
            )
        else:
            w('<td><span class="badge warning">not verified</span></td>')
        w(
            f"<td>{d.dumps} dump{'s' if d.dumps != 1 else ''}, {e(format_bytes(d.total_stored))}"
            f'<div class="muted">oldest {e(_ts(d.oldest))}</div><div class="muted">{e(d.retention)}</div></td>'
        )
        w("</tr>")
    w("</tbody></table></section>")

    # disk
    w(
        '<h2>Disk usage</h2><section id="disk"><table><thead><tr><th>Path</th><th>Holds</th><th>Used</th>'
        "<th>Free</th><th>Thresholds</th></tr></thead><tbody>"
    )
    if not data.disk:
        w('<tr><td colspan="5" class="muted">No disk information.</td></tr>')
    for dl in data.disk:
        pct = dl.percent
        w(
            f'<tr class="{e(dl.level if dl.level != "ok" else "")}"><td><code>{e(dl.path)}</code></td>'
            f"<td>{e(dl.label)}</td>"
            f'<td><div class="bar {e(dl.level)}" title="{pct:.1f}% used"><span style="width:{min(100.0, pct):.1f}%">'
            f'</span><i style="left:{dl.warn_percent:.1f}%"></i><i style="left:{dl.critical_percent:.1f}%"></i></div>'
            f'<span class="{e(dl.level)}">{pct:.1f}% used — {e(dl.level)}</span></td>'
            f'<td class="num">{e(format_bytes(dl.free))} of {e(format_bytes(dl.total))}</td>'
            f"<td>warning {dl.warn_percent:.0f}% · critical {dl.critical_percent:.0f}%</td></tr>"
        )
    w("</tbody></table></section>")

    # runs
    w(
        '<h2>Recent runs</h2><section id="runs"><table><thead><tr><th>Run</th><th>Job</th><th>Status</th>'
        "<th>Started</th><th>Duration</th><th>Databases</th><th>Reason</th></tr></thead><tbody>"
    )
    if not data.runs:
        w('<tr><td colspan="7" class="muted">No runs recorded.</td></tr>')
    for r in data.runs:
        bad = RunStatus(r.status).bad
        cls = "failed" if bad else ("warning" if r.status in (RunStatus.CANCELLED, RunStatus.SKIPPED) else "")
        dur = format_duration((r.finished - r.started).total_seconds()) if r.started and r.finished else "—"
        badge = "failed" if bad else ("ok" if r.status == RunStatus.SUCCEEDED else "warning")
        dbs = ", ".join(r.databases)
        w(
            f'<tr class="run {cls}"><td class="num">{r.id}</td><td>{e(r.job)}<div class="muted">{e(r.server)} · '
            f'{e(r.trigger)}</div></td><td><span class="badge {badge}">{e(r.status)}</span></td>'
            f'<td>{e(_ts(r.started))}</td><td class="num">{e(dur)}</td><td>{e(dbs)}</td>'
            f'<td class="reason">{e(r.reason or "")}</td></tr>'
        )
    w("</tbody></table></section>")
    w(
        f"<footer>dumpdeck {e(__version__)} · this page is regenerated after every run and by "
        f"<code>dumpdeck report</code> · {e(data.host)}</footer></body></html>\n"
    )
    return "".join(out)


# --------------------------------------------------------------------------- write


def report_path(config: Config) -> Path:
    return Path(config.report.file) if config.report.file else Path(config.state_dir) / "report.html"


def write_report(
    config: Config,
    *,
    store: StateStore | None = None,
    entries: Sequence[DumpEntry] | None = None,
    out: Path | None = None,
    now: datetime | None = None,
) -> Path:
    """Render and write the status page atomically; opens the state store when not given."""
    own = None
    if store is None and Path(config.state_db).exists():
        try:
            own = store = StateStore.open(config.state_db)
        except Exception:
            store = None
    try:
        data = collect(config, store, entries, now)
    finally:
        if own is not None:
            own.close()
    path = Path(out) if out else report_path(config)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        write_atomic(path, render(data), mode=0o640)
    except OSError as exc:
        raise DumpdeckError(f"cannot write the status page {path}: {exc.strerror}") from None
    return path
