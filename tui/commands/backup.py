"""`dumpdeck backup [--server S] DB...`: dump databases now, in this process, with a live progress line."""

from __future__ import annotations

import sys
import threading

from backend import mysql
from backend.dump import DumpProgress, dump_database
from backend.errors import ConfigError, DumpdeckError
from backend.units import format_bytes, format_duration

from ..output import ProgressLine, print_json, style


def register(sub) -> None:
    p = sub.add_parser(
        "backup", help="dump databases now (foreground, live progress)",
        description="Dump one or more databases now. Each database becomes one compressed, checksummed "
                    "file with a manifest; a dump counts only if the dump tool exits 0 and the footer is present.",
        epilog="exit codes: 0 every dump succeeded, 1 at least one failed, 2 usage or configuration error")
    p.add_argument("databases", nargs="*", metavar="DB", help="database names (quote names with spaces)")
    p.add_argument("--server", "-s", help="server name from the config (needed when several are configured)")
    p.add_argument("--all", action="store_true", help="every non-system database of the server")
    p.add_argument("--compression", choices=["zstd", "gzip", "xz", "none"], help="override backup.compression")
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    import dataclasses

    config = ctx.config
    server = config.server(args.server)
    backup = config.backup
    if args.compression:
        level = backup.level if args.compression == backup.compression else \
            {"zstd": 3, "gzip": 6, "xz": 3, "none": 0}[args.compression]
        backup = dataclasses.replace(backup, compression=args.compression, level=level)
    databases = list(args.databases)
    if args.all:
        conn = mysql.connect(server)
        try:
            databases = mysql.list_databases(conn, server)
        finally:
            conn.close()
    if not databases:
        raise ConfigError("name at least one database, or pass --all")

    line = ProgressLine()
    results = []
    failures = 0
    cancel = threading.Event()
    for db in databases:
        def show(p: DumpProgress, db=db) -> None:
            if p.phase in ("dumping", "finishing"):
                frac = f"{p.fraction * 100:3.0f}% " if p.fraction is not None else ""
                line.update(f"{server.name}/{db}: {frac}{format_bytes(p.bytes_raw)} raw → "
                            f"{format_bytes(p.bytes_stored)}  {format_bytes(p.rate)}/s  "
                            f"{format_duration(p.elapsed)}  {p.current_table or ''}")
        try:
            result = dump_database(server, backup, db, on_progress=show, cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            line.clear()
            raise
        except DumpdeckError as exc:
            line.clear()
            failures += 1
            results.append({"database": db, "server": server.name, "ok": False, "error": str(exc)})
            if not args.json:
                sys.stderr.write(style(f"FAILED  {server.name}/{db}: {exc}", ok=False) + "\n")
            continue
        line.clear()
        m = result.manifest
        results.append({"database": db, "server": server.name, "ok": True, "file": str(result.path),
                        "bytes_raw": m.bytes_raw, "bytes_stored": m.bytes_stored, "sha256": m.sha256,
                        "duration": m.duration, "codec": m.codec, "coordinates": m.coordinates,
                        "warnings": result.warnings})
        if not args.json:
            ratio = m.bytes_raw / m.bytes_stored if m.bytes_stored else 0
            sys.stdout.write(
                style("OK", ok=True) + f"      {server.name}/{db}: {result.path}\n"
                f"        {format_bytes(m.bytes_raw)} SQL → {format_bytes(m.bytes_stored)} {m.codec} "
                f"({ratio:.1f}:1) in {format_duration(m.duration)}, sha256 {m.sha256[:16]}…\n")
            for w in result.warnings:
                sys.stdout.write(style(f"        warning: {w}", ok=False) + "\n")
    if args.json:
        print_json({"ok": failures == 0, "results": results})
    return 1 if failures else 0
