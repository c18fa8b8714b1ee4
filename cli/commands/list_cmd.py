"""`dumpdeck list [--server S] [--database DB] [--json]`: every dump on disk with its verification level."""

from __future__ import annotations

import sys

from dumpdeck.backend import catalog
from dumpdeck.backend.naming import printable
from dumpdeck.backend.outcome import Outcome
from dumpdeck.backend.units import format_bytes

from ..output import age, print_json, style, table


def register(sub) -> None:
    p = sub.add_parser(
        "list",
        help="list the dumps on disk with size, age, codec and verification level",
        description="Every dump in the backup directory, newest first: engine dumps with manifests, dumps without, "
        "legacy files of the old scripts (<db>_<YYYYmmdd_HHMMSS>.sql[.gz|.xz], time read as local "
        "time), and leftover .partial files.",
        epilog="VERIFIED shows the level proven: 1 file, 2 stream, 3 content, 4 restore-test; "
        "'!' marks a failed last check (the dump is bad), '?' a last check that could not run (not checked: "
        "the level stays what earlier checks proved). COPIES (when copies: are configured): per destination, "
        "✓ verified there, ✗ failed (a later run retries), … pending, - deleted there by its retention. "
        "exit codes: 0 listed, 2 usage error",
    )
    p.add_argument("--server", "-s", help="only dumps of this server")
    p.add_argument("--database", "-d", help="only dumps of this database")
    p.add_argument(
        "--remote",
        metavar="DEST",
        help="list the dumps at copy destination DEST instead (every server that writes there; read with "
        "rclone lsjson and the manifests stored there: works from any host with the rclone config)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _run_remote(args, ctx) -> int:
    from dumpdeck.backend import copies

    dumps = [
        d
        for d in copies.remote_catalog(ctx.config, args.remote, server=args.server)
        if args.database is None or d.database == args.database
    ]
    if args.json:
        print_json(
            {
                "destination": args.remote,
                "dumps": [
                    {
                        "path": d.rel,
                        "server": d.server,
                        "database": d.database,
                        "when": d.when.isoformat(),
                        "size": d.size,
                        "sha256": d.manifest.sha256 if d.manifest else None,
                        "verified": d.verified,
                        "status": d.status,
                        "copy": d.copy,
                    }
                    for d in dumps
                ],
            }
        )
        return 0
    if not dumps:
        sys.stdout.write(f"no dumps at {args.remote}\n")
        return 0
    rows = [
        [
            printable(d.server),
            printable(d.database),
            d.when.astimezone().strftime("%Y-%m-%d %H:%M"),
            age(d.when),
            format_bytes(d.size),
            style("verified", ok=True) if d.verified else style(d.status, ok=False),
            printable(d.rel),
        ]
        for d in dumps
    ]
    sys.stdout.write(
        table(["SERVER", "DATABASE", "TIME", "AGE", "SIZE", "COPY", "PATH AT " + args.remote], rows, "lllrrll") + "\n"
    )
    return 0


def copies_cell(states: list) -> str:
    """`offsite✓ nas…`: per destination, ✓ verified, ✗ failed (retried later), … pending, - removed there."""
    from dumpdeck.backend.copies import summary_text

    return summary_text(states) if states else "-"


def entry_dict(e: catalog.DumpEntry) -> dict:
    return {
        "path": str(e.path),
        "server": e.server,
        "database": e.database,
        "when": e.when.isoformat(),
        "size": e.size,
        "codec": e.codec,
        "encrypted": e.encrypted,
        "legacy": e.legacy,
        "has_manifest": e.manifest is not None,
        "manifest_error": e.manifest_error,
        "verified_level": e.verified_level,
        "verified_at": e.verified_at.isoformat() if e.verified_at else None,
        "last_result": e.last_result.value if e.last_result is not None else None,
        "sha256": e.manifest.sha256 if e.manifest else None,
    }


def run(args, ctx) -> int:
    if args.remote:
        return _run_remote(args, ctx)
    backup_dir = ctx.config.backup.dir
    cat = catalog.scan(backup_dir)
    copy_states: dict[str, list] = {}
    if ctx.config.copies:
        from dumpdeck.backend import copies
        from dumpdeck.backend.state import StateStore

        with StateStore.open(ctx.config.state_db) as store:
            index = copies.record_index(store)
        copy_states = {e.key: copies.states_for(ctx.config, e, index) for e in cat.entries}
    entries = [
        e
        for e in cat.entries
        if (args.server is None or e.server == args.server) and (args.database is None or e.database == args.database)
    ]
    if args.json:
        print_json(
            {
                "directory": str(backup_dir),
                "dumps": [
                    entry_dict(e)
                    | (
                        {
                            "copies": [
                                {"destination": c.destination, "state": c.state, "detail": c.detail}
                                for c in copy_states.get(e.key, [])
                            ]
                        }
                        if ctx.config.copies
                        else {}
                    )
                    for e in entries
                ],
                "partials": [
                    {"path": str(p.path), "size": p.size, "mtime": p.mtime.isoformat(), "live": p.live}
                    for p in cat.partials
                ],
                "errors": cat.errors,
            }
        )
        return 0
    for err in cat.errors:
        sys.stderr.write(style(f"warning: {err}", ok=False, stream=sys.stderr) + "\n")
    if not entries:
        sys.stdout.write(f"no dumps in {backup_dir}\n")
    else:
        rows = []
        notes = []
        for e in entries:
            level = str(e.verified_level) if e.verified_level else "-"
            if e.last_result is Outcome.FAILED:
                level += "!"
            elif e.last_result is Outcome.NOT_CHECKED:
                level += "?"
            kind = "legacy" if e.legacy else ("" if e.manifest is not None else "no manifest")
            if e.manifest_error:
                kind = "MANIFEST BAD"
                notes.append(f"  {e.path.name}: {e.manifest_error}")
            rows.append(
                [
                    e.server or "-",
                    e.database,
                    e.when.astimezone().strftime("%Y-%m-%d %H:%M"),
                    age(e.when),
                    format_bytes(e.size),
                    e.codec_label,
                    level,
                    kind,
                    e.path.name,
                ]
                + ([copies_cell(copy_states.get(e.key, []))] if ctx.config.copies else [])
            )
        head = ["SERVER", "DATABASE", "TIME", "AGE", "SIZE", "CODEC", "VERIFIED", "", "FILE"]
        sys.stdout.write(
            table(
                head + (["COPIES"] if ctx.config.copies else []), rows, "lllrrlcll" + ("l" if ctx.config.copies else "")
            )
            + "\n"
        )
        for n in notes:
            sys.stdout.write(style(n, ok=False) + "\n")
    if cat.partials:
        sys.stdout.write("\npartial files:\n")
        for p in cat.partials:
            state = "being written" if p.live else "leftover (writer gone; `dumpdeck clean` removes it)"
            sys.stdout.write(f"  {printable(p.path)}  {format_bytes(p.size)}  {age(p.mtime)}  {state}\n")
    return 0
