"""`dumpdeck check [--no-notify]`: the dead-man's alarm, one Nagios-style line, exit 0/1/2."""

from __future__ import annotations

import sys

from dumpdeck.backend.check import check


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="dead-man's alarm: are all backups fresh? (Nagios-style, exit 0/1/2)",
        description="Check that every database covered by a job has a successful backup younger than its "
        "max_age (job.max_age, else checks.max_age), that the newest dump is not anomalously "
        "small, and that the disks are below their thresholds. Prints one status line "
        "(DUMPDECK OK|WARNING|CRITICAL - ...) and notifies per the smart policy. "
        "Run it from cron or a monitoring system.",
        epilog="exit codes: 0 OK, 1 WARNING, 2 CRITICAL (also for a broken configuration)",
    )
    p.add_argument("--no-notify", action="store_true", help="print and exit; send no notification")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="list every problem on its own line after the status line"
    )
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    result = check(ctx.config, notify=not args.no_notify)
    sys.stdout.write(result.line + "\n")
    if args.verbose:
        for p in result.problems:
            sys.stdout.write(f"  {'CRITICAL' if p.level == 2 else 'WARNING'}: {p.text}\n")
    d = result.notified
    if d is not None:
        for delivery in d.deliveries:
            if not delivery.ok:
                sys.stderr.write(
                    f"dumpdeck: warning: notification on {delivery.channel} failed: {delivery.error} "
                    f"(recorded; retried with the next event)\n"
                )
    return result.code
