"""`dumpdeck schedule install|show|remove [--systemd]`: run the configured jobs from cron or systemd timers."""

from __future__ import annotations

import sys
from pathlib import Path

from dumpdeck.backend import schedule
from dumpdeck.backend.errors import DumpdeckError, Untranslatable

from ..output import print_json, table


def register(sub) -> None:
    p = sub.add_parser(
        "schedule",
        help="install, show or remove the cron block (or systemd timers) for the jobs",
        description="Manage the marked dumpdeck block in your crontab (lines between "
        f"'{schedule.BEGIN}' and '{schedule.END}'); other lines are never touched and "
        "installing twice changes nothing. --systemd writes timer and service units instead.",
        epilog=f"--crontab-file (or ${schedule.ENV_CRONTAB_FILE}) edits that file instead of the user's crontab.",
    )
    p.add_argument("action", choices=["install", "show", "remove"])
    p.add_argument("--systemd", action="store_true", help="write/remove systemd .service and .timer units")
    p.add_argument(
        "--unit-dir",
        type=Path,
        metavar="DIR",
        help="where to write units (default /etc/systemd/system as root, else ~/.config/systemd/user)",
    )
    p.add_argument("--crontab-file", type=Path, metavar="FILE", help="edit this file instead of `crontab -l/-`")
    p.add_argument("--count", type=int, default=3, metavar="N", help="next run times to show (default 3)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    config = ctx.config
    if args.action == "show":
        return _show(config, args)
    if args.systemd:
        return _systemd(config, args)
    if args.action == "install":
        change = schedule.install(config, args.crontab_file)
        if not schedule.scheduled_jobs(config):
            sys.stdout.write(
                "no job has a schedule; "
                + ("removed the dumpdeck block" if change.changed else "nothing to install")
                + "\n"
            )
        elif change.changed:
            sys.stdout.write(f"installed the dumpdeck block in {change.target}:\n{schedule.crontab_block(config)}")
        else:
            sys.stdout.write(f"{change.target} is already up to date\n")
        return 0
    change = schedule.remove(config, args.crontab_file)
    sys.stdout.write(
        ("removed the dumpdeck block from " if change.changed else "no dumpdeck block in ") + change.target + "\n"
    )
    return 0


def _show(config, args) -> int:
    info = schedule.show(config, args.crontab_file)
    jobs = []
    for job in config.jobs.values():
        try:
            cal = schedule.on_calendar(job.schedule, job.timezone) if job.schedule else None
            cal_problem = None
        except (Untranslatable, DumpdeckError) as exc:
            cal, cal_problem = None, str(exc)
        jobs.append(
            {
                "job": job.name,
                "schedule": job.schedule,
                "timezone": job.timezone,
                "next": [d.isoformat() for d in schedule.next_runs(job, args.count)] if job.schedule else [],
                "on_calendar": cal,
                "on_calendar_problem": cal_problem,
            }
        )
    if args.json:
        print_json({**info, "jobs": jobs})
        return 0
    rows = []
    for j in jobs:
        nxt = ", ".join(d[:16].replace("T", " ") for d in j["next"]) or "not scheduled"
        rows.append([j["job"], j["schedule"] or "-", j["timezone"] or "local", nxt])
    sys.stdout.write(table(["JOB", "SCHEDULE", "TZ", "NEXT RUNS"], rows) + "\n\n" if rows else "no jobs configured\n\n")
    if info["error"]:
        sys.stdout.write(f"crontab: {info['error']}\n")
    elif info["up_to_date"]:
        sys.stdout.write(f"{info['target']}: the dumpdeck block is installed and up to date\n")
    elif info["installed"]:
        sys.stdout.write(
            f"{info['target']}: the installed block differs from the config; run `dumpdeck schedule install`\n"
        )
    else:
        sys.stdout.write(f"{info['target']}: no dumpdeck block installed; `dumpdeck schedule install` adds:\n")
        sys.stdout.write(info["wanted"])
    return 0


def _systemd(config, args) -> int:
    if args.action == "install":
        res = schedule.install_systemd(config, args.unit_dir)
        for path in res.written:
            sys.stdout.write(f"wrote {path}\n")
        for path in res.unchanged:
            sys.stdout.write(f"unchanged {path}\n")
        for cmd in res.commands:
            sys.stdout.write(f"ran: {cmd}\n")
        for path in res.removed:
            sys.stdout.write(f"removed {path} (its job is no longer scheduled)\n")
        for problem in res.problems:
            sys.stderr.write(f"dumpdeck: {problem}\n")
        if res.written or res.unchanged:
            user = "" if res.system else " --user"
            timers = " ".join(p.name for p in res.written + res.unchanged if p.suffix == ".timer")
            sys.stdout.write(f"enable with: systemctl{user} daemon-reload && systemctl{user} enable --now {timers}\n")
            if not res.system:
                hint = schedule.linger_hint()
                if hint:
                    sys.stdout.write(f"note: {hint}\n")
        return 1 if res.problems else 0
    res = schedule.remove_systemd(config, args.unit_dir)
    for cmd in res.commands:
        sys.stdout.write(f"ran: {cmd}\n")
    for path in res.removed:
        sys.stdout.write(f"removed {path}\n")
    if not res.removed:
        sys.stdout.write(f"no units of this config in {res.unit_dir}\n")
    return 0
