"""`dumpdeck report [--out FILE]`: write the self-contained HTML status page."""

from __future__ import annotations

import sys

from dumpdeck.backend.report import write_report


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML status page (one self-contained file)",
        description="Write the status page: per database the last success and its age, size and duration "
        "trends, verification and retention; disk usage against the thresholds; recent runs. "
        "One file with inline CSS and SVG, no external assets, auto-refreshing. It is also "
        "regenerated after every run at report.file (default <state_dir>/report.html).",
        epilog="exit codes: 0 written, 2 usage or configuration error",
    )
    p.add_argument("--out", "-o", metavar="FILE", help="where to write it (default: report.file from the config)")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    path = write_report(ctx.config, out=args.out)
    sys.stdout.write(f"{path}\n")
    return 0
