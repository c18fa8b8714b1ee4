"""`dumpdeck backup [--server S] DB...`: dump databases now, with a live progress line.

The backup is a run in the state store like any other (trigger `cli`), so every
console shows it live, and it goes through the same runner: preflight, dumps
(two at a time), verification to level 2, notifications. By default it runs in
this process and Ctrl-C cancels it; `--detach` hands it to a detached runner
that survives the terminal.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dumpdeck.backend import credentials, mysql
from dumpdeck.backend import manifest as manifest_mod
from dumpdeck.backend.errors import ConfigError, DumpdeckError
from dumpdeck.backend.jobs import start_run
from dumpdeck.backend.logs import setup_logging
from dumpdeck.backend.naming import printable
from dumpdeck.backend.runner import execute
from dumpdeck.backend.selection import ADHOC
from dumpdeck.backend.state import open_store
from dumpdeck.backend.units import format_bytes, format_duration

from ..output import ProgressLine, print_json, style

PROGRESS_LINE_EVERY = 0.5  # seconds between redraws of the live line (the runner writes progress twice a second)


def register(sub) -> None:
    p = sub.add_parser(
        "backup",
        help="dump databases now (live progress; --detach to run in the background)",
        description="Dump one or more databases now. Each database becomes one compressed, checksummed "
        "file with a manifest, verified to level 2 (stream decodes, header and footer present). "
        "A dump counts only if the dump tool exits 0 and the footer is present. The run is "
        "recorded in the state store, so every console shows it live.",
        epilog="exit codes: 0 every dump succeeded, 1 at least one failed, 2 usage or configuration error, "
        "130 cancelled with Ctrl-C",
    )
    p.add_argument("databases", nargs="*", metavar="DB", help="database names (quote names with spaces)")
    p.add_argument("--server", "-s", help="server name from the config (needed when several are configured)")
    p.add_argument("--all", action="store_true", help="every non-system database of the server")
    p.add_argument(
        "--compression", choices=["zstd", "gzip", "xz", "none"], help="override backup.compression (not with --detach)"
    )
    p.add_argument(
        "--detach",
        action="store_true",
        help="start a detached runner and return at once; follow it with `dumpdeck job status RUN`",
    )
    p.add_argument("--json", action="store_true", help="machine-readable result on stdout")
    p.set_defaults(func=run)


def run(args, ctx) -> int:
    config = ctx.config
    server = config.server(args.server)
    credentials.check_secrets(config, [server.name], "this backup")  # exit 2, naming the file
    if args.compression and args.compression != config.backup.compression:
        if args.detach:
            raise ConfigError("--compression cannot be combined with --detach (the runner reads the config file)")
        level = {"zstd": 3, "gzip": 6, "xz": 3, "none": 0}[args.compression]
        config = dataclasses.replace(
            config, backup=dataclasses.replace(config.backup, compression=args.compression, level=level)
        )
    databases = list(dict.fromkeys(args.databases))
    if args.all:
        conn = mysql.connect(server)
        try:
            databases = mysql.list_databases(conn, server)
        finally:
            conn.close()
    if not databases:
        raise ConfigError("name at least one database, or pass --all")

    if args.detach:
        started = start_run(config, databases=databases, server=server.name, trigger="cli")
        if args.json:
            print_json({"run": started.id, "status": started.status, "databases": databases})
        else:
            sys.stdout.write(
                f"run {started.id} started ({printable(', '.join(databases))} on {server.name}); "
                f"follow it with: dumpdeck job status {started.id}\n"
            )
        return 0

    store = open_store(config)
    store.reap_lost()
    run_row = store.create_run(ADHOC, "cli", server.name, databases, log_dir=config.runs_log_dir)
    setup_logging(config, run_row.id)
    cancel = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["run"] = execute(config, store, run_row.id, cancel=cancel)
        except BaseException as exc:  # surfaced in the main thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"run-{run_row.id}", daemon=True)
    worker.start()
    line = ProgressLine()
    t0 = time.monotonic()
    try:
        while worker.is_alive():
            worker.join(PROGRESS_LINE_EVERY)
            if line.enabled:
                line.update(_progress_text(store, run_row.id, server.name, time.monotonic() - t0))
    except KeyboardInterrupt:
        cancel.set()
        line.clear()
        sys.stderr.write("cancelling: stopping the dumps and removing their partial files…\n")
        worker.join()
        return 130
    line.clear()
    if "error" in outcome:
        raise outcome["error"]
    final = outcome["run"]
    rows = store.progress(run_row.id)
    results = []
    for row in rows:
        entry: dict[str, Any] = {
            "database": row.database,
            "server": server.name,
            "ok": row.status == "succeeded",
            "status": row.status,
            "file": row.file,
            "error": row.error,
            "verified_level": row.verified_level,
        }
        if row.status == "succeeded" and row.file:
            try:
                m = manifest_mod.load(Path(row.file))
                entry.update(
                    bytes_raw=m.bytes_raw,
                    bytes_stored=m.bytes_stored,
                    sha256=m.sha256,
                    duration=m.duration,
                    codec=m.codec,
                    coordinates=m.coordinates,
                    warnings=m.warnings,
                )
            except DumpdeckError as exc:
                entry["warnings"] = [str(exc)]
        results.append(entry)
    ok = final.status == "succeeded"
    if args.json:
        print_json({"ok": ok, "run": final.id, "status": final.status, "reason": final.reason, "results": results})
        return 0 if ok else 1
    for r in results:
        name = printable(f"{server.name}/{r['database']}")
        if r["ok"]:
            ratio = r["bytes_raw"] / r["bytes_stored"] if r.get("bytes_stored") else 0
            reached = f", verified to level {r['verified_level']}" if r.get("verified_level") else ""
            sys.stdout.write(
                style("OK", ok=True) + f"      {name}: {r['file']}\n"
                f"        {format_bytes(r['bytes_raw'])} SQL → {format_bytes(r['bytes_stored'])} {r['codec']} "
                f"({ratio:.1f}:1) in {format_duration(r['duration'])}, sha256 {r['sha256'][:16]}…{reached}\n"
            )
            for w in r.get("warnings") or []:
                sys.stdout.write(style(f"        warning: {w}", ok=False) + "\n")
        else:
            sys.stderr.write(style(f"FAILED  {name}: {r['error'] or r['status']}", ok=False) + "\n")
    if not ok and not any(not r["ok"] for r in results):
        sys.stderr.write(style(f"FAILED  run {final.id}: {final.reason}", ok=False) + "\n")
    return 0 if ok else 1


def _progress_text(store, run_id: int, server: str, elapsed: float = 0.0) -> str:
    """The live line: run clock, databases done, and each database at work (its bytes, rate and
    table while it dumps; 'verifying' once its bytes are written)."""
    parts = []
    rows = store.progress(run_id)
    for p in rows:
        if p.status == "running":
            frac = f"{p.bytes_raw / p.estimate * 100:3.0f}% " if p.estimate and p.bytes_raw <= p.estimate else ""
            parts.append(
                f"{p.database}: {frac}{format_bytes(p.bytes_raw)} {format_bytes(p.rate)}/s "
                f"{p.current_table or ''}".rstrip()
            )
        elif p.status in ("verifying", "retrying"):
            parts.append(f"{p.database}: {p.status}")
    done = sum(1 for p in rows if p.status == "succeeded")
    return f"{format_duration(elapsed)} [{done}/{len(rows)}] " + ("  |  ".join(parts) if parts else "preparing…")
