"""`dumpdeck restore DUMP | --latest DB --into NAME [--target SERVER] [--tables T,…] [--replace] [--dry-run]`.

The restore is a run in the state store (job `restore`), executed by the same runner code as
backups: in this process with a live progress line (Ctrl-C cancels; the target is left as it
was), or with `--detach` by a detached runner that survives the terminal.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from dumpdeck.backend import catalog
from dumpdeck.backend.errors import UsageError
from dumpdeck.backend.logs import setup_logging
from dumpdeck.backend.restore_real import RestoreRequest, make_plan, prepare, recover_swaps, start_restore
from dumpdeck.backend.runner import execute
from dumpdeck.backend.state import open_store
from dumpdeck.backend.swap import open_journals
from dumpdeck.backend.units import format_bytes, format_duration

from ..options import add_identity_option
from ..output import ProgressLine, print_json, style
from .verify_cmd import add_target_args, resolve_file


def register(sub) -> None:
    p = sub.add_parser(
        "restore",
        help="restore a dump into a new database, or replace one in place (safety dump first)",
        description="Restore a dump for real. By default into a database that does not exist yet or is empty; "
        "a non-empty one is refused unless --replace is given. Before loading, the dump must pass levels 1-2 "
        "and level 3's scope check (nothing outside its own database). With --replace: a safety dump of the "
        "current data (verified, tagged pre-restore), a load into a staging database, a comparison with the "
        "dump, then a journaled RENAME TABLE swap; if anything fails, the target is left as it was. With "
        "--tables and --replace only those tables (and their triggers) are replaced. If the process is killed "
        "during the swap, the next restore (or --recover) finishes it or rolls it back: never half.",
        epilog="exit codes: 0 restored (or --dry-run printed, or --recover resolved every interrupted swap it "
        "found), 1 refused or "
        "failed (the target is as it was), 2 usage error, 130 cancelled with Ctrl-C",
    )
    add_target_args(p)
    p.add_argument("--into", "-i", metavar="NAME", help="the database to restore into (required)")
    p.add_argument("--target", "-t", metavar="SERVER", help="server to restore on (default: the dump's own server)")
    p.add_argument(
        "--tables",
        metavar="T,…",
        help="only these tables: into a new name with the views/routines/triggers that need only them; with "
        "--replace just those tables and their triggers, the others untouched",
    )
    p.add_argument("--replace", action="store_true", help="replace a non-empty database (safety dump, staging, swap)")
    p.add_argument(
        "--definer",
        choices=["keep", "current"],
        default="keep",
        help="DEFINER of views, routines, triggers, events: as in the dump (keep) or the restoring account",
    )
    p.add_argument("--parallel", "-j", type=int, default=2, metavar="N", help="load connections (default 2)")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the plan and change nothing")
    p.add_argument("--detach", action="store_true", help="hand the restore to a detached runner and return")
    p.add_argument(
        "--recover",
        action="store_true",
        help="finish or roll back a --replace swap whose process was killed (the next restore and every "
        "runner start do it too), then exit",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="DEST",
        help="restore the copy at copy destination DEST: FILE is then its path there (<server>/<database>/<file>, "
        "see list --remote DEST), or --latest DB its newest verified copy. It is streamed through rclone cat "
        "(nothing lands on local disk): once to check levels 1-3 (sha256 against the manifest stored beside "
        "it), once to load",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add_identity_option(p)
    p.set_defaults(func=run)


def target_server(config, path, explicit: str | None) -> str:
    if explicit:
        return config.server(explicit).name
    entry = None
    for e in catalog.scan(path.parent).entries:
        if e.path.name == path.name:
            entry = e
    name = entry.server if entry is not None else None
    if name in config.servers:
        return name  # type: ignore[return-value]
    if len(config.servers) == 1:
        return next(iter(config.servers))
    raise UsageError(
        f"{path.name}: its server {name or '(unknown)'} is not configured; choose one with --target "
        f"({', '.join(config.servers)})"
    )


def recover(args, ctx) -> int:
    if args.file is not None or args.latest or args.into:
        raise UsageError("--recover takes no dump and no --into: it resolves the swaps left open")
    server = ctx.config.server(args.target).name if args.target else None
    done = recover_swaps(ctx.config, server)
    with open_store(ctx.config) as store:  # those left open: their process runs, or another recovery holds them
        busy = [j for j in open_journals(store) if server is None or j.server == server]
    busy = [j for j in busy if not any(j.id == d.id for d, _m, _ok in done)]
    if args.json:
        print_json(
            [{"server": j.server, "database": j.database, "pid": j.pid, "result": m, "ok": ok} for j, m, ok in done]
            + [
                {"server": j.server, "database": j.database, "pid": j.pid, "result": "in progress", "ok": True}
                for j in busy
            ]
        )
        return 0 if all(ok for _j, _m, ok in done) else 1
    if not done and not busy:
        sys.stdout.write("no interrupted swap to recover\n")
    for j, message, ok in done:
        note = f"`{j.database}` on {j.server} (swap of pid {j.pid}): {message}"
        sys.stdout.write(style(note, ok=ok) + "\n")
    for j in busy:
        sys.stdout.write(
            f"`{j.database}` on {j.server}: its swap is in progress (pid {j.pid} on {j.host} runs, or another "
            "recovery holds it); left alone\n"
        )
    return 0 if all(ok for _j, _m, ok in done) else 1


def run(args, ctx) -> int:
    config = ctx.config
    if args.recover:
        return recover(args, ctx)
    if not args.into:
        raise UsageError("restore needs --into NAME: the database to restore into")
    remote = None
    if args.source:
        from dumpdeck.backend import copies

        if (args.file is None) == (args.latest is None):
            raise UsageError("with --from DEST, name the copy: its path there, or --latest DB")
        found = copies.find_remote(
            config, args.source, latest=args.latest, path=str(args.file) if args.file else None, server=args.server
        )
        remote = {"destination": args.source, "path": found.rel}
        path = Path(found.name)
        server_name = config.server(args.target).name if args.target else None
        if server_name is None:
            server_name = found.server if found.server in config.servers else None
        if server_name is None and len(config.servers) == 1:
            server_name = next(iter(config.servers))
        if server_name is None:
            raise UsageError(f"{found.rel}: its server {found.server} is not configured here; choose one with --target")
    else:
        path = resolve_file(args, ctx).resolve()
        server_name = target_server(config, path, args.target)
    if args.parallel < 1:
        raise UsageError("--parallel must be at least 1")
    tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    req = RestoreRequest(
        path=path,
        target_server=server_name,
        target_db=args.into,
        tables=tables,
        replace=args.replace,
        definer=args.definer,
        parallel=args.parallel,
        remote=remote,
    )
    if not args.dry_run:  # a swap a killed restore left half done is finished or rolled back first
        for j, message, ok in recover_swaps(config, req.target_server):
            note = f"an interrupted swap of `{j.database}` on {j.server} (pid {j.pid}) was {message}"
            (sys.stderr if args.json else sys.stdout).write(style(note, ok=ok) + "\n")
    plan = make_plan(config, req, sha256=args.dry_run)
    if args.dry_run:
        if tables and not plan.refusal:
            prepare(config, req, plan, lambda _m: None)  # the subset needs the dump's objects
        if args.json:
            print_json(plan.to_dict())
        else:
            for text in plan.lines():
                sys.stdout.write(text + "\n")
        return 1 if plan.refusal else 0
    if plan.refusal:
        sys.stderr.write(style(f"refused: {plan.refusal}", ok=False) + "\n")
        return 1
    if args.detach:
        started = start_restore(config, req, trigger="cli", detach=True)
        if args.json:
            print_json({"run": started.id, "status": started.status})
        else:
            sys.stdout.write(
                f"run {started.id} started (restore into {req.target_db!r} on {req.target_server}); "
                f"follow it with: dumpdeck job status {started.id}\n"
            )
        return 0

    store = open_store(config)
    store.reap_lost()
    run_row = start_restore(config, req, trigger="cli", detach=False, store=store)
    setup_logging(config, run_row.id)
    if not args.json:
        for text in plan.lines():
            sys.stdout.write(style(text, dim=True) + "\n")
    cancel = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["run"] = execute(config, store, run_row.id, cancel=cancel)
        except BaseException as exc:
            outcome["error"] = exc

    def on_signal(signum, _frame):  # a hang-up or kill of the terminal: stop cleanly, the target as it was
        cancel.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGHUP, signal.SIGTERM)}
    worker = threading.Thread(target=work, name=f"restore-{run_row.id}", daemon=True)
    worker.start()
    line = ProgressLine()
    seen = 0
    try:
        while worker.is_alive():
            worker.join(0.5)
            if not args.json:
                for ev in store.events(run_row.id, since_id=seen, kind="restore-step"):
                    seen = ev.id
                    line.clear()
                    sys.stdout.write(f"  {ev.message}\n")
            if line.enabled and not args.json:
                line.update(progress_text(store, run_row.id))
    except KeyboardInterrupt:
        cancel.set()
        line.clear()
        sys.stderr.write("cancelling: stopping the load; the target is left as it was…\n")
        worker.join()
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    line.clear()
    if "error" in outcome:
        raise outcome["error"]
    final = outcome["run"]
    if not args.json:
        for ev in store.events(run_row.id, since_id=seen, kind="restore-step"):
            sys.stdout.write(f"  {ev.message}\n")
    ok = final.status == "succeeded"
    if args.json:
        done = store.events(run_row.id, kind="restore-done")
        print_json(
            {
                "ok": ok,
                "run": final.id,
                "status": final.status,
                "reason": final.reason,
                "result": done[-1].data if done else None,
            }
        )
    elif ok:
        sys.stdout.write(style("OK", ok=True) + f"      {final.reason}\n")
    else:
        sys.stderr.write(style(f"FAILED  {final.reason}", ok=False) + "\n")
    return 0 if ok else (130 if final.status == "cancelled" else 1)


def progress_text(store, run_id: int) -> str:
    rows = store.progress(run_id)
    if not rows:
        return "preparing…"
    p = rows[0]
    if not p.bytes_raw:
        return (p.current_table or "preparing…")[:100]
    frac = f"{p.bytes_raw / p.estimate * 100:3.0f}% " if p.estimate and p.bytes_raw <= p.estimate else ""
    eta = ""
    if p.estimate and p.rate and p.bytes_raw <= p.estimate and p.bytes_raw >= 1 << 20:
        eta = f" ETA {format_duration((p.estimate - p.bytes_raw) / p.rate)}"
    return f"{p.database}: {frac}{format_bytes(p.bytes_raw)} {format_bytes(p.rate)}/s {p.current_table or ''}{eta}"
