"""`dumpdeck disk [--json]`: usage of the backup volumes, footprint per database, days until full."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from dumpdeck.backend import disk
from dumpdeck.backend.units import format_bytes

from ..output import print_json, style, table


def register(sub) -> None:
    p = sub.add_parser(
        "disk",
        help="disk usage of the backup volumes, footprint per database, days until full",
        description="Usage of each volume holding backups or state (warning and critical at "
        "disk.warn_percent / disk.critical_percent), the bytes each database's dumps "
        "take, and a projection of days until full from recent growth.",
        epilog="exit codes: 0 ok, 1 a volume is at warning or critical level",
    )
    p.add_argument("--window", type=float, default=14.0, metavar="DAYS", help="growth window (default 14 days)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from dumpdeck.backend.catalog import scan

    config = ctx.config
    now = datetime.now(UTC)
    vols = disk.volumes(config)
    catalog = scan(config.backup.dir)
    foot = disk.footprint(catalog)
    g = disk.growth(config, catalog, now, args.window)
    backup_vol = next((v for v in vols if v.holds_backups), None)
    days = disk.projection(config, catalog, now, args.window, free_bytes=backup_vol.free if backup_vol else None)
    bad = any(v.level != "ok" for v in vols)
    if args.json:
        print_json(
            {
                "volumes": vols,
                "footprint": [{"server": s, "database": d, "bytes": b} for (s, d), b in sorted(foot.items(), key=str)],
                "growth": g,
                "days_until_full": days,
                "thresholds": {
                    "warn_percent": config.disk.warn_percent,
                    "critical_percent": config.disk.critical_percent,
                },
            }
        )
        return 1 if bad else 0
    rows = []
    for v in vols:
        level = style(v.level, ok=v.level == "ok")
        rows.append(
            [
                v.mount,
                format_bytes(v.total),
                format_bytes(v.used),
                format_bytes(v.free),
                f"{v.percent:.1f}%",
                level,
                "; ".join(v.paths),
            ]
        )
    sys.stdout.write(table(["MOUNT", "SIZE", "USED", "FREE", "USE", "LEVEL", "HOLDS"], rows, "lrrrrll") + "\n")
    sys.stdout.write(
        f"thresholds: warning at {config.disk.warn_percent:g}%, critical at {config.disk.critical_percent:g}%\n\n"
    )
    if foot:
        total = sum(foot.values())
        frows = [
            [f"{s or '-'}/{d}", format_bytes(b), f"{b / total * 100:.0f}%" if total else ""]
            for (s, d), b in sorted(foot.items(), key=lambda kv: -kv[1])
        ]
        sys.stdout.write(table(["DATABASE", "DUMPS", "SHARE"], frows, "lrr") + "\n\n")
    if g is None:
        sys.stdout.write(f"projection: not enough dumps in the last {args.window:g} days\n")
    elif days is None:
        sys.stdout.write(
            f"projection: not growing (writes {format_bytes(g.written_per_day)}/day, retention "
            "keeps the footprint flat)\n"
        )
    else:
        sys.stdout.write(
            f"projection: full in about {days:.0f} days at {format_bytes(g.bytes_per_day)}/day net "
            f"growth (writes {format_bytes(g.written_per_day)}/day)\n"
        )
    return 1 if bad else 0
