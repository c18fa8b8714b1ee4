"""`dumpdeck check [--no-notify] [--json]`: the dead-man's alarm as a Nagios plugin.

Per the Monitoring Plugins guidelines: exactly one status line on stdout in every case
(`DUMPDECK OK|WARNING|CRITICAL|UNKNOWN - text | perfdata`), exit 0/1/2 for OK/WARNING/CRITICAL,
and 3 UNKNOWN when it cannot evaluate (a broken configuration, an unreadable state store or backup
directory). Perfdata carries units and warn;crit thresholds. After every check the Prometheus
textfile (metrics.textfile) is rewritten.
"""

from __future__ import annotations

import logging
import sys

from dumpdeck.backend import metrics
from dumpdeck.backend.check import LABELS, UNKNOWN, check, unknown_line
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.naming import printable

from ..output import print_json

log = logging.getLogger("dumpdeck.check")


def register(sub) -> None:
    p = sub.add_parser(
        "check",
        help="dead-man's alarm: are all backups fresh? (a Nagios plugin: exit 0/1/2/3)",
        description="Check that every database covered by a job has a successful backup younger than its "
        "max_age (job.max_age, else checks.max_age), that the newest dump is not anomalously "
        "small, and that the disks are below their thresholds. Prints one status line "
        "(DUMPDECK OK|WARNING|CRITICAL|UNKNOWN - ... | perfdata) and notifies per the smart policy. "
        "Run it from cron, a systemd timer (schedule install adds one) or a monitoring system.",
        epilog="exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (cannot evaluate: broken configuration, "
        "unreadable state or backups)",
    )
    p.add_argument("--no-notify", action="store_true", help="print and exit; send no notification")
    p.add_argument(
        "--verbose", "-v", action="store_true", help="list every problem on its own line after the status line"
    )
    p.add_argument("--json", action="store_true", help="the verdict, problems and perfdata as JSON")
    p.set_defaults(func=run)


def _unknown(args, reason: str) -> int:
    line = unknown_line(reason)
    if args.json:
        print_json({"status": "UNKNOWN", "code": UNKNOWN, "line": line, "problems": [], "perfdata": {}})
    else:
        sys.stdout.write(line + "\n")
    return UNKNOWN


def run(args, ctx) -> int:
    try:
        config = ctx.config
    except DumpdeckError as exc:
        lines = str(exc).splitlines()
        more = f" (+{len(lines) - 1} more problems; run dumpdeck config check)" if len(lines) > 1 else ""
        return _unknown(args, f"configuration error: {lines[0] if lines else exc}{more}")
    try:
        result = check(config, notify=not args.no_notify)
    except DumpdeckError as exc:
        return _unknown(args, str(exc))
    except Exception as exc:  # whatever it is, a monitor must get one line and UNKNOWN, not a traceback
        log.exception("dead-man's check failed")
        return _unknown(args, f"cannot evaluate: {type(exc).__name__}: {exc}")
    try:
        metrics.write_textfile(config, check_result=result)
    except Exception as exc:  # the metrics are a report; the verdict stands
        sys.stderr.write(f"dumpdeck: warning: cannot write the metrics textfile: {exc}\n")
    if args.json:
        print_json(
            {
                "status": LABELS[result.code],
                "code": result.code,
                "line": result.line,
                "databases": result.databases,
                "problems": [{"level": LABELS[p.level], "id": p.id, "text": p.text} for p in result.problems],
                "perfdata": {
                    p.label: {
                        "value": p.value,
                        "uom": p.uom,
                        "warn": p.warn,
                        "crit": p.crit,
                        "min": p.min,
                        "max": p.max,
                    }
                    for p in result.perf
                },
            }
        )
    else:
        sys.stdout.write(printable(result.line) + "\n")
        if args.verbose:
            for p in result.problems:
                sys.stdout.write(f"  {LABELS[p.level]}: {printable(p.text)}\n")
    d = result.notified
    if d is not None:
        for delivery in d.deliveries:
            if not delivery.ok:
                sys.stderr.write(
                    f"dumpdeck: warning: notification on {delivery.channel} failed: {delivery.error} "
                    f"(recorded; retried with the next event)\n"
                )
    return result.code
