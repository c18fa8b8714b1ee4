"""`dumpdeck copy [--to DEST] [--server S] [--database DB] [--now] [--json]`: make the off-host copies that are due."""

from __future__ import annotations

import sys

from dumpdeck.backend import catalog
from dumpdeck.backend.errors import UsageError
from dumpdeck.backend.naming import printable

from ..output import outcome_style, print_json


def register(sub) -> None:
    p = sub.add_parser(
        "copy",
        help="copy verified dumps to the copy destinations now (what every job run does after its dumps)",
        description="Copy every dump that reached its job's verification level and has no verified copy yet to "
        "each destination of copies: (or only --to DEST), through rclone: uploaded under a temporary name, "
        "moved, then its size and sha256 checked there, and its manifest uploaded. Copies that failed "
        "earlier wait for their retry delay unless --now.",
        epilog="exit codes: 0 every copy made and verified (or none due), 1 a copy failed (the output names "
        "the destination and why), 2 usage error",
    )
    p.add_argument("--to", metavar="DEST", action="append", help="only this destination (repeatable)")
    p.add_argument("--server", "-s", help="only dumps of this server")
    p.add_argument("--database", "-d", help="only dumps of this database")
    p.add_argument("--now", action="store_true", help="retry failed copies now, whatever their retry delay says")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    from dumpdeck.backend import copies
    from dumpdeck.backend.state import StateStore

    config = ctx.config
    if not config.copies:
        raise UsageError(f"no copy destinations in {config.path} (see copies: in config.example.yaml)")

    def show(res) -> None:
        if not args.json:
            o = res.outcome
            where = f"{res.destination}: {printable(res.remote_path)}"
            sys.stdout.write(f"  {outcome_style(o.mark, o)} {where}: {printable(res.evidence)}\n")

    with StateStore.open(config.state_db) as store:
        results = copies.run_copies(
            config,
            store,
            catalog.scan(config.backup.dir),
            server=args.server,
            databases=[args.database] if args.database else None,
            only=args.to,
            force=args.now,
            on_result=show,
        )
    flat = [r for rs in results.values() for r in rs]
    if args.json:
        print_json(
            {
                name: [
                    {"path": r.remote_path, "outcome": r.outcome.value, "cause": r.cause, "evidence": r.evidence}
                    for r in rs
                ]
                for name, rs in results.items()
            }
        )
    elif not flat:
        sys.stdout.write("no copies due\n")
    return 0 if all(r.passed for r in flat) else 1
