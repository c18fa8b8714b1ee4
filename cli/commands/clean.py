"""`dumpdeck clean [--dry-run] [--scratch]`: leftover partial files and scratch databases."""

from __future__ import annotations

import sys

from dumpdeck.backend import catalog
from dumpdeck.backend.errors import DumpdeckError

from ..output import print_json


def register(sub) -> None:
    p = sub.add_parser(
        "clean",
        help="remove leftover .partial files (and scratch databases with --scratch)",
        description="Remove .partial dump files whose writer is gone (their lock can be taken; a dump being "
        "written is never touched). With --scratch, also drop leftover dumpdeck_rt_* databases of "
        "interrupted restore-tests on the configured servers (ones in use are skipped).",
        epilog="exit codes: 0 done, 1 a server could not be cleaned, 2 usage error",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show what would be removed")
    p.add_argument("--scratch", action="store_true", help="also drop leftover dumpdeck_rt_* databases")
    p.add_argument("--server", "-s", help="with --scratch: only this server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    config = ctx.config
    cat = catalog.scan(config.backup.dir)
    removed = catalog.clean_partials(cat, dry_run=args.dry_run)
    live = [p.path for p in cat.partials if p.live]
    scratch: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    if args.scratch:
        from dumpdeck.backend import mysql
        from dumpdeck.backend.restore import SCRATCH_PREFIX, cleanup_scratch

        names = [args.server] if args.server else list(config.servers)
        for name in names:
            try:
                if args.dry_run:
                    conn = mysql.connect(config.server(name))
                    try:
                        scratch[name] = [
                            d for d in mysql.list_databases(conn, config.server(name)) if d.startswith(SCRATCH_PREFIX)
                        ]
                    finally:
                        conn.close()
                else:
                    scratch[name] = cleanup_scratch(config, name)
            except DumpdeckError as exc:
                errors[name] = str(exc)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "partials_removed": [str(p) for p in removed],
                "partials_live": [str(p) for p in live],
                "scratch_dropped": scratch,
                "errors": errors,
            }
        )
    else:
        for p in removed:
            sys.stdout.write(f"{verb} {p}\n")
        for p in live:
            sys.stdout.write(f"kept {p} (a dump is writing it)\n")
        for server, dbs in scratch.items():
            for d in dbs:
                sys.stdout.write(f"{'would drop' if args.dry_run else 'dropped'} database `{d}` on {server}\n")
        for server, err in errors.items():
            sys.stderr.write(f"dumpdeck: error: {server}: {err}\n")
        if not removed and not scratch.get(args.server or "", []) and not any(scratch.values()):
            sys.stdout.write("nothing to clean\n")
    return 1 if errors else 0
