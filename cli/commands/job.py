"""`dumpdeck job run|start|status|cancel|list`: jobs and runs from the command line.

`job run NAME` is what cron calls: the job runs in this process under its lock.
`job start` spawns a detached runner and prints the run id at once; the run
survives the end of the SSH session. `job status` shows live progress from
the state store, which any number of terminals may read at the same time.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from dumpdeck.backend import jobs, runner
from dumpdeck.backend.errors import UsageError
from dumpdeck.backend.naming import printable
from dumpdeck.backend.state import StateStore
from dumpdeck.backend.units import format_bytes, format_duration

from ..output import print_json, style, table, to_jsonable


def register(sub) -> None:
    p = sub.add_parser(
        "job",
        help="run, start, watch and cancel backup jobs",
        description="Backup jobs and their runs.",
        epilog="exit codes: 0 success, 1 the run failed, 2 usage or configuration error, "
        "3 skipped because the job is already running",
    )
    jsub = p.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    r = jsub.add_parser(
        "run",
        help="run a job now in the foreground, under its lock (what cron calls)",
        description="Run a job in this process. If the job is already running, exit 3 at "
        "once and record the run as skipped.",
    )
    r.add_argument("name", metavar="NAME")
    r.add_argument("--trigger", choices=["cron", "cli", "console"], default="cron", help=argparse_hide())
    r.add_argument("--verbose", "-v", action="store_true", help="log to stderr as well")
    r.set_defaults(func=run_cmd)

    s = jsub.add_parser(
        "start",
        help="start a job or ad-hoc databases in a detached runner; prints the run id",
        description="Queue a run and start its runner in the background (its own session, "
        "no terminal): closing the SSH session does not stop it.",
    )
    s.add_argument("name", nargs="?", metavar="NAME", help="job name from the config")
    s.add_argument("--databases", "-d", nargs="+", metavar="DB", help="databases to back up (ad hoc, or a subset)")
    s.add_argument("--server", "-s", help="server for an ad-hoc run")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=start_cmd)

    st = jsub.add_parser("status", help="live progress of a run (default: active and recent runs)")
    st.add_argument("run", nargs="?", type=int, metavar="RUN")
    st.add_argument("--json", action="store_true")
    st.add_argument("--watch", "-w", action="store_true", help="refresh every second until the run ends")
    st.add_argument("--events", type=int, default=8, metavar="N", help="recent events to show (default 8)")
    st.set_defaults(func=status_cmd)

    c = jsub.add_parser("cancel", help="cancel a run (its dumps are killed and partial files removed)")
    c.add_argument("run", type=int, metavar="RUN")
    c.add_argument("--wait", action="store_true", help="wait until the run has stopped")
    c.set_defaults(func=cancel_cmd)

    ls = jsub.add_parser("list", help="configured jobs and recent runs")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=list_cmd)


def argparse_hide():
    import argparse

    return argparse.SUPPRESS


# --------------------------------------------------------------------------- commands


def run_cmd(args, ctx) -> int:
    from dumpdeck.backend.logs import setup_logging

    config = ctx.config
    setup_logging(config, stderr=args.verbose)
    run = runner.run_job(config, args.name, trigger=args.trigger)  # this run, not the job's newest one
    code = 0 if run.status == "succeeded" else 1
    stream = sys.stdout if code == 0 else sys.stderr
    stream.write(f"run {run.id} ({run.job}) {run.status}: {printable(run.reason)}\n")
    return code


def start_cmd(args, ctx) -> int:
    config = ctx.config
    if not args.name and not args.databases:
        raise UsageError("name a job, or give --databases for an ad-hoc run")
    run = jobs.start_run(config, args.name, databases=args.databases, server=args.server, trigger="cli")
    if args.json:
        print_json(
            {
                "run": run.id,
                "job": run.job,
                "server": run.server,
                "databases": list(run.databases),
                "pid": run.pid,
                "log": run.log_path,
            }
        )
    else:
        sys.stdout.write(f"{run.id}\n")
        sys.stderr.write(
            f"run {run.id} ({run.job}) started in the background: {', '.join(run.databases)} on "
            f"{run.server}; follow it with: dumpdeck job status {run.id} --watch\n"
        )
    return 0


def status_cmd(args, ctx) -> int:
    config = ctx.config
    store = StateStore.open(config.state_db)
    try:
        if args.watch:
            return _watch(store, args)
        store.reap_lost()
        if args.run is None:
            runs = store.list_runs(limit=10)
            active = [r for r in runs if r.active]
            if args.json:
                print_json([_run_json(store, r) for r in runs])
                return 0
            if not runs:
                sys.stdout.write("no runs yet\n")
                return 0
            for r in active:
                sys.stdout.write(_render_run(store, r, args.events) + "\n\n")
            sys.stdout.write(_runs_table(runs) + "\n")
            return 0
        run = store.get_run(args.run)
        if run is None:
            raise UsageError(f"no run {args.run} in {config.state_db}")
        if args.json:
            print_json(_run_json(store, run, events=args.events))
        else:
            sys.stdout.write(_render_run(store, run, args.events) + "\n")
        return _exit_for(run)
    finally:
        store.close()


def _watch(store: StateStore, args) -> int:
    tty = sys.stdout.isatty()
    run_id = args.run
    if run_id is None:
        active = store.list_runs(limit=1, active_only=True)
        if not active:
            sys.stdout.write("no active run\n")
            return 0
        run_id = active[0].id
    last = None
    while True:
        store.reap_lost()
        run = store.get_run(run_id)
        if run is None:
            raise UsageError(f"no run {run_id}")
        if args.json:
            print_json(_run_json(store, run, events=args.events))
        else:
            text = _render_run(store, run, args.events)
            if tty:
                sys.stdout.write("\033[H\033[2J" + text + "\n")
            elif text != last:
                sys.stdout.write(text + "\n\n")
            last = text
        sys.stdout.flush()
        if not run.active:
            return _exit_for(run)
        time.sleep(1.0)


def _exit_for(run) -> int:
    return 0 if run.status in ("succeeded", "queued", "running") else 1


def cancel_cmd(args, ctx) -> int:
    config = ctx.config
    store = StateStore.open(config.state_db)
    try:
        run = store.get_run(args.run)
        if run is None:
            raise UsageError(f"no run {args.run} in {config.state_db}")
        if not jobs.cancel_run(store, args.run):
            run = store.get_run(args.run) or run
            sys.stderr.write(f"run {run.id} is not running ({run.status})\n")
            return 1
        sys.stdout.write(f"cancel sent to run {run.id} ({run.job}, pid {run.pid})\n")
        if args.wait:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                store.reap_lost()
                run = store.get_run(args.run) or run
                if not run.active:
                    break
                time.sleep(0.2)
            sys.stdout.write(f"run {run.id} {run.status}: {printable(run.reason)}\n")
        return 0
    finally:
        store.close()


def list_cmd(args, ctx) -> int:
    from dumpdeck.backend.schedule import next_runs

    config = ctx.config
    store = StateStore.open(config.state_db)
    try:
        store.reap_lost()
        runs = store.list_runs(limit=args.limit)
        if args.json:
            print_json(
                {
                    "jobs": [
                        {
                            "name": j.name,
                            "server": j.server,
                            "databases": list(j.databases),
                            "exclude": list(j.exclude),
                            "schedule": j.schedule,
                            "timezone": j.timezone,
                            "next": [d.isoformat() for d in next_runs(j, 1)] if j.schedule else [],
                            "last": _last_json(store, j.name),
                        }
                        for j in config.jobs.values()
                    ],
                    "runs": [_run_json(store, r, events=0) for r in runs],
                }
            )
            return 0
        rows = []
        for j in config.jobs.values():
            last = store.list_runs(limit=1, job=j.name)
            nxt = next_runs(j, 1)[0].strftime("%Y-%m-%d %H:%M %Z") if j.schedule else "-"
            rows.append(
                [
                    j.name,
                    j.server,
                    ",".join(j.databases) + (f" -{','.join(j.exclude)}" if j.exclude else ""),
                    j.schedule or "-",
                    nxt,
                    f"{last[0].status} #{last[0].id}" if last else "never",
                ]
            )
        if rows:
            sys.stdout.write(table(["JOB", "SERVER", "DATABASES", "SCHEDULE", "NEXT", "LAST"], rows) + "\n\n")
        else:
            sys.stdout.write("no jobs configured\n\n")
        sys.stdout.write(_runs_table(runs) + "\n" if runs else "no runs yet\n")
        return 0
    finally:
        store.close()


# --------------------------------------------------------------------------- rendering


def _last_json(store, job):
    runs = store.list_runs(limit=1, job=job)
    return to_jsonable(runs[0]) if runs else None


def _run_json(store: StateStore, run, events: int = 20) -> dict:
    out = to_jsonable(run)
    out["progress"] = [
        dict(to_jsonable(p), elapsed=p.elapsed, time_left=p.time_left if p.status == "running" else None)
        for p in store.progress(run.id)
    ]
    if events:
        evs = store.events(run.id, limit=10000)[-events:]
        out["events"] = [to_jsonable(e) for e in evs]
    return out


def _status_style(status: str) -> str:
    ok = {"succeeded": True, "failed": False, "timed-out": False, "lost": False}.get(status)
    return style(status, ok=ok)


def _runs_table(runs) -> str:
    rows = []
    for r in runs:
        rows.append(
            [
                r.id,
                r.job,
                r.trigger,
                _status_style(r.status),
                r.server,
                ",".join(r.databases)[:40],
                _when(r.created),
                format_duration(r.duration) if r.duration is not None else "-",
                (r.reason or "")[:60],
            ]
        )
    return table(["RUN", "JOB", "BY", "STATUS", "SERVER", "DATABASES", "CREATED", "TOOK", "REASON"], rows)


def _when(dt: datetime | None) -> str:
    return dt.astimezone().strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def _render_run(store: StateStore, run, n_events: int) -> str:
    lines = [
        f"run {run.id}  {run.job}  {_status_style(run.status)}  by {run.trigger}  server {run.server}  "
        f"pid {run.pid or '-'}@{run.host or '-'}"
    ]
    lines.append(
        f"  created {_when(run.created)}  started {_when(run.started)}  finished {_when(run.finished)}"
        + (f"  ({format_duration(run.duration)})" if run.duration is not None else "")
    )
    if run.reason:
        lines.append(f"  reason: {printable(run.reason)}")
    if run.log_path:
        lines.append(f"  log: {run.log_path}")
    rows = []
    now = datetime.now(UTC)
    for p in store.progress(run.id):
        live = p.status == "running"
        frac = f"{min(1.0, p.bytes_raw / p.estimate) * 100:.0f}%" if (p.estimate and live) else ""
        left = p.time_left if live else None
        beat = f"{(now - p.updated).total_seconds():.0f}s" if (live and p.updated) else ""
        rows.append(
            [
                p.database,
                _status_style(p.status),
                p.attempt + 1 if p.status != "pending" else "",
                format_bytes(p.bytes_raw),
                format_bytes(p.bytes_stored),
                frac,
                f"{format_bytes(p.rate)}/s" if live else "",
                (p.current_table or "")[:24] if live else "",
                format_duration(p.elapsed) if p.elapsed is not None else "",
                format_duration(left) if left is not None else "",
                beat,
                (p.error or "")[:60],
            ]
        )
    if rows:
        lines.append(
            table(
                [
                    "DATABASE",
                    "STATUS",
                    "TRY",
                    "RAW",
                    "STORED",
                    "DONE",
                    "RATE",
                    "TABLE",
                    "ELAPSED",
                    "TIMEOUT IN",
                    "BEAT",
                    "ERROR",
                ],
                rows,
                "llrrrrrlrrrl",
            )
        )
    if n_events:
        evs = store.events(run.id, limit=10000)[-n_events:]
        for e in evs:
            lines.append(f"  {e.at.astimezone().strftime('%H:%M:%S')} {e.level:<7} {printable(e.message)}")
    return "\n".join(lines)
