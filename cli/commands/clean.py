"""`dumpdeck clean [--dry-run] [--scratch]`: leftovers of interrupted runs.

Always: .partial dump files whose writer is gone, sandboxes of restore-tests whose process is
gone (the server killed if it still runs, its directory removed), credentials directories of
dead processes. With --scratch: `dumpdeck_rt_*` databases and temporary accounts on the servers."""

from __future__ import annotations

import sys

from dumpdeck.backend import catalog, credentials
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.naming import printable

from ..output import print_json


def register(sub) -> None:
    p = sub.add_parser(
        "clean",
        help="remove leftover .partial files (and scratch databases with --scratch)",
        description="Remove .partial dump files whose writer is gone (their lock can be taken; a dump being "
        "written is never touched), sandboxes of restore-tests whose process is gone (their mariadbd is stopped "
        "and their directory removed) and credentials of dead processes (files exist only where the platform "
        "has no memfd). With --scratch, also drop "
        "leftover dumpdeck_rt_* databases and temporary accounts of interrupted restore-tests, and "
        "dumpdeck_stage_* databases of killed restores, on the configured servers (ones in use are skipped).",
        epilog="exit codes: 0 done, 1 a server could not be cleaned, 2 usage error",
    )
    p.add_argument("--dry-run", "-n", action="store_true", help="show what would be removed")
    p.add_argument(
        "--scratch", action="store_true", help="also drop leftover dumpdeck_rt_* databases and temporary accounts"
    )
    p.add_argument("--server", "-s", help="with --scratch: only this server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from dumpdeck.backend import sandbox

    config = ctx.config
    cat = catalog.scan(config.backup.dir)
    removed = catalog.clean_partials(cat, dry_run=args.dry_run)
    live = [p.path for p in cat.partials if p.live]
    sandboxes = sandbox.orphans()
    creds = credentials.orphans()
    if not args.dry_run:
        for home in sandboxes:
            sandbox.remove_orphan(home)
        for d in creds:
            credentials.remove_orphan(d)
    scratch: dict[str, list[str]] = {}
    accounts: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    warnings: dict[str, list[str]] = {}
    if args.scratch:
        from dumpdeck.backend.restore import cleanup_scratch
        from dumpdeck.backend.restore_real import cleanup_leftovers

        names = [args.server] if args.server else list(config.servers)
        for name in names:
            try:
                left = cleanup_scratch(config, name, dry_run=args.dry_run)
            except DumpdeckError as exc:
                errors[name] = str(exc)
                continue
            scratch[name] = left.databases
            found: list[str] = []
            try:  # restores' staging databases, and their temporary accounts ('user'@'host')
                found = cleanup_leftovers(config, name, dry_run=args.dry_run)
            except DumpdeckError as exc:
                errors[name] = str(exc)
            scratch[name] += [n for n in found if not n.startswith("'")]
            accounts[name] = left.accounts + [n for n in found if n.startswith("'")]
            if left.warnings:
                warnings[name] = left.warnings
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        print_json(
            {
                "dry_run": args.dry_run,
                "partials_removed": [str(p) for p in removed],
                "partials_live": [str(p) for p in live],
                "sandboxes_removed": [str(p) for p in sandboxes],
                "credentials_removed": [str(p) for p in creds],
                "scratch_dropped": scratch,
                "accounts_dropped": accounts,
                "warnings": warnings,
                "errors": errors,
            }
        )
    else:
        for p in removed:
            sys.stdout.write(f"{verb} {p}\n")
        for p in live:
            sys.stdout.write(f"kept {p} (a dump is writing it)\n")
        for p in sandboxes:
            sys.stdout.write(f"{verb} orphaned restore-test sandbox {p}\n")
        for p in creds:
            kind = "directory" if p.name.startswith(credentials.PREFIX) else "file"
            sys.stdout.write(f"{verb} orphaned credentials {kind} {p}\n")
        drop = "would drop" if args.dry_run else "dropped"
        for server, dbs in scratch.items():
            for name in dbs:
                sys.stdout.write(f"{drop} database `{printable(name)}` on {server}\n")
        for server, accs in accounts.items():
            for a in accs:
                sys.stdout.write(f"{drop} temporary account {a} on {server}\n")
        for server, ws in warnings.items():
            for w in ws:
                sys.stderr.write(f"dumpdeck: warning: {server}: {printable(w)}\n")
        for server, err in errors.items():
            sys.stderr.write(f"dumpdeck: error: {server}: {printable(err)}\n")
        if not (removed or sandboxes or creds or any(scratch.values()) or any(accounts.values())):
            sys.stdout.write("nothing to clean\n")
    return 1 if errors else 0
