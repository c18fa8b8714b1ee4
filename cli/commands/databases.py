"""`dumpdeck databases`: the inventory of every configured server (or one)."""

from __future__ import annotations

import sys

from dumpdeck.backend import mysql
from dumpdeck.backend.errors import DumpdeckError
from dumpdeck.backend.units import format_bytes

from ..output import print_json, style, table


def register(sub) -> None:
    p = sub.add_parser(
        "databases",
        help="list the databases of the configured servers",
        description="List databases with size (data+index), tables, engines, and a warning "
        "where non-transactional tables make a --single-transaction dump inconsistent.",
    )
    p.add_argument("--server", "-s", help="only this server")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    config = ctx.config
    servers = [config.server(args.server)] if args.server else list(config.servers.values())
    result = []
    failed = False
    for server in servers:
        try:
            conn = mysql.connect(server)
            try:
                info = mysql.server_info(conn, server)
                dbs = mysql.inventory(conn, server)
            finally:
                conn.close()
            result.append(
                {
                    "server": server.name,
                    "version": info.version,
                    "flavour": info.flavour,
                    "reachable": True,
                    "databases": dbs,
                }
            )
        except DumpdeckError as exc:
            failed = True
            result.append({"server": server.name, "reachable": False, "error": str(exc), "databases": []})
    if args.json:
        print_json(result)
        return 1 if failed else 0
    for entry in result:
        if not entry["reachable"]:
            sys.stdout.write(style(f"{entry['server']}: unreachable: {entry['error']}", ok=False) + "\n\n")
            continue
        sys.stdout.write(style(f"{entry['server']}  ({entry['version']})", bold=True) + "\n")
        rows = []
        notes = []
        for db in entry["databases"]:
            rows.append(
                [
                    db.name,
                    format_bytes(db.bytes),
                    db.tables,
                    db.views,
                    ",".join(db.engines) or "-",
                    "" if db.consistent else "NOT CONSISTENT",
                ]
            )
            if not db.consistent:
                notes.append(
                    f"  {db.name}: non-transactional tables ({', '.join(db.non_transactional[:6])}) "
                    "are not covered by --single-transaction; their data may not match the rest"
                )
        sys.stdout.write(table(["DATABASE", "SIZE", "TABLES", "VIEWS", "ENGINES", ""], rows, "lrrrll") + "\n")
        for n in notes:
            sys.stdout.write(style(n, ok=False) + "\n")
        sys.stdout.write("\n")
    return 1 if failed else 0
